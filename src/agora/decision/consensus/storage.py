"""Durable replica state: the log, the commit number, and the view vote.

Two streams with different guarantees:

* The **view record** ``(view, log_view)`` is a vote: once a replica has said "I am in view v" it
  must never act in a lower view, even after a crash. It is always synced before the write
  returns, whatever the fsync policy (view changes are rare, so this costs one fsync each).
* The **log stream** is an ordered sequence of records: "entries from index i on" (which truncates
  anything after ``i - 1``) and "commit number c". Its fsync policy is configurable
  (:class:`FsyncPolicy`): ``always`` syncs each record before returning, ``batch`` every
  ``batch_records`` records, ``none`` leaves it in the process's write buffer (written out when
  the buffer fills, at a sync and at close: no system call per record on the commit path). A
  crash may lose an unsynced *suffix* of the stream, never a record in the middle (the file is
  append-only and framed with a CRC, so a torn tail is detected and cut); with ``none`` even a
  crash of the process alone may, which costs nothing more: a non-durable replica runs VR's
  recovery protocol on every restart and trusts only its stored commit prefix.

Invariants the replica relies on: a commit record is written after the entries it covers, so a
surviving commit number implies surviving entries up to it; the replica never truncates at or
below its commit number. ``durable`` is True only for ``always``: then every acknowledgement the
replica sent is on disk and a restart may trust the stored log; otherwise the replica runs the
recovery protocol (see ``replica.py``).

Every storage also reads entries back (``read_entries``): a replica keeps only the latest entries
in memory (``entry_log.py``) and asks its storage for older committed ones when a lagging replica
needs them. A restart is bounded the same way: ``load(keep)`` returns only the last ``keep``
committed entries and what follows them (``Stored.base`` says where they start), and the replica
reads the entries before the base back a chunk at a time to apply them.

Checkpoints (``checkpoint.py``): every storage keeps the newest client table the replica hands
it, once the records before it are durable; ``load(checkpoint_max=...)`` returns it.
Compaction (``compact``, ``core.py``): entries up to a durable checkpoint that nobody will ask
for again are released, and reading them is an error from then on.

Here: the interface (:class:`Storage`), the record stream and its replay, and the in-memory
storage of tests and demos; the file storage of real replicas is ``file_storage.py``, the
simulator's ``agora.decision.sim.storage``.
"""


from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Protocol

import msgspec

from agora.decision.consensus.checkpoint import Checkpoint
from agora.decision.consensus.messages import Entry


class FsyncPolicy(enum.StrEnum):
    NONE = "none"
    BATCH = "batch"
    ALWAYS = "always"


class Stored(msgspec.Struct, frozen=True):
    """What a restarting replica finds on disk: the log's entries from ``base + 1`` on (``load``
    with a ``keep`` leaves the committed ones before them in storage, for ``read_entries``), and
    the newest checkpoint the load was allowed to use (``checkpoint.py``)."""

    view: int
    log_view: int
    commit: int
    entries: list[Entry]
    base: int = 0
    checkpoint: Checkpoint | None = None


