"""``agora feed synth``: a seeded, day-sized TotalView-ITCH 5.0 file from agora's own exchange.

Why: feed handlers, book builders and exports need a whole trading day to be measured on, and real
NASDAQ files are neither small nor redistributable. Every message here comes from the matching
engine (``MatchingEngine.process``) as the venue's :class:`ItchMapper` publishes it, framed as
BinaryFILE (``itch50.write_file_records`` framing), so the file is self-consistent by construction.

The day: 03:00 'S' 'O'; 04:00 'S' 'S', then per symbol (alphabetical, locates 1..n) 'R' and 'H'
'Q' (quotation only = the engine's PRE_OPEN); 08:00-09:30 pre-open orders (displayed ones never
cross; a few hidden ones do, so the opening auction trades: 'E' executions and a 'Q' cross of
type 'O'); 09:30 'S' 'Q', each symbol's opening cross and 'H' 'T'; continuous trading until 16:00
with a U-shaped intensity (4x the midday rate at the open and the close); 16:00 'S' 'M', 20:00
'S' 'E', 20:05 'S' 'C'. Resting orders stay in the book at the end (no deletes at the close), so
a feed handler's final book equals the engine's displayed book.

Realism, roughly NASDAQ's: deterministic 3-5 letter tickers; prices log-normal around $30 within
$2-$1,000 on a cent tick, quote width and steps growing with the price; Zipf activity (1/rank over
a shuffled ranking; with 3,000 symbols the top 1% carry about a third of the messages). Per
command: ~43% adds near the touch (geometric distance in steps, a few improving it), ~38% full
cancels (60% of them of one of the most recent orders: most orders live briefly), 9%
cancel-replaces ('U'), 2% partial cancels ('X'), 1.5% hidden adds (no message; hit later as
'P'), 3% aggressive orders through the touch ('E'; a quarter rest their remainder), adds and
cancels rebalanced per symbol around a target book size. A per-symbol fair price random-walks
within +-7% of the reference (the engine's band is +-10%) and aggressors lean towards it. Passive
prices stay one tick inside the opposite best (hidden included): the displayed book never crosses
or locks. The summary's ``by_type`` has the resulting message mix.

Determinism: ``random.Random(seed)`` seeds every draw (numpy's PCG64 for the hot loop, decoded
with integer operations only), time is a function of the message count, gzip is zlib with mtime 0
and no file name: same arguments, same bytes. At least ``messages`` messages are written; the
last command may add a few.

Memory: the engine keeps every client order id (~80 bytes each, ~1 GB for a 20M-message day) and
the resting orders; output goes out in ~1 MB chunks through a writer thread (which also runs
zlib, outside the GIL), never held whole.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from itertools import accumulate
from os import PathLike
from pathlib import Path

import numpy as np

from agora.bench.itch_writer import LENGTH_PREFIX, ChunkSink, FastItchPacker
from agora.core import events as ev
from agora.core.enums import Side, TimeInForce, TradingState
from agora.exchange.engine import MatchingEngine
from agora.exchange.venue.itch_feed import ItchMapper
from agora.protocols import itch50

Progress = Callable[[int, int], None]

NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3_600 * NS_PER_S
START_OF_MESSAGES_NS = 3 * NS_PER_HOUR
START_OF_SYSTEM_NS = 4 * NS_PER_HOUR
PRE_OPEN_NS = 8 * NS_PER_HOUR
MARKET_OPEN_NS = 9 * NS_PER_HOUR + NS_PER_HOUR // 2
MARKET_CLOSE_NS = 16 * NS_PER_HOUR
END_OF_SYSTEM_NS = 20 * NS_PER_HOUR
END_OF_MESSAGES_NS = 20 * NS_PER_HOUR + 5 * 60 * NS_PER_S

TICK = 100  # one cent in Price(4)
LOT = 100  # round lot; the engine rejects odd lots
PARTICIPANTS = tuple(f"M{i:03d}" for i in range(1, 65))  # 64: a 6-bit draw
FAIR_BAND = 0.07  # the fair price stays within +-7% of the reference (engine band: +-10%)
PRE_OPEN_SHARE = 0.02  # share of the message budget spent before the open
MIN_MESSAGES_PER_SYMBOL = 10
TARGET_MIN, TARGET_MAX = 8, 1_000  # resting orders per symbol the flow rebalances towards

# Cumulative action thresholds of one continuous-trading command (see the module docstring).
P_AGGRESSIVE = 0.03
P_REPLACE = P_AGGRESSIVE + 0.09
P_PARTIAL = P_REPLACE + 0.02
P_SPECIAL = P_PARTIAL + 0.015  # the rest of the special actions: hidden adds
P_ADD_SHARE = 0.53  # of the remaining add/cancel mass, when the book is at its target size
P_FAIR_MOVE = 0.06
P_INSIDE = 0.04  # passive adds that improve the touch by one step when the spread allows
GEOM_TOUCH = 0.45  # P(k = 0) of the geometric distance from the touch, in steps
# Order sizes in round lots, drawn uniformly from the tuple (100 shares dominate, as on NASDAQ).
_SIZES = (1,) * 46 + (2,) * 14 + (3,) * 8 + (4,) * 5 + (5,) * 9 + (10,) * 7 + (20,) * 3 + (50,)
_SIZES_EXPENSIVE = (1,) * 80 + (2,) * 12 + (5,) * 6 + (10,) * 2  # price above $300
RECENT_SHARE = 0.6  # cancels that pick one of the most recent orders (geometric, p = 0.3)


def _table(values: tuple[int, ...]) -> tuple[int, ...]:
    """``values`` stretched to 1024 entries: a draw is one 10-bit index."""
    return tuple(values[i * len(values) // 1024] for i in range(1024))


def _geometric(p: float) -> tuple[int, ...]:
    """1024 quantiles of a geometric distribution on 0, 1, 2... with P(0) = p."""
    return tuple(int(math.log(1.0 - (i + 0.5) / 1024) / math.log(1.0 - p)) for i in range(1024))


SIZES, SIZES_EXPENSIVE = _table(_SIZES), _table(_SIZES_EXPENSIVE)
_GEOM = _geometric(GEOM_TOUCH)
_RECENCY = _geometric(0.3)
_RECENT_CUT = int(RECENT_SHARE * 2**16)
_BLOCK = 4096  # commands per block of random words

_BUY, _SELL = Side.BUY, Side.SELL
_IOC = TimeInForce.IOC
_FLUSH_MESSAGES = 32_768  # records per ~1 MB chunk


def make_tickers(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct 3-5 letter tickers, sorted (the directory order of a real day)."""
    if n > 26**3 + 26**4:
        raise ValueError(f"cannot make {n} distinct tickers")
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    seen: dict[str, None] = {}
    while len(seen) < n:
        roll = rng.random()
        length = 3 if roll < 0.25 else 4 if roll < 0.85 else 5
        seen["".join(rng.choice(letters) for _ in range(length))] = None
    return sorted(seen)


