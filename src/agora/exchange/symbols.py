"""Per-symbol and per-participant state the engine keeps beside the books."""

from __future__ import annotations

from agora.core.enums import Side, TradingState
from agora.core.events import ParticipantSpec, SymbolSpec
from agora.exchange.book import BookSide

_BUY = Side.BUY
_SELL = Side.SELL
def band_limits(reference_price: int, band_bps: int) -> tuple[int, int]:
    """Limit-down and limit-up prices around the reference (inclusive)."""
    width = reference_price * band_bps // 10_000
    return reference_price - width, reference_price + width


class SymbolState:
    __slots__ = ("asks", "band_high", "band_low", "bids", "reference_price", "spec", "state")

    def __init__(self, spec: SymbolSpec, state: TradingState) -> None:
        self.spec = spec
        self.state = state
        self.bids = BookSide(_BUY)
        self.asks = BookSide(_SELL)
        self.reference_price = 0
        self.band_low = self.band_high = 0
        self.set_reference(spec.reference_price)

    def set_reference(self, price: int) -> None:
        self.reference_price = price
        self.band_low, self.band_high = band_limits(price, self.spec.band_bps)

    def book(self, side: Side) -> BookSide:
        return self.bids if side is _BUY else self.asks

    def opposite(self, side: Side) -> BookSide:
        return self.asks if side is _BUY else self.bids

    def crosses(self, side: Side, price: int) -> bool:
        """Would a ``side`` order at ``price`` meet a resting opposite order (displayed or not)?"""
        best = self.opposite(side).best_price()
        if best is None:
            return False
        return best <= price if side is _BUY else best >= price


class ParticipantState:
    __slots__ = ("client_order_ids", "kill_switch", "open_orders", "spec")

    def __init__(self, spec: ParticipantSpec) -> None:
        self.spec = spec
        self.kill_switch = False
        self.open_orders = 0
        self.client_order_ids: set[str] = set()


def symbol_spec_problem(spec: SymbolSpec) -> str | None:
    """Why a symbol spec is unusable, or None."""
    if not spec.symbol or len(spec.symbol) > 8:
        return f"symbol must be 1-8 characters, got {spec.symbol!r}"
    if spec.tick_size <= 0 or spec.lot_size <= 0 or spec.band_bps <= 0:
        return "tick_size, lot_size and band_bps must be positive"
    if spec.reference_price <= 0 or spec.reference_price % spec.tick_size:
        return f"reference price {spec.reference_price} must be positive and on the tick"
    return None


def participant_spec_problem(spec: ParticipantSpec) -> str | None:
    """Why a participant spec is unusable, or None."""
    if not spec.participant:
        return "participant id must not be empty"
    if spec.max_order_qty <= 0:
        return "max_order_qty must be positive"
    if min(spec.max_notional, spec.collar_bps, spec.max_open_orders) < 0:
        return "limits must not be negative"
    return None
