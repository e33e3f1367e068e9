"""MoldUDP64: golden bytes from the spec's offsets, codec properties, sender and receiver logic."""

import contextlib
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols.errors import ProtocolError
from agora.protocols.moldudp64 import (
    DownstreamPacket,
    GapDetector,
    Message,
    PacketBuilder,
    ReplayStatus,
    RequestPacket,
    RetransmissionStore,
    decode_packet,
    decode_request,
    encode_packet,
    encode_request,
    end_of_session,
    heartbeat,
)

S = "SESSION001"
S2 = "SESSION002"

# ---------------------------------------------------------------- golden vectors (spec offsets)

# header: 0..9 session, 10..17 sequence u64 BE, 18..19 count u16 BE; blocks: u16 BE length + data
GOLDEN_DATA = (
    b"SESSION001"  # 0  Session (10)
    b"\x01\x02\x03\x04\x05\x06\x07\x08"  # 10 Sequence Number (first message)
    b"\x00\x03"  # 18 Message Count = 3
    b"\x00\x03abc"  # 20 block 0: length 3, "abc"
    b"\x00\x00"  # 25 block 1: length 0 (empty message is legal)
    b"\x00\x02\xff\x00"  # 27 block 2: length 2, binary data
)
GOLDEN_HEARTBEAT = b"SESSION001\x00\x00\x00\x00\x00\x00\x00\x2a\x00\x00"
GOLDEN_END = b"SESSION001\x00\x00\x00\x00\x00\x00\x00\x2a\xff\xff"
GOLDEN_REQUEST = b"ABCDE12345\x00\x00\x00\x00\x00\x01\x00\x00\x01\x00"


def test_golden_data_packet():
    packet = DownstreamPacket(S, 0x0102030405060708, (b"abc", b"", b"\xff\x00"))
    assert len(GOLDEN_DATA) == 31
    assert encode_packet(packet) == GOLDEN_DATA
    assert decode_packet(GOLDEN_DATA) == packet
    assert packet.count == 3 and packet.next_sequence == 0x0102030405060708 + 3


def test_golden_heartbeat_and_end_of_session():
    hb = heartbeat(S, 42)
    assert encode_packet(hb) == GOLDEN_HEARTBEAT and len(GOLDEN_HEARTBEAT) == 20
    assert decode_packet(GOLDEN_HEARTBEAT) == hb
    assert hb.is_heartbeat and hb.count == 0 and hb.next_sequence == 42
    eos = end_of_session(S, 42)
    assert encode_packet(eos) == GOLDEN_END
    assert decode_packet(GOLDEN_END) == eos
    assert eos.end_of_session and eos.count == 0xFFFF and not eos.is_heartbeat


def test_golden_request():
    request = RequestPacket("ABCDE12345", 65536, 256)
    assert encode_request(request) == GOLDEN_REQUEST
    assert decode_request(GOLDEN_REQUEST) == request


# ---------------------------------------------------------------- decode errors

HEADER = b"SESSION001" + b"\x00" * 7 + b"\x01"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (GOLDEN_DATA[:19], "truncated"),
        (HEADER + b"\x00\x02" + b"\x00\x01x", "holds only 1 blocks"),
        (HEADER + b"\x00\x01" + b"\x00", "length field truncated"),
        (HEADER + b"\x00\x01" + b"\x00\x05abc", "runs past the end"),
        (GOLDEN_DATA + b"\x00", "1 trailing bytes"),
        (HEADER + b"\x00\x01" + b"\x00\x01xy", "1 trailing bytes"),
        (GOLDEN_HEARTBEAT + b"\x00\x00", "heartbeat packet has 2 trailing"),
        (GOLDEN_END + b"x", "end of session packet has 1 trailing"),
        (b"SESSION\x00\x01\x02" + GOLDEN_HEARTBEAT[10:], "bad session field"),
        (b"SESSI\xc3\xa9N01" + GOLDEN_HEARTBEAT[10:], "bad session field"),
        (b"SESSION001" + b"\xff" * 8 + b"\x00\x02\x00\x00\x00\x00", "passes 2"),
    ],
)
def test_decode_packet_errors(data, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode_packet(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (GOLDEN_REQUEST[:19], "truncated"),
        (GOLDEN_REQUEST + b"\x00", "1 trailing bytes"),
        (b"\x00" * 10 + GOLDEN_REQUEST[10:], "bad session field"),
    ],
)
def test_decode_request_errors(data, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode_request(data)


@pytest.mark.parametrize(
    "packet",
    [
        DownstreamPacket("SHORT", 1, (b"x",)),
        DownstreamPacket("SESSION\n01", 1, (b"x",)),
        DownstreamPacket(S, -1, (b"x",)),
        DownstreamPacket(S, 2**64, ()),
        DownstreamPacket(S, 2**64 - 1, (b"x", b"y")),
        DownstreamPacket(S, 1, (b"x",), end_of_session=True),
        DownstreamPacket(S, 1, (b"x" * 65536,)),
        DownstreamPacket(S, 1, ("text",)),  # type: ignore[arg-type]
        DownstreamPacket(S, 1, (b"",) * 65535),
    ],
)
def test_encode_packet_refuses(packet):
    with pytest.raises(ProtocolError):
        encode_packet(packet)


def test_encode_request_refuses():
    for request in (RequestPacket(S, 1, 65536), RequestPacket(S, 1, -1), RequestPacket("x", 1, 1)):
        with pytest.raises(ProtocolError):
            encode_request(request)


# ---------------------------------------------------------------- properties

sessions = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=10, max_size=10)


