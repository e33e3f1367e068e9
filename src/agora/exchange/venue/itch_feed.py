"""ItchMapper: agora's market-data events as NASDAQ TotalView-ITCH 5.0 messages (pure, no I/O).

The publisher (``itch_publisher``) feeds every committed event batch, in sequence order, to one
mapper and packs what comes out into MoldUDP64. The mapper is deterministic: the same event
history gives the same messages, so a venue restarted from its journal republishes the same
feed with the same sequence numbers.

Mapping (one event -> zero or one message, plus a System Event 'O' before the very first one):

=================  ====  ==================================================================
agora event        ITCH  notes
=================  ====  ==================================================================
SymbolDirectory    R     stock locate assigned 1, 2, ... in directory order (see constants)
TradingStatus      H     OPEN 'T'; HALTED 'H'; PRE_OPEN 'Q'; CLOSED 'H' (see below)
BookAdd            A     order reference number = agora order id
BookExecute        E     match number = trade id (auction executions too: 'E', then one 'Q')
BookCancel         X     cancelled shares = displayed quantity removed
BookDelete         D
BookReplace        U     original / new order reference, new displayed shares and price
Trade (cross=F)    P     hidden order hit: order reference 0, Buy/Sell 'B' (see below)
Trade (cross=T)    Q     cross type 'O' if the symbol was PRE_OPEN (opening cross), else 'H'
anything else      --    order entry outcomes (OrderAccepted, Execution...) are private
=================  ====  ==================================================================

Header: ``stock_locate`` from the directory (0 for 'S'), ``tracking_number`` 0, ``timestamp`` =
event ``ts`` modulo one day (ns since midnight UTC; agora's clocks count ns since the epoch).

Decisions where ITCH has no exact counterpart:

* Trading states. ITCH 'H' knows T (trading), H (halted), P (paused), Q (quotation only).
  PRE_OPEN accepts and rests orders without matching, which is exactly a quotation-only period:
  'Q'. CLOSED refuses new orders: 'H' (halted). agora does not record why a symbol was
  halted, so every 'H' carries the blank reason (Appendix C: space = reason not available).
* Cross type: the engine emits the auction's executions and its Trade(cross=True) *before* the
  TradingStatus(OPEN) of the same command, so the mapper still holds the previous state when the
  cross arrives: PRE_OPEN -> 'O' (opening cross), HALTED (or anything else) -> 'H'
  (halt/IPO/pause cross). agora has no closing cross, so 'C' is never sent.
* 'P' Buy/Sell Indicator: the spec says it is always 'B' since 2014 whatever the resting side;
  ``p_resting_side=True`` sends the hidden order's side instead (older convention).
* Stock Directory constants (agora is not a listing market; a book builder ignores these):
  market category ' ' (not available), financial status ' ' (not available), round lot size =
  the symbol's lot size, round lots only 'Y' (the engine rejects odd lots), issue
  classification 'C' (common stock), sub-type 'Z' (not applicable), authenticity 'P' (or 'T'
  with ``authenticity="T"``), short sale threshold ' ', IPO flag ' ', LULD tier ' ' (agora's
  band is its own), ETP flag 'N', leverage 0, inverse 'N'.
* Prices must fit the 4-byte Price(4) field (``0 <= price < 2**32``, i.e. below $429,496.7296);
  otherwise :class:`ItchMappingError` names the event. The spec's stated maximum is $200,000;
  only the wire width is enforced. Share counts are checked by the codec (uint32; 'Q' uint64).
* Start/end of messages: ``start_of_messages`` ('S' 'O') is emitted automatically before the
  first mapped message, stamped with that event's time, so it is part of the deterministic
  stream. ``end_of_messages`` ('S' 'C') is an explicit hook for the end of the trading day: it
  takes a sequence number that a restarted venue would not reproduce, so the publisher only
  sends it when told to.
"""

from __future__ import annotations

from collections.abc import Iterable

from agora.core import events as ev
from agora.core.enums import Side, TradingState
from agora.protocols import itch50

NS_PER_DAY = 86_400 * 1_000_000_000
PRICE4_LIMIT = 1 << 32  # the Price(4) field is a uint32
_PACKERS = {cls: itch50.packer(cls) for cls in (itch50.AddOrder, itch50.OrderExecuted,
                                                itch50.OrderCancel, itch50.OrderDelete,
                                                itch50.OrderReplace)}

MARKET_CATEGORY = " "
FINANCIAL_STATUS = " "
ROUND_LOTS_ONLY = "Y"
ISSUE_CLASSIFICATION = "C"
ISSUE_SUB_TYPE = "Z"
NO_REASON = ""  # encoded as four spaces: reason not available

