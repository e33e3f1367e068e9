"""FIX 4.4 hot paths against their checked paths: the same bytes, values and errors.

Each fast path (``encode``, ``decode``, ``_check_frame``, ``checksum``, ``to_fields``,
``encode_message``, ``from_message``, ``parse_price``, ``format_price``, ``format_timestamp``,
``parse_timestamp``) must answer exactly as
the checked path beside it, for well-formed messages and for mutated ones: the same result, or
an exception of the same type with the same text, ``reason``, ``tag``, ``seq_num``,
``msg_type`` and ``garbled``. Mutated frames get a correct BodyLength and CheckSum (most
mutations would otherwise only ever reach the frame check). ``decode``, ``from_message`` and
``encode_message`` are asked twice (``fast_outcome``): with the C paths where they are built
(``speedups``) and with the Python fast paths alone; both must answer alike.
"""

import datetime as dt
from enum import Enum

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols.fix44 import codec, messages, speedups, timestamps
from agora.protocols.fix44.codec import FixError, FixMessage, decode, encode
from agora.protocols.fix44.enums import ExecType, OrdStatus, SessionRejectReason, Side
from agora.protocols.fix44.messages import (
    MESSAGE_TYPES,
    encode_message,
    from_message,
    to_fields,
)

T0 = 1_704_164_645_678_000_000  # 2024-01-02 03:04:05.678 UTC
T0_TEXT_US = "20240102-03:04:05.678123"


def outcome(fn, *args, **kwargs):
    """What a call answered: ("ok", comparable result) or ("raised", every error attribute)."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # any type: the fast path must raise what the checked one raises
        return ("raised", type(exc), str(exc), *(getattr(exc, name, None) for name in
                ("reason", "tag", "seq_num", "msg_type", "garbled")))
    if isinstance(result, FixMessage):
        return ("ok", result.fields, result.raw, list(result._index.items()),
                result._sending_time)
    if isinstance(result, msgspec.Struct):
        return ("ok", type(result),
                [(k, type(v), v) for k, v in msgspec.structs.asdict(result).items()])
    return ("ok", type(result), result)


IMPLEMENTATIONS = [*([speedups.ext] if speedups.ext is not None else []), None]
"""The C paths where built, then the Python fast paths alone (``speedups.ext = None``)."""


def fast_outcome(fn, *args, **kwargs):
    """``outcome`` of a fast path, which must be the same with and without the C paths."""
    saved, results = speedups.ext, []
    try:
        for ext in IMPLEMENTATIONS:
            speedups.ext = ext
            results.append(outcome(fn, *args, **kwargs))
    finally:
        speedups.ext = saved
    assert all(result == results[0] for result in results), results
    return results[0]


def frame(body: bytes) -> bytes:
    """A frame around ``body`` with a correct BodyLength and CheckSum (by plain ``sum``)."""
    head = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
    return head + b"10=%03d\x01" % (sum(head) % 256)


# ---------------------------------------------------------------------------------- decode


def checked_decode(data, *, validate_formats=True):
    """``decode`` through the checked parts only."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FixError("decode expects bytes")
    data = bytes(data)
    trailer = codec._checked_frame(data)
    fields = codec._checked_split(data, trailer)
    fields.append((10, data[trailer + 3 : trailer + 6].decode()))
    return codec._checked_message(data, fields, validate_formats)


_GOOD_TAGS = st.sampled_from([b"11", b"55", b"54", b"38", b"44", b"58", b"1", b"7", b"60",
                               b"448", b"452", b"956", b"21", b"59"])
