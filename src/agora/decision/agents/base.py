"""The agent API: inputs in, signed proposals out.

An :class:`Agent` is called with what happened and returns the proposals it wants committed:

- ``on_book(view)``: a book view (``agora.feed.book.BookView``, levels best first);
- ``on_fill(fill)``: one of the account's own executions (:class:`Fill`; see :func:`fills_for`);
- ``on_decisions(decisions, now_ns=None)``: what the aggregation rules made of the committed log;
- ``on_fair_value(fair, now_ns=None)``: a symbol's committed fair value (the rules' median of the
  views);
- ``on_tick(now_ns)``: time passing;
- ``on_order_done(client_order_id, ts)``: the venue says an order is over (cancelled, expired,
  rejected, or a cancel refused because the order had filled); any order of the account, not
  only the agent's own;
- ``on_ended(decision_id)``: the committed log ended an order on reporters' word
  (``Outcome.ended``; nothing to do by default: the venue's own reports reach the agent too).

Agents never read a clock: time comes in the calls (``view.ts``, ``fill.ts``, ``now_ns``) and
``now_ns`` is the largest seen so far. A live driver passes ``now_ns`` with decisions and fair
values too: an action proposed on one is timed from the agent's ``now_ns``, and a stale one
(none yet, before the first book or tick) would make it expire at the next input that brings
the time, before its decision could be recognised.

Each proposal carries the agent's name, a ``seq`` that grows by one per proposal (from
``last_seq``: persist it to restart), the agent's ``budget_ns`` and an Ed25519 signature
(``signing.py``).

Subclasses implement hooks that return bare actions (OrderIntent, CancelIntent, Veto, FairValue,
OrderDone);
this base turns them into signed proposals and keeps the bookkeeping every agent needs:

- *outstanding*: actions proposed and not yet seen decided. A decision is the agent's own when
  it voted for it (``Decision.voters``: the oldest outstanding action of the decision's vote key
  is settled, so a vote between agents that proposed different prices yields an order each of
  them recognises), or when an outstanding action equals its action (FIFO): a straggler whose
  ballot the rules absorb after the decision was made, as replicas of one deterministic strategy
  propose identical intents. An action not seen decided within ``pending_ttl_ns`` of being
  proposed (default twice the budget) is handed to ``_expired`` (refused, vetoed, abandoned).
- *orders*: the agent's decided orders still open (by decision id), with their leaves quantity,
  updated by fills (``client_order_id``). A decided cancel takes its order out of ``orders`` at
  once (the strategy stops counting on it) but not out of the account: the venue may have filled
  it before the cancel reached it, and such a fill, reported after the decision, still belongs
  to the order (``_fill`` gets it) until ``on_order_done`` says the venue finished with it (for
  drivers that never say, the oldest are forgotten past ``closing_max`` of them).

Limitations: the equality rule cannot tell a straggler from another agent's identical intent
decided while one's own is outstanding (taken for one's own), and a decision that arrives after
its action expired is recognised only through ``voters`` (the TTL is twice the commit budget to
make a late one unlikely).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import msgspec

from agora.core.enums import Side
from agora.core.events import (
    CancelIntent,
    Decision,
    Execution,
    FairValue,
    OrderDone,
    OrderIntent,
    Proposal,
    Veto,
)
from agora.decision.rules import Member, Role, vote_key
from agora.decision.signing import AgentKey, sign
from agora.feed.book import BookView

Action = OrderIntent | CancelIntent | Veto | FairValue | OrderDone

DEFAULT_BUDGET_NS = 50_000_000  # 50 ms to commit, then the proposal is abandoned
DEFAULT_CLOSING_MAX = 4_096  # cancelled orders whose late fills still count, at most


class Fill(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One execution of the account's own order: ``leaves_qty`` is what stays open after it."""

    ts: int
    symbol: str
    side: Side
    qty: int
    price: int  # Price(4)
    client_order_id: str
    leaves_qty: int = 0


