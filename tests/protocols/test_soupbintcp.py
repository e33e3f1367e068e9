"""SoupBinTCP 4.00: golden bytes from the spec's offsets, codec properties, the stream framer."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols.errors import ProtocolError
from agora.protocols.soupbintcp import (
    ClientHeartbeat,
    Debug,
    EndOfSession,
    LoginAccepted,
    LoginRejected,
    LoginRequest,
    LogoutRequest,
    RejectReason,
    SequencedData,
    ServerHeartbeat,
    SoupFramer,
    SoupStreamError,
    UnsequencedData,
    decode,
    encode,
)

# ---------------------------------------------------------------- golden vectors (spec offsets)

# offset 0: Packet Length (u16 BE, bytes after it); offset 2: Packet Type; offset 3: payload
GOLDEN = [
    (Debug("host1"), b"\x00\x06+host1"),
    (
        LoginAccepted("ABC", 1234),
        b"\x00\x1f"  # 0  length 31
        b"A"  # 2  type
        b"       ABC"  # 3  session (10), left-padded with spaces
        b"                1234",  # 13 sequence number (20), ASCII, left-padded with spaces
    ),
    (LoginRejected(RejectReason.NOT_AUTHORIZED), b"\x00\x02JA"),
    (LoginRejected(RejectReason.SESSION_NOT_AVAILABLE), b"\x00\x02JS"),
    (SequencedData(b"\x00OUCH\n"), b"\x00\x07S\x00OUCH\n"),
    (UnsequencedData(b"\xff\x01"), b"\x00\x03U\xff\x01"),
    (ServerHeartbeat(), b"\x00\x01H"),
    (EndOfSession(), b"\x00\x01Z"),
    (
        LoginRequest("user", "secret", "", 1),
        b"\x00\x2f"  # 0  length 47
        b"L"  # 2  type
        b"user  "  # 3  username (6), right-padded
        b"secret    "  # 9  password (10), right-padded
        b"          "  # 19 requested session (10): all spaces = current session
        b"                   1",  # 29 requested sequence number (20), left-padded (unverified)
    ),
    (ClientHeartbeat(), b"\x00\x01R"),
    (LogoutRequest(), b"\x00\x01O"),
    (SequencedData(b""), b"\x00\x01S"),
    (Debug(""), b"\x00\x01+"),
    (Debug("a\tb\n"), b"\x00\x05+a\tb\n"),
]


@pytest.mark.parametrize(("packet", "wire"), GOLDEN, ids=lambda x: type(x).__name__)
def test_golden(packet, wire):
    assert encode(packet) == wire
    assert decode(wire) == packet


def test_golden_sizes_match_the_spec_table():
    sizes = {type(p): len(w) for p, w in GOLDEN}
    assert sizes[LoginAccepted] == 33 and sizes[LoginRejected] == 4 and sizes[LoginRequest] == 49
    for kind in (ServerHeartbeat, EndOfSession, ClientHeartbeat, LogoutRequest):
        assert sizes[kind] == 3


def test_login_request_right_padding_option_and_tolerant_decode():
    right = (
        b"\x00\x2fL"
        b"ab    "  # username
        b"pw        "  # password
        b"SESS1     "  # session, right-padded
        b"42                  "  # sequence, right-padded
    )
    packet = LoginRequest("ab", "pw", "SESS1", 42)
    assert encode(packet, login_padding="right") == right
    assert decode(right) == packet
    left = b"\x00\x2fLab    pw             SESS1                  42"
    assert encode(packet) == left and decode(left) == packet


def test_decode_accepts_leading_zeros_and_zero_sequence():
    wire = b"\x00\x1fASESSION00100000000000000000007"
    assert decode(wire) == LoginAccepted("SESSION001", 7)
    login = b"\x00\x2fLu     p                                      0"
    assert decode(login).sequence == 0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "truncated"),
        (b"\x00", "truncated"),
        (b"\x00\x00", "length 0"),
        (b"\x00\x02H", "says 2 bytes but 1 follow"),
        (b"\x00\x01HH", "says 1 bytes but 2 follow"),
        (b"\x00\x02HX", "ServerHeartbeat packet has 1 payload bytes"),
        (b"\x00\x02ZX", "EndOfSession"),
        (b"\x00\x02RX", "ClientHeartbeat"),
        (b"\x00\x02OX", "LogoutRequest"),
        (b"\x00\x01Q", "unknown packet type"),
        (b"\x00\x02JX", "unknown login reject code"),
        (b"\x00\x01J", "login rejected payload is 0 bytes"),
        (b"\x00\x03JAS", "login rejected payload is 2 bytes"),
        (b"\x00\x1eA" + b" " * 29, "login accepted payload is 29 bytes"),
        (b"\x00\x1fA" + b"       ABC" + b" " * 20, "not space-padded ASCII digits"),
        (b"\x00\x1fA" + b"       ABC" + b" " * 18 + b"1x", "not space-padded ASCII digits"),
        (b"\x00\x1fA" + b"       ABC" + b"  1 2" + b" " * 15, "not space-padded ASCII digits"),
        (b"\x00\x1fA" + b"       \xc3\xa9C" + b" " * 19 + b"1", "session .* not printable"),
        (b"\x00\x30L" + b" " * 47, "login request payload is 47 bytes"),
        (b"\x00\x2fL" + b"us\x00   " + b" " * 39 + b"1", "username .* not printable"),
        (b"\x00\x03+\x80a", "debug text .* not ASCII"),
    ],
)
def test_decode_errors(wire, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(wire)


def test_decode_by_sender():
    assert decode(b"\x00\x01H", sender="server") == ServerHeartbeat()
    assert decode(b"\x00\x02UA", sender="client") == UnsequencedData(b"A")
    assert decode(b"\x00\x02UA", sender="server") == UnsequencedData(b"A")
    with pytest.raises(ProtocolError, match="not sent by the client"):
        decode(b"\x00\x01H", sender="client")
    with pytest.raises(ProtocolError, match="not sent by the server"):
        decode(b"\x00\x01R", sender="server")


@pytest.mark.parametrize(
    "packet",
    [
        LoginRequest("toolong", "pw"),
        LoginRequest("u", "p" * 11),
        LoginRequest(" u", "pw"),
        LoginRequest("u", "pw "),
        LoginRequest("u", "pw", "ELEVENCHARS"),
        LoginRequest("u", "pw", "", -1),
        LoginRequest("u", "pw", "", 10**20),
        LoginRequest("ü", "pw"),
        LoginAccepted("ABC", True),
        LoginRejected("X"),  # type: ignore[arg-type]
        Debug("caf\u00e9"),
        SequencedData("text"),  # type: ignore[arg-type]
        SequencedData(b"x" * 65535),
    ],
)
def test_encode_refuses(packet):
    with pytest.raises(ProtocolError):
        encode(packet)


def test_encode_refuses_foreign_objects_and_bad_padding():
    with pytest.raises(ProtocolError, match="not a SoupBinTCP packet"):
        encode("S")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="login_padding"):
        encode(LoginRequest("u", "p"), login_padding="middle")  # type: ignore[arg-type]


def test_largest_packet():
    wire = encode(SequencedData(b"x" * 65534))
    assert wire[:3] == b"\xff\xffS" and decode(wire) == SequencedData(b"x" * 65534)


# ---------------------------------------------------------------- properties

field_chars = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def field(width):
    return st.text(field_chars, max_size=width).filter(lambda s: s == s.strip(" "))


sequences = st.integers(0, 10**20 - 1)
packets = st.one_of(
    st.builds(Debug, st.text(st.characters(max_codepoint=0x7F), max_size=60)),
    st.builds(LoginAccepted, field(10), sequences),
    st.builds(LoginRejected, st.sampled_from(RejectReason)),
    st.builds(SequencedData, st.binary(max_size=80)),
    st.builds(UnsequencedData, st.binary(max_size=80)),
    st.builds(LoginRequest, field(6), field(10), field(10), sequences),
    st.sampled_from([ServerHeartbeat(), EndOfSession(), ClientHeartbeat(), LogoutRequest()]),
)


@given(packets, st.sampled_from(["left", "right"]))
def test_round_trip(packet, padding):
    wire = encode(packet, login_padding=padding)
    assert int.from_bytes(wire[:2], "big") == len(wire) - 2
    assert decode(wire) == packet


@given(st.binary(max_size=80))
def test_fuzzed_bytes_only_raise_protocol_error(data):
    try:
        packet = decode(data)
    except ProtocolError:
        return
    assert decode(encode(packet)) == packet


@given(st.sampled_from(b"+AJSUHZLRO"), st.binary(max_size=60))
def test_fuzzed_payloads_only_raise_protocol_error(kind, payload):
    body = bytes([kind]) + payload
    with contextlib.suppress(ProtocolError):
        decode(len(body).to_bytes(2, "big") + body)


# ---------------------------------------------------------------- framer

STREAM_PACKETS = [p for p, _ in GOLDEN]
STREAM = b"".join(w for _, w in GOLDEN)


def test_framer_split_at_every_boundary():
    for cut in range(len(STREAM) + 1):
        framer = SoupFramer()
        got = framer.feed(STREAM[:cut]) + framer.feed(STREAM[cut:])
        assert got == STREAM_PACKETS, cut
        assert framer.buffered == 0
        framer.close()


def test_framer_split_at_every_pair_of_boundaries():
    n = len(STREAM)
    for i in range(n + 1):
        for j in range(i, n + 1):
            framer = SoupFramer()
            got = framer.feed(STREAM[:i]) + framer.feed(STREAM[i:j]) + framer.feed(STREAM[j:])
            assert got == STREAM_PACKETS, (i, j)


def test_framer_byte_by_byte():
    framer = SoupFramer()
    got = []
    for i in range(len(STREAM)):
        got += framer.feed(STREAM[i : i + 1])
    assert got == STREAM_PACKETS


@given(st.lists(packets, max_size=12), st.data())
@settings(max_examples=100)
def test_framer_any_chunking_gives_the_same_packets(sent, data):
    stream = b"".join(encode(p) for p in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = SoupFramer()
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += framer.feed(stream[a:b])
    framer.close()
    assert got == sent


@given(st.lists(st.binary(max_size=20), max_size=8), st.integers(1, 0xFFFF))
def test_framer_fuzz_only_raises_protocol_error(chunks, max_length):
    framer = SoupFramer(max_packet_length=max_length)
    try:
        for chunk in chunks:
            framer.feed(chunk)
        framer.close()
    except ProtocolError:
        pass


def test_framer_refuses_zero_length_and_keeps_earlier_packets():
    framer = SoupFramer()
    with pytest.raises(SoupStreamError, match="length 0") as caught:
        framer.feed(b"\x00\x01H\x00\x00\x00\x01H")
    assert caught.value.packets == [ServerHeartbeat()] and caught.value.fatal
    with pytest.raises(SoupStreamError, match="already failed"):
        framer.feed(b"\x00\x01H")
    with pytest.raises(ProtocolError):
        framer.close()


def test_framer_refuses_oversized_length_before_the_body_arrives():
    framer = SoupFramer(max_packet_length=100)
    assert framer.feed(b"\x00\x64S" + b"x" * 99) == [SequencedData(b"x" * 99)]
    with pytest.raises(SoupStreamError, match="101"):
        framer.feed(b"\x00\x65")  # only the length field: refused at once
    with pytest.raises(ValueError):
        SoupFramer(max_packet_length=0)


def test_framer_recovers_after_a_bad_packet_body():
    framer = SoupFramer(sender="client")
    with pytest.raises(SoupStreamError, match="not sent by the client") as caught:
        framer.feed(b"\x00\x01R\x00\x01H\x00\x01O\x00")
    assert caught.value.packets == [ClientHeartbeat()] and not caught.value.fatal
    assert framer.feed(b"") == [LogoutRequest()]
    assert framer.feed(b"\x01R") == [ClientHeartbeat()]
    framer.close()


def test_framer_reports_truncated_stream_at_close():
    for tail in (b"\x00", b"\x00\x05Sab"):
        framer = SoupFramer()
        assert framer.feed(b"\x00\x01H" + tail) == [ServerHeartbeat()]
        assert framer.buffered == len(tail)
        with pytest.raises(ProtocolError, match=f"{len(tail)} bytes left over"):
            framer.close()
