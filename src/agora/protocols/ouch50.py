"""NASDAQ OUCH 5.0 order-entry messages: a pure codec (no I/O, no session state).

Source: *OUCH 5.0 Order Entry Specification*, Nasdaq, revision **1.05** (10/7/2025), as
transcribed in ``shared/specs/ouch50.md``. OUCH 5.0 is *not* OUCH 4.2: 4-byte binary UserRefNum,
8-byte Price, 1-byte Time In Force, 14-byte ClOrdID, TagValue Optional Appendage.

Modules: this one (codec tables, ``encode``, ``decode_inbound``, ``decode_outbound``, and
re-exports of everything public), ``ouch50_messages`` (the 25 message Structs),
``ouch50_appendage`` (field kinds, :class:`Options`, TagValue codec), ``ouch50_codes`` (enums)
and ``ouch50_fast`` (a generated codec per type, which answers first; what it cannot prove it
leaves to the table-driven path, also callable alone: ``encode_checked``, ``decode_*_checked``).

Transport: each OUCH message is the payload of one SoupBinTCP packet, inbound (client -> host) in
Unsequenced Data ``U``, outbound in Sequenced Data ``S``. This module sees only the payload.

Conventions
    * Big-endian binary integers, unsigned except the Signed Price options (PegOffset,
      DiscretionPegOffset). Prices are raw ``int`` Price(4) (1/10,000 dollar); 8 bytes in bodies.
      Timestamps are ``int`` ns since midnight. One precompiled ``struct.Struct`` per fixed part.
    * Alpha fields: printable ASCII, left-justified, space-padded; encode rejects too-long,
      non-ASCII or non-printable text; decode removes trailing spaces (so ``"AB "`` and ``"AB"``
      encode alike) and rejects non-printable bytes.
    * Single-character codes of closed lists (side, time in force, display, capacity, ISO,
      cross type, order state, event code, broken-trade and restated reasons) decode to the
      enums of :mod:`agora.protocols.ouch50_codes` and anything else is a ProtocolError, on
      encode and decode. Open lists that revisions keep extending (cancel reason, reject
      reason, liquidity flag, AIQ strategy) decode known values to enum members and unknown
      ones to plain ``str``/``int``. Display ``Z`` is accepted only on Order Accepted/Replaced.
    * The codec checks wire ranges only (u32, u64, ...); business limits (quantity < 1,000,000,
      max price $199,999.9900, ExpireTime < 86,400, UserRefNum ordering) belong to the venue and
      the risk layer.
    * Appendage (``options``): an :class:`Options` Struct. Messages whose Appendage Length is
      *required* carry ``options: Options`` (empty = Appendage Length 0). Messages where the
      spec makes it *optional* carry ``options: Options | None``; ``None`` = both the Appendage
      Length field and the appendage are absent (base length - 2), ``Options()`` = the field is
      present with value 0. Encode writes known tags in ascending tag order, then unknown ones;
      decode accepts any order, so ``encode(decode(b))`` may reorder elements.
    * Strictness: ``decode_*(strict=False)`` (default) preserves undefined tags in
      ``Options.unknown`` and decodes known options even where the spec's per-message list does
      not allow them (the venue decides how to reject); ``strict=True`` raises on both.
      ``encode(strict=True)`` (default) refuses options not allowed on the message type and any
      unknown tag; ``strict=False`` writes them (relays, tests of the venue's rejects). A
      repeated tag, a zero-length element, an element overrunning the appendage or a value of
      the wrong size for its tag is always a ProtocolError.
    * Errors: every malformed input raises :class:`~agora.protocols.errors.ProtocolError` (or
      :class:`OuchError`, its subclass) with the reason: empty, unknown type, truncated or
      over-long message, appendage length mismatch, malformed TagValue, invalid codes; on
      encode also out-of-range integers, bad types and bad text. Never another exception.

Limitations / unverified cells (see the spec file)
    * SecondaryOrdRefNum (tag 1) type cell garbled: decoded as an 8-byte unsigned integer.
    * PriceType ``m`` (midpoint...) text truncated; option character codes are not validated
      against the §5 lists (only the Side option is).
    * How the 32-bit "market order" special prices map onto the 8-byte Price field is
      unverified; prices are carried as raw u64 with no special meaning attached here.
    * Modify Order side-change pairs (S<->E, S<->T, E<->T) lost their arrows; the codec accepts
      any Side, the venue enforces the rule.
    * Cancel Order UserRefNum after a Replace (the chain's latest) is unverified; not a codec
      concern. Replace's TIF list omits ``E``; the codec accepts every TIF on Replace.
"""

