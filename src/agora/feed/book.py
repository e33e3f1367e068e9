"""Market-by-order (L3) books rebuilt from a feed, with derived L2 (by price) and L1 (touch).

One :class:`L3Book` per symbol. Each order keeps its side, price, remaining quantity and a
priority stamp (the book's add counter), so its queue position is exact: an order enters at the
back of its level on add and on replace, and keeps its place when partly executed or reduced. This
is the plain, obvious implementation that the numba kernel in ``agora.feed.fast`` is held equal to.

Levels per side are a dict price -> insertion-ordered dict of order ids (the queue), a dict price
-> total quantity, and a sorted list of prices (``bisect``): adding or removing a level costs
O(levels), everything else O(1). Prices and quantities are integers (Price(4) units for ITCH).

A call that cannot apply (unknown or duplicate order id, non-positive quantity or price, an execute
or cancel larger than what is left) raises :class:`~agora.feed.integrity.BookError` and leaves the
book unchanged, except the one case the caller can safely continue from: an over-execution or
over-cancel removes the order (its quantity would be negative) and then raises.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Collection

import msgspec

from agora.core.enums import Side
from agora.feed.integrity import BookError, IssueKind

BUY = Side.BUY
SELL = Side.SELL


class Level(msgspec.Struct, frozen=True, array_like=True):
    """One price level of an L2 view."""

    price: int
    qty: int
    orders: int


class RestingOrder(msgspec.Struct, frozen=True, array_like=True):
    """One order of an L3 view, in queue order within its level."""

    order_id: int
    price: int
    qty: int


class BookView(msgspec.Struct, frozen=True):
    """A book at one moment: levels (L2) or orders (L3), best first on each side."""

    symbol: str
    ts: int
    bids: list
    asks: list


class _Side:
    """One side of one book: queues per price, quantity per price, sorted prices."""

    __slots__ = ("is_bid", "prices", "qty", "queues")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.queues: dict[int, dict[int, None]] = {}
        self.qty: dict[int, int] = {}
        self.prices: list[int] = []  # ascending; best is last for bids, first for asks

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def join(self, order_id: int, price: int, qty: int) -> None:
        queue = self.queues.get(price)
        if queue is None:
            queue = self.queues[price] = {}
            self.qty[price] = 0
            insort(self.prices, price)
        queue[order_id] = None
        self.qty[price] += qty

    def leave(self, order_id: int, price: int, qty: int) -> None:
        queue = self.queues[price]
        del queue[order_id]
        if queue:
            self.qty[price] -= qty
        else:
            del self.queues[price]
            del self.qty[price]
            del self.prices[bisect_left(self.prices, price)]

    def prices_best_first(self) -> list[int]:
        return self.prices[::-1] if self.is_bid else self.prices


class L3Book:
    """The full-depth book of one symbol."""

    __slots__ = ("_asks", "_bids", "_next_priority", "orders", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        # order id -> [side, price, qty, priority]
        self.orders: dict[int, list] = {}
        self._bids = _Side(True)
        self._asks = _Side(False)
        self._next_priority = 0

    # ------------------------------------------------------------------ updates

    def add(self, order_id: int, side: Side, price: int, qty: int) -> None:
        if order_id in self.orders:
            raise BookError(IssueKind.DUPLICATE_ORDER, f"order {order_id} is already live")
        if qty <= 0 or price <= 0 or side not in (BUY, SELL):
            raise BookError(
                IssueKind.INVALID_ORDER,
                f"order {order_id}: side {side!r} qty {qty} price {price} cannot rest",
            )
        self.orders[order_id] = [side, price, qty, self._next_priority]
        self._next_priority += 1
        (self._bids if side is BUY else self._asks).join(order_id, price, qty)

    def execute(self, order_id: int, qty: int) -> tuple[Side, int, int]:
        """Take ``qty`` from the order; returns (side, price, quantity left)."""
        return self._reduce(order_id, qty, "execute")

    def cancel(self, order_id: int, qty: int) -> tuple[Side, int, int]:
        """Remove ``qty`` from the order, keeping its priority; returns (side, price, left)."""
        return self._reduce(order_id, qty, "cancel")

    def delete(self, order_id: int) -> tuple[Side, int, int]:
        """Remove the order; returns (side, price, quantity it had)."""
        order = self._order(order_id, "delete")
        self._remove(order_id, order)
        return order[0], order[1], order[2]

    def replace(self, old_order_id: int, new_order_id: int, price: int, qty: int) -> Side:
        """The old order leaves; the new one joins the back of ``price`` on the same side."""
        order = self._order(old_order_id, "replace")
        if new_order_id in self.orders and new_order_id != old_order_id:
            raise BookError(
                IssueKind.DUPLICATE_ORDER, f"replace {old_order_id}: {new_order_id} is already live"
            )
        if qty <= 0 or price <= 0:
            raise BookError(
                IssueKind.INVALID_ORDER,
                f"replace {old_order_id} -> {new_order_id}: qty {qty} price {price} cannot rest",
            )
        self._remove(old_order_id, order)
        self.add(new_order_id, order[0], price, qty)
        return order[0]

    def _order(self, order_id: int, action: str) -> list:
        order = self.orders.get(order_id)
        if order is None:
            raise BookError(
                IssueKind.UNKNOWN_ORDER,
                f"{action} of order {order_id}, not in the {self.symbol} book",
            )
        return order

    def _reduce(self, order_id: int, qty: int, action: str) -> tuple[Side, int, int]:
        order = self._order(order_id, action)
        if qty <= 0:
            raise BookError(IssueKind.INVALID_ORDER, f"{action} of {qty} from order {order_id}")
        side, price, left = order[0], order[1], order[2]
        if qty > left:
            self._remove(order_id, order)
            raise BookError(
                IssueKind.NEGATIVE_QUANTITY,
                f"{action} of {qty} from order {order_id} which had {left}; order removed",
            )
        if qty == left:
            self._remove(order_id, order)
            return side, price, 0
        order[2] = left - qty
        (self._bids if side is BUY else self._asks).qty[price] -= qty
        return side, price, left - qty

    def _remove(self, order_id: int, order: list) -> None:
        del self.orders[order_id]
        (self._bids if order[0] is BUY else self._asks).leave(order_id, order[1], order[2])

    def clear(self) -> None:
        self.orders.clear()
        self._bids = _Side(True)
        self._asks = _Side(False)

    # ------------------------------------------------------------------ views

    def best_bid(self) -> int | None:
        return self._bids.best()

    def best_ask(self) -> int | None:
        return self._asks.best()

    def is_crossed(self) -> bool:
        bid, ask = self._bids.best(), self._asks.best()
        return bid is not None and ask is not None and bid > ask

    def is_locked(self) -> bool:
        bid, ask = self._bids.best(), self._asks.best()
        return bid is not None and bid == ask

    def top(self) -> tuple[Level | None, Level | None]:
        """L1: the best bid and best ask levels (None for an empty side)."""
        bids, asks = self.levels(1)
        return (bids[0] if bids else None), (asks[0] if asks else None)

    def levels(self, depth: int | None = None, exclude: Collection[int] = ()
               ) -> tuple[list[Level], list[Level]]:
        """L2: up to ``depth`` levels per side (all when None), best first; the orders whose
        ids are in ``exclude`` left out (a trader's view of the others' liquidity: its own
        resting orders are not information about the market). Ids not in the book are ignored;
        a level of excluded orders only is no level."""
        if not exclude:
            return self._side_levels(self._bids, depth), self._side_levels(self._asks, depth)
        hidden: dict[tuple[Side, int], list[int]] = {}  # (side, price) -> [qty, orders]
        orders = self.orders
        for order_id in exclude:
            order = orders.get(order_id)
            if order is not None:
                h = hidden.setdefault((order[0], order[1]), [0, 0])
                h[0] += order[2]
                h[1] += 1
        return (self._side_levels_without(self._bids, BUY, depth, hidden),
                self._side_levels_without(self._asks, SELL, depth, hidden))

    @staticmethod
    def _side_levels(side: _Side, depth: int | None) -> list[Level]:
        prices = side.prices
        chosen = prices[::-1][:depth] if side.is_bid else prices[:depth]
        return [Level(p, side.qty[p], len(side.queues[p])) for p in chosen]

    @staticmethod
    def _side_levels_without(side: _Side, which: Side, depth: int | None,
                             hidden: dict[tuple[Side, int], list[int]]) -> list[Level]:
        out: list[Level] = []
        for p in side.prices_best_first():
            if depth is not None and len(out) >= depth:
                break
            qty, count = side.qty[p], len(side.queues[p])
            h = hidden.get((which, p))
            if h is not None:
                qty, count = qty - h[0], count - h[1]
                if count == 0:
                    continue
            out.append(Level(p, qty, count))
        return out

    def orders_by_level(
        self, depth: int | None = None
    ) -> tuple[list[tuple[int, list[RestingOrder]]], list[tuple[int, list[RestingOrder]]]]:
        """L3: per side, [(price, orders in queue order)], best level first."""
        return self._side_orders(self._bids, depth), self._side_orders(self._asks, depth)

    def _side_orders(self, side: _Side, depth: int | None) -> list[tuple[int, list[RestingOrder]]]:
        orders = self.orders
        return [
            (p, [RestingOrder(i, p, orders[i][2]) for i in side.queues[p]])
            for p in side.prices_best_first()[:depth]
        ]

    def queue_position(self, order_id: int) -> tuple[int, int]:
        """(orders ahead, quantity ahead) of a live order at its price level."""
        side, price, _qty, _prio = self._order(order_id, "queue position")
        queue = (self._bids if side is BUY else self._asks).queues[price]
        qty_ahead = 0
        orders = self.orders
        for ahead, other in enumerate(queue):
            if other == order_id:
                return ahead, qty_ahead
            qty_ahead += orders[other][2]
        raise AssertionError("order missing from its own level")  # pragma: no cover

    def view(self, ts: int, depth: int | None = None, exclude: Collection[int] = ()
             ) -> BookView:
        bids, asks = self.levels(depth, exclude)
        return BookView(self.symbol, ts, bids, asks)

    def __len__(self) -> int:
        return len(self.orders)
