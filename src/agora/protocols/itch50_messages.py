"""The 23 NASDAQ TotalView-ITCH 5.0 messages as frozen msgspec Structs (codec: ``itch50``).

Each class declares its fields in wire order; the annotation of every field carries its wire
encoding (a ``Wire`` marker inside ``typing.Annotated``) together with a ``msgspec.Meta``
constraint, so one declaration is the single source of both the Python type and the byte layout
(and msgspec's own JSON/msgpack decoding enforces the same ranges). Field names are the spec's
field names in snake_case. The common header (``stock_locate``, ``tracking_number``, ``timestamp``)
comes from :class:`ItchMessage`; the message type byte is not a field but the class itself
(``cls.MESSAGE_TYPE``, also the msgspec tag under ``"type"`` when serialised with msgspec).

Field kinds:

* unsigned big-endian integers of 2, 4 or 8 bytes (``U16``, ``U32``, ``U64``);
* ``Price4`` (uint32, 4 implied decimals, raw int) and ``Price8`` (uint64, 8 implied decimals);
* ``Timestamp``: 6-byte unsigned big-endian ns since midnight (``0 <= t < 2**48``);
* ``Char``: a 1-byte Alpha code kept as a ``str`` of length 1 (a space stays ``" "``);
* ``Alpha2/4/8``: ASCII, right-padded with spaces on the wire; the padding is stripped on decode.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Union

import msgspec

__all__ = [
    "MESSAGE_CLASSES",
    "AddOrder",
    "AddOrderMpid",
    "BrokenTrade",
    "CrossTrade",
    "DlcrPriceDiscovery",
    "IpoQuotingPeriodUpdate",
    "ItchMessage",
    "LuldAuctionCollar",
    "MarketParticipantPosition",
    "Message",
    "MwcbDeclineLevel",
    "MwcbStatus",
    "NetOrderImbalance",
    "OperationalHalt",
    "OrderCancel",
    "OrderDelete",
    "OrderExecuted",
    "OrderExecutedWithPrice",
    "OrderReplace",
    "RegShoRestriction",
    "RetailPriceImprovement",
    "StockDirectory",
    "StockTradingAction",
    "SystemEvent",
    "Trade",
    "Wire",
]


class Wire:
    """Wire encoding of one field: ``kind`` is ``"uint"``, ``"timestamp"``, ``"char"`` or
    ``"alpha"``; ``size`` is its length in bytes."""

    __slots__ = ("kind", "size")

    def __init__(self, kind: str, size: int) -> None:
        self.kind = kind
        self.size = size

    def __repr__(self) -> str:
        return f"Wire({self.kind!r}, {self.size})"


U16 = Annotated[int, msgspec.Meta(ge=0, le=2**16 - 1), Wire("uint", 2)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1), Wire("uint", 4)]
# msgspec bounds must fit in an int64: the uint64 upper bound is enforced by the codec only.
U64 = Annotated[int, msgspec.Meta(ge=0), Wire("uint", 8)]
Price4 = U32
Price8 = U64
Timestamp = Annotated[int, msgspec.Meta(ge=0, le=2**48 - 1), Wire("timestamp", 6)]
Char = Annotated[str, msgspec.Meta(min_length=1, max_length=1), Wire("char", 1)]
Alpha2 = Annotated[str, msgspec.Meta(max_length=2), Wire("alpha", 2)]
Alpha4 = Annotated[str, msgspec.Meta(max_length=4), Wire("alpha", 4)]
Alpha8 = Annotated[str, msgspec.Meta(max_length=8), Wire("alpha", 8)]


class ItchMessage(msgspec.Struct, frozen=True, gc=False, tag_field="type"):
    """Common header of every ITCH 5.0 message (offsets 1, 3 and 5; the type byte is offset 0)."""

    MESSAGE_TYPE: ClassVar[str] = ""

    stock_locate: U16
    tracking_number: U16
    timestamp: Timestamp


class SystemEvent(ItchMessage, tag="S"):
    """``S`` System Event (12 bytes). ``stock_locate`` is always 0."""

    MESSAGE_TYPE: ClassVar[str] = "S"
    event_code: Char


class StockDirectory(ItchMessage, tag="R"):
    """``R`` Stock Directory (39 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "R"
    stock: Alpha8
    market_category: Char
    financial_status_indicator: Char
    round_lot_size: U32
    round_lots_only: Char
    issue_classification: Char
    issue_sub_type: Alpha2
    authenticity: Char
    short_sale_threshold_indicator: Char
    ipo_flag: Char
    luld_reference_price_tier: Char
    etp_flag: Char
    etp_leverage_factor: U32
    inverse_indicator: Char


class StockTradingAction(ItchMessage, tag="H"):
    """``H`` Stock Trading Action (25 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "H"
    stock: Alpha8
    trading_state: Char
    reserved: Char
    reason: Alpha4


class RegShoRestriction(ItchMessage, tag="Y"):
    """``Y`` Reg SHO Short Sale Price Test Restricted Indicator (20 bytes). The spec names the
    header field "Locate Code"; it is ``stock_locate`` here as in every other message."""

    MESSAGE_TYPE: ClassVar[str] = "Y"
    stock: Alpha8
    reg_sho_action: Char


class MarketParticipantPosition(ItchMessage, tag="L"):
    """``L`` Market Participant Position (26 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "L"
    mpid: Alpha4
    stock: Alpha8
    primary_market_maker: Char
    market_maker_mode: Char
    market_participant_state: Char


class MwcbDeclineLevel(ItchMessage, tag="V"):
    """``V`` MWCB Decline Level (35 bytes); levels are raw Price(8) ints (8 implied decimals)."""

    MESSAGE_TYPE: ClassVar[str] = "V"
    level_1: Price8
    level_2: Price8
    level_3: Price8


class MwcbStatus(ItchMessage, tag="W"):
    """``W`` MWCB Status (12 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "W"
    breached_level: Char


class IpoQuotingPeriodUpdate(ItchMessage, tag="K"):
    """``K`` IPO Quoting Period Update (28 bytes). Release time is seconds since midnight."""

    MESSAGE_TYPE: ClassVar[str] = "K"
    stock: Alpha8
    ipo_quotation_release_time: U32
    ipo_quotation_release_qualifier: Char
    ipo_price: Price4


class LuldAuctionCollar(ItchMessage, tag="J"):
    """``J`` LULD Auction Collar (35 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "J"
    stock: Alpha8
    auction_collar_reference_price: Price4
    upper_auction_collar_price: Price4
    lower_auction_collar_price: Price4
    auction_collar_extension: U32


class OperationalHalt(ItchMessage, tag="h"):
    """``h`` Operational Halt (21 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "h"
    stock: Alpha8
    market_code: Char
    operational_halt_action: Char


class AddOrder(ItchMessage, tag="A"):
    """``A`` Add Order - No MPID Attribution (36 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "A"
    order_reference_number: U64
    buy_sell_indicator: Char
    shares: U32
    stock: Alpha8
    price: Price4


class AddOrderMpid(ItchMessage, tag="F"):
    """``F`` Add Order with MPID Attribution (40 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "F"
    order_reference_number: U64
    buy_sell_indicator: Char
    shares: U32
    stock: Alpha8
    price: Price4
    attribution: Alpha4


class OrderExecuted(ItchMessage, tag="E"):
    """``E`` Order Executed (31 bytes), at the resting order's display price."""

    MESSAGE_TYPE: ClassVar[str] = "E"
    order_reference_number: U64
    executed_shares: U32
    match_number: U64


class OrderExecutedWithPrice(ItchMessage, tag="C"):
    """``C`` Order Executed With Price (36 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "C"
    order_reference_number: U64
    executed_shares: U32
    match_number: U64
    printable: Char
    execution_price: Price4


class OrderCancel(ItchMessage, tag="X"):
    """``X`` Order Cancel, partial (23 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "X"
    order_reference_number: U64
    cancelled_shares: U32


class OrderDelete(ItchMessage, tag="D"):
    """``D`` Order Delete (19 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "D"
    order_reference_number: U64


class OrderReplace(ItchMessage, tag="U"):
    """``U`` Order Replace (35 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "U"
    original_order_reference_number: U64
    new_order_reference_number: U64
    shares: U32
    price: Price4


class Trade(ItchMessage, tag="P"):
    """``P`` Trade, non-cross (44 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "P"
    order_reference_number: U64
    buy_sell_indicator: Char
    shares: U32
    stock: Alpha8
    price: Price4
    match_number: U64


class CrossTrade(ItchMessage, tag="Q"):
    """``Q`` Cross Trade (40 bytes); ``shares`` is 8 bytes wide here."""

    MESSAGE_TYPE: ClassVar[str] = "Q"
    shares: U64
    stock: Alpha8
    cross_price: Price4
    match_number: U64
    cross_type: Char


class BrokenTrade(ItchMessage, tag="B"):
    """``B`` Broken Trade / Order Execution (19 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "B"
    match_number: U64


class NetOrderImbalance(ItchMessage, tag="I"):
    """``I`` Net Order Imbalance Indicator, NOII (50 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "I"
    paired_shares: U64
    imbalance_shares: U64
    imbalance_direction: Char
    stock: Alpha8
    far_price: Price4
    near_price: Price4
    current_reference_price: Price4
    cross_type: Char
    price_variation_indicator: Char


class RetailPriceImprovement(ItchMessage, tag="N"):
    """``N`` Retail Price Improvement Indicator, RPII (20 bytes)."""

    MESSAGE_TYPE: ClassVar[str] = "N"
    stock: Alpha8
    interest_flag: Char


class DlcrPriceDiscovery(ItchMessage, tag="O"):
    """``O`` Direct Listing with Capital Raise Price Discovery (48 bytes).

    ``near_execution_time`` is an 8-byte integer whose unit the spec does not state (presumably ns
    since midnight; unverified), so it is kept as a plain ``U64``, not a ``Timestamp``."""

    MESSAGE_TYPE: ClassVar[str] = "O"
    stock: Alpha8
    open_eligibility_status: Char
    minimum_allowable_price: Price4
    maximum_allowable_price: Price4
    near_execution_price: Price4
    near_execution_time: U64
    lower_price_range_collar: Price4
    upper_price_range_collar: Price4


MESSAGE_CLASSES: tuple[type[ItchMessage], ...] = (
    SystemEvent,
    StockDirectory,
    StockTradingAction,
    RegShoRestriction,
    MarketParticipantPosition,
    MwcbDeclineLevel,
    MwcbStatus,
    IpoQuotingPeriodUpdate,
    LuldAuctionCollar,
    OperationalHalt,
    AddOrder,
    AddOrderMpid,
    OrderExecuted,
    OrderExecutedWithPrice,
    OrderCancel,
    OrderDelete,
    OrderReplace,
    Trade,
    CrossTrade,
    BrokenTrade,
    NetOrderImbalance,
    RetailPriceImprovement,
    DlcrPriceDiscovery,
)

Message = Union[  # noqa: UP007 - a runtime alias msgspec can decode (tagged union)
    SystemEvent,
    StockDirectory,
    StockTradingAction,
    RegShoRestriction,
    MarketParticipantPosition,
    MwcbDeclineLevel,
    MwcbStatus,
    IpoQuotingPeriodUpdate,
    LuldAuctionCollar,
    OperationalHalt,
    AddOrder,
    AddOrderMpid,
    OrderExecuted,
    OrderExecutedWithPrice,
    OrderCancel,
    OrderDelete,
    OrderReplace,
    Trade,
    CrossTrade,
    BrokenTrade,
    NetOrderImbalance,
    RetailPriceImprovement,
    DlcrPriceDiscovery,
]