from __future__ import annotations

import struct
from typing import Any

from msgspec.structs import astuple

from agora.protocols.ouch50_appendage import (
    OPTION_TAGS,
    TAG_BY_NAME,
    U32,
    U64,
    Alpha,
    Chars,
    Kind,
    Options,
    OuchError,
    RejectCode,
    allowed_tags,
    decode_appendage,
    encode_appendage,
)
from agora.protocols.ouch50_codes import (
    AiqStrategy,
    BboWeightIndicator,
    BrokenTradeReason,
    CancelReason,
    Capacity,
    CrossType,
    CustomerType,
    Display,
    EventCode,
    HandleInst,
    IntermarketSweep,
    LiquidityFlag,
    OrderState,
    PostOnly,
    PriceType,
    RejectReason,
    RestatedReason,
    Side,
    TimeInForce,
    YesNo,
)
from agora.protocols.ouch50_fast import NONE, OPTIONAL, REQUIRED, compile_codec
from agora.protocols.ouch50_messages import (
    AccountQueryRequest,
    AccountQueryResponse,
    AiqCanceled,
    BrokenTrade,
    CancelOrderRequest,
    CancelPending,
    CancelReject,
    DisableOrderEntryRequest,
    DisableOrderEntryResponse,
    EnableOrderEntryRequest,
    EnableOrderEntryResponse,
    EnterOrder,
    MassCancelRequest,
    MassCancelResponse,
    ModifyOrderRequest,
    OrderAccepted,
    OrderCanceled,
    OrderExecuted,
    OrderModified,
    OrderPriorityUpdate,
    OrderReplaced,
    OrderRestated,
    OuchMessage,
    Rejected,
    ReplaceOrderRequest,
    SystemEvent,
)

__all__ = [
    "ALLOWED_OPTION_TAGS",
    "INBOUND_TYPES",
    "OPTION_TAGS",
    "OUTBOUND_TYPES",
    "TAG_BY_NAME",
    "AccountQueryRequest",
    "AccountQueryResponse",
    "AiqCanceled",
    "AiqStrategy",
    "BboWeightIndicator",
    "BrokenTrade",
    "BrokenTradeReason",
    "CancelOrderRequest",
    "CancelPending",
    "CancelReason",
    "CancelReject",
    "Capacity",
    "CrossType",
    "CustomerType",
    "DisableOrderEntryRequest",
    "DisableOrderEntryResponse",
    "Display",
    "EnableOrderEntryRequest",
    "EnableOrderEntryResponse",
    "EnterOrder",
    "EventCode",
    "HandleInst",
    "IntermarketSweep",
    "LiquidityFlag",
    "MassCancelRequest",
    "MassCancelResponse",
    "ModifyOrderRequest",
    "Options",
    "OrderAccepted",
    "OrderCanceled",
    "OrderExecuted",
    "OrderModified",
    "OrderPriorityUpdate",
    "OrderReplaced",
    "OrderRestated",
    "OrderState",
    "OuchError",
    "OuchMessage",
    "PostOnly",
    "PriceType",
    "RejectReason",
    "Rejected",
    "ReplaceOrderRequest",
    "RestatedReason",
    "Side",
    "SystemEvent",
    "TimeInForce",
    "YesNo",
    "decode_inbound",
    "decode_inbound_checked",
    "decode_outbound",
    "decode_outbound_checked",
    "encode",
    "encode_checked",
]


# ------------------------------------------------------------------------------- layouts

_NONE, _REQUIRED, _OPTIONAL = NONE, REQUIRED, OPTIONAL

ALPHA4, ALPHA8, ALPHA14 = Alpha(4), Alpha(8), Alpha(14)
SIDE = Chars(1, Side, closed=True)
TIF = Chars(1, TimeInForce, closed=True)
DISPLAY_YNA = Chars(1, Display, closed=True, allowed="YNA")
DISPLAY_OUT = Chars(1, Display, closed=True)
CAPACITY = Chars(1, Capacity, closed=True)
ISO = Chars(1, IntermarketSweep, closed=True)
CROSS = Chars(1, CrossType, closed=True)
STATE = Chars(1, OrderState, closed=True)
EVENT = Chars(1, EventCode, closed=True)
BROKEN = Chars(1, BrokenTradeReason, closed=True)
RESTATED = Chars(1, RestatedReason, closed=True)
CANCEL_REASON = Chars(1, CancelReason)
LIQUIDITY = Chars(1, LiquidityFlag)
AIQ = Chars(1, AiqStrategy)
REJECT = RejectCode(RejectReason)
PRICE = U64
TIMESTAMP = U64
REF = U32  # UserRefNum

