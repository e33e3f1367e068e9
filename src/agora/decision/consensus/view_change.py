"""View change and state transfer (VR Revisited, sections 4.2 and 5.2).

A replica that has not heard from its leader for a view-change timeout (its own clock) moves to
``view + 1``: it persists the new view (a vote: it will never again act in a lower one) and
broadcasts StartViewChange. With ``f + 1`` votes (its own included) it sends DoViewChange with its
log to the new leader. With ``f + 1`` DoViewChanges the new leader takes the log with the highest
``(log_view, op)``, the highest commit number, and sends StartView; backups adopt that log and
acknowledge it, which lets the leader commit what the old view left uncommitted.

Why it is safe: an op committed in view ``v`` is held by ``f + 1`` replicas with ``log_view >= v``;
any ``f + 1`` DoViewChanges include one of them, and a log with a higher ``log_view`` came from a
later leader whose own log was chosen the same way, so the chosen log holds every committed op.

Bandwidth: DoViewChange carries the voter's log after ``base``, where ``base`` is the commit
number the new leader announced in its own StartViewChange (the leader already holds that
committed prefix); StartView to a replica carries the log after that replica's announced commit
number. A voter sends no DoViewChange before that announcement: the leader broadcasts it as it
joins the view and every resend interval after, and its log is needed anyway. (It used to send
its whole log instead, and resend it every resend interval: with 9,000 entries at n = 7 on two
cores those DoViewChanges starved the replicas, and failovers took 100-500 ms instead of 20.)

State transfer: a replica that sees a higher view, or a gap in its log, asks the leader with
RequestStartView and gets the log after the ``base`` it names (its op when in the same view, its
commit number otherwise), capped at ``repair_max`` entries: a prefix of the leader's log is a
valid state for a backup, so a long repair simply takes several rounds. Within one view a backup's
log only ever grows (a late, shorter StartView never truncates it), because its acknowledgements
promised those entries.

Liveness: each failed view change lengthens the next timeout (up to 7x) plus a per-replica,
per-view offset, so competing candidates stop colliding.

Pre-vote (``ReplicaConfig.pre_vote``, on by default): a normal backup whose leader went silent
does not start ``view + 1`` at once; it asks with PreVote (nothing persisted, nothing changed)
and starts the view change only when ``f`` others agree (PreVoteOk), each of which has not heard
from its own leader within its view-change timeout either, is itself changing views, or is in
an older view than the asker's; the leader of the view being left never agrees. (Found by the
simulator: a stale leader of view 1 refusing a replica of view 2 whose leader was recovering
stalled the cluster for good.) A replica cut off alone (a partition, a SIGSTOP, a slow host)
therefore cannot pull a healthy cluster into a view change when it is heard again; it asks again
every resend interval and rejoins when it hears the leader. Safety is untouched (a pre-vote only
delays a view change); a real leader failure costs the time until ``f + 1`` replicas have timed
out, at most one resend interval more. A view change that times out asks the same way before
moving on to the next view: a replica that joined a view late (an old leader whose link was
mended hears the new leader, but its StartView is slow to come) would otherwise drag a cluster
whose leader is alive through view after view (found on real links, ``test_consensus_netns``:
views 1 to 12 in 200 ms); it keeps asking for the StartView instead.
"""

from __future__ import annotations

from agora.decision.consensus.core import ReplicaCore, Status
from agora.decision.consensus.messages import (
    Broadcast,
    DoViewChange,
    Outbox,
    PreVote,
    PreVoteOk,
    RequestStartView,
    Send,
    StartView,
    StartViewChange,
)


