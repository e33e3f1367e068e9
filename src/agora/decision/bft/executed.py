"""The executed batches of a PBFT replica in bounded memory.

A replica used to keep every batch it executed, with its digest and the hash chain after it, for
the whole session (~1.1 KB per request per replica, measured with tracemalloc): a replica at
1,000 decisions/s grew by ~4 GB an hour. Only two things read them: the latest digests and chain
values (a checkpoint becoming stable, a new view's re-proposals, a Fill's candidate checkpoints:
all within the watermark window of the stable checkpoint) and a Fill to a peer behind, which
may reach back to any batch. So a replica with a storage keeps the latest ``keep`` to
``keep + min(keep, FORGET_MAX)`` of them in memory (letting go of the rest a bounded number at
a time) and reads older batches back from its storage's execution
records (``BftStorage.read_batches``); older digests and chain values are not kept at all (a
lookup of one answers None, and the checks that make it skip).

A replica without a storage keeps everything (it has nowhere to read back from).
"""

from __future__ import annotations

from agora.decision.bft.messages import ZERO_CHAIN, ClientRequest
from agora.decision.bft.storage import BftStorage
from agora.decision.consensus.entry_log import FORGET_MAX

Batch = tuple[ClientRequest, ...]


class ExecutedLog:
    """Batches ``1..executed``; memory holds ``base + 1..executed``, storage all of them."""

    __slots__ = ("base", "batches", "chains", "digests", "keep", "storage")

    def __init__(self, storage: BftStorage | None, keep: int) -> None:
        self.storage = storage
        self.keep = keep
        self.base = 0
        self.batches: list[Batch] = []  # seq base + 1 ..
        self.digests: list[bytes] = []  # their digests
        self.chains: list[bytes] = [ZERO_CHAIN]  # the chain after seq base + k, at index k

    @property
    def executed(self) -> int:
        return self.base + len(self.batches)

    def append(self, batch: Batch, batch_digest: bytes, chain: bytes) -> None:
        self.batches.append(batch)
        self.digests.append(batch_digest)
        self.chains.append(chain)
        if self.storage is not None and len(self.batches) >= self.keep + min(self.keep,
                                                                             FORGET_MAX):
            drop = len(self.batches) - self.keep
            del self.batches[:drop], self.digests[:drop], self.chains[:drop]
            self.base += drop

    def restore(self, base: int, batches: list[Batch], digests: list[bytes],
                chains: list[bytes]) -> None:
        """Hold batches ``base + 1..`` (a restart from a snapshot); ``chains[0]``: the chain
        after ``base``."""
        self.base, self.batches, self.digests, self.chains = base, batches, digests, chains

    def chain_at(self, seq: int) -> bytes | None:
        """The chain after batch ``seq`` (0: before any), if still in memory."""
        k = seq - self.base
        return self.chains[k] if 0 <= k < len(self.chains) else None

    def digest_at(self, seq: int) -> bytes | None:
        k = seq - self.base - 1
        return self.digests[k] if 0 <= k < len(self.digests) else None

    def range(self, first: int, last: int) -> list[Batch]:
        """Batches ``first..last`` (executed), the older ones read back from storage."""
        if not 1 <= first <= last + 1 or last > self.executed:
            raise LookupError(f"batches {first}..{last} asked for, {self.executed} executed")
        head: list[Batch] = []
        if first <= self.base:
            assert self.storage is not None  # only a replica with a storage forgets batches
            upto = min(last, self.base)
            head = self.storage.read_batches(first, upto - first + 1)
            first = upto + 1
        return head + self.batches[first - self.base - 1 : last - self.base]
