"""FIX 4.4 typed messages: round trips, required tags, exact prices and quantities."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.protocols.fix44.codec import FixError, decode, encode
from agora.protocols.fix44.enums import (
    BusinessRejectReason,
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    SessionRejectReason,
    Side,
    TimeInForce,
)
from agora.protocols.fix44.messages import (
    MESSAGE_TYPES,
    BusinessMessageReject,
    ExecutionReport,
    Heartbeat,
    Logon,
    Logout,
    NewOrderSingle,
    OrderCancelReject,
    OrderCancelReplaceRequest,
    OrderCancelRequest,
    OrderStatusRequest,
    Reject,
    ResendRequest,
    SequenceReset,
    TestRequest,
    format_price,
    from_message,
    parse_price,
    parse_qty,
    to_fields,
)

T = 1_704_164_645_678_000_000

SAMPLES = [
    Logon(heart_bt_int=30, reset_seq_num_flag=True, username="u", password="p"),
    Heartbeat(),
    Heartbeat(test_req_id="T1"),
    TestRequest(test_req_id="T1"),
    ResendRequest(begin_seq_no=5, end_seq_no=0),
    Reject(ref_seq_num=3, ref_tag_id=44, ref_msg_type="D",
           session_reject_reason=SessionRejectReason.VALUE_IS_INCORRECT, text="bad"),
    SequenceReset(new_seq_no=9, gap_fill_flag=True),
    SequenceReset(new_seq_no=9),
    Logout(text="bye"),
    NewOrderSingle(cl_ord_id="c1", side=Side.BUY, transact_time=T, ord_type=OrdType.LIMIT,
                   symbol="AAPL", order_qty=100, price=1_234_567, time_in_force=TimeInForce.DAY,
                   account="acct", min_qty=10, max_floor=50, expire_time=T + 1_000_000),
    NewOrderSingle(cl_ord_id="c2", side=Side.SELL_SHORT, transact_time=T, ord_type=OrdType.MARKET),
    OrderCancelRequest(orig_cl_ord_id="c1", cl_ord_id="c3", side=Side.BUY, transact_time=T,
                       order_id="42", symbol="AAPL", order_qty=100),
    OrderCancelReplaceRequest(orig_cl_ord_id="c1", cl_ord_id="c4", side=Side.BUY,
                              transact_time=T, ord_type=OrdType.STOP_LIMIT, order_qty=200,
                              price=1, stop_px=-5, symbol="AAPL"),
    OrderStatusRequest(cl_ord_id="c1", side=Side.BUY, order_id="42", symbol="AAPL"),
    ExecutionReport(order_id="42", exec_id="e1", exec_type=ExecType.TRADE,
                    ord_status=OrdStatus.PARTIALLY_FILLED, side=Side.BUY, leaves_qty=60,
                    cum_qty=40, avg_px=1_234_500, last_qty=40, last_px=1_234_500,
                    cl_ord_id="c1", symbol="AAPL", order_qty=100, ord_type=OrdType.LIMIT,
                    price=1_234_567, transact_time=T),
    ExecutionReport(order_id="43", exec_id="e2", exec_type=ExecType.REJECTED,
                    ord_status=OrdStatus.REJECTED, side=Side.SELL, leaves_qty=0, cum_qty=0,
                    avg_px=0, ord_rej_reason=OrdRejReason.UNKNOWN_SYMBOL, text="no such"),
    OrderCancelReject(order_id="NONE", cl_ord_id="c3", orig_cl_ord_id="c1",
                      ord_status=OrdStatus.REJECTED,
                      cxl_rej_response_to=CxlRejResponseTo.ORDER_CANCEL_REQUEST,
                      cxl_rej_reason=CxlRejReason.UNKNOWN_ORDER),
    BusinessMessageReject(ref_msg_type="AE", ref_seq_num=7,
                          business_reject_reason=BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE),
]


def wire(msg, seq=1):
    return decode(encode(msg.MSG_TYPE, to_fields(msg), sender="C", target="V", seq_num=seq,
                         sending_time=T))


def test_every_message_type_has_a_sample():
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES.values())
    assert set(MESSAGE_TYPES) == set("A012345DFGH89j")


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    assert from_message(wire(msg)) == msg


def test_wire_values():
    m = wire(SAMPLES[9])
    assert m[44] == "123.4567" and m[54] == "1" and m[40] == "2" and m[59] == "0"
    assert m[60] == "20240102-03:04:05.678" and m[38] == "100"
    er = wire(SAMPLES[14])
    assert er[150] == "F" and er[39] == "1" and er[6] == "123.45"


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=lambda c: c.__name__)
def test_required_tags_enforced(cls):
    sample = next(m for m in SAMPLES if type(m) is cls)
    fields = to_fields(sample)
    for f in cls.FIX_FIELDS:
        if not f.required:
            continue
        raw = encode(cls.MSG_TYPE, [(t, v) for t, v in fields if t != f.tag], sender="C",
                     target="V", seq_num=12, sending_time=T)
        with pytest.raises(FixError) as e:
            from_message(decode(raw))
        assert (e.value.reason, e.value.tag, e.value.seq_num) == (1, f.tag, 12)
        assert e.value.msg_type == cls.MSG_TYPE


def test_bad_enum_and_unknown_type():
    raw = encode("D", [(11, "c"), (54, "Z"), (60, "20240102-03:04:05"), (40, "2")],
                 sender="C", target="V", seq_num=3, sending_time=T)
    with pytest.raises(FixError) as e:
        from_message(decode(raw))
    assert (e.value.reason, e.value.tag) == (5, 54)
    raw = encode("AE", [], sender="C", target="V", seq_num=4, sending_time=T)
    with pytest.raises(FixError) as e:
        from_message(decode(raw))
    assert (e.value.reason, e.value.msg_type) == (11, "AE")


def test_prices_exact():
    assert parse_price("12.3456") == 123456
    assert parse_price("12.34560000") == 123456
    assert parse_price("-0.0001") == -1
    assert parse_price("7") == 70000
    assert parse_price("0.1") + parse_price("0.2") == parse_price("0.3")
    for bad, reason in (("1.23456", 5), ("1e3", 6), ("abc", 6), ("1.", 6), ("", 6)):
        with pytest.raises(FixError) as e:
            parse_price(bad)
        assert e.value.reason == reason
    assert format_price(123400) == "12.34" and format_price(-1) == "-0.0001"
    assert format_price(70000) == "7"


def test_quantities():
    assert parse_qty("100") == 100 and parse_qty("100.00") == 100
    for bad in ("100.5", "-1", "1e2"):
        with pytest.raises(FixError):
            parse_qty(bad)


@given(st.integers(-(10**15), 10**15))
def test_price_format_parse_round_trip(units):
    assert parse_price(format_price(units)) == units


@given(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20),
    st.sampled_from(list(Side)), st.sampled_from(list(OrdType)),
    st.integers(0, 10**9), st.integers(0, 10**12), st.integers(0, 4 * 10**18 // 10**6),
)
def test_new_order_round_trip_property(cl, side, ord_type, qty, price, ms):
    msg = NewOrderSingle(cl_ord_id=cl, side=side, transact_time=ms * 1_000_000,
                         ord_type=ord_type, order_qty=qty, price=price, symbol="X")
    assert from_message(wire(msg)) == msg
