"""The matching engine: commands in, events out, nothing else.

``MatchingEngine.process(command, ts)`` applies one sequenced command and returns the events it
caused, every one stamped ``ts``. The engine never reads a clock, a file or a socket, so replaying
the same commands gives the same events and state (the journal relies on this).

The rules (validation order, event order, priority, STP, icebergs, auctions) are written in
docs/matching-rules.md; ``agora.exchange.reference`` implements the same rules the slow, obvious
way and a differential test holds the two equal. Known limitations: one tick size per symbol (no
tick tables); the reference price moves only with an auction; STP does not apply in auctions.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable

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
    Event,
    Execution,
    KillSwitch,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderReplaced,
    ParticipantUpdated,
    ReplaceOrder,
    SetParticipant,
    SetTradingState,
    SymbolDirectory,
    Trade,
    TradingStatus,
)
from agora.exchange.auction import run_auction
from agora.exchange.book import Level, Order
from agora.exchange.symbols import (
    ParticipantState,
    SymbolState,
    participant_spec_problem,
    symbol_spec_problem,
)
from agora.exchange.validation import check_new_order, check_replace

_TRANSITIONS = {
    TradingState.PRE_OPEN: {TradingState.OPEN, TradingState.HALTED, TradingState.CLOSED},
    TradingState.OPEN: {TradingState.HALTED, TradingState.CLOSED},
    TradingState.HALTED: {TradingState.OPEN, TradingState.CLOSED},
    TradingState.CLOSED: {TradingState.PRE_OPEN},
}
# Enum members bound once: attribute access on an Enum class costs ~85 ns in the hot path.
_BUY, _SELL = Side.BUY, Side.SELL
_MARKET = OrderType.MARKET
_DAY, _IOC, _FOK = TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK
_OPEN, _CLOSED = TradingState.OPEN, TradingState.CLOSED
_NO_STP, _CANCEL_NEWEST = StpMode.NONE, StpMode.CANCEL_NEWEST
_CANCEL_OLDEST = StpMode.CANCEL_OLDEST


class MatchingEngine:
    """Price-time priority matching for many symbols, with exchange risk and auctions."""

    def __init__(self) -> None:
        self.symbols: dict[str, SymbolState] = {}
        self.participants: dict[str, ParticipantState] = {}
        self.orders: dict[int, Order] = {}  # resting orders by id
        self.next_order_id = 1
        self.next_trade_id = 1
        self._handlers: dict[type, Callable[..., list[Event]]] = {
            NewOrder: self._new_order,
            CancelOrder: self._cancel,
            ReplaceOrder: self._replace,
            AddSymbol: self._add_symbol,
            SetParticipant: self._set_participant,
            SetTradingState: self._set_trading_state,
            KillSwitch: self._kill_switch,
        }

    def process(self, command: object, ts: int) -> list[Event]:
        """Apply one command; return its events (at least one)."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not an exchange command: {type(command).__name__}")
        return handler(command, ts)

    # ------------------------------------------------------------ order entry

    def _new_order(self, cmd: NewOrder, ts: int) -> list[Event]:
        p = self.participants.get(cmd.participant)
        client_order_id = cmd.client_order_id
        problem = None
        if p is None or p.kill_switch or not client_order_id or (
            client_order_id in p.client_order_ids
        ):
            problem = self._entry_problem(cmd.participant, p, client_order_id)
        else:
            sym = self.symbols.get(cmd.symbol)
            if sym is None:
                problem = RejectReason.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol!r}"
            else:
                problem = check_new_order(cmd, p, sym)
        if problem is not None:
            if p is not None and client_order_id:  # the first verdict is final: see the rules
                p.client_order_ids.add(client_order_id)
            return [OrderRejected(ts, cmd.participant, client_order_id, *problem)]
        order_id = self.next_order_id
        self.next_order_id = order_id + 1
        p.client_order_ids.add(client_order_id)
        side, price, qty, display = cmd.side, cmd.price, cmd.qty, cmd.display_qty
        events: list[Event] = [
            OrderAccepted(
                ts, cmd.symbol, order_id, cmd.participant, client_order_id, side, price, qty,
                cmd.order_type, cmd.tif, display, cmd.post_only, cmd.min_qty,
            )
        ]
        order = Order(
            order_id, cmd.participant, client_order_id, cmd.symbol, side, price, qty, display,
            cmd.tif, cmd.post_only,
        )
        if sym.state is not _OPEN:
            self._rest(sym, order, p, events, ts)
            return events
        market = cmd.order_type is _MARKET
        tif = cmd.tif
        opposite = sym.asks if side is _BUY else sym.bids
        keys = opposite.keys
        # it crosses: a side's best key is keys[-1] (asks keep -price as key, bids price)
        if keys and (market or keys[-1] >= (-price if side is _BUY else price)):
            needed = qty if tif is _FOK else cmd.min_qty
            if needed and self._available(sym, order, market, p.spec.stp, needed) < needed:
                reason = CancelReason.FILL_OR_KILL if tif is _FOK else CancelReason.MIN_QTY
                events.append(self._cancelled(order, qty, 0, reason, ts))
                return events
            self._match(sym, order, market, p.spec.stp, events, ts)
            if not order.leaves:
                return events
        elif tif is _FOK or cmd.min_qty:
            reason = CancelReason.FILL_OR_KILL if tif is _FOK else CancelReason.MIN_QTY
            events.append(self._cancelled(order, qty, 0, reason, ts))
            return events
        if market or tif is _IOC or tif is _FOK:
            events.append(
                self._cancelled(order, order.leaves, 0, CancelReason.IMMEDIATE_OR_CANCEL, ts)
            )
        else:
            self._rest(sym, order, p, events, ts)
        return events

    def _entry_problem(self, participant: str, p: ParticipantState | None, client_order_id: str):
        if p is None:
            return RejectReason.UNKNOWN_PARTICIPANT, f"unknown participant {participant!r}"
        if p.kill_switch:
            return RejectReason.KILL_SWITCH, f"kill switch engaged for {participant}"
        if not client_order_id:
            return RejectReason.INVALID_CLIENT_ORDER_ID, "client order id must not be empty"
        if client_order_id in p.client_order_ids:
            return (
                RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                f"client order id {client_order_id!r} already used",
            )
        return None

    def _cancel(self, cmd: CancelOrder, ts: int) -> list[Event]:
        problem = None
        order = self.orders.get(cmd.order_id)
        if cmd.participant not in self.participants:
            problem = RejectReason.UNKNOWN_PARTICIPANT, f"unknown participant {cmd.participant!r}"
        elif order is None or order.participant != cmd.participant:
            problem = RejectReason.UNKNOWN_ORDER, f"no open order {cmd.order_id}"
        else:
            keep = cmd.leaves_qty
            lot = self.symbols[order.symbol].spec.lot_size
            if keep < 0 or keep >= order.leaves or keep % lot:
                problem = RejectReason.INVALID_QUANTITY, (
                    f"leaves quantity {keep} must be below {order.leaves} and a multiple of {lot}"
                )
        if problem is not None:
            return [
                OrderRejected(ts, cmd.participant, cmd.client_order_id, *problem, cmd.order_id)
            ]
        events: list[Event] = []
        if keep == 0:
            self._cancel_resting(order, CancelReason.USER, events, ts)
        else:
            self._reduce(order, keep, events, ts, CancelReason.USER)
        return events

    def _reduce(self, order: Order, keep: int, events: list, ts: int, reason) -> None:
        if reason is not None:
            events.append(self._cancelled(order, order.leaves - keep, keep, reason, ts))
        order.leaves = keep
        if order.visible > keep:
            events.append(BookCancel(ts, order.symbol, order.order_id, order.visible - keep))
            order.visible = keep

    def _replace(self, cmd: ReplaceOrder, ts: int) -> list[Event]:
        p = self.participants.get(cmd.participant)
        order = self.orders.get(cmd.order_id)
        problem = None
        if p is None:
            problem = RejectReason.UNKNOWN_PARTICIPANT, f"unknown participant {cmd.participant!r}"
        elif p.kill_switch:
            problem = RejectReason.KILL_SWITCH, f"kill switch engaged for {cmd.participant}"
        elif order is None or order.participant != cmd.participant:
            problem = RejectReason.UNKNOWN_ORDER, f"no open order {cmd.order_id}"
        else:
            problem = self._entry_problem(cmd.participant, p, cmd.client_order_id)
            sym = self.symbols[order.symbol]
            problem = problem or check_replace(cmd, order.post_only, order.side, p, sym)
        if problem is not None:
            return [
                OrderRejected(ts, cmd.participant, cmd.client_order_id, *problem, cmd.order_id)
            ]
        p.client_order_ids.add(cmd.client_order_id)
        display = order.display if cmd.display_qty is None else cmd.display_qty
        keeps = cmd.price == order.price and cmd.qty <= order.leaves and display == order.display
        old_id = order.order_id
        new_id = old_id
        if not keeps:
            new_id = self.next_order_id
            self.next_order_id = new_id + 1
        events: list[Event] = [
            OrderReplaced(
                ts, order.symbol, old_id, new_id, order.participant, cmd.client_order_id,
                order.client_order_id, order.side, cmd.price, cmd.qty, display,
            )
        ]
        order.client_order_id = cmd.client_order_id
        if keeps:
            if cmd.qty < order.leaves:
                self._reduce(order, cmd.qty, events, ts, None)
            return events
        old_visible = order.visible
        self.unlink(order, sym, p)
        order.order_id = new_id
        order.price = cmd.price
        order.leaves = cmd.qty
        order.display = display
        if sym.state is _OPEN and sym.crosses(order.side, order.price):
            if old_visible:
                events.append(BookDelete(ts, order.symbol, old_id))
            self._match(sym, order, False, p.spec.stp, events, ts)
            if order.leaves:
                self._rest(sym, order, p, events, ts)
            return events
        self._rest(sym, order, p, None, ts)
        new_visible = order.visible
        if old_visible and new_visible:
            events.append(BookReplace(ts, order.symbol, old_id, new_id, order.price, new_visible))
        elif old_visible:
            events.append(BookDelete(ts, order.symbol, old_id))
        elif new_visible:
            events.append(BookAdd(ts, order.symbol, new_id, order.side, order.price, new_visible))
        return events

    # ------------------------------------------------------------ matching

    def _available(
        self, sym: SymbolState, order: Order, market: bool, stp: StpMode, needed: int
    ) -> int:
        """Quantity the incoming order could take at once (docs/matching-rules.md, FOK)."""
        buy = order.side is _BUY
        limit = order.price
        total = 0
        for level in sym.opposite(order.side).levels_in_priority():
            if not market and (level.head().price > limit if buy else level.head().price < limit):
                break
            for resting in level.in_priority():
                if resting.participant == order.participant and stp is not _NO_STP:
                    if stp is _CANCEL_OLDEST:
                        continue
                    return total
                total += resting.leaves
                if total >= needed:
                    return total
        return total

    def _match(
        self, sym: SymbolState, order: Order, market: bool, stp: StpMode, events: list, ts: int
    ) -> None:
        """Trade ``order`` against the opposite side while it crosses (rules, step 4)."""
        buy = order.side is _BUY
        book = sym.asks if buy else sym.bids
        levels, keys, sign = book.levels, book.keys, book.sign
        limit = order.price
        symbol = order.symbol
        append = events.append
        while order.leaves and keys:
            price = keys[-1] * sign
            if not market and (price > limit if buy else price < limit):
                return
            level = levels[price]
            queue = level.displayed or level.hidden
            resting = next(iter(queue.values()))
            if stp is not _NO_STP and resting.participant == order.participant:
                if stp is not _CANCEL_NEWEST:
                    self._cancel_resting(resting, CancelReason.SELF_TRADE, events, ts)
                if stp is not _CANCEL_OLDEST:
                    append(self._cancelled(order, order.leaves, 0, CancelReason.SELF_TRADE, ts))
                    order.leaves = 0
                continue
            displayed = queue is level.displayed
            available = resting.visible if displayed else resting.leaves
            qty = order.leaves if order.leaves < available else available
            order.leaves -= qty
            resting.leaves -= qty
            trade_id = self.next_trade_id
            self.next_trade_id = trade_id + 1
            if buy:
                append(Execution(
                    ts, symbol, trade_id, price, qty, order.side,
                    order.order_id, order.participant, order.client_order_id, order.leaves,
                    resting.order_id, resting.participant, resting.client_order_id, resting.leaves,
                ))
            else:
                append(Execution(
                    ts, symbol, trade_id, price, qty, order.side,
                    resting.order_id, resting.participant, resting.client_order_id, resting.leaves,
                    order.order_id, order.participant, order.client_order_id, order.leaves,
                ))
            if displayed:
                resting.visible -= qty
                append(BookExecute(ts, symbol, resting.order_id, qty, trade_id, price, False))
            else:
                append(Trade(ts, symbol, trade_id, price, qty, resting.side, False))
            if not resting.leaves:
                del queue[resting.order_id]
                del self.orders[resting.order_id]
                self.participants[resting.participant].open_orders -= 1
                if not level:
                    del levels[price]
                    keys.pop()
            elif displayed and not resting.visible:
                self.refill(resting, queue, events, ts)

    def refill(self, order: Order, queue: dict[int, Order], events: list, ts: int) -> None:
        """An iceberg shows its next tranche at the back of its queue."""
        del queue[order.order_id]
        order.visible = order.visible_when_resting()
        queue[order.order_id] = order
        events.append(BookAdd(ts, order.symbol, order.order_id, order.side, order.price,
                              order.visible))

    def _rest(self, sym: SymbolState, order: Order, p: ParticipantState, events, ts: int) -> None:
        """Put ``order`` at the back of its class and price (BookSide.append, inlined)."""
        display = order.display
        leaves = order.leaves
        visible = order.visible = (
            leaves if display is None else display if display < leaves else leaves
        )
        price = order.price
        book = sym.bids if order.side is _BUY else sym.asks
        level = book.levels.get(price)
        if level is None:
            level = book.levels[price] = Level()
            insort(book.keys, price * book.sign)
        (level.displayed if display != 0 else level.hidden)[order.order_id] = order
        self.orders[order.order_id] = order
        p.open_orders += 1
        if visible and events is not None:
            events.append(BookAdd(ts, order.symbol, order.order_id, order.side, price, visible))

    def unlink(self, order: Order, sym: SymbolState, p: ParticipantState) -> None:
        """Take a resting order off the book and the id index (BookSide.remove, inlined)."""
        book = sym.bids if order.side is _BUY else sym.asks
        level = book.levels[order.price]
        del (level.displayed if order.display != 0 else level.hidden)[order.order_id]
        if not level.displayed and not level.hidden:
            book.drop_level(order.price)
        del self.orders[order.order_id]
        p.open_orders -= 1

    def _cancel_resting(self, order: Order, reason: CancelReason, events: list, ts: int) -> None:
        symbol, order_id = order.symbol, order.order_id
        events.append(OrderCancelled(
            ts, symbol, order_id, order.participant, order.client_order_id, order.leaves, 0, reason
        ))
        if order.visible:
            events.append(BookDelete(ts, symbol, order_id))
        self.unlink(order, self.symbols[symbol], self.participants[order.participant])

    @staticmethod
    def _cancelled(order: Order, qty: int, leaves: int, reason: CancelReason, ts: int):
        return OrderCancelled(
            ts, order.symbol, order.order_id, order.participant, order.client_order_id, qty,
            leaves, reason,
        )

    # ------------------------------------------------------------ operator commands

    def _add_symbol(self, cmd: AddSymbol, ts: int) -> list[Event]:
        spec = cmd.spec
        if spec.symbol in self.symbols:
            return [CommandRejected(ts, RejectReason.DUPLICATE_SYMBOL, f"{spec.symbol} exists")]
        problem = symbol_spec_problem(spec)
        if problem:
            return [CommandRejected(ts, RejectReason.INVALID_SYMBOL_SPEC, problem)]
        self.symbols[spec.symbol] = SymbolState(spec, cmd.state)
        return [
            SymbolDirectory(ts, spec),
            TradingStatus(ts, spec.symbol, cmd.state, spec.reference_price),
        ]

    def _set_participant(self, cmd: SetParticipant, ts: int) -> list[Event]:
        spec = cmd.spec
        problem = participant_spec_problem(spec)
        if problem:
            return [CommandRejected(ts, RejectReason.INVALID_PARTICIPANT_SPEC, problem)]
        p = self.participants.get(spec.participant)
        if p is None:
            p = self.participants[spec.participant] = ParticipantState(spec)
        p.spec = spec
        return [ParticipantUpdated(ts, spec, p.kill_switch)]

    def _set_trading_state(self, cmd: SetTradingState, ts: int) -> list[Event]:
        sym = self.symbols.get(cmd.symbol)
        if sym is None:
            text = f"unknown symbol {cmd.symbol!r}"
            return [CommandRejected(ts, RejectReason.UNKNOWN_SYMBOL, text)]
        if cmd.state not in _TRANSITIONS[sym.state]:
            return [CommandRejected(
                ts, RejectReason.INVALID_STATE_TRANSITION,
                f"{cmd.symbol}: {sym.state} cannot go to {cmd.state}",
            )]
        events: list[Event] = []
        if cmd.state is _OPEN:
            run_auction(self, sym, events, ts)
        elif cmd.state is _CLOSED:
            expiring = [o for o in self.orders.values()
                        if o.symbol == cmd.symbol and o.tif is _DAY]
            for order in sorted(expiring, key=lambda o: o.order_id):
                self._cancel_resting(order, CancelReason.EXPIRED, events, ts)
        sym.state = cmd.state
        events.append(TradingStatus(ts, cmd.symbol, cmd.state, sym.reference_price))
        return events

    def _kill_switch(self, cmd: KillSwitch, ts: int) -> list[Event]:
        p = self.participants.get(cmd.participant)
        if p is None:
            return [CommandRejected(
                ts, RejectReason.UNKNOWN_PARTICIPANT, f"unknown participant {cmd.participant!r}"
            )]
        events: list[Event] = []
        if cmd.engaged:
            mine = [o for o in self.orders.values() if o.participant == cmd.participant]
            for order in sorted(mine, key=lambda o: o.order_id):
                self._cancel_resting(order, CancelReason.KILL_SWITCH, events, ts)
        p.kill_switch = cmd.engaged
        events.append(ParticipantUpdated(ts, p.spec, p.kill_switch))
        return events

    # ------------------------------------------------------------ inspection

    def resting_orders(self) -> list[tuple]:
        """Canonical state view: every resting order in priority order, per symbol and side."""
        rows = []
        for symbol in sorted(self.symbols):
            sym = self.symbols[symbol]
            for side in (_BUY, _SELL):
                rows.extend(
                    (symbol, side.value, o.price, o.order_id, o.participant, o.client_order_id,
                     o.leaves, o.visible, o.display, o.tif.value)
                    for o in sym.book(side).orders_in_priority()
                )
        return rows
