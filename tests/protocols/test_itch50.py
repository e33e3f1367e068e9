"""NASDAQ TotalView-ITCH 5.0 codec: golden vectors (spec offsets), properties, fuzz, framing."""

from __future__ import annotations

import contextlib
import gzip
import io
from typing import Any, get_type_hints

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.protocols import itch50
from agora.protocols.errors import ProtocolError
from agora.protocols.itch50 import (
    MESSAGE_CLASSES,
    MESSAGE_LENGTHS,
    AddOrder,
    AddOrderMpid,
    BrokenTrade,
    CrossTrade,
    DlcrPriceDiscovery,
    IpoQuotingPeriodUpdate,
    ItchError,
    LuldAuctionCollar,
    MarketParticipantPosition,
    MwcbDeclineLevel,
    MwcbStatus,
    NetOrderImbalance,
    OperationalHalt,
    OrderCancel,
    OrderDelete,
    OrderExecuted,
    OrderExecutedWithPrice,
    OrderReplace,
    RegShoRestriction,
    RetailPriceImprovement,
    StockDirectory,
    StockTradingAction,
    SystemEvent,
    Trade,
    decode,
    decode_reference,
    encode,
    encode_reference,
    iter_file_messages,
    write_file_records,
)
from agora.protocols.itch50_messages import Wire

# --- hand-written wire helpers (independent of the codec) ------------------------------------


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def u32(v: int) -> bytes:
    return v.to_bytes(4, "big")


def u64(v: int) -> bytes:
    return v.to_bytes(8, "big")


def ts6(v: int) -> bytes:
    return v.to_bytes(6, "big")


LOC = 0x0102  # stock locate
TRK = 0x0304  # tracking number
TS = 34_200_123_456_789  # 09:30:00.123456789 in ns since midnight = 0x1F1A_D635_BD15
TS_BYTES = b"\x1f\x1a\xd6\x35\xbd\x15"
assert ts6(TS) == TS_BYTES


def hdr(t: bytes, locate: int = LOC) -> bytes:
    """Offsets 0-10: type, stock locate, tracking number, 6-byte timestamp."""
    return t + u16(locate) + u16(TRK) + TS_BYTES


# Spec section 2 table, typed in by hand.
SPEC_LENGTHS = {
    "S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21,
    "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19,
    "I": 50, "N": 20, "O": 48,
}  # fmt: skip

