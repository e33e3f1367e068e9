"""FeedHandler: ITCH from agora's own exchange rebuilds the exchange's book and its events exactly;
every integrity issue is detected, counted, located by offset, and processing goes on."""

from __future__ import annotations

import io

import msgspec
from hypothesis import HealthCheck, given, settings

from agora.core import events as ev
from agora.core.enums import Side, TradingState
from agora.exchange.engine import MatchingEngine
from agora.exchange.venue.itch_feed import NS_PER_DAY, ItchMapper, displayed_book
from agora.feed.handler import FeedHandler
from agora.feed.integrity import IssueKind
from agora.feed.source import iter_records
from agora.protocols import itch50
from tests.exchange.streams import resolve, setup, streams

_BOOK_EVENTS = (ev.BookAdd, ev.BookExecute, ev.BookCancel, ev.BookDelete, ev.BookReplace)


def handler_book(handler: FeedHandler) -> dict:
    """The handler's books in ``displayed_book`` form."""
    out = {}
    for symbol, book in handler.books.items():
        for side, levels in zip((Side.BUY, Side.SELL), book.orders_by_level(), strict=True):
            if levels:
                out[symbol, side.value] = [
                    (price, tuple((o.order_id, o.qty) for o in orders)) for price, orders in levels
                ]
    return out


def run_exchange(commands: list) -> tuple[MatchingEngine, bytes, list]:
    engine, mapper = MatchingEngine(), ItchMapper()
    messages: list = []
    book_events: list = []
    for i, command in enumerate(commands):
        events = engine.process(resolve(command, engine.orders), 1_000 * (i + 1))
        messages.extend(mapper.map_events(events))
        book_events += [e for e in events if isinstance(e, _BOOK_EVENTS)]
    return engine, itch50.write_file_records(messages), book_events


def replay(data: bytes, **kwargs) -> tuple[FeedHandler, list]:
    handler = FeedHandler(**kwargs)
    out: list = []
    handler.process_records(iter_records(io.BytesIO(data), report=handler.report), None, out.extend)
    return handler, out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams)
def test_itch_from_the_exchange_rebuilds_its_book_and_events_exactly(stream):
    engine, data, book_events = run_exchange(setup() + stream)
    handler, out = replay(data, check_crossed=True)
    assert not handler.report, handler.report.examples
    assert handler_book(handler) == displayed_book(engine)
    expected = [msgspec.structs.replace(e, ts=e.ts % NS_PER_DAY) for e in book_events]
    assert [e for e in out if isinstance(e, _BOOK_EVENTS)] == expected


def test_prints_status_and_directory_are_normalized():
    engine_cmds = [*setup(open_symbols=False), ev.SetTradingState("AAA", TradingState.OPEN)]
    _, data, _ = run_exchange(engine_cmds)
    handler, out = replay(data)
    kinds = [type(e) for e in out]
    assert kinds.count(ev.SymbolDirectory) == 2
    assert [e.state for e in out if isinstance(e, ev.TradingStatus)][-1] is TradingState.OPEN
    assert handler.symbol_of_locate == {1: "AAA", 2: "BBB"}


# ---------------------------------------------------------------- integrity


def directory(locate: int, stock: str) -> itch50.StockDirectory:
    return itch50.StockDirectory(
        locate, 0, 1, stock, "Q", "N", 100, "N", "C", "Z", "P", "N", "N", "1", "N", 0, "N"
    )


def add(ref: int, side: str = "B", price: int = 100_000, shares: int = 100, ts: int = 10,
        locate: int = 1) -> itch50.AddOrder:
    return itch50.AddOrder(locate, 0, ts, ref, side, shares, "AAA", price)


def issues_of(messages: list) -> tuple[FeedHandler, list[tuple[IssueKind, int]]]:
    data = itch50.write_file_records(messages)
    handler, _ = replay(data)
    offsets = [o for o, _ in iter_records(io.BytesIO(data))]
    return handler, [(i.kind, offsets.index(i.offset)) for i in handler.report.examples]


def test_each_issue_is_located_and_processing_continues():
    messages = [
        directory(1, "AAA"),
        add(1),
        add(1),  # 2 duplicate
        add(2, shares=0),  # 3 invalid
        itch50.OrderExecuted(1, 0, 11, 99, 5, 1),  # 4 unknown
        itch50.OrderCancel(1, 0, 12, 1, 150),  # 5 negative: order 1 removed
        add(3, ts=5),  # 6 time backwards, still applied
        add(4, side="S", price=99_000, ts=13),  # 7 crosses order 3 at 100_000
        itch50.OrderReplace(1, 0, 14, 77, 78, 10, 100_000),  # 8 unknown old reference
        itch50.OrderReplace(1, 0, 15, 3, 4, 10, 100_000),  # 9 new reference is live
        itch50.OrderDelete(1, 0, 16, 4),  # uncrossed again
        add(5, locate=9, ts=17),  # 11 unknown locate
        add(6, side="S", price=100_000, ts=18),  # 12 locked
    ]
    handler, found = issues_of(messages)
    assert found == [
        (IssueKind.DUPLICATE_ORDER, 2),
        (IssueKind.INVALID_ORDER, 3),
        (IssueKind.UNKNOWN_ORDER, 4),
        (IssueKind.NEGATIVE_QUANTITY, 5),
        (IssueKind.TIME_BACKWARDS, 6),
        (IssueKind.CROSSED_BOOK, 7),
        (IssueKind.UNKNOWN_ORDER, 8),
        (IssueKind.DUPLICATE_ORDER, 9),
        (IssueKind.UNKNOWN_SYMBOL, 11),
        (IssueKind.LOCKED_BOOK, 12),
    ]
    assert handler.books["AAA"].levels()[0][0].qty == 100  # order 3 survived, applied late
    assert set(handler.books) == {"AAA", "#9"}
    assert handler.counts["A"] == 7


def test_malformed_record_is_reported_and_skipped():
    good = itch50.write_file_records([directory(1, "AAA"), add(1)])
    bad = b"\x00\x03Zxy"
    handler, _ = replay(good + bad + itch50.write_file_records([add(2)]))
    assert handler.report.counts == {IssueKind.MALFORMED: 1}
    assert handler.report.examples[0].offset == len(good)
    assert len(handler.books["AAA"]) == 2


def test_symbol_filter_builds_only_the_chosen_books():
    messages = [directory(1, "AAA"), directory(2, "BBB"), add(1), add(2, locate=2),
                itch50.OrderDelete(2, 0, 20, 2)]
    handler, _ = replay(itch50.write_file_records(messages), symbols=["AAA"])
    assert set(handler.books) == {"AAA"} and not handler.report
