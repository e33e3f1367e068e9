"""Risk agent: positions, exposure and loss from fills and decisions; vetoes before a breach.

State per symbol (:class:`Book`): signed position, its cost (average-cost basis, Price(4) x
shares), realized P&L, the mark (mid of the last two-sided book, else the last fill price), and
the open quantity of every decided order of the account (all agents', not only this one's),
reduced by fills and removed by decided cancels.

Accounting is exact integer arithmetic. Closing ``c`` of a position ``q`` with cost ``C`` removes
``R = C * |c| // |q|`` of the cost (all of it on a full close) and realizes ``-(c * p) - R``; the
floor's remainder stays in the position's cost, so once flat, realized P&L equals the net cash of
all fills exactly. Unrealized is ``q * mark - C``.

Limits (:class:`RiskLimits`), with usage measured per side against the worst case of that
side's open orders filling: long ``max(0, q + open_buy)``, short ``max(0, open_sell - q)``:

- position: a side's worst case ``>= max_position`` vetoes that side of the symbol (one more
  share would breach the limit; ``Veto(symbol, side=BUY)`` at the long limit), so the orders
  that reduce the position still pass;
- notional: a side's worst case ``* mark >= max_notional`` vetoes that side of the symbol;
- loss: ``-(realized + unrealized)`` over all symbols ``>= max_loss`` vetoes both sides of every
  symbol (``Veto("")``).

A veto is lifted (``Veto(active=False)``) once every usage it covers is below ``release_pct`` %
of its limit: the gap keeps a position sitting at a limit from flapping vetoes into the log. The
agent re-proposes its current veto states every ``reassert_ns`` (a veto lost to a missed deadline
must not stay lost); the rules treat a repeat as a no-op.

Limitations: cancels are taken as done when decided, although the venue may still fill the order
before it cancels (fills after that are still counted in the position); marks come from book
mids, so a one-sided book leaves the mark stale.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agora.core.enums import Side
from agora.core.events import CancelIntent, Decision, OrderIntent, Veto
from agora.decision.agents.base import Action, Agent, Fill, LiveOrder
from agora.decision.rules import Role
from agora.decision.signing import AgentKey
from agora.feed.book import BookView

ALL_SYMBOLS = ""


class RiskLimits(msgspec.Struct, frozen=True):
    max_position: int = 10_000  # shares per symbol, worst case with open orders
    max_notional: int = 10**11  # Price(4) x shares per symbol ($10M)
    max_loss: int = 10**9  # Price(4) x shares, whole account, realized + unrealized ($100k)
    release_pct: int = 90  # lift a veto once usage is below this % of the limit
    reassert_ns: int = 1_000_000_000  # re-propose current veto states this often

    def __post_init__(self) -> None:
        if min(self.max_position, self.max_notional, self.max_loss, self.reassert_ns) <= 0:
            raise ValueError("risk limits and reassert_ns must be > 0")
        if not 0 < self.release_pct <= 100:
            raise ValueError("release_pct must be in (0, 100]")


class Book(msgspec.Struct):
    """One symbol's position and exposure, as the risk agent keeps it."""

    qty: int = 0  # signed shares
    cost: int = 0  # signed Price(4) x shares paid for the open position
    realized: int = 0  # Price(4) x shares
    mark: int = 0  # Price(4); 0 until a book or a fill is seen
    open_buy: int = 0
    open_sell: int = 0

    def fill(self, side: Side, qty: int, price: int) -> None:
        """Apply one execution (average-cost basis, exact; see the module notes)."""
        signed = qty if side is Side.BUY else -qty
        if self.qty and (self.qty > 0) != (signed > 0):
            closing = min(abs(signed), abs(self.qty))
            c = closing if signed > 0 else -closing
            removed = self.cost * closing // abs(self.qty)
            self.realized += -(c * price) - removed
            self.cost -= removed
            self.qty += c
            signed -= c
        self.qty += signed
        self.cost += signed * price
        if not self.mark:
            self.mark = price

    @property
    def unrealized(self) -> int:
        return self.qty * self.mark - self.cost

    def worst(self, side: Side) -> int:
        """The largest position on ``side`` (long for BUY, short for SELL) if every open order
        of that side filled; 0 if it would not even reach that side."""
        if side is Side.BUY:
            return max(0, self.qty + self.open_buy)
        return max(0, self.open_sell - self.qty)


