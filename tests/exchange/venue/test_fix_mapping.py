"""FIX 4.4 <-> agora mapping: pure, driven by a real MatchingEngine (no sockets)."""

from __future__ import annotations

import pytest

from agora.core import enums as core
from agora.core.events import (
    AddSymbol,
    CancelOrder,
    NewOrder,
    ReplaceOrder,
    SetParticipant,
    SetTradingState,
    SymbolSpec,
)
from agora.core.events import ParticipantSpec as PSpec
from agora.exchange.engine import MatchingEngine
from agora.exchange.venue.fix_mapping import CXL_REJ_REASON, ORD_REJ_REASON, FixOrders, Submit
from agora.exchange.venue.ouch_mapping import OuchMapper
from agora.protocols import ouch50 as ouch
from agora.protocols.fix44.codec import FixError, decode, encode
from agora.protocols.fix44.enums import (
    BusinessRejectReason,
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
)
from agora.protocols.fix44.messages import BusinessMessageReject, ExecutionReport

PX = 1_900_000
TS = "20240102-10:00:00"


class Harness:
    def __init__(self):
        self.engine = MatchingEngine()
        self.seq = 0
        for cmd in (SetParticipant(PSpec("P1")), SetParticipant(PSpec("P2", max_order_qty=1000)),
                    AddSymbol(SymbolSpec("AAPL", PX)),
                    SetTradingState("AAPL", core.TradingState.OPEN)):
            self.engine.process(cmd, 1)
        self.p1, self.p2 = FixOrders("P1"), FixOrders("P2")
        self.fix_seq = 0

    def msg(self, mt, fields):
        self.fix_seq += 1
        return decode(encode(mt, fields, sender="C", target="AGORA", seq_num=self.fix_seq,
                             sending_time=TS))

    def run(self, orders: FixOrders, mt, fields):
        """Inbound message -> (immediate reply or None, P1's messages, P2's messages)."""
        result = orders.inbound(self.msg(mt, fields), "L1")
        if not isinstance(result, Submit):
            return result, [], []
        out = self.submit(result.command)
        orders.done(result)
        return None, *out

    def submit(self, cmd):
        self.seq += 1
        events = self.engine.process(cmd, self.seq)
        return self.p1.apply(self.seq, events), self.p2.apply(self.seq, events)


def nos(cl, side="1", qty=100, price="190", ord_type="2", **extra):
    fields = [(11, cl), (55, "AAPL"), (54, side), (60, TS), (38, qty), (40, ord_type)]
    if price is not None:
        fields.append((44, price))
    fields += [(int(t), v) for t, v in extra.items()]
    return fields


def test_new_order_fields_map_to_new_order():
    h = Harness()
    sub = h.p1.inbound(h.msg("D", nos("A", qty=500, **{"59": "1", "18": "6", "111": 100})), "x")
    assert sub == Submit(NewOrder("P1", "A", "AAPL", core.Side.BUY, 500, PX,
                                  core.OrderType.LIMIT, core.TimeInForce.GTC, True, 100, 0))
    sub = h.p1.inbound(h.msg("D", nos("B", side="2", ord_type="1", price=None,
                                      **{"59": "3", "110": 50})), "x")
    assert sub == Submit(NewOrder("P1", "B", "AAPL", core.Side.SELL, 100, 0,
                                  core.OrderType.MARKET, core.TimeInForce.IOC, False, None, 50))
    sub = h.p1.inbound(h.msg("D", nos("C", price="190.0001", **{"59": "4", "111": 0})), "x")
    assert sub.command.price == PX + 1 and sub.command.tif is core.TimeInForce.FOK
    assert sub.command.display_qty == 0  # MaxFloor 0: hidden


@pytest.mark.parametrize(("fields", "text"), [
    (nos("A", ord_type="3"), "OrdType"), (nos("A", **{"59": "6"}), "TimeInForce"),
    (nos("A", side="5"), "Side"),
])
def test_unsupported_values_rejected_locally(fields, text):
    h = Harness()
    er = h.p1.inbound(h.msg("D", fields), "L9")
    assert isinstance(er, ExecutionReport)
    assert (er.exec_type, er.ord_status, er.order_id, er.exec_id) == ("8", "8", "NONE", "L9")
    assert er.ord_rej_reason is OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC and text in er.text


@pytest.mark.parametrize(("drop", "name"), [(55, "Symbol"), (38, "OrderQty"), (44, "Price")])
def test_missing_conditionally_required_field_is_business_reject(drop, name):
    h = Harness()
    fields = [f for f in nos("A") if f[0] != drop]
    bmr = h.p1.inbound(h.msg("D", fields), "x")
    assert isinstance(bmr, BusinessMessageReject)
    assert bmr.business_reject_reason is BusinessRejectReason.CONDITIONALLY_REQUIRED_FIELD_MISSING
    assert name in bmr.text and bmr.ref_msg_type == "D" and bmr.business_reject_ref_id == "A"


