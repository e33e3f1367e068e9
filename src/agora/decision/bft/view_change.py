"""View change: signed ViewChange messages with P and Q sets, and a NewView every replica checks.

The view change of PBFT's MAC-only variant (Castro's thesis, MIT 2001, "an algorithm without
signatures"; Castro and Liskov, TOCS 2002), with view-change messages signed instead of
acknowledged by view-change-acks. A replica moving to view ``w`` sends ``ViewChange(w)`` with
its latest stable checkpoint (its proof: 2f + 1 signed checkpoints) and, above it, its P set
(per sequence number the highest-view *prepared* digest, with the batch) and its Q set (every
digest it *pre-prepared*, with the highest view).

:func:`decide` is the new primary's rule, a pure function of a set S of view changes, which
every backup re-runs on the S the NewView carries (so no separate pre-prepares need checking):
``h`` is the highest checkpoint in S; for each ``s > h`` named in some P set, choose the digest
``d`` prepared in view ``v`` if

* A1: 2f + 1 messages of S have no P entry for ``s`` that outranks it (none, an older view, or
  the same view and digest), and
* A2: f + 1 messages of S pre-prepared ``d`` for ``s`` in view ``v`` or later;

else choose null (an empty batch) if 2f + 1 messages have no P entry for ``s``; else S is not
yet enough and the primary waits for more view changes (all correct replicas' arrive in time).

Why it is safe: if ``d`` committed at ``s`` in view ``v``, then f + 1 correct replicas prepared
it, so at most 2f messages lack an entry (no null), each of those correct replicas outranks any
other digest in view ``v`` (A1 fails for it), and a different digest prepared in a later view
would need a correct replica that pre-prepared it there (A2), which by induction on views never
happens. A2 also gives validity: a chosen batch was pre-prepared by a correct replica, which
checked its clients' MACs. P entries are claims, not certificates: MACed prepares are not
transferable, and A1 + A2 make certificates unnecessary.

Liveness: the view-change timer starts only once 2f + 1 view changes for the view are in
(PBFT's rule, so an isolated replica does not race ahead), doubles per failed attempt, and a
replica moves on once f + 1 replicas suspect the view (``suspicion.py``: a replica whose timer
ran out, moving on alone, would be stuck past a view the others install); a replica that sees
f + 1 view changes for later views joins the smallest. A replica that missed
the NewView gets it from any peer in the view (it is self-certifying). A replica that has moved
past a view re-sends its old view change for it to a peer still gathering that view's quorum
(found by the simulator: a view change to 1 whose message from the replica that went on to 2 was
lost left two replicas waiting for it and that one waiting for them, for ever); at most once per
``resend_ns`` per peer and view, and never to a peer that has shown a later view change (two
replicas past a view would otherwise answer each other's replayed messages without end).

The pure parts (:func:`decide`, :func:`valid_view_change`, :func:`unpack_new_view`) are what a
reviewer should read; :class:`ViewChanges` is the replica's side (a mixin of ``BftReplica``).
Messages of a view not installed yet (they can overtake the NewView) are held, bounded, and
processed on installation.

Limitation: P and Q sets hold everything above the stable checkpoint, so view-change size grows
with the checkpoint interval and the pipeline; there is no bound on Q beyond that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from agora.decision.bft.core import Phase, Stable
from agora.decision.bft.messages import (
    ZERO_CHAIN,
    ClientRequest,
    Inner,
    NewView,
    PEntry,
    PrePrepare,
    QEntry,
    Sealed,
    ViewChange,
    digest,
)
from agora.decision.bft.storage import NewViewRecord, ViewRecord
from agora.decision.consensus.messages import Broadcast, Outbox, Send


class Decision(NamedTuple):
    ckpt_seq: int
    ckpt_chain: bytes
    proof: tuple[Sealed, ...]
    choices: dict[int, PEntry]  # non-null choices above ckpt_seq
    max_seq: int


NULL_DIGEST = digest(())
ProofCheck = Callable[[int, bytes, tuple[Sealed, ...]], bool]


def decide(vcs: list[ViewChange], f: int, claims: int | None = None) -> Decision | None:
    """The new view's start, or None while S does not determine every sequence number.
    ``claims`` (default f + 1) is rule A2's threshold; only a canary lowers it."""
    claims = f + 1 if claims is None else claims
    quorum = 2 * f + 1
    if len({m.replica for m in vcs}) < quorum:
        return None
    top = max(vcs, key=lambda m: (m.ckpt_seq, m.replica))
    h = top.ckpt_seq
    pmaps = [{e.seq: e for e in m.prepared} for m in vcs]
    qmaps: list[dict[tuple[int, bytes], int]] = []
    for m in vcs:
        q: dict[tuple[int, bytes], int] = {}
        for e in m.preprepared:
            q[(e.seq, e.digest)] = max(q.get((e.seq, e.digest), -1), e.view)
        qmaps.append(q)
    choices: dict[int, PEntry] = {}
    for s in sorted({e.seq for m in vcs for e in m.prepared if e.seq > h}):
        candidates = {(e.view, e.digest): e for pm in pmaps if (e := pm.get(s)) is not None}
        chosen = None
        for (v, d), entry in sorted(candidates.items(), reverse=True):
            a1 = sum(1 for pm in pmaps if (p := pm.get(s)) is None or p.view < v
                     or (p.view == v and p.digest == d))
            a2 = sum(1 for q in qmaps if q.get((s, d), -1) >= v)
            if a1 >= quorum and a2 >= claims:
                chosen = entry
                break
        if chosen is not None:
            choices[s] = chosen
        elif sum(1 for pm in pmaps if s not in pm) < quorum:
            return None
    return Decision(h, top.ckpt_chain, top.proof, choices, max(choices, default=h))


