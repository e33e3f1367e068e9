"""FastBookBuilder (numba) against the reference FeedHandler on the same bytes: every book's L3
and L2, the issue counts per kind with their offsets, the message counts. Streams are generated
with every integrity problem the handler knows (unknown, duplicate and over-executed orders,
zero shares or price, bad sides, time going backwards, locates with no directory entry,
malformed and truncated records), then fed whole, in random pieces, gzipped, filtered, and with
tables forced to grow from tiny."""

from __future__ import annotations

import gzip
import io
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.feed import fast_kernels
from agora.feed.fast import FastBookBuilder, FrameWalker, warm_up
from agora.feed.handler import FeedHandler
from agora.feed.integrity import IssueKind
from agora.feed.source import RecordFilter, iter_records
from agora.protocols import itch50

U64_MAX = 2**64 - 1
REFS = [*range(1, 13), 2**63 + 7, U64_MAX]  # few, so they collide; two beyond int64
LOCATES = [0, 1, 2, 3, 9]  # 9 and 0 have no directory entry unless an 'R' op names them
NAMES = ["AAA", "BBB", "CCC", "DDD", "#9"]  # "#9" is the reference's name for locate 9
PRICES = [0, 100, 200, 300, 400, 2**32 - 1]
SHARES = [0, 1, 50, 100, 2**32 - 1]
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def directory(locate: int, stock: str, ts: int = 0) -> itch50.StockDirectory:
    return itch50.StockDirectory(
        locate, 0, ts, stock, "Q", "N", 100, "N", "C", "Z", "P", "N", "N", "1", "N", 0, "N"
    )


def frame(payloads: list[bytes]) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in payloads)


# ---------------------------------------------------------------- streams

refs = st.sampled_from(REFS)
locates = st.sampled_from(LOCATES)
shares = st.sampled_from(SHARES) | st.integers(1, 300)
prices = st.sampled_from(PRICES)
sides = st.sampled_from("BBSSX")
ops = st.one_of(
    st.tuples(st.sampled_from("AAAF"), locates, refs, sides, shares, prices),
    st.tuples(st.sampled_from("ECX"), locates, refs, shares),
    st.tuples(st.just("D"), locates, refs),
    st.tuples(st.just("U"), locates, refs, refs, shares, prices),
    st.tuples(st.sampled_from("PQ"), locates),
    st.tuples(st.just("R"), locates, st.sampled_from(NAMES)),
    st.tuples(st.just("bad"), st.sampled_from(["long", "short", "type", "ascii", "side", "tiny"])),
)
steps = st.lists(st.tuples(ops, st.integers(-3, 10)), max_size=60)


def build(steps: list) -> bytes:
    """BinaryFILE bytes for a list of (op, time step); the day opens with 3 directory entries."""
    payloads = [itch50.encode(directory(i, n)) for i, n in enumerate(NAMES[:3], 1)]
    ts = 100
    for op, dt in steps:
        ts = max(0, ts + dt)
        payloads.append(payload(op, ts))
    return frame(payloads)


def payload(op: tuple, ts: int) -> bytes:
    kind = op[0]
    if kind in ("A", "F"):
        _, locate, ref, side, qty, price = op
        args = (locate, 0, ts, ref, side, qty, "XYZ", price)
        msg = itch50.AddOrder(*args) if kind == "A" else itch50.AddOrderMpid(*args, "MPID")
    elif kind == "E":
        msg = itch50.OrderExecuted(op[1], 0, ts, op[2], op[3], 1)
    elif kind == "C":
        msg = itch50.OrderExecutedWithPrice(op[1], 0, ts, op[2], op[3], 1, "Y", 100)
    elif kind == "X":
        msg = itch50.OrderCancel(op[1], 0, ts, op[2], op[3])
    elif kind == "D":
        msg = itch50.OrderDelete(op[1], 0, ts, op[2])
    elif kind == "U":
        msg = itch50.OrderReplace(op[1], 0, ts, op[2], op[3], op[4], op[5])
    elif kind == "P":
        msg = itch50.Trade(op[1], 0, ts, 0, "B", 100, "XYZ", 100, 1)
    elif kind == "Q":
        msg = itch50.CrossTrade(op[1], 0, ts, 100, "XYZ", 100, 1, "O")
    elif kind == "R":
        msg = directory(op[1], op[2], ts)
    else:
        return malformed(op[1], ts)
    return itch50.encode(msg)


def malformed(how: str, ts: int) -> bytes:
    body = bytearray(itch50.encode(itch50.AddOrder(1, 0, ts, 5, "B", 100, "XYZ", 100)))
    if how == "long":
        return bytes(body) + b"!"
    if how == "short":
        return bytes(body[:-1])
    if how == "type":
        body[0] = 0xFE
    elif how == "ascii":
        body[26] = 0xC3  # inside the Stock field
    elif how == "side":
        body[19] = 0x80
    else:
        return b"A\x00"  # too short even to carry a locate
    return bytes(body)


# ---------------------------------------------------------------- comparison


