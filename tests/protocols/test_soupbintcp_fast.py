"""SoupBinTCP fast paths against their plain counterparts: same bytes, packets, errors, state.

``sequenced_packets`` against ``encode(SequencedData(m))`` per message; ``SoupFramer.feed``
against ``SoupFramer.feed_checked`` on random streams (valid packets of every type, bad types,
bad content, bad lengths) cut at random points, for every sender and several length limits.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols.soupbintcp import (
    MAX_PACKET_LENGTH,
    SequencedData,
    SoupFramer,
    SoupStreamError,
    encode,
    sequenced_packets,
)


def outcome(fn, *args):
    """("ok", result) or ("raised", type, text, packets carried, fatal)."""
    try:
        result = fn(*args)
    except Exception as exc:  # any type: the fast path must raise what the plain one raises
        return ("raised", type(exc), str(exc), getattr(exc, "packets", None),
                getattr(exc, "fatal", None))
    return ("ok", result)


def plain_sequenced(messages):
    return [encode(SequencedData(m)) for m in messages]


_MESSAGES = st.one_of(
    st.binary(max_size=40),
    st.binary(max_size=8).map(bytearray),
    st.binary(max_size=8).map(memoryview),
    st.sampled_from([b"x" * (MAX_PACKET_LENGTH - 1), b"x" * MAX_PACKET_LENGTH, "text", None, 7]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_MESSAGES, max_size=6))
def test_sequenced_packets_as_encode_per_message(messages):
    assert outcome(sequenced_packets, messages) == outcome(plain_sequenced, messages)


def test_sequenced_packets_takes_any_iterable():
    messages = [b"A", b"", b"BC"]
    assert sequenced_packets(iter(messages)) == plain_sequenced(messages)
    assert sequenced_packets([]) == []


# ------------------------------------------------------------------------------ framer


def _packet(kind: bytes, payload: bytes) -> bytes:
    return (len(payload) + 1).to_bytes(2, "big") + kind + payload


_LOGIN = b"user  secret              " + b" " * 19 + b"1"
_ACCEPTED = b"   SESSION" + b" " * 19 + b"7"
_PACKETS = st.one_of(
    st.builds(_packet, st.sampled_from([b"S", b"U"]), st.binary(max_size=30)),
    st.sampled_from([
        _packet(b"H", b""), _packet(b"Z", b""), _packet(b"R", b""), _packet(b"O", b""),
        _packet(b"+", b"debug text"), _packet(b"+", b"\xff"), _packet(b"L", _LOGIN),
        _packet(b"A", _ACCEPTED), _packet(b"J", b"A"), _packet(b"J", b"X"),
        _packet(b"H", b"extra"), _packet(b"Q", b""), _packet(b"L", b"short"),
        b"\x00\x00", b"\xff\xff" + b"x" * 10, b"\x00\x05S",  # bad lengths, a truncated tail
    ]),
    st.binary(min_size=1, max_size=12),  # anything
)


@settings(max_examples=400, deadline=None)
@given(
    packets=st.lists(_PACKETS, max_size=8),
    cuts=st.lists(st.integers(0, 400), max_size=6),
    sender=st.sampled_from([None, "client", "server"]),
    limit=st.sampled_from([MAX_PACKET_LENGTH, 40, 3, 1]),
    wrap=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_feed_as_feed_checked(packets, cuts, sender, limit, wrap):
    stream = b"".join(packets)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)] + [b""]
    fast = SoupFramer(sender=sender, max_packet_length=limit)
    plain = SoupFramer(sender=sender, max_packet_length=limit)
    for chunk in chunks:
        assert outcome(fast.feed, wrap(chunk)) == outcome(plain.feed_checked, wrap(chunk))
        assert fast.buffered == plain.buffered
        assert outcome(fast.feed, b"") == outcome(plain.feed_checked, b"")  # after an error too
    assert outcome(fast.close) == outcome(plain.close)


def test_feed_of_a_wrong_type_raises_as_feed_checked():
    for data in ("text", None, 5):
        assert outcome(SoupFramer().feed, data) == outcome(SoupFramer().feed_checked, data)


def test_feed_parses_a_whole_read_in_place_and_keeps_a_partial_tail():
    framer = SoupFramer(sender="client")
    packets = framer.feed(_packet(b"U", b"one") + _packet(b"U", b"two")[:3])
    assert [p.message for p in packets] == [b"one"]
    assert framer.buffered == 3
    assert [p.message for p in framer.feed(b"two")] == [b"two"]
    assert framer.buffered == 0
    with pytest.raises(SoupStreamError, match="not sent by the client"):
        framer.feed(_packet(b"S", b"x"))