def valid_view_change(m: ViewChange, proof_ok: ProofCheck) -> bool:
    """Structural checks a receiver applies before counting a view change."""
    if m.ckpt_seq == 0:
        if m.ckpt_chain != ZERO_CHAIN or m.proof:
            return False
    elif not proof_ok(m.ckpt_seq, m.ckpt_chain, m.proof):
        return False
    seen: set[int] = set()
    for e in m.prepared:
        if e.seq <= m.ckpt_seq or e.view >= m.view or e.seq in seen or e.digest != digest(e.batch):
            return False
        seen.add(e.seq)
    return all(e.seq > m.ckpt_seq and e.view < m.view for e in m.preprepared)


def chosen_batch(decision: Decision, seq: int) -> tuple[bytes, tuple[ClientRequest, ...]]:
    entry = decision.choices.get(seq)
    return (NULL_DIGEST, ()) if entry is None else (entry.digest, entry.batch)


def q_entries(qset: dict[int, dict[bytes, int]], above: int) -> tuple[QEntry, ...]:
    return tuple(QEntry(s, v, d) for s, ds in sorted(qset.items()) if s > above
                 for d, v in ds.items())


def unpack_new_view(nv: NewView, open_signed: Callable[[Sealed], Inner | None],
                    proof_ok: ProofCheck, f: int, claims: int | None = None
                    ) -> Decision | None:
    """Check a NewView's view changes (signatures, view, distinct senders, content) and
    re-run :func:`decide` on them."""
    vcs: list[ViewChange] = []
    senders: set[int] = set()
    for sealed in nv.view_changes:
        m: Inner | None = open_signed(sealed)
        if (not isinstance(m, ViewChange) or m.view != nv.view or m.replica in senders
                or not valid_view_change(m, proof_ok)):
            return None
        senders.add(m.replica)
        vcs.append(m)
    return decide(vcs, f, claims)


MY_VCS_KEPT = 8  # own view changes of the views just left, re-sent to peers still there