_BAD_TAGS = st.sampled_from(  # or unusual: repeated, misplaced, user-defined, data length
    [b"5001", b"9999", b"34", b"35", b"49", b"56", b"52", b"43", b"97", b"122", b"8", b"9",
     b"10", b"957", b"10000", b"95", b"96", b"0", b"01", b"", b"x", b"-5", b" 5", b"1_0",
     b"123456789", b"1234567890"]
)
_GOOD_VALUES = st.one_of(
    st.sampled_from([b"A", b"0", b"1", b"Y", b"N", b"007", b"150.12", b"3",
                     b"20240102-03:04:05.678"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="="),
            min_size=1, max_size=5).map(str.encode),
)
_BAD_VALUES = st.one_of(
    st.sampled_from([b"", b"a=b", b"=", b"-1", b"\xc2\xb2", b"\xd9\xa1", b"\xc3\xa9", b"\xff",
                     b"20240102-03:04:05", b"20241302-03:04:05", b"20240102-03:04:05.1234567890",
                     b"X"]),
    st.binary(max_size=5).map(lambda b: b.replace(b"\x01", b"")),
)
_ANY_TAGS = st.one_of(_GOOD_TAGS, _BAD_TAGS)
_ANY_VALUES = st.one_of(_GOOD_VALUES, _BAD_VALUES)
_HEADER = [(b"35", b"D"), (b"49", b"C"), (b"56", b"V"), (b"34", b"7"),
           (b"52", b"20240102-03:04:05.678")]


@st.composite
def fix_bodies(draw):
    """A standard header (sometimes edited) then random fields, as ``tag=value<SOH>`` bytes."""
    fields = list(_HEADER)
    # mostly well formed, so that the fast path answers often; the rest probes its edges
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # edit the header
        i = draw(st.integers(0, len(fields) - 1))
        op = draw(st.sampled_from(["drop", "value", "move"]))
        if op == "drop":
            del fields[i]
        elif op == "value":
            fields[i] = (fields[i][0], draw(_ANY_VALUES))
        else:
            fields.insert(draw(st.integers(0, len(fields) - 1)), fields.pop(i))
    for tag in draw(st.lists(_GOOD_TAGS, unique=True, max_size=8)):
        fields.append((tag, draw(_GOOD_VALUES)))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        fields.insert(draw(st.integers(0, len(fields))), (draw(_ANY_TAGS), draw(_ANY_VALUES)))
    body = b"".join(t + b"=" + v + b"\x01" for t, v in fields)
    if not draw(st.integers(0, 5)):  # a field without '=' (its neighbour may have two)
        fields = body.split(b"\x01")
        i = draw(st.integers(0, len(fields) - 1))
        fields[i] = fields[i].replace(b"=", b"", 1)
        body = b"\x01".join(fields)
    if not draw(st.integers(0, 5)):  # a length-prefixed data field at the end
        data = draw(st.sampled_from([b"a\x01b", b"xyz", b"\x01"]))
        n = draw(st.sampled_from([len(data), len(data) + 1, 0]))
        body += b"95=%d\x0196=%b\x01" % (n, data)
    return body


def mutate(data: bytes, ops: list[int], draw) -> bytes:
    raw = bytearray(data)
    for op in ops:
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        if op == 0:
            raw[i] = draw(st.integers(0, 255))
        elif op == 1:
            del raw[i]
        else:
            raw.insert(i, draw(st.sampled_from(b"=\x0189FIX.10")))
    return bytes(raw)


@settings(max_examples=600, deadline=None)
@given(fix_bodies(), st.booleans())
def test_decode_answers_like_the_checked_decode(body, validate):
    data = frame(body)
    assert fast_outcome(decode, data, validate_formats=validate) == outcome(
        checked_decode, data, validate_formats=validate)


@settings(max_examples=400, deadline=None)
@given(fix_bodies(), st.lists(st.integers(0, 2), min_size=1, max_size=4), st.booleans(),
       st.data())
