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
before the end refused (:class:`StorageDamaged`). Limitation: no
compaction (like the executed log in memory, the file grows with every batch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import msgspec

from agora.decision.bft.messages import ClientRequest, Sealed
from agora.decision.consensus.frames import frame, read_frames, torn_tail
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


class BftStorage(Protocol):
    def append(self, record: BftRecord) -> None:
        """Remember ``record`` (in order); it must reach the disk before :meth:`flush` returns."""

    def flush(self) -> None:
        """Make every appended record as durable as the policy promises (before any send)."""

    def load(self) -> list[BftRecord]:
        """Every record a previous incarnation appended (empty for a new replica)."""


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
        self._file = open(self.path, "ab")  # noqa: SIM115 - lives with the object
        self._dirty = False

    def append(self, record: BftRecord) -> None:
        self._file.write(frame(_encoder.encode(record)))
        self._dirty = True

    def flush(self) -> None:
        if not self._dirty:
            return
        self._file.flush()
        if self.policy is FsyncPolicy.ALWAYS:
            os.fsync(self._file.fileno())
        self._dirty = False

    def load(self) -> list[BftRecord]:
        """The records; a torn tail (a crash mid-append: a frame cut short, or zeros the file
        system left) is cut, damage before the end raises :class:`StorageDamaged`: dropping
        the records after it would make the replica forget votes it sent."""
        self.flush()
        data = self.path.read_bytes()
        records, good = read_frames(data, _decoder)
        if good < len(data):
            if not torn_tail(data, good):
                raise StorageDamaged(
                    f"{self.path}: damaged record at byte {good} of {len(data)}; the replica "
                    "cannot trust its own votes: rejoin with an empty directory")
            self._file.truncate(good)  # later appends follow the last good frame
        return records

    def close(self) -> None:
        self.flush()
        self._file.close()
