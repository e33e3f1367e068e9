"""Market view: a fair value from the microprice and depth imbalance, uncertain by half a spread.

With best bid ``Pb`` (quantity ``Qb``), best ask ``Pa`` (``Qa``), spread ``s = Pa - Pb`` and mid
``m = (Pb + Pa) / 2``:

- L1 imbalance ``I1 = (Qb - Qa) / (Qb + Qa)``, in [-1, 1];
- microprice (the size-weighted mid) ``(Pb * Qa + Pa * Qb) / (Qa + Qb) = m + (s / 2) * I1``: it
  leans towards the thinner queue, the one more likely to be used up first. (This is the classic
  weighted mid, not Stoikov's 2018 "micro-price", which needs a fitted model.)
- depth imbalance ``ID``: the same ratio over the total quantity of the best ``depth`` levels;
- fair value ``m + (s / 2) * ((100 - w) * I1 + w * ID) / 100`` with ``w = depth_weight_pct``;
  ``w = 0`` gives the microprice. Both imbalances lie in [-1, 1], so fair lies in [Pb, Pa].
- uncertainty: half the spread, rounded up (``(s + 1) // 2``).

Arithmetic is exact (``Fraction``); the fair value is rounded once, to the nearest Price(4) unit
with ties to even, and stays within [Pb, Pa]. A book with an empty side, or crossed (Pb > Pa),
gives no view (None); a locked book (s = 0) gives fair = Pb with uncertainty 0.

The agent proposes a :class:`~agora.core.events.FairValue` for a symbol when its price or
uncertainty moved by at least ``min_change`` since the last one it proposed there, so a quiet book
does not flood the log. It keeps no other state.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import msgspec

from agora.core.events import FairValue
from agora.decision.agents.base import Action, Agent
from agora.decision.rules import Role
from agora.decision.signing import AgentKey
from agora.feed.book import BookView, Level


class MarketViewConfig(msgspec.Struct, frozen=True):
    depth: int = 5  # levels per side in the depth imbalance
    depth_weight_pct: int = 0  # 0: microprice only; 100: depth imbalance only
    min_change: int = 1  # Price(4) units of fair value or uncertainty worth a new proposal

    def __post_init__(self) -> None:
        if self.depth < 1 or not 0 <= self.depth_weight_pct <= 100 or self.min_change < 1:
            raise ValueError("depth >= 1, 0 <= depth_weight_pct <= 100, min_change >= 1")


def imbalance(bid_qty: int, ask_qty: int) -> Fraction:
    """(bid - ask) / (bid + ask): +1 all bids, -1 all asks, 0 balanced or both empty."""
    total = bid_qty + ask_qty
    return Fraction(bid_qty - ask_qty, total) if total else Fraction(0)


def microprice(bid: Level, ask: Level) -> Fraction:
    """The size-weighted mid ``(Pb * Qa + Pa * Qb) / (Qa + Qb)``, exactly."""
    total = bid.qty + ask.qty
    if total <= 0:
        return Fraction(bid.price + ask.price, 2)
    return Fraction(bid.price * ask.qty + ask.price * bid.qty, total)


def depth_imbalance(bids: list[Level], asks: list[Level], depth: int) -> Fraction:
    return imbalance(sum(lv.qty for lv in bids[:depth]), sum(lv.qty for lv in asks[:depth]))


def fair_value(view: BookView, config: MarketViewConfig) -> FairValue | None:
    """The view's fair value (see the module notes), or None for a one-sided or crossed book."""
    if not view.bids or not view.asks:
        return None
    bid, ask = view.bids[0], view.asks[0]
    spread = ask.price - bid.price
    if spread < 0:
        return None
    w = config.depth_weight_pct
    lean = (
        (100 - w) * imbalance(bid.qty, ask.qty)
        + w * depth_imbalance(view.bids, view.asks, config.depth)
    ) / 100
    fair = Fraction(bid.price + ask.price, 2) + Fraction(spread, 2) * lean
    return FairValue(view.symbol, round(fair), (spread + 1) // 2)


class MarketViewAgent(Agent):
    """Proposes a FairValue per symbol from each book view (a VIEW-role agent)."""

    role = Role.VIEW

    def __init__(
        self, name: str, key: AgentKey, config: MarketViewConfig | None = None, **kw: Any
    ) -> None:
        super().__init__(name, key, **kw)  # kw: the Agent options (budget_ns, pending_ttl_ns)
        self.config = config or MarketViewConfig()
        self.last: dict[str, FairValue] = {}  # symbol -> last proposed

    def _book(self, view: BookView) -> list[Action]:
        fair = fair_value(view, self.config)
        if fair is None:
            return []
        last = self.last.get(view.symbol)
        step = self.config.min_change
        if last is not None and (
            abs(fair.price - last.price) < step and abs(fair.uncertainty - last.uncertainty) < step
        ):
            return []
        self.last[view.symbol] = fair
        return [fair]