def reference(data: bytes, symbols=None, locates=None) -> FeedHandler:
    """The reference on ``data``; a filter is RecordFilter's, as FastBookBuilder's is."""
    handler = FeedHandler(emit=False, check_crossed=False)
    wanted = RecordFilter(symbols, locates) if symbols or locates is not None else None
    handler.process_records(iter_records(io.BytesIO(data), report=handler.report), wanted)
    return handler


def assert_same(fast: FastBookBuilder, ref: FeedHandler) -> None:
    empty = ([], [])
    for symbol in set(ref.books) | set(fast.books()):
        book = ref.books.get(symbol)
        assert fast.orders_by_level(symbol) == (book.orders_by_level() if book else empty)
        assert fast.levels(symbol) == (book.levels() if book else empty)
        assert fast.levels(symbol, 1) == (book.levels(1) if book else empty)
        assert fast.orders_by_level(symbol, 2) == (book.orders_by_level(2) if book else empty)
    assert fast.live_orders == sum(len(b) for b in ref.books.values())
    fast_report, ref_report = fast.report, ref.report
    assert fast_report.counts == ref_report.counts
    assert [(i.kind, i.offset) for i in fast_report.examples] == [
        (i.kind, i.offset) for i in ref_report.examples
    ]
    assert fast.counts == ref.counts
    assert fast.messages == ref.messages
    assert fast.symbols() == ref.symbol_of_locate


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    warm_up()  # numba cache load / compile once, outside every test's timing


@FAST
@given(steps)
def test_same_books_and_issues_as_the_reference(steps):
    data = build(steps)
    fast = FastBookBuilder()
    fast.feed(data)
    fast.finish()
    assert_same(fast, reference(data))


@FAST
@given(steps, st.lists(st.integers(0, 4_000), max_size=12), st.sampled_from([bytes, memoryview,
                                                                            np.frombuffer]))
def test_any_split_of_the_stream_gives_the_same_result(steps, cuts, kind):
    data = build(steps)
    cuts = sorted(c % (len(data) + 1) for c in cuts)
    fast = FastBookBuilder()
    for lo, hi in zip([0, *cuts], [*cuts, len(data)], strict=True):
        piece = data[lo:hi]
        fast.feed(np.frombuffer(piece, np.uint8) if kind is np.frombuffer else kind(piece))
    fast.finish()
    assert_same(fast, reference(data))


@FAST
@given(
    steps,
    st.none() | st.lists(st.sampled_from(["AAA", "BBB", "#9", "ZZZ"]), max_size=2),
    st.none() | st.lists(st.sampled_from([0, 2, 9]), max_size=2),
)
def test_symbol_filter_is_record_filters(steps, symbols, locates):
    data = build(steps)
    fast = FastBookBuilder(symbols=symbols, locates=locates)
    fast.feed(data)
    fast.finish()
    assert_same(fast, reference(data, symbols, locates))


@FAST
@given(steps)
def test_tables_grow_from_tiny(steps):
    data = build(steps)
    fast = FastBookBuilder(initial_orders=1)
    fast.feed(data)
    fast.finish()
    assert_same(fast, reference(data))


def test_growth_keeps_every_order_and_memory_follows_live_orders():
    rng = random.Random(7)
    messages = [directory(locate, f"S{locate}") for locate in range(1, 301)]  # books grow too
    for ref in range(1, 5_001):  # 5,000 orders resting at once
        messages.append(itch50.AddOrder(rng.randint(1, 300), 0, ref, ref, rng.choice("BS"),
                                        rng.randint(1, 9) * 100, "XYZ", rng.randint(1, 60) * 100))
    data = itch50.write_file_records(messages)
    fast = FastBookBuilder(initial_orders=1)
    fast.feed(data)
    assert fast.live_orders == fast.peak_live_orders == 5_000
    assert_same(fast, reference(data))

    churn = []  # 50,000 more orders, never more than 4 live: tables must not grow
    for ref in range(10_001, 60_001):
        churn.append(itch50.AddOrder(1, 0, ref, ref, "B", 100, "XYZ", 100 * (ref % 7 + 1)))
        churn.append(itch50.OrderDelete(1, 0, ref, ref - 3 if ref > 10_003 else 1))
    small = FastBookBuilder(initial_orders=1)
    small.feed(itch50.write_file_records([directory(1, "S1"), *churn]))
    assert small.peak_live_orders <= 4
    assert small.table_bytes < 4_096


# ---------------------------------------------------------------- files


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def sample(seed: int, n: int = 400) -> bytes:
    """A fixed pseudo-random stream (same generator as the property tests)."""
    rng = random.Random(seed)
    strategy_free = []
    for _ in range(n):
        kind = rng.choice("AAAAAFDDDEEXCUUPR")
        locate = rng.choice(LOCATES)
        ref, new = rng.choice(REFS), rng.choice(REFS)
        qty, price = rng.choice([*SHARES[1:], 30, 70]), rng.choice(PRICES[1:])
        op = {
            "A": (kind, locate, ref, rng.choice("BS"), qty, price),
            "F": (kind, locate, ref, rng.choice("BS"), qty, price),
            "E": (kind, locate, ref, qty), "C": (kind, locate, ref, qty),
            "X": (kind, locate, ref, qty), "D": (kind, locate, ref),
            "U": (kind, locate, ref, new, qty, price), "P": (kind, locate),
            "R": (kind, locate, rng.choice(NAMES)),
        }[kind]
        strategy_free.append((op, rng.randint(-1, 10)))
    return build(strategy_free)


