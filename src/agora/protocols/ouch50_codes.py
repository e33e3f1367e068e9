"""OUCH 5.0 code tables (spec §4, §5 and §8) as enums.

Single-character codes are ``StrEnum`` (members compare equal to their one-letter string), the
2-byte reject reasons an ``IntEnum``. Re-exported by :mod:`agora.protocols.ouch50`.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "AiqStrategy",
    "BboWeightIndicator",
    "BrokenTradeReason",
    "CancelReason",
    "Capacity",
    "CrossType",
    "CustomerType",
    "Display",
    "EventCode",
    "HandleInst",
    "IntermarketSweep",
    "LiquidityFlag",
    "OrderState",
    "PostOnly",
    "PriceType",
    "RejectReason",
    "RestatedReason",
    "Side",
    "TimeInForce",
    "YesNo",
]


class Side(StrEnum):
    BUY = "B"
    SELL = "S"
    SELL_SHORT = "T"
    SELL_SHORT_EXEMPT = "E"


class TimeInForce(StrEnum):
    DAY = "0"
    IOC = "3"
    GTX = "5"
    GTT = "6"  # requires the ExpireTime option
    AFTER_HOURS = "E"  # listed for Enter Order only


class Display(StrEnum):
    VISIBLE = "Y"  # on Order Priority Update: "Anonymous - Price to Comply"
    HIDDEN = "N"
    ATTRIBUTABLE = "A"
    CONFORMANT = "Z"  # outbound Order Accepted / Order Replaced only


class Capacity(StrEnum):
    AGENCY = "A"
    PRINCIPAL = "P"
    RISKLESS = "R"
    OTHER = "O"


class IntermarketSweep(StrEnum):
    ELIGIBLE = "Y"
    NOT_ELIGIBLE = "N"


class CrossType(StrEnum):
    CONTINUOUS = "N"
    OPENING = "O"
    CLOSING = "C"
    HALT_IPO = "H"
    SUPPLEMENTAL = "S"
    RETAIL = "R"
    EXTENDED_LIFE = "E"
    AFTER_HOURS_CLOSE = "A"


class OrderState(StrEnum):
    LIVE = "L"
    DEAD = "D"


class EventCode(StrEnum):
    START_OF_DAY = "S"
    END_OF_DAY = "E"


class BrokenTradeReason(StrEnum):
    ERRONEOUS = "E"
    CONSENT = "C"
    SUPERVISORY = "S"
    EXTERNAL = "X"


class RestatedReason(StrEnum):
    REFRESH_OF_DISPLAY = "R"
    UPDATE_OF_DISPLAYED_PRICE = "P"


class CancelReason(StrEnum):
    """§8.1 (open list: other letters decode as plain ``str``)."""

    REG_RESTRICTION = "D"
    CLOSED = "E"
    POST_ONLY_NMS = "F"
    POST_ONLY_CONTRA_DISPLAYED = "G"
    HALTED = "H"
    IMMEDIATE_OR_CANCEL = "I"
    MARKET_COLLARS = "K"
    SELF_MATCH_PREVENTION = "Q"
    SUPERVISORY = "S"
    TIMEOUT = "T"
    USER_REQUESTED = "U"
    OPEN_PROTECTION = "X"
    SYSTEM = "Z"
    DIRECT_LISTING_CAPITAL_RAISE = "e"


class RejectReason(IntEnum):
    """§8.2 (open list: other u16 values decode as plain ``int``)."""

    QUOTE_UNAVAILABLE = 0x0001
    DESTINATION_CLOSED = 0x0002
    INVALID_DISPLAY = 0x0003
    INVALID_MAX_FLOOR = 0x0004
    INVALID_PEG_TYPE = 0x0005
    FAT_FINGER = 0x0006
    HALTED = 0x0007
    ISO_NOT_ALLOWED = 0x0008
    INVALID_SIDE = 0x0009
    PROCESSING_ERROR = 0x000A
    CANCEL_PENDING = 0x000B
    FIRM_NOT_AUTHORIZED = 0x000C
    INVALID_MIN_QUANTITY = 0x000D
    NO_CLOSING_REFERENCE_PRICE = 0x000E
    OTHER = 0x000F
    CANCEL_NOT_ALLOWED = 0x0010
    PEGGING_NOT_ALLOWED = 0x0011
    CROSSED_MARKET = 0x0012
    INVALID_QUANTITY = 0x0013
    INVALID_CROSS_ORDER = 0x0014
    REPLACE_NOT_ALLOWED = 0x0015
    ROUTING_NOT_ALLOWED = 0x0016
    INVALID_SYMBOL = 0x0017
    TEST = 0x0018
    LATE_LOC_TOO_AGGRESSIVE = 0x0019
    RETAIL_NOT_ALLOWED = 0x001A
    INVALID_MIDPOINT_POST_ONLY_PRICE = 0x001B
    INVALID_DESTINATION = 0x001C
    INVALID_PRICE = 0x001D
    SHARES_EXCEED_THRESHOLD = 0x001E
    EXCEEDS_MAXIMUM_ALLOWED_NOTIONAL_VALUE = 0x001F
    RISK_AGGREGATE_EXPOSURE_EXCEEDED = 0x0020
    RISK_MARKET_IMPACT = 0x0021
    RISK_RESTRICTED_STOCK = 0x0022
    RISK_SHORT_SELL_RESTRICTED = 0x0023
    RISK_ISO_NOT_ALLOWED = 0x0024
    RISK_EXCEEDS_ADV_LIMIT = 0x0025
    RISK_FAT_FINGER = 0x0026
    RISK_LOCATE_REQUIRED = 0x0027
    RISK_SYMBOL_MESSAGE_RATE_RESTRICTION = 0x0028
    RISK_PORT_MESSAGE_RATE_RESTRICTION = 0x0029
    RISK_DUPLICATE_MESSAGE_RATE_RESTRICTION = 0x002A
    RISK_SHORT_SELL_NOT_ALLOWED = 0x002B
    RISK_MARKET_ORDER_NOT_ALLOWED = 0x002C
    RISK_PRE_MARKET_NOT_ALLOWED = 0x002D
    RISK_POST_MARKET_NOT_ALLOWED = 0x002E
    RISK_SHORT_SELL_EXEMPT_NOT_ALLOWED = 0x002F
    RISK_SINGLE_ORDER_NOTIONAL_EXCEEDED = 0x0030
    RISK_MAX_QUANTITY_EXCEEDED = 0x0031
    REG_SHO_STATE_NOT_AVAILABLE = 0x0032
    RISK_IPO_MARKET_BUY_NOT_ALLOWED = 0x0033
    INVALID_AIQ = 0x0040


class LiquidityFlag(StrEnum):
    """§8.3 (open list: other letters decode as plain ``str``)."""

    ADDED = "A"
    CLOSING_CROSS = "C"
    RETAIL_ADDED_DISPLAYED = "e"
    HALT_IPO_CROSS = "H"
    AFTER_HOURS_CLOSING_CROSS = "i"
    NON_DISPLAYED_ADDING = "J"
    RPI_PROVIDES = "j"
    ADDED_MIDPOINT = "k"
    HALT_CROSS = "K"
    CLOSING_CROSS_IMBALANCE_ONLY = "L"
    OPENING_CROSS_IMBALANCE_ONLY = "M"
    REMOVED_MIDPOINT = "m"
    PASSIVE_MIDPOINT = "N"
    MIDPOINT_EXTENDED_LIFE = "n"
    OPENING_CROSS = "O"
    REMOVED_PRICE_IMPROVING_NON_DISPLAYED = "p"
    RMO_REMOVES_NON_RPI_MIDPOINT = "q"
    REMOVED = "R"
    RETAIL_REMOVES_RPI = "r"
    RETAIL_REMOVES_PRICE_IMPROVING_NON_DISPLAYED = "t"
    ADDED_NON_DISPLAYED_RESERVE = "u"
    SUPPLEMENTAL = "0"
    DISPLAYED_IMPROVES_NBBO = "7"
    DISPLAYED_SETS_QBBO_JOINS_NBBO = "8"
    RPI_PROVIDES_NO_RPII = "1"
    ADDED_PRE_MARKET = "2"
    REMOVED_PRE_MARKET = "3"
    DISPLAYED_IMPROVES_NBBO_PRE_MARKET = "5"
    NON_DISPLAYED_ADDING_PRE_MARKET = "9"


# ---- option value codes (§5); documentation constants, not enforced by the codec ----


class CustomerType(StrEnum):
    RETAIL = "R"
    NOT_RETAIL = "N"
    PORT_DEFAULT = " "


class PriceType(StrEnum):
    LIMIT = "L"
    MARKET_PEG = "P"
    MIDPOINT_PEG = "M"
    PRIMARY_PEG = "R"
    MARKET_MAKER_PEG = "Q"
    MIDPOINT = "m"  # text truncated in the source (unverified)


class PostOnly(StrEnum):
    POST_ONLY = "P"
    NO = "N"


class YesNo(StrEnum):
    """TradeNow (space = port default) and Shares Located."""

    YES = "Y"
    NO = "N"


class HandleInst(StrEnum):
    IMBALANCE_ONLY = "I"
    RETAIL_ORDER_TYPE_1 = "O"
    RETAIL_ORDER_TYPE_2 = "T"
    RETAIL_PRICE_IMPROVEMENT = "Q"
    EXTENDED_LIFE_CONTINUOUS = "B"
    DIRECT_LISTING_CAPITAL_RAISE = "D"
    NONE = " "


class BboWeightIndicator(StrEnum):
    W0_0_2 = "0"
    W0_2_1 = "1"
    W1_2 = "2"
    W2_PLUS = "3"
    UNSPECIFIED = " "
    SETS_QBBO_JOINS_NBBO = "S"
    IMPROVES_NBBO = "N"


class AiqStrategy(StrEnum):
    """AIQ (self-match prevention) strategy: level x action, §5."""

    FIRM_DECREMENT_BOTH_NO_DETAILS = "Y"
    FIRM_DECREMENT_BOTH = "D"
    FIRM_CANCEL_OLDEST = "O"
    FIRM_CANCEL_NEWEST = "W"
    FIRM_USE_REMOVER = "R"
    ORG_DECREMENT_BOTH_NO_DETAILS = "y"
    ORG_DECREMENT_BOTH = "d"
    ORG_CANCEL_OLDEST = "o"
    ORG_CANCEL_NEWEST = "w"
    ORG_USE_REMOVER = "r"
    AFFILIATE_DECREMENT_BOTH_NO_DETAILS = "Z"
    AFFILIATE_DECREMENT_BOTH = "E"
    AFFILIATE_CANCEL_OLDEST = "P"
    AFFILIATE_CANCEL_NEWEST = "X"
    AFFILIATE_USE_REMOVER = "S"
    ANY_DECREMENT_BOTH_NO_DETAILS = "0"
    ANY_DECREMENT_BOTH = "1"
    ANY_CANCEL_OLDEST = "2"
    ANY_CANCEL_NEWEST = "4"
    ANY_USE_REMOVER = "5"
    PORT_DEFAULT = "*"
    DISABLED = "N"
