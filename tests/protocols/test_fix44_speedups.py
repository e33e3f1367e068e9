"""The C hot paths (``_speedups.c``) where their arithmetic is their own: calendar dates both
ways, prices, integers past 64 bits, unusual tags. Each case is answered with the C paths and
with the Python fast paths alone (``fast_outcome``), and against the checked path or a plain
datetime reference. The general differential tests are in test_fix44_fast_paths.py.
"""

import datetime as dt
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols.fix44 import messages, speedups
from agora.protocols.fix44.codec import FixMessage, decode
from agora.protocols.fix44.enums import OrdType, Side
from agora.protocols.fix44.messages import Heartbeat, NewOrderSingle, encode_message, from_message
from tests.protocols.test_fix44_fast_paths import (
    checked_decode,
    fast_outcome,
    frame,
    outcome,
    reference_parse_timestamp,
)

LAST_NS = 253_402_300_799_999_999_999  # 9999-12-31 23:59:59.999999999, the last UTCTIMESTAMP
HEAD = b"35=0\x0149=C\x0156=V\x0134=7\x01"


def test_the_c_paths_are_built_where_a_compiler_exists():
    """``optional=True`` lets an install go on without them: a CI machine with a compiler must
    not lose them silently (``pip install -v -e .`` shows why a build failed)."""
    if os.environ.get("AGORA_PURE_PYTHON"):
        pytest.skip("AGORA_PURE_PYTHON is set: the Python fast paths run by request")
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here: the Python fast paths run")
    assert speedups.ext is not None
    assert speedups.implementation() == "c"


def reference_stamp(ns: int) -> str:
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=ns // 10**9)
    return f"{t.year:04d}{t:%m%d-%H:%M:%S}.{ns // 10**6 % 1000:03d}"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.integers(0, LAST_NS), st.integers(-(10**20), 10**21),
                 st.sampled_from([0, 951_782_400 * 10**9, 4_107_542_400 * 10**9 - 1, LAST_NS,
                                  LAST_NS + 1, 2**63 - 1, 2**63, -1])))
def test_sending_time_is_written_on_every_date(ns):
    """Written in C for 1970-9999 (leap days, the end of each century), elsewhere by Python."""
    got = fast_outcome(encode_message, Heartbeat(), sender="S", target="T", seq_num=1,
                       sending_time=ns)
    if 0 <= ns <= LAST_NS:
        assert got[0] == "ok" and b"\x0152=" + reference_stamp(ns).encode() + b"\x01" in got[2]


_DATES = st.tuples(st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32),
                   st.integers(0, 24), st.integers(0, 60), st.integers(0, 60),
                   st.sampled_from(["", ".", ".5", ".123", ".123456789", ".1234567890"]))
_LEAP_EDGES = st.tuples(st.sampled_from([1, 1600, 1677, 1678, 1900, 1970, 2000, 2100, 2024, 2262,
                                         2263, 9999]),
                        st.just(2), st.sampled_from([28, 29, 30]), st.just(23), st.just(59),
                        st.just(59), st.sampled_from(["", ".999999999"]))


@settings(max_examples=500, deadline=None)
@given(st.one_of(_DATES, _LEAP_EDGES))
def test_sending_and_transact_times_are_read_on_every_date(date):
    """Read in C where ns fit 64 bits; bad dates and the rest go to the Python parser."""
    y, mo, d, h, mi, s, frac = date
    text = f"{y:04d}{mo:02d}{d:02d}-{h:02d}:{mi:02d}:{s:02d}{frac}"
    data = frame(HEAD + f"52={text}\x01".encode())
    decoded = fast_outcome(decode, data)
    assert decoded == outcome(checked_decode, data)
    if decoded[0] == "ok":  # ("ok", fields, raw, index, the SendingTime it parsed)
        assert decoded[4] == reference_parse_timestamp(text, 52)
    order = FixMessage([(35, "D"), (11, "c"), (54, "1"), (60, text), (40, "1")])
    assert fast_outcome(from_message, order) == outcome(messages._checked_from_message, order)


_PRICE_TEXTS = st.one_of(
    st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{0,6})?", fullmatch=True),
    st.sampled_from(["0", "0.0001", "999999999999999999.9999", "9999999999999999999",
                     "1.", ".5", "1.00000", "00012.30", "+1", "1e3", "", "1.2.3"]),
)


@settings(max_examples=500, deadline=None)
@given(_PRICE_TEXTS, st.sampled_from([44, 38, 110]))
def test_prices_and_quantities_are_read_exactly(text, tag):
    fields = dict([(35, "D"), (11, "c"), (54, "1"), (60, "20240102-03:04:05"), (40, "2")])
    order = FixMessage(list({**fields, tag: text}.items()))
    assert fast_outcome(from_message, order) == outcome(messages._checked_from_message, order)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(10**30), 10**30),
                 st.sampled_from([-(2**63), -(2**63) - 1, 2**63, -1, 0, 10_000, -10_000, 5])))
def test_prices_and_quantities_are_written_exactly(units):
    msg = NewOrderSingle(cl_ord_id="c", side=Side.BUY, transact_time=0, ord_type=OrdType.LIMIT,
                         price=units, order_qty=units)
    kw = {"sender": "S", "target": "T", "seq_num": 3, "sending_time": 0}
    assert fast_outcome(encode_message, msg, **kw) == outcome(
        lambda: messages.encode(msg.MSG_TYPE, messages._checked_to_fields(msg), **kw))


@pytest.mark.parametrize("field", [b"956=x", b"957=x", b"999=x", b"1000=x", b"5001=x",
                                   b"011=x", b"0=x", b"95=1\x0196=x", b"58=a=b", b"58=\xc3\xa9",
                                   b"=x", b"11=", b"11=a\x0111=b", b"448=a\x01448=b"])
@pytest.mark.parametrize("validate", [True, False])
def test_unusual_fields_are_read_alike(field, validate):
    data = frame(HEAD + b"52=20240102-03:04:05\x01" + field + b"\x01")
    assert fast_outcome(decode, data, validate_formats=validate) == outcome(
        checked_decode, data, validate_formats=validate)


@pytest.mark.parametrize("seq", [b"0", b"00", b"01", b"99999999999999999999999", b"-1", b"1a"])
def test_sequence_numbers_are_read_alike(seq):
    data = frame(b"35=0\x0149=C\x0156=V\x0134=" + seq + b"\x0152=20240102-03:04:05\x01")
    assert fast_outcome(decode, data) == outcome(checked_decode, data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_in_a_correct_frame_are_read_alike(body, validate):
    """Arbitrary bytes (any value, SOH and '=' anywhere) inside a correct BodyLength and
    CheckSum: the C scan never crashes, and answers as the checked path does."""
    data = frame(HEAD + b"52=20240102-03:04:05\x01" + body)
    assert fast_outcome(decode, data, validate_formats=validate) == outcome(
        checked_decode, data, validate_formats=validate)
    assert fast_outcome(decode, frame(body)) == outcome(checked_decode, frame(body))


def test_agora_pure_python_selects_the_python_fast_paths():
    """The switch a user (or an A/B benchmark) sets: in a fresh process, no C paths load."""
    code = "from agora.protocols.fix44 import speedups; print(speedups.implementation())"
    env = {**os.environ, "AGORA_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "python"
