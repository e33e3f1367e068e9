"""The replica's state and the steps every protocol phase shares: log edits, commit, apply.

Invariants kept here (checked where they can break; :class:`InvariantViolation` is a bug):

* ``applied <= commit <= op``; entries ``1..commit`` are committed and never rewritten: every log
  replacement keeps them (``_replace_log`` checks the first changed index).
* Entries are applied in index order, each exactly once per incarnation; ``Committed`` is emitted
  for applied indices above ``app_index`` (the application's own durable point).
* A deadline entry is applied only when its verdict is known from committed entries
  (``deadline.py``), so applying may stop short of ``commit`` until a witness commits.
* The client table is a function of the applied log: ``client -> (request number, index,
  abandoned)`` of the client's last committed request.
* Compaction: a replica releases entries ``1..k`` of its storage (``Storage.compact``) only when
  ``k`` is at most (a) the *floor*, the lowest durable checkpoint any replica has reported (a
  replica never needs from another an entry at or below its own durable checkpoint: its
  restart starts there, and every request it makes of a peer, a repair, a view change's log
  or recovery, names a base at or above its commit, which is at or above that checkpoint);
  (b) what its application released (``release``: it never asks for those entries again); and
  (c) its own durable checkpoint. Checkpoints only move forward, so a floor once computed stays
  valid: every replica keeps the highest it heard. A replica that stays down pins the floor at
  its last report (the log keeps what it will need); one whose disk is lost is not in the fault
  model (replace its directory with a copy of a peer's).

In the canary modes the rewrite check is off, so that the damage reaches the outside checker
instead of stopping at the replica that notices it.
"""

from __future__ import annotations

import abc
import enum
from collections import deque
from collections.abc import Sequence

import msgspec

from agora.decision.consensus.checkpoint import Checkpoint, ClientSlot
from agora.decision.consensus.config import Canary, ReplicaConfig
from agora.decision.consensus.deadline import needs_verdict, verdict
from agora.decision.consensus.entry_log import FORGET_MAX, EntryLog
from agora.decision.consensus.messages import (
    Broadcast,
    Commit,
    Committed,
    DoViewChange,
    Entry,
    Outbox,
    PrepareOk,
    RecoveryResponse,
    Reply,
    Request,
    Send,
    ToClient,
)
from agora.decision.consensus.storage import Storage


class InvariantViolation(AssertionError):
    """The replica caught itself breaking a protocol invariant (a bug, never a fault)."""


class Status(enum.IntEnum):
    NORMAL = 0
    VIEW_CHANGE = 1
    RECOVERING = 2


STORED_CHUNK = 4_096  # entries a restart reads back from storage at a time to apply them


class _Window(Sequence[Entry]):
    """The log, with the chunk of it that a restart holds answered from that chunk."""

    def __init__(self, log: Sequence[Entry], first: int, chunk: list[Entry]) -> None:
        self.log, self.first, self.chunk = log, first, chunk

    def __len__(self) -> int:
        return len(self.log)

    def __getitem__(self, i):  # type: ignore[override]  # verdict reads single entries
        k = i - self.first
        return self.chunk[k] if 0 <= k < len(self.chunk) else self.log[i]


class ReplicaStats(msgspec.Struct):
    """Counters of one incarnation (a restart starts from zero)."""

    views_started: int = 0  # views this replica started as their leader
    view_changes_begun: int = 0
    committed: int = 0  # Committed outputs emitted
    deadline_total: int = 0  # applied entries that carried a budget
    deadline_abandoned: int = 0
    requests_dropped: int = 0  # queue full (each answered: Reply.queue_full)
    recoveries: int = 0
    checkpoints: int = 0  # client tables handed to storage (checkpoint.py)
    compactions: int = 0  # storage prefixes released (see the module notes)

    @property
    def miss_rate(self) -> float:
        return self.deadline_abandoned / self.deadline_total if self.deadline_total else 0.0


_MARKS = ("heard", "heartbeat", "progress", "repair", "view_change", "resend", "pre_vote")


