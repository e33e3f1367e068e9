"""Writing the synthetic day: engine events packed straight into ITCH 5.0 BinaryFILE records, and
a chunked (optionally gzip) file sink. Split from ``itch_synth`` so each module has one job."""

from __future__ import annotations

import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from agora.core import events as ev
from agora.core.enums import Side
from agora.exchange.venue.itch_feed import ItchMapper
from agora.protocols import itch50

FEED_TYPES = frozenset((  # what ItchMapper publishes
    ev.BookAdd, ev.BookExecute, ev.BookCancel, ev.BookDelete, ev.BookReplace, ev.Trade,
    ev.TradingStatus, ev.SymbolDirectory))
LENGTH_PREFIX = {n: struct.pack(">H", n) for n in range(1, 64)}
_BUY = Side.BUY
_MAX_PENDING_WRITES = 4


class FastItchPacker:
    """Engine events -> BinaryFILE records (length prefix + ITCH bytes), the book messages packed
    straight from the event fields; everything else goes through the :class:`ItchMapper`.

    Why: building an ``itch50`` message object and encoding it costs about twice the direct
    ``struct.pack``, on ~95% of the day's messages. The output is held byte-equal to
    ``itch50.encode(mapper.map_event(event))`` by a differential test. Book events need the
    symbol's 'R' to have gone through ``mapper`` first (as the mapper itself requires); event
    times must be below one day (ns since midnight), which the synthesizer guarantees.
    """

    _A = struct.Struct(">HBHH6sQBI8sI")  # record length, then the message
    _E = struct.Struct(">HBHH6sQIQ")
    _X = struct.Struct(">HBHH6sQI")
    _D = struct.Struct(">HBHH6sQ")
    _U = struct.Struct(">HBHH6sQQII")
    _P = struct.Struct(">HBHH6sQBI8sIQ")

    def __init__(self, mapper: ItchMapper) -> None:
        self.mapper = mapper
        self._stock: dict[str, bytes] = {}

    def _stock_bytes(self, symbol: str) -> bytes:
        raw = self._stock.get(symbol)
        if raw is None:
            raw = self._stock[symbol] = symbol.encode("ascii").ljust(8)
        return raw

    def pack_into(self, events: list, parts: list[bytes], counts: list[int]) -> int:
        """Append one record per feed event to ``parts``; count them by type byte."""
        locates = self.mapper.locates
        written = 0
        for e in events:
            kind = type(e)
            if kind is ev.BookAdd:
                code = 65
                parts.append(self._A.pack(36, 65, locates[e.symbol], 0, e.ts.to_bytes(6, "big"),
                                          e.order_id, 66 if e.side is _BUY else 83, e.qty,
                                          self._stock_bytes(e.symbol), e.price))
            elif kind is ev.BookDelete:
                code = 68
                parts.append(self._D.pack(19, 68, locates[e.symbol], 0, e.ts.to_bytes(6, "big"),
                                          e.order_id))
            elif kind is ev.BookReplace:
                code = 85
                parts.append(self._U.pack(35, 85, locates[e.symbol], 0, e.ts.to_bytes(6, "big"),
                                          e.old_order_id, e.order_id, e.qty, e.price))
            elif kind is ev.BookExecute:
                code = 69
                parts.append(self._E.pack(31, 69, locates[e.symbol], 0, e.ts.to_bytes(6, "big"),
                                          e.order_id, e.qty, e.trade_id))
            elif kind is ev.BookCancel:
                code = 88
                parts.append(self._X.pack(23, 88, locates[e.symbol], 0, e.ts.to_bytes(6, "big"),
                                          e.order_id, e.qty))
            elif kind is ev.Trade and not e.cross and not self.mapper.p_resting_side:
                code = 80  # hidden order hit: reference 0, Buy/Sell 'B' (see ItchMapper)
                parts.append(self._P.pack(44, 80, locates[e.symbol], 0, e.ts.to_bytes(6, "big"),
                                          0, 66, e.qty, self._stock_bytes(e.symbol), e.price,
                                          e.trade_id))
            elif kind in FEED_TYPES:
                body = itch50.encode(self.mapper.map_event(e))
                code = body[0]
                parts.append(LENGTH_PREFIX[len(body)] + body)
            else:
                continue
            counts[code] += 1
            written += 1
        return written


class ChunkSink:
    """Writes byte chunks in order from one background thread, optionally through zlib (gzip
    wrapper, mtime 0, no name: reproducible bytes). At most a few chunks wait in memory."""

    def __init__(self, path: Path, gzip: bool) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._zlib = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="itch-synth-writer")
        self._pending: deque[Future] = deque()
        self.raw_bytes = 0

    def _write(self, chunk: bytes) -> None:
        self._file.write(self._zlib.compress(chunk) if self._zlib is not None else chunk)

    def write(self, chunk: bytes) -> None:
        self.raw_bytes += len(chunk)
        self._pending.append(self._pool.submit(self._write, chunk))
        while len(self._pending) > _MAX_PENDING_WRITES:
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
            if self._zlib is not None:
                self._file.write(self._zlib.flush())
        finally:
            self._pool.shutdown(wait=True)
            self._file.close()