# fmt: off
GOLDEN: list[tuple[Any, bytes]] = [
    (
        SystemEvent(0, TRK, TS, event_code="O"),
        hdr(b"S", 0) + b"O",
    ),
    (
        StockDirectory(
            LOC, TRK, TS, stock="AAPL", market_category="Q", financial_status_indicator="N",
            round_lot_size=100, round_lots_only="N", issue_classification="C", issue_sub_type="Z",
            authenticity="P", short_sale_threshold_indicator="N", ipo_flag=" ",
            luld_reference_price_tier="1", etp_flag="Y", etp_leverage_factor=3,
            inverse_indicator="Y",
        ),
        hdr(b"R") + b"AAPL    " + b"Q" + b"N" + u32(100) + b"N" + b"C" + b"Z " + b"P" + b"N"
        + b" " + b"1" + b"Y" + u32(3) + b"Y",
    ),
    (
        StockTradingAction(
            LOC, TRK, TS, stock="BRK.A", trading_state="H", reserved=" ", reason="T1"
        ),
        hdr(b"H") + b"BRK.A   " + b"H" + b" " + b"T1  ",
    ),
    (
        RegShoRestriction(LOC, TRK, TS, stock="MSFT", reg_sho_action="1"),
        hdr(b"Y") + b"MSFT    " + b"1",
    ),
    (
        MarketParticipantPosition(
            LOC, TRK, TS, mpid="GSCO", stock="AAPL", primary_market_maker="Y",
            market_maker_mode="N", market_participant_state="A",
        ),
        hdr(b"L") + b"GSCO" + b"AAPL    " + b"Y" + b"N" + b"A",
    ),
    (
        MwcbDeclineLevel(
            0, TRK, TS, level_1=3_512_345_000_000, level_2=3_231_357_400_000,
            level_3=2_809_876_000_000,
        ),
        hdr(b"V", 0) + u64(3_512_345_000_000) + u64(3_231_357_400_000) + u64(2_809_876_000_000),
    ),
    (
        MwcbStatus(0, TRK, TS, breached_level="2"),
        hdr(b"W", 0) + b"2",
    ),
    (
        IpoQuotingPeriodUpdate(
            0, TRK, TS, stock="NEWCO", ipo_quotation_release_time=41_400,
            ipo_quotation_release_qualifier="A", ipo_price=170_000,
        ),
        hdr(b"K", 0) + b"NEWCO   " + u32(41_400) + b"A" + u32(170_000),
    ),
    (
        LuldAuctionCollar(
            LOC, TRK, TS, stock="TSLA", auction_collar_reference_price=2_500_000,
            upper_auction_collar_price=2_625_000, lower_auction_collar_price=2_375_000,
            auction_collar_extension=2,
        ),
        hdr(b"J") + b"TSLA    " + u32(2_500_000) + u32(2_625_000) + u32(2_375_000) + u32(2),
    ),
    (
        OperationalHalt(LOC, TRK, TS, stock="QQQ", market_code="B", operational_halt_action="H"),
        hdr(b"h") + b"QQQ     " + b"B" + b"H",
    ),
    (
        AddOrder(
            LOC, TRK, TS, order_reference_number=0x0102030405060708, buy_sell_indicator="B",
            shares=100, stock="AAPL", price=1_923_400,
        ),
        hdr(b"A") + u64(0x0102030405060708) + b"B" + u32(100) + b"AAPL    " + u32(1_923_400),
    ),
    (
        AddOrderMpid(
            LOC, TRK, TS, order_reference_number=987_654_321, buy_sell_indicator="S",
            shares=2_500, stock="ZVZZT", price=100_000, attribution="NSDQ",
        ),
        hdr(b"F") + u64(987_654_321) + b"S" + u32(2_500) + b"ZVZZT   " + u32(100_000) + b"NSDQ",
    ),
    (
        OrderExecuted(
            LOC, TRK, TS, order_reference_number=987_654_321, executed_shares=300,
            match_number=2**63 + 5,
        ),
        hdr(b"E") + u64(987_654_321) + u32(300) + u64(2**63 + 5),
    ),
    (
        OrderExecutedWithPrice(
            LOC, TRK, TS, order_reference_number=11, executed_shares=50, match_number=77,
            printable="N", execution_price=1_923_300,
        ),
        hdr(b"C") + u64(11) + u32(50) + u64(77) + b"N" + u32(1_923_300),
    ),
    (
        OrderCancel(LOC, TRK, TS, order_reference_number=12, cancelled_shares=40),
        hdr(b"X") + u64(12) + u32(40),
    ),
    (
        OrderDelete(LOC, TRK, TS, order_reference_number=13),
        hdr(b"D") + u64(13),
    ),
    (
        OrderReplace(
            LOC, TRK, TS, original_order_reference_number=13, new_order_reference_number=14,
            shares=600, price=1_923_500,
        ),
        hdr(b"U") + u64(13) + u64(14) + u32(600) + u32(1_923_500),
    ),
    (
        Trade(
            LOC, TRK, TS, order_reference_number=0, buy_sell_indicator="B", shares=1_000,
            stock="AAPL", price=1_923_450, match_number=78,
        ),
        hdr(b"P") + u64(0) + b"B" + u32(1_000) + b"AAPL    " + u32(1_923_450) + u64(78),
    ),
    (
        CrossTrade(
            LOC, TRK, TS, shares=5_000_000_000, stock="AAPL", cross_price=1_923_000,
            match_number=79, cross_type="C",
        ),
        hdr(b"Q") + u64(5_000_000_000) + b"AAPL    " + u32(1_923_000) + u64(79) + b"C",
    ),
    (
        BrokenTrade(LOC, TRK, TS, match_number=78),
        hdr(b"B") + u64(78),
    ),
    (
        NetOrderImbalance(
            LOC, TRK, TS, paired_shares=120_000, imbalance_shares=35_000,
            imbalance_direction="S", stock="AAPL", far_price=1_920_000, near_price=1_921_000,
            current_reference_price=1_922_000, cross_type="C", price_variation_indicator="L",
        ),
        hdr(b"I") + u64(120_000) + u64(35_000) + b"S" + b"AAPL    " + u32(1_920_000)
        + u32(1_921_000) + u32(1_922_000) + b"C" + b"L",
    ),
    (
        RetailPriceImprovement(LOC, TRK, TS, stock="SPY", interest_flag="A"),
        hdr(b"N") + b"SPY     " + b"A",
    ),
    (
        DlcrPriceDiscovery(
            LOC, TRK, TS, stock="DLCR", open_eligibility_status="Y",
            minimum_allowable_price=80_000, maximum_allowable_price=180_000,
            near_execution_price=120_000, near_execution_time=TS - 1_000,
            lower_price_range_collar=108_000, upper_price_range_collar=132_000,
        ),
        hdr(b"O") + b"DLCR    " + b"Y" + u32(80_000) + u32(180_000) + u32(120_000)
        + u64(TS - 1_000) + u32(108_000) + u32(132_000),
    ),
]
# fmt: on


