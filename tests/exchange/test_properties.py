"""Invariants that hold after every command of any random stream.

- An open book is never crossed; every resting order is in exactly one queue and the id index.
- Quantities are conserved: for every order, accepted (or replaced) quantity = executed +
  cancelled + leaves, and each event's leaves figure agrees with that ledger.
- Executions respect both limit prices; market data events alone rebuild exactly the engine's
  displayed book, queue order included (what an ITCH subscriber will see).
- Open order counts per participant match the book.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from agora.core.enums import OrderType, Side, TradingState
from agora.core.events import (
    BookAdd,
    BookCancel,
    BookDelete,
    BookExecute,
    BookReplace,
    Execution,
    OrderAccepted,
    OrderCancelled,
    OrderReplaced,
)
from agora.exchange.engine import MatchingEngine
from tests.exchange.streams import resolve, setup, streams


class Ledger:
    """Tracks every order's open quantity and limit from outcome events only."""

    def __init__(self) -> None:
        self.leaves: dict[int, int] = {}
        self.limit: dict[int, tuple[Side, int | None]] = {}

    def apply(self, ev) -> None:
        if isinstance(ev, OrderAccepted):
            assert ev.order_id not in self.leaves
            self.leaves[ev.order_id] = ev.qty
            market = ev.order_type is OrderType.MARKET
            self.limit[ev.order_id] = (ev.side, None if market else ev.price)
        elif isinstance(ev, OrderReplaced):
            assert self.leaves[ev.old_order_id] > 0
            side = self.limit[ev.old_order_id][0]
            if ev.order_id != ev.old_order_id:
                assert ev.order_id not in self.leaves
                self.leaves[ev.old_order_id] = 0
            self.leaves[ev.order_id] = ev.qty
            self.limit[ev.order_id] = (side, ev.price)
        elif isinstance(ev, Execution):
            sides = ((ev.buy_order_id, ev.buy_leaves), (ev.sell_order_id, ev.sell_leaves))
            for oid, leaves in sides:
                self.leaves[oid] -= ev.qty
                assert self.leaves[oid] == leaves >= 0
            buy_limit = self.limit[ev.buy_order_id][1]
            sell_limit = self.limit[ev.sell_order_id][1]
            assert buy_limit is None or ev.price <= buy_limit
            assert sell_limit is None or ev.price >= sell_limit
        elif isinstance(ev, OrderCancelled):
            self.leaves[ev.order_id] -= ev.cancelled_qty
            assert ev.cancelled_qty > 0
            assert self.leaves[ev.order_id] == ev.leaves_qty >= 0


class EventBook:
    """An L3 book rebuilt from market-data events alone, queue order included."""

    def __init__(self) -> None:
        self.orders: dict[int, list] = {}  # id -> [symbol, side, price, qty]; dict keeps arrival

    def apply(self, ev) -> None:
        if isinstance(ev, BookAdd):
            assert ev.qty > 0
            self.orders.pop(ev.order_id, None)  # an iceberg refill re-adds at the back
            self.orders[ev.order_id] = [ev.symbol, ev.side, ev.price, ev.qty]
        elif isinstance(ev, BookExecute | BookCancel):
            entry = self.orders[ev.order_id]
            assert 0 < ev.qty <= entry[3]
            entry[3] -= ev.qty
            if entry[3] == 0:
                del self.orders[ev.order_id]
        elif isinstance(ev, BookDelete):
            del self.orders[ev.order_id]
        elif isinstance(ev, BookReplace):
            symbol, side, _, _ = self.orders.pop(ev.old_order_id)
            self.orders[ev.order_id] = [symbol, side, ev.price, ev.qty]

    def levels(self) -> dict[tuple, list[tuple[int, int]]]:
        out: dict[tuple, list[tuple[int, int]]] = {}
        for oid, (symbol, side, price, qty) in self.orders.items():
            out.setdefault((symbol, side, price), []).append((oid, qty))
        return out


def check_engine(engine: MatchingEngine, ledger: Ledger, book: EventBook) -> None:
    seen = set()
    displayed: dict[tuple, list[tuple[int, int]]] = {}
    open_orders = dict.fromkeys(engine.participants, 0)
    for symbol, sym in engine.symbols.items():
        bid, ask = sym.bids.best_price(), sym.asks.best_price()
        if sym.state is TradingState.OPEN and bid is not None and ask is not None:
            assert bid < ask, f"{symbol} crossed: {bid} >= {ask}"
        for side in (Side.BUY, Side.SELL):
            book_side = sym.book(side)
            assert sorted(book_side.keys) == book_side.keys
            assert len(book_side.keys) == len(book_side.levels)
            for price, level in book_side.levels.items():
                assert level, "empty level kept"
                for queue, hidden in ((level.displayed, False), (level.hidden, True)):
                    for oid, order in queue.items():
                        assert oid == order.order_id and oid not in seen
                        seen.add(oid)
                        assert engine.orders[oid] is order
                        assert order.price == price and order.side is side
                        assert order.symbol == symbol
                        assert 0 < order.leaves == ledger.leaves[oid]
                        assert 0 <= order.visible <= order.leaves
                        assert (order.display == 0) == hidden
                        if hidden:
                            assert order.visible == 0
                        else:
                            assert order.visible > 0
                            key = (symbol, side, price)
                            displayed.setdefault(key, []).append((oid, order.visible))
                        open_orders[order.participant] += 1
    assert seen == set(engine.orders)
    assert all(v == 0 for k, v in ledger.leaves.items() if k not in seen)
    assert displayed == book.levels()
    assert open_orders == {k: p.open_orders for k, p in engine.participants.items()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, streams)
def test_random_streams_keep_invariants(pre_open, continuous):
    engine = MatchingEngine()
    ledger, book = Ledger(), EventBook()
    commands = setup(open_symbols=False) + pre_open
    commands += [c for c in setup()[-2:]] + continuous  # open (auction) then trade
    for ts, command in enumerate(commands):
        command = resolve(command, engine.orders)
        events = engine.process(command, ts)
        assert events, f"no outcome for {command}"
        assert all(ev.ts == ts for ev in events)
        for ev in events:
            ledger.apply(ev)
            book.apply(ev)
        check_engine(engine, ledger, book)