_IDX = ("user_ref_idx",)


class _Layout:
    """Codec of one message type: fixed part ``struct.Struct`` + appendage rule."""

    __slots__ = (
        "allowed",
        "base",
        "cls",
        "decoders",
        "encoders",
        "fast_decode",
        "fast_encode",
        "fields",
        "kinds",
        "mode",
        "name",
        "struct",
        "type_byte",
    )

    def __init__(
        self,
        cls: type[OuchMessage],
        type_byte: bytes,
        inbound: bool,
        kinds: list[Kind],
        mode: int,
        allowed: tuple[str, ...],
        base: int,
    ) -> None:
        names = [f for f in cls.__struct_fields__ if f != "options"]
        assert list(cls.__struct_fields__[: len(names)]) == names, cls  # options come last
        assert len(names) == len(kinds), cls
        self.cls, self.type_byte, self.kinds, self.mode = cls, type_byte, kinds, mode
        self.fields = names
        self.name = cls.__name__
        self.encoders = [
            (k.enc, f"{self.name}.{n}") for n, k in zip(names, kinds, strict=True)
        ]  # labels built once: they only serve error messages
        self.decoders = [
            (i, k, f"{self.name}.{n}")
            for i, (n, k) in enumerate(zip(names, kinds, strict=True))
            if not k.identity_dec
        ]
        fmt = ">1s" + "".join(k.fmt for k in kinds) + ("H" if mode != _NONE else "")
        self.struct = struct.Struct(fmt)
        self.base = self.struct.size
        assert self.base == base, (cls, self.base, base)
        self.allowed = allowed_tags(allowed)
        self.fast_encode, self.fast_decode = compile_codec(
            cls, type_byte, kinds, mode, self.allowed, base
        )
        cls.TYPE = type_byte
        cls.INBOUND = inbound

    def encode(self, msg: OuchMessage, strict: bool) -> bytes:
        """The checked encoder: the reference of ``fast_encode`` and what explains its misses."""
        name = self.name
        values = [
            enc(value, label)
            for (enc, label), value in zip(self.encoders, astuple(msg), strict=False)
        ]  # astuple has "options" last when the type has it: zip stops before it
        if self.mode == _NONE:
            return self.struct.pack(self.type_byte, *values)
        opts = msg.options  # type: ignore[attr-defined]
        if opts is None:
            if self.mode == _REQUIRED:
                raise OuchError(f"{name}: options must not be None (Appendage Length required)")
            return self.struct.pack(self.type_byte, *values, 0)[:-2]
        app = encode_appendage(opts, self.allowed, name, strict)
        return self.struct.pack(self.type_byte, *values, len(app)) + app

    def decode(self, data: bytes, strict: bool) -> OuchMessage:
        """The checked decoder: the reference of ``fast_decode`` and what explains its misses."""
        n = len(data)
        base = self.base
        name = self.name
        if self.mode == _NONE:
            if n != base:
                what = "truncated" if n < base else "over-long"
                raise OuchError(f"{name}: {what} message of {n} bytes, expected {base}")
            values = list(self.struct.unpack(data))
            del values[0]
            self._convert(values)
            return self.cls(*values)
        if self.mode == _OPTIONAL and n == base - 2:
            values = list(self.struct.unpack(data + b"\0\0"))
            del values[0]
            values.pop()
            self._convert(values)
            return self.cls(*values, None)
        if n < base:
            if self.mode == _OPTIONAL:
                raise OuchError(
                    f"{name}: truncated message of {n} bytes, expected {base - 2} "
                    f"(without Appendage Length) or at least {base}"
                )
            raise OuchError(f"{name}: truncated message of {n} bytes, expected at least {base}")
        values = list(self.struct.unpack_from(data))
        del values[0]
        app_len = values.pop()
        if n != base + app_len:
            what = "truncated" if n < base + app_len else "over-long"
            raise OuchError(
                f"{name}: appendage length mismatch ({what}): Appendage Length {app_len} "
                f"but {n - base} bytes follow the {base}-byte base"
            )
        self._convert(values)
        opts = decode_appendage(data, base, self.allowed, name, strict)
        return self.cls(*values, opts)

    def _convert(self, values: list[Any]) -> None:
        for i, kind, label in self.decoders:
            values[i] = kind.dec(values[i], label)


_FIRM_ETC = [
    "min_qty",
    "max_floor",
    "price_type",
    "peg_offset",
    "discretion_price",
    "discretion_price_type",
    "discretion_peg_offset",
    "post_only",
    "random_reserves",
    "expire_time",
    "trade_now",
    "handle_inst",
    "shares_located",
    "locate_broker",
    "user_ref_idx",
    "aiq_strategy",
    "aiq_group_id",
]