def test_golden_covers_every_message_type() -> None:
    assert sorted(type(m).MESSAGE_TYPE for m, _ in GOLDEN) == sorted(SPEC_LENGTHS)
    assert {cls.MESSAGE_TYPE for cls in MESSAGE_CLASSES} == set(SPEC_LENGTHS)


@pytest.mark.parametrize(
    ("msg", "golden"),
    GOLDEN,
    ids=[type(m).MESSAGE_TYPE + "_" + type(m).__name__ for m, _ in GOLDEN],
)
def test_golden_vector(msg: Any, golden: bytes) -> None:
    code = type(msg).MESSAGE_TYPE
    assert len(golden) == SPEC_LENGTHS[code]
    assert golden[:1] == code.encode()
    assert encode(msg) == golden
    assert decode(golden) == msg
    assert decode(memoryview(golden)) == msg
    assert decode(bytearray(golden)) == msg
    assert encode_reference(msg) == golden
    assert decode_reference(golden) == msg


def test_message_lengths_match_spec() -> None:
    for code, length in SPEC_LENGTHS.items():
        assert MESSAGE_LENGTHS[code] == length
        assert MESSAGE_LENGTHS[code.encode()] == length
    assert len(MESSAGE_LENGTHS) == 2 * len(SPEC_LENGTHS)


def test_alpha_padding_and_codes() -> None:
    # all-space alpha decodes to "", a space code stays " ", case-sensitive h/H dispatch
    golden = hdr(b"H") + b"X       " + b"T" + b" " + b"    "
    msg = decode(golden)
    assert msg == StockTradingAction(LOC, TRK, TS, "X", "T", " ", "")
    assert encode(msg) == golden
    assert type(decode(hdr(b"h") + b"X       QT")) is OperationalHalt


def test_extreme_values() -> None:
    msg = OrderExecuted(2**16 - 1, 2**16 - 1, 2**48 - 1, 2**64 - 1, 2**32 - 1, 2**64 - 1)
    golden = b"E" + b"\xff" * 30
    assert encode(msg) == golden
    assert decode(golden) == msg


def test_msgspec_serialisation_is_tagged() -> None:
    msg = GOLDEN[10][0]
    data = msgspec.json.encode(msg)
    assert b'"type":"A"' in data
    assert msgspec.json.decode(data, type=itch50.Message) == msg


# --- property tests ---------------------------------------------------------------------------

ASCII = st.characters(min_codepoint=0, max_codepoint=127)


def _field_strategy(wire: Wire) -> st.SearchStrategy[Any]:
    if wire.kind == "timestamp":
        return st.integers(0, 2**48 - 1)
    if wire.kind == "uint":
        return st.integers(0, 2 ** (8 * wire.size) - 1)
    if wire.kind == "char":
        return ASCII
    # trailing spaces are padding on the wire and do not round-trip
    return st.text(ASCII, max_size=wire.size).map(lambda s: s.rstrip(" "))


def _message_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = get_type_hints(cls, include_extras=True)
    fields = []
    for name in cls.__struct_fields__:
        wire = next(m for m in hints[name].__metadata__ if isinstance(m, Wire))
        fields.append(_field_strategy(wire))
    return st.tuples(*fields).map(lambda values: cls(*values))


ANY_MESSAGE = st.one_of([_message_strategy(cls) for cls in MESSAGE_CLASSES])


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.MESSAGE_TYPE + "_" + c.__name__)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(cls: type, data: st.DataObject) -> None:
    msg = data.draw(_message_strategy(cls))
    wire = encode(msg)
    assert len(wire) == SPEC_LENGTHS[cls.MESSAGE_TYPE]
    assert wire == encode_reference(msg)
    assert itch50.packer(cls)(*msgspec.structs.astuple(msg)) == wire  # no message built
    assert decode(wire) == msg
    assert decode_reference(wire) == msg


def _same_outcome(data: bytes) -> None:
    """decode and decode_reference agree, and only ever raise ItchError."""
    try:
        fast = decode(data)
    except ItchError:
        with pytest.raises(ItchError):
            decode_reference(data)
        return
    assert decode_reference(data) == fast
    assert encode(fast) == data  # anything decodable re-encodes to the same bytes...
    # ...except that trailing spaces of Alpha fields are padding: checked by the equality above


