"""OUCH 5.0 <-> agora mapping, driven through a real MatchingEngine (no sockets)."""

from __future__ import annotations

import pytest

from agora.core import enums as ag
from agora.core.events import (
    AddSymbol,
    CancelOrder,
    KillSwitch,
    NewOrder,
    ParticipantSpec,
    ReplaceOrder,
    SetParticipant,
    SetTradingState,
    SymbolSpec,
)
from agora.exchange.engine import MatchingEngine
from agora.exchange.venue.ouch_mapping import (
    CANCEL_CODES,
    NS_PER_DAY,
    REJECT_CODES,
    OuchMapper,
    ns_since_midnight,
    ouch_order_id,
    parse_ouch_order_id,
    user_ref_num,
)
from agora.protocols import ouch50 as ouch

P = 10_000
TS = 3 * NS_PER_DAY + 12_345


class Rig:
    """Engine + mapper: inbound -> commands -> events -> outbound, like the gateway."""

    def __init__(self, state=ag.TradingState.OPEN, **kw) -> None:
        self.engine = MatchingEngine()
        self.mapper = OuchMapper(**kw)
        self.out: list[tuple[str, ouch.OuchMessage]] = []
        for p in ("F1", "F2"):
            self.apply(SetParticipant(ParticipantSpec(p)))
        self.apply(AddSymbol(SymbolSpec("AAPL", 190 * P), state))
        if state is ag.TradingState.OPEN:
            self.apply(SetTradingState("AAPL", state))
        self.out.clear()

    def apply(self, command) -> list:
        events = self.engine.process(command, TS)
        out = self.mapper.outbound(events)
        self.out += out
        return out

    def send(self, participant: str, msg) -> tuple[list, list]:
        action = self.mapper.inbound(participant, msg, TS)
        out = []
        for command in action.commands:
            out += self.apply(command)
        return out, action.replies + self.mapper.unanswered(participant, TS)


def enter(urn, side="B", qty=100, price=190 * P, *, tif="0", display="Y", symbol="AAPL",
          **opts):
    return ouch.EnterOrder(urn, ouch.Side(side), qty, symbol, price, ouch.TimeInForce(tif),
                           ouch.Display(display), ouch.Capacity.PRINCIPAL,
                           ouch.IntermarketSweep.NOT_ELIGIBLE, ouch.CrossType.CONTINUOUS,
                           f"C{urn}", ouch.Options(**opts))


def test_tables_are_complete():
    assert set(REJECT_CODES) == set(ag.RejectReason)
    assert set(CANCEL_CODES) == set(ag.CancelReason)
    assert REJECT_CODES[ag.RejectReason.UNKNOWN_SYMBOL] == ouch.RejectReason.INVALID_SYMBOL
    assert CANCEL_CODES[ag.CancelReason.USER] == ouch.CancelReason.USER_REQUESTED


def test_helpers():
    assert ns_since_midnight(TS) == 12_345
    assert ouch_order_id("FIRM1", 17) == "O:FIRM1:17"
    assert parse_ouch_order_id("O:FIRM1:17") == ("FIRM1", 17) and user_ref_num("O:F:17") == 17
    for other in ("", "abc", "O:F:0", "O:F:", "O::5", "O:17", "O:F:x1", "17", "o:F:17",
                  f"O:F:{2**32}"):
        assert user_ref_num(other) is None, other  # "17": a FIX ClOrdID, not an OUCH order


def test_enter_maps_every_field():
    m = OuchMapper()
    cases = [
        (enter(1, display="N"), {"display_qty": 0}),
        (enter(2, max_floor=10), {"display_qty": 10}),
        (enter(3, tif="3", min_qty=50), {"tif": ag.TimeInForce.IOC, "min_qty": 50}),
        (enter(4, post_only="P"), {"post_only": True}),
        (enter(5, tif="5", side="T"), {"tif": ag.TimeInForce.GTC, "side": ag.Side.SELL}),
        (enter(6, price=0x7FFFFFFF), {"order_type": ag.OrderType.MARKET, "price": 0}),
    ]
    for msg, expect in cases:
        (cmd,) = m.inbound("F1", msg, TS).commands
        assert isinstance(cmd, NewOrder) and cmd.client_order_id == f"O:F1:{msg.user_ref_num}"
        for name, value in expect.items():
            assert getattr(cmd, name) == value, (msg, name)


def test_stale_user_ref_num_is_ignored_or_rejected():
    m = OuchMapper()
    assert m.inbound("F1", enter(5), TS).commands
    for urn in (5, 4):
        action = m.inbound("F1", enter(urn), TS)
        assert not action.commands and not action.replies and "not above" in action.ignored
    strict = OuchMapper(reject_stale=True)
    strict.inbound("F1", enter(5), TS)
    (reply,) = strict.inbound("F1", enter(3), TS).replies
    assert isinstance(reply, ouch.Rejected) and reply.reason == ouch.RejectReason.OTHER
    assert m.inbound("F2", enter(1), TS).commands  # per account