class ViewChange(ReplicaCore):
    """The view-change and state-transfer steps of :class:`~.replica.Replica`."""

    def _vc_timeout(self) -> int:
        base = self.config.view_change_timeout_ns
        spread = ((self.view * 7 + self.me * 13) % self.n) * base // (2 * self.n)
        return base * (1 + min(self.vc_attempts, 6)) + spread

    def _start_view_change(self, view: int, now: int, out: list[Outbox], *,
                           announce: bool = True) -> None:
        """Enter ``view`` in view-change status, persisting the vote first."""
        self.vc_attempts = self.vc_attempts + 1 if self.status is Status.VIEW_CHANGE else 0
        self.view = view
        self.status = Status.VIEW_CHANGE
        self.storage.write_view(view, self.log_view)
        self.svc_from = {self.me}
        self.dvcs = {}
        self.known_commit = {self.me: self.commit}
        self.announced_commit = self.commit if self.leader_of(view) == self.me else None
        self.dvc_sent = False
        self.pending.clear()
        self.pending_clients.clear()
        self.acked.clear()
        self.batches.clear()
        self._mark("view_change", now)
        self._mark("resend", now)
        self.marks["repair"] = now - self.config.resend_ns
        self.stats.view_changes_begun += 1
        if announce:
            out.append(Broadcast(StartViewChange(self.config.cluster, self.me, view, self.commit)))
        self._maybe_send_dvc(now, out)

    def _on_start_view_change(self, m: StartViewChange, now: int, out: list[Outbox]) -> None:
        if m.view < self.view or (m.view == self.view and self.status is Status.NORMAL):
            return
        if m.view > self.view:
            self._start_view_change(m.view, now, out)
        self.svc_from.add(m.replica)
        self.known_commit[m.replica] = max(self.known_commit.get(m.replica, 0), m.commit)
        if m.replica == self.leader_of(self.view):
            self.announced_commit = m.commit
        self._maybe_send_dvc(now, out)

    def _maybe_send_dvc(self, now: int, out: list[Outbox]) -> None:
        if self.status is not Status.VIEW_CHANGE or len(self.svc_from) < self.f + 1:
            return
        leader = self.leader_of(self.view)
        if leader == self.me:
            self.dvc_sent = True
            self.dvcs[self.me] = DoViewChange(self.config.cluster, self.me, self.view,
                                              self.log_view, self.op, self.commit, self.op, ())
            self._maybe_start_view(now, out)
            return
        if self.announced_commit is None:
            return  # the leader's StartViewChange, which names its commit, is yet to come
        self.dvc_sent = True
        base = self._peer_base(min(self.announced_commit, self.op))
        out.append(Send(leader, DoViewChange(self.config.cluster, self.me, self.view,
                                             self.log_view, self.op, self.commit, base,
                                             tuple(self.log[base:]))))

    def _on_do_view_change(self, m: DoViewChange, now: int, out: list[Outbox]) -> None:
        if m.view < self.view:
            return
        if m.view > self.view:
            self._start_view_change(m.view, now, out)
        if self.status is not Status.VIEW_CHANGE or not self.is_leader:
            return
        if m.base > self.op or m.op != m.base + len(m.entries):
            return  # cannot combine with our log; the voter resends with our announced commit
        self.dvcs[m.replica] = m
        self.known_commit[m.replica] = max(self.known_commit.get(m.replica, 0), m.commit)
        self.svc_from.add(m.replica)  # a DoViewChange is also a vote
        if self.me not in self.dvcs:
            self._maybe_send_dvc(now, out)
        else:
            self._maybe_start_view(now, out)

    def _maybe_start_view(self, now: int, out: list[Outbox]) -> None:
        if self.me in self.dvcs and len(self.dvcs) >= self.f + 1:
            self._start_view(now, out)

    def _start_view(self, now: int, out: list[Outbox]) -> None:
        """The new leader: merge the votes, start the view, send everyone its log."""
        best = max(self.dvcs.values(), key=lambda d: (d.log_view, d.op, d.replica))
        commit = max(d.commit for d in self.dvcs.values())
        self._replace_log(best.base, best.entries)
        self._check(self.op == best.op, "merged log has the wrong length")
        self.log_view = self.view
        self.status = Status.NORMAL
        self.storage.write_view(self.view, self.view)
        self.acked = {}
        self.batches.clear()
        self.vc_attempts = 0
        self.stats.views_started += 1
        self._rebuild_in_log()
        for name in ("heard", "heartbeat", "progress"):
            self._mark(name, now)
        self._set_commit(commit, out)
        if self.op > self.commit:
            self.batches.append(self.op)  # the old view's uncommitted tail counts as one
        cap = self.config.repair_max
        for replica in self.peers:
            known = self.known_commit.get(replica)
            if known is None:
                # Silent through this view change (the old leader, crashed, as a rule): its
                # committed prefix is unknown, so the only safe StartView would carry the log
                # from entry 1 (up to repair_max entries, for a replica that is likely dead).
                # When it hears this view (a Prepare or Commit) it asks, naming its commit.
                continue
            base = self._peer_base(min(known, self.op))
            out.append(Send(replica, StartView(self.config.cluster, self.me, self.view,
                                               self.commit, base,
                                               tuple(self.log[base:base + cap]))))
        self._flush(now, out)

    def _on_start_view(self, m: StartView, now: int, out: list[Outbox]) -> None:
        if m.view < self.view or m.replica != self.leader_of(m.view):
            return
        if m.view == self.view and self.status is Status.NORMAL:
            self._extend_from_leader(m.base, m, now, out)
            return
        if m.base > self.op:  # we lack the prefix it assumes; ask again from what we have
            if m.view > self.view:
                self._start_view_change(m.view, now, out, announce=False)
            self._request_start_view(now, out)
            return
        if m.base + len(m.entries) < self.commit:
            # A capped StartView that stops short of what we committed: committed entries sit at
            # the same index in every later view's log, so keep them, drop only our uncommitted
            # tail, and fetch the rest from the leader (never cut below the commit number).
            self._replace_log(self.commit, ())
        else:
            self._replace_log(m.base, m.entries)
        self.view = self.log_view = m.view
        self.status = Status.NORMAL
        self.storage.write_view(self.view, self.view)
        self._enter_normal_backup(m.commit, now, out)

    def _extend_from_leader(self, base: int, m: StartView, now: int, out: list[Outbox]) -> None:
        """Same view: the leader's log extends ours, so only append what is new (never cut)."""
        if self.is_leader:
            return
        self._mark("heard", now)
        self.commit_seen = max(self.commit_seen, m.commit)
        if base > self.op:
            self._request_start_view(now, out)
            return
        fresh = [e for e in m.entries if e.index > self.op]
        if fresh:
            self._append(fresh)
        out.append(Send(self.leader_of(self.view), self._prepare_ok(self.op)))
        self._set_commit(m.commit, out)

    def _request_start_view(self, now: int, out: list[Outbox]) -> None:
        """Ask the leader for its log (throttled to one request per resend interval)."""
        if not self._expired("repair", now, self.config.resend_ns):
            return
        self._mark("repair", now)
        base = self.op if self.status is Status.NORMAL else self.commit
        out.append(Send(self.leader_of(self.view),
                        RequestStartView(self.config.cluster, self.me, self.view, base)))

    def _on_request_start_view(self, m: RequestStartView, out: list[Outbox]) -> None:
        if m.view != self.view or self.status is not Status.NORMAL or not self.is_leader:
            return
        base = self._peer_base(min(m.base, self.op))
        entries = tuple(self.log[base:base + self.config.repair_max])
        out.append(Send(m.replica, StartView(self.config.cluster, self.me, self.view, self.commit,
                                             base, entries)))

    def _suspect_leader(self, now: int, out: list[Outbox]) -> None:
        """Our leader is silent: start the next view, after a pre-vote if configured."""
        view = self.view + 1
        if not self.config.pre_vote or self.f == 0:
            self._start_view_change(view, now, out)
            return
        resend = self.config.resend_ns
        if self.pre_vote_view != view or self._expired("pre_vote", now, 2 * resend):
            # a new episode (we asked for another view, or heard our leader again since the
            # last ask): grants from an earlier one no longer say the leader is silent now
            self.pre_vote_view, self.pre_votes = view, {self.me}
        elif not self._expired("pre_vote", now, resend):
            return
        self._mark("pre_vote", now)
        out.append(Broadcast(PreVote(self.config.cluster, self.me, view)))

    def _on_pre_vote(self, m: PreVote, now: int, out: list[Outbox]) -> None:
        """Agree unless the asker is behind us, or it asks to leave our own view while that
        view has a live leader (we are it, or heard from it within the timeout). An asker two
        or more views ahead has seen a view we missed: our leader, even ourselves, is stale."""
        normal = self.status is Status.NORMAL
        if normal and m.view <= self.view:
            return
        if normal and m.view == self.view + 1 and (
                self.is_leader or not self._expired("heard", now, self._vc_timeout())):
            return
        out.append(Send(m.replica, PreVoteOk(self.config.cluster, self.me, m.view)))

    def _on_pre_vote_ok(self, m: PreVoteOk, now: int, out: list[Outbox]) -> None:
        if (m.view != self.pre_vote_view or m.view != self.view + 1
                or self.status is Status.RECOVERING
                or (self.status is Status.NORMAL and self.is_leader)):
            return
        self.pre_votes.add(m.replica)
        if len(self.pre_votes) >= self.f + 1:
            self.pre_vote_view, self.pre_votes = 0, set()
            self._start_view_change(m.view, now, out)

    def _behind(self, view: int, now: int, out: list[Outbox]) -> None:
        """Some replica is in a later view than ours: join it and ask its leader for the log."""
        if view > self.view:
            self._start_view_change(view, now, out, announce=False)
        self._request_start_view(now, out)

    def _tick_view_change(self, now: int, out: list[Outbox]) -> None:
        if self._expired("view_change", now, self._vc_timeout()):
            if not self.config.pre_vote or self.f == 0:
                self._start_view_change(self.view + 1, now, out)
                return
            # the next view only if f others agree: a replica that joined a view late (it was
            # cut off, its StartView is slow to come) must not drag a cluster whose leader of
            # that view is alive into view after view; it keeps asking for the StartView below
            self._suspect_leader(now, out)
        if not self._expired("resend", now, self.config.resend_ns):
            return
        self._mark("resend", now)
        out.append(Broadcast(StartViewChange(self.config.cluster, self.me, self.view,
                                             self.commit)))
        if self.dvc_sent and not self.is_leader:
            self.dvc_sent = False
            self._maybe_send_dvc(now, out)
        if not self.is_leader:
            self._request_start_view(now, out)
