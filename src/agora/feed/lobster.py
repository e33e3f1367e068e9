"""LOBSTER (lobsterdata.com) files as core events, reconciled row by row with LOBSTER's own books.

A LOBSTER pair (https://lobsterdata.com/info/DataStructure.php) is a *message* file (time in
decimal seconds after midnight, type 1..7, order id, size, price x 10,000, direction 1 buy / -1
sell, for executions the resting order's side) and an *orderbook* file, the ground truth: after
each message, per level ask price, ask size, bid price, bid size, empty levels as dummy prices
9999999999 / -9999999999 with size 0. Row ``i`` of one belongs to row ``i`` of the other.

Mapping (``agora.core.events``): 1 ``BookAdd``; 2 ``BookCancel``; 3 ``BookDelete``; 4
``BookExecute`` (the message's price; ``trade_id`` from one counter shared with 5 and 6); 5
``Trade`` (hidden order, its side; no book effect); 6 ``Trade(cross=True)`` (no book effect: the
cross's executions are rows of their own, https://help.lobsterdata.com/en/articles/859578); 7
``TradingStatus`` (https://lobsterdata.com/blog/index.php/2013/01/27/output-update/: price -1 a
halt begins, HALTED; 0 quoting resumes, PRE_OPEN as ITCH 'Q'; 1 trading resumes, OPEN).

Times are parsed exactly from the text (seconds and up to 9 fraction digits, never via a float).
Rows are numbered from 1 (the line number) and every error or issue quotes it (``Issue.offset``).
Bad input (wrong field count, a non-integer field, unknown type, non-positive size, bad side...)
raises :class:`LobsterError` naming file and row; with ``strict=False`` it is recorded
(``MALFORMED``, or ``TRUNCATED`` for an unterminated last line with too few fields) and the row is
skipped. An unterminated last line with all its fields is accepted (LOBSTER's files end so).

What the message file does not say, and what is done about it:

* **Orders resting before the file.** The initial book is the first orderbook row with the first
  message undone, one *synthetic* order per level, ids ``SYNTHETIC_ID_BASE + k`` (2**62 up; rows
  with ids from 2**62 are refused, crosses' negative pseudo ids never enter the book). A cancel,
  delete or execution of an id not in the book reduces the synthetic order at its side and price
  (``stats.preexisting``). With none there, or too little, the message is *unexplained*: counted
  (``stats.unexplained``) and recorded with its row as ``UNKNOWN_ORDER`` (nothing applied) or
  ``NEGATIVE_QUANTITY`` (the order is removed).
* **Events beyond the visible levels.** The message file only holds events "causing an update of
  the limit order book in the requested price range" (DataStructure page), so a level entering
  the visible N from below can differ from what the rows imply. After each row the reader
  compares its book with the truth; a difference at a price *outside* the previous row's window
  (worse than its Nth level) is a *revealed level*, adopted with explicit events and counted
  (``stats.revealed``, ``stats.revealed_rows``): missing quantity becomes a synthetic order (one
  already there is replaced by one holding the sum); surplus comes off the synthetic order, then
  the newest orders of the level (which really left is unknowable; a later row naming one is
  unexplained). A difference at a price that was visible is never adopted: :func:`reconcile`
  reports it as a mismatch.

Synthetic and adopted orders join the back of their level, so queue positions around them are a
guess; only levels (price, quantity) are checked against the truth.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, zip_longest

import msgspec

from agora.core import events as ev
from agora.core.enums import Side, TradingState
from agora.feed.book import L3Book
from agora.feed.handler import FeedHandler
from agora.feed.integrity import IntegrityReport, IssueKind

SYNTHETIC_ID_BASE = 1 << 62
DUMMY_ASK_PRICE = 9_999_999_999
DUMMY_BID_PRICE = -9_999_999_999
MESSAGE_FIELDS = 6
HALT_STATES = {-1: TradingState.HALTED, 0: TradingState.PRE_OPEN, 1: TradingState.OPEN}

_INT = re.compile(r"-?[0-9]+\Z")
_TIME = re.compile(r"([0-9]+)(?:\.([0-9]+))?\Z")
_LEVELS_SUFFIX = re.compile(r"_(?:orderbook|message)_([0-9]+)\.csv\Z")

Path = str | os.PathLike[str]
Levels = list[tuple[int, int]]  # (price, quantity), best first


class LobsterError(ValueError):
    """A LOBSTER file that cannot be read as given; names the file and the row."""

    def __init__(self, path: Path, row: int, detail: str) -> None:
        super().__init__(f"{os.fspath(path)} row {row}: {detail}")
        self.path = os.fspath(path)
        self.row = row
        self.detail = detail


class _RowError(ValueError):
    """Internal: why one row is bad, and whether it is a truncated last line."""

    def __init__(self, detail: str, kind: IssueKind = IssueKind.MALFORMED) -> None:
        super().__init__(detail)
        self.kind = kind


class LobsterMessage(msgspec.Struct, frozen=True):
    """One message row, typed. ``direction`` is 1 (buy) or -1 (sell)."""

    row: int
    ts: int
    type: int
    order_id: int
    size: int
    price: int
    direction: int

    @property
    def side(self) -> Side:
        return Side.BUY if self.direction == 1 else Side.SELL


class BookRow(msgspec.Struct, frozen=True):
    """One orderbook row: the visible levels per side, best first, empty levels left out."""

    row: int
    bids: Levels
    asks: Levels


class LobsterStep(msgspec.Struct, frozen=True):
    """One row: its events (revealed-level adjustments last) and the truth after it. Row 0 is
    the initial state; ``message`` / ``expected`` are None where there is none or it was bad."""

    row: int
    ts: int
    message: LobsterMessage | None
    events: list
    expected: BookRow | None


@dataclass
class LobsterStats:
    rows: int = 0
    initial_orders: int = 0
    preexisting: int = 0  # messages applied to a synthetic (pre-existing) order
    unexplained: int = 0  # messages no order and no synthetic quantity could explain
    revealed: int = 0  # level adjustments adopted from the truth (see the module docstring)
    revealed_rows: list[int] = field(default_factory=list)


# ---------------------------------------------------------------------------------- parsing


def parse_time_ns(text: str) -> int:
    """Decimal seconds after midnight -> int ns, exactly (digits beyond 9 must be zeros)."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"time {text!r} is not decimal seconds")
    seconds, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > 9:
        if fraction[9:].strip("0"):
            raise ValueError(f"time {text!r} has more precision than a nanosecond")
        fraction = fraction[:9]
    return int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0"))


