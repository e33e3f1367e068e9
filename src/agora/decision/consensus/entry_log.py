"""The replica's log in bounded memory: the latest entries in a list, the committed prefix before
them read back from storage when a lagging replica needs it.

Why: a replica used to hold every entry of the session in memory (~0.4 KB each with a 94-byte
payload, measured), so a decision log at 1,000 decisions/s grew by ~1.4 GB an hour. Normal
operation only touches the tail: entries after the applied point (the pipeline, deadline
verdicts, a view change's replacement), and the repair of a backup a little behind. So the replica
``forget``s applied entries from memory once enough accumulate, and ``log[i]`` / ``log[a:b]``
below the window go to :meth:`Storage.read_entries`, which every storage answers for the
entries it holds (committed entries never change, so the storage's copy is the log's).

Indices are 0-based here, as in a list: ``log[i]`` is entry ``i + 1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from agora.decision.consensus.messages import Entry
from agora.decision.consensus.storage import Storage

FORGET_MAX = 1_024
"""How many applied entries beyond its ``log_memory`` a replica lets accumulate before it lets
go of them (at most ``log_memory``; a PBFT replica: executed batches), so a loaded step frees
about this many, not ``log_memory``. Freeing 16,384 entries at once, as when the log kept
``log_memory`` to twice that, held each replica's step for 4.6-6.1 ms (in process, 94-byte
payloads): a stall on the commit path every 16,384 entries. 1,024 at a time take ~0.3 ms."""


class EntryLog:
    """Entries ``1..len(log)``; ``memory`` holds ``base + 1..len(log)``, storage the rest."""

    __slots__ = ("base", "memory", "storage")

    def __init__(self, storage: Storage, entries: Iterable[Entry] = (), base: int = 0) -> None:
        self.storage = storage
        self.memory: list[Entry] = list(entries)  # entries base + 1 ..
        self.base = base  # entries 1..base are in storage only

    def __len__(self) -> int:
        return self.base + len(self.memory)

    def __getitem__(self, key: int | slice):
        base = self.base
        if isinstance(key, slice):
            start, stop, step = key.indices(self.base + len(self.memory))
            if step != 1:
                raise ValueError("an EntryLog slice takes no step")
            if stop <= start:
                return []
            if start >= base:
                return self.memory[start - base : stop - base]
            head = self.storage.read_entries(start + 1, min(stop, base) - start)
            return head + self.memory[: max(0, stop - base)]
        if key < 0:
            key += base + len(self.memory)
        if key >= base:
            return self.memory[key - base]
        if key < 0:
            raise IndexError("EntryLog index out of range")
        return self.storage.read_entries(key + 1, 1)[0]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self[:])

    def __eq__(self, other: object) -> bool:
        """Equal to another log, list or tuple of the same entries (tests compare logs)."""
        if isinstance(other, EntryLog | list | tuple):
            return len(self) == len(other) and self[:] == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def extend(self, entries: Iterable[Entry]) -> None:
        self.memory.extend(entries)

    def truncate(self, length: int) -> None:
        """Keep entries ``1..length``; the ones to drop must still be in memory."""
        if length < self.base:
            raise ValueError(f"cannot cut the log at {length}: entries up to {self.base} are "
                             f"only in storage (committed entries are never cut)")
        del self.memory[length - self.base :]

    def recall(self, base: int) -> None:
        """Bring entries ``base + 1 .. self.base`` back from storage into memory."""
        if base < self.base:
            self.memory[:0] = self.storage.read_entries(base + 1, self.base - base)
            self.base = base

    def forget(self, upto: int) -> None:
        """Drop entries ``1..upto`` from memory (they must be committed and in storage)."""
        drop = min(upto, len(self)) - self.base
        if drop > 0:
            del self.memory[:drop]
            self.base += drop
