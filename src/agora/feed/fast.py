"""FastBookBuilder: a whole ITCH 5.0 day file into every symbol's L3 book, in a numba kernel.

The fast path beside :class:`agora.feed.handler.FeedHandler` (the reference, plain Python over
``itch50.decode`` and :class:`~agora.feed.book.L3Book`); ``tests/feed/test_fast.py`` holds the two
equal book for book, level for level, order for order, and issue count for issue count.

Design

* Input is BinaryFILE (2-byte big-endian length + message). :meth:`process_file` reads 16 MiB
  chunks (plain or gzip, via :func:`agora.feed.source.open_binary`) into one reused numpy buffer
  and runs :func:`~agora.feed.fast_kernels.run` over the complete records; the incomplete tail
  (< 64 KiB) is carried into the next chunk. :meth:`feed` takes any split of the stream.
* The kernel decodes straight from the bytes (no message objects): it checks every record's
  length against its type and the Alpha bytes for ASCII exactly as ``itch50.decode`` does
  (``MALFORMED`` otherwise), counts decoded messages per type byte (as FeedHandler counts
  them), and applies R (symbol directory), A/F (add),
  E/C (execute), X (cancel), D (delete), U (replace: the old order leaves, the new one joins the
  back of its price on the same side). P/Q and the other types are counted only.
* State is flat numpy arrays (layout in ``fast_kernels``): an open-addressing table order
  reference -> slot (Fibonacci hashing, linear probing, deletion by backward shift, no
  tombstones); order slots holding the priority stamp (a global add counter, so queue order is
  ascending stamp), shares and the index of the order's level; a second table (book, side,
  price) -> level slot holding total shares and order count, so L2 needs no walk over orders.
  Freed slots go on free lists threaded through them and are reused first. The record before
  which a table would pass load factor 1/2 makes the kernel return ``GROW``; Python doubles that
  table (rehash in njit) and calls again. Memory is bounded by the peak number of live orders
  (48 bytes per order slot, at most twice the peak live orders, plus the level tables and the
  16 MiB read buffer), not by the file.
* Speed comes from memory-level parallelism: the tables of a day outgrow the caches (random
  probes), so the kernel reads ahead in the input and prefetches the table lines, then the
  slots, that the records 4-12 ahead will touch (without it: 4.8 vs 12 million messages/s).
  Next, numba's runtime is off (``_nrt=False``: no reference counting of arrays in the loop,
  6 -> 11 M/s) and big-endian fields are single ``movbe`` loads.
* Books are keyed by symbol name, exactly like the reference: a locate maps to the book of its
  Stock Directory name, an add on a locate with no directory entry books under ``"#<locate>"``
  and reports ``UNKNOWN_SYMBOL`` once per locate.
* Integrity semantics are those of ``FeedHandler`` (its module docstring), counted per kind; the
  first ``max_examples`` issues keep (kind, offset, numbers) in a fixed array and their detail
  text is written here in Python, only when :attr:`report` is read. Crossed/locked books are
  *not* checked per message in the kernel (FeedHandler's ``check_crossed``):
  :meth:`crossed_symbols` checks every book at call time instead.
* Optional filter, the semantics of :class:`agora.feed.source.RecordFilter`: tickers (matched as
  their 'R' messages go by) and/or locate codes; other locates' records are skipped after
  reading the two locate bytes, before any other decoding or counting ('R' and locate 0 pass).

Measured speed (``agora bench feed``, one core of a 2-vCPU AMD EPYC Zen 3 VM, CPython 3.11,
numba 0.68, 2026-11-26): the 20M-message, 3,000-symbol synthetic day (584 MiB, peak 258,577 live
orders, 16 MiB of tables) in 2.21 s from the page cache, 9.1 million messages/s for the whole
path (read, decode, books): 52x the reference handler, about 900x meatpy 0.5, and 14% of the
read-and-frame floor; peak RSS 201 MiB, 164 MiB of it numba and LLVM before the first byte. On
data already in memory the kernel alone does about 11.5 M/s (14 M/s when the tables fit in
cache); reading is not overlapped with decoding (one core). The numba cache load (about 0.5 s;
the first compile ever about 20 s) is not in those figures: :func:`warm_up` does it on a tiny
buffer.
"""

from __future__ import annotations

import abc
import io
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, NamedTuple

import numpy as np

