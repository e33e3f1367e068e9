"""Scenario tests of docs/matching-rules.md: exact event lists, run against every engine.

Each test drives a venue built by ``make_venue`` (tests/exchange/conftest.py) and compares the
full event structs of the command under test (stamped ``T``) with the list the rules prescribe,
and often the canonical ``resting_orders()`` view after it. The ``text`` of rejects is free-form
and blanked before comparing. Order ids, trade ids and prices below are worked out by hand.
"""

from __future__ import annotations

import pytest

from agora.core.enums import (
    CancelReason,
    OrderType,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
    TradingState,
)
from agora.core.events import (
    AddSymbol,
    BookAdd,
    BookCancel,
    BookDelete,
    BookExecute,
    BookReplace,
    CancelOrder,
    CommandRejected,
    Execution,
    KillSwitch,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderReplaced,
    ParticipantSpec,
    ParticipantUpdated,
    ReplaceOrder,
    SetParticipant,
    SetTradingState,
    SymbolDirectory,
    SymbolSpec,
    Trade,
    TradingStatus,
)
from agora.core.price import parse_price
from tests.exchange.conftest import T, Venue

BUY, SELL = Side.BUY, Side.SELL
DAY, GTC, IOC, FOK = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
MARKET = OrderType.MARKET
PRE_OPEN, OPEN = TradingState.PRE_OPEN, TradingState.OPEN
HALTED, CLOSED = TradingState.HALTED, TradingState.CLOSED
R = RejectReason
C = CancelReason


def px(price: str | int) -> int:
    return parse_price(price) if isinstance(price, str) else price


P = px("100.00")  # AAPL's reference price

# R: restricted participant. 500 shares, $20,000 notional (200_000_000), 2% collar.
RESTRICTED = ParticipantSpec("R", max_order_qty=500, max_notional=200_000_000, collar_bps=200)


# ---------------------------------------------------------------- command builders


def buy(participant, cid, qty, price="100.00", symbol="AAPL", **kw) -> NewOrder:
    return NewOrder(participant, cid, symbol, BUY, qty, px(price), **kw)


def sell(participant, cid, qty, price="100.00", symbol="AAPL", **kw) -> NewOrder:
    return NewOrder(participant, cid, symbol, SELL, qty, px(price), **kw)


def market(participant, cid, side, qty, symbol="AAPL", **kw) -> NewOrder:
    return NewOrder(participant, cid, symbol, side, qty, 0, MARKET, **kw)


def replace(participant, order_id, cid, price, qty, display_qty=None) -> ReplaceOrder:
    return ReplaceOrder(participant, order_id, cid, px(price), qty, display_qty)


# ---------------------------------------------------------------- event builders (ts = T)


def accepted(cmd: NewOrder, order_id: int) -> OrderAccepted:
    return OrderAccepted(
        T, cmd.symbol, order_id, cmd.participant, cmd.client_order_id, cmd.side, cmd.price,
        cmd.qty, cmd.order_type, cmd.tif, cmd.display_qty, cmd.post_only, cmd.min_qty,
    )


def rejected(cmd, reason, order_id=0) -> OrderRejected:
    return OrderRejected(T, cmd.participant, cmd.client_order_id, reason, "", order_id)


def cmd_rejected(reason) -> CommandRejected:
    return CommandRejected(T, reason, "")


def cancelled(oid, participant, cid, qty, leaves, reason, symbol="AAPL") -> OrderCancelled:
    return OrderCancelled(T, symbol, oid, participant, cid, qty, leaves, reason)


def fill(tid, price, qty, aggressor, buy_side, sell_side, symbol="AAPL") -> Execution:
    """``buy_side`` / ``sell_side``: (order_id, participant, client_order_id, leaves after)."""
    return Execution(T, symbol, tid, px(price), qty, aggressor, *buy_side, *sell_side)


def add(oid, side, price, qty, symbol="AAPL") -> BookAdd:
    return BookAdd(T, symbol, oid, side, px(price), qty)


def execd(oid, qty, tid, price, cross=False, symbol="AAPL") -> BookExecute:
    return BookExecute(T, symbol, oid, qty, tid, px(price), cross)


def delete(oid, symbol="AAPL") -> BookDelete:
    return BookDelete(T, symbol, oid)


def shrink(oid, qty, symbol="AAPL") -> BookCancel:
    return BookCancel(T, symbol, oid, qty)


def moved(old, new, price, qty, symbol="AAPL") -> BookReplace:
    return BookReplace(T, symbol, old, new, px(price), qty)


def hidden_print(tid, price, qty, side, symbol="AAPL") -> Trade:
    return Trade(T, symbol, tid, px(price), qty, side, False)


def cross_print(tid, price, qty, symbol="AAPL") -> Trade:
    return Trade(T, symbol, tid, px(price), qty, None, True)


def status(state, ref=P, symbol="AAPL") -> TradingStatus:
    return TradingStatus(T, symbol, state, px(ref))


def replaced(old, new, participant, cid, orig, side, price, qty, display=None, symbol="AAPL"):
    return OrderReplaced(T, symbol, old, new, participant, cid, orig, side, px(price), qty,
                         display)


def row(oid, participant, cid, side, price, leaves, visible=None, display=None, tif=DAY,
        symbol="AAPL") -> tuple:
    shown = leaves if visible is None else visible
    return (symbol, side.value, px(price), oid, participant, cid, leaves, shown, display,
            tif.value)


def stp_venue(make_venue, mode: StpMode) -> Venue:
    return make_venue(participants=(ParticipantSpec("A", stp=mode), "B", "C", "D"))


# ================================================================ operator commands


def test_add_symbol_publishes_directory_and_status(engine_cls):
    v = Venue(engine_cls())
    ibm = SymbolSpec("IBM", 1_500_000)
    assert v.send(AddSymbol(ibm)) == [
        SymbolDirectory(T, ibm), TradingStatus(T, "IBM", PRE_OPEN, 1_500_000)
    ]
    eight = SymbolSpec("ABCDEFGH", 10_000, tick_size=10_000, lot_size=100, band_bps=1)
    assert v.send(AddSymbol(eight, OPEN)) == [
        SymbolDirectory(T, eight), TradingStatus(T, "ABCDEFGH", OPEN, 10_000)
    ]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (SymbolSpec("AAPL", 5_000_000), R.DUPLICATE_SYMBOL),
        (SymbolSpec("AAPL", 0), R.DUPLICATE_SYMBOL),  # duplicate is checked first
        (SymbolSpec("", 1_000_000), R.INVALID_SYMBOL_SPEC),
        (SymbolSpec("ABCDEFGHI", 1_000_000), R.INVALID_SYMBOL_SPEC),
        (SymbolSpec("IBM", 0), R.INVALID_SYMBOL_SPEC),
        (SymbolSpec("IBM", -100), R.INVALID_SYMBOL_SPEC),
        (SymbolSpec("IBM", 1_000_000, tick_size=0), R.INVALID_SYMBOL_SPEC),
        (SymbolSpec("IBM", 1_000_000, lot_size=0), R.INVALID_SYMBOL_SPEC),
        (SymbolSpec("IBM", 1_000_000, band_bps=0), R.INVALID_SYMBOL_SPEC),
        (SymbolSpec("IBM", 1_000_050, tick_size=100), R.INVALID_SYMBOL_SPEC),
    ],
    ids=["duplicate", "duplicate-first", "empty", "nine-chars", "zero-ref", "negative-ref",
         "zero-tick", "zero-lot", "zero-band", "ref-off-tick"],
)
def test_add_symbol_rejects(venue, spec, reason):
    assert venue.send(AddSymbol(spec)) == [cmd_rejected(reason)]
    if spec.symbol != "AAPL":  # nothing was added
        assert venue.send(SetTradingState(spec.symbol, OPEN)) == [cmd_rejected(R.UNKNOWN_SYMBOL)]


def test_set_participant_adds_and_replaces_limits(venue):
    spec = ParticipantSpec("E", max_notional=0, collar_bps=0, max_open_orders=0)
    assert venue.send(SetParticipant(spec)) == [ParticipantUpdated(T, spec, False)]
    tight = ParticipantSpec("A", max_order_qty=5)
    assert venue.send(SetParticipant(tight)) == [ParticipantUpdated(T, tight, False)]
    cmd = buy("A", "a1", 6)
    assert venue.send(cmd) == [rejected(cmd, R.MAX_ORDER_QTY)]


