"""Catching up: what a replica does with a peer's Status, and state transfer.

A mixin of ``BftReplica`` (whose state it uses). A peer's Status says where it is: a peer in an
older view gets our NewView, one in our view the votes it may have lost (``_retransmit``), one
behind us a Fill of executed batches up to a checkpoint that proves them (``_send_fill``); a
Fill received is checked against its proof and applied (``_on_fill``). Which Status messages
count at all, and for what: ``suspicion.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agora.decision.bft.core import Phase, Stable
from agora.decision.bft.messages import (
    Commit,
    Fill,
    Inner,
    Prepare,
    PrePrepare,
    Status,
    chain_next,
    digest,
)
from agora.decision.consensus.messages import Outbox, Send

if TYPE_CHECKING:
    from agora.decision.bft.replica import BftReplica


class CatchUp:
    """The replica's Status answers, retransmissions and state transfer (see the module
    notes)."""

    def _on_status(self: BftReplica, m: Status, now: int, out: list[Outbox]) -> None:
        if not self._latest_status(m):
            self.stats.dropped_stale += 1
            return
        if not self._names_our_boot(m):  # maybe made before our restart: only answered
            self.stats.unconfirmed_status += 1
        else:
            self._note_suspicion(m, now, out)
            if m.view == self.view and self.phase is Phase.NORMAL:
                self.peers_executed[m.replica] = m.executed
            else:  # it is not (or no longer) in our view: its progress says nothing about it
                self.peers_executed.pop(m.replica, None)
        if m.view < self.view and self.phase is Phase.NORMAL and self.new_view is not None:
            out.append(Send(m.replica, self.new_view))
        if m.view == self.view and self.phase is Phase.NORMAL:
            self._retransmit(m.replica, m.executed, out)
        if m.executed < self.executed:
            self._send_fill(m.replica, m.executed, out)

    def _send_fill(self: BftReplica, to: int, behind: int, out: list[Outbox]) -> None:
        """State transfer to a peer behind us, up to the highest checkpoint that f + 1
        replicas signed (so one correct replica executed it: safe to apply) or the stable one;
        beyond ``fill_max`` batches, up to an earlier stable checkpoint instead."""
        s = self.stable
        best = (s.seq, s.chain, s.proof) if behind < s.seq <= self.executed else None
        for (seq, chain), votes in self.ckpt_votes.items():
            if (behind < seq <= self.executed and len(votes) >= self.f + 1
                    and self.log.chain_at(seq) == chain and (best is None or seq > best[0])):
                best = (seq, chain, tuple(votes[r] for r in sorted(votes)))
        if best is not None and best[0] - behind > self.config.fill_max:
            nearer = self._stable_within(behind)
            if nearer is not None and nearer.seq < best[0]:
                best = (nearer.seq, nearer.chain, nearer.proof)
        if best is None:
            return
        seq, chain, proof = best
        fill = Fill(self.config.cluster, self.me, seq, chain, proof, behind + 1,
                    tuple(self.log.range(behind + 1, seq)))
        out.append(Send(to, self._seal(fill)))

    def _stable_within(self: BftReplica, behind: int) -> Stable | None:
        """The furthest stable checkpoint at most ``fill_max`` past ``behind`` (the nearest
        past it if none is that close), among those this replica executed."""
        return self.stables.within(behind, behind + self.config.fill_max, self.executed)

    def _retransmit(self: BftReplica, to: int, behind: int, out: list[Outbox]) -> None:
        """Resend what a peer in this view may have lost, for the sequence numbers it has not
        executed that we executed or that have been stuck for ``resend_ns``: our pre-prepares
        (as primary) or prepares, and our commits. A peer ahead of us gets our votes for the
        slots stuck here: it may have executed one in an earlier view and lack the prepares
        for it in this one, so its commit, which we wait for, never came (the simulator's
        seed 284 at n = 4: two replicas stuck until a view change). For the same reason a
        peer that executed a slot we hold no commit of its for in this view, stuck for
        ``resend_ns``, gets our votes for it, even when we executed it too, while a peer of
        this view (its Status says) has not: that one may wait for its commit (seed 20428 at
        n = 7: with two silent replicas every correct replica's commit was needed, and a lost
        prepare was never sent again to the one replica ahead that lacked it). Without that
        condition the votes went out every Status period to peers whose commit nobody needed
        any more (one that executed the slot by a Fill never commits it in this view): twice
        the simulator's events on some seeds."""
        cfg = self.config
        start = min(behind, self.executed) + 1
        for seq in range(start, start + cfg.pipeline_max):
            if seq in self.slots and (seq <= self.executed or self._stuck(seq)):
                self._resend_votes(to, seq, out)
        # slots it executed (and we too) that a peer of this view still lacks: the others' lag
        lagging = min(self.peers_executed.values(), default=start)
        for seq in range(max(self.stable.seq, lagging) + 1, start):
            slot = self.slots.get(seq)
            if (slot is not None and to not in self.commits.get((seq, slot[0]), ())
                    and self._stuck(seq)):
                self._resend_votes(to, seq, out)

    def _stuck(self: BftReplica, seq: int) -> bool:
        """Pre-prepared (or rebuilt by a restart) here ``resend_ns`` ago or more: time for its
        votes to be resent."""
        return self.now - self.slot_ns.get(seq, 0) >= self.config.resend_ns

    def _resend_votes(self: BftReplica, to: int, seq: int, out: list[Outbox]) -> None:
        """Our pre-prepare (as primary) or prepare for ``seq`` in this view, and our commit."""
        cfg = self.config
        d, batch = self.slots[seq]
        if self.is_primary:
            vote: Inner = PrePrepare(cfg.cluster, self.me, self.view, seq, d, batch)
        else:
            vote = Prepare(cfg.cluster, self.me, self.view, seq, d)
        out.append(Send(to, self._seal(vote)))
        if seq in self.commit_sent:
            out.append(Send(to, self._seal(Commit(cfg.cluster, self.me, self.view, seq, d))))

    def _on_fill(self: BftReplica, m: Fill, now: int, out: list[Outbox]) -> None:
        if m.start != self.executed + 1 or m.seq < m.start or m.seq - m.start + 1 != len(
                m.batches):
            return
        chain = self.chain
        for batch in m.batches:
            chain = chain_next(chain, digest(batch))
        signers = self.proof_signers(m.seq, m.chain, m.proof) if chain == m.chain else 0
        if signers < self.f + 1:
            self.stats.dropped_invalid += 1
            return
        self.stats.fills += 1
        for batch in m.batches:
            self.committed.pop(self.executed + 1, None)
            self._apply(batch, out)
        if signers >= 2 * self.f + 1:
            self._set_stable(Stable(m.seq, m.chain, m.proof), out)
        self._execute(out)
        # the sender may hold more (a Fill stops at fill_max batches): ask for it at once
        out.append(Send(m.replica, self._seal(self._status())))
