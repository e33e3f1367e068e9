"""Typed FIX 4.4 session and order-entry messages (frozen msgspec Structs) and their mapping.

Design notes
------------
* Each Struct declares ``MSG_TYPE`` and ``FIX_FIELDS``: (attribute, tag, kind, required) rows in
  dictionary order (shared/specs/fix44.md §4). ``to_fields``/``from_message`` are driven by
  that table only, so adding a field is one row plus one attribute.
* Required = the dictionary's ``Req=Y`` for the message's own fields. Fields of components the
  dictionary marks required but whose members are all optional (Instrument -> Symbol,
  OrderQtyData -> OrderQty) stay optional here, as in the dictionary; the application answers
  their absence with BusinessMessageReject 5 (conditionally required field missing).
* Money is never a float: PRICE fields become ``int`` Price(4) units by exact decimal-string
  arithmetic ("12.3456" -> 123456; more than four significant decimals -> reason 5). QTY
  fields are ``int`` (a zero fraction such as "100.00" is accepted, "100.5" is reason 5).
  UTCTIMESTAMP fields are ``int`` ns since the epoch (written with millisecond precision).
* Parse errors are ``FixError`` with the SessionRejectReason (1 missing, 5 bad value, 6 bad
  format, 11 unknown MsgType), the tag, and the message's MsgSeqNum/MsgType for the Reject.
* Only the commonly used optional fields are modelled; other tags of a received message are
  ignored by ``from_message`` (they remain available on the ``FixMessage``).
* ``to_fields``/``from_message`` run from per-class rows precomputed from ``FIX_FIELDS`` (tag,
  kind, how to render or parse its common case inline); any value outside that common case
  goes through ``_render``/``_parse``. ``_checked_to_fields``/``_checked_from_message`` are the
  plain loops over ``FIX_FIELDS`` that the fast ones must match (tests/protocols/
  test_fix44_fast_paths.py).
* ``encode_message`` writes a typed message in one pass over the same rows, each text after
  its ``<SOH>tag=``; ``encode(msg.MSG_TYPE, to_fields(msg), ...)`` is its reference and takes
  anything outside the common message.
* Where built, the C ``encode_message`` and ``read`` (``speedups``) run these rows first for
  the common message and leave anything else to the Python paths here.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, ClassVar, NamedTuple

import msgspec

from agora.core.price import parse_price as price_units
from agora.protocols.fix44 import speedups
from agora.protocols.fix44.codec import (
    FixError,
    FixMessage,
    common_header,
    encode,
    fast_envelope,
    format_timestamp,
    parse_bool,
    parse_int,
    parse_timestamp,
)
from agora.protocols.fix44.enums import (
    BusinessRejectReason,
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    SessionRejectReason,
    Side,
    TimeInForce,
)

_DECIMAL_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")

STR, INT, SEQ, QTY, PRICE, BOOL, TIME = "str", "int", "seq", "qty", "price", "bool", "time"


# ---------------------------------------------------------------------------------- values


def parse_price(text: str, tag: int = 44) -> int:
    """FIX PRICE decimal string -> Price(4) int, exactly (never through float)."""
    whole, dot, frac = text.partition(".")
    # the common case by int arithmetic: unsigned, at most 4 decimals, short enough that the
    # Decimal path (28 significant digits) would be exact too
    if (len(text) <= 24 and whole.isdigit() and text.isascii()
            and (frac.isdigit() if dot else True) and len(frac) <= 4):
        return int(whole) * 10_000 + (int(frac.ljust(4, "0")) if frac else 0)
    return _checked_parse_price(text, tag)


def _checked_parse_price(text: str, tag: int) -> int:
    m = _DECIMAL_RE.fullmatch(text)
    if m is None:
        raise FixError(f"tag {tag}: not a decimal price: {text!r}", reason=6, tag=tag)
    try:  # the FIX syntax is checked above; the exact arithmetic is agora.core's
        return price_units(text)
    except ValueError:
        raise FixError(
            f"tag {tag}: price {text!r} has more than 4 decimals", reason=5, tag=tag
        ) from None


def format_price(units: int) -> str:
    """Price(4) int -> shortest exact FIX decimal ("12.34", "100", "-0.0001")."""
    if type(units) is int and units >= 0:
        whole, frac = divmod(units, 10_000)
        return f"{whole}.{frac:04d}".rstrip("0") if frac else str(whole)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10_000)
    tail = f"{frac:04d}".rstrip("0")
    return f"{sign}{whole}.{tail}" if tail else f"{sign}{whole}"


def parse_qty(text: str, tag: int = 38) -> int:
    m = _DECIMAL_RE.fullmatch(text)
    if m is None or m.group(1):
        raise FixError(f"tag {tag}: not a quantity: {text!r}", reason=6, tag=tag)
    if (m.group(3) or "").strip("0"):
        raise FixError(f"tag {tag}: fractional quantity {text!r}", reason=5, tag=tag)
    return int(m.group(2))


def _parse(kind: Any, text: str, tag: int) -> Any:
    if kind == STR:
        return text
    if kind == INT:
        return parse_int(text, tag)
    if kind == SEQ:
        n = parse_int(text, tag)
        if n < 0:
            raise FixError(f"tag {tag}: negative sequence number", reason=5, tag=tag)
        return n
    if kind == QTY:
        return parse_qty(text, tag)
    if kind == PRICE:
        return parse_price(text, tag)
    if kind == BOOL:
        return parse_bool(text, tag)
    if kind == TIME:
        return parse_timestamp(text, tag)
    try:  # an Enum class
        return kind(parse_int(text, tag) if issubclass(kind, int) else text)
    except ValueError:
        raise FixError(f"tag {tag}: value {text!r} is not a valid {kind.__name__}", reason=5,
                       tag=tag) from None


def _render(kind: Any, value: Any) -> str:
    special = _RENDER.get(kind)
    if special is not None:
        return special(value)
    if isinstance(value, Enum):
        return str(value.value)
    return value if type(value) is str else str(value)


_RENDER = {
    PRICE: format_price,
    TIME: format_timestamp,
    BOOL: lambda value: "Y" if value else "N",
}


class F(NamedTuple):
    attr: str
    tag: int
    kind: Any
    required: bool = False


# ---------------------------------------------------------------------------------- structs


class FixStruct(msgspec.Struct, frozen=True, kw_only=True):
    MSG_TYPE: ClassVar[str]
    FIX_FIELDS: ClassVar[tuple[F, ...]]


_BY_TYPE: dict[str, type[FixStruct]] = {}


def _register(msg_type: str, *fields: F):
    def deco(cls: type[FixStruct]) -> type[FixStruct]:
        cls.MSG_TYPE = msg_type
        cls.FIX_FIELDS = fields
        names = set(cls.__struct_fields__)
        assert {f.attr for f in fields} == names, (cls.__name__, names ^ {f.attr for f in fields})
        _BY_TYPE[msg_type] = cls
        _READERS[msg_type] = cls, tuple(_reader(f) for f in fields)
        _WRITERS[cls] = tuple(_writer(f, cls.__struct_fields__.index(f.attr)) for f in fields)
        return cls

    return deco


# The hot paths (``from_message``, ``to_fields``) read one precomputed row per field: how to
# parse or render its kind in the common case, inline. Whatever that does not cover goes to
# ``_parse``/``_render``, which decide (and name errors) exactly as the checked paths do.
_R_STR, _R_DIGITS, _R_ENUM, _R_PRICE, _R_TIME, _R_OTHER = range(6)
_W_PLAIN, _W_STR_ENUM, _W_INT_ENUM, _W_PRICE, _W_TIME, _W_BOOL = range(6)
_READERS: dict[str, tuple[type[FixStruct], tuple[tuple[Any, ...], ...]]] = {}
_WRITERS: dict[type[FixStruct], tuple[tuple[Any, ...], ...]] = {}
_astuple = msgspec.structs.astuple


def _reader(f: F) -> tuple[Any, ...]:
    """(tag, attr, kind, code, table, required); ``table``: wire text -> member of an enum."""
    table = None
    if f.kind == STR:
        code = _R_STR
    elif f.kind in (INT, SEQ, QTY):
        code = _R_DIGITS  # plain digits: int(text) is what each of these parsers returns
    elif f.kind == PRICE:
        code = _R_PRICE
    elif f.kind == TIME:
        code = _R_TIME
    elif isinstance(f.kind, type) and issubclass(f.kind, Enum):
        code = _R_ENUM  # kind(int(text)) or kind(text), by the canonical text of each value
        table = {str(value): member for value, member in f.kind._value2member_map_.items()}
    else:
        code = _R_OTHER
    return f.tag, f.attr, f.kind, code, table, f.required


def _writer(f: F, position: int) -> tuple[Any, ...]:
    """(position in ``astuple``, tag, kind, code, required)."""
    kind = f.kind
    if kind == PRICE:
        code = _W_PRICE
    elif kind == TIME:
        code = _W_TIME
    elif kind == BOOL:
        code = _W_BOOL
    elif isinstance(kind, type) and issubclass(kind, Enum) and issubclass(kind, str | int):
        code = _W_STR_ENUM if issubclass(kind, str) else _W_INT_ENUM
    else:
        code = _W_PLAIN
    return position, f.tag, kind, code, f.required


# -- session (admin) messages


@_register("A", F("encrypt_method", 98, INT, True), F("heart_bt_int", 108, INT, True),
           F("reset_seq_num_flag", 141, BOOL), F("next_expected_msg_seq_num", 789, SEQ),
           F("username", 553, STR), F("password", 554, STR))
class Logon(FixStruct, frozen=True, kw_only=True):
    heart_bt_int: int
    encrypt_method: int = 0
    reset_seq_num_flag: bool | None = None
    next_expected_msg_seq_num: int | None = None
    username: str | None = None
    password: str | None = None


@_register("0", F("test_req_id", 112, STR))
class Heartbeat(FixStruct, frozen=True, kw_only=True):
    test_req_id: str | None = None


@_register("1", F("test_req_id", 112, STR, True))
class TestRequest(FixStruct, frozen=True, kw_only=True):
    __test__ = False  # not a pytest class
    test_req_id: str


@_register("2", F("begin_seq_no", 7, SEQ, True), F("end_seq_no", 16, SEQ, True))
class ResendRequest(FixStruct, frozen=True, kw_only=True):
    begin_seq_no: int
    end_seq_no: int  # 0 = all subsequent


@_register("3", F("ref_seq_num", 45, SEQ, True), F("ref_tag_id", 371, INT),
           F("ref_msg_type", 372, STR), F("session_reject_reason", 373, SessionRejectReason),
           F("text", 58, STR))
class Reject(FixStruct, frozen=True, kw_only=True):
    ref_seq_num: int
    ref_tag_id: int | None = None
    ref_msg_type: str | None = None
    session_reject_reason: SessionRejectReason | None = None
    text: str | None = None


@_register("4", F("gap_fill_flag", 123, BOOL), F("new_seq_no", 36, SEQ, True))
class SequenceReset(FixStruct, frozen=True, kw_only=True):
    new_seq_no: int
    gap_fill_flag: bool | None = None


@_register("5", F("text", 58, STR))
class Logout(FixStruct, frozen=True, kw_only=True):
    text: str | None = None


# -- application messages

_ORDER_TAIL = (F("price", 44, PRICE), F("stop_px", 99, PRICE), F("time_in_force", 59, TimeInForce))


@_register("D", F("cl_ord_id", 11, STR, True), F("account", 1, STR), F("handl_inst", 21, STR),
           F("exec_inst", 18, STR), F("min_qty", 110, QTY), F("max_floor", 111, QTY),
           F("symbol", 55, STR), F("side", 54, Side, True), F("transact_time", 60, TIME, True),
           F("order_qty", 38, QTY), F("ord_type", 40, OrdType, True), *_ORDER_TAIL,
           F("expire_time", 126, TIME), F("text", 58, STR))
class NewOrderSingle(FixStruct, frozen=True, kw_only=True):
    cl_ord_id: str
    side: Side
    transact_time: int
    ord_type: OrdType
    symbol: str | None = None
    order_qty: int | None = None
    price: int | None = None
    stop_px: int | None = None
    time_in_force: TimeInForce | None = None
    account: str | None = None
    handl_inst: str | None = None
    exec_inst: str | None = None
    min_qty: int | None = None
    max_floor: int | None = None
    expire_time: int | None = None
    text: str | None = None


@_register("F", F("orig_cl_ord_id", 41, STR, True), F("order_id", 37, STR),
           F("cl_ord_id", 11, STR, True), F("account", 1, STR), F("symbol", 55, STR),
           F("side", 54, Side, True), F("transact_time", 60, TIME, True),
           F("order_qty", 38, QTY), F("text", 58, STR))
class OrderCancelRequest(FixStruct, frozen=True, kw_only=True):
    orig_cl_ord_id: str
    cl_ord_id: str
    side: Side
    transact_time: int
    order_id: str | None = None
    account: str | None = None
    symbol: str | None = None
    order_qty: int | None = None
    text: str | None = None


@_register("G", F("order_id", 37, STR), F("orig_cl_ord_id", 41, STR, True),
           F("cl_ord_id", 11, STR, True), F("account", 1, STR), F("handl_inst", 21, STR),
           F("min_qty", 110, QTY), F("max_floor", 111, QTY), F("symbol", 55, STR),
           F("side", 54, Side, True), F("transact_time", 60, TIME, True),
           F("order_qty", 38, QTY), F("ord_type", 40, OrdType, True), *_ORDER_TAIL,
           F("text", 58, STR))
class OrderCancelReplaceRequest(FixStruct, frozen=True, kw_only=True):
    orig_cl_ord_id: str
    cl_ord_id: str
    side: Side
    transact_time: int
    ord_type: OrdType
    order_id: str | None = None
    account: str | None = None
    handl_inst: str | None = None
    min_qty: int | None = None
    max_floor: int | None = None
    symbol: str | None = None
    order_qty: int | None = None
    price: int | None = None
    stop_px: int | None = None
    time_in_force: TimeInForce | None = None
    text: str | None = None


@_register("H", F("order_id", 37, STR), F("cl_ord_id", 11, STR, True),
           F("ord_status_req_id", 790, STR), F("account", 1, STR), F("symbol", 55, STR),
           F("side", 54, Side, True))
class OrderStatusRequest(FixStruct, frozen=True, kw_only=True):
    cl_ord_id: str
    side: Side
    order_id: str | None = None
    ord_status_req_id: str | None = None
    account: str | None = None
    symbol: str | None = None


@_register("8", F("order_id", 37, STR, True), F("cl_ord_id", 11, STR),
           F("orig_cl_ord_id", 41, STR), F("ord_status_req_id", 790, STR),
           F("exec_id", 17, STR, True), F("exec_ref_id", 19, STR),
           F("exec_type", 150, ExecType, True), F("ord_status", 39, OrdStatus, True),
           F("ord_rej_reason", 103, OrdRejReason), F("account", 1, STR), F("symbol", 55, STR),
           F("side", 54, Side, True), F("order_qty", 38, QTY), F("ord_type", 40, OrdType),
           *_ORDER_TAIL, F("last_qty", 32, QTY), F("last_px", 31, PRICE),
           F("leaves_qty", 151, QTY, True), F("cum_qty", 14, QTY, True),
           F("avg_px", 6, PRICE, True), F("transact_time", 60, TIME), F("text", 58, STR))
class ExecutionReport(FixStruct, frozen=True, kw_only=True):
    order_id: str
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    side: Side
    leaves_qty: int
    cum_qty: int
    avg_px: int
    cl_ord_id: str | None = None
    orig_cl_ord_id: str | None = None
    ord_status_req_id: str | None = None
    exec_ref_id: str | None = None
    ord_rej_reason: OrdRejReason | None = None
    account: str | None = None
    symbol: str | None = None
    order_qty: int | None = None
    ord_type: OrdType | None = None
    price: int | None = None
    stop_px: int | None = None
    time_in_force: TimeInForce | None = None
    last_qty: int | None = None
    last_px: int | None = None
    transact_time: int | None = None
    text: str | None = None


@_register("9", F("order_id", 37, STR, True), F("cl_ord_id", 11, STR, True),
           F("orig_cl_ord_id", 41, STR, True), F("ord_status", 39, OrdStatus, True),
           F("account", 1, STR), F("transact_time", 60, TIME),
           F("cxl_rej_response_to", 434, CxlRejResponseTo, True),
           F("cxl_rej_reason", 102, CxlRejReason), F("text", 58, STR))
class OrderCancelReject(FixStruct, frozen=True, kw_only=True):
    order_id: str  # "NONE" when the order is unknown (with CxlRejReason 1)
    cl_ord_id: str
    orig_cl_ord_id: str
    ord_status: OrdStatus
    cxl_rej_response_to: CxlRejResponseTo
    cxl_rej_reason: CxlRejReason | None = None
    account: str | None = None
    transact_time: int | None = None
    text: str | None = None


@_register("j", F("ref_seq_num", 45, SEQ), F("ref_msg_type", 372, STR, True),
           F("business_reject_ref_id", 379, STR),
           F("business_reject_reason", 380, BusinessRejectReason, True), F("text", 58, STR))
class BusinessMessageReject(FixStruct, frozen=True, kw_only=True):
    ref_msg_type: str
    business_reject_reason: BusinessRejectReason
    ref_seq_num: int | None = None
    business_reject_ref_id: str | None = None
    text: str | None = None


MESSAGE_TYPES: dict[str, type[FixStruct]] = dict(_BY_TYPE)
ADMIN_TYPES = frozenset("A012345")
_PREFIXED: dict[type[FixStruct], tuple[tuple[Any, ...], ...]] = {
    cls: tuple((position, f"\x01{tag}=", *rest) for position, tag, *rest in rows)
    for cls, rows in _WRITERS.items()
}
"""``_WRITERS`` keyed by each field's ``<SOH>tag=`` prefix, for ``encode_message``."""