@st.composite
def packets(draw):
    session = draw(sessions)
    kind = draw(st.sampled_from(["data", "heartbeat", "end"]))
    if kind == "data":
        messages = tuple(draw(st.lists(st.binary(max_size=40), min_size=1, max_size=12)))
        seq = draw(st.integers(0, 2**64 - len(messages)))
        return DownstreamPacket(session, seq, messages)
    seq = draw(st.integers(0, 2**64 - 1))
    return DownstreamPacket(session, seq, (), kind == "end")


@given(packets())
def test_packet_round_trip(packet):
    data = encode_packet(packet)
    assert len(data) == 20 + sum(2 + len(m) for m in packet.messages)
    assert decode_packet(data) == packet
    assert encode_packet(decode_packet(data)) == data


@given(sessions, st.integers(0, 2**64 - 1), st.integers(0, 0xFFFF))
def test_request_round_trip(session, seq, count):
    request = RequestPacket(session, seq, count)
    assert decode_request(encode_request(request)) == request


@given(st.binary(max_size=120))
def test_fuzzed_bytes_only_raise_protocol_error(data):
    for decoder in (decode_packet, decode_request):
        with contextlib.suppress(ProtocolError):
            decoder(data)


@given(packets(), st.data())
def test_mutated_packets_only_raise_protocol_error(packet, data):
    raw = bytearray(encode_packet(packet))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw) + 3))
    mutated = bytes(raw[:cut]) + data.draw(st.binary(max_size=3))
    try:
        decoded = decode_packet(mutated)
    except ProtocolError:
        return
    assert encode_packet(decoded) == mutated


# ---------------------------------------------------------------- PacketBuilder


@given(st.lists(st.binary(max_size=60), max_size=80), st.integers(62, 400), st.integers(0, 10**6))
def test_builder_respects_size_limit_and_sequence(payloads, max_payload, first):
    builder = PacketBuilder(S, next_sequence=first, max_payload=max_payload)
    out = builder.pack(payloads)
    assert all(len(encode_packet(p)) <= max_payload for p in out)
    assert all(p.messages for p in out)
    expected = first
    for p in out:
        assert p.sequence == expected
        expected += len(p.messages)
    assert [m for p in out for m in p.messages] == payloads
    assert builder.next_sequence == first + len(payloads)
    # greedy: a packet is closed only when the next message would not have fitted
    for a, b in itertools.pairwise(out):
        assert len(encode_packet(a)) + 2 + len(b.messages[0]) > max_payload


def test_builder_refuses_oversized_message_and_closes_full_packets():
    builder = PacketBuilder(S, max_payload=30)
    with pytest.raises(ProtocolError, match="does not fit"):
        builder.add(b"x" * 9)  # 20 + 2 + 9 = 31 > 30
    assert builder.add(b"x" * 8) == []  # exactly 30 bytes
    [full] = builder.add(b"")
    assert len(encode_packet(full)) == 30 and full.sequence == 1
    assert builder.next_sequence == 3 and builder.pending == 1
    with pytest.raises(ValueError):
        PacketBuilder(S, max_payload=21)


def test_builder_heartbeat_and_end_of_session():
    builder = PacketBuilder(S, next_sequence=10)
    assert builder.heartbeat() == heartbeat(S, 10)
    builder.add(b"a")
    builder.add(b"b")
    assert builder.heartbeat() == heartbeat(S, 10)  # pending messages are not sent yet
    data, eos = builder.end_session()
    assert data == DownstreamPacket(S, 10, (b"a", b"b"))
    assert eos == end_of_session(S, 12)
    assert builder.heartbeat() == eos and builder.ended
    with pytest.raises(ProtocolError, match="ended"):
        builder.add(b"c")


