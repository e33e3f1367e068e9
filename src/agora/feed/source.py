"""Reading ITCH 5.0 day files: plain or gzip, record by record, filtered before decoding.

NASDAQ publishes TotalView-ITCH 5.0 days as BinaryFILE: each record is a 2-byte big-endian length
and one message (``agora.protocols.itch50`` documents the framing and that it is unverified against
Nasdaq's BinaryFILE text). Files are often gzipped; :func:`open_binary` looks at the first two bytes
rather than trusting the file name.

:func:`iter_records` yields ``(offset, payload)`` where ``offset`` is the byte offset of the
record's length prefix in the uncompressed stream: the number every integrity issue quotes. A file
that ends inside a record (a download cut short) ends cleanly: the tail is reported as
``TRUNCATED`` with its offset, never silently dropped. :class:`RecordFilter` decides from the fixed
header bytes alone (type at 0, stock locate at 1-2, timestamp at 5-10) so skipped messages are never
decoded.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterable, Iterator
from typing import IO

from agora.feed.integrity import IntegrityReport, IssueKind

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class FeedFileError(ValueError):
    """A feed file that cannot be read at all (missing, not a file, corrupt compression)."""


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a feed file for binary reading, gunzipping when it starts with the gzip magic."""
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
        if magic == _GZIP_MAGIC:
            return _Gunzip(open(path, "rb"))
        return open(path, "rb")
    except OSError as exc:
        raise FeedFileError(f"cannot open {path}: {exc.strerror or exc}") from None


class _Gunzip(io.RawIOBase):
    """A gzip reader that hands out every byte it could decompress before reporting a cut.

    ``gzip.GzipFile.read`` drops the data of a call that meets a truncated stream; a feed handler
    must keep every complete record, so this decompresses incrementally (multi-member streams
    included) and raises ``EOFError`` only once the intact data is consumed.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._finished = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = size if size > 0 else _CHUNK
        while len(self._pending) < want and not self._finished:
            compressed = self._raw.read(_CHUNK)
            if not compressed:
                self._finished = True
                if not self._inflate.eof or self._inflate.unconsumed_tail:
                    if self._pending:
                        break
                    raise EOFError("gzip stream ends before its end-of-stream marker")
                break
            self._pending += self._inflate.decompress(compressed)
            while self._inflate.eof and self._inflate.unused_data:
                rest = self._inflate.unused_data
                self._inflate = zlib.decompressobj(wbits=31)
                self._pending += self._inflate.decompress(rest)
        if self._finished and not self._pending and not self._inflate.eof:
            raise EOFError("gzip stream ends before its end-of-stream marker")
        out, self._pending = self._pending[:want], self._pending[want:]
        return out

    def close(self) -> None:
        self._raw.close()
        super().close()

    def compressed_position(self) -> int:
        return self._raw.tell()


def stream_position(stream: IO[bytes]) -> int:
    """How far into the file on disk a stream from :func:`open_binary` has read (for progress)."""
    if isinstance(stream, _Gunzip):
        return stream.compressed_position()
    return stream.tell()


def iter_records(
    stream: IO[bytes], *, report: IntegrityReport | None = None, chunk: int = _CHUNK
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, payload)`` for every non-empty BinaryFILE record of ``stream``.

    A truncated last record (or a gzip stream cut short) is recorded in ``report`` as
    ``TRUNCATED``; without a report it raises :class:`FeedFileError`. Zero-length records (the
    end-of-session marker of public implementations) are skipped.
    """
    base = 0  # stream offset of buf[0]
    buf = b""
    while True:
        try:
            data = stream.read(chunk)
        except EOFError as exc:
            _truncated(report, base + len(buf), f"compressed stream cut short: {exc}")
            return
        except zlib.error as exc:
            detail = f"compressed stream is corrupt after {base + len(buf)} bytes: {exc}"
            if report is None:
                raise FeedFileError(detail) from None
            report.record(IssueKind.MALFORMED, base + len(buf), detail)
            return
        if not data:
            break
        buf = buf + data if buf else data
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            stop = pos + 2 + length
            if stop > end:
                break
            if length:
                yield base + pos, buf[pos + 2 : stop]
            pos = stop
        buf = buf[pos:]
        base += pos
    if buf:
        if len(buf) < 2:
            detail = f"1 of 2 length bytes at offset {base}"
        else:
            length = (buf[0] << 8) | buf[1]
            detail = f"record at offset {base} declares {length} bytes, {len(buf) - 2} follow"
        _truncated(report, base, f"file ends inside a record: {detail}")


def _truncated(report: IntegrityReport | None, offset: int, detail: str) -> None:
    if report is None:
        raise FeedFileError(detail)
    report.record(IssueKind.TRUNCATED, offset, detail)


class RecordFilter:
    """Keep records of some symbols and/or before an end time, judged from header bytes only.

    ``symbols`` are tickers, resolved to locate codes as their Stock Directory ('R') messages go
    by; ``locates`` are codes given directly. Messages with locate 0 (system-wide: 'S', 'V', 'W')
    and every 'R' pass, so the handler still learns the whole directory. ``end_ns`` ends the
    stream at the first message stamped at or after it (ITCH files are in time order).
    """

    def __init__(
        self,
        symbols: Iterable[str] | None = None,
        locates: Iterable[int] | None = None,
        end_ns: int | None = None,
    ) -> None:
        self.tickers = {s.encode("ascii").ljust(8) for s in symbols} if symbols else None
        self.locates: set[int] | None = set(locates) if locates is not None else None
        if self.tickers is not None and self.locates is None:
            self.locates = set()
        self.end_ns = end_ns

    def filter(self, records: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        locates, tickers, end_ns = self.locates, self.tickers, self.end_ns
        for offset, payload in records:
            if len(payload) < 11:
                yield offset, payload  # too short to judge: the handler reports it
                continue
            if end_ns is not None and int.from_bytes(payload[5:11], "big") >= end_ns:
                return
            if locates is None:
                yield offset, payload
                continue
            locate = (payload[1] << 8) | payload[2]
            if payload[0] == 0x52:  # 'R'
                if tickers is not None and payload[11:19] in tickers:
                    locates.add(locate)
                yield offset, payload
            elif locate == 0 or locate in locates:
                yield offset, payload