# ---------------------------------------------------------------------------------- mapping


def to_fields(msg: FixStruct) -> list[tuple[int, str]]:
    """Body fields of a typed message, in dictionary order; ``None`` attributes are omitted."""
    rows = _WRITERS.get(type(msg))
    flat = None if rows is None else _fast_texts(msg, rows)
    if flat is None:
        return _checked_to_fields(msg)
    return list(zip(flat[::2], flat[1::2]))  # noqa: B905 (pairs by construction)


def encode_message(msg: FixStruct, *, sender: str, target: str, seq_num: int,
                   sending_time: int) -> bytes:
    """``encode(msg.MSG_TYPE, to_fields(msg), ...)`` in one pass over the typed message: each
    text lands after its field's ``<SOH>tag=`` (``_PREFIXED``) in the list that is joined into
    the body, with no (tag, text) pairs for ``encode`` to walk again. Anything but the common
    message goes to that reference."""
    rows = _PREFIXED.get(type(msg))
    if rows is not None and speedups.ext is not None:  # the common message in one C pass
        data = speedups.ext.encode_message(_astuple(msg), rows, msg.MSG_TYPE, sender, target,
                                           seq_num, sending_time)
        if data is not None:
            return data
    if rows is not None and type(sending_time) is int and type(seq_num) is int and seq_num > 0:
        flat = _fast_texts(msg, rows)  # first, as the reference renders before it frames
        head = None if flat is None else common_header(
            msg.MSG_TYPE, sender, target, seq_num, format_timestamp(sending_time))
        if head is not None:
            flat.append("\x01")
            text = head + "".join(flat)
            # an empty value would leave "=<SOH>"; a SOH inside a value, one SOH too many
            if "=\x01" not in text and text.count("\x01") == 5 + len(flat) // 2:
                data = fast_envelope(text)
                if data is not None:
                    return data
    return encode(msg.MSG_TYPE, to_fields(msg), sender=sender, target=target, seq_num=seq_num,
                  sending_time=sending_time)


