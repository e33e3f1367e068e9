"""FeedHandler: ITCH 5.0 messages (or core book events) in, L3 books and normalized events out.

The reference feed handler: plain Python over ``itch50.decode`` and
:class:`~agora.feed.book.L3Book`, written to be obviously right. ``agora.feed.fast`` is the numba
kernel held equal to it.

Semantics (the fast kernel implements the same):

* Order references are unique for the day across all symbols, so executes, cancels, deletes and
  replaces find their order by reference alone; the add's locate code picks the book.
* A message that cannot apply is counted in :attr:`report` with its byte offset and, where it is
  safe, processing goes on: an unknown reference is ignored (``UNKNOWN_ORDER``); an add of a live
  reference is ignored (``DUPLICATE_ORDER``); an add with zero shares or zero price is ignored
  (``INVALID_ORDER``); an execute or cancel of more than is left removes the order
  (``NEGATIVE_QUANTITY``, emitted as a ``BookDelete``); a replace of an unknown reference adds
  nothing, a replace onto a live reference changes nothing; a timestamp earlier than the previous
  message's is counted (``TIME_BACKWARDS``) and the message still applies; an add for a locate no
  Stock Directory message announced books under ``"#<locate>"`` (``UNKNOWN_SYMBOL``, once per
  locate). With ``check_crossed`` a book that becomes crossed or locked is reported once each
  time it enters that state.
* 'C' (executed with price) reduces the order like 'E' and its event carries the execution price;
  'P' and 'Q' are prints (``Trade``) with no book effect; 'H' becomes ``TradingStatus``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from agora.core import events as ev
from agora.core.enums import Side, TradingState
from agora.feed.book import L3Book
from agora.feed.integrity import BookError, IntegrityReport, IssueKind
from agora.feed.source import RecordFilter, iter_records, open_binary
from agora.protocols import itch50

_SIDES = {"B": Side.BUY, "S": Side.SELL}
_STATES = {
    "H": TradingState.HALTED,
    "P": TradingState.HALTED,  # paused (LULD / IPO pause)
    "Q": TradingState.PRE_OPEN,  # quotation only
    "T": TradingState.OPEN,
}
_OPEN = TradingState.OPEN
_TYPE_CHAR = {cls: cls.__struct_config__.tag for cls in itch50.MESSAGE_CLASSES}


class FeedHandler:
    """Rebuilds every symbol's L3 book from ITCH 5.0 messages and reports integrity issues."""

    def __init__(
        self,
        symbols: Iterable[str] | None = None,
        *,
        emit: bool = True,
        check_crossed: bool = True,
        max_examples: int = 1000,
    ) -> None:
        self.books: dict[str, L3Book] = {}
        self.symbol_of_locate: dict[int, str] = {}
        self.report = IntegrityReport(max_examples)
        self.counts: dict[str, int] = {}
        self.messages = 0
        self.last_ts = -1
        self.emit = emit
        self.check_crossed = check_crossed
        self._wanted = set(symbols) if symbols is not None else None
        self._book_of: dict[int, L3Book] = {}  # live order reference -> its book
        self._unlisted: set[int] = set()  # locates seen without a directory entry
        self._out_of_line: set[str] = set()  # symbols whose book is crossed or locked now
        self._state_of: dict[str, TradingState] = {}  # from 'H'; unknown counts as open
        self._dispatch = {
            itch50.AddOrder: self._on_add,
            itch50.AddOrderMpid: self._on_add,
            itch50.OrderExecuted: self._on_executed,
            itch50.OrderExecutedWithPrice: self._on_executed,
            itch50.OrderCancel: self._on_cancel,
            itch50.OrderDelete: self._on_delete,
            itch50.OrderReplace: self._on_replace,
            itch50.Trade: self._on_trade,
            itch50.CrossTrade: self._on_cross,
            itch50.StockDirectory: self._on_directory,
            itch50.StockTradingAction: self._on_trading_action,
        }

    # ------------------------------------------------------------------ files

    def process_file(
        self,
        path: str | os.PathLike[str],
        *,
        record_filter: RecordFilter | None = None,
        on_events=None,
    ) -> None:
        """Run a whole BinaryFILE day file (plain or gzip) through the handler."""
        with open_binary(path) as stream:
            self.process_records(iter_records(stream, report=self.report), record_filter, on_events)

    def process_records(
        self, records: Iterable[tuple[int, bytes]], record_filter=None, on_events=None
    ) -> None:
        if record_filter is not None:
            records = record_filter.filter(records)
        for offset, msg in self.decoded(records):
            out = self.on_message(msg, offset)
            if on_events is not None and out:
                on_events(out)

    def decoded(self, records: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, itch50.Message]]:
        """``(offset, message)`` for every record that decodes; the others are reported
        ``MALFORMED`` with their offset and skipped."""
        decode = itch50.decode
        for offset, payload in records:
            try:
                yield offset, decode(payload)
            except itch50.ItchError as exc:
                self.report.record(IssueKind.MALFORMED, offset, str(exc))

    # ------------------------------------------------------------------ messages

    def on_message(self, msg: itch50.Message, offset: int) -> list:
        """Apply one decoded ITCH message; returns the normalized events it produced."""
        self.messages += 1
        char = _TYPE_CHAR[type(msg)]
        self.counts[char] = self.counts.get(char, 0) + 1
        ts = msg.timestamp
        if ts < self.last_ts:
            self.report.record(
                IssueKind.TIME_BACKWARDS, offset, f"timestamp {ts} after {self.last_ts}"
            )
        else:
            self.last_ts = ts
        handler = self._dispatch.get(type(msg))
        if handler is None:
            return []
        return handler(msg, offset)

    def _symbol(self, locate: int, offset: int) -> str:
        symbol = self.symbol_of_locate.get(locate)
        if symbol is None:
            symbol = f"#{locate}"
            if locate not in self._unlisted:
                self._unlisted.add(locate)
                self.report.record(
                    IssueKind.UNKNOWN_SYMBOL, offset, f"locate {locate} has no directory entry"
                )
        return symbol

    def _print_symbol(self, locate: int) -> str:
        """A print's symbol; an unknown locate is reported by adds only, whether or not events
        are emitted (the fast kernel counts the same way)."""
        return self.symbol_of_locate.get(locate) or f"#{locate}"

    def _wants(self, locate: int) -> bool:
        if self._wanted is None:
            return True
        return self.symbol_of_locate.get(locate) in self._wanted

    def _on_directory(self, m: itch50.StockDirectory, offset: int) -> list:
        self.symbol_of_locate[m.stock_locate] = m.stock
        if not self.emit or not self._wants(m.stock_locate):
            return []
        spec = ev.SymbolSpec(m.stock, 0, lot_size=max(m.round_lot_size, 1))
        return [ev.SymbolDirectory(m.timestamp, spec)]

    def _on_trading_action(self, m: itch50.StockTradingAction, offset: int) -> list:
        state = _STATES.get(m.trading_state)
        if state is not None:
            symbol = self.symbol_of_locate.get(m.stock_locate, m.stock)
            self._state_of[symbol] = state
            self._out_of_line.discard(symbol)
        if state is None or not self.emit or not self._wants(m.stock_locate):
            return []
        return [ev.TradingStatus(m.timestamp, m.stock, state, 0)]

    def _on_add(self, m: itch50.AddOrder, offset: int) -> list:
        if not self._wants(m.stock_locate):
            return []
        side = _SIDES.get(m.buy_sell_indicator, m.buy_sell_indicator)
        symbol = self._symbol(m.stock_locate, offset)
        ref = m.order_reference_number
        return self._add(m.timestamp, symbol, ref, side, m.price, m.shares, offset)

    def _on_executed(self, m: itch50.OrderExecuted, offset: int) -> list:
        if not self._wants(m.stock_locate):
            return []
        price = getattr(m, "execution_price", None)
        return self._execute(
            m.timestamp, m.order_reference_number, m.executed_shares, m.match_number, price, offset
        )

    def _on_cancel(self, m: itch50.OrderCancel, offset: int) -> list:
        if not self._wants(m.stock_locate):
            return []
        return self._cancel(m.timestamp, m.order_reference_number, m.cancelled_shares, offset)

    def _on_delete(self, m: itch50.OrderDelete, offset: int) -> list:
        if not self._wants(m.stock_locate):
            return []
        return self._delete(m.timestamp, m.order_reference_number, offset)

    def _on_replace(self, m: itch50.OrderReplace, offset: int) -> list:
        if not self._wants(m.stock_locate):
            return []
        return self._replace(
            m.timestamp,
            m.original_order_reference_number,
            m.new_order_reference_number,
            m.price,
            m.shares,
            offset,
        )

    def _on_trade(self, m: itch50.Trade, offset: int) -> list:
        if not self.emit or not self._wants(m.stock_locate):
            return []
        side = _SIDES.get(m.buy_sell_indicator)
        symbol = self._print_symbol(m.stock_locate)
        return [ev.Trade(m.timestamp, symbol, m.match_number, m.price, m.shares, side)]

    def _on_cross(self, m: itch50.CrossTrade, offset: int) -> list:
        if not self.emit or not self._wants(m.stock_locate) or m.shares == 0:
            return []
        symbol = self._print_symbol(m.stock_locate)
        return [
            ev.Trade(m.timestamp, symbol, m.match_number, m.cross_price, m.shares, None, True)
        ]

    # ------------------------------------------------------------------ core events

    def on_event(self, event: object, offset: int) -> list:
        """Apply one core event (LOBSTER, an exchange journal); returns what actually applied."""
        kind = type(event)
        if kind is ev.BookAdd:
            return self._add(
                event.ts, event.symbol, event.order_id, event.side, event.price, event.qty, offset
            )
        if kind is ev.BookExecute:
            return self._execute(
                event.ts, event.order_id, event.qty, event.trade_id, event.price, offset
            )
        if kind is ev.BookCancel:
            return self._cancel(event.ts, event.order_id, event.qty, offset)
        if kind is ev.BookDelete:
            return self._delete(event.ts, event.order_id, offset)
        if kind is ev.BookReplace:
            return self._replace(
                event.ts, event.old_order_id, event.order_id, event.price, event.qty, offset
            )
        if kind is ev.TradingStatus:
            self._state_of[event.symbol] = event.state
            self._out_of_line.discard(event.symbol)
        return [event] if self.emit else []

    # ------------------------------------------------------------------ book operations

    def _add(self, ts, symbol, ref, side, price, qty, offset) -> list:
        if ref in self._book_of:
            self.report.record(
                IssueKind.DUPLICATE_ORDER, offset, f"add of order {ref}, already live"
            )
            return []
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = L3Book(symbol)
        try:
            book.add(ref, side, price, qty)
        except BookError as exc:
            self.report.record(exc.kind, offset, exc.detail)
            return []
        self._book_of[ref] = book
        self._after_change(book, offset)
        return [ev.BookAdd(ts, symbol, ref, side, price, qty)] if self.emit else []

    def _find(self, ref: int, action: str, offset: int) -> L3Book | None:
        book = self._book_of.get(ref)
        if book is None:
            self.report.record(IssueKind.UNKNOWN_ORDER, offset, f"{action} of unknown order {ref}")
        return book

    def _execute(self, ts, ref, qty, match, price, offset) -> list:
        book, resting_price, failed = self._reduce(ts, ref, qty, "execute", offset)
        if book is None or not self.emit:
            return failed
        fill_price = resting_price if price is None else price
        return [ev.BookExecute(ts, book.symbol, ref, qty, match, fill_price)]

    def _cancel(self, ts, ref, qty, offset) -> list:
        book, _price, failed = self._reduce(ts, ref, qty, "cancel", offset)
        if book is None or not self.emit:
            return failed
        return [ev.BookCancel(ts, book.symbol, ref, qty)]

    def _reduce(self, ts, ref, qty, action: str, offset) -> tuple[L3Book | None, int, list]:
        """Take ``qty`` from a live order: ``(book, resting price, [])`` when it applied, else
        ``(None, 0, events of what happened instead)``."""
        book = self._find(ref, action, offset)
        if book is None:
            return None, 0, []
        try:
            _side, price, left = (book.execute if action == "execute" else book.cancel)(ref, qty)
        except BookError as exc:
            return None, 0, self._failed(book, ref, ts, exc, offset)
        if left == 0:
            del self._book_of[ref]
        self._uncross(book)
        return book, price, []

    def _delete(self, ts, ref, offset) -> list:
        book = self._find(ref, "delete", offset)
        if book is None:
            return []
        book.delete(ref)
        del self._book_of[ref]
        self._uncross(book)
        return [ev.BookDelete(ts, book.symbol, ref)] if self.emit else []

    def _replace(self, ts, old, new, price, qty, offset) -> list:
        book = self._find(old, "replace", offset)
        if book is None:
            return []
        if new != old and new in self._book_of:
            self.report.record(
                IssueKind.DUPLICATE_ORDER, offset, f"replace {old} -> {new}: {new} is already live"
            )
            return []
        try:
            book.replace(old, new, price, qty)
        except BookError as exc:
            self.report.record(exc.kind, offset, exc.detail)
            return []
        del self._book_of[old]
        self._book_of[new] = book
        self._after_change(book, offset)
        return [ev.BookReplace(ts, book.symbol, old, new, price, qty)] if self.emit else []

    def _failed(self, book: L3Book, ref: int, ts: int, exc: BookError, offset: int) -> list:
        """An execute/cancel the book refused; over-quantity removed the order."""
        self.report.record(exc.kind, offset, exc.detail)
        if exc.kind is not IssueKind.NEGATIVE_QUANTITY:
            return []
        del self._book_of[ref]
        self._uncross(book)
        return [ev.BookDelete(ts, book.symbol, ref)] if self.emit else []

    def _uncross(self, book: L3Book) -> None:
        """Liquidity left: a book reported crossed or locked may be in line again."""
        if book.symbol in self._out_of_line and not (book.is_crossed() or book.is_locked()):
            self._out_of_line.discard(book.symbol)

    def _after_change(self, book: L3Book, offset: int) -> None:
        """After an add or replace: report a book that is now crossed or locked while the symbol
        trades continuously (in a halt or before the open, resting orders may cross)."""
        if not self.check_crossed or self._state_of.get(book.symbol, _OPEN) is not _OPEN:
            return
        bid, ask = book.best_bid(), book.best_ask()
        out_of_line = bid is not None and ask is not None and bid >= ask
        symbol = book.symbol
        if out_of_line and symbol not in self._out_of_line:
            self._out_of_line.add(symbol)
            kind = IssueKind.CROSSED_BOOK if bid > ask else IssueKind.LOCKED_BOOK
            self.report.record(kind, offset, f"{symbol} bid {bid} ask {ask}")
        elif not out_of_line:
            self._out_of_line.discard(symbol)
