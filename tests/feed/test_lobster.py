"""LOBSTER: exact parsing, bad input named by file and row, event mapping, reconciliation with the
ground-truth orderbook (the real AAPL sample row by row), and the LOBSTER -> ITCH conversion
rebuilt by the reference FeedHandler."""

from __future__ import annotations

import io
from itertools import groupby, pairwise
from pathlib import Path

import pytest

from agora.core import events as ev
from agora.core.enums import Side, TradingState
from agora.feed.handler import FeedHandler
from agora.feed.integrity import IssueKind
from agora.feed.lobster import (
    SYNTHETIC_ID_BASE,
    LobsterError,
    book_levels,
    infer_levels,
    parse_time_ns,
    read_lobster,
    read_messages,
    read_orderbook,
    reconcile,
)
from agora.feed.lobster_itch import lobster_itch_messages, lobster_to_itch
from agora.feed.source import iter_records
from agora.protocols import itch50

LOBSTER_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "lobster"
AAPL = "AAPL_2012-06-21_34200000_57600000"
S0, S1, S2 = SYNTHETIC_ID_BASE, SYNTHETIC_ID_BASE + 1, SYNTHETIC_ID_BASE + 2


def real_pair() -> tuple[Path, Path]:
    """The shared AAPL sample (read-only, never copied into the repo), or skip."""
    message, book = (LOBSTER_DIR / f"{AAPL}_{kind}_10.csv" for kind in ("message", "orderbook"))
    if not (message.is_file() and book.is_file()):
        pytest.skip(f"LOBSTER sample not found under {LOBSTER_DIR} (shared/data is absent)")
    return message, book


def book_line(bids: list, asks: list, levels: int) -> str:
    """An orderbook row in LOBSTER's layout, dummy-filled past the given levels."""
    cells = []
    for i in range(levels):
        ask = asks[i] if i < len(asks) else (9_999_999_999, 0)
        bid = bids[i] if i < len(bids) else (-9_999_999_999, 0)
        cells += [*ask, *bid]
    return ",".join(map(str, cells))


def write_pair(tmp_path, rows: list, levels: int, name: str = "X") -> tuple[Path, Path]:
    """``rows`` = [(message line, bids, asks)] -> the two files, named as LOBSTER names them."""
    message = tmp_path / f"{name}_2012-06-21_0_1_message_{levels}.csv"
    book = tmp_path / f"{name}_2012-06-21_0_1_orderbook_{levels}.csv"
    message.write_text("".join(m + "\n" for m, _, _ in rows))
    book.write_text("".join(book_line(b, a, levels) + "\n" for _, b, a in rows))
    return message, book


# ------------------------------------------------------------------------------ time


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("34200.004241176", 34_200_004_241_176),
        ("34200.201517942", 34_200_201_517_942),
        ("34200.00426064", 34_200_004_260_640),  # LOBSTER drops trailing zeros
        ("34200", 34_200_000_000_000),
        ("34200.5", 34_200_500_000_000),
        ("0.000000001", 1),
        ("57599.999999999", 57_599_999_999_999),
        ("34200.1234567890", 34_200_123_456_789),  # a tenth digit of zero is exact
    ],
)
def test_time_is_parsed_exactly(text, ns):
    assert parse_time_ns(text) == ns


def test_a_float_parse_would_be_wrong_on_these_times():
    """The case for exact parsing: a float round trip loses the last nanosecond here (and on 208
    of the 999 times of the AAPL sample)."""
    assert int(float("34200.201517942") * 1e9) != parse_time_ns("34200.201517942")


@pytest.mark.parametrize("text", ["34200.1234567891", "3.42e4", "-1.5", "", ".5", "34200.", "1,5"])
def test_bad_times_are_refused(text):
    with pytest.raises(ValueError, match="time"):
        parse_time_ns(text)


# ------------------------------------------------------------------------------ bad input