def _ints(fields: list[str], names: tuple[str, ...]) -> list[int]:
    out = []
    for name, text in zip(names, fields, strict=True):
        if not _INT.match(text):
            raise _RowError(f"{name} {text!r} is not an integer")
        out.append(int(text))
    return out


def _fields(line: str, expected: int, last_unterminated: bool) -> list[str]:
    fields = line.split(",")
    if len(fields) != expected:
        detail = f"{len(fields)} fields, expected {expected}"
        if last_unterminated and len(fields) < expected:
            raise _RowError(f"truncated last line: {detail}", IssueKind.TRUNCATED)
        raise _RowError(detail)
    return [f.strip() for f in fields]


def parse_message_line(line: str, row: int, last_unterminated: bool = False) -> LobsterMessage:
    """One message CSV line -> :class:`LobsterMessage`; raises ``ValueError`` with the reason."""
    fields = _fields(line, MESSAGE_FIELDS, last_unterminated)
    try:
        ts = parse_time_ns(fields[0])
    except ValueError as exc:
        raise _RowError(str(exc)) from None
    kind, order_id, size, price, direction = _ints(
        fields[1:], ("type", "order id", "size", "price", "direction")
    )
    if not 1 <= kind <= 7:
        raise _RowError(f"unknown event type {kind}")
    if direction not in (1, -1):
        raise _RowError(f"direction {direction} is neither 1 nor -1")
    if kind == 7:
        if price not in HALT_STATES:
            raise _RowError(f"trading halt indicator price {price} is not -1, 0 or 1")
        if size < 0:
            raise _RowError(f"negative size {size}")
    else:
        if size <= 0:
            raise _RowError(f"non-positive size {size}")
        if price <= 0:
            raise _RowError(f"non-positive price {price}")
    if kind <= 4 and not 0 < order_id < SYNTHETIC_ID_BASE:
        raise _RowError(f"order id {order_id} outside 1..2**62-1")
    return LobsterMessage(row, ts, kind, order_id, size, price, direction)


