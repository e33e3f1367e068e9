"""Durable state of a Byzantine-mode replica, so a crash and restart does not make it a liar.

A PBFT replica that forgets what it voted may vote again differently (two prepares for one view
and sequence number) or send a view change whose P and Q sets omit a batch it prepared; either
is a Byzantine act, and f + 1 of them break safety. So each replica appends what it promised to
a log, and the transport writes the log out before it sends the step's messages
(``BftNode``): a vote is never on the wire before the record that remembers it.

Records, in the order the replica takes the steps:

* :class:`ViewRecord` ``(view)``: it began a view change to ``view`` (never act below it again);
* :class:`NewViewRecord` ``(new_view)``: it installed that view (the signed NewView, which it
  re-sends to replicas that missed it);
* :class:`SlotRecord` ``(view, seq, digest, batch)``: it pre-prepared (as primary) or accepted
  (and prepared, as backup) this batch at ``seq`` in ``view``: its Q set, and in that view the
  only digest it will ever vote for at ``seq``;
* :class:`PreparedRecord` ``(view, seq, digest, batch)``: it prepared the batch (its P set) and
  sent its Commit;
* :class:`ExecRecord` ``(seq, batch, elapsed)``: it executed the batch (the replicated log
  itself) and measured its deadline requests so (a restart re-sends the same timing);
* :class:`StableRecord` ``(seq, chain, proof)``: a checkpoint became stable (its proof of 2f + 1
  signed checkpoints is what its view changes carry).

Fsync policies (:class:`~agora.decision.consensus.storage.FsyncPolicy`): ``none`` writes the
records to the operating system before the sends (a process crash loses nothing; a power cut
may lose the tail, and with it this replica's honesty: it then counts as one of the f);
``always`` also fsyncs once per step before the sends (survives a power cut). ``batch`` is
refused: a vote that outlives its record is exactly what this module exists to prevent.

Files: frames with a CRC (``consensus.storage.frame``); on load a torn tail is cut and damage
before the end refused (:class:`StorageDamaged`). Every storage reads the batches of its
execution records back (``read_batches``: the file storage keeps where each starts, 8 bytes a
batch), so a replica keeps only its latest executed batches in memory (``executed.py``).
A load decodes the file a chunk at a time. Limitations: no compaction (the file grows with
every batch), and a restart replays every record (in bounded memory).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from agora.decision.bft.messages import ClientRequest, Sealed
from agora.decision.consensus.frames import FrameScan, frame, read_frame, torn_tail
from agora.decision.consensus.storage import FsyncPolicy


class ViewRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    view: int


class NewViewRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    view: int
    new_view: Sealed


class SlotRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    view: int
    seq: int
    digest: bytes
    batch: tuple[ClientRequest, ...]


class PreparedRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    view: int
    seq: int
    digest: bytes
    batch: tuple[ClientRequest, ...]


class ExecRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    seq: int
    batch: tuple[ClientRequest, ...]
    elapsed: tuple[int, ...] = ()  # its deadline measurement (``deadline.py``), resent as is


class StableRecord(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    seq: int
    chain: bytes
    proof: tuple[Sealed, ...]


BftRecord = ViewRecord | NewViewRecord | SlotRecord | PreparedRecord | ExecRecord | StableRecord
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BftRecord)
SCAN_CHUNK = 1 << 20  # bytes of the file a load decodes at a time


class BftStorage(Protocol):
    def append(self, record: BftRecord) -> None:
        """Remember ``record`` (in order); it must reach the disk before :meth:`flush` returns."""

    def flush(self) -> None:
        """Make every appended record as durable as the policy promises (before any send)."""

    def load(self) -> Iterable[BftRecord]:
        """Every record a previous incarnation appended (none for a new replica), in order."""

    def read_batches(self, first: int, count: int) -> list[tuple[ClientRequest, ...]]:
        """The batches of the execution records of sequence numbers ``first..first + count -
        1``, as appended so far (a replica reads back batches it no longer keeps in memory)."""


def executed_batches(records: list[BftRecord], first: int, count: int
                     ) -> list[tuple[ClientRequest, ...]]:
    """``read_batches`` over a list of records (the in-memory storage's)."""
    found = [r.batch for r in records
             if type(r) is ExecRecord and first <= r.seq < first + count]
    if len(found) != count:
        raise LookupError(f"batches {first}..{first + count - 1} asked for, "
                          f"{len(found)} of them stored")
    return found


class StorageDamaged(RuntimeError):
    """A record file is damaged before its end (not a torn last append)."""


class MemoryBftStorage:
    """For the simulator and tests: records survive a crash of the replica (the process), as
    they do under either policy once :meth:`flush` ran; :meth:`crash` drops what was appended
    but not flushed (a step cut short before its sends)."""

    def __init__(self) -> None:
        self.records: list[BftRecord] = []
        self.flushed = 0

    def append(self, record: BftRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        self.flushed = len(self.records)

    def load(self) -> list[BftRecord]:
        return list(self.records)

    def read_batches(self, first: int, count: int) -> list[tuple[ClientRequest, ...]]:
        return executed_batches(self.records, first, count)

    def crash(self) -> None:
        del self.records[self.flushed:]


class FileBftStorage:
    """``directory/bft.log``: append-only frames; see the module notes for the policies."""

    def __init__(self, directory: Path, policy: FsyncPolicy = FsyncPolicy.NONE) -> None:
        self.policy = FsyncPolicy(policy)
        if self.policy is FsyncPolicy.BATCH:
            raise ValueError("fsync policy 'batch' is unsafe for a Byzantine-mode replica (a "
                             "vote could outlive its record): use 'none' or 'always'")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "bft.log"
        self._file = open(self.path, "a+b")  # noqa: SIM115 - lives with the object
        self._dirty = False
        self._size = os.fstat(self._file.fileno()).st_size
        self._where = array("Q")  # batch k: where the frame of its execution record starts

    def append(self, record: BftRecord) -> None:
        data = frame(_encoder.encode(record))
        if type(record) is ExecRecord:
            self._locate(record.seq, self._size)
        self._file.write(data)
        self._size += len(data)
        self._dirty = True

    def _locate(self, seq: int, offset: int) -> None:
        if seq != len(self._where) + 1:
            raise StorageDamaged(f"{self.path}: execution record {seq} after "
                                 f"{len(self._where)}")
        self._where.append(offset)

    def read_batches(self, first: int, count: int) -> list[tuple[ClientRequest, ...]]:
        self._file.flush()  # appended records are in the file before it is read
        where = self._where
        if first < 1 or first + count - 1 > len(where):
            raise LookupError(f"batches {first}..{first + count - 1} asked for, "
                              f"{self.path} holds 1..{len(where)}")
        out = []
        fd = self._file.fileno()
        for seq in range(first, first + count):
            payload = read_frame(fd, where[seq - 1])
            record = None if payload is None else _decoder.decode(payload)
            if type(record) is not ExecRecord or record.seq != seq:
                raise LookupError(f"{self.path}: no execution record {seq} at byte "
                                  f"{where[seq - 1]}")
            out.append(record.batch)
        return out

    def flush(self) -> None:
        if not self._dirty:
            return
        self._file.flush()
        if self.policy is FsyncPolicy.ALWAYS:
            os.fsync(self._file.fileno())
        self._dirty = False

    def load(self) -> Iterator[BftRecord]:
        """The records, decoded a chunk of the file at a time as the caller takes them (a
        restart holds one chunk, not the whole file). At the end a torn tail (a crash
        mid-append: a frame cut short, or zeros the file system left) is cut; damage before
        the end raises :class:`StorageDamaged` once the records before it were taken, so the
        caller must not act on them until the iteration ends (a restart replays them without a
        send): dropping the records after it would make the replica forget votes it sent."""
        self.flush()
        del self._where[:]
        scan = FrameScan(self.path, _decoder, chunk=SCAN_CHUNK)
        for offset, record in scan:
            if type(record) is ExecRecord:
                self._locate(record.seq, offset)
            yield record  # type: ignore[misc]
        good = scan.end
        with open(self.path, "rb") as f:
            f.seek(good)
            rest = f.read()
        if rest:
            if not torn_tail(rest, 0):
                raise StorageDamaged(
                    f"{self.path}: damaged record at byte {good} of {good + len(rest)}; the "
                    "replica cannot trust its own votes: rejoin with an empty directory")
            self._file.truncate(good)  # later appends follow the last good frame
        self._size = good

    def close(self) -> None:
        self.flush()
        self._file.close()
