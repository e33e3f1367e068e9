"""A replica's committed record: every ``Committed`` output it emitted, in order, per incarnation.

The record is the checker's oracle in the real-process tests and the embedding application's hook
(``replica_main``): a length-prefixed msgpack stream, flushed to the OS before a replica tells a
client of a commit, so it survives SIGKILL (not a power cut: it is not the durable log, which is
``consensus.storage``). A torn last frame of a killed writer is cut on open.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import msgspec

from agora.decision.consensus.messages import Committed


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


_LEN = struct.Struct("<I")
_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(Record)


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


def read_records(path: Path) -> list[Record]:
    """Every whole record in ``path`` (a torn last frame of a live or killed writer is skipped)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return [record for record, _ in _scan(data)]


class Recorder:
    """Appends records; on open, cuts a torn tail and finds the durable point and incarnation."""

    def __init__(self, path: Path, replica: int) -> None:
        self.path = Path(path)
        self.replica = replica
        self.applied = 0
        self.incarnation = 0
        good = 0
        if self.path.exists():
            for record, end in _scan(self.path.read_bytes()):
                good = end
                self.incarnation = record.incarnation + 1
                self.applied = record.item.index if record.item is not None else record.applied
        self._file = open(self.path, "ab")  # noqa: SIM115 - lives with the recorder
        self._file.truncate(good)

    def start(self, now_ns: int) -> None:
        self._write(Record(self.replica, self.incarnation, now_ns, self.applied, None))
        self.flush()

    def committed(self, item: Committed, now_ns: int) -> None:
        self._write(Record(self.replica, self.incarnation, now_ns, 0, item))
        self.applied = item.index

    def _write(self, record: Record) -> None:
        payload = _record_encoder.encode(record)
        self._file.write(_LEN.pack(len(payload)) + payload)

    def flush(self) -> None:
        """To the OS (survives SIGKILL, not a power cut): the test oracle, not a durable log."""
        self._file.flush()

    def close(self) -> None:
        self._file.close()