def test_decode_of_mutated_frames_answers_like_the_checked_decode(body, ops, reframe, data):
    raw = mutate(frame(body), ops, data.draw)
    if reframe:  # keep the mutation inside a correct frame, so it reaches stage two
        end = raw.rfind(b"10=")
        start = raw.find(b"\x01", 12) + 1
        raw = frame(raw[start:end]) if 0 < start <= end else raw
    assert fast_outcome(decode, raw) == outcome(checked_decode, raw)
    assert outcome(codec._check_frame, raw) == outcome(codec._checked_frame, raw)
    assert fast_outcome(decode, bytearray(raw)) == outcome(checked_decode, bytearray(raw))


@settings(max_examples=300, deadline=None)
@given(fix_bodies(), st.booleans())
def test_decode_keeps_the_sending_time_it_parsed(body, validate):
    """What ``sending_time`` answers without a second parse is what parsing the text gives."""
    try:
        msg = decode(frame(body), validate_formats=validate)
    except FixError:
        return
    assert msg._sending_time is None or validate
    assert outcome(lambda: msg.sending_time) == outcome(codec.parse_timestamp, msg[52])


def test_decode_known_cases_agree():
    for body in (b"35=0\x0149=C\x0156=V\x0134=1\x0152=20240102-03:04:05\x01",
                 b"35=0\x0149=C\x0156=V\x0134=\xc2\xb2\x0152=20240102-03:04:05\x01",
                 b"35=0\x0149=C\x0156=V\x0134=1\x0152=20240102-03:04:05\x015001=u\x01",
                 b"35=0\x0149=C\x0156=V\x0134=1\x0152=20240102-03:04:05\x01448=A\x01448=B\x01",
                 b"35=0\x0149=C\x0156=V\x0134=1\x0152=20240102-03:04:05\x0158=a=b\x01",
                 b"35=0\x0149=C\x0156=V\x0134=1\x0152=20240102-03:04:05\x0158\x0111=1=2\x01",
                 b""):
        assert fast_outcome(decode, frame(body)) == outcome(checked_decode, frame(body))
    assert fast_outcome(decode, "text") == outcome(checked_decode, "text")


def test_non_ascii_digits_are_a_reject_not_a_crash():
    """'²' passes str.isdigit() but not int(); Arabic-Indic digits pass both: neither is FIX."""
    for body, tag in ((b"35=0\x0149=C\x0156=V\x0134=\xc2\xb2\x0152=20240102-03:04:05\x01", 34),
                      ("35=0\x0149=C\x0156=V\x0134=1\x0152=\u0662\u0660\u0662\u0664"
                       "0102-03:04:05\x01".encode(), 52)):
        with pytest.raises(FixError) as caught:
            decode(frame(body))
        assert caught.value.tag == tag and caught.value.reason == 6


# ---------------------------------------------------------------------------------- encode


def checked_encode(msg_type, fields, *, sender, target, seq_num, sending_time, poss_dup=False,
                   orig_sending_time=None, header=()):
    """``encode`` through ``_checked_body`` and a plain-sum CheckSum."""
    if type(seq_num) is not int or seq_num < 1:
        raise FixError(f"MsgSeqNum must be a positive int, got {seq_num!r}", reason=5, tag=34)
    fmt = codec.format_timestamp
    st_ = fmt(sending_time) if isinstance(sending_time, int) else sending_time
    head = [(35, msg_type), (49, sender), (56, target), (34, str(seq_num))]
    if poss_dup:
        head.append((43, "Y"))
    head.append((52, st_))
    if orig_sending_time is not None:
        ost = orig_sending_time
        head.append((122, fmt(ost) if isinstance(ost, int) else ost))
    head.extend(header)
    body = codec._checked_body((*head, *fields))
    msg = b"8=FIX.4.4\x019=%d\x01%b" % (len(body), body)
    return msg + b"10=%03d\x01" % (sum(msg) % 256)


def usually(good, bad):
    """``good`` three times in four."""
    return st.one_of(good, good, good, bad)


