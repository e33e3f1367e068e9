"""``agora feed stats``: what a day file holds, read from record headers only.

Counts messages by type and by symbol (locate codes named from the Stock Directory), bytes, first
and last timestamp, and framing problems, without decoding message bodies: a day file's census
runs at the speed of reading it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

import msgspec

from agora.feed.integrity import IntegrityReport
from agora.feed.source import iter_records, open_binary, stream_position


class FileStats(msgspec.Struct):
    messages: int
    by_type: dict[str, int]
    by_symbol: dict[str, int]
    first_ts: int | None
    last_ts: int | None
    payload_bytes: int
    issues: dict[str, int]


def file_stats(
    path: str | os.PathLike[str],
    progress: Callable[[int, int], None] | None = None,
    report: IntegrityReport | None = None,
) -> FileStats:
    """Census of a BinaryFILE day file (plain or gzip); ``progress(done, total)`` in file bytes."""
    report = report if report is not None else IntegrityReport()
    by_type: Counter[int] = Counter()
    by_locate: Counter[int] = Counter()
    names: dict[int, str] = {}
    first = last = None
    size = os.path.getsize(path)
    messages = payload_bytes = 0
    with open_binary(path) as stream:
        for _offset, payload in iter_records(stream, report=report):
            messages += 1
            payload_bytes += len(payload)
            by_type[payload[0]] += 1
            if len(payload) >= 11:
                locate = (payload[1] << 8) | payload[2]
                by_locate[locate] += 1
                ts = int.from_bytes(payload[5:11], "big")
                first = ts if first is None else first
                last = ts
                if payload[0] == 0x52 and len(payload) >= 19:  # 'R'
                    names[locate] = payload[11:19].decode("ascii", "replace").rstrip()
            if progress is not None and messages % 65_536 == 0:
                progress(stream_position(stream), size)
    if progress is not None:
        progress(size, size)
    by_symbol = {
        names.get(locate, "(system)" if locate == 0 else f"#{locate}"): n
        for locate, n in by_locate.most_common()
    }
    return FileStats(
        messages,
        {chr(t): n for t, n in by_type.most_common()},
        by_symbol,
        first,
        last,
        payload_bytes,
        {kind.value: n for kind, n in report.counts.items()},
    )
