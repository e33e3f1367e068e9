"""From a replica's committed log to exchange commands, so every replica may send them safely.

Every replica of the decision cluster runs one :class:`DecisionApplier` over its own ``Committed``
outbox items. The rules are a pure function of the log, so every replica derives the same
:class:`~agora.core.events.Decision` list and therefore the same commands, with the same
``client_order_id`` (``session + base36(log index)``). Whichever replica's copy reaches the venue
first is accepted; the venue refuses every later copy (``DUPLICATE_CLIENT_ORDER_ID``). That is
how a decision takes effect exactly once without electing a sender: no failover gap when the
sending replica dies, at the cost of ``n`` copies of each order on the wire.

Mapping: an ``OrderIntent`` decision becomes a LIMIT :class:`~agora.core.events.NewOrder` for the
cluster's one participant; a ``CancelIntent`` decision becomes a
:class:`~agora.core.events.CancelOrder`, which needs the venue's ``order_id`` of the target. The
log cannot know it: the applier learns it from ``OrderAccepted`` events fed to
:meth:`DecisionApplier.on_event` (the venue's reply or drop copy; a replica whose own copy was
refused as a duplicate learns it only from another copy's accept). A cancel decided before the
target's accept is known is **held**, not dropped or guessed, and released by the
:meth:`~DecisionApplier.on_event` call that brings the accept. Duplicate cancels are harmless:
the first removes the order, later copies find no open order (``UNKNOWN_ORDER``).

Venues that resolve a cancel by the target's client order id (FIX 4.4 OrigClOrdID) need no
venue order id: with ``hold_cancels=False`` a cancel goes out at once, its command carrying the
order id if known and 0 otherwise, and :attr:`Outgoing.target` names the target's
``client_order_id`` either way.

Observers: ``on_outcome(entry, outcome)``, if given, sees every decoded entry with the rules'
:class:`~agora.decision.rules.Outcome` (verdict, decision, committed fair value), in log order:
how a node hosting agents feeds them what the log decided without a second aggregator, and how
whoever wants the decisions' history keeps it (the applier keeps none).

Memory: what an order costs the applier ends with the order's cancel decision (its command and
ids are dropped then: the rules decide no second cancel of it) or with the reporters' word that
the venue is done with it (``Outcome.ended``, rules item 7), so a session's memory follows the
orders still open, not the orders ever decided. Without reporters in the roster an order that
fills stays until the session ends (the log does not know fills, so neither do the rules' live
orders); so does the venue id of an order whose accept arrives after its end (with
``hold_cancels=False``, or a second copy of the accept).

Replays: a restarted replica re-emits committed entries after its ``applied_index``. The applier
is the application state that point refers to, so entries at or below the last index it
consumed are skipped (they were already turned into commands); a gap raises, since the rules
must see every entry. Pure: no I/O, no clocks, no exchange import (layering).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import msgspec

from agora.core.enums import OrderType
from agora.core.events import (
    CancelIntent,
    CancelOrder,
    Decision,
    NewOrder,
    OrderAccepted,
    OrderIntent,
    Proposal,
)
from agora.decision.consensus.messages import Committed
from agora.decision.rules import Aggregator, CommittedProposal, Outcome, RulesConfig

VenueCommand = NewOrder | CancelOrder

_proposal_decoder = msgspec.msgpack.Decoder(Proposal)

OutcomeHook = Callable[[CommittedProposal, Outcome], None]


class Outgoing(NamedTuple):
    """A command to send and the decision it carries out (the sender's audit trail)."""

    decision: Decision
    command: VenueCommand
    order: NewOrder | None = None
    """For a cancel, the order it cancels (a FIX cancel names its symbol and side); else None."""

    @property
    def target(self) -> str:
        """For a cancel, the client_order_id of the order it cancels (FIX OrigClOrdID); else
        ""."""
        return "" if self.order is None else self.order.client_order_id


class ApplierState(msgspec.Struct, frozen=True, array_like=True):
    """A :class:`DecisionApplier`'s own state but its rules (a node saves both, ``node_state``)."""

    applied_index: int
    counts: dict[str, int]
    orders: dict[str, NewOrder]
    order_ids: dict[str, int]
    held: dict[str, tuple[Decision, NewOrder]]


class DecisionApplier:
    """One replica's committed log -> decisions -> exchange commands (see the module notes)."""

    def __init__(self, config: RulesConfig, participant: str, *,
                 hold_cancels: bool = True, on_outcome: OutcomeHook | None = None) -> None:
        if not participant:
            raise ValueError("participant must not be empty")
        self.participant = participant
        self.hold_cancels = hold_cancels  # False: the venue resolves the target's client id
        self.on_outcome = on_outcome
        self.aggregator = Aggregator(config)
        self.applied_index = 0  # last committed index consumed (log indices start at 1)
        # noop, replayed, undecodable, decided, held, released, ended
        self.counts: Counter[str] = Counter()
        self._orders: dict[str, NewOrder] = {}  # live order decision_id -> its command
        self._order_ids: dict[str, int] = {}  # client_order_id -> venue order id
        # target client_order_id -> its cancel decision, and the target
        self._held: dict[str, tuple[Decision, NewOrder]] = {}

    # ------------------------------------------------------------------ the log

    def apply(self, item: Committed) -> list[Outgoing]:
        """Consume the next committed entry; the commands its decisions need now."""
        if item.index <= self.applied_index:
            self.counts["replayed"] += 1  # a restarted replica re-emits: already applied
            return []
        if item.index != self.applied_index + 1:
            raise ValueError(f"committed index {item.index} after {self.applied_index}: a gap")
        self.applied_index = item.index
        if item.client_id == 0:
            self.counts["noop"] += 1
            return []
        try:
            proposal = _proposal_decoder.decode(item.payload)
        except msgspec.DecodeError:  # ValidationError is a DecodeError
            # every replica holds the same bytes, so every replica skips the same entry
            self.counts["undecodable"] += 1
            return []
        entry = CommittedProposal(item.index, proposal, item.abandoned)
        outcome = self.aggregator.apply(entry)
        out: list[Outgoing] = []
        decision = outcome.decision
        if decision is not None:
            self.counts["decided"] += 1
            outgoing = self._outgoing(decision)
            if outgoing is not None:
                out.append(outgoing)
        if outcome.ended is not None:  # the venue is done with it: no cancel will come
            self.counts["ended"] += 1
            ended = self._orders.pop(outcome.ended)
            self._order_ids.pop(ended.client_order_id, None)
        if self.on_outcome is not None:
            self.on_outcome(entry, outcome)
        return out

    def _outgoing(self, decision: Decision) -> Outgoing | None:
        action = decision.action
        if isinstance(action, OrderIntent):
            order = NewOrder(
                self.participant, decision.client_order_id, action.symbol, action.side,
                action.qty, action.price, OrderType.LIMIT, action.tif,
            )
            self._orders[decision.decision_id] = order
            return Outgoing(decision, order)
        assert isinstance(action, CancelIntent)
        # the rules decide a cancel only for a live order decision of this log, and only one
        target = self._orders.pop(action.decision_id)
        order_id = self._order_ids.get(target.client_order_id)
        if order_id is None and self.hold_cancels:
            self._held[target.client_order_id] = (decision, target)
            self.counts["held"] += 1
            return None
        return self._cancel(decision, target, order_id or 0)

    def _cancel(self, decision: Decision, target: NewOrder, order_id: int) -> Outgoing:
        # the order's last command: its venue id is done
        self._order_ids.pop(target.client_order_id, None)
        command = CancelOrder(self.participant, order_id, 0, decision.client_order_id)
        return Outgoing(decision, command, target)

    def state(self) -> ApplierState:
        return ApplierState(self.applied_index, dict(self.counts), self._orders,
                            self._order_ids, self._held)

    def restore(self, state: ApplierState, aggregator: Aggregator) -> None:
        """Become the applier that ``state()`` and ``aggregator`` were taken from."""
        self.applied_index, self.counts = state.applied_index, Counter(state.counts)
        self._orders, self._order_ids, self._held = state.orders, state.order_ids, state.held
        self.aggregator = aggregator

    # ------------------------------------------------------------------ venue feedback

    def on_event(self, event: object) -> list[Outgoing]:
        """Learn from a venue event; the held cancels an ``OrderAccepted`` releases."""
        if not isinstance(event, OrderAccepted) or event.participant != self.participant:
            return []
        held = self._held.pop(event.client_order_id, None)
        if held is None:
            self._order_ids.setdefault(event.client_order_id, event.order_id)
            return []
        self.counts["released"] += 1
        return [self._cancel(*held, event.order_id)]

    def order_id(self, client_order_id: str) -> int | None:
        """The venue order id learned for ``client_order_id``, if any (until its cancel)."""
        return self._order_ids.get(client_order_id)

    @property
    def held(self) -> list[Decision]:
        """Cancel decisions still waiting for their target's accept, in log order."""
        return sorted((d for d, _ in self._held.values()), key=lambda d: d.log_index)


__all__ = ["ApplierState", "DecisionApplier", "OutcomeHook", "Outgoing", "VenueCommand"]
