"""Enumerations shared by every package.

String enums carry the values a human reads in a journal dump; ``RejectReason`` and
``CancelReason`` are integer codes grouped by stage and only ever appended (never renumbered),
so journals and protocol mappings stay valid across versions.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Side(StrEnum):
    BUY = "B"
    SELL = "S"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(StrEnum):
    DAY = "DAY"  # rests until the symbol closes
    GTC = "GTC"  # rests across sessions until cancelled
    IOC = "IOC"  # executes what it can at once, the rest is cancelled
    FOK = "FOK"  # executes in full at once or not at all


class TradingState(StrEnum):
    PRE_OPEN = "PRE_OPEN"  # orders rest without matching; opening auction on OPEN
    OPEN = "OPEN"  # continuous price-time matching
    HALTED = "HALTED"  # like PRE_OPEN; reopening auction on OPEN
    CLOSED = "CLOSED"  # no new orders; DAY orders expired


class StpMode(StrEnum):
    """Self-trade prevention, applied when an incoming order would hit its own participant."""

    NONE = "NONE"
    CANCEL_NEWEST = "CANCEL_NEWEST"  # cancel the rest of the incoming order
    CANCEL_OLDEST = "CANCEL_OLDEST"  # cancel the resting order, keep matching
    CANCEL_BOTH = "CANCEL_BOTH"  # cancel both


class RejectReason(IntEnum):
    """Why an input was refused. Ranges by stage; codes are appended, never reused."""

    # 100: the message itself
    INVALID_QUANTITY = 101
    INVALID_PRICE = 102
    INVALID_TICK = 103
    INVALID_LOT = 104
    INVALID_DISPLAY_QTY = 105
    INVALID_MIN_QTY = 106
    INVALID_ORDER_TYPE = 107
    INVALID_TIME_IN_FORCE = 108
    INVALID_SYMBOL_SPEC = 109
    INVALID_PARTICIPANT_SPEC = 110
    INVALID_CLIENT_ORDER_ID = 111
    MALFORMED = 112
    # 200: reference data
    UNKNOWN_SYMBOL = 201
    UNKNOWN_PARTICIPANT = 202
    UNKNOWN_ORDER = 203
    DUPLICATE_CLIENT_ORDER_ID = 204
    DUPLICATE_SYMBOL = 205
    # 300: trading state
    SYMBOL_HALTED = 301
    MARKET_CLOSED = 302
    NOT_ALLOWED_IN_STATE = 303
    INVALID_STATE_TRANSITION = 304
    # 400: exchange risk
    PRICE_OUT_OF_BAND = 401
    PRICE_COLLAR = 402
    MAX_ORDER_QTY = 403
    MAX_NOTIONAL = 404
    MAX_OPEN_ORDERS = 405
    KILL_SWITCH = 406
    # 500: matching
    POST_ONLY_WOULD_CROSS = 501


class CancelReason(IntEnum):
    """Why an order (or part of it) left the book. Appended, never renumbered."""

    USER = 1  # cancel or reduce request
    IMMEDIATE_OR_CANCEL = 2  # IOC/market remainder that found no liquidity
    FILL_OR_KILL = 3  # FOK that could not fill in full
    MIN_QTY = 4  # minimum quantity could not be met at once
    SELF_TRADE = 5  # self-trade prevention
    KILL_SWITCH = 6  # participant's kill switch
    EXPIRED = 7  # DAY order at the close