_ENC_GOOD = st.tuples(
    st.one_of(st.integers(1, 1000).filter(lambda t: t not in (8, 9, 10)), st.integers(5000, 9999)),
    st.text(st.characters(min_codepoint=2, max_codepoint=300), min_size=1, max_size=8),
)
_ENC_ODD = st.tuples(
    st.one_of(st.integers(1, 1000), st.integers(5000, 10**10),
              st.sampled_from([8, 9, 10, 0, -3, True, 35.0, "35"])),
    st.one_of(st.text(st.characters(min_codepoint=1, max_codepoint=300), max_size=8),
              st.sampled_from(["", "\x01", "a\x01", "=", "é€", "x" * 300]),
              st.integers(-5, 10**12), st.booleans(), st.binary(max_size=4), st.none(),
              st.sampled_from([Side.BUY, SessionRejectReason.OTHER, 1.5])),
)
_NAMES = st.sampled_from(["D", "8", "CLIENT1", "é", "", "a\x01b", None, 5, b"X"])


@st.composite
def encode_calls(draw):
    """(msg_type, fields, keywords) for ``encode``: all well formed, or some odd values."""
    fields = draw(st.lists(_ENC_GOOD, max_size=10))
    args = {"msg_type": "D", "sender": "CLIENT1", "target": "AGORA", "seq_num": 7,
            "sending_time": draw(st.integers(0, 4 * 10**18)), "poss_dup": False,
            "orig_sending_time": None, "header": ()}
    if draw(st.booleans()):
        return fields, args
    for _ in range(draw(st.integers(0, 2))):
        fields.insert(draw(st.integers(0, len(fields))), draw(_ENC_ODD))
    for name, odd in _ENC_ODD_ARGS.items():
        if not draw(st.integers(0, 5)):
            args[name] = draw(odd)
    return fields, args


_ENC_ODD_ARGS = {
    "msg_type": _NAMES, "sender": _NAMES, "target": _NAMES,
    "seq_num": st.sampled_from([1, 10**12, 0, -1, True, "5"]),
    "sending_time": st.sampled_from(["20240102-03:04:05", "", "a\x01", 0]),
    "poss_dup": st.booleans(), "orig_sending_time": st.sampled_from([T0, "20240102-03:04:05", ""]),
    "header": st.sampled_from([(), [], [(115, "X")], [(8, "x")]]),
}


@settings(max_examples=600, deadline=None)
@given(encode_calls())
def test_encode_answers_like_the_checked_encode(call):
    fields, kw = call
    msg_type = kw.pop("msg_type")
    assert outcome(encode, msg_type, fields, **kw) == outcome(checked_encode, msg_type, fields,
                                                              **kw)
    # any iterable of fields, read once
    assert outcome(encode, msg_type, iter(fields), **kw) == outcome(checked_encode, msg_type,
                                                                    iter(fields), **kw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200), st.integers(0, 1200))
def test_checksum_is_the_byte_sum_mod_256(data, n):
    assert codec.checksum(data) == sum(data) % 256
    assert codec.checksum(bytearray(data)) == sum(data) % 256
    ff = b"\xff" * n  # the largest chunk sums Adler-32 must still hold exactly
    assert codec.checksum(ff) == sum(ff) % 256


def test_checksum_of_every_length_of_the_heaviest_bytes():
    for n in range(1100):
        assert codec.checksum(b"\xff" * n) == 255 * n % 256


def reference_format_timestamp(ns):
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ns // 1000)
    return f"{t:%Y%m%d-%H:%M:%S}.{ns // 1_000_000 % 1000:03d}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 4 * 10**18), min_size=1, max_size=4))
def test_format_timestamp_matches_a_plain_format(stamps):
    for ns in stamps:  # several in turn: the memo moves between seconds
        assert codec.format_timestamp(ns) == reference_format_timestamp(ns)
        assert codec.format_timestamp(ns + 1_000_000) == reference_format_timestamp(ns + 10**6)