class ReplicaCore(abc.ABC):
    """State and shared steps; the protocol phases are mixins over it (see ``replica.py``)."""

    def __init__(
        self,
        config: ReplicaConfig,
        storage: Storage,
        *,
        applied_index: int = 0,
        incarnation: int = 0,
    ) -> None:
        if applied_index < 0:
            raise ValueError("applied_index cannot be negative")
        self.config = config
        self.storage = storage
        self.me = config.replica
        self.n = config.n
        self.f = config.f
        self.peers = tuple(r for r in range(config.n) if r != config.replica)
        # leader -> the backups that acknowledge to its clients: the commit_quorum - 1 right
        # after it (fewer datagrams than every backup; one down, the leader's reply still comes)
        self.commit_quorum = config.commit_quorum  # fixed for the replica's life; read per step
        acks = self.commit_quorum - 1 if config.backup_acks else 0
        self.ackers = tuple(tuple((leader + k) % config.n for k in range(1, acks + 1))
                            for leader in range(config.n))
        self.incarnation = incarnation
        self.checks = config.canary is Canary.NONE
        self.view = 0
        self.log_view = 0
        self.status = Status.NORMAL
        self.log = EntryLog(storage)  # the latest entries in memory (see entry_log)
        self.commit = 0
        self.applied = 0
        self.app_index = applied_index
        self.checkpointed = 0  # the applied index of the last checkpoint taken or loaded
        self.released = 0  # the application never asks for 1..released again (release)
        self.floor = 0  # no replica's durable checkpoint is below it (module notes)
        self.kept: dict[int, int] = {}  # leader: replica -> durable checkpoint it reported
        self.own_kept = 0  # our storage's durable checkpoint, read each tick (not per message)
        self.compacted = 0  # entries 1..compacted are released from storage
        self.compact_step = max(1, config.checkpoint_every)  # compact at most this often
        self.commit_seen = 0  # highest commit number heard from a leader of this view
        self.clients: dict[int, ClientSlot] = {}
        self.in_log: dict[int, int] = {}  # leader: client -> highest request number in the log
        self.pending: deque[tuple[Request, int]] = deque()
        self.pending_clients: dict[int, int] = {}
        self.acked: dict[int, int] = {}  # leader: backup -> highest op acknowledged this view
        self.batches: deque[int] = deque()  # leader: last index of each uncommitted Prepare
        self.last_stamp = 0
        self.marks = dict.fromkeys(_MARKS, 0)
        self.svc_from: set[int] = set()
        self.dvcs: dict[int, DoViewChange] = {}
        self.known_commit: dict[int, int] = {}
        self.announced_commit: int | None = None
        self.dvc_sent = False
        self.vc_attempts = 0
        self.nonce = 0
        self.responses: dict[int, RecoveryResponse] = {}
        self.pre_vote_view = 0  # the view this replica asked to start (0: not asking)
        self.pre_votes: set[int] = set()  # replicas that agreed, this one included
        self.stats = ReplicaStats()

    # ---------------------------------------------------------------- small helpers

    @property
    def op(self) -> int:
        log = self.log  # len(log), without the method call: read many times per step
        return log.base + len(log.memory)

    def leader_of(self, view: int) -> int:
        return view % self.n

    @property
    def is_leader(self) -> bool:
        return self.view % self.n == self.me  # leader_of(view), inlined: read on every step

    def _stamp(self, now: int) -> int:
        """The leader's clock, made monotonic: a backward jump freezes time instead."""
        self.last_stamp = max(self.last_stamp, now)
        return self.last_stamp

    def _expired(self, name: str, now: int, period: int) -> bool:
        mark = self.marks[name]
        if now < mark:  # our clock went back: restart the timer rather than wait for ever
            self.marks[name] = now
            return False
        return now - mark >= period

    def _mark(self, name: str, now: int) -> None:
        self.marks[name] = now

    def _check(self, condition: bool, what: str) -> None:
        if self.checks and not condition:
            raise InvariantViolation(f"replica {self.me} view {self.view}: {what}")

    # ---------------------------------------------------------------- log and commit

    def _append(self, entries: Sequence[Entry]) -> None:
        start = self.op + 1
        self._check(entries[0].index == start, "append leaves a gap")
        self.storage.write_entries(start, entries)
        self.log.extend(entries)
        in_log = self.in_log
        for entry in entries:
            if entry.client_id and in_log.get(entry.client_id, 0) < entry.request_number:
                in_log[entry.client_id] = entry.request_number

    def _replace_log(self, base: int, entries: Sequence[Entry]) -> None:
        """Make the log ``log[:base] + entries`` in place, writing only from the first changed
        index. The work is the replaced suffix's, not the log's: a view change late in a long
        session must not cost a copy of the whole log."""
        log = self.log
        base = min(base, len(log))
        end = base + len(entries)
        same = max(base, min(self.compacted, end))  # committed, so equal: and no longer here
        stop = min(len(log), end)
        while same < stop and log[same] == entries[same - base]:
            same += 1
        if same < end or end < len(log):
            self._check(same >= self.applied, f"rewrites applied entry {same + 1}")
            tail = entries[same - base :]
            self.storage.write_entries(same + 1, tail)
            log.truncate(same)
            log.extend(tail)
        if self.applied > len(log):  # canary only: the damage is now visible outside
            self.applied = self.commit = len(log)
        self.commit = min(self.commit, len(log))

    def _rebuild_in_log(self) -> None:
        """``in_log`` for a new leader, from the client table and the entries after ``applied``.

        The table holds each client's last applied request, which is its highest in the applied
        prefix (a leader appends a client's request only above the client's highest in its log,
        so a client's numbers rise along every log), so only the unapplied tail is read: a view
        change late in a long session costs that tail, not a pass over the whole log.
        """
        in_log = {client: slot.request_number for client, slot in self.clients.items()}
        for entry in self.log[self.applied :]:
            if entry.client_id and in_log.get(entry.client_id, 0) < entry.request_number:
                in_log[entry.client_id] = entry.request_number
        self.in_log = in_log

    def _set_commit(self, commit: int, out: list[Outbox]) -> None:
        commit = min(commit, self.op)
        if commit > self.commit:
            self.commit = commit
            self.storage.write_commit(commit)
            self._apply(out)

    def _apply(self, out: list[Outbox], *, restart: bool = False) -> None:
        """Apply committed entries in order while their deadline verdicts are known; then
        forget what memory need not hold (at once: a restart applies its stored log after the
        checkpoint, if any, in one go).
        A leader replies to the clients; not on a ``restart``, which re-applies entries the
        clients heard of long ago (and a restarted leader leaves its view at once)."""
        log = self.log
        reply = self.status is Status.NORMAL and self.is_leader and not restart
        acked_to = self._acked_to() if reply else 0
        if self.applied < log.base and not self._apply_stored(reply, acked_to, out):
            return
        memory, base = log.memory, log.base  # every entry after ``applied`` is in memory
        while self.applied < self.commit:
            if not self._apply_entry(memory[self.applied - base], reply, acked_to, out):
                break
        cfg = self.config
        if self.applied - log.base >= cfg.log_memory + min(cfg.log_memory, FORGET_MAX) \
                and self.checks:  # canaries keep all
            log.forget(self.applied - cfg.log_memory)
        if cfg.checkpoint_every and self.applied - self.checkpointed >= cfg.checkpoint_every \
                and self.checks:  # a canary may rewrite what it applied: no checkpoint of it
            self._checkpoint()
        if self.floor - self.compacted >= self.compact_step and self.checks:
            self._compact()

    def release(self, index: int) -> None:
        """The application will never ask for entries ``1..index`` again (it has them durably):
        the storage may let them go once the whole cluster allows it (see the module notes)."""
        if index > self.released:
            self.released = index

    def _compact(self) -> None:
        """Release the storage's prefix (module notes), at most every ``compact_step``
        entries: a file storage frees disk blocks, a system call or two."""
        storage = self.storage
        upto = min(self.floor, self.released, storage.kept_checkpoint, self.applied)
        if upto - self.compacted >= self.compact_step:
            storage.compact(upto)
            self.compacted = upto
            self.stats.compactions += 1

    def _peer_base(self, base: int) -> int:
        """Where a log we send a peer starts: ``base``, or past what we compacted if that is
        further. A peer's current need never lies below it (its commit is at or past its own
        durable checkpoint, which the floor is at most), but its request may be old: the
        network delays and duplicates, and a peer's commit only grows meanwhile."""
        return max(base, self.compacted)

    def _prepare_ok(self, op: int) -> PrepareOk:
        """A backup's acknowledgement, with its durable checkpoint for the leader's floor (as
        of its last tick: a lower one only delays a compaction)."""
        return PrepareOk(self.config.cluster, self.me, self.view, op, self.own_kept)

    def _raise_floor(self, out: list[Outbox]) -> None:
        """Leader: the floor is the lowest durable checkpoint of every replica (a replica not
        heard from counts as 0); a higher one goes to the backups in a Commit at once."""
        kept = self.kept
        floor = min([self.own_kept] + [kept.get(replica, 0) for replica in self.peers])
        if floor > self.floor:
            self.floor = floor
            out.append(Broadcast(Commit(self.config.cluster, self.me, self.view, self.commit,
                                        floor)))

    def _checkpoint(self) -> None:
        """Hand storage the client table at ``applied`` (see ``checkpoint.py``)."""
        self.storage.write_checkpoint(Checkpoint(self.applied, dict(self.clients)))
        self.checkpointed = self.applied
        self.stats.checkpoints += 1

    def _apply_stored(self, reply: bool, acked_to: int, out: list[Outbox]) -> bool:
        """A restart: apply the committed entries left in storage (``Storage.load``'s keep),
        read back a chunk at a time. False when a deadline verdict stops it first: the
        entries after ``applied`` are then brought back into memory, as ``_apply`` needs."""
        log = self.log
        while self.applied < log.base:
            first = self.applied
            chunk = log[first : min(log.base, first + STORED_CHUNK)]
            window = _Window(log, first, chunk)  # verdicts find their witnesses here first
            for entry in chunk:
                if not self._apply_entry(entry, reply, acked_to, out, window):
                    log.recall(self.applied)
                    return False
        return True

    def _apply_entry(self, entry: Entry, reply: bool, acked_to: int, out: list[Outbox],
                     log: Sequence[Entry] | None = None) -> bool:
        """Apply entry ``applied + 1``; False (nothing done) while its verdict is unknown.
        ``reply``: a leader's, to the client unless ``acked_to`` covers it (see ``_acked_to``).
        ``log``: where the verdict reads the entries after it (the replica's log if None)."""
        index = self.applied + 1
        abandoned = False
        if needs_verdict(entry):
            known = verdict(self.log if log is None else log, index, self.commit)
            if known is None:
                return False
            abandoned = known
            self.stats.deadline_total += 1
            self.stats.deadline_abandoned += known
        self.applied = index
        if entry.client_id:
            self.clients[entry.client_id] = ClientSlot(entry.request_number, index, abandoned)
            if reply and (index > acked_to or entry.budget_ns or entry.view != self.view):
                out.append(ToClient(entry.client_id, self._reply(entry.client_id)))
        if index > self.app_index:
            self.stats.committed += 1
            out.append(Committed(index, entry.view, entry.client_id, entry.request_number,
                                 entry.payload, abandoned))
        return True

    def _acked_to(self) -> int:
        """Leader: up to where every acknowledging backup has told the clients (see
        ``Replica``) of the entries of this view without a deadline: it prepared them from our
        Prepares of this view, and its PrepareOk, which it sends after its acknowledgements,
        covers them. A reply would be a duplicate; if the acknowledgement was lost, the
        client's retry gets the reply from the client table. 0 when nobody acknowledges.
        Computed once per ``_apply`` (no PrepareOk arrives during one)."""
        ackers = self.ackers[self.me]
        if not ackers:
            return 0
        acked = self.acked
        return min(acked.get(replica, 0) for replica in ackers)

    def _enter_normal_backup(self, commit: int, now: int, out: list[Outbox]) -> None:
        """Shared by StartView and recovery: we hold a prefix of the leader's log of ``view``."""
        self.vc_attempts = 0
        self.pending.clear()
        self.pending_clients.clear()
        self.acked.clear()
        self._mark("heard", now)
        self.commit_seen = max(commit, self.commit)
        self._set_commit(commit, out)
        out.append(Send(self.leader_of(self.view), self._prepare_ok(self.op)))

    @abc.abstractmethod
    def _flush(self, now: int, out: list[Outbox]) -> None:
        """Prepare queued requests: normal operation, defined by the replica."""

    def _reply(self, client_id: int) -> Reply:
        slot = self.clients[client_id]
        return Reply(
            self.config.cluster,
            self.me,
            self.view,
            client_id,
            slot.request_number,
            slot.index,
            slot.abandoned,
        )
