"""FIX 4.4 enumerations, values and names as in shared/specs/fix44.md §6 (from FIX44.xml).

CHAR fields are ``StrEnum``, INT fields ``IntEnum``; member names are QuickFIX's dictionary
names (``NON`` for SessionRejectReason 17 and ``ORDER_CANCEL`` for CxlRejResponseTo 2 are
QuickFIX's truncations, kept so the names stay mechanically traceable to the dictionary).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Side(StrEnum):
    BUY = "1"
    SELL = "2"
    BUY_MINUS = "3"
    SELL_PLUS = "4"
    SELL_SHORT = "5"
    SELL_SHORT_EXEMPT = "6"
    UNDISCLOSED = "7"
    CROSS = "8"
    CROSS_SHORT = "9"
    CROSS_SHORT_EXEMPT = "A"
    AS_DEFINED = "B"
    OPPOSITE = "C"
    SUBSCRIBE = "D"
    REDEEM = "E"
    LEND = "F"
    BORROW = "G"


class OrdType(StrEnum):
    MARKET = "1"
    LIMIT = "2"
    STOP = "3"
    STOP_LIMIT = "4"
    WITH_OR_WITHOUT = "6"
    LIMIT_OR_BETTER = "7"
    LIMIT_WITH_OR_WITHOUT = "8"
    ON_BASIS = "9"
    PREVIOUSLY_QUOTED = "D"
    PREVIOUSLY_INDICATED = "E"
    FOREX_SWAP = "G"
    FUNARI = "I"
    MARKET_IF_TOUCHED = "J"
    MARKET_WITH_LEFT_OVER_AS_LIMIT = "K"
    PREVIOUS_FUND_VALUATION_POINT = "L"
    NEXT_FUND_VALUATION_POINT = "M"
    PEGGED = "P"


class TimeInForce(StrEnum):
    DAY = "0"
    GOOD_TILL_CANCEL = "1"
    AT_THE_OPENING = "2"
    IMMEDIATE_OR_CANCEL = "3"
    FILL_OR_KILL = "4"
    GOOD_TILL_CROSSING = "5"
    GOOD_TILL_DATE = "6"
    AT_THE_CLOSE = "7"


class OrdStatus(StrEnum):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    PENDING_CANCEL = "6"
    STOPPED = "7"
    REJECTED = "8"
    SUSPENDED = "9"
    PENDING_NEW = "A"
    CALCULATED = "B"
    EXPIRED = "C"
    ACCEPTED_FOR_BIDDING = "D"
    PENDING_REPLACE = "E"


class ExecType(StrEnum):
    NEW = "0"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    REPLACED = "5"
    PENDING_CANCEL = "6"
    STOPPED = "7"
    REJECTED = "8"
    SUSPENDED = "9"
    PENDING_NEW = "A"
    CALCULATED = "B"
    EXPIRED = "C"
    RESTATED = "D"
    PENDING_REPLACE = "E"
    TRADE = "F"
    TRADE_CORRECT = "G"
    TRADE_CANCEL = "H"
    ORDER_STATUS = "I"


class OrdRejReason(IntEnum):
    BROKER_CREDIT = 0
    UNKNOWN_SYMBOL = 1
    EXCHANGE_CLOSED = 2
    ORDER_EXCEEDS_LIMIT = 3
    TOO_LATE_TO_ENTER = 4
    UNKNOWN_ORDER = 5
    DUPLICATE_ORDER = 6
    DUPLICATE_OF_A_VERBALLY_COMMUNICATED_ORDER = 7
    STALE_ORDER = 8
    TRADE_ALONG_REQUIRED = 9
    INVALID_INVESTOR_ID = 10
    UNSUPPORTED_ORDER_CHARACTERISTIC = 11
    INCORRECT_QUANTITY = 13
    INCORRECT_ALLOCATED_QUANTITY = 14
    UNKNOWN_ACCOUNT = 15
    OTHER = 99


class CxlRejReason(IntEnum):
    TOO_LATE_TO_CANCEL = 0
    UNKNOWN_ORDER = 1
    BROKER_CREDIT = 2
    ORDER_ALREADY_IN_PENDING_STATUS = 3
    UNABLE_TO_PROCESS_ORDER_MASS_CANCEL_REQUEST = 4
    ORIG_ORD_MOD_TIME = 5
    DUPLICATE_CL_ORD_ID = 6
    OTHER = 99


class CxlRejResponseTo(StrEnum):
    ORDER_CANCEL_REQUEST = "1"
    ORDER_CANCEL = "2"  # i.e. Order Cancel/Replace Request (G)


class BusinessRejectReason(IntEnum):
    OTHER = 0
    UNKNOWN_ID = 1
    UNKNOWN_SECURITY = 2
    UNSUPPORTED_MESSAGE_TYPE = 3
    APPLICATION_NOT_AVAILABLE = 4
    CONDITIONALLY_REQUIRED_FIELD_MISSING = 5
    NOT_AUTHORIZED = 6
    DELIVER_TO_FIRM_NOT_AVAILABLE_AT_THIS_TIME = 7


class SessionRejectReason(IntEnum):
    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    TAG_NOT_DEFINED_FOR_THIS_MESSAGE_TYPE = 2
    UNDEFINED_TAG = 3
    TAG_SPECIFIED_WITHOUT_A_VALUE = 4
    VALUE_IS_INCORRECT = 5
    INCORRECT_DATA_FORMAT_FOR_VALUE = 6
    DECRYPTION_PROBLEM = 7
    SIGNATURE_PROBLEM = 8
    COMP_ID_PROBLEM = 9
    SENDING_TIME_ACCURACY_PROBLEM = 10
    INVALID_MSG_TYPE = 11
    XML_VALIDATION_ERROR = 12
    TAG_APPEARS_MORE_THAN_ONCE = 13
    TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER = 14
    REPEATING_GROUP_FIELDS_OUT_OF_ORDER = 15
    INCORRECT_NUM_IN_GROUP_COUNT_FOR_REPEATING_GROUP = 16
    NON = 17  # Non "data" value includes field delimiter (SOH character)
    OTHER = 99


class EncryptMethod(IntEnum):
    NONE = 0
    PKCS = 1
    DES = 2
    PKCSDES = 3
    PGPDES = 4
    PGPDESMD5 = 5
    PEM = 6


class HandlInst(StrEnum):
    AUTOMATED_EXECUTION_NO_INTERVENTION = "1"
    AUTOMATED_EXECUTION_INTERVENTION_OK = "2"
    MANUAL_ORDER = "3"