def reference_parse_timestamp(text, tag=52):
    """UTCTIMESTAMP by regex and datetime, with no memo."""
    m = timestamps._TS_RE.fullmatch(text)
    try:
        t = dt.datetime(*map(int, m.groups()[:6]))
    except (AttributeError, ValueError):
        raise FixError(f"tag {tag}: bad UTCTIMESTAMP {text!r}", reason=6, tag=tag) from None
    secs = (t - dt.datetime(1970, 1, 1)) // dt.timedelta(seconds=1)
    return secs * 1_000_000_000 + int((m.group(7) or "").ljust(9, "0"))


_STAMP_TAILS = st.sampled_from(["", ".", ".5", ".678", ".678123", ".123456789", ".1234567890",
                                ".12a", ".\u0661", "x", ".+1", "\x00"])


@st.composite
def stamp_texts(draw):
    """Texts in one or two seconds, often repeated (the memos' hits) and sometimes broken."""
    base = draw(st.integers(0, 4 * 10**18))
    texts = []
    for _ in range(draw(st.integers(1, 6))):
        if texts and draw(st.booleans()):
            texts.append(draw(st.sampled_from(texts)))  # the very text just seen
        else:
            ns = base + draw(st.sampled_from([0, 1, 999_999_999, 10**9]))
            texts.append(codec.format_timestamp(ns)[:17] + draw(_STAMP_TAILS))
        if not draw(st.integers(0, 7)):
            texts[-1] = draw(st.sampled_from(["", "2024", "20241302-03:04:05", "20240230-00:00:00",
                                              "20240102-03:04:05.678 ", "\u0662" * 8]))
    return texts


@settings(max_examples=400, deadline=None)
@given(stamp_texts())
def test_parse_timestamp_answers_like_a_plain_parse(texts):
    codec.parse_timestamp("20240102-03:04:05.678")  # the memos hold something
    for text in texts:  # in turn: each memo moves or is hit
        assert outcome(codec.parse_timestamp, text, 60) == outcome(
            reference_parse_timestamp, text, 60)


def test_parse_timestamp_memos_in_turn():
    """Each memo path after each other: a new second with and without a fraction, the same
    second again, the very text again, a bad text between them."""
    texts = ["20240102-03:04:05.678", "20240102-03:04:05", "20240102-03:04:05.5",
             "20240102-03:04:05.5", "20240102-03:04:05", "20240102-03:04:05.678123",
             "20240102-03:04:06", "20240102-03:04:06.1", "20240102-03:04:05.678", "2024",
             "20240102-03:04:05.678", "20240102-03:04:05.6780", "20240102-03:04:05.x"]
    for first in texts:
        for text in texts:
            outcome(codec.parse_timestamp, first)  # the memos as that text leaves them
            assert outcome(codec.parse_timestamp, text, 52) == outcome(
                reference_parse_timestamp, text, 52)


# ---------------------------------------------------------------------------------- typed


def reference_format_price(units):
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10_000)
    tail = f"{frac:04d}".rstrip("0")
    return f"{sign}{whole}.{tail}" if tail else f"{sign}{whole}"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.integers(-(10**30), 10**30), st.integers(-30_000, 30_000), st.booleans()))
def test_format_price_matches_the_reference(units):
    assert outcome(messages.format_price, units) == outcome(reference_format_price, units)


@settings(max_examples=600, deadline=None)
@given(st.one_of(
    st.text(st.sampled_from("0123456789.-+e _x\u0661\u00b2"), max_size=14),
    st.from_regex(r"[0-9]{1,30}(\.[0-9]{0,8})?", fullmatch=True),
    st.builds("{}.{}".format, st.integers(0, 10**34), st.integers(0, 99999)),
    st.integers(-(10**34), 10**34).map(str),
))
def test_parse_price_answers_like_the_checked_parse(text):
    assert outcome(messages.parse_price, text, 44) == outcome(
        messages._checked_parse_price, text, 44)


