"""L3Book: queue order, level aggregates, L2/L1 views, refusals that leave the book unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.enums import Side
from agora.feed.book import L3Book, Level, RestingOrder
from agora.feed.integrity import BookError, IssueKind

B, S = Side.BUY, Side.SELL


def book_with(*orders: tuple[int, Side, int, int]) -> L3Book:
    book = L3Book("XYZ")
    for order_id, side, price, qty in orders:
        book.add(order_id, side, price, qty)
    return book


def test_levels_best_first_with_aggregates_and_counts():
    book = book_with(
        (1, B, 100, 10), (2, B, 101, 5), (3, B, 100, 7), (4, S, 103, 2), (5, S, 102, 1)
    )
    bids, asks = book.levels()
    assert bids == [Level(101, 5, 1), Level(100, 17, 2)]
    assert asks == [Level(102, 1, 1), Level(103, 2, 1)]
    assert book.levels(1) == ([Level(101, 5, 1)], [Level(102, 1, 1)])
    assert book.top() == (Level(101, 5, 1), Level(102, 1, 1))
    assert (book.best_bid(), book.best_ask()) == (101, 102)


def test_partial_execute_and_cancel_keep_priority_replace_loses_it():
    book = book_with((1, B, 100, 10), (2, B, 100, 10), (3, B, 100, 10))
    assert book.execute(1, 4) == (B, 100, 6)
    assert book.cancel(2, 5) == (B, 100, 5)
    assert book.queue_position(3) == (2, 11)
    book.replace(1, 9, 100, 6)  # same price, new id: back of the queue
    bids, _ = book.orders_by_level()
    queue = [RestingOrder(2, 100, 5), RestingOrder(3, 100, 10), RestingOrder(9, 100, 6)]
    assert bids == [(100, queue)]
    assert book.levels() == ([Level(100, 21, 3)], [])


def test_full_execution_and_delete_remove_the_level():
    book = book_with((1, S, 105, 3), (2, S, 106, 3))
    assert book.execute(1, 3) == (S, 105, 0)
    assert book.delete(2) == (S, 106, 3)
    assert book.levels() == ([], []) and len(book) == 0
    assert book.top() == (None, None)


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        (lambda b: b.add(1, B, 100, 5), IssueKind.DUPLICATE_ORDER),
        (lambda b: b.add(7, B, 100, 0), IssueKind.INVALID_ORDER),
        (lambda b: b.add(7, B, 0, 5), IssueKind.INVALID_ORDER),
        (lambda b: b.add(7, "X", 100, 5), IssueKind.INVALID_ORDER),
        (lambda b: b.execute(7, 1), IssueKind.UNKNOWN_ORDER),
        (lambda b: b.cancel(1, 0), IssueKind.INVALID_ORDER),
        (lambda b: b.delete(7), IssueKind.UNKNOWN_ORDER),
        (lambda b: b.replace(7, 8, 100, 1), IssueKind.UNKNOWN_ORDER),
        (lambda b: b.replace(1, 2, 100, 1), IssueKind.DUPLICATE_ORDER),
        (lambda b: b.replace(1, 8, 100, 0), IssueKind.INVALID_ORDER),
    ],
)
def test_refused_operations_leave_the_book_unchanged(action, kind):
    book = book_with((1, B, 100, 10), (2, S, 101, 4))
    before = book.orders_by_level(), book.levels()
    with pytest.raises(BookError) as info:
        action(book)
    assert info.value.kind is kind
    assert (book.orders_by_level(), book.levels()) == before


def test_over_execution_removes_the_order_and_reports_negative_quantity():
    book = book_with((1, B, 100, 10), (2, B, 100, 3))
    with pytest.raises(BookError) as info:
        book.execute(1, 11)
    assert info.value.kind is IssueKind.NEGATIVE_QUANTITY
    assert book.levels() == ([Level(100, 3, 1)], [])


def test_crossed_and_locked():
    book = book_with((1, B, 100, 1), (2, S, 101, 1))
    assert not book.is_crossed() and not book.is_locked()
    book.add(3, B, 101, 1)
    assert book.is_locked() and not book.is_crossed()
    book.add(4, B, 102, 1)
    assert book.is_crossed()


_orders = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 6), st.integers(1, 50)),
    max_size=40)


@settings(max_examples=300, deadline=None)
@given(_orders, st.sets(st.integers(0, 45)), st.one_of(st.none(), st.integers(1, 4)))
def test_levels_without_some_orders_equal_the_levels_of_the_book_without_them(orders, out, depth):
    """A view that leaves orders out is the view of the book where they were deleted; ids not
    in the book (here 40-45 may be) change nothing."""
    book, reference = L3Book("X"), L3Book("X")
    for order_id, (side, price, qty) in enumerate(orders):
        book.add(order_id, side, price, qty)
        reference.add(order_id, side, price, qty)
    for order_id in out:
        if order_id in reference.orders:
            reference.delete(order_id)
    assert book.levels(depth, exclude=out) == reference.levels(depth)
    assert book.view(7, depth, out) == reference.view(7, depth)
    assert len(book) == len(orders)  # the book itself is untouched


def test_a_level_of_excluded_orders_only_is_no_level():
    book = book_with((1, Side.BUY, 100, 10), (2, Side.BUY, 99, 5), (3, Side.BUY, 99, 7))
    bids, _ = book.levels(exclude={1, 2})
    assert bids == [Level(99, 7, 1)]
