"""ITCH time: nanoseconds since midnight, parsed from and printed as ``HH:MM:SS[.fraction]``.

Parsed digit by digit (never through a float), so ``09:30:00.000000001`` is exactly 1 ns past the
open.
"""

from __future__ import annotations

import re

NS_PER_SECOND = 1_000_000_000
_PATTERN = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$")


def parse_time_of_day(text: str) -> int:
    """``"10:30"``, ``"10:30:00"`` or ``"10:30:00.25"`` -> ns since midnight."""
    match = _PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day (HH:MM[:SS[.fraction]])")
    hours, minutes = int(match[1]), int(match[2])
    seconds = int(match[3] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a time of day (out of range)")
    fraction = int((match[4] or "").ljust(9, "0"))
    return ((hours * 60 + minutes) * 60 + seconds) * NS_PER_SECOND + fraction


def format_time_of_day(ns: int) -> str:
    """ns since midnight -> ``HH:MM:SS.nnnnnnnnn``."""
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{fraction:09d}"


def parse_duration(text: str) -> int:
    """``"500ms"``, ``"1s"``, ``"250us"``, ``"5m"``, ``"100ns"`` -> ns."""
    match = re.fullmatch(r"\s*(\d+)\s*(ns|us|ms|s|m)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (a whole number and ns/us/ms/s/m)")
    scale = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": NS_PER_SECOND, "m": 60 * NS_PER_SECOND}
    return int(match[1]) * scale[match[2]]
