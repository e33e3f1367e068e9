"""A replica's committed record: every ``Committed`` output it emitted, in order, per incarnation.

The record is the checker's oracle in the real-process tests and the embedding application's hook
(``replica_main``): a length-prefixed msgpack stream, flushed to the OS before a replica tells a
client of a commit, so it survives SIGKILL (not a power cut: it is not the durable log, which is
``consensus.storage``). A torn last frame of a killed writer is cut on open.

Opening a record finds its last record (the application's durable point and the incarnation).
So that this does not read a whole session's record (it used to: 270 ms and the whole file in
memory per 400,000 entries), the recorder leaves a mark beside it every ``MARK_EVERY`` records:
where the records then written end, the incarnation and point there, and where the last of
them starts (checked on open, so a mark is not used against another file). Opening scans from
the mark, a chunk at a time. The mark is a hint: replaced with a rename, not synced; a missing
or stale one costs a scan from the start.

Durable points for compaction: a replica may release its log's prefix only up to what its
application will never ask for again, even after a power cut (``Replica.release``). The record's
own durable point is ``durable``: :meth:`sync_in_background` fsyncs what was flushed in a
thread of its own, off the replica's step, and moves it when the fsync returns (the node asks
once per new checkpoint, a rare event).
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from agora.core.background import BackgroundJob
from agora.core.files import remove_leftovers, replace_durably
from agora.decision.consensus.messages import Committed

log = logging.getLogger(__name__)


class Record(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One line of a replica's committed log: a start marker (``item`` None) or an output.

    ``applied`` is, for a start marker, the durable point the incarnation starts from;
    ``at_ns`` is the replica's clock when it emitted the record.
    """

    replica: int
    incarnation: int
    at_ns: int
    applied: int
    item: Committed | None


class Mark(msgspec.Struct, frozen=True, array_like=True):
    """Where a record stood (see the module notes): ``offset`` is where its records ended,
    ``last`` where the last of them started."""

    offset: int
    last: int
    incarnation: int
    applied: int


MARK_EVERY = 65_536  # records between marks
SCAN_CHUNK = 1 << 20  # bytes read at a time
_LEN = struct.Struct("<I")
_NO_LEN = bytes(_LEN.size)  # a frame's length, filled in once its record is encoded
_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(Record)
_mark_decoder = msgspec.msgpack.Decoder(Mark)


def _scan(data: bytes) -> Iterator[tuple[Record, int]]:
    offset = 0
    while offset + _LEN.size <= len(data):
        (length,) = _LEN.unpack_from(data, offset)
        end = offset + _LEN.size + length
        if end > len(data):
            return
        try:
            record = _record_decoder.decode(data[offset + _LEN.size:end])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        yield record, end
        offset = end


def _scan_file(path: Path, start: int = 0) -> Iterator[tuple[Record, int]]:
    """The whole records of ``path`` from byte ``start`` (a frame boundary), each with the file
    offset where it ends, read a chunk at a time; a torn or damaged frame ends the scan."""
    with open(path, "rb") as f:
        f.seek(start)
        buf = b""
        while True:
            chunk = f.read(SCAN_CHUNK)
            buf = buf + chunk if buf else chunk
            used = 0
            for record, end in _scan(buf):
                yield record, start + end
                used = end
            if not chunk or (used == 0 and len(buf) >= _LEN.size
                             and _LEN.size + _LEN.unpack_from(buf)[0] <= len(buf)):
                return  # the end, or a whole frame that does not decode: damage
            start, buf = start + used, buf[used:]


