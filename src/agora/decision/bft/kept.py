"""The stable checkpoints a PBFT replica keeps for Fills, in bounded memory.

A replica keeps the proof of a stable checkpoint every half a Fill (``fill_max / 2`` batches) so
that a peer far behind can be filled a stable checkpoint at a time (``replica.py``): one
2f + 1-signature proof per 128 batches for the whole session, ~460 bytes on disk at n = 4 and
about 1 KB as Python objects. A replica with a storage holds the sequence numbers of all of them
(8 bytes each, what a Fill searches) and the proofs of the latest ``keep`` to ``2 * keep``;
older proofs are read back by sequence number from the storage, which appends each one as it is
kept (``BftStorage.keep_stable``).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right

from agora.decision.bft.core import Stable
from agora.decision.bft.storage import BftStorage


class KeptStables:
    """Kept stable checkpoints ``0..len - 1`` in sequence order; memory holds ``base..``."""

    __slots__ = ("base", "keep", "recent", "seqs", "storage")

    def __init__(self, storage: BftStorage | None, keep: int) -> None:
        self.storage = storage
        self.keep = keep
        self.seqs = array("Q")
        self.recent: list[Stable] = []
        self.base = 0

    def __len__(self) -> int:
        return len(self.seqs)

    def append(self, stable: Stable) -> None:
        self.seqs.append(stable.seq)
        self.recent.append(stable)
        if self.storage is not None and len(self.recent) >= 2 * self.keep:
            drop = len(self.recent) - self.keep
            del self.recent[:drop]
            self.base += drop

    def __getitem__(self, k: int) -> Stable | None:
        """Number ``k``; None if the storage lost it (a power cut: Fills then go further)."""
        if k >= self.base:
            return self.recent[k - self.base]
        assert self.storage is not None  # only a replica with a storage forgets proofs
        return self.storage.kept_stable(self.seqs[k])

    def last_seq(self) -> int:
        """The sequence number of the latest kept (-1: none yet)."""
        return self.seqs[-1] if self.seqs else -1

    def within(self, behind: int, reach: int, executed: int) -> Stable | None:
        """The furthest kept past ``behind`` and at most ``reach`` (the nearest past it if none
        is that close), among those at most ``executed`` (None: none, or its proof lost)."""
        seqs = self.seqs
        k = bisect_right(seqs, min(reach, executed)) - 1
        if k < 0 or seqs[k] <= behind:
            k = bisect_right(seqs, behind)
            if k == len(seqs) or seqs[k] > executed:
                return None
        return self[k]
