"""Momentum on order-flow imbalance (OFI), from successive L1 views.

OFI as defined by Cont, Kukanov and Stoikov ("The price impact of order book events", Journal of
Financial Econometrics 12(1), 2014): between two successive top-of-book states ``n - 1`` and
``n`` with best bid ``P^B`` (size ``q^B``) and best ask ``P^A`` (size ``q^A``),

    e_n = 1{P^B_n >= P^B_n-1} q^B_n - 1{P^B_n <= P^B_n-1} q^B_n-1
        - 1{P^A_n <= P^A_n-1} q^A_n + 1{P^A_n >= P^A_n-1} q^A_n-1

so an unchanged bid contributes the change of its size, a higher bid its whole new size, a lower
bid minus its whole old size (and the mirror for the ask). OFI over a window is the sum of the
``e_n``; the paper finds price changes roughly linear in it. Here the window is the last
``window`` book events of the symbol, a plain integer sum (sizes are shares).

Signal: OFI ``>= threshold`` buys ``qty`` at the best ask, ``<= -threshold`` sells at the best
bid, with the configured TimeInForce (IOC by default: take liquidity now or not at all). After a
signal the window restarts empty, so one burst of flow gives one order. Gates: ``cooldown_ns``
between signals per symbol, nothing while an earlier order of the symbol is outstanding, and the
position (own fills plus own open orders) stays within ``max_position`` shares each way.

A view with an empty side breaks the chain (no ``e_n`` across it; the next two-sided view starts
afresh).
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import msgspec

from agora.core.enums import Side, TimeInForce
from agora.core.events import OrderIntent
from agora.decision.agents.base import Action, Agent, Fill, LiveOrder
from agora.decision.rules import Role
from agora.decision.signing import AgentKey
from agora.feed.book import BookView


class L1(NamedTuple):
    bid_price: int
    bid_qty: int
    ask_price: int
    ask_qty: int


def top_of_book(view: BookView) -> L1 | None:
    if not view.bids or not view.asks:
        return None
    bid, ask = view.bids[0], view.asks[0]
    return L1(bid.price, bid.qty, ask.price, ask.qty)


def ofi_event(prev: L1, cur: L1) -> int:
    """``e_n`` of Cont, Kukanov and Stoikov (2014) between two successive L1 states."""
    e = 0
    if cur.bid_price >= prev.bid_price:
        e += cur.bid_qty
    if cur.bid_price <= prev.bid_price:
        e -= prev.bid_qty
    if cur.ask_price <= prev.ask_price:
        e -= cur.ask_qty
    if cur.ask_price >= prev.ask_price:
        e += prev.ask_qty
    return e


class MomentumConfig(msgspec.Struct, frozen=True):
    symbols: tuple[str, ...] = ()  # () = every symbol it sees books of
    window: int = 50  # book events summed into OFI
    threshold: int = 1_000  # shares of OFI that make a signal
    qty: int = 100
    max_position: int = 500
    cooldown_ns: int = 1_000_000_000
    tif: TimeInForce = TimeInForce.IOC

    def __post_init__(self) -> None:
        if min(self.window, self.threshold, self.qty, self.max_position) <= 0:
            raise ValueError("window, threshold, qty and max_position must be > 0")
        if self.cooldown_ns < 0:
            raise ValueError("cooldown_ns must be >= 0")


class _Flow:
    """A symbol's last L1 and its rolling OFI."""

    __slots__ = ("events", "last", "last_signal_ns", "ofi")

    def __init__(self, window: int) -> None:
        self.last: L1 | None = None
        self.events: deque[int] = deque(maxlen=window)
        self.ofi = 0
        self.last_signal_ns: int | None = None

    def push(self, e: int) -> None:
        if len(self.events) == self.events.maxlen:
            self.ofi -= self.events[0]
        self.events.append(e)
        self.ofi += e

    def reset(self) -> None:
        self.events.clear()
        self.ofi = 0


class MomentumAgent(Agent):
    """Trades in the direction of strong order-flow imbalance (a STRATEGY-role agent)."""

    role = Role.STRATEGY

    def __init__(
        self, name: str, key: AgentKey, config: MomentumConfig | None = None, **kw: Any
    ) -> None:
        super().__init__(name, key, **kw)  # kw: the Agent options (budget_ns, pending_ttl_ns)
        self.config = config or MomentumConfig()
        self.flows: dict[str, _Flow] = {}
        self.position: dict[str, int] = {}

    def ofi(self, symbol: str) -> int:
        flow = self.flows.get(symbol)
        return 0 if flow is None else flow.ofi

    def _book(self, view: BookView) -> list[Action]:
        c = self.config
        if c.symbols and view.symbol not in c.symbols:
            return []
        flow = self.flows.get(view.symbol) or self.flows.setdefault(view.symbol, _Flow(c.window))
        top = top_of_book(view)
        if top is None:
            flow.last = None
            flow.reset()
            return []
        if flow.last is not None:
            flow.push(ofi_event(flow.last, top))
        flow.last = top
        if abs(flow.ofi) < c.threshold:
            return []
        side = Side.BUY if flow.ofi > 0 else Side.SELL
        if not self._may_trade(view.symbol, side, flow):
            return []
        flow.last_signal_ns = self.now_ns
        flow.reset()
        price = top.ask_price if side is Side.BUY else top.bid_price
        return [OrderIntent(view.symbol, side, c.qty, price, c.tif)]

    def _may_trade(self, symbol: str, side: Side, flow: _Flow) -> bool:
        c = self.config
        cooling = (
            flow.last_signal_ns is not None and self.now_ns - flow.last_signal_ns < c.cooldown_ns
        )
        if cooling or self.outstanding_for(symbol):
            return False
        exposure = self.position.get(symbol, 0)
        for order in self.orders_for(symbol):
            exposure += order.leaves_qty if order.intent.side is Side.BUY else -order.leaves_qty
        after = exposure + (c.qty if side is Side.BUY else -c.qty)
        return abs(after) <= c.max_position

    def _fill(self, fill: Fill, order: LiveOrder | None) -> list[Action]:
        if order is not None:
            signed = fill.qty if fill.side is Side.BUY else -fill.qty
            self.position[fill.symbol] = self.position.get(fill.symbol, 0) + signed
        return []