def parse_book_line(
    line: str, row: int, last_unterminated: bool = False, *, levels: int
) -> BookRow:
    """One orderbook CSV line -> :class:`BookRow`; checks dummies, order and emptiness."""
    values = _ints(
        _fields(line, 4 * levels, last_unterminated),
        tuple(f"column {i + 1}" for i in range(4 * levels)),
    )
    asks = _side(values[0::4], values[1::4], DUMMY_ASK_PRICE, ascending=True)
    bids = _side(values[2::4], values[3::4], DUMMY_BID_PRICE, ascending=False)
    return BookRow(row, bids, asks)


def _side(prices: list[int], sizes: list[int], dummy: int, *, ascending: bool) -> Levels:
    name = "ask" if ascending else "bid"
    out: Levels = []
    empty = False
    for level, (price, size) in enumerate(zip(prices, sizes, strict=True), 1):
        if price == dummy and size == 0:
            empty = True
            continue
        if empty or size <= 0 or price <= 0:
            raise _RowError(f"{name} level {level}: price {price} size {size} is not a level")
        if out and (price <= out[-1][0] if ascending else price >= out[-1][0]):
            raise _RowError(f"{name} level {level}: price {price} out of order")
        out.append((price, size))
    return out


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(row, line without its end, whether it is a last line with no newline)."""
    try:
        handle = open(path, encoding="ascii", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise LobsterError(path, 0, f"cannot open: {exc.strerror}") from None
    with handle:
        try:
            for row, raw in enumerate(handle, 1):
                line = raw.rstrip("\r\n")
                yield row, line, line == raw
        except UnicodeDecodeError as exc:
            raise LobsterError(path, 0, f"not ASCII text: {exc.reason}") from None


def infer_levels(orderbook_csv: Path) -> int:
    """The level count: the orderbook's first row has 4 columns per level (file name agrees)."""
    for row, line, _ in _lines(orderbook_csv):
        columns = len(line.split(","))
        if columns % 4:
            raise LobsterError(orderbook_csv, row, f"{columns} columns is not 4 per level")
        named = _LEVELS_SUFFIX.search(os.fspath(orderbook_csv))
        if named and int(named.group(1)) != columns // 4:
            raise LobsterError(
                orderbook_csv, row, f"{columns // 4} levels but the file name says {named.group(1)}"
            )
        return columns // 4
    raise LobsterError(orderbook_csv, 0, "empty orderbook file")


def _parsed(path: Path, parse, report: IntegrityReport | None) -> Iterator[tuple[int, object]]:
    """(row, parsed value or None when the row is bad and ``report`` takes it)."""
    for row, line, last in _lines(path):
        try:
            yield row, parse(line, row, last)
        except _RowError as exc:
            if report is None:
                raise LobsterError(path, row, str(exc)) from None
            report.record(exc.kind, row, f"{os.fspath(path)}: {exc}")
            yield row, None


def read_messages(path: Path, *, report: IntegrityReport | None = None) -> Iterator[LobsterMessage]:
    """The message rows of a file; bad rows raise, or with ``report`` are recorded and skipped."""
    for _row, msg in _parsed(path, parse_message_line, report):
        if msg is not None:
            yield msg


def read_orderbook(
    path: Path, levels: int | None = None, *, report: IntegrityReport | None = None
) -> Iterator[BookRow]:
    """The orderbook rows of a file (``levels`` inferred when None), like :func:`read_messages`."""
    parse = partial(parse_book_line, levels=levels or infer_levels(path))
    for _row, book in _parsed(path, parse, report):
        if book is not None:
            yield book


# ---------------------------------------------------------------------------------- replay


def book_levels(book: L3Book | None, depth: int) -> tuple[Levels, Levels]:
    """(bids, asks) of ``book`` as (price, quantity) lists, best first, like a :class:`BookRow`."""
    if book is None:
        return [], []
    bids, asks = book.levels(depth)
    return [(lv.price, lv.qty) for lv in bids], [(lv.price, lv.qty) for lv in asks]


