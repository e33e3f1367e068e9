"""Deadlines in the Byzantine mode: decided from 2f + 1 replicas' own clocks, through the log.

Why not the crash mode's rule (``consensus/deadline.py``): it reads the leader's clock stamps from
the log, and a Byzantine primary could stamp anything. Here no single replica's clock decides.

The rule.

* Each replica measures, for every new request with ``budget_ns > 0`` that a batch executes, the
  time on its own clock from when it first saw the request (from the client, or inside a
  pre-prepare) to when it executed the batch. Having executed batch ``s``, it broadcasts a
  :class:`~agora.decision.bft.messages.Timing` ``(s, elapsed...)``, always signed. A replica
  that never saw a request before executing it (state transfer) says :data:`LATE`.
* The primary puts 2f + 1 timings of ``s`` from distinct replicas into a later batch as a
  *certificate*: a request of client 0 whose ``request_number`` is ``s`` and whose payload is the
  signed timings (:func:`certificate`). A backup accepts that pre-prepare only if every timing
  in it verifies (:meth:`Deadlines._request_ok`). Signatures, not MACs: the primary can check
  what it certifies, so a faulty replica cannot slip in a timing whose MAC is good for the
  primary and bad for some backups (PBFT's authenticator problem), which would make every
  primary's certificate fail somewhere and stall the verdict for ever. The price: one
  signature and n - 1 verifications per replica for each batch that carries deadlines (about
  36 + 3 x 119 us of CPU at n = 4 on the benchmark machine).
* Executing the certificate decides ``s``: its request ``k`` is abandoned iff the (f + 1)-th
  smallest of the 2f + 1 values at position ``k`` exceeds its budget (:func:`verdicts`; a timing
  of the wrong shape counts as ``LATE``). Requests are delivered (``Committed``, client replies)
  in log order, so those after a deadline request wait for its verdict, as in crash mode.

Why it is sound: at most f of the 2f + 1 values are faulty replicas', so the (f + 1)-th smallest
lies between two correct replicas' measurements: no coalition of f replicas, the primary among
them, abandons a request that every correct replica saw executed in time, or keeps one that every
correct replica saw late. It is deterministic: the certificate is in the agreed log, so every
replica (one that catches up by state transfer or replays its records too) reads the same values.
A certificate for a batch already decided earlier in the log is ignored.

Liveness: a replica re-broadcasts its timings of undecided batches every ``resend_ns``, and a
batch whose verdict has not executed ``request_timeout_ns`` after this replica executed it counts
like a waiting request (a primary withholding certificates is voted out). Cost: on an idle
cluster a deadline request waits one more PBFT round for the certificate's batch; under load,
certificates ride in other requests' batches.

What it measures: each replica's receipt-to-execution time on its own clock. Clocks are never
compared, so nothing needs synchronising; a clock jump distorts only that replica's own value
(a backward jump reads as 0).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import msgspec

from agora.decision.bft.messages import ClientRequest, Sealed, Timing, decode_inner, encode
from agora.decision.consensus.messages import Broadcast, Committed, Outbox

if TYPE_CHECKING:
    from agora.decision.bft.replica import BftReplica

LATE = 1 << 62  # "I did not see it in time": larger than any budget
_certificate_decoder = msgspec.msgpack.Decoder(tuple[Sealed, ...])


class Held:
    """An executed request not delivered yet: ``abandoned`` is None until its verdict."""

    __slots__ = ("abandoned", "index", "request")

    def __init__(self, index: int, request: ClientRequest, abandoned: bool | None) -> None:
        self.index, self.request, self.abandoned = index, request, abandoned


class Undecided:
    """An executed batch with deadline requests whose certificate has not executed yet."""

    __slots__ = ("elapsed", "held", "since_ns", "timing")

    def __init__(self, held: list[Held], since_ns: int, elapsed: tuple[int, ...]) -> None:
        self.held, self.since_ns, self.elapsed = held, since_ns, elapsed
        self.timing: Sealed | None = None  # this replica's own, once sealed


def certificate(cluster: int, seq: int, timings: tuple[Sealed, ...]) -> ClientRequest:
    """The pseudo-request (client 0) that carries batch ``seq``'s timings into the log."""
    return ClientRequest(cluster, 0, seq, 0, encode(timings))