def _fast_texts(msg: FixStruct, rows: tuple[tuple[Any, ...], ...]) -> list[Any] | None:
    """key, text, key, text... for the present attributes of ``msg`` by its class's rows (key:
    the tag, or its ``<SOH>tag=`` prefix); None when a required attribute is missing (the
    checked loop names it). Values outside the common case of their kind go to ``_render``."""
    values = _astuple(msg)
    out: list[Any] = []
    add = out.append
    for position, key, kind, code, required in rows:
        value = values[position]
        if value is None:
            if required:
                return None
            continue
        t = type(value)
        if code == _W_PLAIN:
            text = value if t is str else str(value) if t is int else _render(kind, value)
        elif code == _W_STR_ENUM:
            text = value._value_ if t is kind else _render(kind, value)
        elif code == _W_PRICE:
            text = format_price(value)
        elif code == _W_TIME:
            text = format_timestamp(value)
        elif code == _W_BOOL:
            text = "Y" if value else "N"
        else:  # _W_INT_ENUM
            text = str(value._value_) if t is kind else _render(kind, value)
        add(key)
        add(text)
    return out


def _checked_to_fields(msg: FixStruct) -> list[tuple[int, str]]:
    """``to_fields`` field by field through ``_render`` (the reference for the fast path)."""
    out = []
    for f in msg.FIX_FIELDS:
        value = getattr(msg, f.attr)
        if value is None:
            if f.required:
                raise FixError(f"{type(msg).__name__}.{f.attr} (tag {f.tag}) is required",
                               reason=1, tag=f.tag)
            continue
        out.append((f.tag, _render(f.kind, value)))
    return out