class LobsterFeed:
    """A LOBSTER message file (and optionally its orderbook file) as core events, row by row.

    Iterating gives every event; :meth:`steps` gives them grouped by row with the truth. Each
    iteration replays from the start and resets :attr:`report` and :attr:`stats`.
    """

    def __init__(
        self,
        message_csv: Path,
        orderbook_csv: Path | None = None,
        *,
        symbol: str,
        levels: int | None = None,
        strict: bool = True,
    ) -> None:
        self.message_csv = message_csv
        self.orderbook_csv = orderbook_csv
        self.symbol = symbol
        named = _LEVELS_SUFFIX.search(os.fspath(message_csv))
        if levels is None and orderbook_csv is not None:
            levels = infer_levels(orderbook_csv)
        self.levels = levels or (int(named.group(1)) if named else None)
        self.strict = strict
        self.report = IntegrityReport()
        self.stats = LobsterStats()

    def __iter__(self) -> Iterator[object]:
        for step in self.steps():
            yield from step.events

    def steps(self) -> Iterator[LobsterStep]:
        self.report = IntegrityReport()
        self.stats = LobsterStats()
        replay = _Replay(self.symbol, self.levels or 0, self.report, self.stats)
        bad = None if self.strict else self.report
        messages = _parsed(self.message_csv, parse_message_line, bad)
        books: Iterator[tuple[int, object]] = iter(())
        if self.orderbook_csv is not None:
            books = _parsed(self.orderbook_csv, partial(parse_book_line, levels=self.levels), bad)
        pairs = zip_longest(messages, books)
        first = next(pairs, None)
        if first is None:
            return
        msg_item, book_item = first
        yield replay.initial(msg_item[1] if msg_item else None, book_item[1] if book_item else None)
        for msg_item, book_item in chain([first], pairs):
            row = (msg_item or book_item)[0]
            if msg_item is None or (book_item is None and self.orderbook_csv is not None):
                self._unpaired(row, self.orderbook_csv if msg_item else self.message_csv)
            msg = msg_item[1] if msg_item else None
            truth = book_item[1] if book_item else None
            yield replay.step(row, msg, truth)

    def _unpaired(self, row: int, path: Path) -> None:
        detail = f"no row {row} here: the two files have different lengths"
        if self.strict:
            raise LobsterError(path, row, detail)
        self.report.record(IssueKind.TRUNCATED, row, f"{os.fspath(path)}: {detail}")