@pytest.mark.parametrize(
    "spec",
    [
        ParticipantSpec(""),
        ParticipantSpec("E", max_order_qty=0),
        ParticipantSpec("E", max_order_qty=-1),
        ParticipantSpec("E", max_notional=-1),
        ParticipantSpec("E", collar_bps=-1),
        ParticipantSpec("E", max_open_orders=-1),
    ],
    ids=["empty", "zero-qty", "negative-qty", "notional", "collar", "open-orders"],
)
def test_set_participant_rejects(venue, spec):
    assert venue.send(SetParticipant(spec)) == [cmd_rejected(R.INVALID_PARTICIPANT_SPEC)]


ALLOWED = {
    (PRE_OPEN, OPEN), (PRE_OPEN, HALTED), (PRE_OPEN, CLOSED), (OPEN, HALTED), (OPEN, CLOSED),
    (HALTED, OPEN), (HALTED, CLOSED), (CLOSED, PRE_OPEN),
}


@pytest.mark.parametrize("start", list(TradingState))
@pytest.mark.parametrize("target", list(TradingState))
def test_trading_state_transitions(make_venue, start, target):
    v = make_venue(state=start)
    expected = [status(target)] if (start, target) in ALLOWED else [
        cmd_rejected(R.INVALID_STATE_TRANSITION)
    ]
    assert v.send(SetTradingState("AAPL", target)) == expected


def test_operator_commands_on_unknown_names(venue):
    assert venue.send(SetTradingState("IBM", OPEN)) == [cmd_rejected(R.UNKNOWN_SYMBOL)]
    assert venue.send(KillSwitch("ZZ")) == [cmd_rejected(R.UNKNOWN_PARTICIPANT)]
    assert venue.send(KillSwitch("ZZ", engaged=False)) == [cmd_rejected(R.UNKNOWN_PARTICIPANT)]


# ================================================================ NewOrder validation

NEW_ORDER_REJECTS = [
    ("unknown-participant", buy("ZZ", "c1", 10), R.UNKNOWN_PARTICIPANT),
    ("empty-client-id", buy("A", "", 10), R.INVALID_CLIENT_ORDER_ID),
    ("unknown-symbol", buy("A", "c1", 10, symbol="IBM"), R.UNKNOWN_SYMBOL),
    ("zero-qty", buy("A", "c1", 0), R.INVALID_QUANTITY),
    ("negative-qty", buy("A", "c1", -5), R.INVALID_QUANTITY),
    ("lot", buy("A", "c1", 15, "250.00", symbol="MSFT"), R.INVALID_LOT),
    ("market-with-price", NewOrder("A", "c1", "AAPL", BUY, 10, P, MARKET), R.INVALID_ORDER_TYPE),
    ("market-post-only", market("A", "c1", BUY, 10, post_only=True), R.INVALID_ORDER_TYPE),
    ("market-display", market("A", "c1", BUY, 10, display_qty=0), R.INVALID_ORDER_TYPE),
    ("zero-price", buy("A", "c1", 10, 0), R.INVALID_PRICE),
    ("negative-price", buy("A", "c1", 10, -100), R.INVALID_PRICE),
    ("off-tick", buy("A", "c1", 10, 1_000_050), R.INVALID_TICK),
    ("off-tick-msft", buy("A", "c1", 10, 2_500_100, symbol="MSFT"), R.INVALID_TICK),
    ("negative-display", buy("A", "c1", 10, display_qty=-1), R.INVALID_DISPLAY_QTY),
    ("display-off-lot", buy("A", "c1", 20, "250.00", "MSFT", display_qty=5),
     R.INVALID_DISPLAY_QTY),
    ("negative-min-qty", buy("A", "c1", 10, tif=IOC, min_qty=-1), R.INVALID_MIN_QTY),
    ("min-qty-above-qty", buy("A", "c1", 10, tif=IOC, min_qty=11), R.INVALID_MIN_QTY),
    ("min-qty-off-lot", buy("A", "c1", 20, "250.00", "MSFT", tif=IOC, min_qty=5),
     R.INVALID_MIN_QTY),
    ("min-qty-day", buy("A", "c1", 10, min_qty=5), R.INVALID_MIN_QTY),
    ("min-qty-fok", buy("A", "c1", 10, tif=FOK, min_qty=5), R.INVALID_MIN_QTY),
    ("post-only-ioc", buy("A", "c1", 10, tif=IOC, post_only=True), R.INVALID_TIME_IN_FORCE),
    ("post-only-fok", buy("A", "c1", 10, tif=FOK, post_only=True), R.INVALID_TIME_IN_FORCE),
    ("above-band", buy("A", "c1", 10, "110.01"), R.PRICE_OUT_OF_BAND),
    ("below-band", sell("A", "c1", 10, "89.99"), R.PRICE_OUT_OF_BAND),
    ("collar-above", buy("R", "c1", 10, "102.01"), R.PRICE_COLLAR),
    ("collar-below", sell("R", "c1", 10, "97.99"), R.PRICE_COLLAR),
    ("max-qty", buy("R", "c1", 501), R.MAX_ORDER_QTY),
    ("max-notional", buy("R", "c1", 201), R.MAX_NOTIONAL),
    # a market order's notional uses the band high: 190 * 110.00 > $20,000
    ("max-notional-market", market("R", "c1", BUY, 190), R.MAX_NOTIONAL),
    # precedence: the first failing check wins
    ("participant-before-client-id", buy("ZZ", "", 0), R.UNKNOWN_PARTICIPANT),
    ("client-id-before-symbol", buy("A", "", 10, symbol="IBM"), R.INVALID_CLIENT_ORDER_ID),
    ("symbol-before-qty", buy("A", "c1", 0, symbol="IBM"), R.UNKNOWN_SYMBOL),
    ("qty-before-type", NewOrder("A", "c1", "AAPL", BUY, 0, P, MARKET), R.INVALID_QUANTITY),
    ("lot-before-tick", buy("A", "c1", 15, 2_500_100, "MSFT"), R.INVALID_LOT),
    ("type-before-display", NewOrder("A", "c1", "AAPL", BUY, 10, P, MARKET, display_qty=-1),
     R.INVALID_ORDER_TYPE),
    ("tick-before-display", buy("A", "c1", 10, 1_000_050, display_qty=-1), R.INVALID_TICK),
    ("display-before-min-qty", buy("A", "c1", 10, display_qty=-1, tif=IOC, min_qty=20),
     R.INVALID_DISPLAY_QTY),
    ("min-qty-before-tif", buy("A", "c1", 10, tif=IOC, post_only=True, min_qty=11),
     R.INVALID_MIN_QTY),
    ("tif-before-band", buy("A", "c1", 10, "120.00", tif=FOK, post_only=True),
     R.INVALID_TIME_IN_FORCE),
    ("band-before-collar", buy("R", "c1", 10, "115.00"), R.PRICE_OUT_OF_BAND),
    ("collar-before-max-qty", buy("R", "c1", 600, "103.00"), R.PRICE_COLLAR),
    ("max-qty-before-notional", buy("R", "c1", 600), R.MAX_ORDER_QTY),
]


@pytest.mark.parametrize(
    ("cmd", "reason"), [c[1:] for c in NEW_ORDER_REJECTS], ids=[c[0] for c in NEW_ORDER_REJECTS]
)
def test_new_order_rejects(make_venue, cmd, reason):
    v = make_venue(participants=("A", RESTRICTED))
    assert v.send(cmd) == [rejected(cmd, reason)]
    assert v.book() == []
    assert v.engine.next_order_id == 1


def test_limits_are_inclusive(make_venue):
    v = make_venue(participants=("A", RESTRICTED))
    ok = [
        buy("A", "a1", 10, "90.00"),  # band low
        sell("A", "a2", 10, "110.00"),  # band high
        buy("R", "r1", 100, "98.00"),  # collar edge (2% of 100.00)
        sell("R", "r2", 100, "102.00"),
        buy("R", "r3", 200, "98.00"),  # notional 196_000_000 <= 200_000_000
        market("R", "r4", BUY, 180),  # 180 * 110.00 = 198_000_000
    ]
    for cmd in ok:
        events = v.send(cmd)
        assert events[0] == accepted(cmd, events[0].order_id)


