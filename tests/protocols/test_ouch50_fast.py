"""OUCH 5.0 generated codecs (``ouch50_fast``) against the checked, table-driven path.

For every message type: random valid messages encode to the same bytes through ``encode`` and
``encode_checked`` (and the fast encoder answers them itself, so the comparison is not vacuous);
messages with wrong field values give the same exception type and text; valid and mutated bytes
decode to the same message (same field types: enum members stay members) or the same error,
lenient and strict, in both directions.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import astuple

from agora.protocols import ouch50, ouch50_fast
from agora.protocols.ouch50 import (
    EnterOrder,
    Options,
    OrderAccepted,
    RejectReason,
    Side,
    decode_inbound,
    decode_inbound_checked,
    decode_outbound,
    decode_outbound_checked,
    encode,
    encode_checked,
)
from agora.protocols.ouch50_appendage import Alpha, Chars, RejectCode, UInt

ALL_CLASSES = sorted(ouch50._BY_CLASS, key=lambda c: (not c.INBOUND, c.__name__))
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn, *args, **kwargs):
    """What a call answered: ("ok", result with every field's type) or ("raised", type, text)."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # any type: the fast path must raise what the checked one raises
        return ("raised", type(exc), str(exc))
    return ("ok", _typed(result))


def _typed(value):
    if isinstance(value, ouch50.OuchMessage | Options):
        return (type(value), [_typed(v) for v in astuple(value)])
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    return (type(value), value)


class _Str(str):
    """A str subclass: the fast path must treat it as the checked path does."""


# ------------------------------------------------------------------------------ strategies


def _alpha(width: int) -> st.SearchStrategy[str]:
    return st.text(PRINTABLE, max_size=width).map(lambda s: s.rstrip(" "))


def _valid(kind) -> st.SearchStrategy:
    if isinstance(kind, RejectCode):
        return st.integers(0, 0xFFFF) | st.sampled_from(list(RejectReason))
    if isinstance(kind, UInt):
        return st.integers(kind.lo, kind.hi)
    if isinstance(kind, Alpha):
        return _alpha(kind.size)
    if isinstance(kind, Chars):
        if kind.closed:
            members = sorted(kind._by_raw.values())
            return st.sampled_from(members) | st.sampled_from([m.value for m in members])
        return st.text(PRINTABLE, min_size=kind.size, max_size=kind.size)
    raise AssertionError(kind)


class _Level(IntEnum):
    ONE = 1


_WRONG = st.sampled_from([
    None, True, False, 1.0, -1, 1 << 64, 1 << 32, 0x10000, b"AB", "", "B", "ÄB", "\ud800",
    "tab\t", "TOOLONGVALUE1234", "Z", "E", "5", " ", "  ", _Str("B"), _Str("AB"), Side.BUY,
    _Level.ONE, RejectReason.OTHER, np.int64(5), np.uint32(7), ["B"], {"B": 1},
])


def _options(allowed: frozenset[int]) -> st.SearchStrategy[Options]:
    fields = {
        ouch50.OPTION_TAGS[t][0]: st.none() | _valid(ouch50.OPTION_TAGS[t][2])
        for t in sorted(allowed)
    }
    return st.fixed_dictionaries({}, optional=fields).map(
        lambda d: Options(**{k: v for k, v in d.items() if v is not None})
    )


def _any_options() -> st.SearchStrategy:
    everything = frozenset(ouch50.OPTION_TAGS)
    return st.one_of(
        st.none(),
        _options(everything),  # tags the type may not allow (strict refuses them)
        st.just(Options(min_qty=-1)),
        st.just(Options(firm="TOOLONG")),
        st.just(Options(unknown=((8, b"x"),))),
        st.just(Options(unknown=((3, b"x"),))),
        st.just({"min_qty": 1}),
    )


def _message(cls) -> st.SearchStrategy:
    """A valid message of type ``cls``."""
    layout = ouch50._BY_CLASS[cls]
    args = [_valid(k) for k in layout.kinds]
    if layout.mode == ouch50_fast.NONE:
        return st.tuples(*args).map(lambda a: cls(*a))
    opts = _options(layout.allowed)
    if layout.mode == ouch50_fast.OPTIONAL:
        opts = st.none() | opts
    return st.tuples(*args, opts).map(lambda a: cls(*a))


@st.composite
def _spoiled(draw, cls):
    """A message of type ``cls`` with one or two fields set to a wrong (or unusual) value."""
    values = list(astuple(draw(_message(cls))))
    for _ in range(draw(st.integers(1, 2))):
        i = draw(st.integers(0, len(values) - 1))
        is_options = "options" in cls.__struct_fields__ and i == len(values) - 1
        values[i] = draw(_any_options() if is_options else _WRONG)
    return cls(*values)


def _decoders(cls):
    if cls.INBOUND:
        return decode_inbound, decode_inbound_checked
    return decode_outbound, decode_outbound_checked


# ------------------------------------------------------------------------------ encode


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_fast_encode_answers_valid_messages_as_the_checked_path(cls, data):
    msg = data.draw(_message(cls))
    strict = data.draw(st.booleans())
    expected = encode_checked(msg, strict=strict)
    assert ouch50._BY_CLASS[cls].fast_encode(msg, strict) == expected  # not None: it answered
    assert encode(msg, strict=strict) == expected


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_encode_of_any_values_as_the_checked_path(cls, data):
    msg = data.draw(_spoiled(cls))
    strict = data.draw(st.booleans())
    expected = outcome(encode_checked, msg, strict=strict)
    assert outcome(encode, msg, strict=strict) == expected
    fast = ouch50._BY_CLASS[cls].fast_encode(msg, strict) if expected[0] == "ok" else None
    assert fast is None or fast == expected[1][1]


def test_refused_values_never_enter_the_memos():
    bad = EnterOrder(1, Side.BUY, 100, "TOOLONGSYM", 1, "0", "Y", "A", "N", "N", "x\ty")
    with pytest.raises(ouch50.OuchError, match="longer than 8"):
        encode(bad)
    memos = ouch50_fast._ENCODE_MEMOS.values()
    assert not any("TOOLONGSYM" in m or "x\ty" in m for m in memos)
    with pytest.raises(ouch50.OuchError, match="non-printable"):
        decode_inbound(encode(EnterOrder(1, Side.BUY, 100, "AB", 1, "0", "Y", "A", "N", "N", ""))
                       .replace(b"AB      ", b"A\x01      "))
    assert not any(b"A\x01      " in m for m in ouch50_fast._DECODE_MEMOS.values())


def test_memos_stay_bounded_and_right_when_full(monkeypatch):
    monkeypatch.setattr(ouch50_fast, "MEMO_MAX", 8)
    for memo in (*ouch50_fast._ENCODE_MEMOS.values(), *ouch50_fast._DECODE_MEMOS.values()):
        memo.clear()  # caches: any content is legitimate, a clear only costs misses
    for i in range(40):
        msg = OrderAccepted(i, i, Side.SELL, i, f"S{i}", i, "0", "Y", i, "A", "N", "N", "L",
                            f"C{i}")
        raw = encode(msg)
        assert raw == encode_checked(msg)
        assert outcome(decode_outbound, raw) == outcome(decode_outbound_checked, raw)
    assert all(len(m) <= 8 for m in ouch50_fast._ENCODE_MEMOS.values())
    assert all(len(m) <= 8 for m in ouch50_fast._DECODE_MEMOS.values())


# ------------------------------------------------------------------------------ decode


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_fast_decode_answers_valid_bytes_as_the_checked_path(cls, data):
    raw = encode_checked(data.draw(_message(cls)))
    strict = data.draw(st.booleans())
    fast, checked = _decoders(cls)
    expected = outcome(checked, raw, strict=strict)
    assert expected[0] == "ok"
    answered = ouch50._BY_CLASS[cls].fast_decode(raw, strict)
    assert answered is not None and _typed(answered) == expected[1]
    assert outcome(fast, raw, strict=strict) == expected


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    edits=st.lists(st.tuples(st.integers(0, 90), st.integers(0, 255)), max_size=4),
    cut=st.integers(-4, 90),
    tail=st.binary(max_size=10),
)
def test_fast_decode_of_mutated_bytes_as_the_checked_path(cls, data, edits, cut, tail):
    buf = bytearray(encode_checked(data.draw(_message(cls))))
    for pos, val in edits:
        if pos < len(buf):
            buf[pos] = val
    raw = bytes(buf[:cut]) + tail
    for strict in (False, True):
        for fast, checked in ((decode_inbound, decode_inbound_checked),
                              (decode_outbound, decode_outbound_checked)):
            assert outcome(fast, raw, strict=strict) == outcome(checked, raw, strict=strict)


