"""FIX UTCTIMESTAMP text <-> int ns since the epoch, memoised for the hot path.

Every message carries SendingTime, and most reports a TransactTime in the same second: the
second's text (``format_timestamp``) and value (``parse_timestamp``) are kept, so only the
milliseconds (or the fraction) are made or read; ``parse_timestamp`` also keeps the last text
it read whole, which the next message's SendingTime or its own TransactTime often repeats.
``tests/protocols/test_fix44_fast_paths.py`` holds both to plain datetime arithmetic.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Final

from agora.protocols.fix44.errors import FixError

_TS_RE = re.compile(  # ASCII digits only (\d would take any script's)
    r"([0-9]{4})([0-9]{2})([0-9]{2})-([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?")


class _SecondMemo:
    """The last second's text and value: consecutive timestamps share their second, and
    building or parsing a datetime costs microseconds (twice per message on the hot path).
    ``last``/``last_ns``: the last text parsed whole (a message's TransactTime is most often
    its SendingTime's text, and consecutive messages share their millisecond)."""

    __slots__ = ("last", "last_ns", "parsed", "parsed_secs", "secs", "text")

    def __init__(self) -> None:
        self.secs, self.text = -1, ""
        self.parsed, self.parsed_secs = "", 0
        self.last: object = object()  # equal to no text until a first parse
        self.last_ns = 0


_memo = _SecondMemo()


def format_timestamp(ns: int) -> str:
    """UTCTIMESTAMP with milliseconds (``YYYYMMDD-HH:MM:SS.sss``); sub-ms digits are truncated."""
    secs, rem = divmod(ns, 1_000_000_000)
    memo = _memo
    if secs != memo.secs:
        t = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=secs)
        memo.secs, memo.text = secs, f"{t:%Y%m%d-%H:%M:%S}"
    ms = rem // 1_000_000
    if type(ms) is int:
        return memo.text + _MILLIS[ms]
    return f"{memo.text}.{ms:03d}"


_MILLIS: Final = tuple(f".{ms:03d}" for ms in range(1000))


def parse_timestamp(text: str, tag: int = 52) -> int:
    """UTCTIMESTAMP (0 to 9 fractional digits accepted) -> int ns since the epoch."""
    memo = _memo
    if text == memo.last:
        return memo.last_ns
    if len(text) >= 17 and text[:17] == memo.parsed:  # the memoised second: the fraction left
        frac = text[18:]
        if len(text) == 17 or (text[17] == "." and 0 < len(frac) <= 9 and frac.isdigit()
                               and frac.isascii()):
            ns = memo.parsed_secs * 1_000_000_000 + int(frac.ljust(9, "0"))
            memo.last, memo.last_ns = text, ns
            return ns
    m = _TS_RE.fullmatch(text)
    if m is None:
        raise FixError(f"tag {tag}: bad UTCTIMESTAMP {text!r}", reason=6, tag=tag)
    frac = m.group(7)
    whole = text[:17]
    if whole == memo.parsed:
        secs = memo.parsed_secs
    else:
        y, mo, d, h, mi, s = m.groups()[:6]
        try:
            t = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        except ValueError as exc:
            raise FixError(f"tag {tag}: bad UTCTIMESTAMP {text!r}", reason=6, tag=tag) from exc
        secs = (t - _dt.datetime(1970, 1, 1)) // _dt.timedelta(seconds=1)
        memo.parsed, memo.parsed_secs = whole, secs
    ns = secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))
    memo.last, memo.last_ns = text, ns
    return ns