def test_builder_caps_message_count():
    builder = PacketBuilder(S, max_payload=200_000)
    out = builder.pack([b""] * 65535)
    assert [len(p.messages) for p in out] == [65534, 1]
    assert encode_packet(out[0])[18:20] == b"\xff\xfe"


# ---------------------------------------------------------------- RetransmissionStore


def _store(n, **kw):
    store = RetransmissionStore(S, **kw)
    for i in range(1, n + 1):
        assert store.append(b"m%d" % i) == i
    return store


def test_store_serves_what_fits_from_the_requested_sequence():
    store = _store(100, max_payload=20 + 3 * 5)  # 3-byte messages "m1".."m9": 2+2 bytes; later 5
    replay = store.answer(RequestPacket(S, 2, 50))
    assert replay.status is ReplayStatus.SERVED
    [packet] = replay.packets
    assert packet.sequence == 2 and packet.messages[0] == b"m2"
    assert len(encode_packet(packet)) <= store.max_payload
    assert len(packet.messages) < 50


def test_store_clips_to_what_was_sent_and_to_the_count():
    store = _store(10)
    assert store.answer(RequestPacket(S, 8, 100)).packets == (
        DownstreamPacket(S, 8, (b"m8", b"m9", b"m10")),
    )
    assert store.answer(RequestPacket(S, 3, 2)).packets == (DownstreamPacket(S, 3, (b"m3", b"m4")),)


def test_store_invalid_requests_have_their_own_outcome():
    store = _store(10, capacity=5)
    assert (store.oldest, store.next_sequence) == (6, 11)
    cases = [
        (RequestPacket(S2, 7, 1), ReplayStatus.WRONG_SESSION),
        (RequestPacket(S, 7, 0), ReplayStatus.EMPTY),
        (RequestPacket(S, 5, 3), ReplayStatus.EXPIRED),  # 5 evicted, even though 6, 7 remain
        (RequestPacket(S, 11, 1), ReplayStatus.NOT_SENT),
        (RequestPacket(S, 2**64 - 1, 1), ReplayStatus.NOT_SENT),
    ]
    for request, status in cases:
        replay = store.answer(request)
        assert replay.status is status and replay.packets == ()
        assert (replay.oldest, replay.next_sequence) == (6, 11)
    assert store.answer(RequestPacket(S, 6, 1)).status is ReplayStatus.SERVED


def test_store_multiple_packets_and_record():
    store = RetransmissionStore(S, max_payload=30, max_packets_per_request=3)
    builder = PacketBuilder(S, max_payload=30)
    for packet in builder.pack([b"abc"] * 10):
        store.record(packet)
    store.record(builder.heartbeat())
    replay = store.answer(RequestPacket(S, 1, 10))
    assert [len(p.messages) for p in replay.packets] == [2, 2, 2]  # 20 + 5 + 5 = 30 fits
    assert [p.sequence for p in replay.packets] == [1, 3, 5]
    with pytest.raises(ProtocolError, match="expects 11"):
        store.record(DownstreamPacket(S, 5, (b"x",)))
    with pytest.raises(ProtocolError, match="session"):
        store.record(DownstreamPacket(S2, 11, (b"x",)))
    with pytest.raises(ProtocolError, match="never be replayed"):
        store.append(b"x" * 9)


# ---------------------------------------------------------------- GapDetector


def _seqs(result):
    return [m.sequence for m in result.messages]


def test_detector_in_order_and_duplicates():
    det = GapDetector(S)
    r = det.on_packet(DownstreamPacket(S, 1, (b"a", b"b")))
    assert r.messages == [Message(1, b"a"), Message(2, b"b")] and r.requests == []
    assert det.on_packet(DownstreamPacket(S, 1, (b"a", b"b"))).messages == []
    assert det.duplicates == 2
    assert _seqs(det.on_packet(DownstreamPacket(S, 2, (b"b", b"c")))) == [3]
    assert det.next_sequence == 4


def test_detector_gap_request_and_fill():
    det = GapDetector(S)
    r = det.on_packet(DownstreamPacket(S, 5, (b"e",)))
    assert r.messages == [] and r.requests == [RequestPacket(S, 1, 4)]
    assert det.gaps() == [(1, 5)] and det.buffered == 1
    assert det.on_packet(DownstreamPacket(S, 6, (b"f",))).requests == []  # already asked
    r = det.on_packet(DownstreamPacket(S, 1, (b"a", b"b", b"c", b"d")))
    assert _seqs(r) == [1, 2, 3, 4, 5, 6] and r.requests == []
    assert det.gaps() == [] and det.retry() == []


