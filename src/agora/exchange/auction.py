"""Opening and reopening auction: one uncross at the price that executes the most volume.

Tie-breaks, in order (docs/matching-rules.md): maximum executable volume; minimum surplus
(|bid volume - ask volume| at the price); market pressure (all remaining candidates with buy
surplus: the highest price; all with sell surplus: the lowest); closest to the reference price;
the lower price. All leaves count, hidden and iceberg reserve included. Self-trade prevention does
not apply in the auction (a known limitation).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING

from agora.core.events import BookExecute, Execution, Trade

if TYPE_CHECKING:
    from agora.exchange.book import BookSide, Order
    from agora.exchange.engine import MatchingEngine
    from agora.exchange.symbols import SymbolState


def _price_volumes(side: BookSide) -> tuple[list[int], list[int]]:
    """Level prices ascending with each level's total leaves."""
    prices = sorted(side.levels)
    volumes = [sum(o.leaves for o in side.levels[p].in_priority()) for p in prices]
    return prices, volumes


def uncross_price(bids: BookSide, asks: BookSide, reference: int) -> tuple[int, int] | None:
    """(price, volume) of the auction, or None when nothing would execute."""
    bid_prices, bid_volumes = _price_volumes(bids)
    ask_prices, ask_volumes = _price_volumes(asks)
    if not bid_prices or not ask_prices:
        return None
    ask_cum = list(accumulate(ask_volumes))  # A(p) = ask_cum[index of last ask price <= p]
    bid_cum_from = list(accumulate(reversed(bid_volumes)))[::-1]  # B(p) from first bid >= p
    candidates = []
    for price in sorted(set(bid_prices) | set(ask_prices)):
        i = bisect_left(bid_prices, price)
        bought = bid_cum_from[i] if i < len(bid_prices) else 0
        j = bisect_right(ask_prices, price)
        sold = ask_cum[j - 1] if j else 0
        volume = min(bought, sold)
        if volume:
            candidates.append((price, volume, bought - sold))
    if not candidates:
        return None
    best_volume = max(c[1] for c in candidates)
    candidates = [c for c in candidates if c[1] == best_volume]
    least = min(abs(c[2]) for c in candidates)
    candidates = [c for c in candidates if abs(c[2]) == least]
    if all(c[2] > 0 for c in candidates):
        return max(c[0] for c in candidates), best_volume
    if all(c[2] < 0 for c in candidates):
        return min(c[0] for c in candidates), best_volume
    price = min(candidates, key=lambda c: (abs(c[0] - reference), c[0]))[0]
    return price, best_volume


def run_auction(engine: MatchingEngine, sym: SymbolState, events: list, ts: int) -> None:
    """Uncross ``sym``'s book, appending the auction's events; moves the reference price."""
    found = uncross_price(sym.bids, sym.asks, sym.reference_price)
    if found is None:
        return
    price, volume = found
    symbol = sym.spec.symbol
    bids = iter(sym.bids.orders_in_priority())
    asks = iter(sym.asks.orders_in_priority())
    touched: dict[int, Order] = {}
    bid = ask = None
    remaining = volume
    trade_id = 0
    while remaining:
        if bid is None or not bid.leaves:
            bid = next(bids)
        if ask is None or not ask.leaves:
            ask = next(asks)
        qty = min(bid.leaves, ask.leaves, remaining)
        remaining -= qty
        bid.leaves -= qty
        ask.leaves -= qty
        trade_id = engine.next_trade_id
        engine.next_trade_id = trade_id + 1
        events.append(Execution(
            ts, symbol, trade_id, price, qty, None,
            bid.order_id, bid.participant, bid.client_order_id, bid.leaves,
            ask.order_id, ask.participant, ask.client_order_id, ask.leaves,
        ))
        for order in (bid, ask):
            touched.setdefault(order.order_id, order)
            shown = min(qty, order.visible)
            if shown:
                order.visible -= shown
                events.append(BookExecute(ts, symbol, order.order_id, shown, trade_id, price, True))
    events.append(Trade(ts, symbol, trade_id, price, volume, None, True))
    for order in touched.values():
        if not order.leaves:
            engine.unlink(order, sym, engine.participants[order.participant])
    for order in touched.values():
        if order.leaves and not order.visible and order.display != 0:
            queue = sym.book(order.side).levels[order.price].queue_of(order)
            engine.refill(order, queue, events, ts)
    sym.set_reference(price)