def test_unsupported_options_get_an_unsequenced_reject():
    m = OuchMapper()
    action = m.inbound("F1", enter(1, price_type="M"), TS)
    assert not action.commands
    assert action.replies[0].reason == ouch.RejectReason.INVALID_PEG_TYPE
    action = m.inbound("F1", enter(2, tif="6"), TS)
    assert action.replies[0].reason == ouch.RejectReason.OTHER


def test_trade_each_side_sees_its_own_with_liquidity_flags():
    rig = Rig()
    out, _ = rig.send("F1", enter(1, "B", 100))
    ((who, acc),) = out
    assert who == "F1" and isinstance(acc, ouch.OrderAccepted)
    assert (acc.user_ref_num, acc.quantity, acc.price, acc.cl_ord_id, acc.timestamp) == (
        1, 100, 190 * P, "C1", 12_345)
    assert acc.capacity == ouch.Capacity.PRINCIPAL and acc.order_reference_number == 1
    out, _ = rig.send("F2", enter(7, "S", 60, 189 * P))
    assert [(w, type(x).__name__) for w, x in out] == [
        ("F2", "OrderAccepted"), ("F1", "OrderExecuted"), ("F2", "OrderExecuted")]
    e1, e2 = out[1][1], out[2][1]
    assert (e1.user_ref_num, e1.quantity, e1.price, e1.liquidity_flag) == (1, 60, 190 * P, "A")
    assert (e2.user_ref_num, e2.liquidity_flag, e2.match_number) == (7, "R", e1.match_number)


def test_hidden_maker_flag_and_cancel_replace_quantities():
    rig = Rig()
    rig.send("F1", enter(1, "B", 500, display="N"))
    out, _ = rig.send("F2", enter(1, "S", 100))
    assert out[1][1].liquidity_flag == ouch.LiquidityFlag.NON_DISPLAYED_ADDING
    # Replace: Quantity is the total liable including the 100 executed -> 400 open
    out, _ = rig.send("F1", ouch.ReplaceOrderRequest(1, 2, 500, 191 * P, ouch.TimeInForce.DAY,
                                                     ouch.Display.VISIBLE, "N", "R2"))
    ((_, rep),) = out
    assert isinstance(rep, ouch.OrderReplaced)
    assert (rep.orig_user_ref_num, rep.user_ref_num, rep.quantity, rep.cl_ord_id) == (
        1, 2, 400, "R2")
    # Cancel: Quantity is the intended total size: 300 - 100 executed -> keep 200
    out, _ = rig.send("F1", ouch.CancelOrderRequest(2, 300))
    ((_, c),) = out
    assert (c.user_ref_num, c.quantity, c.reason) == (2, 200, "U")
    assert rig.send("F1", ouch.CancelOrderRequest(2, 999)) == ([], [])  # no reduction
    assert rig.send("F1", ouch.CancelOrderRequest(1, 0)) == ([], [])  # not live any more
    out, _ = rig.send("F1", ouch.CancelOrderRequest(2, 0))
    assert out[0][1].quantity == 200


@pytest.mark.parametrize(("opts", "tif", "expected"), [
    ({}, "0", ouch.Options()),
    ({"firm": "FRM"}, "0", ouch.Options(firm="FRM")),
    ({"min_qty": 50}, "3", ouch.Options(min_qty=50)),
    ({"max_floor": 20}, "0", ouch.Options(max_floor=20)),
    ({"post_only": "P"}, "0", ouch.Options(post_only="P")),
    ({"post_only": "N", "firm": ""}, "0", ouch.Options(firm="")),
    ({"firm": "AB", "max_floor": 30, "post_only": "P"}, "0",
     ouch.Options(firm="AB", max_floor=30, post_only="P")),
])
def test_accepted_and_replaced_echo_their_options(opts, tif, expected):
    rig = Rig()
    out, _ = rig.send("F1", enter(1, "B", 100, 189 * P, tif=tif, **opts))
    assert out[0][1].options == expected
    if tif == "0":
        out, _ = rig.send("F1", ouch.ReplaceOrderRequest(
            1, 2, 100, 189 * P, ouch.TimeInForce.DAY, ouch.Display.VISIBLE, "N", "R2",
            ouch.Options(max_floor=opts.get("max_floor"))))
        assert out[0][1].options == ouch.Options(max_floor=opts.get("max_floor"))


def test_rejects_and_cancel_reasons():
    rig = Rig()
    out, _ = rig.send("F1", enter(1, symbol="MSFT"))
    assert out[0][1].reason == ouch.RejectReason.INVALID_SYMBOL
    out, _ = rig.send("F1", enter(2, price=190 * P + 1))
    assert out[0][1].reason == ouch.RejectReason.INVALID_PRICE
    out, _ = rig.send("F1", enter(3, tif="3"))  # IOC, nothing to hit
    assert [type(x) for _, x in out] == [ouch.OrderAccepted, ouch.OrderCanceled]
    assert out[1][1].reason == ouch.CancelReason.IMMEDIATE_OR_CANCEL
    assert out[0][1].time_in_force == ouch.TimeInForce.IOC