@pytest.mark.parametrize(
    ("state", "cmd", "reason"),
    [
        (CLOSED, buy("A", "c1", 10), R.MARKET_CLOSED),
        (CLOSED, buy("A", "c1", 10, tif=GTC), R.MARKET_CLOSED),
        (CLOSED, market("A", "c1", BUY, 10), R.MARKET_CLOSED),
        (CLOSED, buy("A", "c1", 10, "120.00"), R.MARKET_CLOSED),  # state before band
        (CLOSED, buy("A", "c1", 10, tif=IOC, post_only=True), R.INVALID_TIME_IN_FORCE),
        (PRE_OPEN, market("A", "c1", BUY, 10), R.NOT_ALLOWED_IN_STATE),
        (PRE_OPEN, buy("A", "c1", 10, tif=IOC), R.NOT_ALLOWED_IN_STATE),
        (PRE_OPEN, buy("A", "c1", 10, tif=FOK), R.NOT_ALLOWED_IN_STATE),
        (PRE_OPEN, buy("A", "c1", 10, post_only=True), R.NOT_ALLOWED_IN_STATE),
        (HALTED, market("A", "c1", SELL, 10), R.SYMBOL_HALTED),
        (HALTED, sell("A", "c1", 10, tif=IOC), R.SYMBOL_HALTED),
        (HALTED, sell("A", "c1", 10, tif=FOK), R.SYMBOL_HALTED),
        (HALTED, sell("A", "c1", 10, tif=GTC, post_only=True), R.SYMBOL_HALTED),
        (HALTED, buy("A", "c1", 10, "120.00", tif=IOC), R.SYMBOL_HALTED),  # state before band
        (PRE_OPEN, buy("A", "c1", 10, "120.00"), R.PRICE_OUT_OF_BAND),
    ],
)
def test_new_order_rejects_by_trading_state(make_venue, state, cmd, reason):
    v = make_venue(state=state)
    assert v.send(cmd) == [rejected(cmd, reason)]
    assert v.engine.next_order_id == 1


@pytest.mark.parametrize("state", [PRE_OPEN, HALTED])
def test_limit_orders_rest_without_matching_before_the_open(make_venue, state):
    v = make_venue(state=state)
    s1 = sell("A", "a1", 10, tif=GTC)
    b1 = buy("B", "b1", 10, "100.02")
    h1 = buy("C", "c1", 10, "100.01", display_qty=0)
    assert v.send(s1) == [accepted(s1, 1), add(1, SELL, P, 10)]
    assert v.send(b1) == [accepted(b1, 2), add(2, BUY, "100.02", 10)]
    assert v.send(h1) == [accepted(h1, 3)]
    assert v.book() == [
        row(2, "B", "b1", BUY, "100.02", 10),
        row(3, "C", "c1", BUY, "100.01", 10, 0, 0),
        row(1, "A", "a1", SELL, P, 10, tif=GTC),
    ]
    assert v.engine.next_trade_id == 1


def test_max_open_orders_counts_all_symbols_and_any_order(make_venue):
    v = make_venue(participants=(ParticipantSpec("L", max_open_orders=2), "B"))
    v.prep(sell("L", "l1", 10, "100.05"), buy("L", "l2", 10, "250.00", "MSFT"))
    ioc = buy("L", "l3", 10, tif=IOC)
    assert v.send(ioc) == [rejected(ioc, R.MAX_OPEN_ORDERS)]
    v.prep(CancelOrder("L", 1))
    assert v.send(ioc) == [rejected(ioc, R.DUPLICATE_CLIENT_ORDER_ID)]  # its id is spent
    again = buy("L", "l4", 10, tif=IOC)
    assert v.send(again) == [accepted(again, 3),
                             cancelled(3, "L", "l4", 10, 0, C.IMMEDIATE_OR_CANCEL)]


def test_client_order_ids_are_remembered_per_participant(venue):
    first = buy("A", "x", 10, tif=IOC)  # accepted then cancelled: still remembered
    venue.prep(first)
    again = buy("A", "x", 10)
    assert venue.send(again) == [rejected(again, R.DUPLICATE_CLIENT_ORDER_ID)]
    other = buy("B", "x", 10)  # another participant may use it
    assert venue.send(other) == [accepted(other, 2), add(2, BUY, P, 10)]
    bad = buy("A", "y", 0)  # a rejected order's id is spent too: the first verdict is final
    assert venue.send(bad) == [rejected(bad, R.INVALID_QUANTITY)]
    retry = buy("A", "y", 10)
    assert venue.send(retry) == [rejected(retry, R.DUPLICATE_CLIENT_ORDER_ID)]
    good = buy("A", "z", 10)
    assert venue.send(good) == [accepted(good, 3), add(3, BUY, P, 10)]
    ghost = buy("NOBODY", "w", 10)  # nothing to remember it by: an unknown participant
    assert venue.send(ghost) == [rejected(ghost, R.UNKNOWN_PARTICIPANT)]


@pytest.mark.parametrize("display", [None, 0], ids=["displayed", "hidden"])
def test_post_only(venue, display):
    venue.prep(sell("A", "a1", 10, display_qty=display))
    crossing = buy("B", "b1", 10, "100.01", post_only=True)
    assert venue.send(crossing) == [rejected(crossing, R.POST_ONLY_WOULD_CROSS)]
    passive = buy("B", "b2", 10, "99.99", post_only=True, tif=GTC)
    assert venue.send(passive) == [accepted(passive, 2), add(2, BUY, "99.99", 10)]
    touching = sell("C", "c1", 5, "99.99", post_only=True)
    assert venue.send(touching) == [rejected(touching, R.POST_ONLY_WOULD_CROSS)]


# ================================================================ continuous matching


def test_simple_cross_with_partial_fill(venue):
    venue.prep(sell("A", "a1", 100))
    b1 = buy("B", "b1", 30)
    assert venue.send(b1) == [
        accepted(b1, 2),
        fill(1, P, 30, BUY, (2, "B", "b1", 0), (1, "A", "a1", 70)),
        execd(1, 30, 1, P),
    ]
    assert venue.book() == [row(1, "A", "a1", SELL, P, 70)]
    b2 = buy("B", "b2", 100, "100.01")  # trades at the resting price, rests the rest
    assert venue.send(b2) == [
        accepted(b2, 3),
        fill(2, P, 70, BUY, (3, "B", "b2", 30), (1, "A", "a1", 0)),
        execd(1, 70, 2, P),
        add(3, BUY, "100.01", 30),
    ]
    assert venue.book() == [row(3, "B", "b2", BUY, "100.01", 30)]
    assert (venue.engine.next_order_id, venue.engine.next_trade_id) == (4, 3)


def test_price_time_priority_across_and_within_levels(venue):
    venue.prep(
        buy("A", "a1", 10, "99.98"),
        buy("B", "b1", 10, "99.99"),
        buy("C", "c1", 10, "99.99"),
        buy("A", "a2", 10, "100.00"),
    )
    s = sell("D", "d1", 35, "99.98")
    assert venue.send(s) == [
        accepted(s, 5),
        fill(1, "100.00", 10, SELL, (4, "A", "a2", 0), (5, "D", "d1", 25)),
        execd(4, 10, 1, "100.00"),
        fill(2, "99.99", 10, SELL, (2, "B", "b1", 0), (5, "D", "d1", 15)),
        execd(2, 10, 2, "99.99"),
        fill(3, "99.99", 10, SELL, (3, "C", "c1", 0), (5, "D", "d1", 5)),
        execd(3, 10, 3, "99.99"),
        fill(4, "99.98", 5, SELL, (1, "A", "a1", 5), (5, "D", "d1", 0)),
        execd(1, 5, 4, "99.98"),
    ]
    assert venue.book() == [row(1, "A", "a1", BUY, "99.98", 5)]


def test_no_trade_when_prices_do_not_cross(venue):
    venue.prep(sell("A", "a1", 10, "100.01"))
    b = buy("B", "b1", 10)
    assert venue.send(b) == [accepted(b, 2), add(2, BUY, P, 10)]
    assert venue.book() == [row(2, "B", "b1", BUY, P, 10), row(1, "A", "a1", SELL, "100.01", 10)]


