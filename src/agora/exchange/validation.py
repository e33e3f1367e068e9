"""Pre-trade checks of order entry, in the order docs/matching-rules.md fixes.

Each function returns ``None`` when the command may proceed, else ``(reason, text)``; none of
them changes state. Checks that need only the participant come first in the engine itself.
"""

from __future__ import annotations

from agora.core.enums import OrderType, RejectReason, TimeInForce, TradingState
from agora.core.events import NewOrder, ReplaceOrder
from agora.exchange.symbols import ParticipantState, SymbolState

Problem = tuple[RejectReason, str] | None

_RESTING_TIFS = (TimeInForce.DAY, TimeInForce.GTC)


def check_new_order(cmd: NewOrder, p: ParticipantState, sym: SymbolState) -> Problem:
    spec = sym.spec
    lot = spec.lot_size
    qty = cmd.qty
    if qty <= 0:
        return RejectReason.INVALID_QUANTITY, f"quantity {qty} must be positive"
    if qty % lot:
        return RejectReason.INVALID_LOT, f"quantity {qty} is not a multiple of lot {lot}"
    market = cmd.order_type is OrderType.MARKET
    if market:
        if cmd.price != 0 or cmd.post_only or cmd.display_qty is not None:
            return (
                RejectReason.INVALID_ORDER_TYPE,
                "market order takes no price, post-only or display quantity",
            )
    elif cmd.price <= 0:
        return RejectReason.INVALID_PRICE, f"limit price {cmd.price} must be positive"
    elif cmd.price % spec.tick_size:
        return RejectReason.INVALID_TICK, f"price {cmd.price} is not on tick {spec.tick_size}"
    display = cmd.display_qty
    if display is not None and (display < 0 or display % lot):
        return RejectReason.INVALID_DISPLAY_QTY, f"display quantity {display} is invalid"
    min_qty = cmd.min_qty
    if min_qty and (
        min_qty < 0 or min_qty > qty or min_qty % lot or cmd.tif is not TimeInForce.IOC
    ):
        return RejectReason.INVALID_MIN_QTY, f"minimum quantity {min_qty} is invalid (IOC only)"
    if cmd.post_only and cmd.tif not in _RESTING_TIFS:
        return RejectReason.INVALID_TIME_IN_FORCE, "post-only needs DAY or GTC"
    problem = _check_state(cmd, sym)
    if problem:
        return problem
    if not market:
        problem = check_price(cmd.price, p, sym)
        if problem:
            return problem
    return _check_risk(cmd, p, sym)


def _check_state(cmd: NewOrder, sym: SymbolState) -> Problem:
    state = sym.state
    if state is TradingState.OPEN:
        return None
    if state is TradingState.CLOSED:
        return RejectReason.MARKET_CLOSED, f"{sym.spec.symbol} is closed"
    if (
        cmd.order_type is OrderType.MARKET
        or cmd.tif not in _RESTING_TIFS
        or cmd.post_only
    ):
        if state is TradingState.HALTED:
            return RejectReason.SYMBOL_HALTED, f"{sym.spec.symbol} is halted"
        return (
            RejectReason.NOT_ALLOWED_IN_STATE,
            f"only DAY/GTC limit orders before the open of {sym.spec.symbol}",
        )
    return None


def check_price(price: int, p: ParticipantState, sym: SymbolState) -> Problem:
    """Band (limit up/down) then the participant's collar around the reference."""
    if not sym.band_low <= price <= sym.band_high:
        return (
            RejectReason.PRICE_OUT_OF_BAND,
            f"price {price} outside band [{sym.band_low}, {sym.band_high}]",
        )
    ref = sym.reference_price
    if abs(price - ref) * 10_000 > ref * p.spec.collar_bps:
        return (
            RejectReason.PRICE_COLLAR,
            f"price {price} beyond {p.spec.collar_bps} bps collar around {ref}",
        )
    return None


def check_size(qty: int, notional: int, p: ParticipantState) -> Problem:
    spec = p.spec
    if qty > spec.max_order_qty:
        return RejectReason.MAX_ORDER_QTY, f"quantity {qty} above limit {spec.max_order_qty}"
    if notional > spec.max_notional:
        return RejectReason.MAX_NOTIONAL, f"notional {notional} above limit {spec.max_notional}"
    return None


def _check_risk(cmd: NewOrder, p: ParticipantState, sym: SymbolState) -> Problem:
    price = sym.band_high if cmd.order_type is OrderType.MARKET else cmd.price
    problem = check_size(cmd.qty, cmd.qty * price, p)
    if problem:
        return problem
    if p.open_orders >= p.spec.max_open_orders:
        return RejectReason.MAX_OPEN_ORDERS, f"{p.open_orders} open orders is the limit"
    if cmd.post_only and sym.state is TradingState.OPEN and sym.crosses(cmd.side, cmd.price):
        return RejectReason.POST_ONLY_WOULD_CROSS, "post-only order would take liquidity"
    return None


def check_replace(cmd: ReplaceOrder, post_only: bool, side, p: ParticipantState,
                  sym: SymbolState) -> Problem:
    """Checks of a replace after the order and client id were found valid."""
    spec = sym.spec
    if sym.state is TradingState.CLOSED:
        return RejectReason.MARKET_CLOSED, f"{spec.symbol} is closed"
    qty, price = cmd.qty, cmd.price
    if qty <= 0:
        return RejectReason.INVALID_QUANTITY, f"quantity {qty} must be positive"
    if qty % spec.lot_size:
        return RejectReason.INVALID_LOT, f"quantity {qty} is not a multiple of lot {spec.lot_size}"
    if price <= 0:
        return RejectReason.INVALID_PRICE, f"limit price {price} must be positive"
    if price % spec.tick_size:
        return RejectReason.INVALID_TICK, f"price {price} is not on tick {spec.tick_size}"
    display = cmd.display_qty
    if display is not None and (display < 0 or display % spec.lot_size):
        return RejectReason.INVALID_DISPLAY_QTY, f"display quantity {display} is invalid"
    problem = check_price(price, p, sym) or check_size(qty, qty * price, p)
    if problem:
        return problem
    if post_only and sym.state is TradingState.OPEN and sym.crosses(side, price):
        return RejectReason.POST_ONLY_WOULD_CROSS, "post-only order would take liquidity"
    return None
