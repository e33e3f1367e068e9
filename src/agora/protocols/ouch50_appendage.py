"""OUCH 5.0 field kinds and the TagValue Optional Appendage (spec §1.1 and §5, Appendix A).

Shared by :mod:`agora.protocols.ouch50`; see that module's docstring for the conventions. This
module owns:

* the field *kinds* (unsigned/signed big-endian integers, space-padded Alpha, single-byte codes)
  that validate a Python value on encode and convert a raw wire value on decode;
* :class:`Options`, the typed optional-fields Struct (one attribute per OptionTag of §5, ``None``
  = tag absent, plus ``unknown`` for tags this revision does not define);
* :func:`encode_appendage` / :func:`decode_appendage`, the TagValue element codec.

TagValue element: ``Length`` (1 byte, = 1 + size of the value) ``OptionTag`` (1 byte) ``value``.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import msgspec

from agora.protocols.errors import ProtocolError
from agora.protocols.ouch50_codes import Side

__all__ = [
    "OPTION_TAGS",
    "TAG_BY_NAME",
    "Options",
    "OuchError",
    "decode_appendage",
    "encode_appendage",
]


class OuchError(ProtocolError):
    """An OUCH 5.0 message or field that does not follow the specification."""


# --------------------------------------------------------------------------------------------
# Field kinds
# --------------------------------------------------------------------------------------------


def _check_int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OuchError(f"{name}: expected int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise OuchError(f"{name}: {value} out of range {lo}..{hi}")
    return value


def encode_alpha(value: Any, width: int, name: str) -> bytes:
    """Printable ASCII, at most ``width`` characters, right-padded with spaces."""
    if not isinstance(value, str):
        raise OuchError(f"{name}: expected str, got {type(value).__name__}")
    if len(value) > width:
        raise OuchError(f"{name}: {value!r} is longer than {width} characters")
    if not (value.isascii() and value.isprintable()):
        raise OuchError(f"{name}: {value!r} is not printable ASCII")
    return value.encode("ascii").ljust(width, b" ")


def decode_text(raw: bytes, name: str) -> str:
    """Printable ASCII bytes to str (no stripping); anything else is a ProtocolError."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise OuchError(f"{name}: non-ASCII bytes {raw!r}") from None
    if not text.isprintable():
        raise OuchError(f"{name}: non-printable bytes {raw!r}")
    return text


class Kind(ABC):
    """How one field travels: struct format, value check on encode, conversion on decode."""

    __slots__ = ("fmt", "size")

    fmt: str
    size: int

    @abstractmethod
    def enc(self, value: Any, name: str) -> Any:
        """Check ``value`` and return what the struct format packs (each kind defines it)."""

    def dec(self, raw: Any, name: str) -> Any:
        return raw

    def to_bytes(self, value: Any, name: str) -> bytes:
        """Encode as a stand-alone value (used for TagValue option values)."""
        return self.enc(value, name)

    def from_bytes(self, raw: bytes, name: str) -> Any:
        return self.dec(raw, name)

    # decode is the identity for integers; the message codec skips it then
    identity_dec = False


class UInt(Kind):
    __slots__ = ("hi", "lo", "signed")

    _FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}

    def __init__(self, size: int, *, signed: bool = False) -> None:
        self.size = size
        self.signed = signed
        self.fmt = self._FMT[size].lower() if signed else self._FMT[size]
        self.hi = (1 << (8 * size - (1 if signed else 0))) - 1
        self.lo = -self.hi - 1 if signed else 0

    identity_dec = True

    def enc(self, value: Any, name: str) -> int:
        if type(value) is int and self.lo <= value <= self.hi:  # the common case, one test
            return value
        return _check_int(value, name, self.lo, self.hi)

    def to_bytes(self, value: Any, name: str) -> bytes:
        return self.enc(value, name).to_bytes(self.size, "big", signed=self.signed)

    def from_bytes(self, raw: bytes, name: str) -> int:
        return int.from_bytes(raw, "big", signed=self.signed)


