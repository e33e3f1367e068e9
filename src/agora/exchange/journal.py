"""The exchange's append-only journal of sequenced input commands; restart = snapshot + replay.

Format (little-endian). File header, 24 bytes: magic ``b"AGORAJNL"`` | version u16 | flags u16
(0) | base_seq u64 | crc u32 (crc32 of the 20 bytes before it). Then records, each a 24-byte
header ``payload_len u32 | seq u64 | ts i64 | crc u32`` and a payload: the msgspec msgpack
encoding of one ``Command``. ``base_seq`` is the seq before the first record, so a journal can
start after a snapshot.

Invariants: seqs are consecutive (``base_seq + 1, base_seq + 2, ...``). Checksums are chained
like TigerBeetle's hash-chained log: ``crc = crc32(header_without_crc + payload, prev)`` with
``prev`` the previous record's stored crc, or the file header's crc for the first record, so a
record vouches for its bytes, its place in the chain and the file's ``base_seq``; records cannot
be dropped, reordered or spliced in unnoticed (except at the very end: losing the last records
looks like a torn or shorter journal). ``payload_len <= MAX_PAYLOAD`` (1 MiB): the writer refuses
more, a reader takes more as damage. A new journal is created atomically (temp file, fsync,
rename, directory fsync): a journal file has a whole header or does not exist (an empty file
counts as new). One writer per file (``flock``).

Recovery (``recover_journal``, run by the writer when it opens an existing journal): a bad file
header (short, magic, version, header crc) raises JournalCorruptError. Records are walked checking
framing, length, seq and chained crc. At the first bad record, recovery looks for evidence that
committed data follows: a later record chaining from the bad one (prev = its stored crc, or the
crc recomputed over its bytes in case only the crc field was hit), or two later records chaining
with each other; either with a plausible seq (above the bad record's, by at most one per 24 bytes
of distance). Evidence means mid-journal corruption: JournalCorruptError naming the offset and seq
(also its ``offset``/``seq`` attributes), nothing truncated. No evidence means a torn tail (an
append cut short by a crash): reported and, with ``truncate=True``, cut back to the last good
record and fsynced. Nothing before the last good record is ever lost. Readers (``read_journal``,
``read_journal_raw``, ``replay``) apply the same checks, stop at a torn tail without touching the
file (a live writer's unfinished record looks like one) and raise on mid-journal corruption.

Limitations: with FsyncPolicy NONE or BATCH a crash may persist unsynced pages out of order; a
hole in that window followed by surviving records looks like mid-journal corruption, so recovery
raises rather than guess (``err.offset`` is where a deliberate ``os.truncate`` would cut). With
ALWAYS only the record being written can be torn. The evidence search tries every byte offset
after the bad record in Python: instant for a torn tail, slow (seconds) for a tail of many MB of
garbage. Readers mmap the file: do not open a writer (which may truncate) while one is scanning.
``replay`` applies records as it verifies them; if it raises, discard the state it built (or run
``recover_journal`` first to fail before applying anything).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

import msgspec

from agora.core.errors import JournalCorruptError
from agora.core.events import Command
from agora.core.files import replace_durably

MAGIC = b"AGORAJNL"
VERSION = 1
MAX_PAYLOAD = 1 << 20
_FILE_HEADER = struct.Struct("<8sHHQI")
_RECORD = struct.Struct("<IQqI")
_RECORD_NO_CRC = struct.Struct("<IQq")
FILE_HEADER_SIZE = _FILE_HEADER.size  # 24
RECORD_HEADER_SIZE = _RECORD.size  # 24
_CRC_AT = _RECORD_NO_CRC.size  # 20: bytes of a header the crc covers
_crc32 = zlib.crc32
_pack_head = _RECORD_NO_CRC.pack
_pack_crc = struct.Struct("<I").pack
_DECODER = msgspec.msgpack.Decoder(Command)


class FsyncPolicy(StrEnum):
    NONE = "none"  # buffered; reaches the OS when the buffer fills, on flush() and close()
    BATCH = "batch"  # flush + fsync every `batch_size` records and on sync()/close()
    ALWAYS = "always"  # flush + fsync after every append


class JournalRecord(NamedTuple):
    seq: int
    ts: int
    command: Command


class RawRecord(NamedTuple):
    seq: int
    ts: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What a scan found. ``truncated_bytes`` lie past the last good record (cut if truncating)."""

    records: int
    base_seq: int
    first_seq: int | None
    last_seq: int  # base_seq when there are no records
    valid_bytes: int
    truncated_bytes: int
    problem: str | None  # why the scan stopped before EOF (a torn tail), else None


