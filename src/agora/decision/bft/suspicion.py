"""Suspicion: a replica leaves its view only when f + 1 replicas would.

In PBFT a backup whose timer runs out starts ``ViewChange(v + 1)`` at once, and f + 1 view
changes for later views pull the other replicas along. A replica whose timer ran out alone (a
primary that was only slow, a replica still draining a backlog) therefore moved to ``v + 1``
alone, and stayed there: having sent ``ViewChange(v + 1)`` it may never act in ``v`` again (that
message may already be in the next view's decision, and its P set would miss what it prepared
in ``v`` afterwards), while nobody followed it. Found on real processes under CPU load
(``test_paused_primary_is_replaced_then_catches_up`` failed in 3 of 133 runs beside two CPU
burners): a replica's timer ran out alone while the others were descheduled (a backup's 20 ms
request timer in one failure, the resumed old primary's in another, its 15 ms wait for the
NewView in the third), and the cluster ran on without it, one of the f faults it tolerates
spent on a timing accident.

The rule, the Byzantine counterpart of the crash mode's pre-vote (``consensus/view_change.py``):
a replica whose timer ran out (in view ``v`` with a request or a verdict overdue, or changing to
``v`` with its NewView overdue) *suspects* ``v``: its Status heartbeats say so (the first goes
out at once), and it keeps acting in ``v``. A replica starts ``ViewChange(v + 1)`` once f + 1
replicas, itself included if it suspects ``v``, suspect ``v`` or have sent a view change for a
later view. A peer's suspicion counts from its latest Status if that came within the last few
heartbeat periods (a replica that died suspecting stops counting).

**Replays.** A faulty replica can forward a correct one's old Status (its MAC stays valid), to
keep alive a suspicion the sender has since given up. So each Status names the sender's
incarnation (``boot``: its storage numbers them durably, whatever the fsync policy, so a restart
never reuses one) and counts the Status messages of that incarnation (``beat``). A receiver
keeps the latest (boot, beat) of each peer and drops a Status that is not later, whole
(``dropped_stale``): it says nothing the peer's latest does not supersede. A later boot is a
restart and starts afresh, even if less far executed (a replica that lost the tail of its
records under fsync ``none`` suspects as anyone does). The boots must be ordered: with random
ones a receiver that had restarted took a replayed Status of a peer's previous incarnation
for a new one, and then dropped every real one (``agora sim --mode bft``, seed 6963 at n = 4).

**A receiver's restart.** A replica that restarted knows none of its peers' Status messages, so
the rule above cannot tell a peer's latest from an older one replayed to it. So each Status
also names, for every replica, the boot of the latest Status its sender had from it
(``seen``), a nonce the receiver chose and the sender echoes. A Status that does not name the
receiver's current boot may have been made before its restart: it is answered (a NewView, a
Fill, retransmissions: help a replay cannot abuse) and teaches the sender's boot, but neither
its suspicion nor its progress counts (``unconfirmed_status``). A peer names the new boot from
the first Status it sends after hearing the restarted replica, one Status period later.

Those f + 1 include a correct replica whose own timer ran out, so at most f faulty
replicas cannot force a view change either; and, as with PBFT's rule that f + 1 later view
changes pull a replica along, a replica whose own timer has not run out follows them too (two
suspecting replicas of which one moved on and the other's request then executed would
otherwise leave the first alone again).
The primary of ``v`` suspects ``v`` like any replica (unlike the crash mode's leader): a
correct primary can be stuck too, for instance on a slot that a peer executed in an earlier
view and no longer votes for (found by the simulator, seed 284 at n = 4 with one silent
replica: only a view change let the two replicas behind catch up). Liveness: a primary that
fails the cluster's requests fails every correct replica's (a client broadcasts a request it
retries), so its 2f + 1 correct replicas suspect it; a view change that stalls is suspected by
every correct replica waiting on it. Safety is untouched: a suspicion only delays the start of
a view change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agora.decision.bft.core import Phase
from agora.decision.bft.messages import Status
from agora.decision.consensus.messages import Outbox

if TYPE_CHECKING:
    from agora.decision.bft.replica import BftReplica


FRESH_HEARTBEATS = 3  # a peer's suspicion counts this many Status periods (it repeats it each)


class Suspicions:
    """The replica's suspicion steps (a mixin of ``BftReplica``, whose state it uses):
    ``suspecting`` (this replica suspects its view), ``suspicions`` (replica -> the view its
    latest Status suspects, and when that Status came), ``boot`` and ``beat`` (this
    incarnation's number and its Status count) and ``status_from`` (replica -> the boot and
    beat of its latest Status, from this incarnation on)."""

    def _suspect(self: BftReplica, now: int, out: list[Outbox]) -> None:
        """Our timer ran out in this view: say so, and leave it if f + 1 replicas would."""
        if not self.suspecting:
            self.suspecting = True
            self.stats.suspicions += 1
            self._send_status(now, out)
        self._leave_if_shared(now, out)

    def _status(self: BftReplica) -> Status:
        """Where this replica is, and whether it suspects its view (each one newer)."""
        self.beat += 1
        known = self.status_from  # replica -> (boot, beat); 0: none heard (boots start at 1)
        seen = tuple(self.boot if r == self.me else known[r][0] if r in known else 0
                     for r in range(self.config.n))
        return Status(self.config.cluster, self.me, self.view, self.executed, self.suspecting,
                      self.boot, self.beat, seen)

    def _send_status(self: BftReplica, now: int, out: list[Outbox]) -> None:
        self.last_status_ns = now
        self._broadcast(self._status(), out)

    def _latest_status(self: BftReplica, m: Status) -> bool:
        """Whether ``m`` is later than every Status of its sender seen here (then it is
        remembered as the latest): a later incarnation, or a later one of the same."""
        latest = self.status_from.get(m.replica)
        if latest is not None and (m.boot, m.beat) <= latest:
            return False
        self.status_from[m.replica] = (m.boot, m.beat)
        return True

    def _names_our_boot(self: BftReplica, m: Status) -> bool:
        """Whether ``m`` was sent after its sender heard this incarnation (so not replayed from
        before it): it names our boot."""
        seen = m.seen
        return len(seen) > self.me and seen[self.me] == self.boot

    def _note_suspicion(self: BftReplica, m: Status, now: int, out: list[Outbox]) -> None:
        """A peer's latest Status: remember whether it suspects its view; it may be the
        f + 1st."""
        if m.suspect:
            self.suspicions[m.replica] = (m.view, now)
            if m.view == self.view:
                self._leave_if_shared(now, out)
        else:
            self.suspicions.pop(m.replica, None)

    def _leave_if_shared(self: BftReplica, now: int, out: list[Outbox]) -> None:
        """Leave the view once f + 1 replicas suspect it or have left it, ourselves included
        if we suspect it: the others' suspicions from their Status heartbeats of the last
        FRESH_HEARTBEATS periods (a replica that died suspecting stops counting)."""
        view = self.view
        fresh = FRESH_HEARTBEATS * self.config.status_ns
        agree = {r for r, (suspected, at) in self.suspicions.items()
                 if suspected == view and 0 <= now - at <= fresh}
        for later, by in self.vcs.items():
            if later > view:
                agree.update(by)
        if self.suspecting:
            agree.add(self.me)
        if len(agree) >= self.f + 1:
            if self.phase is Phase.VIEW_CHANGE:
                self.vc_attempts += 1  # this view change failed: the next waits longer
            self._start_view_change(view + 1, now, out)
