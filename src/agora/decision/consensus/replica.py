"""The sans-IO replica: a pure state machine from (message or tick, local time) to an outbox.

Normal operation (VR Revisited, section 4.1). The leader of view ``v`` is replica ``v mod n``. It
queues each new request with its clock reading (``received_ns``), prepares queued requests as
log entries and broadcasts them in a Prepare; a backup appends them (its log is always a prefix of
the leader's log of the view) and answers PrepareOk(op), a cumulative acknowledgement. With ``f``
backups at or past ``k`` (so ``f + 1`` replicas, leader included) op ``k`` is committed: one round
trip leader -> backups -> leader. Backups learn the commit number from the next Prepare or from a
Commit the leader sends when it has nothing to prepare (that is also its heartbeat).

Batching and pipelining: the leader keeps at most ``pipeline_max`` uncommitted Prepares in flight
and puts up to ``batch_max`` queued requests in one Prepare; an idle leader prepares a lone
request at once, a busy one batches whatever queued while the window was full. Lost Prepares are
resent after ``resend_ns`` without progress, from each backup's acknowledged op.

Exactly once: a request is ``(client_id, request_number)``; a client has one request outstanding
and numbers grow. The leader drops a request already in its log or queue, answers a retry of the
last committed one from the client table, and ignores older ones. Backpressure: a new request
that finds the leader's queue full (``pending_max``) is not queued, and the client is told so
with a ``queue_full`` Reply (``client.py`` retries it after a pause). The client table is a function
of the committed log, so every replica (and every future leader) holds the same.

API for a transport: ``Replica(config, storage, ...)``, then ``start(now_ns)`` once, then
``on_message(message, now_ns)``, ``on_tick(now_ns)`` (call every millisecond or so),
``release(index)`` when the application holds entries up to ``index`` durably (compaction) and
``submit(...)`` for a co-located client (a ``RequestBatch`` message is taken request by request,
then prepared with one flush, so a batch fills one Prepare); each step returns the outbox to execute
in order (after the storage writes the replica already made). ``now_ns`` is this replica's local
clock; it may drift or jump. The replica never reads a clock, sleeps, or does I/O of its own.

Committed output: every replica emits ``Committed(index, ...)`` for each committed index in
order, exactly once per incarnation. ``applied_index`` is the application's own durable point:
after a restart the replica emits every index above it again (from its storage, or once recovery
or state transfer has fetched the entries), so an application that persists what it applied
resumes without a gap or a repeat; one that persists nothing passes 0 and replays the whole log.
Replies to clients go from the leader when an entry is committed and its deadline verdict
known. Backup acknowledgements (``ReplicaConfig.backup_acks``, on by default) shorten the path:
the ``f`` backups after the leader answer each client whose request without a deadline they
appended from the leader's Prepare; a client holding ``f`` of them for one view and index knows
``f + 1`` replicas hold it (VR's commit rule), one hop before the leader could tell it (client ->
leader -> backup -> client instead of client -> leader -> backup -> leader -> client). The leader
then skips its own reply when every acknowledging backup's PrepareOk (sent after its
acknowledgements) already covers the entry; a lost acknowledgement costs the client a retry,
which the client table answers.

A backup that times out on its leader asks the others first (pre-vote, ``view_change.py``), so a
single replica cut off from the leader does not pull everyone into a view change when it is
heard again.

View change and state transfer are in ``view_change.py``, restart and recovery in
``recovery.py``, the deadline rule in ``deadline.py``; the log keeps ``log_memory`` applied
entries in memory, and up to ``FORGET_MAX`` more before it lets go of them, and reads older ones
back from storage (``entry_log.py``).
Byzantine replicas are ``agora.decision.bft``'s, the transport and processes
``agora.decision.transport``'s. A restart loads the last ``log_memory`` committed entries and
applies the ones before them a chunk at a time from storage (``Storage.load``'s ``keep``), so its
memory does not grow with the log either; and every ``checkpoint_every`` applied entries the
replica checkpoints its client table (``checkpoint.py``), so a restart starts there instead of
applying the log from entry 1. Compaction (``core.py``): once every replica holds a durable
checkpoint at or past ``k`` and the application has released ``k`` (``release``), a replica
lets its storage free entries ``1..k``. Not here yet: reconfiguration (the replica set is fixed),
and a state transfer for a replica whose disk was lost (copy a peer's directory instead).
"""

