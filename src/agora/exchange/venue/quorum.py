"""Venue-side order quorum: a participant's request is submitted only once k of its sessions agree.

Why
---
A decision cluster is one participant with one FIX session per node; every node sends every
decided command. Without a quorum the venue keeps the first copy of a ClOrdID, so one faulty
(Byzantine) node could race the others with an altered order, or send one nobody decided. With
``order_quorum = k`` (``[[participants]]``, k = f + 1 for n = 3f + 1 nodes) the venue trusts a
request only when k distinct sessions of the participant sent the same command under the same
ClOrdID (like a PBFT client trusting f + 1 matching replies): f faulty nodes alone can neither
place, alter nor cancel an order.

Rules (``QuorumGate``, pure: no I/O, time passed in as int ns)
-----------------------------------------------------------------
* A copy is ``(session, request, command)``: ``command`` is what copies are compared by, the
  venue command the request maps to (``Submit.command``: NewOrder / CancelOrder / ReplaceOrder,
  frozen and hashable); for a replace the gateway puts the request's total OrderQty in place of
  the leaves it maps to (those depend on the CumQty when the copy arrived). The request's
  TransactTime / SendingTime (different on every node) never enter it. Copies are keyed by the
  request's ClOrdID.
* ``offer``: when k distinct sessions hold equal commands for a ClOrdID the gate answers
  ``Reached`` (the command, the agreeing copies in arrival order and every conflicting copy) and
  forgets the ClOrdID except in ``released`` (bounded, oldest first out). Until then ``Held``.
  A session's second copy of a ClOrdID counts once: equal content is absorbed (``Held``, the
  first copy's outcome answers it); different content is ``Refused`` as a conflict.
* Each held copy expires ``timeout_ns`` after it arrived (``expire``): its session is told no
  quorum formed. So a quorum needs k equal copies within one timeout of each other.
* Bound: a session may hold at most ``max_held`` copies and parked requests at once; beyond, its
  request is ``Refused`` with the reason (per session, so a faulty session flooding fresh
  ClOrdIDs fills only its own share: a participant holds at most sessions x ``max_held``).
* *Parked* requests: a cancel / replace naming (OrigClOrdID) a ClOrdID that is still held cannot
  be mapped yet (its order does not exist). The gateway parks it under that ClOrdID (``park``)
  and maps it when the ClOrdID leaves the gate (``unpark``: accepted, or every copy expired), or
  at its own timeout; then it is offered like any other request.
* Nothing here is journaled: a venue crash loses held copies and parked requests. Decision nodes
  re-send every unresolved command on every logon (``agora.trading.decision_node``), so a quorum
  re-forms after the restart.

The FIX gateway applies the gate (``fix_gateway``); the OUCH gateway refuses the logins of a
participant with a quorum (one OUCH session would enter orders alone).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agora.core.events import CancelOrder, NewOrder, ReplaceOrder

Command = NewOrder | CancelOrder | ReplaceOrder
REMEMBER_RELEASED = 65_536
"""ClOrdIDs (per participant) whose released command the gate remembers, to refuse late copies
(cancels) and to log a late conflicting copy; a forgotten one is simply held again (safe: it
needs a new quorum)."""


@dataclass(frozen=True, slots=True)
class Copy:
    """One session's copy of a request: the typed FIX request and the command it maps to."""

    session: str
    request: Any  # NewOrderSingle | OrderCancelRequest | OrderCancelReplaceRequest
    command: Command


@dataclass(frozen=True, slots=True)
class Held:
    """Waiting for more copies (or absorbed: the session's own equal second copy)."""

    absorbed: bool = False


@dataclass(frozen=True, slots=True)
class Reached:
    """k sessions agree: submit ``command`` once; refuse every ``conflicting`` copy."""

    command: Command
    agreeing: list[Copy]
    conflicting: list[Copy]


@dataclass(frozen=True, slots=True)
class Refused:
    """Not held: ``text`` says why; ``conflict``: the session contradicted its own copy."""

    text: str
    conflict: bool = False


@dataclass(slots=True)
class _Slot:
    copy: Copy
    deadline: int


@dataclass(slots=True)
class _Parked:
    session: str
    item: Any  # what the gateway maps later (the raw FIX message)
    deadline: int