class Alpha(Kind):
    """Fixed-width Alpha: left-justified, space-padded; decoded with trailing spaces removed.

    Encoded values are memoised (symbols, firms and tokens repeat); the memo is bounded and only
    ever holds values that passed the checks.
    """

    __slots__ = ("_memo",)

    _MEMO_MAX = 4096

    def __init__(self, size: int) -> None:
        self.size = size
        self.fmt = f"{size}s"
        self._memo: dict[str, bytes] = {}

    def enc(self, value: Any, name: str) -> bytes:
        if type(value) is str:
            raw = self._memo.get(value)
            if raw is not None:
                return raw
        raw = encode_alpha(value, self.size, name)
        if len(self._memo) >= self._MEMO_MAX:
            self._memo.clear()
        self._memo[value] = raw
        return raw

    def dec(self, raw: bytes, name: str) -> str:
        return decode_text(raw, name).rstrip(" ")


class Chars(Kind):
    """Exact-width character code (space is a meaningful value, so nothing is stripped).

    ``codes``: the enum of known values. ``closed``: only those values are accepted (encode and
    decode); otherwise any printable ASCII is accepted and known values decode to enum members.
    ``allowed``: an optional subset of ``codes`` for this particular field.
    """

    __slots__ = ("_by_raw", "_known", "closed", "codes")

    def __init__(
        self,
        size: int = 1,
        codes: type[enum.Enum] | None = None,
        *,
        closed: bool = False,
        allowed: Iterable[str] | None = None,
    ) -> None:
        self.size = size
        self.fmt = f"{size}s"
        self.codes = codes
        self.closed = closed and codes is not None
        members = list(codes) if codes is not None else []
        if allowed is not None:
            keep = set(allowed)
            members = [m for m in members if m.value in keep]
        self._by_raw: dict[bytes, Any] = {m.value.encode("ascii"): m for m in members}
        # the known codes' encodings: a str-mixin member (or its plain str) needs no checks
        self._known: dict[Any, bytes] = {m: m.value.encode("ascii") for m in members}

    def enc(self, value: Any, name: str) -> bytes:
        if isinstance(value, str):
            raw = self._known.get(value)
            if raw is not None:
                return raw
        if not isinstance(value, str):
            raise OuchError(f"{name}: expected str, got {type(value).__name__}")
        if not value.isascii():
            raise OuchError(f"{name}: {value!r} is not ASCII")
        raw = value.encode("ascii")
        if self.closed:
            if raw not in self._by_raw:
                valid = ", ".join(repr(k.decode()) for k in self._by_raw)
                raise OuchError(f"{name}: invalid value {value!r} (expected one of {valid})")
            return raw
        if len(value) != self.size or not (value.isascii() and value.isprintable()):
            raise OuchError(
                f"{name}: {value!r} is not exactly {self.size} printable ASCII character(s)"
            )
        return raw

    def dec(self, raw: bytes, name: str) -> Any:
        member = self._by_raw.get(raw)
        if member is not None:
            return member
        if self.closed:
            raise OuchError(f"{name}: invalid value {raw!r}")
        return decode_text(raw, name)


class RejectCode(UInt):
    """2-byte reject reason: any u16 accepted; known codes decode to the given IntEnum."""

    __slots__ = ("codes",)

    identity_dec = False

    def __init__(self, codes: type[enum.IntEnum]) -> None:
        super().__init__(2)
        self.codes = codes

    def dec(self, raw: int, name: str) -> int:
        try:
            return self.codes(raw)
        except ValueError:
            return raw


U8, U16, U32, U64 = UInt(1), UInt(2), UInt(4), UInt(8)
I32 = UInt(4, signed=True)


# --------------------------------------------------------------------------------------------
# Optional fields (§5) and the appendage codec
# --------------------------------------------------------------------------------------------


