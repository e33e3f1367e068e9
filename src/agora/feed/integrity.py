"""Integrity findings of a feed: what was wrong, where, and how often.

A feed handler never stops at the first bad message of a day file: it records an :class:`Issue`
(kind, byte offset or row of the offending message, a short detail), counts it by kind, and goes
on where it safely can. The report keeps every count but only the first ``max_examples`` issues,
so memory stays bounded on a file with millions of bad records.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class IssueKind(StrEnum):
    SEQUENCE_GAP = "sequence_gap"  # a transport sequence number skipped
    CROSSED_BOOK = "crossed_book"  # best bid above best ask after an event
    LOCKED_BOOK = "locked_book"  # best bid equal to best ask after an event
    UNKNOWN_ORDER = "unknown_order"  # execute/cancel/delete/replace of an order never added
    DUPLICATE_ORDER = "duplicate_order"  # add of an order id already live
    NEGATIVE_QUANTITY = "negative_quantity"  # execute/cancel of more than the order has left
    INVALID_ORDER = "invalid_order"  # zero quantity, non-positive price, bad side
    TIME_BACKWARDS = "time_backwards"  # a timestamp earlier than the one before it
    UNKNOWN_SYMBOL = "unknown_symbol"  # a locate code no directory message announced
    MALFORMED = "malformed"  # a record that does not decode
    TRUNCATED = "truncated"  # the input ends inside a record


class Issue(msgspec.Struct, frozen=True):
    kind: IssueKind
    offset: int  # byte offset of the record in its file (or row number for CSV sources)
    detail: str


class BookError(ValueError):
    """A book operation that cannot apply as given (the book is left unchanged)."""

    def __init__(self, kind: IssueKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class IntegrityReport:
    """Counts of every issue kind plus the first ``max_examples`` issues in input order."""

    def __init__(self, max_examples: int = 1000) -> None:
        self.max_examples = max_examples
        self.counts: dict[IssueKind, int] = {}
        self.examples: list[Issue] = []

    def record(self, kind: IssueKind, offset: int, detail: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append(Issue(kind, offset, detail))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        if not self.counts:
            return "no integrity issues"
        parts = [f"{kind.value}={n}" for kind, n in sorted(self.counts.items())]
        return "integrity issues: " + ", ".join(parts)