TRADING_STATE_CODES: dict[TradingState, str] = {
    TradingState.OPEN: "T",
    TradingState.HALTED: "H",
    TradingState.PRE_OPEN: "Q",
    TradingState.CLOSED: "H",
}

START_OF_MESSAGES = "O"
END_OF_MESSAGES = "C"


#: the event types ``map_event`` maps (any other gives None)
_CARRIED = frozenset({
    ev.BookAdd, ev.BookExecute, ev.BookCancel, ev.BookDelete, ev.BookReplace, ev.Trade,
    ev.TradingStatus, ev.SymbolDirectory,
})


class ItchMappingError(ValueError):
    """An event that cannot be expressed in ITCH 5.0 (price too wide, unknown symbol...)."""


def itch_timestamp(ts: int) -> int:
    """agora event time (ns since the epoch) -> ITCH timestamp (ns since midnight UTC)."""
    return ts % NS_PER_DAY


class ItchMapper:
    """Maps agora events to ITCH 5.0 messages; keeps the locate table and trading states."""

    def __init__(self, *, authenticity: str = "P", p_resting_side: bool = False) -> None:
        self.authenticity = authenticity
        self.p_resting_side = p_resting_side
        self.locates: dict[str, int] = {}
        self.specs: dict[str, ev.SymbolSpec] = {}
        self.states: dict[str, TradingState] = {}
        self.started = False
        self.last_ts = 0

    # ------------------------------------------------------------ events

    def map_events(self, events: Iterable[object]) -> list[itch50.ItchMessage]:
        """The ITCH messages for one batch of events, in order."""
        out: list[itch50.ItchMessage] = []
        for event in events:
            if type(event) not in _CARRIED:
                continue  # order entry outcomes are private: map_event would say None
            msg = self.map_event(event)
            if msg is None:
                continue
            if not self.started:
                self.started = True
                out.append(self.start_of_messages(event.ts))  # type: ignore[attr-defined]
            out.append(msg)
        return out

    def encode_events(self, events: Iterable[object]) -> list[bytes]:
        """``[itch50.encode(m) for m in self.map_events(events)]``, the publisher's hot path:
        the book's messages are packed from their fields (``itch50.packer``), never built."""
        out: list[bytes] = []
        for event in events:
            if type(event) not in _CARRIED:
                continue
            book = self._book_fields(event) if self.started else None
            if book is None:
                out += map(itch50.encode, self.map_events((event,)))
                continue
            cls, fields = book
            try:
                out.append(_PACKERS[cls](*fields))
            except Exception:  # a bad value: the message path raises the ItchError naming it
                out.append(itch50.encode(cls(*fields)))
        return out

    def map_event(self, event: object) -> itch50.ItchMessage | None:
        """One event -> its message (None for events the feed does not carry).

        Updates the mapper's state (locates, trading states); call it once per event, in order.
        """
        book = self._book_fields(event)
        if book is not None:
            cls, fields = book
            return cls(*fields)
        kind = type(event)
        if kind is ev.Trade:
            return self._trade(event)  # type: ignore[arg-type]
        if kind is ev.TradingStatus:
            t: ev.TradingStatus = event  # type: ignore[assignment]
            locate = self._locate(t.symbol, t)
            self.states[t.symbol] = t.state
            return self.trading_action(t.symbol, t.state, t.ts, locate)
        if kind is ev.SymbolDirectory:
            s: ev.SymbolDirectory = event  # type: ignore[assignment]
            return self._directory(s)
        return None

    def _book_fields(self, event: object) -> tuple[type[itch50.ItchMessage], tuple] | None:
        """(message class, its fields in wire order) of a book event, None for other kinds:
        the one mapping both ``map_event`` and ``encode_events`` use."""
        kind = type(event)
        if kind is ev.BookAdd:
            e: ev.BookAdd = event  # type: ignore[assignment]
            return itch50.AddOrder, (
                self._locate(e.symbol, e), 0, self._ts(e.ts), e.order_id, e.side.value,
                e.qty, e.symbol, self._price(e.price, e),
            )
        if kind is ev.BookExecute:
            x: ev.BookExecute = event  # type: ignore[assignment]
            return itch50.OrderExecuted, (
                self._locate(x.symbol, x), 0, self._ts(x.ts), x.order_id, x.qty, x.trade_id
            )
        if kind is ev.BookCancel:
            c: ev.BookCancel = event  # type: ignore[assignment]
            return itch50.OrderCancel, (
                self._locate(c.symbol, c), 0, self._ts(c.ts), c.order_id, c.qty
            )
        if kind is ev.BookDelete:
            d: ev.BookDelete = event  # type: ignore[assignment]
            return itch50.OrderDelete, (self._locate(d.symbol, d), 0, self._ts(d.ts), d.order_id)
        if kind is ev.BookReplace:
            r: ev.BookReplace = event  # type: ignore[assignment]
            return itch50.OrderReplace, (
                self._locate(r.symbol, r), 0, self._ts(r.ts), r.old_order_id, r.order_id,
                r.qty, self._price(r.price, r),
            )
        return None

    def _trade(self, t: ev.Trade) -> itch50.ItchMessage:
        locate = self._locate(t.symbol, t)
        price = self._price(t.price, t)
        if t.cross:
            previous = self.states.get(t.symbol)
            cross_type = "O" if previous is TradingState.PRE_OPEN else "H"
            return itch50.CrossTrade(
                locate, 0, self._ts(t.ts), t.qty, t.symbol, price, t.trade_id, cross_type
            )
        side = t.side.value if self.p_resting_side and t.side is not None else Side.BUY.value
        return itch50.Trade(
            locate, 0, self._ts(t.ts), 0, side, t.qty, t.symbol, price, t.trade_id
        )

    def _directory(self, s: ev.SymbolDirectory) -> itch50.StockDirectory:
        spec = s.spec
        if spec.symbol in self.locates:
            raise ItchMappingError(f"symbol {spec.symbol!r} is already in the directory: {s!r}")
        locate = len(self.locates) + 1
        if locate > 0xFFFF:
            raise ItchMappingError(f"more than 65535 symbols: no stock locate left for {s!r}")
        self.locates[spec.symbol] = locate
        self.specs[spec.symbol] = spec
        return self.directory_message(spec.symbol, s.ts)

    # ------------------------------------------------------------ messages from state

    def directory_message(self, symbol: str, ts: int) -> itch50.StockDirectory:
        """The 'R' of a symbol already in the directory (also used by the snapshot)."""
        spec = self.specs[symbol]
        return itch50.StockDirectory(
            self.locates[symbol], 0, self._ts(ts), symbol, MARKET_CATEGORY, FINANCIAL_STATUS,
            spec.lot_size, ROUND_LOTS_ONLY, ISSUE_CLASSIFICATION, ISSUE_SUB_TYPE,
            self.authenticity, " ", " ", " ", "N", 0, "N",
        )

    def trading_action(
        self, symbol: str, state: TradingState, ts: int, locate: int | None = None
    ) -> itch50.StockTradingAction:
        if locate is None:
            locate = self.locates[symbol]
        return itch50.StockTradingAction(
            locate, 0, self._ts(ts), symbol, TRADING_STATE_CODES[state], " ", NO_REASON
        )

    def add_order(
        self, symbol: str, order_id: int, side: Side, qty: int, price: int, ts: int
    ) -> itch50.AddOrder:
        return itch50.AddOrder(
            self.locates[symbol], 0, self._ts(ts), order_id, side.value, qty, symbol,
            self._price(price, (symbol, order_id)),
        )

    def start_of_messages(self, ts: int) -> itch50.SystemEvent:
        return itch50.SystemEvent(0, 0, itch_timestamp(ts), START_OF_MESSAGES)

    def end_of_messages(self, ts: int | None = None) -> itch50.SystemEvent:
        """'S' 'C', the last message of the day (default time: the last event's)."""
        return itch50.SystemEvent(0, 0, itch_timestamp(self.last_ts if ts is None else ts),
                                  END_OF_MESSAGES)

    # ------------------------------------------------------------ helpers

    def _ts(self, ts: int) -> int:
        self.last_ts = ts
        return ts % NS_PER_DAY

    def _locate(self, symbol: str, event: object) -> int:
        try:
            return self.locates[symbol]
        except KeyError:
            raise ItchMappingError(
                f"symbol {symbol!r} has no stock locate (no SymbolDirectory before): {event!r}"
            ) from None

    @staticmethod
    def _price(price: int, event: object) -> int:
        if not 0 <= price < PRICE4_LIMIT:
            raise ItchMappingError(
                f"price {price} does not fit ITCH Price(4) (uint32, max {PRICE4_LIMIT - 1}): "
                f"{event!r}"
            )
        return price


def displayed_book(engine) -> dict[tuple[str, str], list[tuple[int, tuple[tuple[int, int], ...]]]]:
    """The engine's displayed (L3) book in the form ``ItchSubscriber.book_levels`` returns.

    ``{(symbol, side): [(price, ((order id, visible qty), ...)), ...]}``: levels best first,
    orders in queue (time) order, only orders showing a quantity; empty sides are left out.
    """
    out = {}
    for symbol, sym in engine.symbols.items():
        for side in (Side.BUY, Side.SELL):
            levels = []
            for level in sym.book(side).levels_in_priority():
                orders = tuple(
                    (o.order_id, o.visible) for o in level.displayed.values() if o.visible > 0
                )
                if orders:
                    levels.append((next(iter(level.displayed.values())).price, orders))
            if levels:
                out[symbol, side.value] = levels
    return out