def test_unsupported_message_and_parse_errors():
    h = Harness()
    bmr = h.p1.inbound(h.msg("V", [(262, "x")]), "x")
    assert bmr.business_reject_reason is BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE
    with pytest.raises(FixError) as err:
        h.p1.inbound(h.msg("D", [f for f in nos("A") if f[0] != 54]), "x")
    assert (err.value.reason, err.value.tag) == (1, 54)


def test_fills_cum_qty_avg_px_and_both_sides_of_self_trade():
    h = Harness()
    _, p1, _ = h.run(h.p1, "D", nos("S1", side="2", qty=300, price="190"))
    assert [(m.exec_type, m.ord_status, m.leaves_qty) for m in p1] == [("0", "0", 300)]
    _, p1, _ = h.run(h.p1, "D", nos("S2", side="2", qty=100, price="190.01"))
    _, p1, p2 = h.run(h.p2, "D", nos("B1", qty=350, price="190.01"))
    assert p1[0].exec_id == f"{h.seq}-1" and p2[0].exec_type == ExecType.NEW
    fills = [(m.cl_ord_id, m.last_qty, m.last_px, m.cum_qty, m.leaves_qty, m.ord_status)
             for m in p2[1:]]
    assert fills == [("B1", 300, PX, 300, 50, "1"), ("B1", 50, PX + 100, 350, 0, "2")]
    assert p2[-1].avg_px == (300 * PX + 50 * (PX + 100) + 175) // 350  # rounded half up
    assert [(m.cl_ord_id, m.ord_status, m.leaves_qty) for m in p1] == [("S1", "2", 0),
                                                                         ("S2", "1", 50)]
    # self trade with STP NONE: one report per side, in the Execution's buy-then-sell order
    _, p1, _ = h.run(h.p1, "D", nos("X1", qty=10, price="190.01"))
    assert [(m.cl_ord_id, m.exec_type, m.side, m.last_qty, m.exec_id) for m in p1] == [
        ("X1", "0", "1", None, f"{h.seq}-1"), ("X1", "F", "1", 10, f"{h.seq}-2"),
        ("S2", "F", "2", 10, f"{h.seq}-3")]


def test_cancel_replace_and_status():
    h = Harness()
    h.run(h.p1, "D", nos("S1", side="2", qty=300))
    h.run(h.p2, "D", nos("B1", qty=100))
    # OrderQty is the total: 250 - 100 executed = 150 new leaves
    g = [(41, "S1"), (11, "S2"), (55, "AAPL"), (54, "2"), (60, TS), (38, 250), (40, "2"),
         (44, "190.05")]
    reply = h.p1.inbound(h.msg("G", g), "x")
    assert reply.command == ReplaceOrder("P1", 1, "S2", PX + 500, 150, None)
    h.p1.done(reply)
    _, p1, _ = h.run(h.p1, "G", [*g[:1], (11, "S3"), *g[2:]])
    (rep,) = p1
    assert (rep.exec_type, rep.ord_status, rep.cl_ord_id, rep.orig_cl_ord_id) == ("5", "1", "S3",
                                                                                  "S1")
    assert (rep.order_qty, rep.leaves_qty, rep.cum_qty, rep.price) == (250, 150, 100, PX + 500)
    # too small: OrderQty <= CumQty
    too_small = h.p1.inbound(h.msg("G", [(41, "S3"), (11, "S4"), *g[2:5], (38, 100), *g[6:]]),
                             "x")
    assert too_small.cxl_rej_reason is CxlRejReason.OTHER
    assert too_small.cxl_rej_response_to is CxlRejResponseTo.ORDER_CANCEL
    status = h.p1.inbound(h.msg("H", [(11, "S1"), (54, "2"), (790, "Q")]), "L5")
    assert (status.exec_type, status.ord_status, status.cum_qty, status.leaves_qty) == (
        "I", "1", 100, 150)
    f = [(41, "S3"), (11, "C1"), (55, "AAPL"), (54, "2"), (60, TS)]
    _, p1, _ = h.run(h.p1, "F", f)
    assert [(m.exec_type, m.ord_status, m.cl_ord_id, m.orig_cl_ord_id, m.leaves_qty, m.cum_qty)
            for m in p1] == [("4", "4", "C1", "S3", 0, 100)]
    late = h.p1.inbound(h.msg("F", [(41, "S3"), (11, "C2"), *f[2:]]), "x")
    assert (late.cxl_rej_reason, late.ord_status) == (CxlRejReason.TOO_LATE_TO_CANCEL, "4")
    unknown = h.p1.inbound(h.msg("F", [(41, "ZZ"), (11, "C3"), *f[2:]]), "x")
    assert (unknown.order_id, unknown.cxl_rej_reason, unknown.ord_status) == (
        "NONE", CxlRejReason.UNKNOWN_ORDER, OrdStatus.REJECTED)


