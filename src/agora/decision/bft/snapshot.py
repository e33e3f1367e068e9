"""Restart snapshots of a Byzantine-mode replica, so a restart does not replay the session.

A restart rebuilds its state by replaying every record it wrote (``durable.py``): ~23 us a
request on the benchmark machine, so a session of millions of requests would take minutes to
come back. Every ``snapshot_every`` executed batches or requests, at the end of a step (when
every change of the step has its record), the replica appends a :class:`SnapshotRecord`: the
state a replay of every record before it gives. A restart whose application has delivered that
far starts from the latest such snapshot its storage offers and replays only the records after it.

"What a replay gives" is narrower than the live state, and the snapshot holds exactly that, so
that a restart from it behaves as a restart that replayed everything (``agora sim`` gives
identical traces with a snapshot after every batch and with none):

* the next sequence number a primary would use: past every slot of the view, also on a
  backup (which never uses it);
* votes: only its own (a backup's prepare for each slot of the view, its commit for each
  prepared one), not its peers';
* nothing that replay leaves empty: requests waiting, timings, first-seen times, committed
  batches not executed yet, checkpoint votes, view changes gathered;
* slot times and undecided batches' timers restart at the restart's clock;
* the primary's "already proposed" marks: those of the view's slots not executed yet (replay
  also keeps marks of requests executed already, which nothing reads);
* executed batches: only the chain and the stable checkpoint are in the snapshot; a restart
  reads the batches after the stable checkpoint back from storage (the few a Fill, a new view or
  a checkpoint check may still ask about) and checks they chain to the snapshot's value.

The stable checkpoints a replica keeps for Fills to peers far behind (one 2f + 1-signature proof
per ``fill_max / 2`` batches, ~460 bytes each on disk at n = 4) grow with the session, so they
are not in the snapshot: the storage appends each as it is kept (``keep_stable``) and a
restart reads back those up to the snapshot's stable checkpoint (``kept_stables``); the replica
holds only the latest in memory (``kept.py``). The snapshot grows with the client table only.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from agora.decision.bft.core import Phase
from agora.decision.bft.deadline import Held, Undecided
from agora.decision.bft.messages import chain_next, digest
from agora.decision.bft.storage import SnapshotRecord

if TYPE_CHECKING:
    from agora.decision.bft.replica import BftReplica


class SnapshotMismatch(RuntimeError):
    """A snapshot's executed batches, read back from storage, do not chain to its value."""


class Snapshots:
    """The replica's side of its snapshots (a mixin of ``BftReplica``, whose state it uses)."""

    snapshot_at: tuple[int, int] = (0, 0)  # (executed, request_index) of the last snapshot

    def _snapshot_due(self: BftReplica) -> None:
        """At the end of a step: append a snapshot if ``snapshot_every`` batches or requests
        executed since the last one."""
        every = self.config.snapshot_every
        if not every or self.storage is None:
            return
        batches, requests = self.snapshot_at
        if self.executed - batches >= every or self.request_index - requests >= every:
            self.storage.append(self._snapshot())
            self.snapshot_at = (self.executed, self.request_index)
            self.stats.snapshots += 1

    def _snapshot(self: BftReplica) -> SnapshotRecord:
        slots = tuple((seq, d, batch) for seq, (d, batch) in sorted(self.slots.items()))
        # a replay numbers past every slot of the view, a backup's too (it never proposes)
        next_seq = max(self.next_seq, slots[-1][0] + 1 if slots else 0)
        return SnapshotRecord(
            self.view, self.phase is Phase.NORMAL, self.new_view, next_seq, slots,
            tuple(self.pset[seq] for seq in sorted(self.pset)),
            tuple((seq, d, view) for seq, ds in sorted(self.qset.items())
                  for d, view in ds.items()),
            tuple(sorted(self.commit_sent)), self.executed, self.chain, self.request_index,
            self.delivered,
            tuple((c, number, index, abandoned)
                  for c, (number, index, abandoned) in self.clients.items()),
            tuple((h.index, h.request, h.abandoned) for h in self.held),
            tuple((seq, u.elapsed, tuple(h.index for h in u.held))
                  for seq, u in self.undecided.items()),
            self.stable,
            (self.stats.committed, self.stats.deadline_total, self.stats.deadline_abandoned))

    def _restore(self: BftReplica, snap: SnapshotRecord, now: int) -> None:
        """Take the state of ``snap`` (the first record of a restart's load), as a replay of
        the records before it would have left it."""
        self._enter(snap.view, Phase.NORMAL if snap.normal else Phase.VIEW_CHANGE)
        self.new_view = snap.new_view
        self.next_seq = snap.next_seq
        primary = self.is_primary
        for seq, d, batch in snap.slots:
            self.slots[seq] = (d, batch)
            self.slot_ns[seq] = now
            if not primary:
                self.prepares[(seq, d)] = {self.me}
            if seq > snap.executed:
                self._mark_assigned(batch)
        for entry in snap.pset:
            self.pset[entry.seq] = entry
        for seq, d, view in snap.qset:
            self.qset.setdefault(seq, {})[d] = view
        for seq in snap.commit_sent:
            self.commit_sent.add(seq)
            self.commits[(seq, self.pset[seq].digest)] = {self.me}
        self.executed, self.chain = snap.executed, snap.chain
        self.request_index, self.delivered = snap.request_index, snap.delivered
        self.clients = {c: (number, index, abandoned)
                        for c, number, index, abandoned in snap.clients}
        held = {index: Held(index, request, abandoned) for index, request, abandoned in snap.held}
        self.held = deque(held.values())
        self.undecided = {seq: Undecided([held[i] for i in indices], now, elapsed)
                          for seq, elapsed, indices in snap.undecided}
        self.stable = snap.stable
        for stable in self.storage.kept_stables(snap.stable.seq) if self.storage else ():
            self.stables.append(stable)  # (those kept after the snapshot: by the replay)
        (self.stats.committed, self.stats.deadline_total,
         self.stats.deadline_abandoned) = snap.counters
        self._restore_log(snap)
        self.snapshot_at = (snap.executed, snap.request_index)

    def _restore_log(self: BftReplica, snap: SnapshotRecord) -> None:
        """The executed batches after the stable checkpoint, read back and chained from it."""
        base = min(self.stable.seq, snap.executed)
        chain = self.stable.chain if base == self.stable.seq else snap.chain
        batches = self.storage.read_batches(base + 1, snap.executed - base) if (
            self.storage is not None and snap.executed > base) else []
        digests, chains = [], [chain]
        for batch in batches:
            digests.append(digest(batch))
            chains.append(chain_next(chains[-1], digests[-1]))
        if chains[-1] != snap.chain:
            raise SnapshotMismatch(
                f"bft replica {self.me}: the executed batches {base + 1}..{snap.executed} in "
                "storage do not chain to the snapshot's value")
        self.log.restore(base, batches, digests, chains)