class _Replay:
    """The reader's own book: maps LOBSTER rows onto events and adopts revealed levels."""

    def __init__(self, symbol: str, levels: int, report: IntegrityReport, stats: LobsterStats):
        self.symbol, self.levels, self.report, self.stats = symbol, levels, report, stats
        self.book = L3Book(symbol)
        self.synthetic: dict[tuple[Side, int], int] = {}
        self.next_synthetic = SYNTHETIC_ID_BASE
        self.next_trade = 1
        self.written_off: dict[int, int] = {}  # order id -> row where an adjustment removed it
        self.window: BookRow | None = None  # the last truth: what was visible
        self.last_ts = -1

    # -------------------------------------------------------------- initial state

    def initial(self, first: LobsterMessage | None, truth: BookRow | None) -> LobsterStep:
        """Row 0: the first orderbook row with the first message undone, as synthetic orders."""
        ts = max(first.ts - 1, 0) if first is not None else 0
        if truth is None:
            return LobsterStep(0, ts, None, [], None)
        bids, asks = dict(truth.bids), dict(truth.asks)
        if first is not None and first.type <= 4:
            levels = bids if first.side is Side.BUY else asks
            left = levels.get(first.price, 0) + (-first.size if first.type == 1 else first.size)
            if left < 0:
                self._unexplained(IssueKind.INVALID_ORDER, first, "cannot be undone from row 1")
            elif left == 0:
                levels.pop(first.price, None)
            else:
                levels[first.price] = left
        events = []
        for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
            for price in sorted(levels, reverse=side is Side.BUY):
                events.append(self._new_synthetic(ts, side, price, levels[price]))
        self.stats.initial_orders = len(events)
        self.window = truth
        return LobsterStep(0, ts, None, events, None)

    def _new_synthetic(self, ts: int, side: Side, price: int, qty: int) -> ev.BookAdd:
        order_id = self.next_synthetic
        self.next_synthetic += 1
        self.book.add(order_id, side, price, qty)
        self.synthetic[side, price] = order_id
        return ev.BookAdd(ts, self.symbol, order_id, side, price, qty)

    # -------------------------------------------------------------- rows

    def step(self, row: int, msg: LobsterMessage | None, truth: BookRow | None) -> LobsterStep:
        self.stats.rows += 1
        events: list = []
        ts = self.last_ts if msg is None else msg.ts
        if msg is not None:
            if msg.ts < self.last_ts:
                self.report.record(IssueKind.TIME_BACKWARDS, row, f"{msg.ts} after {self.last_ts}")
            self.last_ts = max(self.last_ts, msg.ts)
            events = self._apply(msg)
        if truth is not None and self.window is not None:
            events += self._reveal(row, ts, truth)
        if truth is not None:
            self.window = truth
        return LobsterStep(row, max(ts, 0), msg, events, truth)

    def _apply(self, m: LobsterMessage) -> list:
        if m.type == 1:
            if m.order_id in self.book.orders:
                self._unexplained(IssueKind.DUPLICATE_ORDER, m, "the id is already live")
                return []
            self.book.add(m.order_id, m.side, m.price, m.size)
            return [ev.BookAdd(m.ts, self.symbol, m.order_id, m.side, m.price, m.size)]
        if m.type <= 4:
            return self._reduce(m)
        if m.type == 7:
            return [ev.TradingStatus(m.ts, self.symbol, HALT_STATES[m.price], 0)]
        trade_id = self._trade_id()
        side = m.side if m.type == 5 else None
        return [ev.Trade(m.ts, self.symbol, trade_id, m.price, m.size, side, m.type == 6)]

    def _trade_id(self) -> int:
        self.next_trade += 1
        return self.next_trade - 1

    def _reduce(self, m: LobsterMessage) -> list:
        """Types 2, 3, 4 on a known order, or on the synthetic order of its side and price."""
        order_id = m.order_id
        if order_id not in self.book.orders:
            order_id = self.synthetic.get((m.side, m.price))
            if order_id is None:
                self._unexplained(IssueKind.UNKNOWN_ORDER, m, "no synthetic order there")
                return []
            self.stats.preexisting += 1
        left = self.book.orders[order_id][2]
        take = m.size
        if m.type == 3 and order_id == m.order_id:
            take = left  # a known order leaves whole; LOBSTER's size is what it had
        elif take > left:
            self._unexplained(IssueKind.NEGATIVE_QUANTITY, m, f"order {order_id} has {left}")
            take = left
        if m.type != 4:
            return [self._take(m.ts, order_id, take, m.side, m.price)]
        self.book.execute(order_id, take)
        if take == left and order_id >= SYNTHETIC_ID_BASE:
            del self.synthetic[m.side, m.price]
        return [ev.BookExecute(m.ts, self.symbol, order_id, take, self._trade_id(), m.price)]

    def _take(self, ts: int, order_id: int, qty: int, side: Side, price: int) -> object:
        """Take ``qty`` off an order: a cancel, or a delete when nothing would be left."""
        if qty < self.book.orders[order_id][2]:
            self.book.cancel(order_id, qty)
            return ev.BookCancel(ts, self.symbol, order_id, qty)
        self.book.delete(order_id)
        if order_id >= SYNTHETIC_ID_BASE:
            del self.synthetic[side, price]
        return ev.BookDelete(ts, self.symbol, order_id)

    def _unexplained(self, kind: IssueKind, m: LobsterMessage, why: str) -> None:
        self.stats.unexplained += 1
        gone = self.written_off.get(m.order_id)
        why += f"; row {gone} wrote off (some of) it" if gone is not None else ""
        what = f"type {m.type} order {m.order_id} {m.size}@{m.price} {m.side.value}"
        self.report.record(kind, m.row, f"{what}: {why}")

    # -------------------------------------------------------------- revealed levels

    def _reveal(self, row: int, ts: int, truth: BookRow) -> list:
        """Adopt the truth at prices that were outside the previous row's visible window."""
        if book_levels(self.book, self.levels) == (truth.bids, truth.asks):
            return []
        all_bids, all_asks = book_levels(self.book, None)
        events: list = []
        for side, have, want, before in (
            (Side.BUY, all_bids, truth.bids, self.window.bids),
            (Side.SELL, all_asks, truth.asks, self.window.asks),
        ):
            events += self._reveal_side(row, ts, side, have, want, before)
        return events

    def _reveal_side(
        self, row: int, ts: int, side: Side, have: Levels, want: Levels, before: Levels
    ) -> list:
        full = self.levels

        def at_least_as_good(price: int, edge: int) -> bool:
            return price >= edge if side is Side.BUY else price <= edge

        bound = before[-1][0] if len(before) == full else None  # None: the whole side was seen
        edge = want[-1][0] if len(want) == full else None
        held = {p: q for p, q in have if edge is None or at_least_as_good(p, edge)}
        target = dict(want)
        events: list = []
        for price in sorted(held.keys() | target.keys()):
            diff = target.get(price, 0) - held.get(price, 0)
            if diff == 0 or bound is None or at_least_as_good(price, bound):
                continue  # equal, or a real mismatch at a visible price: never adopted
            events += self._adopt(row, ts, side, price, diff)
            self.stats.revealed += 1
            self.stats.revealed_rows.append(row)
        return events

    def _adopt(self, row: int, ts: int, side: Side, price: int, diff: int) -> list:
        synthetic = self.synthetic.get((side, price))
        if diff > 0:
            if synthetic is None:
                return [self._new_synthetic(ts, side, price, diff)]
            qty = self.book.orders[synthetic][2] + diff
            new = self.next_synthetic
            self.next_synthetic += 1
            self.book.replace(synthetic, new, price, qty)
            self.synthetic[side, price] = new
            return [ev.BookReplace(ts, self.symbol, synthetic, new, price, qty)]
        need = -diff
        bids, asks = self.book.orders_by_level()
        queue = next(orders for p, orders in (bids if side is Side.BUY else asks) if p == price)
        victims = [o for o in queue if o.order_id == synthetic]
        victims += [o for o in reversed(queue) if o.order_id != synthetic]
        events: list = []
        for order in victims:
            take = min(order.qty, need)
            if take == 0:
                break
            self.written_off[order.order_id] = row
            events.append(self._take(ts, order.order_id, take, side, price))
            need -= take
        return events


