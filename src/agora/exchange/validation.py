"""Pre-trade checks of order entry, in the order docs/matching-rules.md fixes.

Each function returns ``None`` when the command may proceed, else ``(reason, text)``; none of
them changes state. Checks that need only the participant come first in the engine itself.
"""

from __future__ import annotations

from agora.core.enums import OrderType, RejectReason, TimeInForce, TradingState
from agora.core.events import NewOrder, ReplaceOrder
from agora.exchange.symbols import ParticipantState, SymbolState

_MARKET = OrderType.MARKET
_IOC = TimeInForce.IOC
_CLOSED = TradingState.CLOSED
_HALTED = TradingState.HALTED
_OPEN = TradingState.OPEN
Problem = tuple[RejectReason, str] | None

_RESTING_TIFS = frozenset((TimeInForce.DAY, TimeInForce.GTC))


def check_new_order(cmd: NewOrder, p: ParticipantState, sym: SymbolState) -> Problem:
    """Rules 5-16 of NewOrder validation, flat: this runs for every order."""
    spec = sym.spec
    lot = spec.lot_size
    qty = cmd.qty
    if qty <= 0:
        return RejectReason.INVALID_QUANTITY, f"quantity {qty} must be positive"
    if qty % lot:
        return RejectReason.INVALID_LOT, f"quantity {qty} is not a multiple of lot {lot}"
    price = cmd.price
    market = cmd.order_type is _MARKET
    if market:
        if price != 0 or cmd.post_only or cmd.display_qty is not None:
            return (
                RejectReason.INVALID_ORDER_TYPE,
                "market order takes no price, post-only or display quantity",
            )
    elif price <= 0:
        return RejectReason.INVALID_PRICE, f"limit price {price} must be positive"
    elif price % spec.tick_size:
        return RejectReason.INVALID_TICK, f"price {price} is not on tick {spec.tick_size}"
    display = cmd.display_qty
    if display is not None and (display < 0 or display % lot):
        return RejectReason.INVALID_DISPLAY_QTY, f"display quantity {display} is invalid"
    min_qty = cmd.min_qty
    if min_qty and (min_qty < 0 or min_qty > qty or min_qty % lot or cmd.tif is not _IOC):
        return RejectReason.INVALID_MIN_QTY, f"minimum quantity {min_qty} is invalid (IOC only)"
    if cmd.post_only and cmd.tif not in _RESTING_TIFS:
        return RejectReason.INVALID_TIME_IN_FORCE, "post-only needs DAY or GTC"
    if sym.state is not _OPEN:
        problem = _check_state(cmd, sym)
        if problem:
            return problem
    limits = p.spec
    if market:
        price = sym.band_high
    else:
        if not sym.band_low <= price <= sym.band_high:
            return _out_of_band(price, sym)
        ref = sym.reference_price
        if abs(price - ref) * 10_000 > ref * limits.collar_bps:
            return _outside_collar(price, limits.collar_bps, ref)
    if qty > limits.max_order_qty or qty * price > limits.max_notional:
        return check_size(qty, qty * price, p)
    if p.open_orders >= limits.max_open_orders:
        return RejectReason.MAX_OPEN_ORDERS, f"{p.open_orders} open orders is the limit"
    if cmd.post_only and sym.state is _OPEN and sym.crosses(cmd.side, price):
        return RejectReason.POST_ONLY_WOULD_CROSS, "post-only order would take liquidity"
    return None


def _check_state(cmd: NewOrder, sym: SymbolState) -> Problem:
    state = sym.state
    if state is _CLOSED:
        return RejectReason.MARKET_CLOSED, f"{sym.spec.symbol} is closed"
    if cmd.order_type is _MARKET or cmd.tif not in _RESTING_TIFS or cmd.post_only:
        if state is _HALTED:
            return RejectReason.SYMBOL_HALTED, f"{sym.spec.symbol} is halted"
        return (
            RejectReason.NOT_ALLOWED_IN_STATE,
            f"only DAY/GTC limit orders before the open of {sym.spec.symbol}",
        )
    return None


def _out_of_band(price: int, sym: SymbolState) -> Problem:
    return (
        RejectReason.PRICE_OUT_OF_BAND,
        f"price {price} outside band [{sym.band_low}, {sym.band_high}]",
    )


def _outside_collar(price: int, collar_bps: int, ref: int) -> Problem:
    return (
        RejectReason.PRICE_COLLAR,
        f"price {price} beyond {collar_bps} bps collar around {ref}",
    )


def check_price(price: int, p: ParticipantState, sym: SymbolState) -> Problem:
    """Band (limit up/down) then the participant's collar around the reference."""
    if not sym.band_low <= price <= sym.band_high:
        return _out_of_band(price, sym)
    ref = sym.reference_price
    if abs(price - ref) * 10_000 > ref * p.spec.collar_bps:
        return _outside_collar(price, p.spec.collar_bps, ref)
    return None


def check_size(qty: int, notional: int, p: ParticipantState) -> Problem:
    spec = p.spec
    if qty > spec.max_order_qty:
        return RejectReason.MAX_ORDER_QTY, f"quantity {qty} above limit {spec.max_order_qty}"
    if notional > spec.max_notional:
        return RejectReason.MAX_NOTIONAL, f"notional {notional} above limit {spec.max_notional}"
    return None


def check_replace(cmd: ReplaceOrder, post_only: bool, side, p: ParticipantState,
                  sym: SymbolState) -> Problem:
    """Checks of a replace after the order and client id were found valid."""
    spec = sym.spec
    if sym.state is _CLOSED:
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
    if post_only and sym.state is _OPEN and sym.crosses(side, price):
        return RejectReason.POST_ONLY_WOULD_CROSS, "post-only order would take liquidity"
    return None
