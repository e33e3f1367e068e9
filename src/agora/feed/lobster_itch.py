"""LOBSTER -> NASDAQ TotalView-ITCH 5.0: a self-consistent BinaryFILE stream a pure ITCH consumer
(knowing nothing of LOBSTER) rebuilds the same book from.

Built on :class:`~agora.feed.lobster.LobsterFeed`, so the stream carries the same synthetic orders
and revealed-level adjustments as the reader (see its module docstring): pre-existing orders are
'A' messages with references ``SYNTHETIC_ID_BASE + k`` (below 2**64, so they fit the 8-byte
field), and LOBSTER rows that name a pre-existing order act on those references.

Stream layout, timestamps in ns since midnight (LOBSTER's own clock):

* preamble, stamped one ns before the first row: System Event 'O' (start of messages), Stock
  Directory 'R', Stock Trading Action 'H' with state 'T', then the initial synthetic 'A's;
* per row: 1 'A', 2 'X', 3 'D', 4 'E' (or 'C' when LOBSTER's price is not the order's display
  price), 5 'P', 6 'Q', 7 'H' (-1 'H' halted, 0 'Q' quotation only, 1 'T' trading), then any
  revealed-level adjustment ('A', 'U', 'X' or 'D');
* System Event 'C' (end of messages) at the last row's time.

Match numbers are the reader's trade ids (one counter for 'E', 'P' and 'Q'). 'P' carries order
reference 0 (the spec: always 0 since 2010-12-06) and LOBSTER's direction as Buy/Sell. 'Q' cross
type from LOBSTER's pseudo order id (help.lobsterdata.com, "event type 6"): -1 opening 'O', -2
closing 'C', anything else (IPO, halt, other intraday crosses, which LOBSTER does not tell apart)
'H'. Stock Directory constants are placeholders a book builder ignores (market category ' ',
round lot 100, common stock 'C', sub-type 'Z', authenticity 'P').
"""

from __future__ import annotations

from collections.abc import Iterator

from agora.core import events as ev
from agora.core.enums import TradingState
from agora.feed.lobster import LobsterMessage, Path, read_lobster
from agora.protocols import itch50

TRADING_STATE_CODES = {TradingState.HALTED: "H", TradingState.PRE_OPEN: "Q", TradingState.OPEN: "T"}
CROSS_TYPES = {-1: "O", -2: "C"}
OTHER_CROSS = "H"


class _Mapper:
    """Core events of one symbol -> ITCH messages; remembers display prices for 'E' vs 'C'."""

    def __init__(self, symbol: str, locate: int) -> None:
        self.symbol = symbol
        self.locate = locate
        self.prices: dict[int, int] = {}

    def preamble(self, ts: int) -> list[itch50.ItchMessage]:
        return [
            itch50.SystemEvent(0, 0, ts, "O"),
            itch50.StockDirectory(
                stock_locate=self.locate,
                tracking_number=0,
                timestamp=ts,
                stock=self.symbol,
                market_category=" ",
                financial_status_indicator=" ",
                round_lot_size=100,
                round_lots_only="N",
                issue_classification="C",
                issue_sub_type="Z",
                authenticity="P",
                short_sale_threshold_indicator=" ",
                ipo_flag=" ",
                luld_reference_price_tier=" ",
                etp_flag="N",
                etp_leverage_factor=0,
                inverse_indicator="N",
            ),
            itch50.StockTradingAction(self.locate, 0, ts, self.symbol, "T", " ", ""),
        ]

    def map(self, event: object, message: LobsterMessage | None) -> itch50.ItchMessage:
        loc, sym = self.locate, self.symbol
        if isinstance(event, ev.BookAdd):
            self.prices[event.order_id] = event.price
            return itch50.AddOrder(
                loc, 0, event.ts, event.order_id, event.side.value, event.qty, sym, event.price
            )
        if isinstance(event, ev.BookExecute):
            if self.prices[event.order_id] == event.price:
                return itch50.OrderExecuted(
                    loc, 0, event.ts, event.order_id, event.qty, event.trade_id
                )
            return itch50.OrderExecutedWithPrice(
                loc, 0, event.ts, event.order_id, event.qty, event.trade_id, "Y", event.price
            )
        if isinstance(event, ev.BookCancel):
            return itch50.OrderCancel(loc, 0, event.ts, event.order_id, event.qty)
        if isinstance(event, ev.BookDelete):
            del self.prices[event.order_id]
            return itch50.OrderDelete(loc, 0, event.ts, event.order_id)
        if isinstance(event, ev.BookReplace):
            del self.prices[event.old_order_id]
            self.prices[event.order_id] = event.price
            return itch50.OrderReplace(
                loc, 0, event.ts, event.old_order_id, event.order_id, event.qty, event.price
            )
        if isinstance(event, ev.Trade) and not event.cross:
            side = event.side.value if event.side is not None else "B"
            return itch50.Trade(
                loc, 0, event.ts, 0, side, event.qty, sym, event.price, event.trade_id
            )
        if isinstance(event, ev.Trade):
            pseudo = message.order_id if message is not None else 0
            cross = CROSS_TYPES.get(pseudo, OTHER_CROSS)
            return itch50.CrossTrade(
                loc, 0, event.ts, event.qty, sym, event.price, event.trade_id, cross
            )
        if isinstance(event, ev.TradingStatus):
            code = TRADING_STATE_CODES[event.state]
            return itch50.StockTradingAction(loc, 0, event.ts, sym, code, " ", "")
        raise TypeError(f"no ITCH mapping for {type(event).__name__}")


def lobster_itch_messages(
    message_csv: Path,
    orderbook_csv: Path,
    *,
    symbol: str,
    locate: int = 1,
    levels: int | None = None,
) -> Iterator[tuple[int, itch50.ItchMessage]]:
    """``(row, message)`` in stream order: row 0 is the preamble and the initial orders; the
    closing System Event 'C' comes last under the last row's number."""
    feed = read_lobster(message_csv, orderbook_csv, symbol=symbol, levels=levels)
    mapper = _Mapper(symbol, locate)
    row = ts = 0
    for step in feed.steps():
        row, ts = step.row, step.ts
        if row == 0:
            for msg in mapper.preamble(ts):
                yield 0, msg
        for event in step.events:
            yield row, mapper.map(event, step.message)
    yield row, itch50.SystemEvent(0, 0, ts, "C")


def lobster_to_itch(
    message_csv: Path,
    orderbook_csv: Path,
    *,
    symbol: str,
    locate: int = 1,
    levels: int | None = None,
) -> bytes:
    """The whole LOBSTER pair as one ITCH 5.0 BinaryFILE stream (2-byte length + message)."""
    messages = lobster_itch_messages(
        message_csv, orderbook_csv, symbol=symbol, locate=locate, levels=levels
    )
    return itch50.write_file_records(msg for _row, msg in messages)
