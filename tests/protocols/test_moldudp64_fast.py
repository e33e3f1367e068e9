"""MoldUDP64 sender fast paths against their checked references: same bytes, packets, state.

``encode_packet`` against ``encode_packet_checked``; ``PacketBuilder.pack`` against a loop of
``add`` then ``flush`` on a twin builder; ``RetransmissionStore.record`` against a loop of
``append`` on a twin store. Inputs mix what the publisher sends with every kind of bad value.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols import moldudp64
from agora.protocols.errors import ProtocolError
from agora.protocols.moldudp64 import (
    MAX_SEQUENCE,
    DownstreamPacket,
    encode_packet,
    encode_packet_checked,
)
from agora.protocols.moldudp64_sender import PacketBuilder, RetransmissionStore

S = "SESSION001"
moldudp64._check_session(S)  # known: the fast path answers for it


def outcome(fn, *args):
    """("ok", result) or ("raised", type, text)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # any type: the fast path must raise what the checked one raises
        return ("raised", type(exc), str(exc))


_PAYLOADS = st.one_of(
    st.binary(max_size=60),
    st.binary(max_size=6).map(bytearray),
    st.binary(max_size=6).map(memoryview),
    st.sampled_from([b"x" * 0xFFFF, b"x" * 0x10000, b"x" * 1400, "text", None, 7]),
)
_SESSIONS = st.sampled_from([S, "SESSION002", "SHORT", "SESSIÖN001", "SESSION\x01\x02\x03", None,
                             7, ["SESSION001"]])
_SEQUENCES = st.one_of(
    st.integers(0, 10**6),
    st.sampled_from([-1, True, 1.0, None, MAX_SEQUENCE, MAX_SEQUENCE - 1, MAX_SEQUENCE + 1]),
)


@st.composite
def _packets(draw):
    """A packet as the publisher sends them, often with one part spoiled."""
    fields = {"session": S, "sequence": draw(st.integers(0, 10**6)),
              "messages": draw(st.lists(st.binary(max_size=40), max_size=4)), "end": False}
    spoil = draw(st.sampled_from([None, "session", "sequence", "messages", "message", "end"]))
    if spoil == "session":
        fields["session"] = draw(_SESSIONS)
    elif spoil == "sequence":
        fields["sequence"] = draw(_SEQUENCES)
    elif spoil == "messages":
        fields["messages"] = draw(st.sampled_from([b"ab", None, "ab"]))
    elif spoil == "message" and fields["messages"]:
        fields["messages"][draw(st.integers(0, len(fields["messages"]) - 1))] = draw(_PAYLOADS)
    elif spoil == "end":
        fields["end"] = draw(st.sampled_from([True, 1, 0]))
    messages = fields["messages"]
    if isinstance(messages, list) and draw(st.integers(0, 9)) != 0:
        messages = tuple(messages)  # what packets hold; sometimes a list
    return DownstreamPacket(fields["session"], fields["sequence"], messages, fields["end"])


@settings(max_examples=600, deadline=None)
@given(_packets())
def test_encode_packet_as_checked(packet):
    assert outcome(encode_packet, packet) == outcome(encode_packet_checked, packet)


def test_encode_packet_answers_builder_packets_itself(monkeypatch):
    builder = PacketBuilder(S, max_payload=100)
    packets = [*builder.pack([b"abc" * i for i in range(20)]), builder.heartbeat()]
    expected = [encode_packet_checked(p) for p in packets]
    monkeypatch.setattr(moldudp64, "encode_packet_checked", None)  # any fallback would fail
    assert [encode_packet(p) for p in packets] == expected


def test_encode_packet_message_count_limit():
    many = DownstreamPacket(S, 1, (b"",) * 0xFFFF)
    assert outcome(encode_packet, many) == outcome(encode_packet_checked, many)


# ------------------------------------------------------------------------------ builder


def _builder_state(b: PacketBuilder):
    return (b.next_sequence, b.pending, b._pending, b._pending_size, b.ended)


def _packed_by_add(builder: PacketBuilder, payloads):
    out = []
    for payload in payloads:
        out.extend(builder.add(payload))
    last = builder.flush()
    if last is not None:
        out.append(last)
    return out


@settings(max_examples=400, deadline=None)
@given(
    batches=st.lists(st.lists(_PAYLOADS, max_size=12), min_size=1, max_size=4),
    max_payload=st.sampled_from([22, 23, 30, 64, 200, 1400]),
    start=st.sampled_from([1, 1000, MAX_SEQUENCE - 3, MAX_SEQUENCE]),
    as_iterator=st.booleans(),
    ended=st.booleans(),
)
def test_pack_as_add_then_flush(batches, max_payload, start, as_iterator, ended):
    fast = PacketBuilder(S, next_sequence=start, max_payload=max_payload)
    plain = PacketBuilder(S, next_sequence=start, max_payload=max_payload)
    if ended:
        fast.end_session()
        plain.end_session()
    for batch in batches:
        given_fast = iter(batch) if as_iterator else list(batch)
        assert outcome(fast.pack, given_fast) == outcome(_packed_by_add, plain, list(batch))
        assert _builder_state(fast) == _builder_state(plain)


def test_pack_splits_at_the_message_count_limit():
    fast, plain = PacketBuilder(S, max_payload=1 << 20), PacketBuilder(S, max_payload=1 << 20)
    payloads = [b""] * (0xFFFE + 3)
    assert fast.pack(payloads) == _packed_by_add(plain, payloads)
    assert [len(p.messages) for p in fast.pack(payloads)] == [0xFFFE, 3]


# ------------------------------------------------------------------------------ store


def _store_state(s: RetransmissionStore):
    return (s.oldest, s.next_sequence, list(s._messages))


def _recorded_by_append(store: RetransmissionStore, packet: DownstreamPacket):
    """``record`` as it was: its packet checks, then ``append`` per message."""
    if packet.session != store.session:
        raise ProtocolError(f"packet of session {packet.session!r}, store is {store.session!r}")
    if packet.messages and packet.sequence != store.next_sequence:
        raise ProtocolError(
            f"packet starts at {packet.sequence}, the store expects {store.next_sequence}"
        )
    for payload in packet.messages:
        store.append(payload)


@settings(max_examples=400, deadline=None)
@given(
    packets=st.lists(st.tuples(st.sampled_from([S, "SESSION002"]), st.integers(-1, 2),
                               st.lists(_PAYLOADS, max_size=6)), max_size=6),
    capacity=st.sampled_from([1, 3, 1000]),
    max_payload=st.sampled_from([22, 30, 1400]),
)
def test_record_as_append_per_message(packets, capacity, max_payload):
    fast = RetransmissionStore(S, capacity=capacity, max_payload=max_payload)
    plain = RetransmissionStore(S, capacity=capacity, max_payload=max_payload)
    for session, offset, messages in packets:
        packet = DownstreamPacket(session, fast.next_sequence + offset, tuple(messages))
        assert outcome(fast.record, packet) == outcome(_recorded_by_append, plain, packet)
        assert _store_state(fast) == _store_state(plain)