@settings(max_examples=1500)
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _same_outcome(data)


@settings(max_examples=1500)
@given(st.sampled_from(sorted(SPEC_LENGTHS)), st.binary(max_size=60))
def test_fuzz_valid_type_byte(code: str, rest: bytes) -> None:
    _same_outcome(code.encode() + rest)


@settings(max_examples=600)
@given(ANY_MESSAGE, st.data())
def test_fuzz_mutated_messages(msg: Any, data: st.DataObject) -> None:
    wire = encode(msg)
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(ItchError, match=r"truncated|empty"):
        decode(wire[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=16))
    with pytest.raises(ItchError, match="too long"):
        decode(wire + extra)
    flipped = bytes([data.draw(st.integers(0, 255))]) + wire[1:]
    _same_outcome(flipped)
    position = data.draw(st.integers(0, len(wire) - 1))
    corrupted = bytearray(wire)
    corrupted[position] = data.draw(st.integers(0, 255))
    _same_outcome(bytes(corrupted))


def test_decode_errors_are_specific() -> None:
    with pytest.raises(ItchError, match="empty"):
        decode(b"")
    with pytest.raises(ItchError, match="unknown ITCH message type byte 0x5a"):
        decode(b"Z" + bytes(30))
    with pytest.raises(ItchError, match=r"'E' message truncated: 30 bytes, the type is 31"):
        decode(b"E" + bytes(29))
    with pytest.raises(ItchError, match=r"'E' message too long: 32 bytes, the type is 31"):
        decode(b"E" + bytes(31))
    with pytest.raises(ItchError, match="non-ASCII"):
        decode(hdr(b"Y") + b"AAPL\xe9   " + b"1")
    with pytest.raises(ItchError, match="non-ASCII"):
        decode(hdr(b"Y") + b"AAPL    " + b"\x80")
    assert issubclass(ItchError, ProtocolError)


# --- encode-side validation -------------------------------------------------------------------


def _add(**changes: Any) -> AddOrder:
    base = {
        "stock_locate": 1, "tracking_number": 0, "timestamp": TS, "order_reference_number": 5,
        "buy_sell_indicator": "B", "shares": 100, "stock": "AAPL", "price": 1_000_000,
    }  # fmt: skip
    base.update(changes)
    return AddOrder(**base)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_add(stock="TOOLONGSYM"), r"stock is longer than 8 characters"),
        (_add(stock="ÄPFEL"), r"stock is not ASCII"),
        (_add(shares=-1), r"shares is negative: -1"),
        (_add(price=2**32), r"price does not fit in 32 bits"),
        (_add(price=-5), r"price is negative"),
        (_add(timestamp=2**48), r"timestamp does not fit in 48 bits"),
        (_add(timestamp=-1), r"timestamp is negative"),
        (_add(stock_locate=2**16), r"stock_locate does not fit in 16 bits"),
        (_add(order_reference_number=2**64), r"order_reference_number does not fit in 64 bits"),
        (_add(buy_sell_indicator="BS"), r"buy_sell_indicator must be exactly 1 character"),
        (_add(buy_sell_indicator=""), r"buy_sell_indicator must be exactly 1 character"),
        (_add(buy_sell_indicator="é"), r"buy_sell_indicator is not ASCII"),
        (_add(price=1.5), r"price must be an int, got float"),
        (_add(stock=b"AAPL"), r"stock must be a str, got bytes"),
        (_add(timestamp=None), r"timestamp must be an int, got NoneType"),
        (AddOrderMpid(1, 0, TS, 5, "B", 1, "AAPL", 1, "TOOLONG"), r"attribution is longer than 4"),
        (CrossTrade(1, 0, TS, -1, "AAPL", 1, 1, "O"), r"shares is negative"),
        (MwcbDeclineLevel(0, 0, TS, 1, 2**64, 3), r"level_2 does not fit in 64 bits"),
    ],
)
def test_encode_rejects(msg: Any, reason: str) -> None:
    with pytest.raises(ItchError, match=reason):
        encode(msg)
    with pytest.raises(ItchError, match=reason):
        encode_reference(msg)