@dataclass(slots=True)
class Expired:
    """What ``expire`` found due: copies without a quorum, ClOrdIDs that left the gate (their
    parked requests are due too) and parked requests past their own timeout."""

    copies: list[tuple[str, Copy, bool]] = field(default_factory=list)  # (ClOrdID, copy, disputed)
    gone: list[str] = field(default_factory=list)
    parked: list[tuple[str, Any]] = field(default_factory=list)  # (session, item)


class QuorumGate:
    """The held copies of one participant (see the module notes)."""

    def __init__(self, participant: str, quorum: int, timeout_ns: int, max_held: int,
                 remember: int = REMEMBER_RELEASED) -> None:
        if quorum < 1 or timeout_ns <= 0 or max_held < 1:
            raise ValueError("quorum, timeout and max_held must be positive")
        self.participant = participant
        self.quorum = quorum
        self.timeout_ns = timeout_ns
        self.max_held = max_held
        self.remember = remember
        self.held: dict[str, dict[str, _Slot]] = {}  # ClOrdID -> session -> its copy
        self.parked: dict[str, list[_Parked]] = {}  # held ClOrdID -> requests naming it
        self.load: Counter[str] = Counter()  # session -> copies + parked requests it holds
        self.released: dict[str, Command] = {}  # ClOrdID -> the command its quorum accepted

    def is_held(self, cl_ord_id: str) -> bool:
        return cl_ord_id in self.held

    def _full(self, session: str) -> Refused | None:
        if self.load[session] >= self.max_held:
            return Refused(f"quorum: session {session} already holds {self.max_held} requests "
                           f"awaiting a quorum (quorum_max_held)")
        return None

    def offer(self, copy: Copy, now: int) -> Held | Reached | Refused:
        cl = copy.command.client_order_id
        slots = self.held.get(cl)
        mine = slots.get(copy.session) if slots else None
        if mine is not None:
            if mine.copy.command == copy.command:
                return Held(absorbed=True)
            return Refused(f"quorum: ClOrdID {cl} conflicts with the copy this session sent "
                           f"before", conflict=True)
        full = self._full(copy.session)
        if full is not None:
            return full
        if slots is None:
            slots = self.held[cl] = {}
        slots[copy.session] = _Slot(copy, now + self.timeout_ns)
        self.load[copy.session] += 1
        agreeing = [s.copy for s in slots.values() if s.copy.command == copy.command]
        if len(agreeing) < self.quorum:
            return Held()
        conflicting = [s.copy for s in slots.values() if s.copy.command != copy.command]
        self._forget(cl)
        self.released[cl] = copy.command
        while len(self.released) > self.remember:
            del self.released[next(iter(self.released))]
        return Reached(copy.command, agreeing, conflicting)

    def _forget(self, cl: str) -> None:
        for session in self.held.pop(cl, {}):
            self._unload(session)

    def _unload(self, session: str) -> None:
        self.load[session] -= 1
        if self.load[session] <= 0:
            del self.load[session]

    def park(self, target: str, session: str, item: Any, now: int) -> Refused | None:
        """Hold ``item`` (a request naming the held ClOrdID ``target``) until ``unpark``."""
        full = self._full(session)
        if full is not None:
            return full
        self.parked.setdefault(target, []).append(_Parked(session, item, now + self.timeout_ns))
        self.load[session] += 1
        return None

    def unpark(self, target: str) -> list[tuple[str, Any]]:
        """The requests parked under ``target``, in arrival order (now to be mapped)."""
        out = []
        for p in self.parked.pop(target, ()):
            self._unload(p.session)
            out.append((p.session, p.item))
        return out

    def expire(self, now: int) -> Expired:
        """Drop every copy and parked request whose deadline has passed (see ``Expired``)."""
        due = Expired()
        for cl in [cl for cl, slots in self.held.items()
                   if any(s.deadline <= now for s in slots.values())]:
            slots = self.held[cl]
            disputed = len({s.copy.command for s in slots.values()}) > 1
            for session in [s for s, slot in slots.items() if slot.deadline <= now]:
                due.copies.append((cl, slots.pop(session).copy, disputed))
                self._unload(session)
            if not slots:
                del self.held[cl]
                due.gone.append(cl)
        for target in [t for t, ps in self.parked.items()
                       if t in due.gone or any(p.deadline <= now for p in ps)]:
            keep = []
            for p in self.parked.pop(target):
                if target in due.gone or p.deadline <= now:
                    self._unload(p.session)
                    due.parked.append((p.session, p.item))
                else:
                    keep.append(p)
            if keep:
                self.parked[target] = keep
        return due