class EntriesWrite(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    """Log record: keep entries ``1..start-1``, then these."""

    start: int
    entries: tuple[Entry, ...]


class CommitWrite(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    commit: int


LogRecord = EntriesWrite | CommitWrite


class Storage(Protocol):
    """What a :class:`~agora.decision.consensus.replica.Replica` needs from its disk."""

    @property
    def durable(self) -> bool:
        """True when every write is synced before it returns (the ``always`` policy)."""
        ...

    def load(self, keep: int | None = None, checkpoint_max: int = -1) -> Stored | None:
        """The surviving state, or None if this replica never started. With ``keep``, every
        committed entry but the last ``keep`` stays in storage (``Stored.base``): a restart
        then holds a bounded part of its log, not all of it. The newest checkpoint comes
        with it if its index is at most ``checkpoint_max`` (the caller can start there)."""
        ...

    def write_entries(self, start: int, entries: Sequence[Entry]) -> None: ...

    def write_commit(self, commit: int) -> None: ...

    def read_entries(self, first: int, count: int) -> list[Entry]:
        """Entries ``first..first + count - 1`` of the log as written so far (a running
        replica reads back committed entries it no longer keeps in memory; see entry_log)."""
        ...

    def write_view(self, view: int, log_view: int) -> None:
        """Always synced before returning."""
        ...

    def write_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` (it owns its client table) once every record written so far is
        durable; it replaces the previous one. Best effort: see ``checkpoint.py``."""
        ...

    def drain(self) -> None:
        """Write out records held back for after the step (the transport calls it once the
        step's messages are sent; see :class:`FileStorage`)."""
        ...

    @property
    def kept_checkpoint(self) -> int:
        """The index of the newest checkpoint that would survive a crash now (0: none)."""
        ...

    @property
    def compacted(self) -> int:
        """Entries ``1..compacted`` are released (``compact``): reading them is an error."""
        ...

    def compact(self, upto: int) -> None:
        """Release entries ``1..upto`` for good (``upto <= kept_checkpoint``): nobody, this
        replica's restart included, will read them again (see ``core.py``)."""
        ...


def replay(view: int, log_view: int, records: Iterable[LogRecord],
           keep: int | None = None, checkpoint: Checkpoint | None = None) -> Stored:
    """Rebuild the state a record stream describes (shared by the in-memory storages);
    ``keep``: as :meth:`Storage.load`'s; ``checkpoint``: one the caller may use."""
    log: list[Entry] = []
    commit = 0
    for record in records:
        if isinstance(record, EntriesWrite):
            if record.start - 1 > len(log):
                break  # a gap: cannot happen with suffix-only loss; stop trusting the stream
            del log[record.start - 1 :]
            log.extend(record.entries)
        else:
            commit = max(commit, record.commit)
    commit = min(commit, len(log))
    base = stored_base(commit, keep, checkpoint)
    return Stored(view=view, log_view=log_view, commit=commit, entries=log[base:], base=base,
                  checkpoint=checkpoint)


def usable(checkpoint: Checkpoint | None, checkpoint_max: int) -> Checkpoint | None:
    """``checkpoint`` if a load may return it (see :meth:`Storage.load`)."""
    return checkpoint if checkpoint is not None and checkpoint.index <= checkpoint_max else None


def stored_base(commit: int, keep: int | None, checkpoint: Checkpoint | None = None) -> int:
    """How many leading committed entries ``load(keep)`` leaves in storage: all but the last
    ``keep``, and at least those a checkpoint the load returns covers (nobody applies them)."""
    if keep is None:
        return 0
    return max(0, commit - keep, checkpoint.index if checkpoint is not None else 0)


class EntryCopy:
    """The log the records written so far describe, as a list: the in-memory storages' answer
    to ``read_entries`` (they are the disk; a file storage reads its file instead). Entries
    ``1..compacted`` are gone from it: a read of one is an error, as on a compacted file."""

    def __init__(self, entries: Iterable[Entry] = (), compacted: int = 0) -> None:
        self.entries = list(entries)[compacted:]
        self.compacted = compacted

    def write(self, start: int, entries: Sequence[Entry]) -> None:
        if start <= self.compacted:
            raise ValueError(f"entries from {start} written; 1..{self.compacted} are compacted")
        del self.entries[start - 1 - self.compacted :]
        self.entries.extend(entries)

    def read(self, first: int, count: int) -> list[Entry]:
        if first <= self.compacted:
            raise LookupError(f"entry {first} asked for; entries 1..{self.compacted} were "
                              f"compacted")
        end = self.compacted + len(self.entries)
        if first + count - 1 > end:
            raise LookupError(f"entries {first}..{first + count - 1} asked for, the storage "
                              f"holds 1..{end}")
        return self.entries[first - 1 - self.compacted : first - 1 - self.compacted + count]

    def compact(self, upto: int) -> None:
        if upto > self.compacted:
            del self.entries[: upto - self.compacted]
            self.compacted = upto


def check_compaction(upto: int, kept_checkpoint: int) -> None:
    """What every storage refuses: releasing entries no durable checkpoint covers."""
    if upto > kept_checkpoint:
        raise ValueError(f"cannot compact entries up to {upto}: the newest durable checkpoint "
                         f"is at {kept_checkpoint}")


class CopyCompaction:
    """Compaction for a storage whose ``entries`` is an :class:`EntryCopy` and whose
    ``checkpoint`` is its durable one (the in-memory storage and the simulator's): reads of
    entries ``1..upto`` fail from then on, after a crash too (a file storage persists its
    compaction point before it frees anything); ``load`` still replays every record, which
    such a storage keeps."""

    checkpoint: Checkpoint | None
    entries: EntryCopy

    @property
    def kept_checkpoint(self) -> int:
        return self.checkpoint.index if self.checkpoint is not None else 0

    @property
    def compacted(self) -> int:
        return self.entries.compacted

    def compact(self, upto: int) -> None:
        check_compaction(upto, self.kept_checkpoint)
        self.entries.compact(upto)


class MemoryStorage(CopyCompaction):
    """A storage that never loses anything: for unit tests and single-process demos."""

    def __init__(self) -> None:
        self.view: tuple[int, int] | None = None
        self.records: list[LogRecord] = []
        self.entries = EntryCopy()
        self.checkpoint: Checkpoint | None = None

    @property
    def durable(self) -> bool:
        return True

    def load(self, keep: int | None = None, checkpoint_max: int = -1) -> Stored | None:
        if self.view is None:
            return None
        return replay(*self.view, self.records, keep, usable(self.checkpoint, checkpoint_max))

    def write_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint

    def write_entries(self, start: int, entries: Sequence[Entry]) -> None:
        self.records.append(EntriesWrite(start, tuple(entries)))
        self.entries.write(start, entries)

    def write_commit(self, commit: int) -> None:
        self.records.append(CommitWrite(commit))

    def read_entries(self, first: int, count: int) -> list[Entry]:
        return self.entries.read(first, count)

    def write_view(self, view: int, log_view: int) -> None:
        self.view = (view, log_view)

    def drain(self) -> None:
        """Nothing is held back."""