class RiskAgent(Agent):
    """Proposes Veto on/off from limits (a RISK-role agent)."""

    role = Role.RISK

    def __init__(
        self, name: str, key: AgentKey, limits: RiskLimits | None = None, **kw: Any
    ) -> None:
        super().__init__(name, key, **kw)  # kw: the Agent options (budget_ns, pending_ttl_ns)
        self.limits = limits or RiskLimits()
        self.books: dict[str, Book] = {}
        self.open: dict[str, tuple[str, Side, int]] = {}  # client id -> (symbol, side, leaves)
        self._client_of: dict[str, str] = {}  # decision id -> client order id
        # (symbol ("" = all), side (None = both)) -> last veto state proposed, and when
        self.vetoes: dict[tuple[str, Side | None], Veto] = {}
        self._sent_ns: dict[tuple[str, Side | None], int] = {}

    def book(self, symbol: str) -> Book:
        return self.books.setdefault(symbol, Book())

    @property
    def pnl(self) -> int:
        """Realized plus unrealized P&L of the account, Price(4) x shares."""
        return sum(b.realized + b.unrealized for b in self.books.values())

    # ------------------------------------------------------------------ inputs

    def _book(self, view: BookView) -> list[Action]:
        if view.bids and view.asks:
            self.book(view.symbol).mark = (view.bids[0].price + view.asks[0].price) // 2
        return self._check(view.symbol)

    def _fill(self, fill: Fill, order: LiveOrder | None) -> list[Action]:
        book = self.book(fill.symbol)
        book.fill(fill.side, fill.qty, fill.price)
        if fill.client_order_id in self.open:
            self._set_open(fill.client_order_id, fill.leaves_qty)
        return self._check(fill.symbol)

    def _decided(self, decision: Decision, mine: bool) -> list[Action]:
        action = decision.action
        if isinstance(action, OrderIntent):
            self.open[decision.client_order_id] = (action.symbol, action.side, 0)
            self._client_of[decision.decision_id] = decision.client_order_id
            self._set_open(decision.client_order_id, action.qty)
            return self._check(action.symbol)
        assert isinstance(action, CancelIntent)
        client_id = self._client_of.pop(action.decision_id, None)
        if client_id is None or client_id not in self.open:
            return []
        symbol = self.open[client_id][0]
        self._set_open(client_id, 0)
        return self._check(symbol)

    def _tick(self, now_ns: int) -> list[Action]:
        due = self.now_ns - self.limits.reassert_ns
        again = [veto for key, veto in self.vetoes.items() if self._sent_ns[key] <= due]
        for veto in again:
            self._sent_ns[(veto.symbol, veto.side)] = self.now_ns
        return [*again, *self._check_loss()]

    # ------------------------------------------------------------------ limits

    def _set_open(self, client_id: str, leaves: int) -> None:
        """Move an open order's leaves quantity to ``leaves`` (0 removes it)."""
        symbol, side, before = self.open[client_id]
        book = self.book(symbol)
        if side is Side.BUY:
            book.open_buy += leaves - before
        else:
            book.open_sell += leaves - before
        if leaves > 0:
            self.open[client_id] = (symbol, side, leaves)
        else:
            del self.open[client_id]

    def _check(self, symbol: str) -> list[Action]:
        lim, book = self.limits, self.book(symbol)
        actions: list[Action] = []
        for side in (Side.BUY, Side.SELL):
            worst = book.worst(side)
            notional = worst * book.mark
            if worst >= lim.max_position:
                reason: str | None = f"position {worst} >= {lim.max_position}"
            elif notional >= lim.max_notional:
                reason = f"notional {notional} >= {lim.max_notional}"
            else:
                below = worst * 100 < lim.release_pct * lim.max_position
                below = below and notional * 100 < lim.release_pct * lim.max_notional
                reason = None if below else ""  # "": within limits, not yet far enough to lift
            actions += self._set_veto(symbol, side, reason)
        return actions + self._check_loss()

    def _check_loss(self) -> list[Action]:
        lim, loss = self.limits, -self.pnl
        if loss >= lim.max_loss:
            reason: str | None = f"loss {loss} >= {lim.max_loss}"
        else:
            reason = None if loss * 100 < lim.release_pct * lim.max_loss else ""
        return self._set_veto(ALL_SYMBOLS, None, reason)

    def _set_veto(self, symbol: str, side: Side | None, reason: str | None) -> list[Action]:
        """reason: a breach (veto on), None (lift), "" (in the gap: keep the current state)."""
        key = (symbol, side)
        current = self.vetoes.get(key)
        active = current is not None and current.active
        if reason:
            if active:
                return []
            veto = Veto(symbol, reason, True, side)
        elif reason is None and active:
            veto = Veto(symbol, "within limits", False, side)
        else:
            return []
        self.vetoes[key] = veto
        self._sent_ns[key] = self.now_ns
        return [veto]
