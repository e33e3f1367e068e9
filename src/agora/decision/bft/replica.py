"""The sans-IO PBFT replica: (message or tick, local time) -> outbox, like the CFT replica.

Normal case (Castro and Liskov 1999). The primary of view ``v`` is ``v mod n``. Clients
broadcast each request to every replica with one MAC per replica; every replica that sees a
request remembers it (``waiting``) and starts its request timer. The primary batches requests
into ``PrePrepare(v, seq, digest, batch)``; a backup accepts it if it is in the view, inside the
watermarks, the digest matches the batch, every request carries a valid MAC for this backup, and
it has not accepted another digest for ``(v, seq)`` (an equivocating primary is caught here);
it then broadcasts ``Prepare``. Prepared = the pre-prepare and ``2f`` matching prepares from
backups; then ``Commit``; committed locally = prepared and ``2f + 1`` matching commits; batches
execute in sequence order, each request at most once per client number (the client table).
Every replica replies to the client (MAC), and a client accepts ``f + 1`` matching replies.

Checkpoints: every ``checkpoint_every`` sequence numbers, and when idle, a replica signs
``Checkpoint(seq, chain)`` (the hash chain of the executed batches, ``messages.py``); ``2f + 1``
matching ones make it stable: votes, P/Q sets and view-change state below it are dropped, and a
replica behind it catches up with ``Fill``s from any peer, each checked against a proof and
each up to the furthest stable checkpoint within ``fill_max`` batches (further only if none is
that close): every replica keeps the proofs of stable checkpoints half a Fill or more apart
(``stables``, ``kept.py``: the latest proofs in memory, older ones read back from storage).
The filled replica asks for the next at once (``catch_up.py``, with the retransmissions a
peer's Status triggers). A replica with a storage keeps
only its latest executed batches in memory and reads older ones back for a Fill
(``executed.py``); the log itself is unbounded on disk (no compaction). Every
``snapshot_every`` executed batches or requests the replica appends a restart snapshot
(``snapshot.py``), so a restart replays only the records after it.

Authentication (``auth.py``): every message is sealed and checked on receipt; bad MACs or
signatures, non-members, bodies naming another sender, messages of another view or already
counted are dropped and counted in :class:`BftStats`. Replays of old messages are harmless by
construction (votes are sets keyed by view, sequence number and digest; old views are dropped).

Deadlines (``deadline.py``): the CFT rule trusts the leader's clock stamps, which a Byzantine
primary could forge; here 2f + 1 replicas' own measurements, certified into a later batch, decide
which requests are abandoned, and requests are delivered in log order once their verdicts are in.
Crash-restart: with a storage (``storage.py``, ``durable.py``) a replica records its view, the
batch it voted for at each slot, its P set, the executed log and the stable checkpoint before
any message of the step leaves (the transport flushes it first), and a restart rebuilds that
state, so it never votes against its own past; without one, a crashed replica counts as one of
the f.
A replica that fell behind (paused, or its datagrams lost) and whose request timers fire does not
start a view change while f + 1 peers' Status messages of its view show them executed past it:
one of them is correct, so this primary makes progress; it restarts its timers and catches up
(a view change there would only take it out of the view alone, as nobody else would follow).
Nor does a replica whose timer runs out start one alone: it suspects the view and starts
the view change once f + 1 replicas suspect it (``suspicion.py``).
Processes: ``decision.transport.bft_node`` runs this replica on a UDP socket.

API: ``BftReplica(config, keyring)``, ``start(now)``, ``on_message(message, now)``,
``on_tick(now)``; each returns a list of ``Send``/``Broadcast``/``ToClient``/``Committed``
carrying wire messages (``Sealed``, ``ClientReply``). ``Committed.view`` is 0: in this mode the
view an entry committed in differs between replicas and is not part of the agreed output.
"""

from __future__ import annotations

import time