class _Plain(Enum):  # neither str nor int: rendered by its value, not by str()
    A = "a"


_ATTR_VALUES = st.one_of(
    st.none(), st.text(st.characters(min_codepoint=1, max_codepoint=300), max_size=6),
    st.integers(-(10**13), 10**13), st.booleans(),
    st.sampled_from([0, 1, T0, "", "1", "A", Side.SELL, ExecType.TRADE, OrdStatus.FILLED,
                     SessionRejectReason.OTHER, True, b"x", 1.5, _Plain.A]),
)


@st.composite
def typed_messages(draw):
    """A registered message whose attributes hold anything (msgspec does not check on init)."""
    cls = draw(st.sampled_from(list(MESSAGE_TYPES.values())))
    clean = draw(st.booleans())  # every field well typed (or None when optional), or not
    kwargs = {}
    for f in cls.FIX_FIELDS:
        good = st.just(typical(f.kind)) if f.required else st.sampled_from([typical(f.kind), None])
        kwargs[f.attr] = draw(good if clean else st.one_of(good, _ATTR_VALUES))
    return cls(**kwargs)


_TYPICAL = {messages.STR: "abc", messages.INT: 30, messages.SEQ: 5, messages.QTY: 100,
            messages.PRICE: 1_501_200, messages.TIME: T0, messages.BOOL: True}


def typical(kind):
    """A well-typed value of a field kind (an enum kind: its last member)."""
    return list(kind)[-1] if isinstance(kind, type) else _TYPICAL[kind]


@settings(max_examples=600, deadline=None)
@given(typed_messages())
def test_to_fields_answers_like_the_checked_loop(msg):
    assert outcome(to_fields, msg) == outcome(messages._checked_to_fields, msg)


def test_to_fields_of_a_subclass_takes_the_checked_loop():
    class Later(messages.Heartbeat, frozen=True, kw_only=True):
        pass

    assert to_fields(Later(test_req_id="x")) == [(112, "x")]


_TEXTS = st.one_of(
    st.sampled_from(["1", "2", "0", "00", "01", "-1", "-0", "3", "8", "F", "Z", "", "x", "Y", "N",
                     "150.12", "150.", "1.23456", "100.00", "1e3", "\u0661", "\u00b2", " 1",
                     "20240102-03:04:05.678", "20240102-03:04:05", "20241302-03:04:05",
                     "99999999999999999999999999", "5.0001"]),
    st.text(st.sampled_from("0123456789.-AZ"), max_size=6),
)


_GOOD_TEXTS = {messages.STR: ["abc", "a b", "é"], messages.INT: ["0", "30", "007", "-4"],
               messages.SEQ: ["0", "5", "12345"], messages.QTY: ["0", "100", "100.00"],
               messages.PRICE: ["150.12", "7", "0.0001", "-1.5", "012.3400"],
               messages.TIME: ["20240102-03:04:05.678", "20240102-03:04:05", T0_TEXT_US],
               messages.BOOL: ["Y", "N"]}


def good_texts(kind):
    if isinstance(kind, type):
        return st.sampled_from([str(m.value) for m in kind])
    return st.sampled_from(_GOOD_TEXTS[kind])


def odd_texts(kind):
    """A good text of the kind, a little off: padded, signed, a digit (maybe not ASCII) added."""
    return st.builds("{}{}{}".format, st.sampled_from(["", "0", "-", " ", "+", "\u0661"]),
                     good_texts(kind), st.sampled_from(["", "0", ".0", " ", "1", "\u00b2"]))