def zipf_weights(n: int, rng: random.Random, exponent: float = 1.0) -> list[float]:
    """Activity weight per symbol: 1/rank**exponent over a seeded shuffle of the ranks."""
    ranks = list(range(1, n + 1))
    rng.shuffle(ranks)
    return [1.0 / r**exponent for r in ranks]


def _day_clock(points: int = 4096, peak: float = 3.0) -> list[int]:
    """Inverse CDF of a U-shaped intensity 1 + peak*(2x-1)^2 over the session, as a table of
    offsets in ns from the open: entry i is the time by which i/points of the flow is done."""
    span = MARKET_CLOSE_NS - MARKET_OPEN_NS - NS_PER_S  # continuous flow ends 1 s before 16:00

    def cdf(x: float) -> float:
        return (x + peak * ((2 * x - 1) ** 3 + 1) / 6) / (1 + peak / 3)

    table = []
    for i in range(points + 1):
        lo, hi = 0.0, 1.0
        for _ in range(40):  # bisection: cdf is increasing
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid) < i / points else (lo, mid)
        table.append(int(lo * span))
    return table


class _Symbol:
    """The generator's view of one symbol: its fair price, step sizes and live order ids."""

    __slots__ = ("compact_at", "fair", "fair_high", "fair_low", "half", "live", "name", "sizes",
                 "state", "step", "target")

    def __init__(self, name: str, price: int, expected_messages: float, state) -> None:
        self.name = name
        self.state = state  # the engine's SymbolState: best prices and band, read only
        self.fair = price
        self.fair_low = price - int(price * FAIR_BAND) // TICK * TICK
        self.fair_high = price + int(price * FAIR_BAND) // TICK * TICK
        dollars = price // 10_000
        self.step = TICK * max(1, round(dollars / 80))  # quote granularity grows with the price
        self.half = self.step * (1 if dollars < 20 else 2)
        self.sizes = SIZES_EXPENSIVE if dollars > 300 else SIZES
        self.live: list[int] = []  # order ids believed resting, most recent last
        # resting orders to hover around: a real day's books hold tens to thousands of orders
        self.target = int(min(TARGET_MAX, max(TARGET_MIN, expected_messages / 40)))
        self.compact_at = 3 * self.target  # forget filled ids when ``live`` grows past this