def _type_and_seq(msg: FixMessage) -> tuple[str | None, int | None]:
    """MsgType and MsgSeqNum as a Reject needs them (None when absent or not ASCII digits:
    ``str.isdigit`` also takes '²', which ``int`` refuses)."""
    seq_text = msg.get(34)
    seq = (int(seq_text) if seq_text is not None and seq_text.isascii() and seq_text.isdigit()
           else None)
    return msg.get(35), seq


def _unsupported(mt: str | None, seq: int | None) -> FixError:
    return FixError(f"unsupported MsgType {mt!r}", reason=11, tag=35, seq_num=seq, msg_type=mt)


def from_message(msg: FixMessage) -> FixStruct:
    """Typed view of a decoded message; raises FixError (with reason, tag, RefSeqNum)."""
    get = msg._index.get if type(msg) is FixMessage else msg.get
    reader = _READERS.get(get(35) or "")
    if reader is None:
        raise _unsupported(*_type_and_seq(msg))
    cls, rows = reader
    if speedups.ext is not None and type(msg) is FixMessage:  # the common message in C
        kwargs = speedups.ext.read(msg._index, rows)
        if kwargs is not None:
            return cls(**kwargs)
    kwargs = {}
    try:
        for tag, attr, kind, code, table, required in rows:
            text = get(tag)
            if text is None:
                if required:
                    raise FixError(f"{cls.__name__}: required tag {tag} ({attr}) missing",
                                   reason=1, tag=tag)
                continue
            if code == _R_STR:
                kwargs[attr] = text
            elif code == _R_DIGITS:
                kwargs[attr] = (int(text) if text.isdigit() and text.isascii()
                                else _parse(kind, text, tag))
            elif code == _R_ENUM:
                member = table.get(text)
                kwargs[attr] = member if member is not None else _parse(kind, text, tag)
            elif code == _R_PRICE:
                kwargs[attr] = parse_price(text, tag)
            elif code == _R_TIME:
                kwargs[attr] = parse_timestamp(text, tag)
            else:
                kwargs[attr] = _parse(kind, text, tag)
    except FixError as exc:  # MsgType and MsgSeqNum are read for a Reject only
        exc.msg_type, exc.seq_num = _type_and_seq(msg)
        raise
    return cls(**kwargs)


def _checked_from_message(msg: FixMessage) -> FixStruct:
    """``from_message`` field by field through ``_parse`` (the reference for the fast path)."""
    mt, seq = _type_and_seq(msg)
    cls = _BY_TYPE.get(mt or "")
    if cls is None:
        raise _unsupported(mt, seq)
    kwargs: dict[str, Any] = {}
    try:
        for f in cls.FIX_FIELDS:
            text = msg.get(f.tag)
            if text is None:
                if f.required:
                    raise FixError(f"{cls.__name__}: required tag {f.tag} ({f.attr}) missing",
                                   reason=1, tag=f.tag)
                continue
            kwargs[f.attr] = _parse(f.kind, text, f.tag)
    except FixError as exc:
        exc.seq_num, exc.msg_type = seq, mt
        raise
    return cls(**kwargs)
