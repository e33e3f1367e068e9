"""Restart: trust durable storage, or recover from the cluster (VR Revisited, section 4.3).

With ``fsync=always`` (``storage.durable``) every acknowledgement this replica ever sent is on
disk, so it restarts from storage: normal status in its stored view if it was a backup there, a
view change to the next view if it led that view (its in-memory pipeline is gone and its clock
may have been reset, so it does not keep stamping deadlines in the old view), and back into the
view change it was in otherwise.

With ``batch`` or ``none`` the log may have lost a tail that this replica had acknowledged. It
keeps only what it can trust, the committed prefix ``1..stored commit`` (a commit record is
written after the entries it covers, and committed entries never change), and enters
*recovering* status: it sends no PrepareOk, takes no part in view changes and answers nobody. It
broadcasts Recovery with a nonce (its incarnation number) and waits for ``f + 1`` answers from
replicas in normal status, including one from the leader of the highest view among them; that
leader's answer carries its log after our committed prefix. Then it is a backup of that view.

Why it is safe: an op committed in view ``v`` is held by ``f + 1`` replicas; excluding this one,
``f`` of them remain, and any ``f + 1`` answers from the ``2f`` others include one replica that took
part in view ``v`` or later, so the highest view answered is at least ``v`` and its leader's log
holds the op. Two conditions make that argument hold, and both are kept:

* the view vote is always synced (``storage.py``), so the replica knows the highest view it ever
  voted in; if every answer is from a lower view it may not rejoin them (its old DoViewChange for
  the higher view may still be in flight), so it broadcasts StartViewChange for its voted view to
  move the cluster up, and waits;
* at most ``f`` replicas are crashed or recovering at once (the fault model; the simulator keeps
  it). A replica is back in the count only when its recovery completes.

The leader of the highest view never answers itself: a recovering replica that was that leader
waits for the others to time out and elect another.
"""

from __future__ import annotations

from agora.decision.consensus.core import ReplicaCore, Status
from agora.decision.consensus.messages import (
    Broadcast,
    Outbox,
    Recovery,
    RecoveryResponse,
    Send,
    StartViewChange,
)


class Recovering(ReplicaCore):
    """The recovery steps of :class:`~.replica.Replica`."""

    def _begin_recovery(self, now: int, out: list[Outbox]) -> None:
        self.status = Status.RECOVERING
        self.nonce = self.incarnation
        self.responses = {}
        self.stats.recoveries += 1
        self._mark("resend", now)
        self.marks["repair"] = now - self.config.resend_ns
        out.append(Broadcast(self._recovery_message()))

    def _recovery_message(self) -> Recovery:
        return Recovery(self.config.cluster, self.me, self.view, self.nonce, self.commit)

    def _tick_recovery(self, now: int, out: list[Outbox]) -> None:
        if self._expired("resend", now, self.config.resend_ns):
            self._mark("resend", now)
            out.append(Broadcast(self._recovery_message()))

    def _on_recovery(self, m: Recovery, out: list[Outbox]) -> None:
        if self.status is not Status.NORMAL:
            return
        base, entries = 0, ()
        if self.is_leader:
            base = self._peer_base(min(m.commit, self.op))
            entries = tuple(self.log[base:base + self.config.repair_max])
        out.append(Send(m.replica, RecoveryResponse(self.config.cluster, self.me, self.view,
                                                    m.nonce, self.commit, base, entries)))

    def _on_recovery_response(self, m: RecoveryResponse, now: int, out: list[Outbox]) -> None:
        if self.status is not Status.RECOVERING or m.nonce != self.nonce:
            return
        previous = self.responses.get(m.replica)
        if previous is None or m.view >= previous.view:
            self.responses[m.replica] = m
        if len(self.responses) < self.f + 1:
            return
        view = max(r.view for r in self.responses.values())
        if view < self.view:
            if self._expired("repair", now, self.config.resend_ns):
                self._mark("repair", now)
                out.append(Broadcast(StartViewChange(self.config.cluster, self.me, self.view,
                                                     self.commit)))
            return
        lead = self.responses.get(self.leader_of(view))
        if lead is None or lead.view != view or lead.base > self.op:
            return
        self._replace_log(lead.base, lead.entries)
        self.view = self.log_view = view
        self.status = Status.NORMAL
        self.storage.write_view(view, view)
        self._enter_normal_backup(lead.commit, now, out)