from agora.core.enums import Side
from agora.feed import fast_kernels as k
from agora.feed.book import Level, RestingOrder
from agora.feed.integrity import IntegrityReport, Issue, IssueKind
from agora.feed.source import open_binary, stream_position
from agora.protocols import itch50

CHUNK = 16 << 20
_KINDS = {
    k.K_UNKNOWN_ORDER: IssueKind.UNKNOWN_ORDER,
    k.K_DUPLICATE_ORDER: IssueKind.DUPLICATE_ORDER,
    k.K_NEGATIVE_QUANTITY: IssueKind.NEGATIVE_QUANTITY,
    k.K_INVALID_ORDER: IssueKind.INVALID_ORDER,
    k.K_TIME_BACKWARDS: IssueKind.TIME_BACKWARDS,
    k.K_UNKNOWN_SYMBOL: IssueKind.UNKNOWN_SYMBOL,
    k.K_MALFORMED: IssueKind.MALFORMED,
}
_ACTIONS = {"E": "execute", "C": "execute", "X": "cancel", "D": "delete", "U": "replace"}
_SIDES = {"B": Side.BUY, "S": Side.SELL}

Progress = Callable[[int, int], None]
Levels = tuple[list[Level], list[Level]]
OrdersByLevel = tuple[list[tuple[int, list[RestingOrder]]], list[tuple[int, list[RestingOrder]]]]


def _wire_table() -> np.ndarray:
    """Per type byte: its message length and where its Alpha bytes are (``fast_kernels``).

    ``[t, 0] = (w, length)`` (length 0: unknown type), rows ``1..w`` = ``(offset, mask)``: an
    8-byte big-endian word inside the message and the high bits of the Alpha bytes it covers, so
    the kernel checks "ASCII only" (what ``itch50.decode`` requires) in one or two loads.
    """
    wire = np.zeros((256, 8, 2), np.uint64)
    for cls, layout in itch50.LAYOUTS.items():
        code = ord(cls.MESSAGE_TYPE)
        offset = 1
        positions = []
        for _name, kind, size in layout:
            if kind in ("alpha", "char"):
                positions.extend(range(offset, offset + size))
            offset += size
        words: dict[int, int] = {}
        for pos in positions:
            start = next((w for w in words if w <= pos < w + 8), min(pos, offset - 8))
            words[start] = words.get(start, 0) | 0x80 << (8 * (7 - (pos - start)))
        wire[code, 0] = (len(words), offset)
        for row, (start, mask) in enumerate(sorted(words.items()), 1):
            wire[code, row] = (start, mask)
    return wire


_WIRE = _wire_table()


def _name_key(symbol: str) -> int:
    """The 8 wire bytes of a Stock field as a big-endian integer (-1: cannot be on the wire)."""
    raw = symbol.encode("ascii", "replace").ljust(8)
    return int.from_bytes(raw, "big") if len(raw) == 8 else -1


def _name_of(key: int) -> str:
    return int(key).to_bytes(8, "big").decode("ascii").rstrip(" ")


class _Views(NamedTuple):
    """Every book's levels and orders sorted by (book, side, price[, priority]): one snapshot."""

    level_keys: np.ndarray
    level_qty: np.ndarray
    level_count: np.ndarray
    order_keys: np.ndarray  # the level key of each order
    order_refs: np.ndarray
    order_qty: np.ndarray


