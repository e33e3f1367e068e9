"""OUCH 5.0 message Structs (spec §3 inbound, §7 outbound); codec in :mod:`.ouch50`.

Fields are in wire order, snake_case after the spec's names. Prices are raw Price(4) ints,
timestamps int ns since midnight. ``options`` is the Optional Appendage: ``Options`` where the
spec requires the Appendage Length field, ``Options | None`` where it is optional (``None`` =
field absent). ``TYPE`` (type byte) and ``INBOUND`` (direction) are set by the codec tables.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from agora.protocols.ouch50_appendage import Options
from agora.protocols.ouch50_codes import (
    BrokenTradeReason,
    Capacity,
    CrossType,
    Display,
    EventCode,
    IntermarketSweep,
    OrderState,
    RestatedReason,
    Side,
    TimeInForce,
)

__all__ = [
    "AccountQueryRequest",
    "AccountQueryResponse",
    "AiqCanceled",
    "BrokenTrade",
    "CancelOrderRequest",
    "CancelPending",
    "CancelReject",
    "DisableOrderEntryRequest",
    "DisableOrderEntryResponse",
    "EnableOrderEntryRequest",
    "EnableOrderEntryResponse",
    "EnterOrder",
    "MassCancelRequest",
    "MassCancelResponse",
    "ModifyOrderRequest",
    "OrderAccepted",
    "OrderCanceled",
    "OrderExecuted",
    "OrderModified",
    "OrderPriorityUpdate",
    "OrderReplaced",
    "OrderRestated",
    "OuchMessage",
    "Rejected",
    "ReplaceOrderRequest",
    "SystemEvent",
]


def _opts() -> Options:
    return Options()


class OuchMessage(msgspec.Struct, frozen=True):
    """Base of all OUCH messages; ``TYPE`` is the type byte, ``INBOUND`` the direction."""

    TYPE: ClassVar[bytes]
    INBOUND: ClassVar[bool]


# ----------------------------------------------------------------------------- inbound (§3)


class EnterOrder(OuchMessage, frozen=True):
    user_ref_num: int
    side: Side
    quantity: int
    symbol: str
    price: int
    time_in_force: TimeInForce
    display: Display
    capacity: Capacity
    intermarket_sweep: IntermarketSweep
    cross_type: CrossType
    cl_ord_id: str
    options: Options = msgspec.field(default_factory=_opts)


class ReplaceOrderRequest(OuchMessage, frozen=True):
    orig_user_ref_num: int
    user_ref_num: int
    quantity: int
    price: int
    time_in_force: TimeInForce
    display: Display
    intermarket_sweep: IntermarketSweep
    cl_ord_id: str
    options: Options = msgspec.field(default_factory=_opts)


class CancelOrderRequest(OuchMessage, frozen=True):
    user_ref_num: int
    quantity: int
    options: Options | None = None


class ModifyOrderRequest(OuchMessage, frozen=True):
    user_ref_num: int
    side: Side
    quantity: int
    options: Options | None = None


class MassCancelRequest(OuchMessage, frozen=True):
    user_ref_num: int
    firm: str
    symbol: str  # "" = all symbols
    options: Options = msgspec.field(default_factory=_opts)


class DisableOrderEntryRequest(OuchMessage, frozen=True):
    user_ref_num: int
    firm: str
    options: Options = msgspec.field(default_factory=_opts)


class EnableOrderEntryRequest(OuchMessage, frozen=True):
    user_ref_num: int
    firm: str
    options: Options = msgspec.field(default_factory=_opts)


class AccountQueryRequest(OuchMessage, frozen=True):
    options: Options | None = None


# ---------------------------------------------------------------------------- outbound (§7)


class SystemEvent(OuchMessage, frozen=True):
    timestamp: int
    event_code: EventCode


class OrderAccepted(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    side: Side
    quantity: int
    symbol: str
    price: int
    time_in_force: TimeInForce
    display: Display
    order_reference_number: int
    capacity: Capacity
    intermarket_sweep: IntermarketSweep
    cross_type: CrossType
    order_state: OrderState
    cl_ord_id: str
    options: Options = msgspec.field(default_factory=_opts)


class OrderReplaced(OuchMessage, frozen=True):
    timestamp: int
    orig_user_ref_num: int
    user_ref_num: int
    side: Side
    quantity: int
    symbol: str
    price: int
    time_in_force: TimeInForce
    display: Display
    order_reference_number: int
    capacity: Capacity
    intermarket_sweep: IntermarketSweep
    cross_type: CrossType
    order_state: OrderState
    cl_ord_id: str
    options: Options = msgspec.field(default_factory=_opts)


class OrderCanceled(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    quantity: int  # shares decremented by this event
    reason: str  # CancelReason when known
    options: Options | None = None


class AiqCanceled(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    decrement_shares: int
    reason: str  # always "Q"
    quantity_prevented_from_trading: int
    execution_price: int
    liquidity_flag: str  # LiquidityFlag when known
    aiq_strategy: str  # AiqStrategy when known
    options: Options | None = None


class OrderExecuted(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    quantity: int
    price: int
    liquidity_flag: str  # LiquidityFlag when known
    match_number: int
    options: Options = msgspec.field(default_factory=_opts)


class BrokenTrade(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    match_number: int
    reason: BrokenTradeReason
    cl_ord_id: str
    options: Options | None = None


class Rejected(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    reason: int  # RejectReason when known
    cl_ord_id: str
    options: Options | None = None


class CancelPending(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    options: Options | None = None


class CancelReject(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    options: Options | None = None


class OrderPriorityUpdate(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    price: int
    display: Display
    order_reference_number: int
    options: Options | None = None


class OrderModified(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    side: Side
    quantity: int  # total shares outstanding
    options: Options | None = None


class OrderRestated(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    reason: RestatedReason
    options: Options = msgspec.field(default_factory=_opts)


class MassCancelResponse(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    firm: str
    symbol: str
    options: Options = msgspec.field(default_factory=_opts)


class DisableOrderEntryResponse(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    firm: str
    options: Options = msgspec.field(default_factory=_opts)


class EnableOrderEntryResponse(OuchMessage, frozen=True):
    timestamp: int
    user_ref_num: int
    firm: str
    options: Options = msgspec.field(default_factory=_opts)


class AccountQueryResponse(OuchMessage, frozen=True):
    timestamp: int
    next_user_ref_num: int
    options: Options | None = None