def test_market_order_sweeps_levels_and_cancels_the_rest(venue):
    venue.prep(sell("A", "a1", 10), sell("B", "b1", 20, "100.01"), sell("C", "c1", 5, "100.03"))
    m = market("D", "d1", BUY, 50)
    assert venue.send(m) == [
        accepted(m, 4),
        fill(1, P, 10, BUY, (4, "D", "d1", 40), (1, "A", "a1", 0)),
        execd(1, 10, 1, P),
        fill(2, "100.01", 20, BUY, (4, "D", "d1", 20), (2, "B", "b1", 0)),
        execd(2, 20, 2, "100.01"),
        fill(3, "100.03", 5, BUY, (4, "D", "d1", 15), (3, "C", "c1", 0)),
        execd(3, 5, 3, "100.03"),
        cancelled(4, "D", "d1", 15, 0, C.IMMEDIATE_OR_CANCEL),
    ]
    assert venue.book() == []


def test_market_order_with_day_tif_never_rests(venue):
    m = market("D", "d1", SELL, 10)
    assert venue.send(m) == [accepted(m, 1), cancelled(1, "D", "d1", 10, 0, C.IMMEDIATE_OR_CANCEL)]
    assert venue.book() == []


def test_ioc_limit_fills_what_crosses_and_cancels_the_rest(venue):
    venue.prep(sell("A", "a1", 10), sell("B", "b1", 10, "100.02"))
    ioc = buy("D", "d1", 25, "100.01", tif=IOC)
    assert venue.send(ioc) == [
        accepted(ioc, 3),
        fill(1, P, 10, BUY, (3, "D", "d1", 15), (1, "A", "a1", 0)),
        execd(1, 10, 1, P),
        cancelled(3, "D", "d1", 15, 0, C.IMMEDIATE_OR_CANCEL),
    ]
    assert venue.book() == [row(2, "B", "b1", SELL, "100.02", 10)]


def test_fok_fills_across_levels(venue):
    venue.prep(sell("A", "a1", 10), sell("B", "b1", 15, "100.01"))
    fok = buy("D", "d1", 25, "100.01", tif=FOK)
    assert venue.send(fok) == [
        accepted(fok, 3),
        fill(1, P, 10, BUY, (3, "D", "d1", 15), (1, "A", "a1", 0)),
        execd(1, 10, 1, P),
        fill(2, "100.01", 15, BUY, (3, "D", "d1", 0), (2, "B", "b1", 0)),
        execd(2, 15, 2, "100.01"),
    ]
    assert venue.book() == []


@pytest.mark.parametrize(
    ("qty", "price"), [(26, "100.01"), (11, "100.00")], ids=["too-big", "beyond-limit"]
)
def test_fok_kills_without_touching_the_book(venue, qty, price):
    venue.prep(sell("A", "a1", 10), sell("B", "b1", 15, "100.01"))
    before = venue.book()
    fok = buy("D", "d1", qty, price, tif=FOK)
    assert venue.send(fok) == [accepted(fok, 3), cancelled(3, "D", "d1", qty, 0, C.FILL_OR_KILL)]
    assert venue.book() == before
    assert venue.engine.next_trade_id == 1


def test_fok_counts_iceberg_reserve_and_hidden_quantity(venue):
    venue.prep(sell("A", "a1", 30, display_qty=10), sell("B", "b1", 5, "100.01", display_qty=0))
    fok = buy("D", "d1", 35, "100.01", tif=FOK)
    assert venue.send(fok) == [
        accepted(fok, 3),
        fill(1, P, 10, BUY, (3, "D", "d1", 25), (1, "A", "a1", 20)),
        execd(1, 10, 1, P),
        add(1, SELL, P, 10),
        fill(2, P, 10, BUY, (3, "D", "d1", 15), (1, "A", "a1", 10)),
        execd(1, 10, 2, P),
        add(1, SELL, P, 10),
        fill(3, P, 10, BUY, (3, "D", "d1", 5), (1, "A", "a1", 0)),
        execd(1, 10, 3, P),
        fill(4, "100.01", 5, BUY, (3, "D", "d1", 0), (2, "B", "b1", 0)),
        hidden_print(4, "100.01", 5, SELL),
    ]
    assert venue.book() == []


@pytest.mark.parametrize(("qty", "fills"), [(25, True), (26, False)])
def test_market_fok_walks_every_level(venue, qty, fills):
    venue.prep(sell("A", "a1", 10), sell("B", "b1", 15, "105.00"))
    fok = market("D", "d1", BUY, qty, tif=FOK)
    events = venue.send(fok)
    if fills:
        assert events == [
            accepted(fok, 3),
            fill(1, P, 10, BUY, (3, "D", "d1", 15), (1, "A", "a1", 0)),
            execd(1, 10, 1, P),
            fill(2, "105.00", 15, BUY, (3, "D", "d1", 0), (2, "B", "b1", 0)),
            execd(2, 15, 2, "105.00"),
        ]
    else:
        assert events == [accepted(fok, 3), cancelled(3, "D", "d1", qty, 0, C.FILL_OR_KILL)]


def test_min_qty_ioc_met_trades_and_cancels_the_rest(venue):
    venue.prep(sell("A", "a1", 10), sell("B", "b1", 10, "100.01"), sell("C", "c1", 10, "100.02"))
    ioc = buy("D", "d1", 30, "100.01", tif=IOC, min_qty=20)
    assert venue.send(ioc) == [
        accepted(ioc, 4),
        fill(1, P, 10, BUY, (4, "D", "d1", 20), (1, "A", "a1", 0)),
        execd(1, 10, 1, P),
        fill(2, "100.01", 10, BUY, (4, "D", "d1", 10), (2, "B", "b1", 0)),
        execd(2, 10, 2, "100.01"),
        cancelled(4, "D", "d1", 10, 0, C.IMMEDIATE_OR_CANCEL),
    ]


@pytest.mark.parametrize(
    "cmd",
    [buy("D", "d1", 30, tif=IOC, min_qty=20), market("D", "d1", BUY, 40, tif=IOC, min_qty=35)],
    ids=["limit", "market"],
)
def test_min_qty_ioc_not_met_cancels_everything(venue, cmd):
    venue.prep(sell("A", "a1", 10), sell("B", "b1", 10, "100.01"), sell("C", "c1", 10, "100.02"))
    before = venue.book()
    assert venue.send(cmd) == [accepted(cmd, 4), cancelled(4, "D", "d1", cmd.qty, 0, C.MIN_QTY)]
    assert venue.book() == before


# ---------------------------------------------------------------- icebergs and hidden orders


def test_iceberg_shows_its_peak_and_refills_at_the_back(venue):
    ice = sell("A", "a1", 50, display_qty=20)
    assert venue.send(ice) == [accepted(ice, 1), add(1, SELL, P, 20)]
    venue.prep(sell("B", "b1", 10))
    b = buy("D", "d1", 25)
    assert venue.send(b) == [
        accepted(b, 3),
        fill(1, P, 20, BUY, (3, "D", "d1", 5), (1, "A", "a1", 30)),
        execd(1, 20, 1, P),
        add(1, SELL, P, 20),  # refilled behind b1
        fill(2, P, 5, BUY, (3, "D", "d1", 0), (2, "B", "b1", 5)),
        execd(2, 5, 2, P),
    ]
    assert venue.book() == [
        row(2, "B", "b1", SELL, P, 5),
        row(1, "A", "a1", SELL, P, 30, 20, 20),
    ]


def test_iceberg_last_tranche_is_what_is_left(venue):
    venue.prep(sell("A", "a1", 25, display_qty=10))
    b = buy("D", "d1", 20)
    assert venue.send(b) == [
        accepted(b, 2),
        fill(1, P, 10, BUY, (2, "D", "d1", 10), (1, "A", "a1", 15)),
        execd(1, 10, 1, P),
        add(1, SELL, P, 10),
        fill(2, P, 10, BUY, (2, "D", "d1", 0), (1, "A", "a1", 5)),
        execd(1, 10, 2, P),
        add(1, SELL, P, 5),
    ]
    assert venue.book() == [row(1, "A", "a1", SELL, P, 5, 5, 10)]


def test_incoming_iceberg_rests_with_its_peak(venue):
    venue.prep(sell("A", "a1", 10))
    ice = buy("B", "b1", 50, display_qty=15)
    assert venue.send(ice) == [
        accepted(ice, 2),
        fill(1, P, 10, BUY, (2, "B", "b1", 40), (1, "A", "a1", 0)),
        execd(1, 10, 1, P),
        add(2, BUY, P, 15),
    ]
    big_peak = buy("C", "c1", 30, "99.99", display_qty=100)
    assert venue.send(big_peak) == [accepted(big_peak, 3), add(3, BUY, "99.99", 30)]
    assert venue.book() == [
        row(2, "B", "b1", BUY, P, 40, 15, 15),
        row(3, "C", "c1", BUY, "99.99", 30, 30, 100),
    ]


