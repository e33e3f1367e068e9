"""A Byzantine-mode replica's restart: rebuild from its own records what it promised before.

The records (``storage.py``) are replayed in the order they were written, from the latest
restart snapshot the application has delivered (``snapshot.py``: the state a replay of the
records before it gives) if there is one; the state they give is the state the replica had when
it last sent anything:

* its view, and whether it had installed it (a NewView) or was changing to it;
* in that view, the batch it pre-prepared or prepared at each sequence number (so it never
  votes for another at the same one), its prepares and commits (so it does not count itself
  short), and its P and Q sets across views (so its next view change tells the truth);
* the executed log (the client table, the hash chain, the request indices) and the stable
  checkpoint with its proof.

What it does not keep: other replicas' votes, requests waiting to be ordered (clients retry),
checkpoint votes. It gets them again from its peers (Status -> retransmission or Fill) like a
replica that lost messages. A replica that restarts in the middle of a view change sends its
view change for that view again (its content is still true).

``applied_index`` is the application's durable point: the restart emits ``Committed`` for the
requests after it only (the committed record already holds the earlier ones). A storage that
knows fewer requests than the application applied lost writes it promised to keep: the replica
refuses to start (:class:`StorageBehind`), it could otherwise vote against its own past.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agora.decision.bft.core import Phase, Stable
from agora.decision.bft.messages import PEntry
from agora.decision.bft.storage import (
    BftRecord,
    ExecRecord,
    NewViewRecord,
    PreparedRecord,
    SlotRecord,
    SnapshotRecord,
    StableRecord,
    ViewRecord,
)
from agora.decision.consensus.messages import Committed, Outbox

if TYPE_CHECKING:
    from agora.decision.bft.replica import BftReplica


class StorageBehind(RuntimeError):
    """The replica's records end before the point its application already applied."""


class DurableState:
    """The replica's side of its storage (a mixin of ``BftReplica``, whose state it uses)."""

    def _store(self: BftReplica, record: BftRecord) -> None:
        if self.storage is not None and not self.restoring:
            self.storage.append(record)

    def _recover(self: BftReplica, now: int) -> list[Outbox]:
        """At start: replay the records; the ``Committed`` after the application's point, and
        a view change still under way, resent."""
        if self.storage is None:
            return []
        done: list[Outbox] = []
        replayed = 0
        self.restoring = True
        # a snapshot only if the application delivered that far: the requests it does not
        # hold yet are emitted again from the records after the snapshot (a canary replica,
        # which may lie about its own past, replays everything)
        upto = self.applied_index if self.checks else -1
        try:
            # nothing is sent until the last record is replayed
            for record in self.storage.load(snapshot_max=upto):
                if type(record) is SnapshotRecord:  # the first, if any
                    self._restore(record, now)
                    self.stats.started_from = record.executed
                else:
                    self._replay(record, now, done)
                replayed += 1
        finally:
            self.restoring = False
        if self.request_index < self.applied_index:
            raise StorageBehind(
                f"bft replica {self.me}: its records hold {self.request_index} requests, its "
                f"application applied {self.applied_index}: the storage lost writes (a power "
                "cut under fsync 'none'?); rejoin with an empty directory instead")
        out: list[Outbox] = [item for item in done if isinstance(item, Committed)
                             and item.index > self.applied_index]
        if replayed:
            self.stats.recoveries += 1
        if self.phase is Phase.VIEW_CHANGE:
            self._start_view_change(self.view, now, out)
        return out

    def _replay(self: BftReplica, record: BftRecord, now: int, done: list[Outbox]) -> None:
        match record:
            case ViewRecord(view=view):
                self._enter(view, Phase.VIEW_CHANGE)
            case NewViewRecord(view=view, new_view=sealed):
                self._enter(view, Phase.NORMAL)
                self.new_view = sealed
                # the view numbers from its checkpoint on: its re-proposals (the slot records
                # that follow) and a stable record raise it, as installing the view did; the
                # old view's slots past the new view's last choice stay unused
                self.next_seq = self.stable.seq + 1
            case SlotRecord(view=view, seq=seq, digest=d, batch=batch):
                q = self.qset.setdefault(seq, {})
                q[d] = max(q.get(d, -1), view)
                if view == self.view:
                    self.slots[seq] = (d, batch)
                    self.slot_ns[seq] = now
                    self._mark_assigned(batch)
                    self.next_seq = max(self.next_seq, seq + 1)
                    if not self.is_primary:
                        self.prepares.setdefault((seq, d), set()).add(self.me)
            case PreparedRecord(view=view, seq=seq, digest=d, batch=batch):
                self.pset[seq] = PEntry(seq, view, d, batch)
                if view == self.view:
                    self.commit_sent.add(seq)
                    self.commits.setdefault((seq, d), set()).add(self.me)
            case ExecRecord(seq=seq, batch=batch, elapsed=elapsed):
                self._check(seq == self.executed + 1, f"stored execution {seq} out of order")
                self.committed.pop(seq, None)
                self._apply(batch, done, elapsed)
            case StableRecord(seq=seq, chain=chain, proof=proof):
                if seq > self.stable.seq:
                    self._keep_stable(Stable(seq, chain, proof))
                    self._prune(seq)
