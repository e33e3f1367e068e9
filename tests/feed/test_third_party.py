"""Third-party agreement: two independent ITCH 5.0 implementations read agora's streams the way
agora does.

* itchfeed (PyPI ``itchfeed``, ``itch.parser.MessageParser``) decodes the LOBSTER-converted
  stream and a day file written from agora's own exchange: message for message, the same type
  and the same value in every field both name alike (locate, timestamp, order reference, side,
  shares, price, stock, match number...).
* meatpy (PyPI ``meatpy``, ``ITCH50MarketProcessor`` reading the file with
  ``ITCH50MessageReader``) rebuilds its own book from the same files; its top 10 levels (price,
  volume per side) must equal agora's :class:`FeedHandler` book every 100 messages and at the end.
"""

from __future__ import annotations

import datetime

import pytest

from agora.feed.handler import FeedHandler
from agora.feed.lobster import book_levels, read_orderbook
from agora.feed.lobster_itch import lobster_to_itch
from agora.protocols import itch50
from tests.feed.test_lobster import SCENARIO, real_pair, write_pair

EVERY = 100
DEPTH = 10
# the fields each message type must have compared (both parsers name them alike)
MUST_COMPARE = {
    "A": {"stock_locate", "order_reference_number", "buy_sell_indicator", "shares", "stock",
          "price"},
    "E": {"stock_locate", "order_reference_number", "executed_shares", "match_number"},
    "D": {"stock_locate", "order_reference_number"},
    "X": {"order_reference_number", "cancelled_shares"},
    "C": {"order_reference_number", "executed_shares", "match_number", "printable",
          "execution_price"},
    "P": {"buy_sell_indicator", "shares", "stock", "price", "match_number"},
    "Q": {"shares", "stock", "cross_price", "match_number", "cross_type"},
    "H": {"stock", "trading_state", "reason"},
    "R": {"stock_locate", "stock", "round_lot_size"},
}  # fmt: skip


@pytest.fixture(scope="module")
def lobster_file(tmp_path_factory):
    message, book = real_pair()
    path = tmp_path_factory.mktemp("lobster") / "AAPL.itch"
    path.write_bytes(lobster_to_itch(message, book, symbol="AAPL"))
    return path


@pytest.fixture(scope="module")
def exchange_file(tmp_path_factory):
    """A seeded session of agora's exchange (adds, executions, cancels, a replace, a halt, a
    cross, a hidden print; three symbols) as published by its ItchMapper, in a day file."""
    pytest.importorskip("itch.parser", reason="itchfeed is not installed")  # the session's module
    from tests.exchange.venue.test_itch_interop import session_messages

    path = tmp_path_factory.mktemp("exchange") / "session.itch"
    path.write_bytes(itch50.write_file_records(session_messages()))
    return path


def plain(value):
    """Alpha fields without their space padding (bytes on their side, str on ours)."""
    if isinstance(value, bytes):
        value = value.decode("ascii")
    return value.rstrip(" ") if isinstance(value, str) else value


def ours(path) -> list:
    return list(itch50.iter_file_messages(path.read_bytes()))


# ------------------------------------------------------------------------------ itchfeed


def agree_with_itchfeed(path) -> dict[str, set[str]]:
    """Parse ``path`` with itchfeed; every shared field equal. Returns the fields compared."""
    parser = pytest.importorskip("itch.parser", reason="itchfeed is not installed")
    mine = ours(path)
    with open(path, "rb") as handle:
        theirs = list(parser.MessageParser().parse_file(handle))
    assert len(theirs) == len(mine)
    compared: dict[str, set[str]] = {}
    for i, (m, t) in enumerate(zip(mine, theirs, strict=True)):
        assert t.message_type.decode() == m.MESSAGE_TYPE, i
        names = compared.setdefault(m.MESSAGE_TYPE, set())
        for name in m.__struct_fields__:
            if hasattr(t, name):
                assert plain(getattr(t, name)) == plain(getattr(m, name)), (i, name)
                names.add(name)
    for kind, names in compared.items():
        assert MUST_COMPARE.get(kind, {"timestamp"}) | {"timestamp"} <= names, kind
    return compared


def test_itchfeed_agrees_on_the_lobster_stream(lobster_file):
    compared = agree_with_itchfeed(lobster_file)
    assert {"S", "R", "H", "A", "E", "D", "X", "P"} <= compared.keys()


def test_itchfeed_agrees_on_a_small_lobster_scenario(tmp_path):
    """The hand-made scenario of test_lobster: executed-with-price, cross, halt and resume."""
    path = tmp_path / "scenario.itch"
    path.write_bytes(lobster_to_itch(*write_pair(tmp_path, SCENARIO, 2), symbol="X"))
    compared = agree_with_itchfeed(path)
    assert {"C", "Q", "H", "X", "P"} <= compared.keys()


def test_itchfeed_agrees_on_an_exchange_day_file(exchange_file):
    compared = agree_with_itchfeed(exchange_file)
    assert {"A", "E", "D", "X", "U", "P", "Q", "H"} <= compared.keys()


# ------------------------------------------------------------------------------ meatpy


def meatpy_levels(processor) -> tuple[list, list]:
    lob = processor.current_lob
    if lob is None:
        return [], []
    return (
        [(lv.price, lv.volume) for lv in lob.get_bid_levels(DEPTH)],
        [(lv.price, lv.volume) for lv in lob.get_ask_levels(DEPTH)],
    )


def agree_with_meatpy(path) -> tuple[int, FeedHandler]:
    """Run meatpy (one processor per symbol) and FeedHandler side by side over ``path``;
    compare every symbol's top levels every ``EVERY`` messages and at the end."""
    meatpy = pytest.importorskip("meatpy.itch50", reason="meatpy is not installed")
    mine = ours(path)
    symbols = sorted({m.stock for m in mine if isinstance(m, itch50.StockDirectory)})
    day = datetime.datetime(2012, 6, 21)
    processors = {s: meatpy.ITCH50MarketProcessor(s, day) for s in symbols}
    handler = FeedHandler()
    theirs = list(meatpy.ITCH50MessageReader().read_file(path))
    assert len(theirs) == len(mine)
    checks = 0
    for i, (m, t) in enumerate(zip(mine, theirs, strict=True), 1):
        handler.on_message(m, i)
        for processor in processors.values():
            processor.process_message(t)
        if i % EVERY and i != len(mine):
            continue
        for symbol, processor in processors.items():
            expected = book_levels(handler.books.get(symbol), DEPTH)
            assert meatpy_levels(processor) == expected, (i, symbol)
            checks += 1
    for processor in processors.values():
        processor.processing_done()  # raises on execution-priority violations it buffered
    assert not handler.report, handler.report.summary()
    return checks, handler


def test_meatpy_rebuilds_the_lobster_book(lobster_file):
    checks, handler = agree_with_meatpy(lobster_file)
    assert checks == 11  # 1,036 messages: every 100th and the last
    _, book = real_pair()
    last = list(read_orderbook(book))[-1]
    assert book_levels(handler.books["AAPL"], DEPTH) == (last.bids, last.asks)


def test_meatpy_rebuilds_an_exchange_day_file(exchange_file):
    checks, handler = agree_with_meatpy(exchange_file)
    assert checks == 3 * 29  # 2,807 messages: every 100th and the last, for 3 symbols
    assert sum(len(book) for book in handler.books.values()) > 0