_L = _Layout
_INBOUND_LAYOUTS = [
    _L(
        EnterOrder,
        b"O",
        True,
        [REF, SIDE, U32, ALPHA8, PRICE, TIF, DISPLAY_YNA, CAPACITY, ISO, CROSS, ALPHA14],
        _REQUIRED,
        ("firm", "customer_type", "group_id", *_FIRM_ETC),
        47,
    ),
    _L(
        ReplaceOrderRequest,
        b"U",
        True,
        [REF, REF, U32, PRICE, TIF, DISPLAY_YNA, ISO, ALPHA14],
        _REQUIRED,
        ("side", *_FIRM_ETC),
        40,
    ),
    _L(CancelOrderRequest, b"X", True, [REF, U32], _OPTIONAL, _IDX, 11),
    _L(
        ModifyOrderRequest,
        b"M",
        True,
        [REF, SIDE, U32],
        _OPTIONAL,
        ("user_ref_idx", "shares_located", "locate_broker"),
        12,
    ),
    _L(
        MassCancelRequest,
        b"C",
        True,
        [REF, ALPHA4, ALPHA8],
        _REQUIRED,
        ("side", "group_id", "user_ref_idx"),
        19,
    ),
    _L(DisableOrderEntryRequest, b"D", True, [REF, ALPHA4], _REQUIRED, _IDX, 11),
    _L(EnableOrderEntryRequest, b"E", True, [REF, ALPHA4], _REQUIRED, _IDX, 11),
    _L(AccountQueryRequest, b"Q", True, [], _OPTIONAL, _IDX, 3),
]

_OUT_FIELDS = [TIMESTAMP, REF]
_ACCEPTED_BODY = [
    SIDE, U32, ALPHA8, PRICE, TIF, DISPLAY_OUT, U64, CAPACITY, ISO, CROSS, STATE, ALPHA14,
]  # fmt: skip
_OUTBOUND_LAYOUTS = [
    _L(SystemEvent, b"S", False, [TIMESTAMP, EVENT], _NONE, (), 10),
    _L(
        OrderAccepted,
        b"A",
        False,
        [*_OUT_FIELDS, *_ACCEPTED_BODY],
        _REQUIRED,
        [
            "firm",
            "min_qty",
            "customer_type",
            "max_floor",
            "price_type",
            "peg_offset",
            "discretion_price",
            "discretion_price_type",
            "discretion_peg_offset",
            "post_only",
            "random_reserves",
            "route",
            "expire_time",
            "trade_now",
            "handle_inst",
            "bbo_weight_indicator",
            "group_id",
            "shares_located",
            "user_ref_idx",
            "aiq_strategy",
            "aiq_group_id",
        ],
        64,
    ),
    _L(
        OrderReplaced,
        b"U",
        False,
        [*_OUT_FIELDS, REF, *_ACCEPTED_BODY],
        _REQUIRED,
        [
            "firm",
            "min_qty",
            "max_floor",
            "price_type",
            "post_only",
            "expire_time",
            "trade_now",
            "handle_inst",
            "bbo_weight_indicator",
            "user_ref_idx",
            "aiq_strategy",
            "aiq_group_id",
        ],
        68,
    ),
    _L(OrderCanceled, b"C", False, [*_OUT_FIELDS, U32, CANCEL_REASON], _OPTIONAL, _IDX, 20),
    _L(
        AiqCanceled,
        b"D",
        False,
        [*_OUT_FIELDS, U32, CANCEL_REASON, U32, PRICE, LIQUIDITY, AIQ],
        _OPTIONAL,
        _IDX,
        34,
    ),
    _L(
        OrderExecuted,
        b"E",
        False,
        [*_OUT_FIELDS, U32, PRICE, LIQUIDITY, U64],
        _REQUIRED,
        _IDX,
        36,
    ),
    _L(BrokenTrade, b"B", False, [*_OUT_FIELDS, U64, BROKEN, ALPHA14], _OPTIONAL, _IDX, 38),
    _L(Rejected, b"J", False, [*_OUT_FIELDS, REJECT, ALPHA14], _OPTIONAL, _IDX, 31),
    _L(CancelPending, b"P", False, _OUT_FIELDS, _OPTIONAL, _IDX, 15),
    _L(CancelReject, b"I", False, _OUT_FIELDS, _OPTIONAL, _IDX, 15),
    _L(
        OrderPriorityUpdate,
        b"T",
        False,
        [*_OUT_FIELDS, PRICE, DISPLAY_YNA, U64],
        _OPTIONAL,
        _IDX,
        32,
    ),
    _L(
        OrderModified,
        b"M",
        False,
        [*_OUT_FIELDS, SIDE, U32],
        _OPTIONAL,
        ("user_ref_idx", "shares_located", "locate_broker"),
        20,
    ),
    _L(
        OrderRestated,
        b"R",
        False,
        [*_OUT_FIELDS, RESTATED],
        _REQUIRED,
        ("display_quantity", "display_price", "secondary_ord_ref_num", "user_ref_idx"),
        16,
    ),
    _L(
        MassCancelResponse,
        b"X",
        False,
        [*_OUT_FIELDS, ALPHA4, ALPHA8],
        _REQUIRED,
        ("side", "group_id", "user_ref_idx"),
        27,
    ),
    _L(DisableOrderEntryResponse, b"G", False, [*_OUT_FIELDS, ALPHA4], _REQUIRED, _IDX, 19),
    _L(EnableOrderEntryResponse, b"K", False, [*_OUT_FIELDS, ALPHA4], _REQUIRED, _IDX, 19),
    _L(AccountQueryResponse, b"Q", False, _OUT_FIELDS, _OPTIONAL, _IDX, 15),
]