def timings_of(request: ClientRequest) -> tuple[Sealed, ...] | None:
    try:
        return _certificate_decoder.decode(request.payload)
    except msgspec.MsgspecError:
        return None


def verdicts(budgets: list[int], timings: tuple[Sealed, ...], seq: int, f: int) -> list[bool]:
    """Abandoned or not, per deadline request of batch ``seq``: the (f + 1)-th smallest of the
    certificate's values against the budget. Reads the bodies only (backups checked the seals
    before voting for the batch), so a replica replaying the log decides the same."""
    columns: list[list[int]] = [[] for _ in budgets]
    for sealed in timings:
        try:
            m = decode_inner(sealed.body)
        except msgspec.MsgspecError:
            m = None
        ok = isinstance(m, Timing) and m.seq == seq and len(m.elapsed) == len(budgets)
        for column, value in zip(columns, m.elapsed if ok else [LATE] * len(budgets),
                                 strict=True):
            column.append(value if value >= 0 else LATE)  # typed ints: only the sign
    return [sorted(column)[min(f, len(column) - 1)] > budget if column else True
            for column, budget in zip(columns, budgets, strict=True)]


class Deadlines:
    """The replica's side of the rule (a mixin of ``BftReplica``, whose state it uses)."""

    def _init_deadlines(self: BftReplica) -> None:
        self.seen_ns: dict[tuple[int, int], int] = {}  # deadline request -> first seen here
        self.held: deque[Held] = deque()  # executed, not delivered, in index order
        self.delivered = 0  # the last request index delivered
        self.undecided: dict[int, Undecided] = {}  # batch seq -> its open verdicts
        self.timings: dict[int, dict[int, Sealed]] = {}  # batch seq -> replica -> timing
        self.certified: set[int] = set()  # batches whose certificate we pre-prepared (primary)
        self.timing_resend_ns = 0

    def _saw(self: BftReplica, request: ClientRequest) -> None:
        """Start this replica's clock for a deadline request not executed yet."""
        if request.budget_ns > 0 and request.client_id > 0 and request.request_number > (
                self.clients.get(request.client_id, (0, 0, False))[0]):
            self.seen_ns.setdefault((request.client_id, request.request_number), self.now)

    def _hold(self: BftReplica, seq: int, held: list[Held],
              elapsed: tuple[int, ...] | None) -> tuple[int, ...]:
        """Batch ``seq`` executed ``held`` (its new requests): its deadline requests wait for a
        certificate; returns this replica's measurement (given, when replaying a record)."""
        self.held.extend(held)
        waiting = [h for h in held if h.abandoned is None]
        if not waiting:
            self.timings.pop(seq, None)
            return ()
        if elapsed is None or len(elapsed) != len(waiting):
            elapsed = tuple(self._elapsed(h.request) for h in waiting)
        self.undecided[seq] = Undecided(waiting, self.now, elapsed)
        return elapsed

    def _elapsed(self: BftReplica, request: ClientRequest) -> int:
        seen = self.seen_ns.pop((request.client_id, request.request_number), None)
        return LATE if seen is None or self.restoring else max(0, self.now - seen)

    def _decide(self: BftReplica, cert: ClientRequest) -> None:
        """A certificate executes: the verdicts of its batch, unless decided before."""
        open_ = self.undecided.pop(cert.request_number, None)
        self.timings.pop(cert.request_number, None)
        self.certified.discard(cert.request_number)  # only undecided batches are looked up
        if open_ is None:
            return
        found = verdicts([h.request.budget_ns for h in open_.held], timings_of(cert) or (),
                         cert.request_number, self.f)
        for h, abandoned in zip(open_.held, found, strict=True):
            h.abandoned = abandoned
            self.stats.deadline_total += 1
            self.stats.deadline_abandoned += abandoned

    def _deliver(self: BftReplica, out: list[Outbox]) -> None:
        """Emit executed requests in index order while their verdicts are known."""
        while self.held and self.held[0].abandoned is not None:
            h = self.held.popleft()
            r = h.request
            self.delivered = h.index
            out.append(Committed(h.index, 0, r.client_id, r.request_number, r.payload,
                                 h.abandoned))
            if self.clients.get(r.client_id, (0, 0, False))[0] == r.request_number:
                self.clients[r.client_id] = (r.request_number, h.index, h.abandoned)
                self._reply(r.client_id, out)

    # ---------------------------------------------------------------- timings

    def _send_timing(self: BftReplica, seq: int, out: list[Outbox]) -> None:
        open_ = self.undecided[seq]
        if open_.timing is None:
            open_.timing = self._seal(Timing(self.config.cluster, self.me, seq, open_.elapsed))
            self.timings.setdefault(seq, {})[self.me] = open_.timing
        out.append(Broadcast(open_.timing))

    def _decided(self: BftReplica, seq: int) -> bool:
        """Batch ``seq`` executed here and owes no verdict (decided, or had no deadlines)."""
        return seq <= self.executed and seq not in self.undecided

    def _on_timing(self: BftReplica, m: Timing, sealed: Sealed, out: list[Outbox]) -> None:
        if self._decided(m.seq) or m.seq > self.executed + self.config.watermark_window:
            return  # decided, without deadlines, or out of range
        self.timings.setdefault(m.seq, {}).setdefault(m.replica, sealed)
        if self.is_primary:
            self._flush(out)

    def _resend_timings(self: BftReplica, now: int, out: list[Outbox]) -> None:
        """Our timings of undecided batches again (lost, or a new primary needs them)."""
        if not self.undecided or 0 <= now - self.timing_resend_ns < self.config.resend_ns:
            return
        self.timing_resend_ns = now
        for seq in list(self.undecided)[:self.config.pipeline_max]:
            self._send_timing(seq, out)

    def _certificates(self: BftReplica, room: int) -> list[ClientRequest]:
        """As primary: certificates for batches with 2f + 1 timings, not yet pre-prepared."""
        found: list[ClientRequest] = []
        quorum = 2 * self.f + 1
        for seq in self.undecided:
            if len(found) >= room:
                break
            by = self.timings.get(seq, {})
            if seq not in self.certified and len(by) >= quorum:
                self.certified.add(seq)
                found.append(certificate(self.config.cluster, seq,
                                         tuple(by[r] for r in sorted(by)[:quorum])))
        return found

    def _request_ok(self: BftReplica, request: ClientRequest, slot: int) -> bool:
        """A backup's check of one request of a pre-prepare for ``slot``."""
        if request.client_id != 0:
            return self.keys.client_ok(self.me, request)
        seq = request.request_number
        if not 0 < seq < slot or request.budget_ns or request.macs:
            return False
        if self._decided(seq):
            return True  # decided earlier in the log: executing it will ignore it
        timings = timings_of(request)
        if timings is None or len(timings) != 2 * self.f + 1:
            return False
        senders: set[int] = set()
        for sealed in timings:
            if sealed.cluster != self.config.cluster or sealed.sender in senders:
                return False
            senders.add(sealed.sender)
            m = self.keys.open(self.me, sealed, self.config.auth)  # signed: ours verify too
            if not isinstance(m, Timing) or m.seq != seq:
                return False
        return True

    def _mark_assigned(self: BftReplica, batch: tuple[ClientRequest, ...]) -> None:
        """Requests and certificates in a slot of this view: the primary does not propose them
        again in this view."""
        for r in batch:
            if r.client_id == 0:
                self.certified.add(r.request_number)
            else:
                self.assigned.add((r.client_id, r.request_number))