def test_hidden_orders_trade_after_displayed_at_their_price_and_print(venue):
    h1 = sell("A", "a1", 10, display_qty=0)
    assert venue.send(h1) == [accepted(h1, 1)]  # no market data for a hidden order
    venue.prep(sell("B", "b1", 10), sell("C", "c1", 10, "99.99", display_qty=0))
    assert venue.book() == [
        row(3, "C", "c1", SELL, "99.99", 10, 0, 0),
        row(2, "B", "b1", SELL, P, 10),
        row(1, "A", "a1", SELL, P, 10, 0, 0),
    ]
    b = buy("D", "d1", 30)
    assert venue.send(b) == [
        accepted(b, 4),
        fill(1, "99.99", 10, BUY, (4, "D", "d1", 20), (3, "C", "c1", 0)),
        hidden_print(1, "99.99", 10, SELL),
        fill(2, P, 10, BUY, (4, "D", "d1", 10), (2, "B", "b1", 0)),
        execd(2, 10, 2, P),
        fill(3, P, 10, BUY, (4, "D", "d1", 0), (1, "A", "a1", 0)),
        hidden_print(3, P, 10, SELL),
    ]
    assert venue.book() == []


def test_hidden_order_trades_its_full_leaves(venue):
    venue.prep(buy("A", "a1", 50, display_qty=0))
    s = sell("D", "d1", 30, tif=IOC)
    assert venue.send(s) == [
        accepted(s, 2),
        fill(1, P, 30, SELL, (1, "A", "a1", 20), (2, "D", "d1", 0)),
        hidden_print(1, P, 30, BUY),
    ]
    assert venue.book() == [row(1, "A", "a1", BUY, P, 20, 0, 0)]


# ================================================================ cancel and reduce


@pytest.mark.parametrize(
    ("display", "book_events"),
    [(None, [delete(1)]), (20, [delete(1)]), (0, [])],
    ids=["plain", "iceberg", "hidden"],
)
def test_cancel(venue, display, book_events):
    venue.prep(buy("A", "a1", 50, display_qty=display))
    assert venue.send(CancelOrder("A", 1)) == [
        cancelled(1, "A", "a1", 50, 0, C.USER), *book_events
    ]
    assert venue.book() == []
    again = CancelOrder("A", 1, client_order_id="k2")
    assert venue.send(again) == [rejected(again, R.UNKNOWN_ORDER, 1)]


def test_reduce_keeps_priority(venue):
    venue.prep(buy("A", "a1", 100), buy("B", "b1", 10))
    assert venue.send(CancelOrder("A", 1, 40)) == [
        cancelled(1, "A", "a1", 60, 40, C.USER), shrink(1, 60)
    ]
    assert venue.book() == [row(1, "A", "a1", BUY, P, 40), row(2, "B", "b1", BUY, P, 10)]


def test_reduce_iceberg_and_hidden(venue):
    venue.prep(buy("A", "a1", 50, display_qty=20), buy("B", "b1", 50, display_qty=0))
    assert venue.send(CancelOrder("A", 1, 30)) == [cancelled(1, "A", "a1", 20, 30, C.USER)]
    assert venue.send(CancelOrder("A", 1, 20)) == [cancelled(1, "A", "a1", 10, 20, C.USER)]
    assert venue.send(CancelOrder("A", 1, 10)) == [
        cancelled(1, "A", "a1", 10, 10, C.USER), shrink(1, 10)
    ]
    assert venue.send(CancelOrder("B", 2, 5)) == [cancelled(2, "B", "b1", 45, 5, C.USER)]
    assert venue.book() == [
        row(1, "A", "a1", BUY, P, 10, 10, 20),
        row(2, "B", "b1", BUY, P, 5, 0, 0),
    ]


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (CancelOrder("ZZ", 1, 0, "k"), R.UNKNOWN_PARTICIPANT),
        (CancelOrder("ZZ", 99, -1, "k"), R.UNKNOWN_PARTICIPANT),
        (CancelOrder("A", 99, 0, "k"), R.UNKNOWN_ORDER),
        (CancelOrder("B", 1, 0, "k"), R.UNKNOWN_ORDER),
        (CancelOrder("B", 1, -5, "k"), R.UNKNOWN_ORDER),
        (CancelOrder("A", 1, -10, "k"), R.INVALID_QUANTITY),
        (CancelOrder("A", 1, 100, "k"), R.INVALID_QUANTITY),
        (CancelOrder("A", 1, 150, ""), R.INVALID_QUANTITY),
        (CancelOrder("A", 2, 15, "k"), R.INVALID_QUANTITY),  # MSFT lot is 10
    ],
    ids=["participant", "participant-first", "no-order", "not-owner", "owner-before-qty",
         "negative", "equal-leaves", "above-leaves", "lot"],
)
def test_cancel_rejects(venue, cmd, reason):
    venue.prep(sell("A", "a1", 100), sell("A", "a2", 20, "250.00", "MSFT"))
    before = venue.book()
    assert venue.send(cmd) == [rejected(cmd, reason, cmd.order_id)]
    assert venue.book() == before


@pytest.mark.parametrize("state", [HALTED, CLOSED])
def test_cancel_allowed_in_any_state(venue, state):
    venue.prep(sell("A", "a1", 100, tif=GTC), SetTradingState("AAPL", state))
    assert venue.send(CancelOrder("A", 1, 60)) == [
        cancelled(1, "A", "a1", 40, 60, C.USER), shrink(1, 40)
    ]
    assert venue.send(CancelOrder("A", 1)) == [cancelled(1, "A", "a1", 60, 0, C.USER), delete(1)]


# ================================================================ replace

REPLACE_REJECTS = [
    ("participant", replace("ZZ", 1, "n", P, 100), R.UNKNOWN_PARTICIPANT),
    ("no-order", replace("R", 99, "n", P, 100), R.UNKNOWN_ORDER),
    ("not-owner", replace("R", 3, "n", "100.05", 10), R.UNKNOWN_ORDER),
    ("empty-client-id", replace("R", 1, "", P, 100), R.INVALID_CLIENT_ORDER_ID),
    ("same-client-id", replace("R", 1, "r1", P, 90), R.DUPLICATE_CLIENT_ORDER_ID),
    ("used-client-id", replace("R", 1, "r2", P, 90), R.DUPLICATE_CLIENT_ORDER_ID),
    ("zero-qty", replace("R", 1, "n", P, 0), R.INVALID_QUANTITY),
    ("negative-qty", replace("R", 1, "n", P, -10), R.INVALID_QUANTITY),
    ("lot", replace("R", 2, "n", "250.00", 15), R.INVALID_LOT),
    ("zero-price", replace("R", 1, "n", 0, 100), R.INVALID_PRICE),
    ("tick", replace("R", 1, "n", 1_000_050, 100), R.INVALID_TICK),
    ("negative-display", replace("R", 1, "n", P, 100, -1), R.INVALID_DISPLAY_QTY),
    ("display-lot", replace("R", 2, "n", "250.00", 20, 5), R.INVALID_DISPLAY_QTY),
    ("band", replace("R", 1, "n", "111.00", 100), R.PRICE_OUT_OF_BAND),
    ("collar", replace("R", 1, "n", "102.01", 100), R.PRICE_COLLAR),
    ("max-qty", replace("R", 1, "n", P, 501), R.MAX_ORDER_QTY),
    ("max-notional", replace("R", 1, "n", P, 201), R.MAX_NOTIONAL),
    ("post-only-cross", replace("R", 4, "n", "100.05", 10), R.POST_ONLY_WOULD_CROSS),
    # precedence
    ("order-before-client-id", replace("R", 99, "", P, 100), R.UNKNOWN_ORDER),
    ("client-id-before-qty", replace("R", 1, "r1", P, 0), R.DUPLICATE_CLIENT_ORDER_ID),
    ("lot-before-tick", replace("R", 2, "n", 2_500_100, 15), R.INVALID_LOT),
    ("qty-before-price", replace("R", 1, "n", 0, 0), R.INVALID_QUANTITY),
    ("tick-before-display", replace("R", 1, "n", 1_000_050, 100, -1), R.INVALID_TICK),
    ("display-before-band", replace("R", 1, "n", "120.00", 100, -1), R.INVALID_DISPLAY_QTY),
    ("collar-before-max-qty", replace("R", 1, "n", "103.00", 600), R.PRICE_COLLAR),
    ("max-qty-before-notional", replace("R", 1, "n", P, 600), R.MAX_ORDER_QTY),
]


