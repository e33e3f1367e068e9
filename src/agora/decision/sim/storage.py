"""Simulated disks that lose what a crash would lose under each fsync policy.

The view record is always durable (as on a real disk, where it is fsynced on each write). Log
records are durable at once under ``always``; under ``batch`` after every ``batch_records``
records; under ``none`` only when the simulated operating system writes them back
(:meth:`SimStorage.writeback`, a random prefix at random times). A crash keeps a random prefix of
the records not yet durable (the OS may have written some) and loses the rest: suffix loss, never
a hole, the same failure model a framed append-only file with a CRC gives.

A checkpoint (``consensus/checkpoint.py``) survives a crash only if every record written before
it did: the file storage fsyncs its log before it writes one. Here it waits, without forcing
anything durable, until the records before it are (a conservative model of that background
fsync, which in a real file storage also makes those records durable sooner).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from agora.decision.consensus.checkpoint import Checkpoint
from agora.decision.consensus.messages import Entry
from agora.decision.consensus.storage import (
    CommitWrite,
    CopyCompaction,
    EntriesWrite,
    EntryCopy,
    FsyncPolicy,
    LogRecord,
    Stored,
    replay,
    usable,
)


class SimStorage(CopyCompaction):  # kept_checkpoint: the durable one
    def __init__(self, policy: FsyncPolicy, rng: random.Random, *, batch_records: int = 8) -> None:
        self.policy = FsyncPolicy(policy)
        self.rng = rng
        self.batch_records = max(1, batch_records)
        self.view: tuple[int, int] | None = None
        self.records: list[LogRecord] = []  # durable
        self.pending: list[LogRecord] = []  # written, not yet durable
        self.lost_records = 0
        self.entries = EntryCopy()  # the log of records + pending (what read_entries sees)
        self.checkpoint: Checkpoint | None = None  # durable
        self.checkpoint_pending: tuple[int, Checkpoint] | None = None  # (records before it, it)

    @property
    def durable(self) -> bool:
        return self.policy is FsyncPolicy.ALWAYS

    def load(self, keep: int | None = None, checkpoint_max: int = -1) -> Stored | None:
        if self.view is None:
            return None
        self._settle_checkpoint()
        return replay(*self.view, self.records + self.pending, keep,
                      usable(self.checkpoint, checkpoint_max))

    def write_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoint_pending = (len(self.records) + len(self.pending), checkpoint)
        self._settle_checkpoint()

    def _settle_checkpoint(self) -> None:
        """The pending checkpoint becomes durable once the records before it are."""
        if self.checkpoint_pending is not None and self.checkpoint_pending[0] <= len(self.records):
            self.checkpoint = self.checkpoint_pending[1]
            self.checkpoint_pending = None

    def write_entries(self, start: int, entries: Sequence[Entry]) -> None:
        self._write(EntriesWrite(start, tuple(entries)))
        self.entries.write(start, entries)

    def read_entries(self, first: int, count: int) -> list[Entry]:
        return self.entries.read(first, count)

    def write_commit(self, commit: int) -> None:
        self._write(CommitWrite(commit))

    def write_view(self, view: int, log_view: int) -> None:
        self.view = (view, log_view)

    def drain(self) -> None:
        """Nothing is held back (the simulated buffer is modelled by ``writeback``)."""

    def _write(self, record: LogRecord) -> None:
        if self.policy is FsyncPolicy.ALWAYS:
            self.records.append(record)
            return
        self.pending.append(record)
        if self.policy is FsyncPolicy.BATCH and len(self.pending) >= self.batch_records:
            self.sync()

    def sync(self) -> None:
        self.records.extend(self.pending)
        self.pending.clear()

    def writeback(self) -> None:
        """The OS writes some of the oldest dirty records."""
        if self.pending:
            keep = self.rng.randint(0, len(self.pending))
            self.records.extend(self.pending[:keep])
            del self.pending[:keep]

    def crash(self, *, survive: int | None = None) -> None:
        """Power loss: a prefix of the unsynced records survives (``survive`` of them, or a
        random number)."""
        if survive is None:
            self.writeback()
        else:
            self.records.extend(self.pending[:survive])
            del self.pending[:survive]
        self._settle_checkpoint()
        self.checkpoint_pending = None  # its records did not all survive: it is lost
        self.lost_records += len(self.pending)
        self.pending.clear()
        self.entries = EntryCopy(replay(0, 0, self.records).entries, self.entries.compacted)