def test_engine_rejects_map_to_ord_rej_reason_and_cancel_reject():
    h = Harness()
    _, _, p2 = h.run(h.p2, "D", nos("B1", qty=5000))  # P2 max_order_qty 1000
    (er,) = p2
    assert (er.exec_type, er.ord_status, er.ord_rej_reason) == ("8", "8", 3)
    assert er.text.startswith("MAX_ORDER_QTY")
    _, _, p2 = h.run(h.p2, "D", nos("B2", price="190.001"))
    assert p2[0].ord_rej_reason is OrdRejReason.OTHER and "INVALID_TICK" in p2[0].text
    h.run(h.p2, "D", nos("B3"))
    _, _, p2 = h.run(h.p2, "D", nos("B3"))
    assert p2[0].ord_rej_reason is OrdRejReason.DUPLICATE_ORDER
    # a replace the engine refuses: OrderCancelReject 434=2
    g = [(41, "B3"), (11, "B3"), (55, "AAPL"), (54, "1"), (60, TS), (38, 100), (40, "2"),
         (44, "190")]
    _, _, p2 = h.run(h.p2, "G", g)
    assert (p2[0].cxl_rej_reason, p2[0].cxl_rej_response_to) == (CxlRejReason.DUPLICATE_CL_ORD_ID,
                                                                 "2")
    assert set(ORD_REJ_REASON) == set(core.RejectReason)
    assert set(CXL_REJ_REASON) <= set(core.RejectReason)


def test_ioc_remainder_expired_and_reduce():
    h = Harness()
    h.run(h.p1, "D", nos("S1", side="2", qty=50))
    _, _, p2 = h.run(h.p2, "D", nos("B1", qty=80, **{"59": "3"}))
    assert [(m.exec_type, m.ord_status, m.leaves_qty) for m in p2] == [
        ("0", "0", 80), ("F", "1", 30), ("4", "4", 0)]
    h.run(h.p2, "D", nos("B2", qty=100, price="189"))
    _, p2 = h.submit(CancelOrder("P2", 3, 40))  # a reduce from another gateway
    assert [(m.exec_type, m.ord_status, m.leaves_qty, m.order_qty) for m in p2] == [
        ("D", "0", 40, 40)]
    _p1, p2 = h.submit(SetTradingState("AAPL", core.TradingState.CLOSED))
    assert [(m.exec_type, m.ord_status) for m in p2] == [("C", "C")]


def test_fix_and_ouch_orders_of_one_participant_keep_apart():
    """A numeric FIX ClOrdID is not an OUCH UserRefNum: both gateways' orders "5" are accepted,
    the OUCH account neither reports the FIX order nor counts its id, and FIX refuses the
    ``O:`` prefix that marks OUCH orders (it sees them as drop copies under that id)."""
    h = Harness()
    mapper = OuchMapper()
    ouch_out: list = []

    def submit_both(cmd):
        h.seq += 1
        events = h.engine.process(cmd, h.seq)
        ouch_out.extend(mapper.outbound(events))
        return h.p1.apply(h.seq, events)

    h.submit = lambda cmd: (submit_both(cmd), [])  # type: ignore[method-assign]
    reply, fix_out, _ = h.run(h.p1, "D", nos("5"))
    assert reply is None and fix_out[0].exec_type is ExecType.NEW and fix_out[0].cl_ord_id == "5"
    assert ouch_out == [] and mapper.account("P1").last_user_ref_num == 0
    enter = ouch.EnterOrder(5, "B", 100, "AAPL", PX, "0", "Y", "A", "N", "N", "OC5",
                            ouch.Options())
    (command,) = mapper.inbound("P1", enter, 0).commands
    fix_copy = submit_both(command)
    assert [type(m).__name__ for _, m in ouch_out] == ["OrderAccepted"]
    assert fix_copy[0].exec_type is ExecType.NEW and fix_copy[0].cl_ord_id == "O:P1:5"  # a copy
    refused, fix_out, _ = h.run(h.p1, "D", nos("O:7"))
    assert refused.exec_type is ExecType.REJECTED and "reserved" in refused.text
    assert fix_out == []
    assert len(h.engine.participants["P1"].client_order_ids) == 2  # "5" and "O:P1:5"


def test_cancel_and_replace_under_a_reserved_cl_ord_id_are_refused_and_change_nothing():
    """The ``O:`` prefix is refused on F and G as on D: a cancel reject naming the live order,
    which stays as it was (nothing submitted)."""
    h = Harness()
    h.run(h.p1, "D", nos("S1", qty=300))
    f = [(41, "S1"), (11, "O:1"), (55, "AAPL"), (54, "1"), (60, TS)]
    g = [*f, (38, 250), (40, "2"), (44, "190.05")]
    for mt, fields, to in (("F", f, CxlRejResponseTo.ORDER_CANCEL_REQUEST),
                           ("G", g, CxlRejResponseTo.ORDER_CANCEL)):
        refused = h.p1.inbound(h.msg(mt, fields), "x")
        assert not isinstance(refused, Submit)
        assert (refused.cxl_rej_reason, refused.cxl_rej_response_to) == (CxlRejReason.OTHER, to)
        assert refused.order_id == "1" and "reserved" in refused.text
    assert h.engine.orders[1].leaves == 300 and not h.p1.pending