def test_mass_cancel_kill_switch_and_account_query():
    rig = Rig()
    rig.send("F1", enter(1, "B", 10))
    rig.send("F1", enter(2, "S", 10, 195 * P))
    rig.send("F2", enter(1, "B", 10, 189 * P))
    out, replies = rig.send("F1", ouch.MassCancelRequest(3, "", "", ouch.Options(side="B")))
    assert [(w, x.user_ref_num) for w, x in out] == [("F1", 1)]
    assert isinstance(replies[0], ouch.MassCancelResponse)
    out, replies = rig.send("F1", ouch.DisableOrderEntryRequest(4, "FRM"))
    assert [type(x) for _, x in out] == [ouch.OrderCanceled, ouch.DisableOrderEntryResponse]
    assert out[0][1].reason == ouch.CancelReason.SUPERVISORY
    assert (out[1][1].user_ref_num, out[1][1].firm) == (4, "FRM") and replies == []
    out, _ = rig.send("F1", enter(5))
    assert out[0][1].reason == ouch.RejectReason.FIRM_NOT_AUTHORIZED
    out, replies = rig.send("F1", ouch.DisableOrderEntryRequest(6, ""))  # already disabled
    assert out == [] and isinstance(replies[0], ouch.DisableOrderEntryResponse)
    out, _ = rig.send("F1", ouch.EnableOrderEntryRequest(7, ""))
    assert [type(x) for _, x in out] == [ouch.EnableOrderEntryResponse]
    _, (q,) = rig.send("F1", ouch.AccountQueryRequest())
    assert q.next_user_ref_num == 8
    assert rig.apply(KillSwitch("F2")) == [  # operator kill switch: still answered
        ("F2", ouch.OrderCanceled(12_345, 1, 10, "S")),
        ("F2", ouch.DisableOrderEntryResponse(12_345, 0, "")),
    ]


@pytest.mark.parametrize(("halted", "flag"), [(False, "O"), (True, "K")])
def test_auction_cross_flag(halted, flag):
    rig = Rig(ag.TradingState.PRE_OPEN)
    if halted:
        rig.apply(SetTradingState("AAPL", ag.TradingState.OPEN))
        rig.apply(SetTradingState("AAPL", ag.TradingState.HALTED))
    rig.send("F1", enter(1, "B", 10))
    rig.send("F2", enter(1, "S", 10))
    out = rig.apply(SetTradingState("AAPL", ag.TradingState.OPEN))
    assert [(w, x.liquidity_flag) for w, x in out] == [("F1", flag), ("F2", flag)]


def test_outbound_is_a_pure_function_of_the_events():
    """What a restart relies on: replaying the events gives the same messages and numbering."""
    rig = Rig()
    batches = []
    original = rig.engine.process

    def record(command, ts):
        events = original(command, ts)
        batches.append(events)
        return events

    rig.engine.process = record
    rig.send("F1", enter(1, "B", 100))
    rig.send("F2", enter(1, "S", 40))
    rig.send("F1", ouch.CancelOrderRequest(1, 50))
    rig.apply(CancelOrder("F1", 99))
    rig.apply(ReplaceOrder("F2", 99, "2", 190 * P, 10))
    fresh = OuchMapper()
    replayed = [x for events in batches for x in fresh.outbound(events)]
    assert [(w, type(x), x.user_ref_num) for w, x in replayed] == [
        (w, type(x), x.user_ref_num) for w, x in rig.out]
    assert [x for _, x in replayed if isinstance(x, ouch.OrderExecuted)] == [
        x for _, x in rig.out if isinstance(x, ouch.OrderExecuted)]


def test_accounts_of_one_participant_keep_their_own_orders_and_share_the_kill_switch():
    rig = Rig()
    m = rig.mapper
    for account in ("A1", "A2"):
        m.register("F1", account)
    with pytest.raises(ValueError, match="':'"):
        m.register("F1", "A:3")
    action = m.inbound("F1", enter(1, "B", 100), TS, "A1")
    assert action.commands[0].client_order_id == "O:A1:1"
    for command in action.commands:
        rig.apply(command)
    for command in m.inbound("F1", enter(1, "S", 40), TS, "A2").commands:  # same UserRefNum
        rig.apply(command)
    assert [(w, type(x).__name__) for w, x in rig.out] == [
        ("A1", "OrderAccepted"), ("A2", "OrderAccepted"), ("A1", "OrderExecuted"),
        ("A2", "OrderExecuted")]  # an execution reports the buy side first
    assert "not live" in m.inbound("F1", ouch.CancelOrderRequest(1, 0), TS, "A2").ignored
    rig.out.clear()
    for command in m.inbound("F1", ouch.DisableOrderEntryRequest(2, "FRM"), TS, "A1").commands:
        rig.apply(command)
    assert [(w, type(x).__name__, x.user_ref_num) for w, x in rig.out] == [
        ("A1", "OrderCanceled", 1), ("A1", "DisableOrderEntryResponse", 2),
        ("A2", "DisableOrderEntryResponse", 0)]
    assert m.accounts_of("F2") == ["F2"]  # none registered: one account of its own name