def _corrupt(message: str, offset: int | None, seq: int | None) -> JournalCorruptError:
    err = JournalCorruptError(message)
    err.offset, err.seq = offset, seq  # type: ignore[attr-defined]
    return err


def _file_header(base_seq: int) -> bytes:
    head = _FILE_HEADER.pack(MAGIC, VERSION, 0, base_seq, 0)[:-4]
    return head + _pack_crc(_crc32(head))


def _parse_file_header(data, size: int, path: Path) -> tuple[int, int]:
    """(base_seq, chain seed) of a journal, or JournalCorruptError."""
    if size < FILE_HEADER_SIZE:
        raise _corrupt(f"{path}: {size} bytes, too short for the journal header", 0, None)
    magic, version, _flags, base_seq, crc = _FILE_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        problem = f"bad magic {magic!r}, not an agora journal"
    elif version != VERSION:
        problem = f"journal format version {version}, this build reads {VERSION}"
    elif _crc32(data[: FILE_HEADER_SIZE - 4]) != crc:
        problem = "journal header checksum mismatch"
    else:
        return base_seq, crc
    raise _corrupt(f"{path}: {problem}", 0, None)


class _Scan:
    """Walks the records of a mapped journal; after iteration, says where and why it stopped."""

    def __init__(self, path: Path, data: mmap.mmap, size: int) -> None:
        self.path, self.data, self.size = path, data, size  # slicing an mmap gives bytes
        self.base_seq, self.seed = _parse_file_header(data, size, path)
        self.end = FILE_HEADER_SIZE
        self.last_seq = self.base_seq
        self.crc = self.seed
        self.problem: str | None = None

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        """Yields (seq, ts, payload) of each good record."""
        data, size, unpack, crc32 = self.data, self.size, _RECORD.unpack_from, _crc32
        off, prev, expect = FILE_HEADER_SIZE, self.seed, self.base_seq + 1
        last_header = size - RECORD_HEADER_SIZE
        try:
            while off <= last_header:
                n, seq, ts, crc = unpack(data, off)
                start = off + RECORD_HEADER_SIZE
                stop = start + n
                if n > MAX_PAYLOAD or stop > size or seq != expect:
                    break
                payload = data[start:stop]
                if crc32(payload, crc32(data[off : off + _CRC_AT], prev)) != crc:
                    break
                yield seq, ts, payload
                off, prev, expect = stop, crc, expect + 1
        finally:
            self.end, self.crc, self.last_seq = off, prev, expect - 1
        if off < size:
            self.problem = self._diagnose(off, prev, expect)

    def _diagnose(self, off: int, prev: int, expect: int) -> str:
        """Describe the bad record at ``off``; raise if committed records follow it."""
        rest = self.size - off - RECORD_HEADER_SIZE
        where = f"{self.path}: record at offset {off} (seq {expect})"
        if rest < 0:
            return f"{where}: incomplete header, {rest + RECORD_HEADER_SIZE} bytes"
        n, seq, _ts, stored = _RECORD.unpack_from(self.data, off)
        chain = {stored}  # the prev values a record following this one may have used
        if n > MAX_PAYLOAD:
            problem = f"{where}: payload_len {n} exceeds {MAX_PAYLOAD}"
        elif n > rest:
            problem = f"{where}: incomplete payload, {rest} of {n} bytes"
        else:
            chain.add(self._crc_at(off, n, prev))
            problem = f"{where}: " + (f"seq {seq}" if seq != expect else "checksum mismatch")
        for p in range(off + RECORD_HEADER_SIZE, self.size - RECORD_HEADER_SIZE + 1):
            if self._follows(p, off, expect, chain):
                raise _corrupt(
                    f"{problem}; a valid record follows at offset {p}: mid-journal corruption,"
                    " not a torn tail (nothing truncated)",
                    off,
                    expect,
                )
        return problem

    def _frame(self, off: int) -> tuple[int, int, int]:
        """(payload_len, seq, stored crc) at ``off``; payload_len -1 if it cannot be a record."""
        if self.size - off < RECORD_HEADER_SIZE:
            return -1, 0, 0
        n, seq, _ts, crc = _RECORD.unpack_from(self.data, off)
        ok = n <= MAX_PAYLOAD and off + RECORD_HEADER_SIZE + n <= self.size
        return (n if ok else -1), seq, crc

    def _crc_at(self, off: int, n: int, prev: int) -> int:
        start = off + RECORD_HEADER_SIZE
        return _crc32(self.data[start : start + n], _crc32(self.data[off : off + _CRC_AT], prev))

    def _follows(self, p: int, bad: int, expect: int, chain: set[int]) -> bool:
        """Is the record at ``p`` committed data after the bad record at ``bad``?"""
        n, seq, crc = self._frame(p)
        if n < 0 or not expect < seq <= expect + (p - bad) // RECORD_HEADER_SIZE:
            return False
        if any(self._crc_at(p, n, c) == crc for c in chain):
            return True
        q = p + RECORD_HEADER_SIZE + n  # or it and the next record chain with each other
        n2, seq2, crc2 = self._frame(q)
        return n2 >= 0 and seq2 == seq + 1 and self._crc_at(q, n2, crc) == crc2

    def report(self) -> RecoveryReport:
        records, base = self.last_seq - self.base_seq, self.base_seq
        first = base + 1 if records else None
        end, size = self.end, self.size
        return RecoveryReport(records, base, first, self.last_seq, end, size - end, self.problem)