GOOD = "34200.1,1,11,50,1000000,1"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("34200.1,1,11,50,1000000", "5 fields, expected 6"),
        ("34200.1,1,11,50,1000000,1,7", "7 fields, expected 6"),
        ("34200.1,1,11,fifty,1000000,1", "size 'fifty' is not an integer"),
        ("34200.1,1,11,50,100.5,1", "price '100.5' is not an integer"),
        ("34200.1,1,1_1,50,1000000,1", "order id '1_1' is not an integer"),
        ("34200.x,1,11,50,1000000,1", "is not decimal seconds"),
        ("34200.1,8,11,50,1000000,1", "unknown event type 8"),
        ("34200.1,0,11,50,1000000,1", "unknown event type 0"),
        ("34200.1,1,11,0,1000000,1", "non-positive size 0"),
        ("34200.1,3,11,-5,1000000,1", "non-positive size -5"),
        ("34200.1,1,11,50,0,1", "non-positive price 0"),
        ("34200.1,1,11,50,1000000,2", "direction 2"),
        ("34200.1,1,0,50,1000000,1", "order id 0 outside"),
        (f"34200.1,1,{SYNTHETIC_ID_BASE},50,1000000,1", "outside 1..2\\*\\*62-1"),
        ("34200.1,7,0,0,2,-1", "halt indicator price 2"),
    ],
)
def test_bad_message_rows_name_the_file_and_row(tmp_path, line, reason):
    path = tmp_path / "m.csv"
    path.write_text(f"{GOOD}\n{line}\n{GOOD}\n")
    with pytest.raises(LobsterError, match=reason) as info:
        list(read_messages(path))
    assert info.value.row == 2 and info.value.path == str(path)
    assert str(info.value).startswith(f"{path} row 2: ")


def test_tolerant_mode_records_bad_rows_and_skips_them(tmp_path):
    from agora.feed.integrity import IntegrityReport

    path = tmp_path / "m.csv"
    path.write_text(f"{GOOD}\n34200.2,9,1,1,1,1\n34200.3,1,12,5,1000000,-1\n34200.4,1,13")
    report = IntegrityReport()
    rows = [m.row for m in read_messages(path, report=report)]
    assert rows == [1, 3]
    assert report.counts == {IssueKind.MALFORMED: 1, IssueKind.TRUNCATED: 1}
    assert [(i.kind, i.offset) for i in report.examples] == [
        (IssueKind.MALFORMED, 2),
        (IssueKind.TRUNCATED, 4),
    ]


def test_truncated_last_line_raises_in_strict_mode(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{GOOD}\n34200.2,1,12,5")
    with pytest.raises(LobsterError, match="row 2: truncated last line"):
        list(read_messages(path))


def test_complete_last_line_without_newline_is_accepted(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{GOOD}\n34200.2,1,12,5,1000000,-1")
    assert [m.order_id for m in read_messages(path)] == [11, 12]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1000100,5,1000000,10,1000200", "5 fields, expected 8"),
        ("1000100,5,1000000,10,9999999999,0,1000100,3", "bid level 2: price 1000100 out of order"),
        ("9999999999,0,1000000,10,1000200,5,-9999999999,0", "ask level 2: price 1000200 size 5"),
        ("1000100,0,1000000,10,9999999999,0,-9999999999,0", "ask level 1: price 1000100 size 0"),
        ("1000100,5,1000000,x,9999999999,0,-9999999999,0", "column 4 'x' is not an integer"),
    ],
)
def test_bad_orderbook_rows_name_the_file_and_row(tmp_path, line, reason):
    path = tmp_path / "b.csv"
    path.write_text(f"1000100,5,1000000,10,9999999999,0,-9999999999,0\n{line}\n")
    with pytest.raises(LobsterError, match=f"row 2: {reason}"):
        list(read_orderbook(path, 2))


def test_level_count_comes_from_the_columns_and_must_agree_with_the_name(tmp_path):
    good = tmp_path / "X_2012-06-21_0_1_orderbook_2.csv"
    good.write_text(book_line([(100, 1)], [(101, 1)], 2) + "\n")
    assert infer_levels(good) == 2
    wrong_name = tmp_path / "X_2012-06-21_0_1_orderbook_3.csv"
    wrong_name.write_text(good.read_text())
    with pytest.raises(LobsterError, match="2 levels but the file name says 3"):
        infer_levels(wrong_name)
    odd = tmp_path / "odd.csv"
    odd.write_text("1,2,3,4,5\n")
    with pytest.raises(LobsterError, match="5 columns is not 4 per level"):
        infer_levels(odd)