def test_gzip_file_equals_plain_file_and_the_reference(tmp_path):
    data = sample(1)
    plain = write(tmp_path, "day.itch", data)
    packed = write(tmp_path, "day.itch.gz", gzip.compress(data))
    seen: list[tuple[int, int]] = []
    for path in (plain, packed):
        fast = FastBookBuilder()
        fast.process_file(path, progress=lambda done, total: seen.append((done, total)))
        ref = FeedHandler(emit=False, check_crossed=False)
        ref.process_file(path)
        assert_same(fast, ref)
    assert seen and all(0 < done <= total for done, total in seen)


@pytest.mark.parametrize("cut", [1, 2, 3, 30])
def test_truncated_file_reports_the_offset_and_keeps_the_books(tmp_path, cut):
    data = sample(2)
    last = [offset for offset, _ in iter_records(io.BytesIO(data))][-1]
    path = write(tmp_path, "cut.itch", data[: last + cut])
    fast = FastBookBuilder()
    fast.process_file(path)
    ref = FeedHandler(emit=False, check_crossed=False)
    ref.process_file(path)
    assert_same(fast, ref)
    truncated = [i for i in fast.report.examples if i.kind is IssueKind.TRUNCATED]
    assert [i.offset for i in truncated] == [last]
    assert fast.live_orders > 0


def test_truncated_gzip_reports_like_the_reference(tmp_path):
    packed = gzip.compress(sample(3))
    path = write(tmp_path, "cut.itch.gz", packed[: len(packed) - 12])
    fast = FastBookBuilder()
    fast.process_file(path)
    ref = FeedHandler(emit=False, check_crossed=False)
    ref.process_file(path)
    assert fast.report.counts.get(IssueKind.TRUNCATED) == 1
    assert_same(fast, ref)


def test_synthetic_day_equals_the_reference(tmp_path):
    synth = pytest.importorskip("agora.bench.itch_synth")
    path = tmp_path / "synth.itch"
    synth.synthesize(path, messages=20_000, symbols=12, seed=3)
    fast = FastBookBuilder(initial_orders=64)
    fast.process_file(path)
    ref = FeedHandler(emit=False, check_crossed=False)
    ref.process_file(path)
    assert fast.messages == ref.messages >= 20_000
    assert fast.live_orders > 100
    assert_same(fast, ref)


# ---------------------------------------------------------------- views and API


def test_crossed_and_locked_books_are_found_at_call_time():
    messages = [directory(1, "AAA"), directory(2, "BBB"), directory(3, "CCC")]
    for locate, bid, ask in ((1, 101, 100), (2, 100, 100), (3, 99, 100)):
        messages.append(itch50.AddOrder(locate, 0, 1, 10 * locate, "B", 1, "X", bid))
        messages.append(itch50.AddOrder(locate, 0, 1, 10 * locate + 1, "S", 1, "X", ask))
        messages.append(itch50.AddOrder(locate, 0, 1, 10 * locate + 2, "S", 1, "X", ask + 5))
        messages.append(itch50.AddOrder(locate, 0, 1, 10 * locate + 3, "B", 1, "X", bid - 5))
    fast = FastBookBuilder()
    fast.feed(itch50.write_file_records(messages))
    assert fast.crossed_symbols() == ["AAA"]
    assert fast.crossed_symbols(include_locked=True) == ["AAA", "BBB"]
    fast.feed(itch50.write_file_records([itch50.OrderDelete(1, 0, 2, 10)]))
    assert fast.crossed_symbols() == []


def test_feed_refuses_a_gap_while_a_record_is_pending():
    data = itch50.write_file_records([directory(1, "AAA")])
    fast = FastBookBuilder()
    fast.feed(data[:5])
    with pytest.raises(ValueError, match="still incomplete"):
        fast.feed(data[5:], base_offset=100)
    fast.feed(data[5:], base_offset=5)
    assert fast.symbols() == {1: "AAA"}
    with pytest.raises(KeyError):
        fast.levels("NOPE")


def test_frame_walk_floor_counts_records_and_type_bytes():
    data = itch50.write_file_records([directory(1, "AAA"), directory(2, "BBB")]) + b"\x00\x00"
    buf = np.frombuffer(data + b"\x00\x27R", np.uint8)
    pos, records, total = fast_kernels.walk_frames(buf, 0, len(buf), -1)
    assert (pos, records, total) == (len(data), 2, 2 * ord("R"))
    assert fast_kernels.walk_frames(buf, 0, len(buf), 1)[:2] == (len(data) // 2 - 1, 1)
    walker = FrameWalker()
    for i in range(0, len(buf), 7):  # the fast path's own carry between pieces
        walker.feed(buf[i : i + 7])
    assert (walker.records, walker.type_byte_sum) == (2, 2 * ord("R"))