class RecordStream(abc.ABC):
    """A BinaryFILE byte stream cut into complete records for a kernel, fed in any pieces.

    Subclasses implement :meth:`_apply` (run a kernel over ``buf[pos:end]``, return where the
    incomplete tail starts); this class carries that tail into the next piece, reads files in
    ``CHUNK``-sized pieces and reports the reader's own issues (TRUNCATED, corrupt gzip).
    """

    def __init__(self) -> None:
        self._tail = np.zeros(0, np.uint8)  # an incomplete record carried between feeds
        self._offset = 0  # stream offset of the next byte fed
        self._file_issues: list[Issue] = []  # found by the reader, after the records

    @abc.abstractmethod
    def _apply(self, buf: np.ndarray, pos: int, end: int, base: int) -> int:
        """Run the kernel over the complete records of ``buf[pos:end]``; return where the
        incomplete tail starts."""

    def feed(self, data: bytes | bytearray | memoryview | np.ndarray,
             base_offset: int | None = None) -> None:
        """Apply the next bytes of the stream (any split; an incomplete record is carried).

        ``base_offset`` is the stream offset of ``data[0]``; by default the bytes continue the
        previous feed. A different offset is accepted only when no record is pending.
        """
        buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
        buf = buf.reshape(-1).view(np.uint8)
        if base_offset is not None and base_offset != self._offset:
            if len(self._tail):
                raise ValueError(
                    f"feed at offset {base_offset}: a record from offset "
                    f"{self._offset - len(self._tail)} is still incomplete"
                )
            self._offset = base_offset
        base = self._offset
        start = self._complete_tail(buf, base) if len(self._tail) else 0
        if not len(self._tail):
            pos = self._apply(buf, start, len(buf), base)
            self._tail = buf[pos:].copy()
        self._offset = base + len(buf)

    def _complete_tail(self, buf: np.ndarray, base: int) -> int:
        """Finish the carried record with the first bytes of ``buf``; returns how many it took.

        The tail stays carried (grown by all of ``buf``) while the record is still incomplete.
        """
        tail = self._tail
        head = np.concatenate((tail, buf[: max(0, 2 - len(tail))]))
        if len(head) < 2:
            self._tail = head
            return len(buf)
        need = 2 + ((int(head[0]) << 8) | int(head[1])) - len(tail)
        taken = min(need, len(buf))
        joined = np.concatenate((tail, buf[:taken]))
        if taken < need:
            self._tail = joined
            return taken
        self._apply(joined, 0, len(joined), base - len(tail))
        self._tail = np.zeros(0, np.uint8)
        return taken

    def finish(self) -> None:
        """End of input: a record still incomplete is reported TRUNCATED (books are kept)."""
        if len(self._tail):
            offset = self._offset - len(self._tail)
            if len(self._tail) < 2:
                detail = f"1 of 2 length bytes at offset {offset}"
            else:
                length = (int(self._tail[0]) << 8) | int(self._tail[1])
                detail = (
                    f"record at offset {offset} declares {length} bytes, "
                    f"{len(self._tail) - 2} follow"
                )
            self._file_issues.append(
                Issue(IssueKind.TRUNCATED, offset, f"file ends inside a record: {detail}")
            )
            self._tail = np.zeros(0, np.uint8)

    def process_file(self, path: str | os.PathLike[str], progress: Progress | None = None) -> None:
        """Run a whole BinaryFILE day file (plain or gzip) from its first byte, then finish.

        A gzip stream cut short is TRUNCATED, a corrupt one MALFORMED, at the offset where the
        intact data ends, as :func:`agora.feed.source.iter_records` reports them.
        """
        total = os.path.getsize(path)
        self.feed(b"", 0)
        with open_binary(path) as stream:
            try:
                for chunk in read_chunks(stream, np.empty(CHUNK, np.uint8)):
                    self.feed(chunk)
                    if progress is not None:
                        progress(min(stream_position(stream), total), total)
            except EOFError as exc:
                self._tail = np.zeros(0, np.uint8)
                self._file_issue(IssueKind.TRUNCATED, f"compressed stream cut short: {exc}")
            except zlib.error as exc:
                self._tail = np.zeros(0, np.uint8)
                self._file_issue(
                    IssueKind.MALFORMED,
                    f"compressed stream is corrupt after {self._offset} bytes: {exc}",
                )
        self.finish()

    def _file_issue(self, kind: IssueKind, detail: str) -> None:
        self._file_issues.append(Issue(kind, self._offset, detail))