class Options(msgspec.Struct, frozen=True, kw_only=True, repr_omit_defaults=True):
    """The Optional Appendage as typed fields; ``None`` = the tag is absent.

    Values: integers raw (prices are Price(4) ints; ``peg_offset`` and ``discretion_peg_offset``
    are *signed* Price(4)); multi-byte Alpha (``firm``, ``route``, ``locate_broker``) decode with
    trailing spaces removed; single-character codes are kept verbatim (a space there means
    "port default"); ``aiq_group_id`` is exactly 2 characters. Character codes of options are
    not checked against the §5 value lists (several are unverified), except ``side``.

    ``unknown``: ``(tag, raw value)`` pairs for OptionTags this revision does not define
    (8, 19-21, 31-255), preserved in wire order by a lenient decode and re-emitted by encode.
    """

    secondary_ord_ref_num: int | None = None
    firm: str | None = None
    min_qty: int | None = None
    customer_type: str | None = None
    max_floor: int | None = None
    price_type: str | None = None
    peg_offset: int | None = None
    discretion_price: int | None = None
    discretion_price_type: str | None = None
    discretion_peg_offset: int | None = None
    post_only: str | None = None
    random_reserves: int | None = None
    route: str | None = None
    expire_time: int | None = None
    trade_now: str | None = None
    handle_inst: str | None = None
    bbo_weight_indicator: str | None = None
    display_quantity: int | None = None
    display_price: int | None = None
    group_id: int | None = None
    shares_located: str | None = None
    locate_broker: str | None = None
    side: str | None = None
    user_ref_idx: int | None = None
    aiq_strategy: str | None = None
    aiq_group_id: str | None = None
    unknown: tuple[tuple[int, bytes], ...] = ()


#: OptionTag -> (Options attribute, spec name, kind). Value size = kind.size.
OPTION_TAGS: dict[int, tuple[str, str, Kind]] = {}
#: Options attribute -> OptionTag
TAG_BY_NAME: dict[str, int] = {}

_OPTION_TABLE: list[tuple[int, str, str, Kind]] = [
    (1, "secondary_ord_ref_num", "SecondaryOrdRefNum", U64),
    (2, "firm", "Firm", Alpha(4)),
    (3, "min_qty", "MinQty", U32),
    (4, "customer_type", "CustomerType", Chars(1)),
    (5, "max_floor", "MaxFloor", U32),
    (6, "price_type", "PriceType", Chars(1)),
    (7, "peg_offset", "PegOffset", I32),
    (9, "discretion_price", "DiscretionPrice", U64),
    (10, "discretion_price_type", "DiscretionPriceType", Chars(1)),
    (11, "discretion_peg_offset", "DiscretionPegOffset", I32),
    (12, "post_only", "PostOnly", Chars(1)),
    (13, "random_reserves", "RandomReserves", U32),
    (14, "route", "Route", Alpha(4)),
    (15, "expire_time", "ExpireTime", U32),
    (16, "trade_now", "TradeNow", Chars(1)),
    (17, "handle_inst", "HandleInst", Chars(1)),
    (18, "bbo_weight_indicator", "BBO Weight Indicator", Chars(1)),
    (22, "display_quantity", "Display Quantity", U32),
    (23, "display_price", "Display Price", U64),
    (24, "group_id", "Group ID", U16),
    (25, "shares_located", "Shares Located", Chars(1)),
    (26, "locate_broker", "Locate Broker", Alpha(4)),
    (27, "side", "Side", Chars(1, Side, closed=True)),
    (28, "user_ref_idx", "UserRefIdx", U8),
    (29, "aiq_strategy", "AIQ Strategy", Chars(1)),
    (30, "aiq_group_id", "AIQ Group ID", Chars(2)),
]


for _tag, _attr, _spec_name, _kind in _OPTION_TABLE:
    OPTION_TAGS[_tag] = (_attr, _spec_name, _kind)
    TAG_BY_NAME[_attr] = _tag