class DaySynthesizer:
    """One synthetic day: builds the universe and the engine; :meth:`run` writes the file.

    The engine stays available afterwards (``.engine``) so a test can hold a feed handler's
    rebuilt book against the engine's displayed book.
    """

    def __init__(self, *, messages: int = 20_000_000, symbols: int = 3_000, seed: int = 1) -> None:
        if symbols < 1 or symbols > 0xFFFF:
            raise ValueError(f"symbols must be 1..65535 (ITCH stock locates), got {symbols}")
        if messages < MIN_MESSAGES_PER_SYMBOL * symbols + 100:
            raise ValueError(
                f"messages={messages} is too few for {symbols} symbols: need at least "
                f"{MIN_MESSAGES_PER_SYMBOL * symbols + 100}"
            )
        self.messages_target = messages
        self.seed = seed
        self.rng = random.Random(seed)
        self.engine = MatchingEngine()
        self.mapper = ItchMapper()
        self.packer = FastItchPacker(self.mapper)
        names = make_tickers(symbols, self.rng)
        weights = zipf_weights(symbols, self.rng)
        total = sum(weights)
        # cumulative weights on a 2**32 scale: a symbol is one 32-bit draw (searchsorted right)
        self.cum_int = [int(c / total * 2**32) for c in accumulate(weights)]
        self.cum_int[-1] = 2**32
        self.prices = [self._draw_price() for _ in names]
        self.names = names
        self.shares = [w / total for w in weights]  # expected share of the day's messages
        self.syms: list[_Symbol] = []
        self.counts = [0] * 256  # messages by type byte
        self.written = 0
        self.orders = 0  # accepted new orders
        self.rejects = 0  # engine rejects (the generator aims for none)
        self.commands = 0
        self._cid = 0
        self._parts: list[bytes] = []
        self._sink: ChunkSink | None = None
        self._progress: Progress | None = None

    def _draw_price(self) -> int:
        dollars = min(1_000.0, max(2.0, self.rng.lognormvariate(math.log(30.0), 1.1)))
        return round(dollars * 100) * TICK

    # ------------------------------------------------------------------ output

    def _emit_message(self, msg: itch50.ItchMessage) -> None:
        """A message that is not an engine event (system events)."""
        body = itch50.encode(msg)
        self._parts.append(LENGTH_PREFIX[len(body)] + body)
        self.counts[body[0]] += 1
        self.written += 1

    def _process(self, command: object, ts: int) -> list:
        """Run one command through the engine and queue the ITCH messages of its events."""
        self.commands += 1
        events = self.engine.process(command, ts)
        written = self.packer.pack_into(events, self._parts, self.counts)
        if written:
            self.written += written
            if len(self._parts) >= _FLUSH_MESSAGES:
                self._flush()
        return events

    def _flush(self) -> None:
        if self._parts:
            assert self._sink is not None
            self._sink.write(b"".join(self._parts))
            self._parts.clear()
        if self._progress is not None:
            self._progress(self.written, self.messages_target)

    # ------------------------------------------------------------------ the day

    def run(
        self, path: str | PathLike[str], *, gzip: bool = False, progress: Progress | None = None
    ) -> dict:
        """Write the day to ``path`` (zlib-gzipped when ``gzip``); returns the summary."""
        if self._sink is not None:
            raise RuntimeError("a DaySynthesizer writes one day; make a new one")
        started = time.perf_counter()
        path = Path(path)
        self._progress = progress
        self._sink = ChunkSink(path, gzip)
        try:
            self._open_system()
            self._pre_open()
            self._market_open()
            self._continuous(self.messages_target - 3)
            self._emit_message(itch50.SystemEvent(0, 0, MARKET_CLOSE_NS, "M"))
            self._emit_message(itch50.SystemEvent(0, 0, END_OF_SYSTEM_NS, "E"))
            self._emit_message(self.mapper.end_of_messages(END_OF_MESSAGES_NS))
            self._flush()
        finally:
            self._sink.close()
        seconds = time.perf_counter() - started
        return {
            "path": str(path), "messages": self.written, "seed": self.seed, "gzip": gzip,
            "by_type": {chr(code): n for code, n in enumerate(self.counts) if n},
            "symbols": len(self.syms), "orders": self.orders, "commands": self.commands,
            "rejects": self.rejects, "trades": self.engine.next_trade_id - 1,
            "resting_orders": len(self.engine.orders),
            "bytes": self._sink.raw_bytes, "file_bytes": path.stat().st_size,
            "seconds": round(seconds, 3),
            "messages_per_s": round(self.written / seconds) if seconds > 0 else 0,
        }

    def _open_system(self) -> None:
        """'S' 'O', 'S' 'S', then per symbol (alphabetical) its 'R' and 'H' 'Q'."""
        mapper = self.mapper
        mapper.started = True  # the mapper would otherwise put its own 'O' before the first 'R'
        self._emit_message(mapper.start_of_messages(START_OF_MESSAGES_NS))
        self._emit_message(itch50.SystemEvent(0, 0, START_OF_SYSTEM_NS, "S"))
        engine = self.engine
        for participant in PARTICIPANTS:
            engine.process(ev.SetParticipant(ev.ParticipantSpec(participant)),
                           START_OF_SYSTEM_NS)
        for i, (name, price) in enumerate(zip(self.names, self.prices, strict=True)):
            ts = START_OF_SYSTEM_NS + (i + 1) * 1_000
            self._process(ev.AddSymbol(ev.SymbolSpec(name, price, TICK, LOT)), ts)
            expected = self.shares[i] * self.messages_target
            self.syms.append(_Symbol(name, price, expected, engine.symbols[name]))

    def _pre_open(self) -> None:
        """Quotation-only period: orders in proportion to activity (at least two per symbol, at
        most its target book size: nothing is cancelled yet), a few of them hidden and through
        the touch so that the opening auction has something to cross."""
        budget = self.messages_target * PRE_OPEN_SHARE
        plan = [s for i, s in enumerate(self.syms)
                for _ in range(min(s.target, max(2, round(budget * self.shares[i]))))]
        rng = self.rng
        rng.shuffle(plan)
        window = MARKET_OPEN_NS - PRE_OPEN_NS - NS_PER_S
        for i, s in enumerate(plan):
            ts = PRE_OPEN_NS + i * window // len(plan)
            side = _BUY if rng.random() < 0.5 else _SELL
            if rng.random() < 0.08:
                through = s.half + s.step * self._steps()
                price = s.fair + through if side is _BUY else s.fair - through
                if s.state.band_low <= price <= s.state.band_high:
                    self._order(s, side, price, self._size(s), ts, display_qty=0)
            else:
                self._add(s, side, self._steps(), self._size(s), self._participant(), ts)

    def _market_open(self) -> None:
        """'S' 'Q', then each symbol's opening cross and its 'H' 'T'."""
        self._emit_message(itch50.SystemEvent(0, 0, MARKET_OPEN_NS, "Q"))
        for i, s in enumerate(self.syms):
            self._process(ev.SetTradingState(s.name, TradingState.OPEN), MARKET_OPEN_NS + (i + 1))
            reference = s.state.reference_price  # moved to the auction price, if it traded
            width = int(reference * FAIR_BAND) // TICK * TICK
            s.fair_low, s.fair_high = reference - width, reference + width
            s.fair = min(max(s.fair, s.fair_low), s.fair_high)
        self._continuous_start = MARKET_OPEN_NS + len(self.syms) + 1

    def _continuous(self, end: int) -> None:
        """Order flow until ``end`` messages are written, times along the U-shaped day.

        The hot loop: randomness comes in numpy blocks of raw 64-bit words, three per command,
        decoded with integer operations only (bit-exact on every CPU, unlike vectorised log):
        w0 = symbol (high 32 bits, Zipf by integer cumulative weights) | action (low 32);
        w1 = fair move (bits 0-16), side (17), inside (18-25), steps (26-35), size (36-45),
        participant (46-51); w2 = which order a cancel picks (see :meth:`_cancel`).
        """
        bits = np.random.Generator(np.random.PCG64(self.rng.getrandbits(64))).bit_generator
        cum = np.array(self.cum_int, dtype=np.uint64)
        clock = _day_clock()
        points = len(clock) - 1
        start = self.written
        span = max(1, end - start)
        base = self._continuous_start
        syms = self.syms
        add, cancel, special = self._add, self._cancel, self._special
        special_cut = int(P_SPECIAL * 2**32)
        rest = 2**32 - special_cut
        fair_cut = int(P_FAIR_MOVE * 2**16)
        inside_cut = int(P_INSIDE * 2**8)
        while self.written < end:
            raw = bits.random_raw((_BLOCK, 3))
            symbol_of = np.searchsorted(cum, raw[:, 0] >> np.uint64(32), side="right").tolist()
            rolls = (raw[:, 0] & np.uint64(0xFFFFFFFF)).tolist()
            for si, roll, a, b in zip(symbol_of, rolls, raw[:, 1].tolist(), raw[:, 2].tolist(),
                                      strict=True):
                written = self.written
                if written >= end:
                    break
                s = syms[si]
                y = (written - start) * points / span
                i = int(y)
                ts = base + clock[i] + int((clock[i + 1] - clock[i]) * (y - i))
                if a & 0xFFFF < fair_cut:
                    fair = s.fair + (s.step if a & 0x10000 else -s.step)
                    if s.fair_low <= fair <= s.fair_high:
                        s.fair = fair
                if roll < special_cut:
                    special(s, roll / 2**32, ts)
                    continue
                # Rebalance adds against cancels so each book hovers around its target size.
                add_share = P_ADD_SHARE - 0.3 * (len(s.live) / s.target - 1.0)
                if (roll - special_cut) < rest * add_share:
                    side = _BUY if a & 0x20000 else _SELL
                    steps = -1 if (a >> 18) & 0xFF < inside_cut else _GEOM[(a >> 26) & 0x3FF]
                    add(s, side, steps, LOT * s.sizes[(a >> 36) & 0x3FF],
                        PARTICIPANTS[(a >> 46) & 0x3F], ts)
                else:
                    cancel(s, b, ts)

    def _special(self, s: _Symbol, u: float, ts: int) -> None:
        """The rarer actions, ``u`` uniform in [0, P_SPECIAL)."""
        if u < P_AGGRESSIVE:
            self._aggressive(s, ts)
        elif u < P_REPLACE:
            self._replace(s, ts)
        elif u < P_PARTIAL:
            self._cancel(s, self.rng.getrandbits(64), ts, partial=True)
        else:
            self._hidden(s, ts)

    # ------------------------------------------------------------------ order flow

    def _steps(self) -> int:
        """Distance from the touch in steps: geometric, P(0) = GEOM_TOUCH."""
        return _GEOM[self.rng.getrandbits(10)]

    def _size(self, s: _Symbol) -> int:
        return LOT * s.sizes[self.rng.getrandbits(10)]

    def _participant(self) -> str:
        return PARTICIPANTS[self.rng.getrandbits(6)]

    def _next_cid(self) -> str:
        self._cid += 1
        return str(self._cid)

    @staticmethod
    def _quote(s: _Symbol, side: Side, steps: int) -> int:
        """A resting price ``steps`` behind the symbol's quote, clamped one tick inside the
        opposite best price (hidden orders included) so that it never crosses or locks."""
        st = s.state
        if side is _BUY:
            price = s.fair - s.half - steps * s.step
            opposite = st.asks.best_price()
            return price if opposite is None or price < opposite else opposite - TICK
        price = s.fair + s.half + steps * s.step
        opposite = st.bids.best_price()
        return price if opposite is None or price > opposite else opposite + TICK

    def _add(self, s: _Symbol, side: Side, steps: int, qty: int, participant: str, ts: int):
        """A displayed limit order at :meth:`_quote` (skipped outside the price band)."""
        price = self._quote(s, side, steps)
        if s.state.band_low <= price <= s.state.band_high:
            self._order(s, side, price, qty, ts, participant)

    def _order(self, s: _Symbol, side: Side, price: int, qty: int, ts: int,
               participant: str | None = None, **options) -> None:
        """Enter a new order (``options``: NewOrder's tif, display_qty); keep its id while it
        rests. A random participant unless one is given."""
        order = ev.NewOrder(participant or self._participant(), self._next_cid(), s.name, side,
                            qty, price, **options)
        first = self._process(order, ts)[0]
        if type(first) is not ev.OrderAccepted:
            self.rejects += 1
            return
        self.orders += 1
        if first.order_id in self.engine.orders:
            s.live.append(first.order_id)
            if len(s.live) > s.compact_at:
                self._compact(s)

    def _compact(self, s: _Symbol) -> None:
        """Forget ids of orders that were filled since they were added (kept in order); the
        next compaction waits until the list doubles, so the cost stays amortised O(1)."""
        orders = self.engine.orders
        s.live = [oid for oid in s.live if oid in orders]
        s.compact_at = max(3 * s.target, 2 * len(s.live))

    def _passive(self, s: _Symbol, ts: int) -> None:
        side = _BUY if self.rng.random() < 0.5 else _SELL
        self._add(s, side, self._steps(), self._size(s), self._participant(), ts)

    def _hidden(self, s: _Symbol, ts: int) -> None:
        """A non-displayed order at the midpoint when the spread allows, else at the touch."""
        side = _BUY if self.rng.random() < 0.5 else _SELL
        bid, ask = s.state.bids.best_price(), s.state.asks.best_price()
        if bid is None or ask is None or ask - bid < 2 * TICK:
            price = self._quote(s, side, 0)
            if not s.state.band_low <= price <= s.state.band_high:
                return
        else:
            price = (bid + ask) // 2 // TICK * TICK
        self._order(s, side, price, self._size(s), ts, display_qty=0)

    def _aggressive(self, s: _Symbol, ts: int) -> None:
        """An order through the opposite touch, leaning towards the fair price; mostly IOC."""
        st = s.state
        bid, ask = st.bids.best_price(), st.asks.best_price()
        if bid is None or ask is None:
            self._passive(s, ts)
            return
        rnd = self.rng.random
        twice_mid = bid + ask
        lean = 0.7 if 2 * s.fair > twice_mid else 0.3 if 2 * s.fair < twice_mid else 0.5
        through = 0 if rnd() < 0.6 else s.step * (1 if rnd() < 0.7 else 2)
        if rnd() < lean:
            side, price = _BUY, min(ask + through, st.band_high // TICK * TICK)
        else:
            side, price = _SELL, max(bid - through, -(-st.band_low // TICK) * TICK)
        qty = self._size(s) * (1 if rnd() < 0.8 else 3)
        tif = _IOC if rnd() < 0.75 else TimeInForce.DAY
        self._order(s, side, price, qty, ts, tif=tif)

    def _pick_order(self, s: _Symbol, bits: int):
        """(index in ``s.live``, engine order) of a resting order, from 64 random ``bits``:
        60% one of the most recent (geometric), else uniform; orders filled since they were
        added are dropped on the way. None when the symbol has no resting order."""
        live = s.live
        orders = self.engine.orders
        recent = bits & 0xFFFF < _RECENT_CUT
        back = _RECENCY[(bits >> 16) & 0x3FF]
        uniform = bits >> 32
        while live:
            n = len(live)
            idx = n - 1 - min(n - 1, back) if recent else (uniform * n) >> 32
            order = orders.get(live[idx])
            if order is not None:
                return idx, order
            live.pop(idx)
        return None

    def _cancel(self, s: _Symbol, bits: int, ts: int, *, partial: bool = False) -> None:
        picked = self._pick_order(s, bits)
        if picked is None:
            self._passive(s, ts)
            return
        idx, order = picked
        if partial and order.leaves >= 2 * LOT:
            keep = LOT * (1 + int(self.rng.random() * (order.leaves // LOT - 1)))
            self._process(ev.CancelOrder(order.participant, order.order_id, keep), ts)
            return
        s.live.pop(idx)
        self._process(ev.CancelOrder(order.participant, order.order_id), ts)

    def _replace(self, s: _Symbol, ts: int) -> None:
        """Cancel-replace to a fresh price near the quote (a new reference: ITCH 'U')."""
        picked = self._pick_order(s, self.rng.getrandbits(64))
        if picked is None:
            self._passive(s, ts)
            return
        idx, order = picked
        price = order.price
        for steps in (self._steps(), 0, 1, 2):  # the first quote that moves the order
            price = self._quote(s, order.side, steps)
            if price != order.price:
                break
        if price == order.price or not s.state.band_low <= price <= s.state.band_high:
            return
        qty = order.leaves if self.rng.random() < 0.7 else self._size(s)
        old_id = order.order_id
        first = self._process(
            ev.ReplaceOrder(order.participant, old_id, self._next_cid(), price, qty), ts
        )[0]
        if type(first) is ev.OrderReplaced:
            s.live.pop(idx)
            if first.order_id in self.engine.orders:
                s.live.append(first.order_id)
        elif type(first) is ev.OrderRejected:
            self.rejects += 1


def synthesize(
    path: str | PathLike[str],
    *,
    messages: int = 20_000_000,
    symbols: int = 3_000,
    seed: int = 1,
    gzip: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Write a seeded synthetic ITCH 5.0 day to ``path``; returns its summary (messages by type
    char, symbols, orders, seconds...). Same arguments, same bytes."""
    day = DaySynthesizer(messages=messages, symbols=symbols, seed=seed)
    return day.run(path, gzip=gzip, progress=progress)