from __future__ import annotations

from agora.decision.consensus.checkpoint import ClientSlot
from agora.decision.consensus.compaction import CompactedLogError
from agora.decision.consensus.config import Canary, ReplicaConfig
from agora.decision.consensus.core import Status
from agora.decision.consensus.deadline import witness_needed
from agora.decision.consensus.entry_log import EntryLog
from agora.decision.consensus.messages import (
    Broadcast,
    Commit,
    DoViewChange,
    Entry,
    Message,
    Outbox,
    Prepare,
    PrepareOk,
    PreVote,
    PreVoteOk,
    Recovery,
    RecoveryResponse,
    Reply,
    Request,
    RequestBatch,
    RequestStartView,
    Send,
    StartView,
    StartViewChange,
    ToClient,
)
from agora.decision.consensus.recovery import Recovering
from agora.decision.consensus.storage import Storage
from agora.decision.consensus.view_change import ViewChange

_IN_VIEW = frozenset({Prepare, Commit, PrepareOk, RequestStartView})  # judged by their view
ANY_CHECKPOINT = 1 << 62  # a restart starts from the newest checkpoint, whatever it is


class Replica(ViewChange, Recovering):
    """One of ``n = 2f + 1`` replicas of the decision log (see the module notes)."""

    def __init__(self, config: ReplicaConfig, storage: Storage, *, applied_index: int = 0,
                 incarnation: int = 0) -> None:
        super().__init__(config, storage, applied_index=applied_index, incarnation=incarnation)
        self.started = False

    def start(self, now_ns: int) -> list[Outbox]:
        """Boot from storage: fresh start, durable restart, or recovery."""
        if self.started:
            raise RuntimeError("Replica.start() is called once")
        self.started = True
        out: list[Outbox] = []
        for name in self.marks:
            self._mark(name, now_ns)
        self.marks["repair"] = now_ns - self.config.resend_ns  # the first repair goes at once
        # the committed entries before the last log_memory stay on disk: _apply streams them
        # (a canary, which may rewrite what it wrongly thinks committed, keeps it all)
        stored = self.storage.load(keep=self.config.log_memory if self.checks else None,
                                   checkpoint_max=ANY_CHECKPOINT if self.checks else -1)
        if stored is None:
            self.storage.write_view(0, 0)
            return out
        self.view, self.log_view = stored.view, stored.log_view
        self.compacted = self.storage.compacted
        if stored.checkpoint is not None:
            self._resume_from(stored.checkpoint.index, stored.checkpoint.clients, stored.commit)
        trusted = self.storage.durable or self.config.canary is Canary.TRUST_LOSSY_STORAGE
        tail = stored.entries if trusted else stored.entries[: stored.commit - stored.base]
        self.log = EntryLog(self.storage, tail, stored.base)
        self.commit = stored.commit
        if not trusted:
            self.status = Status.RECOVERING
        self._apply(out, restart=True)
        if not trusted:
            self._begin_recovery(now_ns, out)
        elif self.log_view == self.view and not self.is_leader:
            self.status = Status.NORMAL
        elif self.log_view == self.view:
            self._start_view_change(self.view + 1, now_ns, out)
        else:
            self._start_view_change(self.view, now_ns, out)
        return out

    def _resume_from(self, index: int, clients: dict[int, ClientSlot], commit: int) -> None:
        """Start from the checkpoint at ``index``: its client table, and the entries after
        the application's point applied again (the application needs them emitted). Entries
        up to ``index`` rewrite only slots the table already holds at their final value, so
        the table is right again once ``applied`` passes ``index``: the same as applying the
        log from entry 1, reading only what the application needs."""
        self._check(index <= commit, f"checkpoint at {index} past the stored commit")
        if self.app_index < self.compacted:
            raise CompactedLogError(
                f"replica {self.me}: its application resumes after entry {self.app_index}, but "
                f"entries 1..{self.compacted} were compacted (the application's durable point "
                f"went back past what it released)")
        self.applied = min(index, self.app_index)
        self.checkpointed = index
        self.clients = dict(clients)

    # ---------------------------------------------------------------- public steps

    def submit(self, client_id: int, request_number: int, payload: bytes, budget_ns: int,
               now_ns: int) -> list[Outbox]:
        """A co-located client's request (dropped unless this replica leads a normal view)."""
        return self.on_message(Request(self.config.cluster, client_id, request_number,
                                       budget_ns, payload), now_ns)

    def on_message(self, message: Message, now_ns: int) -> list[Outbox]:
        out: list[Outbox] = []
        if not self.started:
            raise RuntimeError("call Replica.start() first")
        if message.cluster != self.config.cluster:
            return out
        # Messages are of their exact types, so type tests: an isinstance (or a class pattern)
        # on a msgspec Struct class costs ~5x one, on this path once per message.
        kind = type(message)
        if kind is Request:
            if self._queue_request(message, now_ns, out):  # type: ignore[arg-type]
                self._flush(now_ns, out)
            return out
        if kind is RequestBatch:
            queued = False
            for request in message.requests:  # type: ignore[union-attr]
                if request.cluster == self.config.cluster:
                    queued |= self._queue_request(request, now_ns, out)
            if queued:  # one flush: the whole batch can go in one Prepare
                self._flush(now_ns, out)
            return out
        sender = getattr(message, "replica", -1)
        if not 0 <= sender < self.n or sender == self.me:
            return out
        if self.status is Status.RECOVERING:
            if kind is RecoveryResponse:
                self._on_recovery_response(message, now_ns, out)  # type: ignore[arg-type]
            return out
        self._dispatch(message, now_ns, out)
        return out

    def on_tick(self, now_ns: int) -> list[Outbox]:
        out: list[Outbox] = []
        if not self.started:
            raise RuntimeError("call Replica.start() first")
        kept = self.storage.kept_checkpoint  # read once a tick, not once a message
        if kept != self.own_kept:  # our durable checkpoint moved: what our PrepareOks report,
            self.own_kept = kept  # and as the leader, the floor may rise
            if self.is_leader and self.status is Status.NORMAL:
                self._raise_floor(out)
        if self.status is Status.RECOVERING:
            self._tick_recovery(now_ns, out)
        elif self.status is Status.VIEW_CHANGE:
            self._tick_view_change(now_ns, out)
        elif self.is_leader:
            self._tick_leader(now_ns, out)
        else:
            self._tick_backup(now_ns, out)
        return out

    @property
    def leader_hint(self) -> int:
        """Where this replica thinks requests should go."""
        return self.leader_of(self.view)

    # ---------------------------------------------------------------- dispatch

    def _dispatch(self, m: Message, now: int, out: list[Outbox]) -> None:
        if type(m) in _IN_VIEW:  # the normal case's messages: one type test
            if m.view > self.view:  # type: ignore[union-attr]
                self._behind(m.view, now, out)  # type: ignore[union-attr]
            elif m.view == self.view:  # type: ignore[union-attr]
                self._in_view(m, now, out)  # type: ignore[arg-type]
            return
        match m:  # the rest (view changes, recovery, pre-votes) are rare
            case StartViewChange():
                self._on_start_view_change(m, now, out)
            case DoViewChange():
                self._on_do_view_change(m, now, out)
            case StartView():
                self._on_start_view(m, now, out)
            case Recovery():
                self._on_recovery(m, out)
            case PreVote():
                self._on_pre_vote(m, now, out)
            case PreVoteOk():
                self._on_pre_vote_ok(m, now, out)

    def _in_view(self, m: Prepare | Commit | PrepareOk | RequestStartView, now: int,
                 out: list[Outbox]) -> None:
        kind = type(m)
        if self.status is not Status.NORMAL:
            if kind is Prepare or kind is Commit:
                self._request_start_view(now, out)  # the view started without us
            return
        if kind is Prepare:
            self._on_prepare(m, now, out)  # type: ignore[arg-type]
        elif kind is Commit:
            self._on_commit(m, now, out)  # type: ignore[arg-type]
        elif kind is PrepareOk:
            self._on_prepare_ok(m, now, out)  # type: ignore[arg-type]
        else:
            self._on_request_start_view(m, out)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- leader

    def _queue_request(self, m: Request, now: int, out: list[Outbox]) -> bool:
        """Queue a new request (True), or answer/drop a retry, a duplicate or an old one."""
        if self.status is not Status.NORMAL or not self.is_leader:
            return False
        client, number = m.client_id, m.request_number
        if client <= 0 or number <= 0 or m.budget_ns < 0:
            return False
        slot = self.clients.get(client)
        if slot is not None and number <= slot.request_number:
            if number == slot.request_number:
                out.append(ToClient(client, self._reply(client)))
            return False
        pending_clients = self.pending_clients
        if self.in_log.get(client, 0) >= number or pending_clients.get(client, 0) >= number:
            return False
        pending = self.pending
        if len(pending) >= self.config.pending_max:  # say so: never a silent drop
            self.stats.requests_dropped += 1
            out.append(ToClient(client, Reply(self.config.cluster, self.me, self.view, client,
                                              number, 0, False, True)))
            return False
        pending.append((m, self._stamp(now)))
        pending_clients[client] = number
        return True

    def _flush(self, now: int, out: list[Outbox]) -> None:
        """Prepare queued requests while the pipeline has room; else a witness if one is due."""
        if self.status is not Status.NORMAL or not self.is_leader:
            return
        cfg = self.config
        pending, pending_clients, batches = self.pending, self.pending_clients, self.batches
        view = self.view
        while len(batches) < cfg.pipeline_max:
            stamp = self._stamp(now)
            op, commit = self.op, self.commit
            batch: list[Entry] = []
            while pending and len(batch) < cfg.batch_max:
                request, received = pending.popleft()
                client = request.client_id
                if pending_clients.get(client) == request.request_number:
                    del pending_clients[client]
                batch.append(Entry(op + 1 + len(batch), view, client, request.request_number,
                                   request.budget_ns, received, stamp, commit,
                                   request.payload))
            witness = not batch and witness_needed(self.log, self.applied + 1, commit, view)
            if witness:
                batch.append(Entry(op + 1, view, 0, 0, 0, stamp, stamp, commit, b""))
            if not batch:
                return
            if op == commit:
                self.marks["progress"] = now
            self._append(batch)
            batches.append(op + len(batch))
            out.append(Broadcast(Prepare(cfg.cluster, self.me, view, commit, tuple(batch))))
            self.marks["heartbeat"] = now
            if self.commit_quorum == 1:
                self._advance_commit(now, out)
                return
            if witness or not self.pending:
                # nothing left to batch, and the batch just sent (commit hint and view current)
                # witnesses every entry a no-op could: ``witness_needed`` would say False
                return

    def _on_prepare_ok(self, m: PrepareOk, now: int, out: list[Outbox]) -> None:
        if not self.is_leader:
            return
        if m.checkpoint > self.kept.get(m.replica, 0):  # rare: once a checkpoint interval
            self.kept[m.replica] = m.checkpoint
            self._raise_floor(out)
        if m.op > self.acked.get(m.replica, 0):
            self.acked[m.replica] = min(m.op, self.op)
            self._advance_commit(now, out)

    def _advance_commit(self, now: int, out: list[Outbox]) -> None:
        backups = self.commit_quorum - 1
        if backups == 0:
            commit = self.op
        else:
            acks = sorted(self.acked.values(), reverse=True)
            if len(acks) < backups:
                return
            commit = acks[backups - 1]
        if commit <= self.commit:
            return
        self._set_commit(commit, out)
        while self.batches and self.batches[0] <= self.commit:
            self.batches.popleft()
        self._mark("progress", now)
        op = self.op
        self._flush(now, out)
        if self.op == op and self.commit_quorum > 1:
            out.append(Broadcast(Commit(self.config.cluster, self.me, self.view, self.commit,
                                        self.floor)))
            self._mark("heartbeat", now)

    def _tick_leader(self, now: int, out: list[Outbox]) -> None:
        cfg = self.config
        if self._expired("heartbeat", now, cfg.heartbeat_ns):
            self._mark("heartbeat", now)
            out.append(Broadcast(Commit(cfg.cluster, self.me, self.view, self.commit,
                                        self.floor)))
        if self.op > self.commit and self._expired("progress", now, cfg.resend_ns):
            self._mark("progress", now)
            for replica in self.peers:
                start = max(self.acked.get(replica, 0), self.commit)
                if start < self.op:
                    entries = tuple(self.log[start:start + cfg.repair_max])
                    out.append(Send(replica, Prepare(cfg.cluster, self.me, self.view,
                                                     self.commit, entries)))
        self._flush(now, out)

    # ---------------------------------------------------------------- backup

    def _on_prepare(self, m: Prepare, now: int, out: list[Outbox]) -> None:
        leader = self.view % self.n
        entries = m.entries
        if leader == self.me or not entries or m.replica != leader:
            return
        self.marks["heard"] = now
        if m.commit > self.commit_seen:
            self.commit_seen = m.commit
        op = self.op
        if entries[0].index > op + 1:
            self._request_start_view(now, out)  # a gap: earlier Prepares were lost
            return
        fresh = [e for e in entries if e.index > op]
        if fresh:
            self._append(fresh)
            if self.me in self.ackers[leader]:  # we acknowledge to clients (see core.py)
                self._acknowledge(fresh, out)
            op = self.op
        out.append(Send(m.replica, PrepareOk(self.config.cluster, self.me, self.view, op,
                                             self.own_kept)))  # _prepare_ok, inlined: hot
        if m.commit > self.commit:
            self._set_commit(m.commit, out)

    def _acknowledge(self, entries: list[Entry], out: list[Outbox]) -> None:
        """Tell each client whose request we now hold where it sits (see ``Reply``): only
        requests without a deadline, whose verdict is known before they commit."""
        cluster, me, view = self.config.cluster, self.me, self.view
        for e in entries:
            if e.client_id and not e.budget_ns:
                out.append(ToClient(e.client_id, Reply(cluster, me, view, e.client_id,
                                                       e.request_number, e.index, False)))

    def _on_commit(self, m: Commit, now: int, out: list[Outbox]) -> None:
        if self.is_leader or m.replica != self.leader_of(self.view):
            return
        self._mark("heard", now)
        self.commit_seen = max(self.commit_seen, m.commit)
        if m.floor > self.floor:  # a floor stays valid: keep the highest heard (core.py)
            self.floor = m.floor
        if m.commit > self.op:
            self._request_start_view(now, out)
        self._set_commit(m.commit, out)

    def _tick_backup(self, now: int, out: list[Outbox]) -> None:
        if self._expired("heard", now, self._vc_timeout()):
            self._suspect_leader(now, out)
        elif self.commit_seen > self.op:
            self._request_start_view(now, out)