def read_records(path: Path) -> list[Record]:
    """Every whole record in ``path`` (a torn last frame of a live or killed writer is skipped).
    All of them in memory: the file is read at once (a chunked read holds as much, slower)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return [record for record, _ in _scan(data)]


def iter_records(path: Path, start: int = 0) -> Iterator[Record]:
    """The records ``read_records`` gives, read a chunk at a time: for a reader that needs each
    once, in order (a restarted decision node replaying the session), memory stays at a chunk
    instead of the whole session's file and records. ``start``: a byte offset where a record
    ends (a reader that saved its state there)."""
    path = Path(path)
    if not path.exists():
        return
    for record, _ in _scan_file(path, start):
        yield record


class Recorder:
    """Appends records; on open, cuts a torn tail and finds the durable point and incarnation."""

    def __init__(self, path: Path, replica: int) -> None:
        self.path = Path(path)
        self.mark_path = self.path.with_name(self.path.name + ".mark")
        remove_leftovers(self.mark_path)
        self.replica = replica
        self.applied = 0
        self.incarnation = 0
        good = last = 0
        if self.path.exists():
            mark = self._load_mark()
            if mark is not None:
                good, last = mark.offset, mark.last
                self.incarnation, self.applied = mark.incarnation, mark.applied
            for record, end in _scan_file(self.path, good):
                last, good = good, end
                self.incarnation = record.incarnation + 1
                self.applied = record.item.index if record.item is not None else record.applied
        self._file = open(self.path, "ab")  # noqa: SIM115 - lives with the recorder
        self._file.truncate(good)
        self._size, self._last, self._unmarked = good, last, 0
        self.durable = 0  # records up to this index were fsynced (sync_in_background)
        self._sync = BackgroundJob("agora-record-sync")

    def start(self, now_ns: int) -> None:
        self._write(Record(self.replica, self.incarnation, now_ns, self.applied, None))
        self.flush()

    def committed(self, item: Committed, now_ns: int) -> None:
        self._write(Record(self.replica, self.incarnation, now_ns, 0, item))
        self.applied = item.index

    def committed_all(self, items: Sequence[Committed], now_ns: int) -> None:
        """A step's outputs in one write: the frames ``committed`` would write one by one.
        Built in one buffer, since a loaded replica commits hundreds of entries a step."""
        if not items:
            return
        buf = bytearray()
        encode_into, pack_into = _record_encoder.encode_into, _LEN.pack_into
        replica, incarnation, head = self.replica, self.incarnation, _LEN.size
        last = 0
        for item in items:
            last = len(buf)
            buf += _NO_LEN
            encode_into(Record(replica, incarnation, now_ns, 0, item), buf, last + head)
            pack_into(buf, last, len(buf) - last - head)
        self._file.write(buf)
        self._last = self._size + last
        self._size += len(buf)
        self._unmarked += len(items)
        self.applied = items[-1].index

    def _write(self, record: Record) -> None:
        payload = _record_encoder.encode(record)
        self._file.write(_LEN.pack(len(payload)) + payload)
        self._last = self._size
        self._size += _LEN.size + len(payload)
        self._unmarked += 1

    def flush(self) -> None:
        """To the OS (survives SIGKILL, not a power cut): the test oracle, not a durable log."""
        self._file.flush()
        if self._unmarked >= MARK_EVERY:
            self._write_mark()

    def _write_mark(self) -> None:
        """After a flush: the mark covers records the file already holds."""
        replace_durably(self.mark_path, _record_encoder.encode(
            Mark(self._size, self._last, self.incarnation + 1, self.applied)), sync=False)
        self._unmarked = 0

    def _load_mark(self) -> Mark | None:
        """The mark, if it fits this file: its last record is whole and ends at its offset."""
        try:
            mark = _mark_decoder.decode(self.mark_path.read_bytes())
        except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        for _, end in _scan_file(self.path, mark.last):
            return mark if end == mark.offset else None
        return None

    def sync_in_background(self) -> bool:
        """Make what is flushed so far durable, in a thread: ``durable`` moves to the index
        flushed now once its fsync returns. False (nothing started) while one is running."""
        if self._sync.busy:
            return False
        self.flush()
        point, fd = self.applied, self._file.fileno()

        def sync() -> None:
            try:
                os.fsync(fd)
            except OSError as e:  # the point stays where it was: compaction just waits
                log.error("%s: fsync failed (%s)", self.path, e)
                return
            self.durable = max(self.durable, point)

        self._sync.start(sync)
        return True

    def close(self) -> None:
        self._sync.wait()  # its fsync must not outlive the descriptor
        self._file.close()