@pytest.mark.parametrize("cls", [c for c in ALL_CLASSES if "options" in c.__struct_fields__],
                         ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_fast_decode_of_foreign_options_as_the_checked_path(cls, data):
    """Options the type does not allow and unknown tags: strict refuses, lenient keeps them."""
    opts = data.draw(_options(frozenset(ouch50.OPTION_TAGS)))
    unknown = data.draw(st.lists(st.tuples(st.sampled_from([8, 19, 31, 200]), st.binary(
        max_size=6)), max_size=2, unique_by=lambda item: item[0]))
    opts = msgspec.structs.replace(opts, unknown=tuple(unknown))
    msg = msgspec.structs.replace(data.draw(_message(cls)), options=opts)
    raw = encode_checked(msg, strict=False)
    fast, checked = _decoders(cls)
    for strict in (False, True):
        assert outcome(fast, raw, strict=strict) == outcome(checked, raw, strict=strict)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fast_decode_of_arbitrary_bytes_as_the_checked_path(raw):
    for strict in (False, True):
        assert outcome(decode_inbound, raw, strict=strict) == outcome(
            decode_inbound_checked, raw, strict=strict)
        assert outcome(decode_outbound, raw, strict=strict) == outcome(
            decode_outbound_checked, raw, strict=strict)


def test_decode_input_types_as_the_checked_path():
    raw = encode(EnterOrder(7, Side.BUY, 100, "AB", 1, "0", "Y", "A", "N", "N", "id"))
    for data in (raw, bytearray(raw), memoryview(raw), "O", None, b""):
        assert outcome(decode_inbound, data) == outcome(decode_inbound_checked, data)