@st.composite
def decoded_messages(draw):
    """A FixMessage of a known (or unknown) type whose body tags hold random texts."""
    mt = draw(usually(st.sampled_from(list(MESSAGE_TYPES)), st.sampled_from(["AE", None])))
    fields = [] if mt is None else [(35, mt)]
    seq = draw(usually(st.just("5"), st.sampled_from(["0", "\u00b2", "x", None])))
    if seq is not None:
        fields.append((34, seq))
    cls = MESSAGE_TYPES.get(mt or "")
    clean = draw(st.booleans())  # every field well formed, or some odd ones
    for f in cls.FIX_FIELDS if cls else ():
        if draw(st.integers(0, 9 if f.required else 1)):
            texts = (good_texts(f.kind) if clean
                     else usually(good_texts(f.kind), st.one_of(_TEXTS, odd_texts(f.kind))))
            fields.append((f.tag, draw(texts)))
    if draw(st.booleans()):
        fields.append((draw(st.sampled_from([11, 54, 38, 9999])), draw(_TEXTS)))
    return FixMessage(fields)


@settings(max_examples=800, deadline=None)
@given(decoded_messages())
def test_from_message_answers_like_the_checked_loop(msg):
    assert fast_outcome(from_message, msg) == outcome(messages._checked_from_message, msg)


_EDGE_TEXTS = ["01", "10", "00", "-0", "-1", "+1", " 1", "1 ", "1.0", "0100", "\u0661", "\u00b2",
               "1\u00b2", "Y", "y", "", "150.", ".5", "1e2", "20240102-03:04:05.", "F", "AE"]


def test_from_message_edge_texts_in_every_field():
    """Each field of each type in turn holds each edge text; the rest are well formed."""
    for mt, cls in MESSAGE_TYPES.items():
        good = [(35, mt), (34, "9"),
                *to_fields(cls(**{f.attr: typical(f.kind) for f in cls.FIX_FIELDS}))]
        for i in range(2, len(good)):
            for text in _EDGE_TEXTS:
                fields = [*good[:i], (good[i][0], text), *good[i + 1 :]]
                msg = FixMessage(fields)
                assert fast_outcome(from_message, msg) == outcome(
                    messages._checked_from_message, msg)


def test_to_fields_edge_values_in_every_field():
    for cls in MESSAGE_TYPES.values():
        base = {f.attr: typical(f.kind) for f in cls.FIX_FIELDS}
        for f in cls.FIX_FIELDS:
            for value in (None, "", "1", 0, -1, True, False, 1.5, b"x", _Plain.A, Side.SELL,
                          SessionRejectReason.OTHER, 10**20, -(10**20)):
                msg = cls(**{**base, f.attr: value})
                assert outcome(to_fields, msg) == outcome(messages._checked_to_fields, msg)


def test_from_message_round_trips_what_to_fields_wrote():
    for mt, cls in MESSAGE_TYPES.items():
        kwargs = {f.attr: typical(f.kind) for f in cls.FIX_FIELDS}
        msg = cls(**kwargs)
        raw = encode(mt, to_fields(msg), sender="C", target="V", seq_num=3, sending_time=T0)
        assert fast_outcome(from_message, decode(raw)) == outcome(
            messages._checked_from_message, decode(raw))
        assert from_message(decode(raw)) == msg


def test_enum_of_another_class_renders_like_the_checked_loop():
    msg = messages.ExecutionReport(order_id="1", exec_id="2", exec_type=OrdStatus.NEW,
                                   ord_status=_Plain.A, side="1", leaves_qty=True, cum_qty=0,
                                   avg_px=0)
    assert outcome(to_fields, msg) == outcome(messages._checked_to_fields, msg)


_RENDER_ODD_ARGS = {
    "sender": _NAMES, "target": _NAMES,
    "seq_num": st.sampled_from([1, 10**12, 0, -1, True, "5"]),
    "sending_time": st.sampled_from(["20240102-03:04:05", "", True, -1, 10**30, 0]),
}