assert (*TAG_BY_NAME, "unknown") == Options.__struct_fields__  # same order: astuple below
_ENCODE_ORDER = [(tag, *OPTION_TAGS[tag]) for tag in TAG_BY_NAME.values()]
_NO_OPTIONS = Options()


def encode_appendage(opts: Options, allowed: frozenset[int], where: str, strict: bool) -> bytes:
    """TagValue elements for ``opts``, known tags in ascending tag order, then ``unknown``."""
    if not isinstance(opts, Options):
        raise OuchError(f"{where}: options must be an Options struct, got {type(opts).__name__}")
    if opts == _NO_OPTIONS:
        return b""  # most messages carry no option: skip the scan of every tag
    parts: list[bytes] = []
    for (tag, attr, spec_name, kind), value in zip(
        _ENCODE_ORDER, msgspec.structs.astuple(opts), strict=False
    ):
        if value is None:
            continue
        if strict and tag not in allowed:
            raise OuchError(f"{where}: option {spec_name} (tag {tag}) is not allowed here")
        raw = kind.to_bytes(value, f"{where}.options.{attr}")
        parts.append(bytes((1 + len(raw), tag)))
        parts.append(raw)
    if opts.unknown:
        if strict:
            raise OuchError(f"{where}: unknown option tags are rejected in strict mode")
        for item in opts.unknown:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise OuchError(f"{where}: options.unknown items must be (tag, bytes)")
            tag, raw = item
            _check_int(tag, f"{where}: unknown option tag", 0, 255)
            if tag in OPTION_TAGS:
                raise OuchError(f"{where}: tag {tag} is a known option, not unknown")
            if not isinstance(raw, bytes) or len(raw) > 254:
                raise OuchError(f"{where}: unknown tag {tag} value must be bytes of <= 254")
            parts.append(bytes((1 + len(raw), tag)))
            parts.append(raw)
    out = b"".join(parts)
    if len(out) > 0xFFFF:
        raise OuchError(f"{where}: appendage of {len(out)} bytes exceeds 65535")
    return out


def decode_appendage(
    data: bytes, start: int, allowed: frozenset[int], where: str, strict: bool
) -> Options:
    """Parse TagValue elements in ``data[start:]`` (exactly that span, already length-checked)."""
    end = len(data)
    pos = start
    values: dict[str, Any] = {}
    unknown: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    while pos < end:
        length = data[pos]
        if length == 0:
            raise OuchError(f"{where}: TagValue element at offset {pos} has length 0")
        if pos + 1 + length > end:
            raise OuchError(
                f"{where}: TagValue element at offset {pos} (length {length}) "
                f"overruns the appendage ending at {end}"
            )
        tag = data[pos + 1]
        raw = data[pos + 2 : pos + 1 + length]
        pos += 1 + length
        if tag in seen:
            raise OuchError(f"{where}: option tag {tag} appears more than once")
        seen.add(tag)
        spec = OPTION_TAGS.get(tag)
        if spec is None:
            if strict:
                raise OuchError(f"{where}: unknown option tag {tag}")
            unknown.append((tag, raw))
            continue
        attr, spec_name, kind = spec
        if strict and tag not in allowed:
            raise OuchError(f"{where}: option {spec_name} (tag {tag}) is not allowed here")
        if len(raw) != kind.size:
            raise OuchError(
                f"{where}: option {spec_name} (tag {tag}) value has {len(raw)} bytes, "
                f"expected {kind.size}"
            )
        values[attr] = kind.from_bytes(raw, f"{where}.options.{attr}")
    if unknown:
        values["unknown"] = tuple(unknown)
    return Options(**values)


def allowed_tags(names: Iterable[str]) -> frozenset[int]:
    """OptionTags for a list of Options attribute names (used to declare per-message lists)."""
    return frozenset(TAG_BY_NAME[n] for n in names)
