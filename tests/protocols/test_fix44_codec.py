"""FIX 4.4 codec: golden bytes, validation reasons, framer split points and fuzzing."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols.errors import ProtocolError
from agora.protocols.fix44.codec import (
    FixError,
    FixFramingError,
    decode,
    encode,
    format_timestamp,
    parse_timestamp,
)
from agora.protocols.fix44.framer import FixFramer

T0 = 1_704_164_645_678_000_000  # 2024-01-02 03:04:05.678 UTC

# Heartbeat, written out by hand. Body "35=0|49=CLIENT|56=VENUE|34=1|52=20240102-03:04:05.678|"
# is 5 + 10 + 9 + 5 + 25 = 54 bytes; the checksum of everything before "10=" is 19 (mod 256).
GOLDEN_HEARTBEAT = (
    b"8=FIX.4.4\x019=54\x0135=0\x0149=CLIENT\x0156=VENUE\x0134=1\x01"
    b"52=20240102-03:04:05.678\x0110=019\x01"
)


def fix(text: str) -> bytes:
    """Build a frame from '|'-separated fields, computing BodyLength and CheckSum by hand."""
    body = text.replace("|", "\x01").encode()
    head = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
    return head + b"10=%03d\x01" % (sum(head) % 256)


def hb(seq: int = 1) -> bytes:
    return encode("0", [], sender="CLIENT", target="VENUE", seq_num=seq, sending_time=T0)


def test_golden_heartbeat_hand_computed():
    body = GOLDEN_HEARTBEAT.split(b"\x019=54\x01", 1)[1].split(b"10=")[0]
    assert len(body) == 54
    assert sum(GOLDEN_HEARTBEAT[: GOLDEN_HEARTBEAT.index(b"10=")]) % 256 == 19
    assert hb() == GOLDEN_HEARTBEAT
    assert fix("35=0|49=CLIENT|56=VENUE|34=1|52=20240102-03:04:05.678|") == GOLDEN_HEARTBEAT


def test_decode_golden():
    m = decode(GOLDEN_HEARTBEAT)
    assert m.msg_type == "0" and m.seq_num == 1 and m.sender == "CLIENT" and m.target == "VENUE"
    assert m.sending_time == T0
    assert m[10] == "019" and m.fields[0] == (8, "FIX.4.4") and m.fields[1] == (9, "54")
    assert m.body() == []
    assert 52 in m and 112 not in m and m.get(112) is None


def test_checksum_zero_padded_and_utf8_bytes():
    raw = encode("0", [(112, "é€")], sender="A", target="B", seq_num=7, sending_time=T0)
    trailer = raw.index(b"\x0110=") + 1
    assert raw[trailer:].decode().startswith("10=") and len(raw) - trailer == 7
    assert int(raw[trailer + 3 : trailer + 6]) == sum(raw[:trailer]) % 256
    assert decode(raw)[112] == "é€"


def test_timestamps():
    assert format_timestamp(T0) == "20240102-03:04:05.678"
    assert parse_timestamp("20240102-03:04:05") == T0 - 678_000_000
    assert parse_timestamp("20240102-03:04:05.678123") == T0 + 123_000
    for bad in ("2024-01-02", "20241302-03:04:05", "20240102-25:04:05.1"):
        with pytest.raises(FixError) as e:
            parse_timestamp(bad)
        assert e.value.reason == 6


def test_encode_refuses_bad_input():
    with pytest.raises(FixError):
        encode("0", [(58, 1.5)], sender="A", target="B", seq_num=1, sending_time=T0)
    with pytest.raises(FixError) as e:
        encode("0", [(58, "")], sender="A", target="B", seq_num=1, sending_time=T0)
    assert e.value.reason == 4
    with pytest.raises(FixError) as e:
        encode("0", [(58, "a\x01b")], sender="A", target="B", seq_num=1, sending_time=T0)
    assert e.value.reason == 17
    with pytest.raises(FixError):
        encode("0", [(10, "000")], sender="A", target="B", seq_num=1, sending_time=T0)
    with pytest.raises(FixError):
        encode("0", [(0, "x")], sender="A", target="B", seq_num=1, sending_time=T0)


def test_every_single_byte_corruption_is_detected():
    raw = hb()
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] = (bad[i] + 1) % 256
        with pytest.raises(FixError):
            decode(bytes(bad))


@pytest.mark.parametrize(
    ("raw", "garbled"),
    [
        (GOLDEN_HEARTBEAT.replace(b"10=019", b"10=020"), True),
        (GOLDEN_HEARTBEAT.replace(b"9=54", b"9=53"), True),
        (GOLDEN_HEARTBEAT.replace(b"9=54", b"9=55"), True),
        (GOLDEN_HEARTBEAT.replace(b"10=019", b"10=19"), True),
        (GOLDEN_HEARTBEAT.replace(b"FIX.4.4", b"FIX.4.2"), True),
        (GOLDEN_HEARTBEAT[:-1], True),
        (GOLDEN_HEARTBEAT + b"x", True),
    ],
)
def test_framing_errors_are_garbled(raw, garbled):
    with pytest.raises(FixError) as e:
        decode(raw)
    assert e.value.garbled is garbled
    assert isinstance(e.value, ProtocolError)


@pytest.mark.parametrize(
    ("text", "reason", "tag"),
    [
        ("49=C|35=0|56=V|34=1|52=20240102-03:04:05|", 14, 35),  # 35 not third
        ("35=0|56=V|34=1|52=20240102-03:04:05|", 1, 49),
        ("35=0|49=C|34=1|52=20240102-03:04:05|", 1, 56),
        ("35=0|49=C|56=V|52=20240102-03:04:05|", 1, 34),
        ("35=0|49=C|56=V|34=1|", 1, 52),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|49=C|", 13, 49),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|58=|", 4, 58),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|0=x|", 0, None),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|-5=x|", 0, None),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|abc=x|", 0, None),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|4000=x|", 3, 4000),
        ("35=0|49=C|56=V|34=x|52=20240102-03:04:05|", 6, 34),
        ("35=0|49=C|56=V|34=1|52=yesterday|", 6, 52),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|43=X|", 6, 43),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|35=0|", 14, 35),
        ("35=0|49=C|56=V|34=1|52=20240102-03:04:05|10=000|", 14, 10),
    ],
)
def test_session_reject_reasons(text, reason, tag):
    with pytest.raises(FixError) as e:
        decode(fix(text))
    assert e.value.reason == reason
    assert e.value.tag == tag
    assert not e.value.garbled


def test_reject_carries_ref_seq_and_msg_type():
    with pytest.raises(FixError) as e:
        decode(fix("35=D|49=C|56=V|34=17|52=20240102-03:04:05|11=A|11=B|"))
    assert (e.value.seq_num, e.value.msg_type, e.value.reason, e.value.tag) == (17, "D", 13, 11)


def test_group_tags_may_repeat_and_user_tags_pass():
    m = decode(fix("35=D|49=C|56=V|34=1|52=20240102-03:04:05|453=2|448=X|452=1|448=Y|452=3|"
                   "5001=custom|"))
    assert [v for t, v in m if t == 448] == ["X", "Y"] and m[5001] == "custom"


def test_data_field_may_contain_soh():
    raw = encode("A", [(98, 0), (108, 30), (95, 3), (96, b"a\x01b")], sender="C", target="V",
                 seq_num=1, sending_time=T0)
    assert decode(raw)[96] == "a\x01b"


# ---------------------------------------------------------------------------------- framer


def stream() -> bytes:
    return b"".join(hb(i) for i in range(1, 4))


def test_framer_every_split_point():
    data = stream()
    expected = [hb(i) for i in range(1, 4)]
    for i in range(len(data) + 1):
        f = FixFramer()
        assert f.feed(data[:i]) + f.feed(data[i:]) == expected
        assert f.buffered == 0


def test_framer_byte_at_a_time():
    f = FixFramer()
    out = [m for b in stream() for m in f.feed(bytes([b]))]
    assert out == [hb(i) for i in range(1, 4)]


def test_framer_resyncs_after_garbage():
    f = FixFramer()
    with pytest.raises(FixFramingError) as e:
        f.feed(b"junk\x01" + hb(1) + b"8=FIX.4.4\x019=zz\x01garbage" + hb(2))
    assert e.value.frames == [hb(1), hb(2)]
    assert e.value.discarded == 5 + len(b"8=FIX.4.4\x019=zz\x01garbage")
    assert f.feed(hb(3)) == [hb(3)]


def test_framer_wrong_bodylength_resyncs():
    bad = GOLDEN_HEARTBEAT.replace(b"9=54", b"9=50")
    f = FixFramer()
    with pytest.raises(FixFramingError) as e:
        f.feed(bad + hb(2))
    assert e.value.frames == [hb(2)]


def test_framer_refuses_oversized():
    f = FixFramer(max_body_length=1000)
    with pytest.raises(FixFramingError, match="exceeds"):
        f.feed(b"8=FIX.4.4\x019=99999\x01" + b"x" * 50)
    assert f.feed(hb(1)) == [hb(1)]


def test_framer_keeps_partial_start_across_garbage():
    f = FixFramer()
    with pytest.raises(FixFramingError) as e:
        f.feed(b"xxxx8=FIX")
    assert e.value.frames == [] and f.buffered == 5
    assert f.feed(hb(1)[5:]) == [hb(1)]


def test_framer_long_bodylength_digits():
    f = FixFramer()
    with pytest.raises(FixFramingError):
        f.feed(b"8=FIX.4.4\x019=" + b"1" * 20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decode_only_raises_fix_error(data):
    with contextlib.suppress(FixError):
        decode(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5]), max_size=20), st.data())
def test_fuzz_mutated_messages(ops, data):
    raw = bytearray(hb(5))
    for op in ops:
        i = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if not raw:
            break
        if op == 0:
            raw[i] = data.draw(st.integers(0, 255))
        elif op == 1:
            del raw[i]
        else:
            raw.insert(i, data.draw(st.sampled_from(b"=\x0189FIX.10")))
    with contextlib.suppress(FixError):
        decode(bytes(raw))
    f = FixFramer()
    try:
        frames = f.feed(bytes(raw) + hb(6))
    except FixFramingError as e:
        frames = e.frames
    assert frames[-1:] == [hb(6)] or frames == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 400))
def test_fuzz_framer_only_framing_errors(noise, cut):
    data = noise[:cut] + hb(1) + noise[cut:]
    f = FixFramer(max_body_length=4096)
    for chunk in (data[:cut], data[cut:]):
        try:
            frames = f.feed(chunk)
        except FixFramingError as e:
            frames = e.frames
        for frame in frames:
            with contextlib.suppress(FixError):
                decode(frame)


# ----------------------------------------------------------------- fast paths vs checked paths

_tags = st.one_of(st.integers(1, 1000), st.sampled_from([8, 9, 10, 95, 96, 0, -3]))
_values = st.one_of(
    st.text(st.characters(min_codepoint=1, max_codepoint=300), max_size=12),
    st.integers(-5, 10**12), st.booleans(), st.binary(max_size=6),
)


@given(st.lists(st.tuples(_tags, _values), max_size=12))
@settings(max_examples=400, deadline=None)
def test_fast_body_equals_the_checked_body_whenever_it_answers(items):
    from agora.protocols.fix44.codec import _checked_body, _fast_body

    fast = _fast_body(items)
    try:
        checked = _checked_body(items)
    except FixError:
        assert fast is None  # the fast path never accepts what the checked path refuses
        return
    assert fast is None or fast == checked


_raw_fields = st.lists(
    st.tuples(st.sampled_from([b"35", b"49", b"0", b"01", b"x", b"96", b"95", b"1234567890",
                               b"58", b""]),
              st.binary(max_size=6).map(lambda b: b.replace(b"\x01", b""))
              | st.sampled_from([b"abc", b"\xc3\xa9", b"a=b"])),
    max_size=8,
)


@given(_raw_fields, st.booleans())
@settings(max_examples=400, deadline=None)
def test_fast_split_equals_the_checked_split_whenever_it_answers(fields, terminated):
    from agora.protocols.fix44.codec import _checked_split, _fast_split

    data = b"".join(tag + b"=" + value + b"\x01" for tag, value in fields)
    if not terminated and data:
        data = data[:-1]
    fast = _fast_split(data, len(data))
    try:
        checked = _checked_split(data, len(data))
    except FixError:
        assert fast is None
        return
    assert fast is None or fast == checked


@given(st.integers(0, 4_000_000_000 * 10**9),
       st.sampled_from(["", ".", ".5", ".123", ".123456789", ".1234567890", ".12a", "x", ".+1"]))
@settings(max_examples=300, deadline=None)
def test_timestamp_memo_answers_like_the_full_parse(ns, tail):
    from agora.protocols.fix44.timestamps import _memo, format_timestamp, parse_timestamp

    text = format_timestamp(ns)[:17] + tail
    outcomes = []
    for _ in range(2):  # the second parse of the same text takes a memo path
        try:
            outcomes.append(parse_timestamp(text))
        except FixError:
            outcomes.append("error")
        assert _memo.parsed in ("", text[:17]) or outcomes[-1] == "error"
    assert outcomes[0] == outcomes[1]