@contextmanager
def _mapped(path: str | os.PathLike[str]) -> Iterator[_Scan]:
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < FILE_HEADER_SIZE:  # mmap refuses empty files
            _parse_file_header(f.read(), size, path)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield _Scan(path, data, size)


def _recover(path: str | os.PathLike[str], truncate: bool) -> tuple[RecoveryReport, int]:
    with _mapped(path) as scan:
        for _ in scan:
            pass
        report, crc = scan.report(), scan.crc
    if truncate and report.truncated_bytes:
        with open(path, "r+b") as f:
            f.truncate(report.valid_bytes)
            os.fsync(f.fileno())
    return report, crc


def recover_journal(path: str | os.PathLike[str], *, truncate: bool = True) -> RecoveryReport:
    """Verify a journal; cut a torn tail back to the last good record (see the module notes)."""
    return _recover(path, truncate)[0]


def _not_a_command(seq: int, e: Exception) -> JournalCorruptError:
    # the crc held, so these are the bytes written: a schema mismatch, not bit rot
    return _corrupt(f"record seq {seq} is not a Command: {e}", None, seq)


def read_journal(path: str | os.PathLike[str]) -> Iterator[JournalRecord]:
    """Yield every good record decoded; stops at a torn tail, raises on corruption."""
    with _mapped(path) as scan:
        decode = _DECODER.decode
        for seq, ts, payload in scan:
            try:
                command = decode(payload)
            except msgspec.DecodeError as e:
                raise _not_a_command(seq, e) from e
            yield JournalRecord(seq, ts, command)


def read_journal_raw(path: str | os.PathLike[str]) -> Iterator[RawRecord]:
    """Yield every good record with its payload bytes (not decoded)."""
    with _mapped(path) as scan:
        for seq, ts, payload in scan:
            yield RawRecord(seq, ts, payload)


def replay(
    path: str | os.PathLike[str],
    apply: Callable[[int, int, Command], object],
    *,
    after_seq: int | None = None,
) -> RecoveryReport:
    """Call ``apply(seq, ts, command)`` for each good record with seq > ``after_seq``.

    Maps the whole file and slices records out of it (no per-record reads). ``after_seq`` is
    typically a snapshot's seq and must not precede the journal's base seq. Returns the scan's
    report (``problem`` is set if it stopped at a torn tail).
    """
    with _mapped(path) as scan:
        if after_seq is not None and after_seq < scan.base_seq:
            raise ValueError(f"{path} starts after seq {scan.base_seq}, not {after_seq}")
        skip, decode = scan.base_seq if after_seq is None else after_seq, _DECODER.decode
        for seq, ts, payload in scan:
            if seq > skip:
                try:
                    command = decode(payload)
                except msgspec.DecodeError as e:
                    raise _not_a_command(seq, e) from e
                apply(seq, ts, command)
        return scan.report()