def test_encode_rejects_non_messages() -> None:
    for bad in (object(), b"A", None):
        with pytest.raises(ItchError, match=r"not an ITCH 5\.0 message"):
            encode(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("change", [{"shares": -1}, {"shares": 2**32}, {"stock": "TOOLONGXX"},
                                    {"stock": "AAPLé"}, {"buy_sell_indicator": "BB"},
                                    {"price": 2**32}, {"timestamp": 2**48}])
def test_the_field_packer_refuses_what_encode_refuses(change: dict[str, Any]) -> None:
    """``packer`` raises, unexplained, where ``encode`` raises an ItchError naming the field."""
    msg = _add(**change)
    with pytest.raises(ItchError):
        encode(msg)
    with pytest.raises(Exception):  # noqa: B017 - any error: the caller falls back to encode
        itch50.packer(AddOrder)(*msgspec.structs.astuple(msg))


def test_alpha_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(itch50, "_CACHE_LIMIT", 10)
    monkeypatch.setattr(itch50, "_ALPHA_DECODED", {})
    monkeypatch.setattr(itch50, "_ALPHA_ENCODED", {2: {}, 4: {}, 8: {}})
    # the generated codecs hold the original dicts: rebuild one against the patched module state
    decoder, encoder, _ = itch50._build(RegShoRestriction)
    for i in range(50):
        msg = RegShoRestriction(1, 0, TS, f"S{i}", "0")
        assert decoder(encoder(msg)) == msg
    assert len(itch50._ALPHA_DECODED) == 10
    assert len(itch50._ALPHA_ENCODED[8]) == 10


# --- BinaryFILE framing -----------------------------------------------------------------------

ALL_GOLDEN = [m for m, _ in GOLDEN]


def test_file_records_layout() -> None:
    data = write_file_records(ALL_GOLDEN[:2])
    first, second = GOLDEN[0][1], GOLDEN[1][1]
    assert data == u16(len(first)) + first + u16(len(second)) + second
    assert write_file_records(ALL_GOLDEN[:1], end_of_session=True) == u16(12) + first + b"\0\0"


def test_file_round_trip_bytes_and_file_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_file_records(ALL_GOLDEN * 3, end_of_session=True)
    assert list(iter_file_messages(data)) == ALL_GOLDEN * 3
    assert list(iter_file_messages(memoryview(data))) == ALL_GOLDEN * 3
    assert list(iter_file_messages(io.BytesIO(data))) == ALL_GOLDEN * 3
    assert list(iter_file_messages(gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(data))))) == (
        ALL_GOLDEN * 3
    )
    for chunk in (1, 2, 3, 7, 36, 41):  # records straddling chunk boundaries
        monkeypatch.setattr(itch50, "_READ_CHUNK", chunk)
        assert list(iter_file_messages(io.BytesIO(data))) == ALL_GOLDEN * 3
    assert list(iter_file_messages(b"")) == []


@settings(max_examples=100)
@given(st.lists(ANY_MESSAGE, max_size=20), st.integers(1, 64))
def test_file_round_trip_property(messages: list[Any], chunk: int) -> None:
    data = write_file_records(messages)
    assert list(iter_file_messages(data)) == messages
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(itch50, "_READ_CHUNK", chunk)
        assert list(iter_file_messages(io.BytesIO(data))) == messages


@pytest.mark.parametrize("source", [bytes, io.BytesIO])
def test_truncated_file(source: Any) -> None:
    data = write_file_records(ALL_GOLDEN[:3])
    offset = 2 + 12 + 2 + 39  # third record starts here
    with pytest.raises(ItchError, match=rf"truncated BinaryFILE record at offset {offset}"):
        list(iter_file_messages(source(data[:-1])))
    with pytest.raises(ItchError, match=rf"offset {offset}: 1 of 2 length bytes"):
        list(iter_file_messages(source(data[: offset + 1])))
    # the complete records before the truncation are still delivered
    it = iter_file_messages(source(data[:-5]))
    assert [next(it), next(it)] == ALL_GOLDEN[:2]
    with pytest.raises(ItchError, match="truncated"):
        next(it)


def test_file_record_with_bad_message_reports_offset() -> None:
    good = write_file_records(ALL_GOLDEN[:1])
    with pytest.raises(ItchError, match=r"record at offset 14: ITCH 'A' message truncated"):
        list(iter_file_messages(good + u16(3) + b"A\0\0"))
    with pytest.raises(ItchError, match=r"record at offset 14: unknown ITCH message type"):
        list(iter_file_messages(good + u16(1) + b"z"))


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_fuzz_file_framing(data: bytes) -> None:
    with contextlib.suppress(ItchError):
        list(iter_file_messages(data))
