"""Simulated disks that lose what a crash would lose under each fsync policy.

The view record is always durable (as on a real disk, where it is fsynced on each write). Log
records are durable at once under ``always``; under ``batch`` after every ``batch_records``
records; under ``none`` only when the simulated operating system writes them back
(:meth:`SimStorage.writeback`, a random prefix at random times). A crash keeps a random prefix of
the records not yet durable (the OS may have written some) and loses the rest: suffix loss, never
a hole, the same failure model a framed append-only file with a CRC gives.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from agora.decision.consensus.messages import Entry
from agora.decision.consensus.storage import (
    CommitWrite,
    EntriesWrite,
    EntryCopy,
    FsyncPolicy,
    LogRecord,
    Stored,
    replay,
)


class SimStorage:
    def __init__(self, policy: FsyncPolicy, rng: random.Random, *, batch_records: int = 8) -> None:
        self.policy = FsyncPolicy(policy)
        self.rng = rng
        self.batch_records = max(1, batch_records)
        self.view: tuple[int, int] | None = None
        self.records: list[LogRecord] = []  # durable
        self.pending: list[LogRecord] = []  # written, not yet durable
        self.lost_records = 0
        self.entries = EntryCopy()  # the log of records + pending (what read_entries sees)

    @property
    def durable(self) -> bool:
        return self.policy is FsyncPolicy.ALWAYS

    def load(self, keep: int | None = None) -> Stored | None:
        if self.view is None:
            return None
        return replay(*self.view, self.records + self.pending, keep)

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
        self.lost_records += len(self.pending)
        self.pending.clear()
        self.entries = EntryCopy(replay(0, 0, self.records).entries)