@pytest.mark.parametrize(
    ("cmd", "reason"), [c[1:] for c in REPLACE_REJECTS], ids=[c[0] for c in REPLACE_REJECTS]
)
def test_replace_rejects(make_venue, cmd, reason):
    v = make_venue(participants=(RESTRICTED, "B"))
    v.prep(
        buy("R", "r1", 100),
        sell("R", "r2", 20, "250.00", "MSFT"),
        sell("B", "b1", 10, "100.05"),
        buy("R", "r3", 10, "99.00", post_only=True),
    )
    before = v.book()
    assert v.send(cmd) == [rejected(cmd, reason, cmd.order_id)]
    assert v.book() == before
    assert v.engine.next_order_id == 5
    if cmd.client_order_id == "n":  # a refused replace does not use up its client id
        ok = replace("R", 1, "n", P, 50)
        assert v.send(ok) == [replaced(1, 1, "R", "n", "r1", BUY, P, 50), shrink(1, 50)]


def test_replace_rejected_by_kill_switch_and_closed_market(venue):
    venue.prep(buy("A", "a1", 10, tif=GTC), buy("B", "b1", 10, tif=GTC))
    venue.prep(SetTradingState("AAPL", CLOSED))
    closed = replace("A", 1, "a2", "99.00", 10)
    assert venue.send(closed) == [rejected(closed, R.MARKET_CLOSED, 1)]
    empty = replace("A", 1, "", "99.00", 10)  # the client id is checked before the state
    assert venue.send(empty) == [rejected(empty, R.INVALID_CLIENT_ORDER_ID, 1)]
    venue.prep(KillSwitch("B"))
    killed = replace("B", 2, "b2", "99.00", 10)  # before UNKNOWN_ORDER (the order is gone)
    assert venue.send(killed) == [rejected(killed, R.KILL_SWITCH, 2)]


def test_replace_down_keeps_priority(venue):
    venue.prep(buy("A", "a1", 100), buy("B", "b1", 10))
    assert venue.send(replace("A", 1, "a2", P, 60)) == [
        replaced(1, 1, "A", "a2", "a1", BUY, P, 60), shrink(1, 40)
    ]
    assert venue.send(replace("A", 1, "a3", P, 60)) == [
        replaced(1, 1, "A", "a3", "a2", BUY, P, 60)
    ]
    assert venue.book() == [row(1, "A", "a3", BUY, P, 60), row(2, "B", "b1", BUY, P, 10)]
    assert venue.engine.next_order_id == 3
    for cid in ("a1", "a2", "a3"):  # every accepted client id stays used
        cmd = buy("A", cid, 1)
        assert venue.send(cmd) == [rejected(cmd, R.DUPLICATE_CLIENT_ORDER_ID)]
    assert venue.send(CancelOrder("A", 1)) == [cancelled(1, "A", "a3", 60, 0, C.USER), delete(1)]


def test_replace_iceberg_keeping_priority(venue):
    venue.prep(sell("A", "a1", 50, display_qty=20))
    assert venue.send(replace("A", 1, "a2", P, 30, 20)) == [
        replaced(1, 1, "A", "a2", "a1", SELL, P, 30, 20)
    ]
    assert venue.send(replace("A", 1, "a3", P, 20)) == [
        replaced(1, 1, "A", "a3", "a2", SELL, P, 20, 20)
    ]
    assert venue.send(replace("A", 1, "a4", P, 15)) == [
        replaced(1, 1, "A", "a4", "a3", SELL, P, 15, 20), shrink(1, 5)
    ]
    assert venue.book() == [row(1, "A", "a4", SELL, P, 15, 15, 20)]


def test_replace_up_loses_priority(venue):
    venue.prep(buy("A", "a1", 10), buy("B", "b1", 10))
    assert venue.send(replace("A", 1, "a2", P, 20)) == [
        replaced(1, 3, "A", "a2", "a1", BUY, P, 20), moved(1, 3, P, 20)
    ]
    assert venue.book() == [row(2, "B", "b1", BUY, P, 10), row(3, "A", "a2", BUY, P, 20)]
    old = CancelOrder("A", 1)
    assert venue.send(old) == [rejected(old, R.UNKNOWN_ORDER, 1)]
    assert venue.engine.next_order_id == 4


def test_replace_to_a_new_price_moves_the_order(venue):
    venue.prep(buy("A", "a1", 10), buy("B", "b1", 10, "99.99"))
    assert venue.send(replace("A", 1, "a2", "99.99", 5)) == [
        replaced(1, 3, "A", "a2", "a1", BUY, "99.99", 5), moved(1, 3, "99.99", 5)
    ]
    assert venue.book() == [
        row(2, "B", "b1", BUY, "99.99", 10), row(3, "A", "a2", BUY, "99.99", 5)
    ]


@pytest.mark.parametrize(
    ("old_display", "new_display", "price", "book_events", "visible"),
    [
        (None, 0, P, [delete(1)], 0),
        (20, 0, P, [delete(1)], 0),
        (0, 5, P, [add(2, SELL, P, 5)], 5),
        (0, None, "100.01", [], 0),  # None keeps "hidden"
        (20, 10, P, [moved(1, 2, P, 10)], 10),
        (20, None, "100.01", [moved(1, 2, "100.01", 20)], 20),
    ],
    ids=["plain-to-hidden", "iceberg-to-hidden", "hidden-to-iceberg", "hidden-moves",
         "new-peak", "iceberg-moves"],
)
def test_replace_display_changes(venue, old_display, new_display, price, book_events, visible):
    venue.prep(sell("A", "a1", 50, display_qty=old_display))
    display = old_display if new_display is None else new_display
    assert venue.send(replace("A", 1, "a2", price, 50, new_display)) == [
        replaced(1, 2, "A", "a2", "a1", SELL, price, 50, display), *book_events
    ]
    assert venue.book() == [row(2, "A", "a2", SELL, price, 50, visible, display)]


def test_crossing_replace_trades_as_a_new_order(venue):
    venue.prep(buy("A", "a1", 10, "99.99"), sell("B", "b1", 10))
    assert venue.send(replace("A", 1, "a2", P, 15)) == [
        replaced(1, 3, "A", "a2", "a1", BUY, P, 15),
        delete(1),
        fill(1, P, 10, BUY, (3, "A", "a2", 5), (2, "B", "b1", 0)),
        execd(2, 10, 1, P),
        add(3, BUY, P, 5),
    ]
    assert venue.book() == [row(3, "A", "a2", BUY, P, 5)]


def test_crossing_replace_of_a_hidden_order_fully_filled(venue):
    venue.prep(sell("A", "a1", 10, "100.02", display_qty=0), buy("B", "b1", 4))
    assert venue.send(replace("A", 1, "a2", "99.99", 4)) == [
        replaced(1, 3, "A", "a2", "a1", SELL, "99.99", 4, 0),
        fill(1, P, 4, SELL, (2, "B", "b1", 0), (3, "A", "a2", 0)),
        execd(2, 4, 1, P),
    ]
    assert venue.book() == []


def test_crossing_replace_before_the_open_just_moves(make_venue):
    v = make_venue(state=PRE_OPEN)
    v.prep(sell("A", "a1", 10), buy("B", "b1", 10, "99.99"))
    assert v.send(replace("B", 2, "b2", "100.01", 10)) == [
        replaced(2, 3, "B", "b2", "b1", BUY, "100.01", 10), moved(2, 3, "100.01", 10)
    ]
    assert v.engine.next_trade_id == 1


def test_crossing_replace_stopped_by_self_trade_prevention(make_venue):
    v = stp_venue(make_venue, StpMode.CANCEL_NEWEST)
    v.prep(sell("A", "a1", 10), buy("A", "a2", 10, "99.99"))
    assert v.send(replace("A", 2, "a3", P, 10)) == [
        replaced(2, 3, "A", "a3", "a2", BUY, P, 10),
        delete(2),
        cancelled(3, "A", "a3", 10, 0, C.SELF_TRADE),
    ]
    assert v.book() == [row(1, "A", "a1", SELL, P, 10)]