_BY_CLASS: dict[type, _Layout] = {lay.cls: lay for lay in (*_INBOUND_LAYOUTS, *_OUTBOUND_LAYOUTS)}
_INBOUND: dict[int, _Layout] = {lay.type_byte[0]: lay for lay in _INBOUND_LAYOUTS}
_OUTBOUND: dict[int, _Layout] = {lay.type_byte[0]: lay for lay in _OUTBOUND_LAYOUTS}

#: type byte -> message class, per direction
INBOUND_TYPES: dict[bytes, type[OuchMessage]] = {lay.type_byte: lay.cls for lay in _INBOUND_LAYOUTS}
OUTBOUND_TYPES: dict[bytes, type[OuchMessage]] = {
    lay.type_byte: lay.cls for lay in _OUTBOUND_LAYOUTS
}

#: message class -> OptionTags the spec allows on it
ALLOWED_OPTION_TAGS: dict[type[OuchMessage], frozenset[int]] = {
    c: lay.allowed for c, lay in _BY_CLASS.items()
}

del _L


def encode(msg: OuchMessage, *, strict: bool = True) -> bytes:
    """Encode one OUCH 5.0 message (either direction) to its wire bytes."""
    layout = _BY_CLASS.get(type(msg))
    if layout is None:
        raise OuchError(f"not an OUCH 5.0 message: {type(msg).__name__}")
    data = layout.fast_encode(msg, strict)
    return layout.encode(msg, strict) if data is None else data


def encode_checked(msg: OuchMessage, *, strict: bool = True) -> bytes:
    """``encode`` through the checked, table-driven path only (the reference of the fast one)."""
    layout = _BY_CLASS.get(type(msg))
    if layout is None:
        raise OuchError(f"not an OUCH 5.0 message: {type(msg).__name__}")
    return layout.encode(msg, strict)


def _decode(
    table: dict[int, _Layout], direction: str, data: Any, strict: bool, fast: bool = True
) -> OuchMessage:
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise OuchError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    if not data:
        raise OuchError(f"empty {direction} message")
    layout = table.get(data[0])
    if layout is None:
        raise OuchError(f"unknown {direction} message type {data[:1]!r}")
    if fast:
        msg = layout.fast_decode(data, strict)
        if msg is not None:
            return msg
    return layout.decode(data, strict)


def decode_inbound(data: bytes, *, strict: bool = False) -> OuchMessage:
    """Decode a client -> host message (Enter, Replace, Cancel, Modify, Mass Cancel, ...)."""
    return _decode(_INBOUND, "inbound", data, strict)


def decode_outbound(data: bytes, *, strict: bool = False) -> OuchMessage:
    """Decode a host -> client message (System Event, Accepted, Executed, Rejected, ...)."""
    return _decode(_OUTBOUND, "outbound", data, strict)


def decode_inbound_checked(data: bytes, *, strict: bool = False) -> OuchMessage:
    """``decode_inbound`` through the checked path only (the reference of the fast one)."""
    return _decode(_INBOUND, "inbound", data, strict, fast=False)


def decode_outbound_checked(data: bytes, *, strict: bool = False) -> OuchMessage:
    """``decode_outbound`` through the checked path only (the reference of the fast one)."""
    return _decode(_OUTBOUND, "outbound", data, strict, fast=False)
