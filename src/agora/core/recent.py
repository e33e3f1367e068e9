"""A set that remembers only its latest ``limit`` members: dedup over a horizon, in bounded memory.

Where a stream may repeat an item only within some distance (a resend after a reconnect, a
late copy), remembering every item of a trading day would grow with the day; remembering the
latest ``limit`` bounds it. An item repeated after more than ``limit`` newer ones is taken for
new: choose ``limit`` far beyond the distance the stream can repeat within, and say so.
"""

from __future__ import annotations

from collections.abc import Hashable


class Recent:
    """The latest ``limit`` distinct items added (the oldest forgotten first)."""

    __slots__ = ("_items", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        self.limit = limit
        self._items: dict[Hashable, None] = {}  # insertion order: oldest first

    def add(self, item: Hashable) -> bool:
        """Remember ``item``; False if it is remembered already (a repeat)."""
        items = self._items
        if item in items:
            return False
        items[item] = None
        if len(items) > self.limit:
            del items[next(iter(items))]
        return True

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)