def test_files_of_different_lengths(tmp_path):
    message, book = write_pair(tmp_path, SCENARIO[:3], 2)
    book.write_text("".join(book.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(LobsterError, match=r"orderbook_2\.csv row 3: no row 3 here"):
        list(read_lobster(message, book, symbol="X"))
    feed = read_lobster(message, book, symbol="X", strict=False)
    list(feed)
    assert feed.report.counts == {IssueKind.TRUNCATED: 1}
    assert feed.report.examples[0].offset == 3


# ------------------------------------------------------------------------------ a scenario

B, S = Side.BUY, Side.SELL
BIDS0 = [(1_000_000, 350), (999_900, 100)]
BIDS1 = [(1_000_000, 350), (999_900, 80)]
BIDS2 = [(1_000_000, 300), (999_900, 80)]
ASKS0 = [(1_000_100, 200), (1_000_200, 50)]
ASKS1 = [(1_000_100, 100), (1_000_200, 50)]
ASKS2 = [(1_000_200, 50), (1_000_300, 75)]
# Two levels shown. Before row 1: bids 100.00 x 300 and 99.99 x 100, asks 100.01 x 200 and
# 100.02 x 50 rest from before the file; an ask at 100.03 x 75 rests beyond the visible levels.
SCENARIO = [
    ("34200.000000001,1,11,50,1000000,1", BIDS0, ASKS0),
    ("34200.1,4,5,100,1000100,-1", BIDS0, ASKS1),  # execution of a pre-existing order
    ("34200.2,2,6,20,999900,1", BIDS1, ASKS1),  # partial cancel of a pre-existing order
    ("34200.3,5,0,10,1000050,-1", BIDS1, ASKS1),  # hidden execution
    ("34200.4,4,11,50,1000001,1", BIDS2, ASKS1),  # at a price that is not the order's
    ("34200.5,4,7,100,1000100,-1", BIDS2, ASKS2),  # 100.01 empties, 100.03 comes into view
    ("34200.6,7,0,0,-1,-1", BIDS2, ASKS2),  # halt
    ("34200.7,6,-1,500,1000150,1", BIDS2, ASKS2),  # opening cross
    ("34200.8,7,0,0,1,-1", BIDS2, ASKS2),  # trading resumes
]


def test_scenario_events(tmp_path):
    message, book = write_pair(tmp_path, SCENARIO, 2)
    feed = read_lobster(message, book, symbol="X")
    steps = list(feed.steps())
    t0 = 34_200_000_000_001
    t = [34_200_000_000_000 + k * 100_000_000 for k in range(9)]
    assert steps[0].ts == t0 - 1 and steps[0].expected is None
    assert steps[0].events == [
        ev.BookAdd(t0 - 1, "X", S0, B, 1_000_000, 300),
        ev.BookAdd(t0 - 1, "X", S1, B, 999_900, 100),
        ev.BookAdd(t0 - 1, "X", S2, S, 1_000_100, 200),
        ev.BookAdd(t0 - 1, "X", S0 + 3, S, 1_000_200, 50),
    ]
    assert [s.events for s in steps[1:]] == [
        [ev.BookAdd(t0, "X", 11, B, 1_000_000, 50)],
        [ev.BookExecute(t[1], "X", S2, 100, 1, 1_000_100)],
        [ev.BookCancel(t[2], "X", S1, 20)],
        [ev.Trade(t[3], "X", 2, 1_000_050, 10, S)],
        [ev.BookExecute(t[4], "X", 11, 50, 3, 1_000_001)],
        [
            ev.BookExecute(t[5], "X", S2, 100, 4, 1_000_100),
            ev.BookAdd(t[5], "X", S0 + 4, S, 1_000_300, 75),
        ],
        [ev.TradingStatus(t[6], "X", TradingState.HALTED, 0)],
        [ev.Trade(t[7], "X", 5, 1_000_150, 500, None, True)],
        [ev.TradingStatus(t[8], "X", TradingState.OPEN, 0)],
    ]
    assert feed.stats.preexisting == 3 and feed.stats.unexplained == 0
    assert feed.stats.revealed_rows == [6]  # 100.03 came into view when 100.01 emptied
    assert not feed.report
    assert list(feed) == [e for s in steps for e in s.events]  # iterating again replays


def test_scenario_reconciles_every_row(tmp_path):
    result = reconcile(*write_pair(tmp_path, SCENARIO, 2), symbol="X")
    assert (result.rows_compared, result.rows_equal) == (9, 9)
    assert result.stats.revealed == 1 and result.ok
    assert not result.feed_report and not result.book_report


def test_without_the_orderbook_pre_existing_orders_are_unexplained(tmp_path):
    message, _ = write_pair(tmp_path, SCENARIO, 2)
    feed = read_lobster(message, symbol="X")
    events = list(feed)
    assert feed.levels == 2  # from the file name
    assert feed.stats.unexplained == 3
    assert feed.report.counts == {IssueKind.UNKNOWN_ORDER: 3}
    assert [i.offset for i in feed.report.examples] == [2, 3, 6]
    assert not any(isinstance(e, ev.BookAdd) and e.order_id >= SYNTHETIC_ID_BASE for e in events)


def test_a_mismatch_at_a_visible_price_is_reported_not_adopted(tmp_path):
    rows = [*SCENARIO[:2], (SCENARIO[2][0], [(1_000_000, 350), (999_900, 70)], ASKS1)]
    result = reconcile(*write_pair(tmp_path, rows, 2), symbol="X")
    assert (result.rows_compared, result.rows_equal) == (3, 2)
    assert result.stats.revealed == 0 and not result.ok
    (mismatch,) = result.mismatches
    assert mismatch.row == 3
    assert mismatch.expected.bids == [(1_000_000, 350), (999_900, 70)]
    assert mismatch.got.bids == [(1_000_000, 350), (999_900, 80)]


def test_hidden_cancels_are_adopted_then_a_wrong_guess_shows(tmp_path):
    """One level shown. Rows 2-3 add at 99.00, out of view; by row 4 someone cancelled 15 there
    unseen. The reader takes the surplus from the newest orders (13 whole, then 8 of 12); row 5
    then deletes 13, which proves the guess wrong: unexplained, and the book mismatches."""
    ask = [(1_010_000, 5)]
    rows = [
        ("34200.1,1,11,10,1000000,1", [(1_000_000, 10)], ask),
        ("34200.2,1,12,20,990000,1", [(1_000_000, 10)], ask),
        ("34200.3,1,13,7,990000,1", [(1_000_000, 10)], ask),
        ("34200.4,3,11,10,1000000,1", [(990_000, 12)], ask),
        ("34200.5,3,13,7,990000,1", [(990_000, 5)], ask),
        ("34200.6,3,99,9,1010000,-1", [(990_000, 5)], []),  # takes 9 of a synthetic 5
    ]
    message, book = write_pair(tmp_path, rows, 1)
    feed = read_lobster(message, book, symbol="X")
    steps = list(feed.steps())
    assert steps[4].events[1:] == [
        ev.BookDelete(34_200_400_000_000, "X", 13),
        ev.BookCancel(34_200_400_000_000, "X", 12, 8),
    ]
    assert feed.stats.revealed_rows == [4]
    assert feed.report.counts == {IssueKind.UNKNOWN_ORDER: 1, IssueKind.NEGATIVE_QUANTITY: 1}
    unknown, negative = feed.report.examples
    assert unknown.offset == 5 and "row 4 wrote off (some of) it" in unknown.detail
    assert negative.offset == 6 and f"order {SYNTHETIC_ID_BASE} has 5" in negative.detail
    result = reconcile(message, book, symbol="X")
    assert [m.row for m in result.mismatches] == [5, 6]
    assert result.stats.unexplained == 2


def test_an_add_of_a_live_id_is_unexplained(tmp_path):
    rows = [SCENARIO[0], ("34200.1,1,11,5,999900,1", BIDS0, ASKS0)]
    feed = read_lobster(*write_pair(tmp_path, rows, 2), symbol="X")
    steps = list(feed.steps())
    assert steps[2].events == [] and feed.stats.unexplained == 1
    assert [(i.kind, i.offset) for i in feed.report.examples] == [(IssueKind.DUPLICATE_ORDER, 2)]


def test_time_going_backwards_is_recorded(tmp_path):
    rows = [SCENARIO[0], ("34199.9" + SCENARIO[1][0][7:], *SCENARIO[1][1:])]
    feed = read_lobster(*write_pair(tmp_path, rows, 2), symbol="X")
    list(feed)
    assert feed.report.counts == {IssueKind.TIME_BACKWARDS: 1}
    assert feed.report.examples[0].offset == 2


def test_a_bad_row_in_tolerant_mode_is_skipped_and_the_rest_replays(tmp_path):
    rows = [SCENARIO[0], ("34200.1,4,5,1x0,1000100,-1", *SCENARIO[1][1:]), *SCENARIO[2:4]]
    message, book = write_pair(tmp_path, rows, 2)
    with pytest.raises(LobsterError, match="row 2: size '1x0'"):
        reconcile(message, book, symbol="X")
    result = reconcile(message, book, symbol="X", strict=False)
    assert result.feed_report.counts == {IssueKind.MALFORMED: 1}
    assert result.feed_report.examples[0].offset == 2
    # the skipped execution is at a visible price: rows 2-4 cannot match, and say so
    assert (result.rows_compared, result.rows_equal) == (4, 1)
    assert [m.row for m in result.mismatches] == [2, 3, 4]


# ------------------------------------------------------------------------------ LOBSTER -> ITCH


def replay_itch(message, book, symbol: str) -> tuple[int, int, FeedHandler]:
    """Decode the converted bytes with the reference handler; compare after every row."""
    pairs = list(lobster_itch_messages(message, book, symbol=symbol))
    data = lobster_to_itch(message, book, symbol=symbol)
    decoded = [itch50.decode(p) for _, p in iter_records(io.BytesIO(data))]
    assert decoded == [m for _, m in pairs]
    truth = {row.row: row for row in read_orderbook(book)}
    handler = FeedHandler()
    stream = iter(zip(decoded, iter_records(io.BytesIO(data)), strict=True))
    compared = equal = 0
    for row, group in groupby(pairs, key=lambda pair: pair[0]):
        for _ in group:
            msg, (offset, _payload) = next(stream)
            handler.on_message(msg, offset)
        if row in truth:
            compared += 1
            want = (truth[row].bids, truth[row].asks)
            equal += book_levels(handler.books.get(symbol), 10) == want
    return compared, equal, handler


def test_scenario_as_itch(tmp_path):
    message, book = write_pair(tmp_path, SCENARIO, 2)
    types = "".join(m.MESSAGE_TYPE for _, m in lobster_itch_messages(message, book, symbol="X"))
    assert types == "SRH" + "AAAA" + "AEXPCEAHQHS"
    (cross,) = (
        m for _, m in lobster_itch_messages(message, book, symbol="X") if m.MESSAGE_TYPE == "Q"
    )
    assert (cross.cross_type, cross.shares, cross.cross_price, cross.match_number) == (
        "O", 500, 1_000_150, 5,
    )  # fmt: skip
    compared, equal, handler = replay_itch(message, book, "X")
    assert (compared, equal) == (9, 9)
    assert not handler.report


# ------------------------------------------------------------------------------ the real sample


def test_real_sample_reconciles_every_row():
    """The 999 rows of the AAPL sample (the last line has no newline, so ``wc -l`` says 998)."""
    message, book = real_pair()
    result = reconcile(message, book, symbol="AAPL")
    assert result.rows_compared == result.rows_equal == 999, result.mismatches[:1]
    assert result.ok and not result.feed_report and not result.book_report
    assert result.stats.initial_orders == 19
    assert result.stats.preexisting == 9 and result.stats.unexplained == 0
    assert result.stats.revealed_rows == [
        13, 48, 85, 147, 150, 151, 235, 297, 319, 441, 488, 594, 617, 846,
    ]  # fmt: skip


def test_real_sample_adjustments_are_all_outside_the_previous_window():
    """Every revealed-level event acts at a price worse than the previous row's 10th level."""
    message, book = real_pair()
    steps = list(read_lobster(message, book, symbol="AAPL").steps())
    where = {e.order_id: (e.side, e.price) for e in steps[0].events}
    checked = 0
    for before, step in pairwise(steps):
        for i, event in enumerate(step.events):
            if isinstance(event, ev.BookAdd | ev.BookReplace):
                side = event.side if isinstance(event, ev.BookAdd) else where[event.old_order_id][0]
                where[event.order_id] = (side, event.price)
            if i == 0 or before.expected is None:
                continue  # the row's own message
            side, price = where[event.order_id]
            window = before.expected.bids if side is Side.BUY else before.expected.asks
            assert len(window) == 10
            assert price < window[-1][0] if side is Side.BUY else price > window[-1][0]
            checked += 1
    assert checked == 14  # one event per adjustment in this sample
    # row 13: the 1,160-share ask at 587.65 (level 9 at the start) vanished with no row
    assert steps[13].events[1:] == [ev.BookDelete(steps[13].ts, "AAPL", SYNTHETIC_ID_BASE + 17)]


def test_real_sample_event_mix():
    message, book = real_pair()
    kinds: dict[str, int] = {}
    for event in read_lobster(message, book, symbol="AAPL"):
        kinds[type(event).__name__] = kinds.get(type(event).__name__, 0) + 1
    # adds: 19 initial + 471 rows + 11 revealed; the 369 deletes: 368 whole orders and one of
    # 100 from a 300-share synthetic level (a cancel), plus 3 revealed surpluses
    assert kinds == {"BookAdd": 501, "BookDelete": 371, "BookCancel": 1, "BookExecute": 98,
                     "Trade": 61}  # fmt: skip


def test_real_sample_as_itch_rebuilds_every_row():
    message, book = real_pair()
    compared, equal, handler = replay_itch(message, book, "AAPL")
    assert compared == equal == 999
    assert not handler.report, handler.report.summary()
    assert handler.counts["A"] > 490 and handler.counts["E"] == 98 and handler.counts["P"] == 61
