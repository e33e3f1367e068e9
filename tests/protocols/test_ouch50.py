"""NASDAQ OUCH 5.0 codec: golden vectors from the spec's offsets, round trips, fuzzing, errors.

Golden bytes are written field by field from shared/specs/ouch50.md (offset/length tables), never
produced by the codec.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from agora.protocols import ouch50
from agora.protocols.errors import ProtocolError
from agora.protocols.ouch50 import (
    ALLOWED_OPTION_TAGS,
    INBOUND_TYPES,
    OPTION_TAGS,
    OUTBOUND_TYPES,
    AccountQueryRequest,
    AccountQueryResponse,
    AiqCanceled,
    AiqStrategy,
    BrokenTrade,
    BrokenTradeReason,
    CancelOrderRequest,
    CancelPending,
    CancelReason,
    CancelReject,
    Capacity,
    CrossType,
    DisableOrderEntryRequest,
    DisableOrderEntryResponse,
    Display,
    EnableOrderEntryRequest,
    EnableOrderEntryResponse,
    EnterOrder,
    EventCode,
    IntermarketSweep,
    LiquidityFlag,
    MassCancelRequest,
    MassCancelResponse,
    ModifyOrderRequest,
    Options,
    OrderAccepted,
    OrderCanceled,
    OrderExecuted,
    OrderModified,
    OrderPriorityUpdate,
    OrderReplaced,
    OrderRestated,
    OrderState,
    OuchError,
    Rejected,
    RejectReason,
    ReplaceOrderRequest,
    RestatedReason,
    Side,
    SystemEvent,
    TimeInForce,
    decode_inbound,
    decode_outbound,
    encode,
)
from agora.protocols.ouch50_appendage import Alpha, Chars, RejectCode, UInt

TS = 0x0000_1F1B_6C3B_4000  # some ns-since-midnight timestamp
TS_B = "00001f1b6c3b4000"
SP = "20"  # one ASCII space


def h(*parts: str) -> bytes:
    """Concatenate hex strings (spaces inside a part are ignored)."""
    return bytes.fromhex("".join(p.replace(" ", "") for p in parts))


def alpha(text: str, width: int) -> str:
    """Hex of a space-padded Alpha field (test-side, independent of the codec)."""
    raw = text.encode("ascii")
    assert len(raw) <= width
    return (raw + b" " * (width - len(raw))).hex()


# ---------------------------------------------------------------------------------------------
# Golden vectors: (direction, message, bytes)
# ---------------------------------------------------------------------------------------------

GOLDEN_INBOUND = [
    pytest.param(
        EnterOrder(
            user_ref_num=1,
            side=Side.BUY,
            quantity=100,
            symbol="AAPL",
            price=1_500_000,  # $150.0000
            time_in_force=TimeInForce.DAY,
            display=Display.VISIBLE,
            capacity=Capacity.AGENCY,
            intermarket_sweep=IntermarketSweep.NOT_ELIGIBLE,
            cross_type=CrossType.CONTINUOUS,
            cl_ord_id="ORD1",
            options=Options(min_qty=100, post_only="P"),
        ),
        h(
            "4f",  # 0 Type 'O'
            "00000001",  # 1 UserRefNum
            "42",  # 5 Side 'B'
            "00000064",  # 6 Quantity 100
            "4141504c 20202020",  # 10 Symbol 'AAPL    '
            "00000000 0016e360",  # 18 Price 1500000
            "30",  # 26 TIF '0'
            "59",  # 27 Display 'Y'
            "41",  # 28 Capacity 'A'
            "4e",  # 29 ISE 'N'
            "4e",  # 30 CrossType 'N'
            "4f524431" + SP * 10,  # 31 ClOrdID 'ORD1' + 10 spaces
            "0009",  # 45 Appendage Length 9
            "05 03 00000064",  # MinQty = 100 (the spec's own example)
            "02 0c 50",  # PostOnly = 'P' (the spec's own example)
        ),
        id="EnterOrder+appendage",
    ),
    pytest.param(
        EnterOrder(
            user_ref_num=0xDEADBEEF,
            side=Side.SELL_SHORT,
            quantity=999_999,
            symbol="ZVZZT",
            price=0,
            time_in_force=TimeInForce.AFTER_HOURS,
            display=Display.ATTRIBUTABLE,
            capacity=Capacity.PRINCIPAL,
            intermarket_sweep=IntermarketSweep.ELIGIBLE,
            cross_type=CrossType.CLOSING,
            cl_ord_id="A B C 12345678",
            options=Options(
                firm="GSCO", price_type="M", peg_offset=-100, group_id=7, aiq_group_id="AB"
            ),
        ),
        h(
            "4f",
            "deadbeef",  # UserRefNum
            "54",  # Side 'T'
            "000f423f",  # Quantity 999999
            alpha("ZVZZT", 8),
            "00000000 00000000",  # Price 0
            "45",  # TIF 'E'
            "41",  # Display 'A'
            "50",  # Capacity 'P'
            "59",  # ISE 'Y'
            "43",  # CrossType 'C'
            alpha("A B C 12345678", 14),
            "0017",  # Appendage Length 23 = 6 + 3 + 6 + 4 + 4
            "05 02 4753434f",  # Firm 'GSCO'
            "02 06 4d",  # PriceType 'M'
            "05 07 ffffff9c",  # PegOffset -100 (signed)
            "03 18 0007",  # Group ID 7
            "03 1e 4142",  # AIQ Group ID 'AB'
        ),
        id="EnterOrder+signed-appendage",
    ),
    pytest.param(
        ReplaceOrderRequest(
            orig_user_ref_num=1,
            user_ref_num=2,
            quantity=200,
            price=1_505_000,
            time_in_force=TimeInForce.IOC,
            display=Display.HIDDEN,
            intermarket_sweep=IntermarketSweep.ELIGIBLE,
            cl_ord_id="ORD2",
        ),
        h(
            "55",  # 0 Type 'U'
            "00000001",  # 1 OrigUserRefNum
            "00000002",  # 5 UserRefNum
            "000000c8",  # 9 Quantity 200
            "00000000 0016f6e8",  # 13 Price 1505000
            "33",  # 21 TIF '3'
            "4e",  # 22 Display 'N'
            "59",  # 23 ISE 'Y'
            alpha("ORD2", 14),  # 24 ClOrdID
            "0000",  # 38 Appendage Length 0
        ),
        id="ReplaceOrderRequest",
    ),
    pytest.param(
        CancelOrderRequest(user_ref_num=2, quantity=0),
        h("58", "00000002", "00000000"),  # 'X', UserRefNum, Quantity; no appendage fields
        id="CancelOrderRequest-short",
    ),
    pytest.param(
        CancelOrderRequest(user_ref_num=2, quantity=50, options=Options(user_ref_idx=5)),
        h("58", "00000002", "00000032", "0003", "02 1c 05"),  # UserRefIdx = 5
        id="CancelOrderRequest+appendage",
    ),
    pytest.param(
        ModifyOrderRequest(user_ref_num=3, side=Side.SELL_SHORT_EXEMPT, quantity=50),
        h("4d", "00000003", "45", "00000032"),  # 'M', UserRefNum, Side 'E', Quantity 50
        id="ModifyOrderRequest",
    ),
    pytest.param(
        MassCancelRequest(
            user_ref_num=4, firm="FIRM", symbol="", options=Options(group_id=7, side=Side.SELL)
        ),
        h(
            "43",  # 'C'
            "00000004",  # UserRefNum
            "4649524d",  # Firm 'FIRM'
            SP * 8,  # Symbol: spaces = all symbols
            "0007",  # Appendage Length 7
            "03 18 0007",  # Group ID 7 (tag 24)
            "02 1b 53",  # Side 'S' (tag 27)
        ),
        id="MassCancelRequest+appendage",
    ),
    pytest.param(
        DisableOrderEntryRequest(user_ref_num=5, firm="ABCD"),
        h("44", "00000005", "41424344", "0000"),
        id="DisableOrderEntryRequest",
    ),
    pytest.param(
        EnableOrderEntryRequest(user_ref_num=6, firm="AB"),
        h("45", "00000006", "4142" + SP * 2, "0000"),
        id="EnableOrderEntryRequest",
    ),
    pytest.param(AccountQueryRequest(), h("51"), id="AccountQueryRequest-short"),
    pytest.param(
        AccountQueryRequest(options=Options()), h("51", "0000"), id="AccountQueryRequest-len0"
    ),
]

GOLDEN_OUTBOUND = [
    pytest.param(
        SystemEvent(timestamp=TS, event_code=EventCode.START_OF_DAY),
        h("53", TS_B, "53"),
        id="SystemEvent",
    ),
    pytest.param(
        OrderAccepted(
            timestamp=TS,
            user_ref_num=1,
            side=Side.BUY,
            quantity=100,
            symbol="AAPL",
            price=1_500_000,
            time_in_force=TimeInForce.DAY,
            display=Display.VISIBLE,
            order_reference_number=0x457,
            capacity=Capacity.AGENCY,
            intermarket_sweep=IntermarketSweep.NOT_ELIGIBLE,
            cross_type=CrossType.CONTINUOUS,
            order_state=OrderState.LIVE,
            cl_ord_id="ORD1",
            options=Options(firm="ABCD", user_ref_idx=1),
        ),
        h(
            "41",  # 0 'A'
            TS_B,  # 1 Timestamp
            "00000001",  # 9 UserRefNum
            "42",  # 13 Side
            "00000064",  # 14 Quantity
            alpha("AAPL", 8),  # 18 Symbol
            "00000000 0016e360",  # 26 Price
            "30",  # 34 TIF
            "59",  # 35 Display
            "00000000 00000457",  # 36 Order Reference Number
            "41",  # 44 Capacity
            "4e",  # 45 ISE
            "4e",  # 46 CrossType
            "4c",  # 47 Order State 'L'
            alpha("ORD1", 14),  # 48 ClOrdID
            "0009",  # 62 Appendage Length
            "05 02 41424344",  # Firm 'ABCD'
            "02 1c 01",  # UserRefIdx 1
        ),
        id="OrderAccepted+appendage",
    ),
    pytest.param(
        OrderReplaced(
            timestamp=TS,
            orig_user_ref_num=1,
            user_ref_num=2,
            side=Side.BUY,
            quantity=400,
            symbol="AAPL",
            price=1_505_000,
            time_in_force=TimeInForce.GTX,
            display=Display.CONFORMANT,
            order_reference_number=0x458,
            capacity=Capacity.RISKLESS,
            intermarket_sweep=IntermarketSweep.NOT_ELIGIBLE,
            cross_type=CrossType.CONTINUOUS,
            order_state=OrderState.DEAD,
            cl_ord_id="ORD2",
        ),
        h(
            "55",  # 0 'U'
            TS_B,  # 1
            "00000001",  # 9 OrigUserRefNum
            "00000002",  # 13 UserRefNum
            "42",  # 17 Side
            "00000190",  # 18 Quantity 400
            alpha("AAPL", 8),  # 22
            "00000000 0016f6e8",  # 30 Price
            "35",  # 38 TIF '5'
            "5a",  # 39 Display 'Z'
            "00000000 00000458",  # 40
            "52",  # 48 Capacity 'R'
            "4e",  # 49
            "4e",  # 50
            "44",  # 51 Order State 'D'
            alpha("ORD2", 14),  # 52
            "0000",  # 66
        ),
        id="OrderReplaced",
    ),
    pytest.param(
        OrderCanceled(
            timestamp=TS, user_ref_num=1, quantity=100, reason=CancelReason.USER_REQUESTED
        ),
        h("43", TS_B, "00000001", "00000064", "55"),  # no appendage fields
        id="OrderCanceled",
    ),
    pytest.param(
        AiqCanceled(
            timestamp=TS,
            user_ref_num=1,
            decrement_shares=100,
            reason="Q",
            quantity_prevented_from_trading=200,
            execution_price=1_500_000,
            liquidity_flag=LiquidityFlag.ADDED,
            aiq_strategy=AiqStrategy.FIRM_CANCEL_OLDEST,
            options=Options(user_ref_idx=9),
        ),
        h(
            "44",  # 0 'D'
            TS_B,  # 1
            "00000001",  # 9 UserRefNum
            "00000064",  # 13 Decrement Shares
            "51",  # 17 Reason 'Q'
            "000000c8",  # 18 Quantity Prevented From Trading
            "00000000 0016e360",  # 22 Execution Price
            "41",  # 30 Liquidity Flag 'A'
            "4f",  # 31 AIQ Strategy 'O'
            "0003",  # 32 Appendage Length
            "02 1c 09",  # UserRefIdx 9
        ),
        id="AiqCanceled+appendage",
    ),
    pytest.param(
        OrderExecuted(
            timestamp=TS,
            user_ref_num=1,
            quantity=100,
            price=1_500_000,
            liquidity_flag=LiquidityFlag.REMOVED_PRE_MARKET,
            match_number=0x0102030405060708,
        ),
        h(
            "45",  # 0 'E'
            TS_B,  # 1
            "00000001",  # 9
            "00000064",  # 13 Quantity
            "00000000 0016e360",  # 17 Price
            "33",  # 25 Liquidity Flag '3'
            "01020304 05060708",  # 26 Match Number
            "0000",  # 34 Appendage Length
        ),
        id="OrderExecuted",
    ),
    pytest.param(
        BrokenTrade(
            timestamp=TS,
            user_ref_num=1,
            match_number=0x0102030405060708,
            reason=BrokenTradeReason.ERRONEOUS,
            cl_ord_id="ORD1",
        ),
        h("42", TS_B, "00000001", "01020304 05060708", "45", alpha("ORD1", 14)),
        id="BrokenTrade",
    ),
    pytest.param(
        Rejected(timestamp=TS, user_ref_num=7, reason=RejectReason.INVALID_PRICE, cl_ord_id="ORD7"),
        h("4a", TS_B, "00000007", "001d", alpha("ORD7", 14)),  # Reason 0x001D (u16 BE)
        id="Rejected",
    ),
    pytest.param(
        CancelPending(timestamp=TS, user_ref_num=8),
        h("50", TS_B, "00000008"),
        id="CancelPending",
    ),
    pytest.param(
        CancelReject(timestamp=TS, user_ref_num=8, options=Options()),
        h("49", TS_B, "00000008", "0000"),
        id="CancelReject",
    ),
    pytest.param(
        OrderPriorityUpdate(
            timestamp=TS,
            user_ref_num=9,
            price=1_499_900,
            display=Display.VISIBLE,
            order_reference_number=0x999,
        ),
        h("54", TS_B, "00000009", "00000000 0016e2fc", "59", "00000000 00000999"),
        id="OrderPriorityUpdate",
    ),
    pytest.param(
        OrderModified(timestamp=TS, user_ref_num=3, side=Side.SELL, quantity=50),
        h("4d", TS_B, "00000003", "53", "00000032"),
        id="OrderModified",
    ),
    pytest.param(
        OrderRestated(
            timestamp=TS,
            user_ref_num=10,
            reason=RestatedReason.REFRESH_OF_DISPLAY,
            options=Options(display_quantity=100, display_price=1_500_000),
        ),
        h(
            "52",  # 0 'R'
            TS_B,  # 1
            "0000000a",  # 9 UserRefNum
            "52",  # 13 Reason 'R'
            "0010",  # 14 Appendage Length 16
            "05 16 00000064",  # Display Quantity 100 (tag 22)
            "09 17 00000000 0016e360",  # Display Price (tag 23, 8 bytes)
        ),
        id="OrderRestated+appendage",
    ),
    pytest.param(
        MassCancelResponse(timestamp=TS, user_ref_num=4, firm="FIRM", symbol="MSFT"),
        h("58", TS_B, "00000004", "4649524d", alpha("MSFT", 8), "0000"),
        id="MassCancelResponse",
    ),
    pytest.param(
        DisableOrderEntryResponse(timestamp=TS, user_ref_num=5, firm="ABCD"),
        h("47", TS_B, "00000005", "41424344", "0000"),
        id="DisableOrderEntryResponse",
    ),
    pytest.param(
        EnableOrderEntryResponse(timestamp=TS, user_ref_num=6, firm="ABCD"),
        h("4b", TS_B, "00000006", "41424344", "0000"),
        id="EnableOrderEntryResponse",
    ),
    pytest.param(
        AccountQueryResponse(timestamp=TS, next_user_ref_num=11),
        h("51", TS_B, "0000000b"),
        id="AccountQueryResponse",
    ),
]


@pytest.mark.parametrize(("msg", "golden"), GOLDEN_INBOUND)
def test_golden_inbound(msg, golden):
    assert encode(msg) == golden
    decoded = decode_inbound(golden, strict=True)
    assert decoded == msg
    assert type(decoded) is type(msg)


@pytest.mark.parametrize(("msg", "golden"), GOLDEN_OUTBOUND)
def test_golden_outbound(msg, golden):
    assert encode(msg) == golden
    decoded = decode_outbound(golden, strict=True)
    assert decoded == msg
    assert type(decoded) is type(msg)


def test_golden_covers_every_type_and_spec_base_lengths():
    in_types = {p.values[0].__class__ for p in GOLDEN_INBOUND}
    out_types = {p.values[0].__class__ for p in GOLDEN_OUTBOUND}
    assert in_types == set(INBOUND_TYPES.values())
    assert out_types == set(OUTBOUND_TYPES.values())
    assert len(INBOUND_TYPES) == 8
    assert len(OUTBOUND_TYPES) == 17
    # base lengths incl. Appendage Length, spec §2.1/§2.2
    spec_in = {"O": 47, "U": 40, "X": 11, "M": 12, "C": 19, "D": 11, "E": 11, "Q": 3}
    spec_out = {
        "S": 10, "A": 64, "U": 68, "C": 20, "D": 34, "E": 36, "B": 38, "J": 31, "P": 15,
        "I": 15, "T": 32, "M": 20, "R": 16, "X": 27, "G": 19, "K": 19, "Q": 15,
    }  # fmt: skip
    for spec, table in ((spec_in, INBOUND_TYPES), (spec_out, OUTBOUND_TYPES)):
        assert {k.decode(): ouch50._BY_CLASS[c].base for k, c in table.items()} == spec


def test_decoded_codes_are_enum_members():
    msg = decode_outbound(GOLDEN_OUTBOUND[4].values[1])  # AiqCanceled
    assert msg.reason is CancelReason.SELF_MATCH_PREVENTION
    assert msg.liquidity_flag is LiquidityFlag.ADDED
    assert msg.aiq_strategy is AiqStrategy.FIRM_CANCEL_OLDEST
    rej = decode_outbound(GOLDEN_OUTBOUND[7].values[1])
    assert rej.reason is RejectReason.INVALID_PRICE


def test_same_letter_means_different_messages_per_direction():
    cancel_in = h("58", "00000002", "00000000")
    assert isinstance(decode_inbound(cancel_in), CancelOrderRequest)
    with pytest.raises(ProtocolError, match="truncated"):
        decode_outbound(cancel_in)  # 'X' outbound is Mass Cancel Response (27 bytes)
    for letter in "UXCDEMQ":
        assert INBOUND_TYPES[letter.encode()] is not OUTBOUND_TYPES[letter.encode()]


def test_open_code_lists_keep_unknown_values():
    raw = h("4a", TS_B, "00000007", "0035", alpha("X", 14))  # 0x0035 undefined in rev 1.05
    rej = decode_outbound(raw)
    assert rej.reason == 0x35 and not isinstance(rej.reason, RejectReason)
    assert encode(rej) == raw
    raw = h("43", TS_B, "00000001", "00000064", "7a")  # cancel reason 'z' not in §8.1
    assert decode_outbound(raw).reason == "z"


def test_appendage_any_order_and_unknown_tags():
    # elements in descending tag order, plus undefined tag 8 and 200
    raw = h(
        "43", "00000004", "4649524d", SP * 8, "000e",
        "02 1b 42", "02 08 ff", "04 c8 010203",  "02 1c 01",
    )  # fmt: skip
    msg = decode_inbound(raw)
    assert msg.options == Options(
        side=Side.BUY, user_ref_idx=1, unknown=((8, b"\xff"), (200, b"\x01\x02\x03"))
    )
    with pytest.raises(ProtocolError, match="unknown option tag 8"):
        decode_inbound(raw, strict=True)
    with pytest.raises(ProtocolError, match="strict"):
        encode(msg)
    again = encode(msg, strict=False)  # canonical order: known ascending, then unknown
    assert again == h(
        "43", "00000004", "4649524d", SP * 8, "000e",
        "02 1b 42", "02 1c 01", "02 08 ff", "04 c8 010203",
    )  # fmt: skip
    assert decode_inbound(again) == msg


def test_option_not_allowed_on_message_type():
    # MinQty on a Cancel Order Request: only UserRefIdx is allowed there
    raw = h("58", "00000002", "00000000", "0006", "05 03 00000064")
    assert decode_inbound(raw).options == Options(min_qty=100)
    with pytest.raises(ProtocolError, match=r"MinQty \(tag 3\) is not allowed"):
        decode_inbound(raw, strict=True)
    msg = CancelOrderRequest(user_ref_num=2, quantity=0, options=Options(min_qty=100))
    with pytest.raises(ProtocolError, match="not allowed"):
        encode(msg)
    assert encode(msg, strict=False) == raw


# ---------------------------------------------------------------------------------------------
# Decode errors
# ---------------------------------------------------------------------------------------------

ENTER_BASE = GOLDEN_INBOUND[2].values[1]  # Replace Order, appendage length 0 (40 bytes)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty inbound"),
        (b"Z", "unknown inbound message type"),
        (b"S", "unknown inbound message type"),  # 'S' is outbound only
        (ENTER_BASE[:-3], "truncated"),
        (ENTER_BASE[:-2] + b"\x00", "truncated"),
        (ENTER_BASE + b"\x00", r"appendage length mismatch \(over-long\)"),
        (ENTER_BASE[:-2] + b"\x00\x03" + b"\x02\x1c", r"appendage length mismatch \(truncated\)"),
        (ENTER_BASE[:-2] + b"\x00\x02\x00\x1c", "has length 0"),
        (ENTER_BASE[:-2] + b"\x00\x02\x05\x03", "overruns"),
        (ENTER_BASE[:-2] + b"\x00\x03\x02\x03\x01", r"MinQty \(tag 3\) value has 1 bytes"),
        (ENTER_BASE[:-2] + b"\x00\x06\x02\x1c\x01\x02\x1c\x02", "more than once"),
        (h("58", "00000002", "00000000", "00"), "expected 9 .* or at least 11"),  # half a length
        (h("58", "00000002"), "truncated"),
        (h("44", "00000005", "41c34344", "0000"), "non-ASCII"),
        (h("44", "00000005", "41004344", "0000"), "non-printable"),
        (h("4d", "00000003", "58", "00000032"), r"ModifyOrderRequest.side: invalid value"),
    ],
)
def test_decode_inbound_errors(data, match):
    with pytest.raises(OuchError, match=match):
        decode_inbound(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty outbound"),
        (b"O", "unknown outbound message type"),
        (h("53", TS_B), "truncated message of 9 bytes, expected 10"),
        (h("53", TS_B, "53", "00"), "over-long"),
        (h("53", TS_B, "58"), r"SystemEvent.event_code: invalid value"),
        (h("50", TS_B, "00000008", "0001", "00"), "has length 0"),
    ],
)
def test_decode_outbound_errors(data, match):
    with pytest.raises(OuchError, match=match):
        decode_outbound(data)


def test_display_z_only_outbound_accepted_replaced():
    enter = bytearray(GOLDEN_INBOUND[0].values[1])
    enter[27] = ord("Z")
    with pytest.raises(ProtocolError, match=r"EnterOrder.display: invalid value"):
        decode_inbound(bytes(enter))


def test_decode_accepts_bytearray_and_memoryview_rejects_other_types():
    raw = GOLDEN_INBOUND[0].values[1]
    assert decode_inbound(bytearray(raw)) == decode_inbound(memoryview(raw))
    with pytest.raises(ProtocolError, match="expected bytes"):
        decode_inbound("O")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Encode-side validation
# ---------------------------------------------------------------------------------------------

ENTER = GOLDEN_INBOUND[0].values[0]


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (replace(ENTER, symbol="TOOLONGSYM"), r"EnterOrder.symbol: .* longer than 8"),
        (replace(ENTER, symbol="ÄPL"), "not printable ASCII"),
        (replace(ENTER, cl_ord_id="tab\there"), "not printable ASCII"),
        (replace(ENTER, symbol=b"AAPL"), "expected str, got bytes"),
        (replace(ENTER, quantity=-1), r"EnterOrder.quantity: -1 out of range 0..4294967295"),
        (replace(ENTER, quantity=1 << 32), "out of range"),
        (replace(ENTER, user_ref_num=True), "expected int, got bool"),
        (replace(ENTER, price=150.25), "expected int, got float"),
        (replace(ENTER, price=1 << 64), "out of range"),
        (replace(ENTER, side="X"), r"EnterOrder.side: invalid value 'X'"),
        (replace(ENTER, display="Z"), r"EnterOrder.display: invalid value 'Z'"),
        (replace(ENTER, time_in_force="1"), "time_in_force: invalid value"),
        (replace(ENTER, options=None), "must not be None"),
        (replace(ENTER, options={"min_qty": 1}), "must be an Options struct"),
        (replace(ENTER, options=Options(min_qty=-5)), r"options.min_qty: -5 out of range"),
        (replace(ENTER, options=Options(peg_offset=1 << 31)), "peg_offset: .* out of range"),
        (replace(ENTER, options=Options(firm="TOOLONG")), "longer than 4"),
        (replace(ENTER, options=Options(post_only="PP")), "not exactly 1"),
        (replace(ENTER, options=Options(aiq_group_id="A")), "not exactly 2"),
        (replace(ENTER, options=Options(route="ABCD")), r"Route \(tag 14\) is not allowed"),
        (
            MassCancelRequest(1, "FIRM", "", Options(side="Q")),
            r"options.side: invalid value 'Q'",
        ),
        (OrderCanceled(TS, 1, 100, "UU"), "not exactly 1"),
        (OrderCanceled(TS, 1, 100, "\ud800"), "not ASCII"),
        (replace(ENTER, side="\ud800"), "not ASCII"),
        (replace(ENTER, symbol="\ud800"), "not printable ASCII"),
        (Rejected(TS, 1, 0x10000, "X"), "out of range 0..65535"),
        (SystemEvent(-1, "S"), "out of range"),
        (Options(), "not an OUCH 5.0 message"),
    ],
)
def test_encode_validation(msg, match):
    with pytest.raises(OuchError, match=match):
        encode(msg)


def test_encode_unknown_tag_validation():
    bad = [
        ((3, b"\x00"), "known option"),
        ((300, b""), "out of range"),
        ((8, "x"), "bytes of <= 254"),
        ((8, b"x" * 255), "bytes of <= 254"),
        ((8,), r"\(tag, bytes\)"),
    ]
    for item, match in bad:
        msg = CancelPending(TS, 1, Options(unknown=(item,)))
        with pytest.raises(OuchError, match=match):
            encode(msg, strict=False)


def test_alpha_trailing_spaces_are_padding():
    msg = DisableOrderEntryRequest(user_ref_num=5, firm="AB  ")
    assert encode(msg) == h("44", "00000005", "4142" + SP * 2, "0000")
    assert decode_inbound(encode(msg)).firm == "AB"


def test_price_type_space_and_char_options_not_stripped():
    msg = replace(ENTER, options=Options(customer_type=" ", trade_now=" "))
    assert decode_inbound(encode(msg)).options == Options(customer_type=" ", trade_now=" ")


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def _alpha(width: int) -> st.SearchStrategy[str]:
    return st.text(PRINTABLE, max_size=width).map(lambda s: s.rstrip(" "))


def _kind_strategy(kind) -> st.SearchStrategy:
    if isinstance(kind, RejectCode):
        return st.integers(0, 0xFFFF)
    if isinstance(kind, UInt):
        return st.integers(kind.lo, kind.hi)
    if isinstance(kind, Alpha):
        return _alpha(kind.size)
    if isinstance(kind, Chars):
        if kind.closed:
            return st.sampled_from(sorted(m.value for m in kind._by_raw.values()))
        return st.text(PRINTABLE, min_size=kind.size, max_size=kind.size)
    raise AssertionError(kind)


def _options_strategy(allowed: frozenset[int]) -> st.SearchStrategy[Options]:
    fields = {
        OPTION_TAGS[t][0]: st.none() | _kind_strategy(OPTION_TAGS[t][2]) for t in sorted(allowed)
    }
    return st.fixed_dictionaries({}, optional=fields).map(
        lambda d: Options(**{k: v for k, v in d.items() if v is not None})
    )


def _message_strategy(cls) -> st.SearchStrategy:
    layout = ouch50._BY_CLASS[cls]
    args = [_kind_strategy(k) for k in layout.kinds]
    if layout.mode == 0:
        return st.tuples(*args).map(lambda a: cls(*a))
    opts = _options_strategy(layout.allowed)
    if layout.mode == 2:
        opts = st.none() | opts
    return st.tuples(*args, opts).map(lambda a: cls(*a))


ALL_CLASSES = sorted(ouch50._BY_CLASS, key=lambda c: (not c.INBOUND, c.__name__))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_every_type(cls, data):
    msg = data.draw(_message_strategy(cls))
    raw = encode(msg)
    decode = decode_inbound if cls.INBOUND else decode_outbound
    back = decode(raw, strict=True)
    assert back == msg
    assert type(back) is cls
    assert encode(back) == raw
    layout = ouch50._BY_CLASS[cls]
    expected_len = layout.base - (2 if getattr(msg, "options", 0) is None else 0)
    assert len(raw) >= expected_len
    assert raw[:1] == cls.TYPE


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_arbitrary_bytes_only_protocol_error(data):
    for decode in (decode_inbound, decode_outbound):
        for strict in (False, True):
            try:
                msg = decode(data, strict=strict)
            except ProtocolError:
                continue
            assert isinstance(msg, ouch50.OuchMessage)


_VALID = [p.values[1] for p in GOLDEN_INBOUND] + [p.values[1] for p in GOLDEN_OUTBOUND]


@settings(max_examples=1500, deadline=None)
@given(
    base=st.sampled_from(_VALID),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.integers(-5, 200),
    tail=st.binary(max_size=12),
)
def test_fuzz_mutated_valid_messages_only_protocol_error(base, edits, cut, tail):
    buf = bytearray(base)
    for pos, val in edits:
        if pos < len(buf):
            buf[pos] = val
    data = bytes(buf[:cut]) + tail
    for decode in (decode_inbound, decode_outbound):
        try:
            msg = decode(data)
        except ProtocolError:
            continue
        # anything that decodes re-encodes (leniently) and decodes to the same message
        assert decode(encode(msg, strict=False)) == msg


def test_allowed_option_tags_table():
    assert ALLOWED_OPTION_TAGS[CancelOrderRequest] == {28}
    assert ALLOWED_OPTION_TAGS[OrderRestated] == {22, 23, 1, 28}
    assert 14 in ALLOWED_OPTION_TAGS[OrderAccepted] and 14 not in ALLOWED_OPTION_TAGS[EnterOrder]
    assert 2 not in ALLOWED_OPTION_TAGS[ReplaceOrderRequest]  # Firm inherited on Replace
    assert ALLOWED_OPTION_TAGS[SystemEvent] == frozenset()