def test_detector_splits_requests_and_skips_buffered():
    det = GapDetector(S, max_request_count=3)
    det.on_packet(DownstreamPacket(S, 5, (b"e",)))  # 1..4 missing
    r = det.on_packet(DownstreamPacket(S, 12, (b"l",)))  # 6..11 missing
    assert r.requests == [RequestPacket(S, 6, 3), RequestPacket(S, 9, 3)]
    assert det.retry() == [
        RequestPacket(S, 1, 3),
        RequestPacket(S, 4, 1),
        RequestPacket(S, 6, 3),
        RequestPacket(S, 9, 3),
    ]


def test_detector_heartbeat_reveals_tail_gap_and_end_of_session():
    det = GapDetector(S)
    det.on_packet(DownstreamPacket(S, 1, (b"a",)))
    r = det.on_packet(heartbeat(S, 4))
    assert r.requests == [RequestPacket(S, 2, 2)]
    assert det.on_packet(heartbeat(S, 3)).requests == []  # stale heartbeat
    r = det.on_packet(end_of_session(S, 4))
    assert r.end_of_session and r.requests == [] and det.ended and not det.complete
    det.on_packet(DownstreamPacket(S, 2, (b"b", b"c")))
    assert det.complete


def test_detector_rerequests_rest_of_a_truncated_reply():
    det = GapDetector(S)
    assert det.on_packet(DownstreamPacket(S, 10, (b"j",))).requests == [RequestPacket(S, 1, 9)]
    r = det.on_packet(DownstreamPacket(S, 1, (b"a", b"b", b"c")))  # reply cut to fit
    assert _seqs(r) == [1, 2, 3] and r.requests == [RequestPacket(S, 4, 6)]


def test_detector_request_window():
    det = GapDetector(S, request_window=5, max_request_count=100)
    r = det.on_packet(heartbeat(S, 2**63))
    assert r.requests == [RequestPacket(S, 1, 5)]
    r = det.on_packet(DownstreamPacket(S, 1, (b"a", b"b")))
    # 1..5 were asked at once, so a packet 1..2 looks like a cut reply: 3..5 again; and the
    # window slides with delivery: 6..7 now
    assert r.requests == [RequestPacket(S, 3, 3), RequestPacket(S, 6, 2)]


def test_detector_session_change_and_join_live():
    det = GapDetector(None, next_sequence=None)
    r = det.on_packet(DownstreamPacket(S, 100, (b"x",)))
    assert _seqs(r) == [100] and r.requests == [] and det.session == S
    r = det.on_packet(DownstreamPacket(S2, 1, (b"y",)))
    assert r.foreign_session == S2 and r.messages == [] and det.next_sequence == 101
    det.reset(S2)
    assert _seqs(det.on_packet(DownstreamPacket(S2, 1, (b"y",)))) == [1]


# ---------------------------------------------------------------- recovery under a faulty network


@given(
    payloads=st.lists(st.binary(max_size=24), max_size=60),
    max_payload=st.integers(46, 160),
    max_request=st.integers(1, 8),
    faults=st.integers(0, 150),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=150, deadline=None)
def test_detector_delivers_everything_once_in_order(
    payloads, max_payload, max_request, faults, seed
):
    rng = random.Random(seed)
    builder = PacketBuilder(S, max_payload=max_payload)
    store = RetransmissionStore(S, max_payload=max_payload, max_packets_per_request=2)
    network: list[bytes] = []
    for payload in payloads:
        for packet in builder.add(payload):
            store.record(packet)
            network.append(encode_packet(packet))
        if rng.random() < 0.1:
            network.append(encode_packet(builder.heartbeat()))
    for packet in builder.end_session():
        store.record(packet)
        network.append(encode_packet(packet))
    eos = encode_packet(builder.heartbeat())

    detector = GapDetector(S, max_request_count=max_request)
    delivered = []

    def send(requests):
        for request in requests:
            replay = store.answer(decode_request(encode_request(request)))
            assert replay.status is ReplayStatus.SERVED
            network.extend(encode_packet(p) for p in replay.packets)

    for _ in range(100_000):
        if detector.complete:
            break
        if not network:  # the timers fire: sender repeats End of Session, receiver re-requests
            network.append(eos)
            send(detector.retry())
            continue
        raw = network.pop(rng.randrange(len(network)) if faults else 0)
        if faults:
            faults -= 1
            roll = rng.random()
            if roll < 0.25:
                continue  # lost
            if roll < 0.4:
                network.insert(rng.randrange(len(network) + 1), raw)  # duplicated
        result = detector.on_packet(decode_packet(raw))
        delivered.extend(result.messages)
        send(result.requests)
    assert detector.complete
    assert [m.sequence for m in delivered] == list(range(1, len(payloads) + 1))
    assert [m.payload for m in delivered] == payloads