def read_lobster(
    message_csv: Path,
    orderbook_csv: Path | None = None,
    *,
    symbol: str,
    levels: int | None = None,
    strict: bool = True,
) -> LobsterFeed:
    """Open a LOBSTER pair as a :class:`LobsterFeed` (iterate it for the core events)."""
    return LobsterFeed(message_csv, orderbook_csv, symbol=symbol, levels=levels, strict=strict)


# ---------------------------------------------------------------------------------- reconcile


class Mismatch(msgspec.Struct, frozen=True):
    row: int
    expected: BookRow
    got: BookRow


@dataclass
class ReconcileResult:
    """Row-by-row agreement of a book rebuilt from the events with LOBSTER's orderbook file."""

    rows_compared: int
    rows_equal: int
    mismatches: list[Mismatch]  # the first ``max_mismatches``
    stats: LobsterStats
    feed_report: IntegrityReport  # the reader's findings (bad rows, unexplained messages)
    book_report: IntegrityReport  # the feed handler's findings applying the events

    @property
    def ok(self) -> bool:
        return self.rows_equal == self.rows_compared and self.stats.unexplained == 0


def reconcile(
    message_csv: Path,
    orderbook_csv: Path,
    *,
    symbol: str,
    levels: int | None = None,
    strict: bool = True,
    max_mismatches: int = 10,
) -> ReconcileResult:
    """Apply every row's events to a fresh book (the reference :class:`FeedHandler`, not the
    reader's own) and compare its top ``levels`` with the orderbook row after every message."""
    feed = read_lobster(message_csv, orderbook_csv, symbol=symbol, levels=levels, strict=strict)
    handler = FeedHandler(emit=False)
    compared = equal = 0
    mismatches: list[Mismatch] = []
    for step in feed.steps():
        for event in step.events:
            handler.on_event(event, step.row)
        if step.expected is None:
            continue
        compared += 1
        bids, asks = book_levels(handler.books.get(symbol), feed.levels)
        if (bids, asks) == (step.expected.bids, step.expected.asks):
            equal += 1
        elif len(mismatches) < max_mismatches:
            mismatches.append(Mismatch(step.row, step.expected, BookRow(step.row, bids, asks)))
    return ReconcileResult(compared, equal, mismatches, feed.stats, feed.report, handler.report)