class ViewChanges:
    """The replica's view-change steps (a mixin of ``BftReplica``, whose state it uses)."""

    # ---------------------------------------------------------------- view change

    def _start_view_change(self, view: int, now: int, out: list[Outbox]) -> None:
        self.stats.view_changes_begun += 1
        self._store(ViewRecord(view))
        self._enter(view, Phase.VIEW_CHANGE)
        self.early = [m for m in self.early if m.view >= view]
        s = self.stable
        prepared = tuple(e for k, e in sorted(self.pset.items()) if k > s.seq)
        vc = ViewChange(self.config.cluster, self.me, view, s.seq, s.chain, s.proof, prepared,
                        q_entries(self.qset, s.seq))
        sealed = self.my_vcs[view] = self._broadcast(vc, out)
        for old in [v for v in self.my_vcs if v < view - MY_VCS_KEPT]:
            del self.my_vcs[old]
        self.vc_quorum_ns = None
        self.vc_resend_ns = now
        self._record_view_change(vc, sealed, now, out)

    def _enter(self, view: int, phase: Phase) -> None:
        """Move to ``view``: the previous view's slots, votes and peers' progress are moot."""
        self.view, self.phase = view, phase
        self.suspecting = False
        self.slots.clear()
        self.slot_ns.clear()
        self.prepares.clear()
        self.commits.clear()
        self.commit_sent.clear()
        self.assigned.clear()
        self.certified.clear()
        self.peers_executed.clear()

    def _tick_view_change(self, now: int, out: list[Outbox]) -> None:
        cfg = self.config
        mine = self.my_vcs.get(self.view)  # this view change's own message
        if mine is not None and now - self.vc_resend_ns >= cfg.resend_ns:
            self.vc_resend_ns = now
            out.append(Broadcast(mine))
        timeout = cfg.view_change_timeout_ns << min(self.vc_attempts, 6)
        if self.vc_quorum_ns is not None and now - self.vc_quorum_ns >= timeout:
            self._suspect(now, out)  # on to the next view once f + 1 replicas suspect this one

    def _on_view_change(self, m: ViewChange, sealed: Sealed, now: int,
                        out: list[Outbox]) -> None:
        if m.view < self.view or (m.view == self.view and self.phase is Phase.NORMAL):
            if self.phase is Phase.NORMAL and self.new_view is not None:
                out.append(Send(m.replica, self.new_view))  # it missed the view we are in
            elif m.view in self.my_vcs and self._still_gathering(m.replica, m.view, now):
                # it still gathers a quorum for a view we left: our old view change (true
                # then, still signed) may be the one it lacks; without it a view whose
                # change lost our message waits forever, and we wait for it to follow us
                out.append(Send(m.replica, self.my_vcs[m.view]))
            self.stats.dropped_view += 1
            return
        if not valid_view_change(m, self.proof_ok):
            self.stats.dropped_invalid += 1
            return
        self._record_view_change(m, sealed, now, out)

    def _still_gathering(self, replica: int, view: int, now: int) -> bool:
        """Whether to re-send our old view change for ``view`` to ``replica``: not if it has
        shown us a later one (it moved on: two replicas past ``view`` would otherwise answer
        each other's replayed old messages forever), and at most once per ``resend_ns`` (it
        re-sends its own that often)."""
        if any(replica in by for v, by in self.vcs.items() if v > view):
            return False
        last = self.vc_answered.get((replica, view))
        if last is not None and 0 <= now - last < self.config.resend_ns:
            return False
        self.vc_answered[(replica, view)] = now
        if len(self.vc_answered) > 4 * self.n * MY_VCS_KEPT:
            self.vc_answered.clear()  # bounded; forgetting costs at most one more re-send
        return True

    def _record_view_change(self, m: ViewChange, sealed: Sealed, now: int,
                            out: list[Outbox]) -> None:
        self.vcs.setdefault(m.view, {}).setdefault(m.replica, (m, sealed))
        if m.view > self.view:
            self.peers_executed.pop(m.replica, None)  # it left our view (see _view_is_live)
            later: dict[int, int] = {}
            for view, by in self.vcs.items():
                if view > self.view:
                    for r in by:
                        later[r] = min(later.get(r, view), view)
            if len(later) >= self.f + 1:
                self._start_view_change(min(later.values()), now, out)
            return
        if len(self.vcs[self.view]) >= 2 * self.f + 1 and self.vc_quorum_ns is None:
            self.vc_quorum_ns = now
        if self.is_primary and self.phase is Phase.VIEW_CHANGE:
            by = self.vcs[self.view]
            decision = decide([by[r][0] for r in sorted(by)], self.f,
                              self.config.claim_quorum)
            if decision is not None:
                nv = NewView(self.config.cluster, self.me, self.view,
                             tuple(by[r][1] for r in sorted(by)))
                self._install(self._broadcast(nv, out), decision, now, out)

    def _on_new_view(self, m: NewView, sealed: Sealed, now: int, out: list[Outbox]) -> None:
        if m.view < self.view or (m.view == self.view and self.phase is Phase.NORMAL):
            self.stats.dropped_view += 1
            return
        if m.replica != self.primary(m.view) or not sealed.signature:
            self.stats.dropped_auth += 1
            return
        decision = unpack_new_view(m, self._open_signed, self.proof_ok, self.f,
                                   self.config.claim_quorum)
        if decision is None:
            self.stats.dropped_invalid += 1
            return
        if m.view > self.view:
            self._enter(m.view, Phase.VIEW_CHANGE)  # installed at once, below
        self._install(sealed, decision, now, out)

    def _install(self, sealed: Sealed, decision: Decision, now: int, out: list[Outbox]) -> None:
        """Enter the new view: its pre-prepares are the decision's choices up to max_seq."""
        self._store(NewViewRecord(self.view, sealed))
        self.phase = Phase.NORMAL
        self.suspecting = False
        self.new_view = sealed
        self.vc_attempts = 0
        self.slots.clear()
        self.slot_ns.clear()
        self.assigned.clear()
        self.certified.clear()
        self.vcs = {v: by for v, by in self.vcs.items() if v > self.view}
        # the view numbers new batches after its last choice, from now on: a checkpoint that
        # becomes stable just below can execute batches and so propose at once, and an old
        # view's number (maybe past that choice) would be reused for another batch afterwards
        self.next_seq = max(decision.max_seq, decision.ckpt_seq, self.stable.seq) + 1
        if decision.ckpt_seq > self.stable.seq:
            self._set_stable(Stable(decision.ckpt_seq, decision.ckpt_chain, decision.proof), out)
        self._restart_timers(now)  # the timers restart in a new view
        if self.is_primary:
            self.stats.views_started += 1
        for seq in range(decision.ckpt_seq + 1, decision.max_seq + 1):
            d, batch = chosen_batch(decision, seq)
            if seq <= self.executed:  # (one that old a replica no longer holds is not checked)
                self._check(self.log.digest_at(seq) in (d, None),
                            f"new view rewrites executed {seq}")
            self._mark_assigned(batch)
            self._accept(seq, d, batch, out)
        early, self.early = self.early, []
        for m in early:
            if m.view == self.view:
                if isinstance(m, PrePrepare):
                    self._on_pre_prepare(m, out)
                else:
                    self._on_vote(m, out)
            elif m.view > self.view:
                self.early.append(m)
        self._flush(out)