from agora.decision.bft.auth import Keyring
from agora.decision.bft.catch_up import CatchUp
from agora.decision.bft.config import AuthMode, BftCanary, BftConfig
from agora.decision.bft.core import BftStats, Phase, Stable
from agora.decision.bft.deadline import Deadlines, Held
from agora.decision.bft.durable import DurableState
from agora.decision.bft.executed import ExecutedLog
from agora.decision.bft.kept import KeptStables
from agora.decision.bft.messages import (
    ZERO_CHAIN,
    Checkpoint,
    ClientReply,
    ClientRequest,
    Commit,
    Fill,
    Inner,
    NewView,
    PEntry,
    Prepare,
    PrePrepare,
    Sealed,
    Status,
    Timing,
    ViewChange,
    chain_next,
    digest,
)
from agora.decision.bft.snapshot import Snapshots
from agora.decision.bft.storage import (
    BftStorage,
    ExecRecord,
    PreparedRecord,
    SlotRecord,
    StableRecord,
)
from agora.decision.bft.suspicion import Suspicions
from agora.decision.bft.view_change import ViewChanges
from agora.decision.consensus.core import InvariantViolation
from agora.decision.consensus.messages import Broadcast, Outbox, ToClient

Batch = tuple[ClientRequest, ...]


class BftReplica(ViewChanges, Suspicions, CatchUp, DurableState, Snapshots, Deadlines):
    """One of ``n = 3f + 1`` replicas (module notes); view-change steps are in ViewChanges and
    Suspicions, Status answers and state transfer in CatchUp, restarts in DurableState and
    Snapshots, deadline verdicts in Deadlines."""

    def __init__(self, config: BftConfig, keyring: Keyring, storage: BftStorage | None = None,
                 *, applied_index: int = 0) -> None:
        self.config = config
        self.keys = keyring
        self.storage = storage
        self.applied_index = applied_index  # the application's durable point (a restart)
        self.restoring = False
        self.me, self.n, self.f = config.replica, config.n, config.f
        self.checks = config.canary is BftCanary.NONE
        self.view = 0
        self.phase = Phase.NORMAL
        self.started = False
        self.now = 0  # the local time of the step being taken
        # current view's normal case
        self.slots: dict[int, tuple[bytes, Batch]] = {}
        self.prepares: dict[tuple[int, bytes], set[int]] = {}
        self.commits: dict[tuple[int, bytes], set[int]] = {}
        self.commit_sent: set[int] = set()
        self.next_seq = 1
        self.assigned: set[tuple[int, int]] = set()
        # across views
        self.pset: dict[int, PEntry] = {}
        self.qset: dict[int, dict[bytes, int]] = {}
        self.committed: dict[int, Batch] = {}
        self.executed = 0
        self.log = ExecutedLog(storage, config.log_memory)  # the executed batches (bounded)
        self.chain = ZERO_CHAIN
        self.request_index = 0
        # client -> (its last executed request number, that request's index, abandoned)
        self.clients: dict[int, tuple[int, int, bool]] = {}
        self.waiting: dict[tuple[int, int], tuple[ClientRequest, int]] = {}
        self.stable = Stable(0, ZERO_CHAIN, ())
        # Fills' proofs: stable ones half a Fill apart (in memory: as many as log_memory spans)
        spacing = max(1, config.fill_max // 2)
        self.stables = KeptStables(storage, max(1, config.log_memory // spacing))
        self.ckpt_votes: dict[tuple[int, bytes], dict[int, Sealed]] = {}
        self.last_ckpt = 0
        self.last_exec_ns = 0
        self.last_status_ns = 0
        self.peers_executed: dict[int, int] = {}  # replica -> executed, Status of this view
        # view change
        self.vcs: dict[int, dict[int, tuple[ViewChange, Sealed]]] = {}
        self.my_vcs: dict[int, Sealed] = {}  # own view changes by view (the last few)
        self.vc_answered: dict[tuple[int, int], int] = {}  # (replica, view) -> when re-sent
        self.new_view: Sealed | None = None
        self.vc_quorum_ns: int | None = None
        self.vc_resend_ns = 0
        self.vc_attempts = 0
        self.suspecting = False  # our timer ran out in this view (suspicion.py)
        # replica -> (the view its latest Status suspects, when it came)
        self.suspicions: dict[int, tuple[int, int]] = {}
        self.boot = 0  # this incarnation's number, set by start() (suspicion.py)
        self.beat = 0  # Status messages sent by this incarnation
        self.status_from: dict[int, tuple[int, int]] = {}  # replica -> its latest (boot, beat)
        self.early: list[PrePrepare | Prepare | Commit] = []  # for a view not installed yet
        self.slot_ns: dict[int, int] = {}  # when each slot of this view was pre-prepared
        self.stats = BftStats()
        self._init_deadlines()

    # ---------------------------------------------------------------- helpers

    def primary(self, view: int) -> int:
        return view % self.n

    @property
    def checkpointed(self) -> int:
        """The executed batch of the snapshot this incarnation started from (0: none)."""
        return self.stats.started_from

    @property
    def is_primary(self) -> bool:
        return self.primary(self.view) == self.me

    def _seal(self, message: Inner) -> Sealed:
        return self.keys.seal(self.me, message, self.config.auth)

    def _broadcast(self, message: Inner, out: list[Outbox]) -> Sealed:
        sealed = self._seal(message)
        out.append(Broadcast(sealed))
        return sealed

    def _check(self, condition: bool, what: str) -> None:
        if self.checks and not condition:
            raise InvariantViolation(f"bft replica {self.me} view {self.view}: {what}")

    def _open_signed(self, sealed: Sealed) -> Inner | None:
        if sealed.cluster != self.config.cluster:
            return None
        return self.keys.open(self.me, sealed, AuthMode.SIGNATURES)

    def proof_signers(self, seq: int, chain: bytes, proof: tuple[Sealed, ...]) -> int:
        """Distinct replicas whose signed checkpoints in ``proof`` all name ``(seq, chain)``
        (0 if any does not)."""
        senders: set[int] = set()
        for sealed in proof:
            m = self._open_signed(sealed)
            if not isinstance(m, Checkpoint) or m.seq != seq or m.chain != chain:
                return 0
            senders.add(m.replica)
        return len(senders)

    def proof_ok(self, seq: int, chain: bytes, proof: tuple[Sealed, ...]) -> bool:
        """A stable checkpoint: 2f + 1 signers."""
        return self.proof_signers(seq, chain, proof) >= 2 * self.f + 1

    # ---------------------------------------------------------------- public steps

    def start(self, now: int) -> list[Outbox]:
        if self.started:
            raise RuntimeError("BftReplica.start() is called once")
        self.started = True
        self.now = now
        self.last_exec_ns = self.last_status_ns = self.vc_resend_ns = now
        # without storage nothing survives a restart: the wall clock orders the incarnations
        self.boot = self.storage.next_boot() if self.storage is not None else time.time_ns()
        return self._recover(now)

    def on_message(self, message: object, now: int) -> list[Outbox]:
        out: list[Outbox] = []
        if not self.started:
            raise RuntimeError("call BftReplica.start() first")
        self.now = now
        if isinstance(message, ClientRequest):
            self._on_request(message, now, out)
        elif isinstance(message, Sealed):
            if message.cluster != self.config.cluster:
                return out
            inner = self.keys.open(self.me, message, self.config.auth)
            if inner is None or inner.replica == self.me:
                self.stats.dropped_auth += 1
                return out
            self._dispatch(inner, message, now, out)
        self._snapshot_due()
        return out

    def on_tick(self, now: int) -> list[Outbox]:
        out: list[Outbox] = []
        if not self.started:
            raise RuntimeError("call BftReplica.start() first")
        self.now = now
        cfg = self.config
        if (self.executed > self.last_ckpt and now - self.last_exec_ns >= cfg.idle_checkpoint_ns):
            self._checkpoint(out)
        if self.phase is Phase.VIEW_CHANGE:
            self._tick_view_change(now, out)
        elif not self._timed_out(now):
            self.suspecting = False
        elif self._view_is_live():
            self.suspecting = False
            self._restart_timers(now)  # behind a live view: catching up, a fresh timeout
        else:
            self._suspect(now, out)  # a view change once f + 1 replicas suspect the view
        self._flush(out)  # (the primary's, in a normal view)
        if now - self.last_status_ns >= cfg.status_ns or now < self.last_status_ns:
            self._send_status(now, out)  # (after the timers: a new suspicion sent one)
        self._resend_timings(now, out)
        self._snapshot_due()
        return out

    def _timed_out(self, now: int) -> bool:
        """A request known here, or a verdict owed for a batch we executed, is overdue."""
        timeout = self.config.request_timeout_ns
        return (any(now - seen >= timeout for _, seen in self.waiting.values())
                or any(now - u.since_ns >= timeout for u in self.undecided.values()))

    def _restart_timers(self, now: int) -> None:
        for key, (request, _) in list(self.waiting.items()):
            self.waiting[key] = (request, now)
        for undecided in self.undecided.values():
            undecided.since_ns = now

    def _view_is_live(self) -> bool:
        """f + 1 peers in this view executed past us, so at least one correct replica made
        progress under this primary: we are behind (a paused process, lost datagrams), and a
        view change now would only take us out of the view (nobody else would follow). We
        catch up by Fill and retransmission instead. At most f liars cannot make this true,
        and it stops being true once we reach the correct replicas' point."""
        ahead = sum(1 for executed in self.peers_executed.values() if executed > self.executed)
        return ahead >= self.f + 1

    def _dispatch(self, m: Inner, sealed: Sealed, now: int, out: list[Outbox]) -> None:
        match m:
            case PrePrepare():
                self._on_pre_prepare(m, out)
            case Prepare() | Commit():
                self._on_vote(m, out)
            case Checkpoint():
                self._on_checkpoint(m, sealed, out)
            case ViewChange():
                self._on_view_change(m, sealed, now, out)
            case NewView():
                self._on_new_view(m, sealed, now, out)
            case Status():
                self._on_status(m, now, out)
            case Fill():
                self._on_fill(m, now, out)
            case Timing():
                self._on_timing(m, sealed, out)

    # ---------------------------------------------------------------- requests and primary

    def _on_request(self, r: ClientRequest, now: int, out: list[Outbox]) -> None:
        if r.cluster != self.config.cluster or not self.keys.client_ok(self.me, r):
            self.stats.dropped_auth += 1
            return
        done = self.clients.get(r.client_id)
        if done is not None and r.request_number <= done[0]:
            if r.request_number == done[0]:
                self._reply(r.client_id, out)
            return
        key = (r.client_id, r.request_number)
        if key not in self.waiting:
            self.waiting[key] = (r, now)
            self._saw(r)
        self._flush(out)

    def _flush(self, out: list[Outbox]) -> None:
        cfg = self.config
        if self.phase is not Phase.NORMAL or not self.is_primary:
            return
        limit = min(self.executed + cfg.pipeline_max, self.stable.seq + cfg.watermark_window)
        while self.next_seq <= limit:
            certificates = self._certificates(cfg.batch_max)
            batch = tuple(certificates) + tuple(
                r for key, (r, _) in self.waiting.items()
                if key not in self.assigned)[:cfg.batch_max - len(certificates)]
            if not batch:
                return
            self._mark_assigned(batch)
            seq, d = self.next_seq, digest(batch)
            self._check(seq not in self.slots, f"a second batch at slot {seq} of this view")
            self.next_seq += 1
            self._store(SlotRecord(self.view, seq, d, batch))
            self.slots[seq] = (d, batch)
            self.slot_ns[seq] = self.now
            self.qset.setdefault(seq, {})[d] = self.view
            self._broadcast(PrePrepare(cfg.cluster, self.me, self.view, seq, d, batch), out)

    # ---------------------------------------------------------------- backups and votes

    def _hold_early(self, m: PrePrepare | Prepare | Commit) -> bool:
        """Keep a message of a view we have not installed yet (it can overtake the NewView);
        bounded, so a flood costs liveness only."""
        if m.view > self.view or (m.view == self.view and self.phase is Phase.VIEW_CHANGE):
            if len(self.early) < 4 * self.config.watermark_window:
                self.early.append(m)
            return True
        return False

    def _on_pre_prepare(self, m: PrePrepare, out: list[Outbox]) -> None:
        cfg = self.config
        if self._hold_early(m):
            return
        if m.view != self.view or self.phase is not Phase.NORMAL:
            self.stats.dropped_view += 1
            return
        if m.replica != self.primary(m.view):
            self.stats.dropped_auth += 1
            return
        held = self.slots.get(m.seq)
        if held is not None:
            if held[0] == m.digest:
                self.stats.duplicates += 1
            else:
                self.stats.dropped_equivocation += 1
            return
        if (not self.stable.seq < m.seq <= self.stable.seq + cfg.watermark_window
                or len(m.batch) > cfg.batch_max or digest(m.batch) != m.digest
                or not all(self._request_ok(r, m.seq) for r in m.batch)):
            self.stats.dropped_invalid += 1
            return
        self._accept(m.seq, m.digest, m.batch, out)

    def _accept(self, seq: int, d: bytes, batch: Batch, out: list[Outbox]) -> None:
        """Pre-prepared in this view: record it, and as a backup vote Prepare."""
        self._store(SlotRecord(self.view, seq, d, batch))
        self.slots[seq] = (d, batch)
        self.slot_ns[seq] = self.now
        self.qset.setdefault(seq, {})[d] = self.view
        for r in batch:
            self._saw(r)
        if not self.is_primary:
            self.prepares.setdefault((seq, d), set()).add(self.me)
            self._broadcast(Prepare(self.config.cluster, self.me, self.view, seq, d), out)
        self._progress(seq, out)

    def _on_vote(self, m: Prepare | Commit, out: list[Outbox]) -> None:
        if m.view > self.view and self._hold_early(m):
            return
        if m.view != self.view:
            self.stats.dropped_view += 1
            return
        if m.seq <= self.stable.seq:
            return
        if isinstance(m, Prepare):
            if m.replica == self.primary(m.view):
                self.stats.dropped_invalid += 1
                return
            votes = self.prepares.setdefault((m.seq, m.digest), set())
        else:
            votes = self.commits.setdefault((m.seq, m.digest), set())
        if m.replica in votes:
            self.stats.duplicates += 1
            return
        votes.add(m.replica)
        if self.phase is Phase.NORMAL:
            self._progress(m.seq, out)

    def _progress(self, seq: int, out: list[Outbox]) -> None:
        slot = self.slots.get(seq)
        if slot is None:
            return
        d, batch = slot
        cfg = self.config
        if seq not in self.commit_sent:
            if len(self.prepares.get((seq, d), ())) < cfg.prepare_quorum:
                return
            self.commit_sent.add(seq)
            self._store(PreparedRecord(self.view, seq, d, batch))
            self.pset[seq] = PEntry(seq, self.view, d, batch)
            self.commits.setdefault((seq, d), set()).add(self.me)
            self._broadcast(Commit(cfg.cluster, self.me, self.view, seq, d), out)
        if seq not in self.committed and seq > self.executed and len(
                self.commits.get((seq, d), ())) >= cfg.commit_quorum:
            self.committed[seq] = batch
            self._execute(out)

    # ---------------------------------------------------------------- execution

    def _execute(self, out: list[Outbox]) -> None:
        while self.executed + 1 in self.committed and self.executed >= self.stable.seq:
            seq = self.executed + 1
            self._apply(self.committed.pop(seq), out)
            if seq % self.config.checkpoint_every == 0:
                self._checkpoint(out)
        self._flush(out)

    def _apply(self, batch: Batch, out: list[Outbox],
               elapsed: tuple[int, ...] | None = None) -> None:
        """Execute the next batch: certificates decide earlier batches' deadlines, new
        requests get their indices, and whatever has its verdict is delivered in order.
        ``elapsed``: this replica's recorded measurement (a replay), else measured now."""
        seq = self.executed + 1
        new: list[Held] = []
        for r in batch:
            if r.client_id == 0:
                self._decide(r)
                continue
            done = self.clients.get(r.client_id)
            key = (r.client_id, r.request_number)
            self.waiting.pop(key, None)
            self.assigned.discard(key)  # executed: never waiting again (the client table)
            if done is not None and r.request_number <= done[0]:
                continue
            self.request_index += 1
            self.clients[r.client_id] = (r.request_number, self.request_index, False)
            self.stats.committed += 1
            new.append(Held(self.request_index, r, None if r.budget_ns > 0 else False))
        self._store(ExecRecord(seq, batch, self._hold(seq, new, elapsed)))
        self._deliver(out)
        d = digest(batch)
        self.executed += 1
        self.chain = chain_next(self.chain, d)
        self.log.append(batch, d, self.chain)
        self.last_exec_ns = self.now
        if seq in self.undecided and not self.restoring:
            self._send_timing(seq, out)

    def _reply(self, client_id: int, out: list[Outbox]) -> None:
        """Answer the client's last request, once delivered (its verdict known)."""
        number, index, abandoned = self.clients[client_id]
        if index > self.delivered:
            return
        reply = ClientReply(self.config.cluster, self.me, self.view, client_id, number, index,
                            abandoned=abandoned)
        out.append(ToClient(client_id, self.keys.seal_reply(reply)))

    # ---------------------------------------------------------------- checkpoints, state

    def _checkpoint(self, out: list[Outbox]) -> None:
        self.last_ckpt = self.executed
        m = Checkpoint(self.config.cluster, self.me, self.executed, self.chain)
        sealed = self._broadcast(m, out)
        self._on_checkpoint(m, sealed, out)

    def _on_checkpoint(self, m: Checkpoint, sealed: Sealed, out: list[Outbox]) -> None:
        if not self.stable.seq < m.seq <= self.stable.seq + self.config.watermark_window:
            self.stats.dropped_view += 1
            return
        votes = self.ckpt_votes.setdefault((m.seq, m.chain), {})
        votes.setdefault(m.replica, sealed)
        if len(votes) >= 2 * self.f + 1:
            proof = tuple(votes[r] for r in sorted(votes)[:2 * self.f + 1])
            self._set_stable(Stable(m.seq, m.chain, proof), out)

    def _set_stable(self, stable: Stable, out: list[Outbox]) -> None:
        if stable.seq <= self.stable.seq:
            return
        if stable.seq <= self.executed:  # (one that old a replica no longer holds is not checked)
            self._check(self.log.chain_at(stable.seq) in (stable.chain, None),
                        "stable checkpoint diverges")
        self._store(StableRecord(stable.seq, stable.chain, stable.proof))
        self._keep_stable(stable)
        self._prune(stable.seq)
        self._execute(out)

    def _keep_stable(self, stable: Stable) -> None:
        """Make ``stable`` the stable checkpoint, and keep it for Fills if the last one kept is
        half a Fill back or more (every window of ``fill_max`` batches then holds one)."""
        self.stable = stable
        if not self.stables or stable.seq - self.stables.last_seq() >= self.config.fill_max // 2:
            self.stables.append(stable)
            if self.storage is not None:  # so a snapshot need not carry them all; a replay
                self.storage.keep_stable(stable)  # puts back those a power cut lost

    def _prune(self, s: int) -> None:
        """Drop the votes, P/Q sets and slots a stable checkpoint at ``s`` makes moot."""
        for table in (self.pset, self.qset, self.slots, self.slot_ns, self.committed):
            for seq in [k for k in table if k <= s]:
                del table[seq]
        for table2 in (self.prepares, self.commits):
            for key in [k for k in table2 if k[0] <= s]:
                del table2[key]
        self.ckpt_votes = {k: v for k, v in self.ckpt_votes.items() if k[0] > s}
        self.commit_sent = {k for k in self.commit_sent if k > s}
        self.next_seq = max(self.next_seq, s + 1)