def test_post_only_order_may_be_replaced_passively(venue):
    venue.prep(sell("B", "b1", 10, "100.05"), buy("A", "a1", 10, post_only=True))
    assert venue.send(replace("A", 2, "a2", "100.04", 10)) == [
        replaced(2, 3, "A", "a2", "a1", BUY, "100.04", 10), moved(2, 3, "100.04", 10)
    ]


# ================================================================ self-trade prevention


def test_stp_none_lets_a_participant_trade_with_itself(make_venue):
    v = stp_venue(make_venue, StpMode.NONE)
    v.prep(sell("A", "a1", 10))
    b = buy("A", "a2", 10)
    assert v.send(b) == [
        accepted(b, 2),
        fill(1, P, 10, BUY, (2, "A", "a2", 0), (1, "A", "a1", 0)),
        execd(1, 10, 1, P),
    ]


def test_stp_cancel_newest(make_venue):
    v = stp_venue(make_venue, StpMode.CANCEL_NEWEST)
    v.prep(sell("B", "b1", 10), sell("A", "a1", 10, "100.01"))
    b = buy("A", "a2", 20, "100.01")
    assert v.send(b) == [
        accepted(b, 3),
        fill(1, P, 10, BUY, (3, "A", "a2", 10), (1, "B", "b1", 0)),
        execd(1, 10, 1, P),
        cancelled(3, "A", "a2", 10, 0, C.SELF_TRADE),
    ]
    assert v.book() == [row(2, "A", "a1", SELL, "100.01", 10)]


@pytest.mark.parametrize("display", [None, 0], ids=["displayed", "hidden"])
def test_stp_cancel_oldest(make_venue, display):
    v = stp_venue(make_venue, StpMode.CANCEL_OLDEST)
    v.prep(sell("A", "a1", 10, "99.99", display_qty=display), sell("B", "b1", 10))
    b = buy("A", "a2", 15)
    assert v.send(b) == [
        accepted(b, 3),
        cancelled(1, "A", "a1", 10, 0, C.SELF_TRADE),
        *([delete(1)] if display is None else []),
        fill(1, P, 10, BUY, (3, "A", "a2", 5), (2, "B", "b1", 0)),
        execd(2, 10, 1, P),
        add(3, BUY, P, 5),
    ]
    assert v.book() == [row(3, "A", "a2", BUY, P, 5)]


def test_stp_cancel_both(make_venue):
    v = stp_venue(make_venue, StpMode.CANCEL_BOTH)
    v.prep(sell("A", "a1", 10), sell("B", "b1", 10))
    b = buy("A", "a2", 15)
    assert v.send(b) == [
        accepted(b, 3),
        cancelled(1, "A", "a1", 10, 0, C.SELF_TRADE),
        delete(1),
        cancelled(3, "A", "a2", 15, 0, C.SELF_TRADE),
    ]
    assert v.book() == [row(2, "B", "b1", SELL, P, 10)]


@pytest.mark.parametrize(
    ("mode", "qty", "outcome"),
    [
        (StpMode.NONE, 20, "fills"),  # own order counts
        (StpMode.CANCEL_OLDEST, 10, "fills"),  # own order skipped, b1 is enough
        (StpMode.CANCEL_OLDEST, 15, "killed"),
        (StpMode.CANCEL_NEWEST, 10, "killed"),  # the walk stops at the own order
        (StpMode.CANCEL_BOTH, 10, "killed"),
    ],
)
def test_fok_available_quantity_under_stp(make_venue, mode, qty, outcome):
    v = stp_venue(make_venue, mode)
    v.prep(sell("A", "a1", 10), sell("B", "b1", 10))
    before = v.book()
    fok = buy("A", "a2", qty, tif=FOK)
    events = v.send(fok)
    if outcome == "killed":
        assert events == [accepted(fok, 3), cancelled(3, "A", "a2", qty, 0, C.FILL_OR_KILL)]
        assert v.book() == before
    elif mode is StpMode.NONE:
        assert events == [
            accepted(fok, 3),
            fill(1, P, 10, BUY, (3, "A", "a2", 10), (1, "A", "a1", 0)),
            execd(1, 10, 1, P),
            fill(2, P, 10, BUY, (3, "A", "a2", 0), (2, "B", "b1", 0)),
            execd(2, 10, 2, P),
        ]
    else:
        assert events == [
            accepted(fok, 3),
            cancelled(1, "A", "a1", 10, 0, C.SELF_TRADE),
            delete(1),
            fill(1, P, 10, BUY, (3, "A", "a2", 0), (2, "B", "b1", 0)),
            execd(2, 10, 1, P),
        ]


def test_min_qty_walk_stops_at_own_order_under_cancel_newest(make_venue):
    v = stp_venue(make_venue, StpMode.CANCEL_NEWEST)
    v.prep(sell("B", "b1", 10), sell("A", "a1", 10), sell("C", "c1", 10))
    ioc = buy("A", "a2", 30, tif=IOC, min_qty=15)
    assert v.send(ioc) == [accepted(ioc, 4), cancelled(4, "A", "a2", 30, 0, C.MIN_QTY)]


# ================================================================ kill switch


def test_kill_switch_cancels_all_orders_and_blocks_entry(venue):
    venue.prep(
        sell("A", "a1", 10, "100.02"),
        buy("B", "b1", 10, "99.00"),
        buy("A", "a2", 10, "99.50", display_qty=0),
        buy("A", "a3", 20, "250.00", "MSFT", tif=GTC),
        sell("A", "a4", 30, "100.05", display_qty=10),
    )
    assert venue.send(KillSwitch("A")) == [
        cancelled(1, "A", "a1", 10, 0, C.KILL_SWITCH),
        delete(1),
        cancelled(3, "A", "a2", 10, 0, C.KILL_SWITCH),
        cancelled(4, "A", "a3", 20, 0, C.KILL_SWITCH, "MSFT"),
        delete(4, "MSFT"),
        cancelled(5, "A", "a4", 30, 0, C.KILL_SWITCH),
        delete(5),
        ParticipantUpdated(T, ParticipantSpec("A"), True),
    ]
    assert venue.book() == [row(2, "B", "b1", BUY, "99.00", 10)]
    blocked = buy("A", "", 10)  # the kill switch is checked before the client id
    assert venue.send(blocked) == [rejected(blocked, R.KILL_SWITCH)]
    gone = CancelOrder("A", 1)
    assert venue.send(gone) == [rejected(gone, R.UNKNOWN_ORDER, 1)]
    spec = ParticipantSpec("A", max_order_qty=100)
    assert venue.send(SetParticipant(spec)) == [ParticipantUpdated(T, spec, True)]
    assert venue.send(KillSwitch("A", engaged=False)) == [ParticipantUpdated(T, spec, False)]
    again = buy("A", "a5", 10)
    assert venue.send(again) == [accepted(again, 6), add(6, BUY, P, 10)]


def test_kill_switch_with_no_orders(venue):
    assert venue.send(KillSwitch("C")) == [ParticipantUpdated(T, ParticipantSpec("C"), True)]
    assert venue.send(KillSwitch("C")) == [ParticipantUpdated(T, ParticipantSpec("C"), True)]


# ================================================================ auctions


def test_opening_auction_executes_at_max_volume(make_venue):
    v = make_venue(state=PRE_OPEN)
    v.prep(
        buy("A", "a1", 100, "100.02"),
        buy("B", "b1", 50, "100.00"),
        sell("C", "c1", 80, "99.99"),
        sell("D", "d1", 60, "100.02"),
    )
    price = "100.02"
    assert v.send(SetTradingState("AAPL", OPEN)) == [
        fill(1, price, 80, None, (1, "A", "a1", 20), (3, "C", "c1", 0)),
        execd(1, 80, 1, price, True),
        execd(3, 80, 1, price, True),
        fill(2, price, 20, None, (1, "A", "a1", 0), (4, "D", "d1", 40)),
        execd(1, 20, 2, price, True),
        execd(4, 20, 2, price, True),
        cross_print(2, price, 100),
        status(OPEN, price),
    ]
    assert v.book() == [
        row(2, "B", "b1", BUY, "100.00", 50), row(4, "D", "d1", SELL, "100.02", 40)
    ]


