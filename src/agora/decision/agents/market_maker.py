"""Market maker: two-sided quotes around the committed fair value, skewed by inventory.

Quotes for a symbol with committed fair value ``F`` (the rules' median of the views, delivered by
``on_fair_value``) and inventory ``q`` (from the agent's own fills):

- centre ``c = F - q * skew_per_share``: long inventory lowers both quotes (sell more readily,
  buy less), short raises them;
- bid ``c - half_spread`` rounded down to the tick, ask ``c + half_spread`` rounded up (never
  inside the intended spread); if rounding makes them touch, the ask moves up one tick;
- no bid once ``q >= max_inventory``, no ask once ``q <= -max_inventory``, no bid at or below 0.

Requoting: when the committed fair value moved by ``requote_threshold`` or more from the one the
live quotes were built on, or after a fill changed the inventory, the agent proposes a
CancelIntent for each of its live orders in the symbol and the new quotes, in one batch. While an
earlier batch is still outstanding (proposed, not yet seen decided) it waits, so quotes do not
pile up; a quote that expires undecided (vetoed, refused, abandoned) clears the quoted state, so
the next fair value quotes afresh.

Limitations: the cancel and the new quote are separate decisions (no cancel-replace), so for a
moment both can be live; the agent sees its quotes as live until a decided cancel or a fill with
no leaves, and does not hear about venue-side cancels.
"""

from __future__ import annotations

from typing import Any

import msgspec

from agora.core.enums import Side, TimeInForce
from agora.core.events import CancelIntent, Decision, FairValue, OrderIntent
from agora.decision.agents.base import Action, Agent, Fill, LiveOrder
from agora.decision.rules import Role
from agora.decision.signing import AgentKey


class MarketMakerConfig(msgspec.Struct, frozen=True):
    symbols: tuple[str, ...] = ()  # () = every symbol that gets a committed fair value
    half_spread: int = 200  # Price(4): 2 cents each side of the centre
    qty: int = 100
    tick: int = 100  # Price(4): one cent
    skew_per_share: int = 1  # Price(4) per share of inventory
    max_inventory: int = 1_000
    requote_threshold: int = 100  # Price(4) move of fair value that triggers a requote
    tif: TimeInForce = TimeInForce.DAY

    def __post_init__(self) -> None:
        if min(self.half_spread, self.skew_per_share) < 0:
            raise ValueError("half_spread and skew_per_share must be >= 0")
        if min(self.qty, self.tick, self.max_inventory, self.requote_threshold) <= 0:
            raise ValueError("qty, tick, max_inventory and requote_threshold must be > 0")


def quotes(fair: int, inventory: int, config: MarketMakerConfig) -> tuple[int | None, int | None]:
    """(bid, ask) prices for a fair value and inventory; None where that side is not quoted."""
    tick = config.tick
    centre = fair - inventory * config.skew_per_share
    bid = (centre - config.half_spread) // tick * tick
    ask = -(-(centre + config.half_spread) // tick) * tick
    if ask <= bid:
        ask = bid + tick
    return (
        bid if bid > 0 and inventory < config.max_inventory else None,
        ask if inventory > -config.max_inventory else None,
    )


class MarketMakerAgent(Agent):
    """Quotes both sides around the committed fair value (a STRATEGY-role agent)."""

    role = Role.STRATEGY

    def __init__(
        self, name: str, key: AgentKey, config: MarketMakerConfig | None = None, **kw: Any
    ) -> None:
        super().__init__(name, key, **kw)  # kw: the Agent options (budget_ns, pending_ttl_ns)
        self.config = config or MarketMakerConfig()
        self.fair: dict[str, int] = {}
        self.inventory: dict[str, int] = {}
        self.quoted: dict[str, tuple[int, int]] = {}  # symbol -> (fair, inventory) of live quotes

    def _fair_value(self, fair: FairValue) -> list[Action]:
        if self.config.symbols and fair.symbol not in self.config.symbols:
            return []
        self.fair[fair.symbol] = fair.price
        return self._requote(fair.symbol)

    def _fill(self, fill: Fill, order: LiveOrder | None) -> list[Action]:
        if order is None:
            return []
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        self.inventory[fill.symbol] = self.inventory.get(fill.symbol, 0) + signed
        return self._requote(fill.symbol)

    def _decided(self, decision: Decision, mine: bool) -> list[Action]:
        action = decision.action
        if not mine or not isinstance(action, OrderIntent):
            return []
        return self._requote(action.symbol)  # the batch may have cleared: catch up

    def _expired(self, action: Action) -> list[Action]:
        if isinstance(action, OrderIntent):
            self.quoted.pop(action.symbol, None)
        return []

    def _requote(self, symbol: str) -> list[Action]:
        fair = self.fair.get(symbol)
        if fair is None or self.outstanding_for(symbol):
            return []
        inventory = self.inventory.get(symbol, 0)
        last = self.quoted.get(symbol)
        moved = last is None or abs(fair - last[0]) >= self.config.requote_threshold
        if not moved and inventory == last[1]:
            return []
        self.quoted[symbol] = (fair, inventory)
        actions: list[Action] = [CancelIntent(o.decision_id) for o in self.orders_for(symbol)]
        bid, ask = quotes(fair, inventory, self.config)
        c = self.config
        if bid is not None:
            actions.append(OrderIntent(symbol, Side.BUY, c.qty, bid, c.tif))
        if ask is not None:
            actions.append(OrderIntent(symbol, Side.SELL, c.qty, ask, c.tif))
        return actions