@settings(max_examples=500, deadline=None)
@given(typed_messages(), st.data())
def test_encode_message_answers_like_to_fields_then_encode(msg, data):
    kw = {"sender": "AGORA", "target": "CLIENT1", "seq_num": data.draw(st.integers(1, 10**9)),
          "sending_time": data.draw(st.integers(0, 4 * 10**18))}
    for name, odd in _RENDER_ODD_ARGS.items():
        if not data.draw(st.integers(0, 7)):
            kw[name] = data.draw(odd)
    got = fast_outcome(encode_message, msg, **kw)
    assert got == outcome(lambda: encode(msg.MSG_TYPE, to_fields(msg), **kw))
    assert got == outcome(lambda: checked_encode(msg.MSG_TYPE, messages._checked_to_fields(msg),
                                                 **kw))


INT64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(
    [0, -1, 1, 9, 10, -10, 9_999, 10_000, -10_001, 2**63 - 1, -(2**63), -(2**63) + 1,
     10**18, -(10**18), 12_345_678_900]))


@settings(max_examples=500, deadline=None)
@given(INT64, INT64, st.integers(1, 2**63 - 1), st.integers(0, 10**12))
def test_encode_message_writes_64_bit_integers_and_prices_like_the_reference(
        price, qty, seq_num, body_pad):
    """The C writer's own decimal formatting (no snprintf) at the 64-bit edges: a Price(4),
    a plain int, MsgSeqNum, and BodyLengths of every width."""
    msg = messages.NewOrderSingle(cl_ord_id="x" * (1 + body_pad % 5000), symbol="S",
                                  side=Side.BUY, order_qty=qty, ord_type=messages.OrdType.LIMIT,
                                  price=price, transact_time=T0)
    kw = {"sender": "AGORA", "target": "CLIENT1", "seq_num": seq_num, "sending_time": T0}
    assert fast_outcome(encode_message, msg, **kw) == outcome(
        lambda: checked_encode(msg.MSG_TYPE, messages._checked_to_fields(msg), **kw))


def test_encode_message_edge_values_in_every_field():
    """Each field in turn holds a value the one pass must hand to the reference (or render
    exactly as it would): empty, '=' last, SOH inside, None, another type."""
    for cls in MESSAGE_TYPES.values():
        base = {f.attr: typical(f.kind) for f in cls.FIX_FIELDS}
        for f in cls.FIX_FIELDS:
            for value in (None, "", "=", "a=", "=a", "a\x01b", "\x01", "é", "\ud800", 0, -1, True,
                          1.5, b"x", _Plain.A, 10**20):
                msg = cls(**{**base, f.attr: value})
                # "C=": the header ends a value with '='; 10**30: SendingTime cannot be written
                for target, stamp in (("CLIENT1", T0), ("C=", T0), ("CLIENT1", 10**30)):
                    kw = {"sender": "AGORA", "target": target, "seq_num": 9,
                          "sending_time": stamp}
                    assert fast_outcome(encode_message, msg, **kw) == outcome(
                        lambda msg=msg, kw=kw: checked_encode(
                            msg.MSG_TYPE, messages._checked_to_fields(msg), **kw))


def test_encode_message_of_a_subclass_takes_the_reference():
    class Later(messages.Heartbeat, frozen=True, kw_only=True):
        pass

    kw = {"sender": "AGORA", "target": "CLIENT1", "seq_num": 3, "sending_time": T0}
    assert encode_message(Later(test_req_id="x"), **kw) == encode("0", [(112, "x")], **kw)


@pytest.mark.parametrize("text", ["", "2026", "20261126-12:00:0"])
def test_a_short_timestamp_is_a_fix_error_even_as_the_first_parse(monkeypatch, text):
    """With an empty memo (a fresh process) a text shorter than a whole second used to reach
    the memo's fraction check and raise IndexError instead of the session's FixError."""
    monkeypatch.setattr(timestamps, "_memo", timestamps._SecondMemo())
    with pytest.raises(FixError, match="bad UTCTIMESTAMP"):
        timestamps.parse_timestamp(text, 60)
