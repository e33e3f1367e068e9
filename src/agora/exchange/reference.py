"""The reference model of the matching rules: slow, simple and obviously correct.

``ReferenceEngine`` implements docs/matching-rules.md line by line with the dumbest data
structures that work: every resting order of every symbol lives in one plain list, and the best
order is found by sorting that list on a priority key each time it is needed. It exists only as a
test oracle: the fast ``agora.exchange.engine.MatchingEngine`` must produce the same events and
the same ``resting_orders()`` for every command stream. Never optimise this file; if it and the
rules disagree, the rules win and this file is fixed.

Choices where the rules are silent or loose:

- ``text`` of rejects is free-form prose, not part of the contract (tests ignore it).
- Band and collar use the symbol's *current* reference price (moved by auctions).
- A FOK order that still has leaves after matching (possible only when STP stops it, which then
  cancels it anyway) is treated like IOC.
- The auction's pairing is also capped by the volume still to execute (it never binds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

ALLOWED_TRANSITIONS = {
    TradingState.PRE_OPEN: (TradingState.OPEN, TradingState.HALTED, TradingState.CLOSED),
    TradingState.OPEN: (TradingState.HALTED, TradingState.CLOSED),
    TradingState.HALTED: (TradingState.OPEN, TradingState.CLOSED),
    TradingState.CLOSED: (TradingState.PRE_OPEN,),
}

Problem = tuple[RejectReason, str] | None


@dataclass(eq=False)
class RefOrder:
    """One order: resting in ``ReferenceEngine.book``, or incoming while it matches.

    Compared by identity (``eq=False``), so list removal never confuses two orders.
    """

    order_id: int
    participant: str
    client_order_id: str
    symbol: str
    side: Side
    price: int  # 0 for a MARKET order (which never rests)
    leaves: int
    display: int | None  # None plain, 0 hidden, N > 0 iceberg peak
    tif: TimeInForce
    post_only: bool
    visible: int = 0
    priority: int = 0

    @property
    def hidden(self) -> bool:
        return self.display == 0

    def visible_when_resting(self) -> int:
        return self.leaves if self.display is None else min(self.display, self.leaves)


@dataclass
class RefSymbol:
    spec: SymbolSpec
    state: TradingState
    reference_price: int

    def band(self) -> tuple[int, int]:
        ref = self.reference_price
        width = ref * self.spec.band_bps // 10000
        return ref - width, ref + width


@dataclass
class RefParticipant:
    spec: ParticipantSpec
    kill_switch: bool = False
    used_client_order_ids: set[str] = field(default_factory=set)


def priority_key(order: RefOrder) -> tuple[int, bool, int]:
    """Sort key within one side of one symbol: best price, displayed before hidden, time."""
    price_key = -order.price if order.side is Side.BUY else order.price
    return (price_key, order.hidden, order.priority)


def crosses(side: Side, limit: int, resting_price: int) -> bool:
    """Does an order on ``side`` with limit ``limit`` reach an opposite order at that price?"""
    return resting_price <= limit if side is Side.BUY else resting_price >= limit


class ReferenceEngine:
    """docs/matching-rules.md, implemented as literally as possible. A test oracle."""

    def __init__(self) -> None:
        self.symbols: dict[str, RefSymbol] = {}
        self.participants: dict[str, RefParticipant] = {}
        self.book: list[RefOrder] = []  # every resting order, all symbols, any order
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_priority = 1

    # ------------------------------------------------------------ entry point

    def process(self, command: object, ts: int) -> list[Event]:
        handlers = {
            NewOrder: self.new_order, CancelOrder: self.cancel_order,
            ReplaceOrder: self.replace_order, AddSymbol: self.add_symbol,
            SetParticipant: self.set_participant, SetTradingState: self.set_trading_state,
            KillSwitch: self.kill_switch,
        }
        if type(command) not in handlers:
            raise TypeError(f"not an exchange command: {type(command).__name__}")
        return handlers[type(command)](command, ts)

    # ------------------------------------------------------------ counters and lookups

    def take_order_id(self) -> int:
        self.next_order_id += 1
        return self.next_order_id - 1

    def take_trade_id(self) -> int:
        self.next_trade_id += 1
        return self.next_trade_id - 1

    def take_priority(self) -> int:
        self.next_priority += 1
        return self.next_priority - 1

    def queue(self, symbol: str, side: Side) -> list[RefOrder]:
        """Resting orders of one symbol and side, in priority order."""
        orders = [o for o in self.book if o.symbol == symbol and o.side is side]
        return sorted(orders, key=priority_key)

    def find_resting(self, order_id: int) -> RefOrder | None:
        return next((o for o in self.book if o.order_id == order_id), None)

    def open_orders(self, participant: str) -> int:
        return sum(1 for o in self.book if o.participant == participant)

    def opposite_crosses(self, symbol: str, side: Side, price: int) -> bool:
        """Any opposite resting order (displayed or hidden) at a price ``price`` reaches?"""
        return any(crosses(side, price, o.price) for o in self.queue(symbol, side.opposite))

    def resting_orders(self) -> list[tuple]:
        rows = []
        for symbol in sorted(self.symbols):
            for side in (Side.BUY, Side.SELL):
                for o in self.queue(symbol, side):
                    rows.append((
                        o.symbol, o.side.value, o.price, o.order_id, o.participant,
                        o.client_order_id, o.leaves, o.visible, o.display, o.tif.value,
                    ))
        return rows

    # ------------------------------------------------------------ NewOrder

    def client_id_problem(self, p: RefParticipant, client_order_id: str) -> Problem:
        if client_order_id == "":
            return RejectReason.INVALID_CLIENT_ORDER_ID, "empty client order id"
        if client_order_id in p.used_client_order_ids:
            return RejectReason.DUPLICATE_CLIENT_ORDER_ID, f"{client_order_id} already used"
        return None

    def price_and_size_problem(self, sym: RefSymbol, p: RefParticipant, price: int | None,
                               qty: int, notional: int) -> Problem:
        """Band, collar (skipped when ``price`` is None: MARKET), max qty, max notional."""
        if price is not None:
            low, high = sym.band()
            if not low <= price <= high:
                return RejectReason.PRICE_OUT_OF_BAND, f"{price} outside [{low}, {high}]"
            ref = sym.reference_price
            if abs(price - ref) * 10000 > ref * p.spec.collar_bps:
                return RejectReason.PRICE_COLLAR, f"{price} beyond the collar around {ref}"
        if qty > p.spec.max_order_qty:
            return RejectReason.MAX_ORDER_QTY, f"{qty} > {p.spec.max_order_qty}"
        if notional > p.spec.max_notional:
            return RejectReason.MAX_NOTIONAL, f"{notional} > {p.spec.max_notional}"
        return None

    def new_order_problem(self, cmd: NewOrder) -> Problem:
        p = self.participants.get(cmd.participant)
        if p is None:
            return RejectReason.UNKNOWN_PARTICIPANT, f"unknown participant {cmd.participant}"
        if p.kill_switch:
            return RejectReason.KILL_SWITCH, "kill switch engaged"
        problem = self.client_id_problem(p, cmd.client_order_id)
        if problem:
            return problem
        sym = self.symbols.get(cmd.symbol)
        if sym is None:
            return RejectReason.UNKNOWN_SYMBOL, f"unknown symbol {cmd.symbol}"
        lot, tick = sym.spec.lot_size, sym.spec.tick_size
        if cmd.qty <= 0:
            return RejectReason.INVALID_QUANTITY, "quantity must be positive"
        if cmd.qty % lot != 0:
            return RejectReason.INVALID_LOT, "quantity not a multiple of the lot"
        market = cmd.order_type is OrderType.MARKET
        if market and (cmd.price != 0 or cmd.post_only or cmd.display_qty is not None):
            return RejectReason.INVALID_ORDER_TYPE, "market order with price/post-only/display"
        if not market and cmd.price <= 0:
            return RejectReason.INVALID_PRICE, "limit price must be positive"
        if not market and cmd.price % tick != 0:
            return RejectReason.INVALID_TICK, "price not on the tick"
        if cmd.display_qty is not None and (cmd.display_qty < 0 or cmd.display_qty % lot != 0):
            return RejectReason.INVALID_DISPLAY_QTY, "bad display quantity"
        if (cmd.min_qty < 0 or cmd.min_qty > cmd.qty or cmd.min_qty % lot != 0
                or (cmd.min_qty > 0 and cmd.tif is not TimeInForce.IOC)):
            return RejectReason.INVALID_MIN_QTY, "bad minimum quantity"
        if cmd.post_only and cmd.tif in (TimeInForce.IOC, TimeInForce.FOK):
            return RejectReason.INVALID_TIME_IN_FORCE, "post-only needs DAY or GTC"
        if sym.state is TradingState.CLOSED:
            return RejectReason.MARKET_CLOSED, "symbol closed"
        if sym.state in (TradingState.PRE_OPEN, TradingState.HALTED) and (
            market or cmd.tif in (TimeInForce.IOC, TimeInForce.FOK) or cmd.post_only
        ):
            if sym.state is TradingState.HALTED:
                return RejectReason.SYMBOL_HALTED, "symbol halted"
            return RejectReason.NOT_ALLOWED_IN_STATE, "only DAY/GTC limit orders before the open"
        notional = cmd.qty * (sym.band()[1] if market else cmd.price)
        problem = self.price_and_size_problem(
            sym, p, None if market else cmd.price, cmd.qty, notional
        )
        if problem:
            return problem
        if self.open_orders(cmd.participant) >= p.spec.max_open_orders:
            return RejectReason.MAX_OPEN_ORDERS, "too many open orders"
        if (cmd.post_only and sym.state is TradingState.OPEN
                and self.opposite_crosses(cmd.symbol, cmd.side, cmd.price)):
            return RejectReason.POST_ONLY_WOULD_CROSS, "post-only would cross"
        return None

    def new_order(self, cmd: NewOrder, ts: int) -> list[Event]:
        problem = self.new_order_problem(cmd)
        if problem:
            known = self.participants.get(cmd.participant)
            if known is not None and cmd.client_order_id:  # a refused id is spent too
                known.used_client_order_ids.add(cmd.client_order_id)
            return [OrderRejected(ts, cmd.participant, cmd.client_order_id, *problem)]
        p = self.participants[cmd.participant]
        sym = self.symbols[cmd.symbol]
        p.used_client_order_ids.add(cmd.client_order_id)
        order = RefOrder(
            self.take_order_id(), cmd.participant, cmd.client_order_id, cmd.symbol, cmd.side,
            cmd.price, cmd.qty, cmd.display_qty, cmd.tif, cmd.post_only,
        )
        events: list[Event] = [OrderAccepted(
            ts, cmd.symbol, order.order_id, cmd.participant, cmd.client_order_id, cmd.side,
            cmd.price, cmd.qty, cmd.order_type, cmd.tif, cmd.display_qty, cmd.post_only,
            cmd.min_qty,
        )]
        if sym.state is not TradingState.OPEN:
            self.rest(order, events, ts)
            return events
        market = cmd.order_type is OrderType.MARKET
        if cmd.tif is TimeInForce.FOK and self.available(order, market) < cmd.qty:
            events.append(cancelled(order, cmd.qty, 0, CancelReason.FILL_OR_KILL, ts))
            return events
        if (cmd.tif is TimeInForce.IOC and cmd.min_qty > 0
                and self.available(order, market) < cmd.min_qty):
            events.append(cancelled(order, cmd.qty, 0, CancelReason.MIN_QTY, ts))
            return events
        self.match_and_finish(order, market, events, ts)
        return events

    def available(self, order: RefOrder, market: bool) -> int:
        """The FOK / min-qty walk over crossing opposite orders, in priority order."""
        stp = self.participants[order.participant].spec.stp
        total = 0
        for resting in self.queue(order.symbol, order.side.opposite):
            if not market and not crosses(order.side, order.price, resting.price):
                break
            if resting.participant == order.participant:
                if stp in (StpMode.CANCEL_NEWEST, StpMode.CANCEL_BOTH):
                    break
                if stp is StpMode.CANCEL_OLDEST:
                    continue
            total += resting.leaves
        return total

    def match_and_finish(self, order: RefOrder, market: bool, events: list, ts: int) -> None:
        """Steps 4 and 5 of NewOrder execution (also used by a crossing replace)."""
        stopped_by_stp = self.match(order, market, events, ts)
        if order.leaves == 0 or stopped_by_stp:
            return
        if market or order.tif in (TimeInForce.IOC, TimeInForce.FOK):
            events.append(cancelled(order, order.leaves, 0, CancelReason.IMMEDIATE_OR_CANCEL, ts))
            order.leaves = 0
        else:
            self.rest(order, events, ts)

    def match(self, order: RefOrder, market: bool, events: list, ts: int) -> bool:
        """Trade ``order`` against the book; True if STP cancelled it."""
        stp = self.participants[order.participant].spec.stp
        while order.leaves > 0:
            opposite = self.queue(order.symbol, order.side.opposite)
            if not opposite:
                return False
            resting = opposite[0]
            if not market and not crosses(order.side, order.price, resting.price):
                return False
            if resting.participant == order.participant and stp is not StpMode.NONE:
                if stp in (StpMode.CANCEL_OLDEST, StpMode.CANCEL_BOTH):
                    self.cancel_resting(resting, CancelReason.SELF_TRADE, events, ts)
                if stp in (StpMode.CANCEL_NEWEST, StpMode.CANCEL_BOTH):
                    events.append(cancelled(order, order.leaves, 0, CancelReason.SELF_TRADE, ts))
                    order.leaves = 0
                    return True
                continue
            displayed = not resting.hidden
            q = min(order.leaves, resting.visible if displayed else resting.leaves)
            order.leaves -= q
            resting.leaves -= q
            if displayed:
                resting.visible -= q
            trade_id = self.take_trade_id()
            buy, sell = (order, resting) if order.side is Side.BUY else (resting, order)
            events.append(execution(ts, order.symbol, trade_id, resting.price, q, order.side,
                                    buy, sell))
            if displayed:
                events.append(BookExecute(ts, order.symbol, resting.order_id, q, trade_id,
                                          resting.price, False))
            else:
                events.append(Trade(ts, order.symbol, trade_id, resting.price, q, resting.side,
                                    False))
            if resting.leaves == 0:
                self.book.remove(resting)
            elif displayed and resting.visible == 0:
                self.refill(resting, events, ts)
        return False

    # ------------------------------------------------------------ the book

    def rest(self, order: RefOrder, events: list | None, ts: int) -> None:
        """Join the back of the order's class at its price; BookAdd if anything shows."""
        order.priority = self.take_priority()
        order.visible = 0 if order.hidden else order.visible_when_resting()
        self.book.append(order)
        if order.visible > 0 and events is not None:
            events.append(BookAdd(ts, order.symbol, order.order_id, order.side, order.price,
                                  order.visible))

    def refill(self, order: RefOrder, events: list, ts: int) -> None:
        order.visible = order.visible_when_resting()
        order.priority = self.take_priority()
        events.append(BookAdd(ts, order.symbol, order.order_id, order.side, order.price,
                              order.visible))

    def cancel_resting(self, order: RefOrder, reason: CancelReason, events: list, ts: int) -> None:
        events.append(cancelled(order, order.leaves, 0, reason, ts))
        if order.visible > 0:
            events.append(BookDelete(ts, order.symbol, order.order_id))
        self.book.remove(order)

    # ------------------------------------------------------------ CancelOrder

    def cancel_order(self, cmd: CancelOrder, ts: int) -> list[Event]:
        order = self.find_resting(cmd.order_id)
        problem: Problem = None
        if cmd.participant not in self.participants:
            problem = RejectReason.UNKNOWN_PARTICIPANT, f"unknown participant {cmd.participant}"
        elif order is None or order.participant != cmd.participant:
            problem = RejectReason.UNKNOWN_ORDER, f"no open order {cmd.order_id}"
        elif (cmd.leaves_qty < 0 or cmd.leaves_qty >= order.leaves
              or cmd.leaves_qty % self.symbols[order.symbol].spec.lot_size != 0):
            problem = RejectReason.INVALID_QUANTITY, f"bad leaves quantity {cmd.leaves_qty}"
        if problem:
            return [OrderRejected(ts, cmd.participant, cmd.client_order_id, *problem,
                                  cmd.order_id)]
        assert order is not None
        events: list[Event] = []
        if cmd.leaves_qty == 0:
            self.cancel_resting(order, CancelReason.USER, events, ts)
            return events
        keep = cmd.leaves_qty
        events.append(cancelled(order, order.leaves - keep, keep, CancelReason.USER, ts))
        order.leaves = keep
        if order.visible > keep:
            events.append(BookCancel(ts, order.symbol, order.order_id, order.visible - keep))
            order.visible = keep
        return events

    # ------------------------------------------------------------ ReplaceOrder

    def replace_problem(self, cmd: ReplaceOrder) -> Problem:
        p = self.participants.get(cmd.participant)
        if p is None:
            return RejectReason.UNKNOWN_PARTICIPANT, f"unknown participant {cmd.participant}"
        if p.kill_switch:
            return RejectReason.KILL_SWITCH, "kill switch engaged"
        order = self.find_resting(cmd.order_id)
        if order is None or order.participant != cmd.participant:
            return RejectReason.UNKNOWN_ORDER, f"no open order {cmd.order_id}"
        problem = self.client_id_problem(p, cmd.client_order_id)
        if problem:
            return problem
        sym = self.symbols[order.symbol]
        lot, tick = sym.spec.lot_size, sym.spec.tick_size
        if sym.state is TradingState.CLOSED:
            return RejectReason.MARKET_CLOSED, "symbol closed"
        if cmd.qty <= 0:
            return RejectReason.INVALID_QUANTITY, "quantity must be positive"
        if cmd.qty % lot != 0:
            return RejectReason.INVALID_LOT, "quantity not a multiple of the lot"
        if cmd.price <= 0:
            return RejectReason.INVALID_PRICE, "price must be positive"
        if cmd.price % tick != 0:
            return RejectReason.INVALID_TICK, "price not on the tick"
        if cmd.display_qty is not None and (cmd.display_qty < 0 or cmd.display_qty % lot != 0):
            return RejectReason.INVALID_DISPLAY_QTY, "bad display quantity"
        problem = self.price_and_size_problem(sym, p, cmd.price, cmd.qty, cmd.qty * cmd.price)
        if problem:
            return problem
        if (order.post_only and sym.state is TradingState.OPEN
                and self.opposite_crosses(order.symbol, order.side, cmd.price)):
            return RejectReason.POST_ONLY_WOULD_CROSS, "post-only would cross"
        return None

    def replace_order(self, cmd: ReplaceOrder, ts: int) -> list[Event]:
        problem = self.replace_problem(cmd)
        if problem:
            return [OrderRejected(ts, cmd.participant, cmd.client_order_id, *problem,
                                  cmd.order_id)]
        order = self.find_resting(cmd.order_id)
        assert order is not None
        sym = self.symbols[order.symbol]
        self.participants[cmd.participant].used_client_order_ids.add(cmd.client_order_id)
        display = order.display if cmd.display_qty is None else cmd.display_qty
        keeps = cmd.price == order.price and cmd.qty <= order.leaves and display == order.display
        old_id = order.order_id
        new_id = old_id if keeps else self.take_order_id()
        events: list[Event] = [OrderReplaced(
            ts, order.symbol, old_id, new_id, order.participant, cmd.client_order_id,
            order.client_order_id, order.side, cmd.price, cmd.qty, display,
        )]
        order.client_order_id = cmd.client_order_id
        if keeps:
            if cmd.qty < order.leaves:
                order.leaves = cmd.qty
                if order.visible > cmd.qty:
                    events.append(BookCancel(ts, order.symbol, old_id, order.visible - cmd.qty))
                    order.visible = cmd.qty
            return events
        old_visible = order.visible
        self.book.remove(order)
        order.order_id = new_id
        order.price = cmd.price
        order.leaves = cmd.qty
        order.display = display
        if sym.state is TradingState.OPEN and self.opposite_crosses(
            order.symbol, order.side, order.price
        ):
            if old_visible > 0:
                events.append(BookDelete(ts, order.symbol, old_id))
            order.visible = 0
            self.match_and_finish(order, False, events, ts)
            return events
        self.rest(order, None, ts)
        new_visible = order.visible
        if old_visible > 0 and new_visible > 0:
            events.append(BookReplace(ts, order.symbol, old_id, new_id, order.price, new_visible))
        elif old_visible > 0:
            events.append(BookDelete(ts, order.symbol, old_id))
        elif new_visible > 0:
            events.append(BookAdd(ts, order.symbol, new_id, order.side, order.price, new_visible))
        return events

    # ------------------------------------------------------------ operator commands

    def add_symbol(self, cmd: AddSymbol, ts: int) -> list[Event]:
        spec = cmd.spec
        if spec.symbol in self.symbols:
            return [CommandRejected(ts, RejectReason.DUPLICATE_SYMBOL, f"{spec.symbol} exists")]
        if (spec.symbol == "" or len(spec.symbol) > 8 or spec.reference_price <= 0
                or spec.tick_size <= 0 or spec.lot_size <= 0 or spec.band_bps <= 0
                or spec.reference_price % spec.tick_size != 0):
            return [CommandRejected(ts, RejectReason.INVALID_SYMBOL_SPEC, "invalid symbol spec")]
        self.symbols[spec.symbol] = RefSymbol(spec, cmd.state, spec.reference_price)
        return [
            SymbolDirectory(ts, spec),
            TradingStatus(ts, spec.symbol, cmd.state, spec.reference_price),
        ]

    def set_participant(self, cmd: SetParticipant, ts: int) -> list[Event]:
        spec = cmd.spec
        if (spec.participant == "" or spec.max_order_qty <= 0 or spec.max_notional < 0
                or spec.collar_bps < 0 or spec.max_open_orders < 0):
            return [CommandRejected(ts, RejectReason.INVALID_PARTICIPANT_SPEC,
                                    "invalid participant spec")]
        p = self.participants.get(spec.participant)
        if p is None:
            p = self.participants[spec.participant] = RefParticipant(spec)
        p.spec = spec
        return [ParticipantUpdated(ts, spec, p.kill_switch)]

    def set_trading_state(self, cmd: SetTradingState, ts: int) -> list[Event]:
        sym = self.symbols.get(cmd.symbol)
        if sym is None:
            return [CommandRejected(ts, RejectReason.UNKNOWN_SYMBOL, f"unknown {cmd.symbol}")]
        if cmd.state not in ALLOWED_TRANSITIONS[sym.state]:
            return [CommandRejected(ts, RejectReason.INVALID_STATE_TRANSITION,
                                    f"{sym.state} -> {cmd.state}")]
        events: list[Event] = []
        if cmd.state is TradingState.OPEN:
            self.auction(sym, events, ts)
        elif cmd.state is TradingState.CLOSED:
            expiring = [o for o in self.book
                        if o.symbol == cmd.symbol and o.tif is TimeInForce.DAY]
            for order in sorted(expiring, key=lambda o: o.order_id):
                self.cancel_resting(order, CancelReason.EXPIRED, events, ts)
        sym.state = cmd.state
        events.append(TradingStatus(ts, cmd.symbol, cmd.state, sym.reference_price))
        return events

    def kill_switch(self, cmd: KillSwitch, ts: int) -> list[Event]:
        p = self.participants.get(cmd.participant)
        if p is None:
            return [CommandRejected(ts, RejectReason.UNKNOWN_PARTICIPANT,
                                    f"unknown participant {cmd.participant}")]
        events: list[Event] = []
        if cmd.engaged:
            mine = [o for o in self.book if o.participant == cmd.participant]
            for order in sorted(mine, key=lambda o: o.order_id):
                self.cancel_resting(order, CancelReason.KILL_SWITCH, events, ts)
        p.kill_switch = cmd.engaged
        events.append(ParticipantUpdated(ts, p.spec, p.kill_switch))
        return events

    # ------------------------------------------------------------ auction

    def auction_price(self, sym: RefSymbol) -> tuple[int, int] | None:
        """(price, volume) of the uncross, or None if nothing executes."""
        symbol = sym.spec.symbol
        bids = self.queue(symbol, Side.BUY)
        asks = self.queue(symbol, Side.SELL)
        candidates = []  # (price, volume, surplus)
        for p in sorted({o.price for o in bids + asks}):
            b = sum(o.leaves for o in bids if o.price >= p)
            a = sum(o.leaves for o in asks if o.price <= p)
            candidates.append((p, min(b, a), b - a))
        if not candidates or max(c[1] for c in candidates) == 0:
            return None
        volume = max(c[1] for c in candidates)
        candidates = [c for c in candidates if c[1] == volume]
        least = min(abs(c[2]) for c in candidates)
        candidates = [c for c in candidates if abs(c[2]) == least]
        if all(c[2] > 0 for c in candidates):
            return max(c[0] for c in candidates), volume
        if all(c[2] < 0 for c in candidates):
            return min(c[0] for c in candidates), volume
        ref = sym.reference_price
        return min(candidates, key=lambda c: (abs(c[0] - ref), c[0]))[0], volume

    def auction(self, sym: RefSymbol, events: list, ts: int) -> None:
        found = self.auction_price(sym)
        if found is None:
            return
        price, volume = found
        symbol = sym.spec.symbol
        bids = self.queue(symbol, Side.BUY)
        asks = self.queue(symbol, Side.SELL)
        touched: list[RefOrder] = []
        remaining = volume
        trade_id = 0
        i = j = 0
        while remaining > 0:
            bid, ask = bids[i], asks[j]
            q = min(bid.leaves, ask.leaves, remaining)
            bid.leaves -= q
            ask.leaves -= q
            remaining -= q
            trade_id = self.take_trade_id()
            events.append(execution(ts, symbol, trade_id, price, q, None, bid, ask))
            for order in (bid, ask):
                if order not in touched:
                    touched.append(order)
                shown = min(q, order.visible)
                if shown > 0:
                    order.visible -= shown
                    events.append(BookExecute(ts, symbol, order.order_id, shown, trade_id,
                                              price, True))
            if bid.leaves == 0:
                i += 1
            if ask.leaves == 0:
                j += 1
        events.append(Trade(ts, symbol, trade_id, price, volume, None, True))
        for order in touched:
            if order.leaves == 0:
                self.book.remove(order)
        for order in touched:
            if order.leaves > 0 and order.visible == 0 and not order.hidden:
                self.refill(order, events, ts)
        sym.reference_price = price


# ---------------------------------------------------------------- event builders


def cancelled(order: RefOrder, qty: int, leaves: int, reason: CancelReason,
              ts: int) -> OrderCancelled:
    return OrderCancelled(ts, order.symbol, order.order_id, order.participant,
                          order.client_order_id, qty, leaves, reason)


def execution(ts: int, symbol: str, trade_id: int, price: int, qty: int,
              aggressor: Side | None, buy: RefOrder, sell: RefOrder) -> Execution:
    return Execution(
        ts, symbol, trade_id, price, qty, aggressor,
        buy.order_id, buy.participant, buy.client_order_id, buy.leaves,
        sell.order_id, sell.participant, sell.client_order_id, sell.leaves,
    )
