"""``FixFramer.feed`` against its checked loop: the same frames, errors and leftovers.

The fast part of ``feed`` cuts well-formed frames that follow each other by offsets and hands
anything else to ``_checked_feed``; a framer that only ever runs ``_checked_feed`` is the
reference. Streams mix good frames with every kind of damage the framer reports (garbage,
a bad, empty, oversized or non-ASCII BodyLength, a BodyLength that misses ``10=NNN<SOH>``, a
possible frame start cut short) and arrive in random chunks. The fast part runs twice: as
the C ``split`` where it is built (``speedups``) and as the Python ``_fast_frames``.
"""

from contextlib import contextmanager
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from agora.protocols.fix44 import speedups
from agora.protocols.fix44.codec import FixFramingError, encode
from agora.protocols.fix44.framer import FixFramer

IMPLEMENTATIONS = [*([speedups.ext] if speedups.ext is not None else []), None]


@contextmanager
def fast_part(ext):
    """``FixFramer.feed`` cutting with the C paths ``ext`` (None: the Python fast path)."""
    saved, speedups.ext = speedups.ext, ext
    try:
        yield
    finally:
        speedups.ext = saved


class CheckedFramer(FixFramer):
    """The reference: every byte through the checked loop."""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        return self._checked_feed([])


def answer(framer: FixFramer, data: bytes):
    try:
        result = ("ok", framer.feed(data))
    except FixFramingError as exc:
        result = ("raised", str(exc), exc.frames, exc.discarded, exc.garbled)
    return result, framer.buffered, framer.discarded


def good(n: int) -> bytes:
    return encode("D", [(11, f"c{n}"), (58, "x" * (1 + n % 40))], sender="C", target="V",
                  seq_num=n + 1, sending_time=1_704_164_645_678_000_000 + n)


_PIECES = st.one_of(
    st.integers(0, 60).map(good),
    st.integers(0, 60).map(good),
    st.integers(0, 60).map(lambda n: good(n).replace(b"FIX.4.4", b"FIX.4.2")),  # same shape
    st.sampled_from([
        b"8=FIX.4.4\x019=1\x01\x0110=000\x01", b"8=FIX.4.4\x019=3\x01ab\x0110:000\x01",
        b"8=FIX.4.4\x019=", b"8=FIX.4", b"8=", b"garbage", b"\x01", b"10=123\x01",
        b"8=FIX.4.4\x019=x5\x01", b"8=FIX.4.4\x019=\x01", b"8=FIX.4.4\x019=12345678901",
        b"8=FIX.4.4\x019=99999\x01", b"8=FIX.4.4\x019=3\x01abc10=000\x01",
        b"8=FIX.4.4\x019=3\x01ab\x0110=000\x01", b"8=FIX.4.4\x019=3\x01ab\x0110=0a0\x01",
        b"8=FIX.4.4\x019=0\x0110=000\x01", b"8=FIX.4.4\x019=\xd9\xa1\x01",
    ]),
    st.binary(max_size=12),
)


@st.composite
def streams(draw):
    """A stream of pieces (sometimes one damaged by a byte) cut into chunks."""
    data = bytearray(b"".join(draw(st.lists(_PIECES, min_size=1, max_size=8))))
    if data and not draw(st.integers(0, 3)):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=5)))
    bounds = [0, *cuts, len(data)]
    return [bytes(data[a:b]) for a, b in pairwise(bounds)]


@settings(max_examples=500, deadline=None)
@given(streams(), st.one_of(st.just(64 * 1024), st.integers(0, 110)))  # BodyLengths: 0 to 97
def test_feed_answers_like_the_checked_loop(chunks, limit):
    for ext in IMPLEMENTATIONS:
        fast, checked = FixFramer(limit), CheckedFramer(limit)
        with fast_part(ext):
            for chunk in chunks:
                assert answer(fast, chunk) == answer(checked, chunk)


def test_a_flood_of_good_frames_is_cut_whole_in_any_chunks():
    data = b"".join(good(n) for n in range(40))
    for ext in IMPLEMENTATIONS:
        for size in (1, 7, 155, 1000, len(data)):
            fast, checked = FixFramer(), CheckedFramer()
            with fast_part(ext):
                for i in range(0, len(data), size):
                    assert answer(fast, data[i : i + size]) == answer(checked, data[i : i + size])
            assert fast.buffered == 0