class FrameWalker(RecordStream):
    """The read floor of the fast path: the same reading, framing and carry, and a kernel that
    only counts records and sums their type bytes (``agora bench feed`` measures it)."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0
        self.type_byte_sum = 0

    def _apply(self, buf: np.ndarray, pos: int, end: int, base: int) -> int:
        pos, records, total = k.walk_frames(buf, pos, end, -1)
        self.records += records
        self.type_byte_sum += total
        return pos


class FastBookBuilder(RecordStream):
    """Every symbol's market-by-order book from an ITCH 5.0 BinaryFILE stream, in numba."""

    def __init__(
        self,
        symbols: Iterable[str] | None = None,
        locates: Iterable[int] | None = None,
        initial_orders: int = 1 << 16,
        *,
        max_examples: int = 1000,
    ) -> None:
        super().__init__()
        orders = 1 << max(1, (max(int(initial_orders), 1) - 1).bit_length())
        levels = max(2, orders // 4)
        books = max(2, min(1024, orders // 64))
        self._st = np.zeros(k.ST_SIZE, np.int64)
        self._st[[k.S_LAST_TS, k.S_O_FREE, k.S_L_FREE]] = -1
        self._examples = np.zeros((max_examples, k.EXAMPLE_FIELDS), np.int64)
        self._max_examples = max_examples
        self._otab = np.zeros(4 * orders, np.uint64)
        self._oslot = np.zeros((orders, 2), np.int64)
        self._ltab = np.zeros(4 * levels, np.uint64)
        self._lslot = np.zeros((levels, 4), np.int64)
        self._ntab = np.zeros(4 * books, np.uint64)
        self._bname = np.zeros(books, np.uint64)
        self._locs = np.zeros((1 << 16, 4), np.int32)
        self._locs[:, [k.L_BOOK, k.L_UNLISTED_BOOK]] = -1
        # RecordFilter's rules: an empty ticker list is no filter; given locates always filter
        tickers = [_name_key(s) for s in symbols] if symbols else []
        self._tickers = np.array([t for t in tickers if t >= 0], np.uint64)
        if tickers or locates is not None:
            self._st[k.S_FILTER] = 1
            for locate in locates or ():
                self._locs[int(locate), k.L_FLAGS] |= k.F_SELECTED
        self._views: _Views | None = None

    def _apply(self, buf: np.ndarray, pos: int, end: int, base: int) -> int:
        self._views = None
        while True:
            status, pos = k.run(
                buf, pos, end, base, self._st, self._examples, self._otab, self._oslot,
                self._ltab, self._lslot, self._ntab, self._bname, self._locs, self._tickers,
                _WIRE,
            )  # fmt: skip
            if status == k.DONE:
                return pos
            self._grow()

    def _grow(self) -> None:
        """Double every table that is full (the kernel stopped before the record needing it)."""
        st = self._st
        if st[k.S_O_FREE] < 0 and st[k.S_O_NEXT] == len(self._oslot):
            self._otab, self._oslot = _doubled(self._otab, self._oslot)
        if st[k.S_L_FREE] < 0 and st[k.S_L_NEXT] == len(self._lslot):
            self._ltab, self._lslot = _doubled(self._ltab, self._lslot)
        if st[k.S_N_BOOKS] == len(self._bname):
            self._ntab, self._bname = _doubled(self._ntab, self._bname)

    # ------------------------------------------------------------------ results

    @property
    def messages(self) -> int:
        """Decoded messages applied (FeedHandler.messages): filtered and malformed excluded."""
        return int(self._st[k.S_MESSAGES])

    @property
    def records(self) -> int:
        """Non-empty records read, including those filtered out or malformed."""
        return int(self._st[k.S_RECORDS])

    @property
    def live_orders(self) -> int:
        return int(self._st[k.S_LIVE])

    @property
    def peak_live_orders(self) -> int:
        return int(self._st[k.S_PEAK])

    @property
    def table_bytes(self) -> int:
        """Memory held by the book state (tables, slots, free lists)."""
        arrays = (self._otab, self._oslot, self._ltab, self._lslot, self._ntab, self._bname)
        return sum(a.nbytes for a in arrays)

    @property
    def counts(self) -> dict[str, int]:
        """Messages seen per ITCH type character (decoded ones, as FeedHandler counts)."""
        counts = self._st[k.COUNTS : k.COUNTS + 256]
        return {chr(c): int(n) for c, n in enumerate(counts) if n}

    @property
    def report(self) -> IntegrityReport:
        """Counts per kind and the first ``max_examples`` issues, with their detail text."""
        report = IntegrityReport(self._max_examples)
        for code, n in enumerate(self._st[k.ISSUES : k.ISSUES + len(_KINDS)]):
            if n:
                report.counts[_KINDS[code]] = int(n)
        report.examples = [
            Issue(_KINDS[int(row[0])], int(row[1]), _detail(row))
            for row in self._examples[: self._st[k.S_N_EXAMPLES]]
        ]
        for issue in self._file_issues:
            report.counts[issue.kind] = report.counts.get(issue.kind, 0) + 1
            if len(report.examples) < self._max_examples:
                report.examples.append(issue)
        return report

    def symbols(self) -> dict[int, str]:
        """Locate -> ticker, from the Stock Directory messages seen (FeedHandler's map)."""
        located = np.flatnonzero(self._locs[:, k.L_BOOK] >= 0)
        names = self._bname[self._locs[located, k.L_BOOK]]
        return {int(loc): _name_of(name) for loc, name in zip(located, names, strict=True)}

    def books(self) -> list[str]:
        """Every book name seen (directory names and ``"#<locate>"`` ones), empty or not."""
        return [_name_of(name) for name in self._bname[: self._st[k.S_N_BOOKS]]]

    def levels(self, symbol: str, depth: int | None = None) -> Levels:
        """L2 like :meth:`L3Book.levels`: up to ``depth`` levels per side, best first."""
        views = self._snapshot()
        out = []
        for lo, hi in self._side_ranges(views.level_keys, symbol):
            prices = (views.level_keys[lo:hi] & 0xFFFFFFFF).tolist()
            qty = views.level_qty[lo:hi].tolist()
            count = views.level_count[lo:hi].tolist()
            rows = [Level(*row) for row in zip(prices, qty, count, strict=True)]
            out.append(rows)
        bids, asks = out
        return bids[::-1][:depth], asks[:depth]

    def orders_by_level(self, symbol: str, depth: int | None = None) -> OrdersByLevel:
        """L3 like :meth:`L3Book.orders_by_level`: per side [(price, orders in queue order)]."""
        views = self._snapshot()
        sides = []
        for lo, hi in self._side_ranges(views.order_keys, symbol):
            keys = views.order_keys[lo:hi]
            refs = views.order_refs[lo:hi].tolist()
            qty = views.order_qty[lo:hi].tolist()
            cuts = (np.flatnonzero(np.diff(keys)) + 1).tolist()
            levels = []
            for a, b in zip([0, *cuts], [*cuts, len(keys)], strict=True):
                if a == b:
                    continue
                price = int(keys[a] & 0xFFFFFFFF)
                levels.append(
                    (price, [RestingOrder(refs[i], price, qty[i]) for i in range(a, b)])
                )
            sides.append(levels)
        bids, asks = sides
        return bids[::-1][:depth], asks[:depth]

    def crossed_symbols(self, include_locked: bool = False) -> list[str]:
        """Books whose best bid is above (or, with ``include_locked``, at) the best ask, now."""
        keys = self._snapshot().level_keys
        books = np.unique(keys >> 33)
        lo = np.searchsorted(keys, books << 33)
        mid = np.searchsorted(keys, (books << 33) | (1 << 32))
        hi = np.searchsorted(keys, (books + 1) << 33)
        both = (mid > lo) & (hi > mid)
        bid = keys[mid[both] - 1] & 0xFFFFFFFF  # keys ascend: the last bid is the highest
        ask = keys[mid[both]] & 0xFFFFFFFF
        out = (bid >= ask) if include_locked else (bid > ask)
        return sorted(_name_of(self._bname[b]) for b in books[both][out])

    # ------------------------------------------------------------------ views

    def _book_id(self, symbol: str) -> int:
        key = _name_key(symbol)
        names = self._bname[: self._st[k.S_N_BOOKS]]
        found = np.flatnonzero(names == np.uint64(key)) if key >= 0 else ()
        if not len(found):
            raise KeyError(f"no book for symbol {symbol!r}")
        return int(found[0])

    def _side_ranges(self, keys: np.ndarray, symbol: str) -> list[tuple[int, int]]:
        """Index ranges of the bid side and the ask side of ``symbol`` in sorted level keys."""
        book = self._book_id(symbol)
        cuts = np.searchsorted(keys, [book << 33, (book << 33) | (1 << 32), (book + 1) << 33])
        return [(int(cuts[0]), int(cuts[1])), (int(cuts[1]), int(cuts[2]))]

    def _snapshot(self) -> _Views:
        if self._views is not None:
            return self._views
        st = self._st
        lslot = self._lslot[: st[k.S_L_NEXT]]
        live_levels = lslot[lslot[:, 2] > 0]
        order = np.argsort(live_levels[:, 0], kind="stable")
        oslot = self._oslot[: st[k.S_O_NEXT]]
        entries = self._otab.reshape(-1, 2)
        used = entries[entries[:, 1] != 0]
        slots = used[:, 1].astype(np.int64) - 1
        words = oslot[slots, 1]
        order_keys = lslot[words >> 32, 0]
        by_queue = np.lexsort((oslot[slots, 0], order_keys))
        self._views = _Views(
            live_levels[order, 0], live_levels[order, 1], live_levels[order, 2],
            order_keys[by_queue], used[by_queue, 0], (words & 0xFFFFFFFF)[by_queue],
        )  # fmt: skip
        return self._views


def warm_up() -> float:
    """Load every kernel from numba's cache (compiling on the first run ever) on a tiny stream,
    for both read-only and writable buffers; returns the seconds it took."""
    started = time.perf_counter()
    data = itch50.write_file_records([
        itch50.StockDirectory(1, 0, 0, "WARM", "Q", "N", 100, "N", "C", "Z", "P", "N", "N", "1",
                              "N", 0, "N"),
        itch50.AddOrder(1, 0, 1, 1, "B", 100, "WARM", 100),
        itch50.AddOrder(2, 0, 1, 2, "S", 100, "WARM", 200),
        itch50.OrderReplace(1, 0, 2, 1, 3, 50, 100),
        itch50.OrderExecuted(1, 0, 3, 3, 10, 1),
        itch50.OrderDelete(1, 0, 4, 3),
    ])
    for buf in (data, np.frombuffer(data, np.uint8).copy()):
        builder = FastBookBuilder(initial_orders=1)  # grows: compiles the rehash too
        builder.feed(buf)
        builder.finish()
        walker = FrameWalker()
        walker.feed(buf)
    return time.perf_counter() - started


def read_chunks(stream: IO[bytes], buf: np.ndarray) -> Iterator[np.ndarray]:
    """The stream's bytes in chunks of up to ``len(buf)``: read into ``buf`` itself when the
    stream supports it (a plain file), else as the ``bytes`` it returns (a gzip reader)."""
    if isinstance(stream, io.BufferedReader):
        view = memoryview(buf)
        while n := stream.readinto(view):
            yield buf[:n]
    else:
        while data := stream.read(len(buf)):
            yield np.frombuffer(data, np.uint8)


def _doubled(table: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A table of twice the capacity (rehashed) and its slot array, copied into twice the rows
    (free lists are threaded through the slots, so their links stay valid)."""
    bigger = np.zeros(2 * len(table), table.dtype)
    k.rehash(table, bigger)
    more = np.zeros((2 * len(slots), *slots.shape[1:]), slots.dtype)
    more[: len(slots)] = slots
    return bigger, more


def _detail(row: np.ndarray) -> str:
    """The text of one kernel issue (worded like FeedHandler's)."""
    code, _offset, t, a, b, c, d = (int(x) for x in row)
    char = chr(t)
    ref = a & 0xFFFF_FFFF_FFFF_FFFF
    action = _ACTIONS.get(char, "add")
    if code == k.K_MALFORMED:
        if b == 0:
            return f"unknown ITCH message type byte 0x{t:02x}"
        if c:
            return f"ITCH {char!r} message has a non-ASCII byte in an Alpha field"
        what = "truncated" if a < b else "too long"
        return f"ITCH {char!r} message {what}: {a} bytes, the type is {b} bytes"
    if code == k.K_TIME_BACKWARDS:
        return f"timestamp {a} after {b}"
    if code == k.K_UNKNOWN_SYMBOL:
        return f"locate {a} has no directory entry"
    if code == k.K_UNKNOWN_ORDER:
        return f"{action} of unknown order {ref}"
    if code == k.K_DUPLICATE_ORDER:
        if char == "U":
            old = b & 0xFFFF_FFFF_FFFF_FFFF
            return f"replace {old} -> {ref}: {ref} is already live"
        return f"add of order {ref}, already live"
    if code == k.K_NEGATIVE_QUANTITY:
        return f"{action} of {b} from order {ref} which had {c}; order removed"
    if char == "U":
        old = d & 0xFFFF_FFFF_FFFF_FFFF
        return f"replace {old} -> {ref}: qty {b} price {c} cannot rest"
    if char in ("A", "F"):
        side = _SIDES.get(chr(d), chr(d))
        return f"order {ref}: side {side!r} qty {b} price {c} cannot rest"
    return f"{action} of 0 from order {ref}"
