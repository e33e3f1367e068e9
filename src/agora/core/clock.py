"""Clocks: the only source of time for agora's logic.

Logic never calls ``time.time()``; it takes a ``Clock``. ``WallClock`` reads the host clock for
live runs; ``SimClock`` is set by its owner, so backtests and tests are deterministic.
Time is ``int`` nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Current time in integer nanoseconds."""
        ...


class WallClock:
    """The host's real-time clock, forced to be monotonic non-decreasing for event stamping."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def now_ns(self) -> int:
        now = time.time_ns()
        if now <= self._last:
            now = self._last + 1
        self._last = now
        return now


class SimClock:
    """A clock that only moves when told to: deterministic time for simulation and replay."""

    __slots__ = ("_now", "step_ns")

    def __init__(self, start_ns: int = 0, *, step_ns: int = 0) -> None:
        self._now = start_ns
        self.step_ns = step_ns

    def now_ns(self) -> int:
        """Return the current time, then advance by ``step_ns`` (0: time stands still)."""
        now = self._now
        self._now += self.step_ns
        return now

    def set(self, ns: int) -> None:
        if ns < self._now:
            raise ValueError(f"SimClock cannot go back in time: {ns} < {self._now}")
        self._now = ns

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError("SimClock advances by a non-negative amount")
        self._now += ns