AUCTIONS = [
    # (id, bids [(qty, price)], asks, expected (price, volume) or None)
    ("max-volume", [(100, "100.02"), (50, "100.00")], [(80, "99.99"), (60, "100.02")],
     ("100.02", 100)),
    # every price executes 10; |surplus| is 4, 4, 1: the least surplus wins over the reference
    ("min-surplus", [(10, "100.02"), (4, "100.00")], [(10, "99.98"), (1, "100.02")],
     ("100.02", 10)),
    ("buy-pressure", [(20, "100.02")], [(5, "99.98"), (5, "100.00")], ("100.02", 10)),
    ("sell-pressure", [(5, "100.02"), (5, "100.00")], [(20, "99.98")], ("99.98", 10)),
    ("reference", [(10, "100.01")], [(10, "99.98")], ("100.01", 10)),
    ("reference-below", [(10, "100.03")], [(10, "99.99")], ("99.99", 10)),
    # surpluses +5, +5, -5, -5: no market pressure, the reference decides
    ("mixed-surplus", [(10, "100.04"), (5, "100.02")], [(10, "100.01"), (5, "100.03")],
     ("100.01", 10)),
    ("lower-price", [(10, "100.02")], [(10, "99.98")], ("99.98", 10)),
    ("no-cross", [(10, "99.99")], [(10, "100.00")], None),
    ("one-sided", [(10, "99.99"), (5, "100.01")], [], None),
]


@pytest.mark.parametrize(
    ("bids", "asks", "expected"), [a[1:] for a in AUCTIONS], ids=[a[0] for a in AUCTIONS]
)
def test_auction_price_tie_breaks(make_venue, bids, asks, expected):
    v = make_venue(state=PRE_OPEN)
    v.prep(*[buy("A", f"b{i}", q, p) for i, (q, p) in enumerate(bids)])
    v.prep(*[sell("B", f"s{i}", q, p) for i, (q, p) in enumerate(asks)])
    events = v.send(SetTradingState("AAPL", OPEN))
    if expected is None:
        assert events == [status(OPEN, P)]
        return
    price, volume = expected
    executions = [e for e in events if isinstance(e, Execution)]
    assert {e.price for e in executions} == {px(price)}
    assert sum(e.qty for e in executions) == volume
    assert all(e.aggressor is None for e in executions)
    assert events[-2:] == [cross_print(executions[-1].trade_id, price, volume), status(OPEN, price)]


def test_auction_with_iceberg_and_hidden_orders_refills_after_the_print(make_venue):
    v = make_venue(state=PRE_OPEN)
    v.prep(
        buy("A", "a1", 80, "100.01", display_qty=10),
        buy("B", "b1", 20, "100.00", display_qty=0),
        sell("C", "c1", 30, "99.99"),
        sell("D", "d1", 25, "100.00", display_qty=0),
    )
    # V = 30 at 99.99, 55 at 100.00 (surplus +45) and 55 at 100.01 (surplus +25)
    price = "100.01"
    assert v.send(SetTradingState("AAPL", OPEN)) == [
        fill(1, price, 30, None, (1, "A", "a1", 50), (3, "C", "c1", 0)),
        execd(1, 10, 1, price, True),  # only the visible tranche shows as executed
        execd(3, 30, 1, price, True),
        fill(2, price, 25, None, (1, "A", "a1", 25), (4, "D", "d1", 0)),
        cross_print(2, price, 55),
        add(1, BUY, price, 10),
        status(OPEN, price),
    ]
    assert v.book() == [
        row(1, "A", "a1", BUY, price, 25, 10, 10),
        row(2, "B", "b1", BUY, "100.00", 20, 0, 0),
    ]


def test_auction_partly_fills_a_hidden_order_without_market_data(make_venue):
    v = make_venue(state=PRE_OPEN)
    v.prep(buy("A", "a1", 30, display_qty=0), sell("B", "b1", 10, "99.99", display_qty=10))
    price = "100.00"  # V = 10 at 99.99 and 100.00, surplus +20 at both: the highest
    assert v.send(SetTradingState("AAPL", OPEN)) == [
        fill(1, price, 10, None, (1, "A", "a1", 20), (2, "B", "b1", 0)),
        execd(2, 10, 1, price, True),
        cross_print(1, price, 10),
        status(OPEN, price),
    ]
    assert v.book() == [row(1, "A", "a1", BUY, price, 20, 0, 0)]


def test_auction_ignores_self_trade_prevention(make_venue):
    v = make_venue(participants=(ParticipantSpec("A", stp=StpMode.CANCEL_BOTH),), state=PRE_OPEN)
    v.prep(buy("A", "a1", 10), sell("A", "a2", 10))
    assert v.send(SetTradingState("AAPL", OPEN)) == [
        fill(1, P, 10, None, (1, "A", "a1", 0), (2, "A", "a2", 0)),
        execd(1, 10, 1, P, True),
        execd(2, 10, 1, P, True),
        cross_print(1, P, 10),
        status(OPEN, P),
    ]


def test_halt_and_reopening_auction_moves_the_reference_and_band(venue):
    venue.prep(sell("A", "a1", 10, "100.02"))
    assert venue.send(SetTradingState("AAPL", HALTED)) == [status(HALTED, P)]
    b = buy("B", "b1", 10, "100.04")
    assert venue.send(b) == [accepted(b, 2), add(2, BUY, "100.04", 10)]
    price = "100.02"  # surplus 0 at 100.02 and 100.04: closest to the reference 100.00
    assert venue.send(SetTradingState("AAPL", OPEN)) == [
        fill(1, price, 10, None, (2, "B", "b1", 0), (1, "A", "a1", 0)),
        execd(2, 10, 1, price, True),
        execd(1, 10, 1, price, True),
        cross_print(1, price, 10),
        status(OPEN, price),
    ]
    # the band is now 100.02 +/- 10.002: [90.0180, 110.0220]
    inside = buy("C", "c1", 10, "110.02")
    assert venue.send(inside)[0] == accepted(inside, 3)
    outside = buy("C", "c2", 10, "110.03")
    assert venue.send(outside) == [rejected(outside, R.PRICE_OUT_OF_BAND)]
    assert venue.send(SetTradingState("AAPL", HALTED)) == [status(HALTED, price)]


# ================================================================ close


def test_close_expires_day_orders_in_order_id_order_and_keeps_gtc(venue):
    venue.prep(
        buy("A", "a1", 10, "99.00"),
        sell("B", "b1", 10, "101.00", tif=GTC),
        sell("C", "c1", 10, "101.00", display_qty=0),
        sell("A", "a2", 20, "250.00", "MSFT"),
        buy("D", "d1", 30, "99.50", display_qty=10),
    )
    assert venue.send(SetTradingState("AAPL", CLOSED)) == [
        cancelled(1, "A", "a1", 10, 0, C.EXPIRED),
        delete(1),
        cancelled(3, "C", "c1", 10, 0, C.EXPIRED),
        cancelled(5, "D", "d1", 30, 0, C.EXPIRED),
        delete(5),
        status(CLOSED, P),
    ]
    assert venue.book() == [
        row(2, "B", "b1", SELL, "101.00", 10, tif=GTC),
        row(4, "A", "a2", SELL, "250.00", 20, symbol="MSFT"),
    ]
    late = buy("A", "a3", 10)
    assert venue.send(late) == [rejected(late, R.MARKET_CLOSED)]
    assert venue.send(SetTradingState("AAPL", PRE_OPEN)) == [status(PRE_OPEN, P)]
    assert venue.send(SetTradingState("AAPL", OPEN)) == [status(OPEN, P)]
    assert venue.book()[0] == row(2, "B", "b1", SELL, "101.00", 10, tif=GTC)


def test_every_command_has_one_outcome_stamped_with_its_ts(venue):
    commands = [
        buy("A", "a1", 10), sell("B", "b1", 5), CancelOrder("A", 1, 2),
        replace("A", 1, "a2", "99.00", 2), KillSwitch("C"), SetTradingState("AAPL", HALTED),
    ]
    for ts, cmd in enumerate(commands, start=100):
        events = venue.engine.process(cmd, ts)
        assert events and all(e.ts == ts for e in events)
    assert (venue.engine.next_order_id, venue.engine.next_trade_id) == (4, 2)