def _create(path: Path, base_seq: int) -> None:
    replace_durably(path, _file_header(base_seq))


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class JournalWriter:
    """Appends records to a journal, creating it (header with ``base_seq``) if missing.

    Opening an existing journal recovers it first (a torn tail is cut, corruption raises) and
    continues its chain; ``base_seq``, if given, must then match the file's. Records are packed
    into an in-memory buffer that goes to the OS every ``buffer_size`` bytes, per the fsync
    policy, and on ``flush``/``sync``/``close``. After a write error the writer refuses appends:
    reopen it, which recovers the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = FsyncPolicy.NONE,
        batch_size: int = 1000,
        base_seq: int | None = None,
        buffer_size: int = 1 << 20,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path = Path(path)
        self.policy = FsyncPolicy(fsync)
        if not self.path.exists() or self.path.stat().st_size == 0:
            _create(self.path, 0 if base_seq is None else base_seq)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        try:
            if not _try_lock(self._file.fileno()):
                raise RuntimeError(f"{self.path} is open by another journal writer")
            self.recovery, self._crc = _recover(self.path, truncate=True)
            if base_seq is not None and base_seq != self.recovery.base_seq:
                raise ValueError(
                    f"{self.path} has base seq {self.recovery.base_seq}, not {base_seq}"
                )
        except BaseException:
            self._file.close()
            raise
        self._next: int | None = self.recovery.last_seq + 1  # None once closed or failed
        self._final = self.recovery.last_seq
        self._buf = bytearray()
        self._buffer_size = buffer_size
        self._sync_every = {FsyncPolicy.NONE: 0, FsyncPolicy.BATCH: batch_size}.get(self.policy, 1)
        self._pending = 0
        self._error: BaseException | None = None
        self._encode = msgspec.msgpack.Encoder().encode

    @property
    def last_seq(self) -> int:
        return self._final if self._next is None else self._next - 1

    @property
    def closed(self) -> bool:
        return self._file.closed

    def append(self, seq: int, ts: int, payload: bytes) -> None:
        """Append one record; ``seq`` must be exactly ``last_seq + 1``."""
        if seq != self._next:
            self._refuse(seq)
        n = len(payload)
        if n > MAX_PAYLOAD:
            raise ValueError(f"payload of {n} bytes exceeds MAX_PAYLOAD ({MAX_PAYLOAD})")
        try:
            head = _pack_head(n, seq, ts)
        except struct.error as e:
            raise ValueError(f"cannot pack record seq {seq}, ts {ts!r}: {e}") from None
        crc = _crc32(payload, _crc32(head, self._crc))
        buf = self._buf
        buf += head
        buf += _pack_crc(crc)
        buf += payload
        self._crc = crc
        self._next = seq + 1
        if len(buf) >= self._buffer_size:
            self._drain()
        if self._sync_every:
            self._pending += 1
            if self._pending >= self._sync_every:
                self.sync()

    def append_command(self, seq: int, ts: int, cmd: Command) -> None:
        """Encode ``cmd`` (msgpack) and append it. The sequencer encodes once itself and calls
        ``append``, so this convenience is off the hot path."""
        self.append(seq, ts, self._encode(cmd))

    def _refuse(self, seq: int) -> None:
        if self._error is not None:
            raise RuntimeError(f"{self.path}: an earlier write failed; reopen") from self._error
        if self._next is None:
            raise ValueError(f"{self.path}: journal writer is closed")
        raise ValueError(f"{self.path}: seq {seq} appended, expected {self._next}")

    def _stop(self, error: BaseException | None = None) -> None:
        if self._next is not None:
            self._final, self._next = self._next - 1, None
        self._error = self._error or error

    def _drain(self, fsync: bool = False) -> None:
        """Hand buffered records to the OS (and fsync); a failure stops the writer."""
        if self._next is None:
            self._refuse(-1)
        try:
            if self._buf:
                self._file.write(self._buf)
                self._buf.clear()
            self._file.flush()
            if fsync:
                os.fsync(self._file.fileno())
                self._pending = 0
        except BaseException as e:
            self._stop(e)
            raise

    def flush(self) -> None:
        """Write buffered records to the OS (no fsync)."""
        self._drain()

    def sync(self) -> None:
        """Write buffered records to the OS and fsync the file."""
        self._drain(fsync=True)

    def close(self) -> None:
        """Flush (and fsync unless the policy is NONE), then close. Idempotent."""
        if self._file.closed:
            return
        try:
            if self._error is None:
                self._drain(fsync=bool(self._sync_every))
        finally:
            self._stop()
            self._file.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