def fills_for(execution: Execution, participant: str) -> list[Fill]:
    """The fills ``participant`` got from one trade (two if it traded with itself)."""
    e = execution
    fills = []
    if e.buy_participant == participant:
        fills.append(
            Fill(e.ts, e.symbol, Side.BUY, e.qty, e.price, e.buy_client_order_id, e.buy_leaves)
        )
    if e.sell_participant == participant:
        fills.append(
            Fill(e.ts, e.symbol, Side.SELL, e.qty, e.price, e.sell_client_order_id, e.sell_leaves)
        )
    return fills


class LiveOrder(msgspec.Struct):
    """One of the agent's decided orders, still open as far as the agent knows."""

    decision_id: str
    client_order_id: str
    intent: OrderIntent
    leaves_qty: int


class Agent:
    """Base of every agent. Override the ``_book``/``_fill``/... hooks; call the ``on_*`` ones."""

    role: ClassVar[Role]

    def __init__(
        self,
        name: str,
        key: AgentKey,
        *,
        budget_ns: int = DEFAULT_BUDGET_NS,
        pending_ttl_ns: int | None = None,
        last_seq: int = 0,
        closing_max: int = DEFAULT_CLOSING_MAX,
    ) -> None:
        """``last_seq``: the highest seq this agent ever proposed; a restarted agent must resume
        above it, or the rules drop its proposals as duplicates."""
        if budget_ns < 0:
            raise ValueError("budget_ns must be >= 0 (0: no deadline)")
        if pending_ttl_ns is None:  # without a deadline, give up waiting after a second
            pending_ttl_ns = 2 * budget_ns if budget_ns else 1_000_000_000
        self.name = name
        self.key = key
        self.budget_ns = budget_ns
        self.pending_ttl_ns = pending_ttl_ns
        self.seq = last_seq
        self.now_ns = 0
        # (expiry ns, action, symbol), in proposal order: proposed, not yet seen decided
        self.outstanding: list[tuple[int, Action, str | None]] = []
        self.orders: dict[str, LiveOrder] = {}  # decision id -> my open decided order
        self._by_client_id: dict[str, str] = {}  # client order id -> decision id
        # client order id -> order: its cancel decided, the venue not done with it, oldest first
        self._closing: dict[str, LiveOrder] = {}
        self.closing_max = closing_max

    def member(self, weight: int = 1) -> Member:
        """This agent's roster entry for :class:`~agora.decision.rules.RulesConfig`."""
        return Member(self.role, self.key.public_bytes, weight)

    # ------------------------------------------------------------------ inputs

    def on_book(self, view: BookView) -> list[Proposal]:
        return self._propose(self._observe(view.ts) + self._book(view))

    def on_fill(self, fill: Fill) -> list[Proposal]:
        actions = self._observe(fill.ts)
        decision_id = self._by_client_id.get(fill.client_order_id)
        order = self.orders.get(decision_id) if decision_id is not None else None
        if order is None and fill.client_order_id in self._closing:
            order = self._closing[fill.client_order_id]
        if order is not None:
            order.leaves_qty = fill.leaves_qty
            if fill.leaves_qty <= 0:
                self._close(order.decision_id)
                self._closing.pop(order.client_order_id, None)
        return self._propose(actions + self._fill(fill, order))

    def on_order_done(self, client_order_id: str, ts: int) -> list[Proposal]:
        actions = self._observe(ts)
        self._closing.pop(client_order_id, None)
        decision_id = self._by_client_id.get(client_order_id)
        if decision_id is not None:  # ended by the venue itself (expiry, kill switch, reject)
            self._close(decision_id)
        return self._propose(actions + self._order_done(client_order_id))

    def on_decisions(self, decisions: Sequence[Decision],
                     now_ns: int | None = None) -> list[Proposal]:
        actions = [] if now_ns is None else self._observe(now_ns)
        for decision in decisions:
            mine = self._claim(decision)
            action = decision.action
            if isinstance(action, CancelIntent):
                self._cancelling(action.decision_id)
            elif mine:
                order = LiveOrder(
                    decision.decision_id, decision.client_order_id, action, action.qty
                )
                self.orders[decision.decision_id] = order
                self._by_client_id[decision.client_order_id] = decision.decision_id
            actions += self._decided(decision, mine)
        return self._propose(actions)

    def on_fair_value(self, fair: FairValue, now_ns: int | None = None) -> list[Proposal]:
        actions = [] if now_ns is None else self._observe(now_ns)
        return self._propose(actions + self._fair_value(fair))

    def on_tick(self, now_ns: int) -> list[Proposal]:
        return self._propose(self._observe(now_ns) + self._tick(now_ns))

    def on_ended(self, decision_id: str) -> None:
        """The committed log ended this order decision (see the module notes)."""

    # ------------------------------------------------------------------ hooks (override)

    def _book(self, view: BookView) -> list[Action]:
        return []

    def _fill(self, fill: Fill, order: LiveOrder | None) -> list[Action]:
        """``order``: the agent's own order this fill belongs to, None for another agent's."""
        return []

    def _decided(self, decision: Decision, mine: bool) -> list[Action]:
        return []

    def _fair_value(self, fair: FairValue) -> list[Action]:
        return []

    def _tick(self, now_ns: int) -> list[Action]:
        return []

    def _order_done(self, client_order_id: str) -> list[Action]:
        """The venue is done with an order of the account (the agent's own or not)."""
        return []

    def _expired(self, action: Action) -> list[Action]:
        """An outstanding action was not decided in time (refused, vetoed or abandoned)."""
        return []

    # ------------------------------------------------------------------ machinery

    def orders_for(self, symbol: str) -> list[LiveOrder]:
        return [o for o in self.orders.values() if o.intent.symbol == symbol]

    def outstanding_for(self, symbol: str) -> list[Action]:
        return [action for _, action, sym in self.outstanding if sym == symbol]

    def _propose(self, actions: list[Action]) -> list[Proposal]:
        proposals = []
        expiry = self.now_ns + self.pending_ttl_ns
        for action in actions:
            self.seq += 1
            proposal = Proposal(self.name, self.seq, self.budget_ns, action)
            proposals.append(sign(proposal, self.key))
            if isinstance(action, OrderIntent):
                self.outstanding.append((expiry, action, action.symbol))
            elif isinstance(action, CancelIntent):
                order = self.orders.get(action.decision_id)
                symbol = None if order is None else order.intent.symbol
                self.outstanding.append((expiry, action, symbol))
        return proposals

    def _observe(self, ts: int) -> list[Action]:
        """Advance the agent's time to ``ts``; what expiring outstanding actions lead to."""
        self.now_ns = max(self.now_ns, ts)
        actions: list[Action] = []
        while self.outstanding and self.outstanding[0][0] < self.now_ns:
            _, action, _ = self.outstanding.pop(0)
            actions += self._expired(action)
        return actions

    def _claim(self, decision: Decision) -> bool:
        """Whether ``decision`` is this agent's, settling the outstanding action it answers
        (see the module notes)."""
        action = decision.action
        voted = self.name in decision.voters
        key = vote_key(action)
        for i, (_, mine, _) in enumerate(self.outstanding):
            if mine == action or (voted and vote_key(mine) == key):
                del self.outstanding[i]
                return True
        return voted

    def _cancelling(self, decision_id: str) -> None:
        """A cancel of the order was decided: closed for the strategy, its fills still counted."""
        order = self.orders.get(decision_id)
        if order is not None:
            self._close(decision_id)
            self._closing[order.client_order_id] = order
            if len(self._closing) > self.closing_max:
                del self._closing[next(iter(self._closing))]

    def _close(self, decision_id: str) -> None:
        order = self.orders.pop(decision_id, None)
        if order is not None:
            self._by_client_id.pop(order.client_order_id, None)

