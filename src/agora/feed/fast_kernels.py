"""The numba kernels behind :class:`agora.feed.fast.FastBookBuilder` (design notes live there).

Every function is ``@njit(cache=True, nogil=True, _nrt=False)`` over flat numpy arrays: nothing
allocates, and without numba's runtime no array is reference-counted, which took the kernel from
6 to 11 million messages/s (each inlined helper call cost atomic incref/decref pairs). Keys are
``uint64`` and every constant that meets one is a ``np.uint64``, so numba never widens a mixed
signed/unsigned expression to float. The kernel takes few arrays on purpose: each array argument
is about eight machine words, and too many of them spill the registers of the record loop.

State layout (allocated and grown by ``fast.py``):

* ``st`` int64[ST_SIZE]: the scalar counters named ``S_*``, then message counts per type byte
  (``COUNTS + t``) and issue counts per kind (``ISSUES + kind``).
* hash tables (``otab`` orders, ``ltab`` levels, ``ntab`` symbol names): uint64[2 * capacity],
  entry ``i`` is ``(key, value + 1)`` at ``[2i, 2i + 1]``; value 0 marks an empty entry. Home
  position is Fibonacci hashing (``key * 2^64/phi >> shift``), linear probing, deletion by
  backward shift (no tombstones), capacity a power of two, load factor <= 1/2.
* ``oslot`` int64[cap, 2]: a live order is ``(priority stamp, level << 32 | shares)``; a free
  slot is ``(next free slot or -1, 0)`` (a live order always has shares > 0), the free list
  threaded through the free slots, its head in ``st[S_O_FREE]``.
* ``lslot`` int64[cap, 4]: a live level is ``(key, total shares, order count, -)`` with
  ``key = book << 33 | side << 32 | price`` (side 0 buy, 1 sell); a free one is ``(-, 0, 0,
  next free)``, head in ``st[S_L_FREE]``.
* ``bname`` uint64[cap]: book id -> symbol name (its 8 wire bytes, big-endian).
* ``locs`` int32[65536, 4] per locate: the book of its Stock Directory name (-1: none), its
  ``"#<locate>"`` book (-1: not used yet), flags (``F_SELECTED`` by the record filter,
  ``F_UNLISTED`` once its UNKNOWN_SYMBOL is reported).
* ``wire`` uint64[256, 8, 2] per type byte: ``[t, 0] = (w, message length)`` (length 0: unknown
  type), rows ``1..w`` = ``(offset, mask)`` of the 8-byte words holding its Alpha bytes.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

U64 = np.uint64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M32 = np.uint64(0xFFFFFFFF)
_ZERO = np.uint64(0)
_S8 = np.uint64(8)
_S32 = np.uint64(32)
_S33 = np.uint64(33)

# st indices
S_LIVE = 0  # live orders
S_O_NEXT = 1  # order slots ever used (high-water mark)
S_O_FREE = 2  # head of the free order-slot list (-1: empty)
S_L_LIVE = 3  # live levels
S_L_NEXT = 4
S_L_FREE = 5
S_PRIO = 6  # next priority stamp (global add counter)
S_LAST_TS = 7  # latest timestamp seen (a backwards one does not lower it)
S_MESSAGES = 8  # decoded messages applied (what FeedHandler.messages counts)
S_RECORDS = 9  # non-empty records read, filtered and malformed included
S_N_EXAMPLES = 10
S_N_BOOKS = 11
S_FILTER = 12  # 1: skip records whose locate the filter does not select
S_PEAK = 13  # peak live orders
COUNTS = 32  # st[COUNTS + type byte]: decoded messages of that type
ISSUES = COUNTS + 256  # st[ISSUES + kind]: issues of that kind
ST_SIZE = ISSUES + 8

# issue kind codes (TRUNCATED is found by the Python reader, not here)
K_UNKNOWN_ORDER = 0
K_DUPLICATE_ORDER = 1
K_NEGATIVE_QUANTITY = 2
K_INVALID_ORDER = 3
K_TIME_BACKWARDS = 4
K_UNKNOWN_SYMBOL = 5
K_MALFORMED = 6
EXAMPLE_FIELDS = 7  # kind, offset, type byte, a, b, c, d

# kernel return status
DONE = 0  # every complete record consumed
GROW = 1  # a table is full: grow it, call again from the returned position

# locs columns and flags
L_BOOK = 0
L_UNLISTED_BOOK = 1
L_FLAGS = 2
F_SELECTED = 1
F_UNLISTED = 2

_A, _C, _D, _E, _F, _P, _Q, _R, _U, _X = (ord(c) for c in "ACDEFPQRUX")
_BUY, _SELL = ord("B"), ord("S")


# ---------------------------------------------------------------------------------- intrinsics


def _load_be(bits: int, result: types.Type):
    """An intrinsic reading a ``bits``-wide big-endian unsigned integer at ``buf[pos]``: one
    unaligned load and a byte swap (``movbe``), where byte-wise reads stay byte-wise in numba."""

    @intrinsic
    def load(typingctx, buf, pos):
        if not isinstance(buf, types.Array) or not isinstance(pos, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            ity = ir.IntType(bits)
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ity.as_pointer())
            swap = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ity, [ity]), f"llvm.bswap.i{bits}"
            )
            value = builder.call(swap, [builder.load(ptr, align=1)])
            return builder.zext(value, ir.IntType(64)) if bits < 64 else value

        return result(buf, pos), codegen

    return load


_be16 = _load_be(16, types.int64)
_be32 = _load_be(32, types.int64)
_be64 = _load_be(64, types.uint64)


@intrinsic
def _prefetch(typingctx, arr, idx):
    """``llvm.prefetch`` of ``arr[idx]`` (read, keep in all cache levels): a hint, never loads
    or faults, so a stale or wrong guess costs nothing but the memory traffic."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


# ---------------------------------------------------------------------------------- hashing

_JIT = {"cache": True, "nogil": True, "_nrt": False}
_INLINE = {**_JIT, "inline": "always"}


@njit(**_JIT)
def table_shift(tab):
    """64 - log2(capacity) for a table of ``len(tab) // 2`` entries."""
    cap = tab.shape[0] >> 1
    bits = 0
    while (1 << bits) < cap:
        bits += 1
    return U64(64 - bits)


@njit(**_INLINE)
def _home(key, shift):
    return np.int64((key * _GOLDEN) >> shift)


@njit(**_INLINE)
def _probe(tab, key, shift, mask):
    """Index of ``key``'s entry, or of the empty entry where it would go."""
    i = _home(key, shift)
    while tab[2 * i + 1] != _ZERO and tab[2 * i] != key:
        i = (i + 1) & mask
    return i


@njit(**_INLINE)
def _erase(tab, i, shift, mask):
    """Delete entry ``i`` by shifting later members of its probe run back (no tombstones)."""
    j = i
    while True:
        j = (j + 1) & mask
        if tab[2 * j + 1] == _ZERO:
            break
        h = _home(tab[2 * j], shift)
        stays = (i < h <= j) if i <= j else (h > i or h <= j)
        if not stays:
            tab[2 * i] = tab[2 * j]
            tab[2 * i + 1] = tab[2 * j + 1]
            i = j
    tab[2 * i] = _ZERO
    tab[2 * i + 1] = _ZERO


@njit(**_JIT)
def rehash(old, new):
    """Insert every entry of ``old`` into the empty, larger table ``new``."""
    shift = table_shift(new)
    mask = (new.shape[0] >> 1) - 1
    for i in range(old.shape[0] >> 1):
        if old[2 * i + 1] != _ZERO:
            j = _probe(new, old[2 * i], shift, mask)
            new[2 * j] = old[2 * i]
            new[2 * j + 1] = old[2 * i + 1]


# ---------------------------------------------------------------------------------- issues


@njit(**_JIT)
def _issue(st, ex, kind, offset, t, a, b, c, d):
    st[ISSUES + kind] += 1
    n = st[S_N_EXAMPLES]
    if n < ex.shape[0]:
        ex[n, 0] = kind
        ex[n, 1] = offset
        ex[n, 2] = t
        ex[n, 3] = a
        ex[n, 4] = b
        ex[n, 5] = c
        ex[n, 6] = d
        st[S_N_EXAMPLES] = n + 1


# ---------------------------------------------------------------------------------- books


@njit(**_JIT)
def _book_of_name(name, st, ntab, bname):
    """Book id of a symbol name, created on first sight (the caller ensured capacity)."""
    i = _probe(ntab, name, table_shift(ntab), (ntab.shape[0] >> 1) - 1)
    if ntab[2 * i + 1] != _ZERO:
        return np.int64(ntab[2 * i + 1]) - 1
    book = st[S_N_BOOKS]
    st[S_N_BOOKS] = book + 1
    bname[book] = name
    ntab[2 * i] = name
    ntab[2 * i + 1] = U64(book + 1)
    return book


@njit(**_JIT)
def _unlisted_name(locate):
    """The wire form of ``"#<locate>"`` (FeedHandler's name for a locate with no directory)."""
    digits, scale = 1, 1
    while locate // scale >= 10:
        digits += 1
        scale *= 10
    name = U64(35)
    while scale > 0:
        name = (name << _S8) | U64(48 + (locate // scale) % 10)
        scale //= 10
    for _ in range(7 - digits):
        name = (name << _S8) | U64(32)
    return name


@njit(**_INLINE)
def _take_slot(st, slots, free_head, next_unused, link):
    """A slot off the free list (threaded through column ``link`` of the free slots), else the
    next never-used one."""
    slot = st[free_head]
    if slot >= 0:
        st[free_head] = slots[slot, link]
    else:
        slot = st[next_unused]
        st[next_unused] = slot + 1
    return slot


@njit(**_INLINE)
def _insert(st, otab, oslot, ltab, lslot, lshift, lmask, i, ref, lkey, shares):
    """Rest a new order (known absent, table entry ``i`` empty) at the back of its level."""
    j = _probe(ltab, lkey, lshift, lmask)
    if ltab[2 * j + 1] == _ZERO:
        lv = _take_slot(st, lslot, S_L_FREE, S_L_NEXT, 3)
        lslot[lv, 0] = np.int64(lkey)
        lslot[lv, 1] = shares
        lslot[lv, 2] = 1
        ltab[2 * j] = lkey
        ltab[2 * j + 1] = U64(lv + 1)
        st[S_L_LIVE] += 1
    else:
        lv = np.int64(ltab[2 * j + 1]) - 1
        lslot[lv, 1] += shares
        lslot[lv, 2] += 1
    slot = _take_slot(st, oslot, S_O_FREE, S_O_NEXT, 0)
    oslot[slot, 0] = st[S_PRIO]
    st[S_PRIO] += 1
    oslot[slot, 1] = (lv << 32) | shares
    otab[2 * i] = ref
    otab[2 * i + 1] = U64(slot + 1)
    live = st[S_LIVE] + 1
    st[S_LIVE] = live
    if live > st[S_PEAK]:
        st[S_PEAK] = live


@njit(**_INLINE)
def _remove(st, otab, oslot, ltab, lslot, i, oshift, omask, lshift, lmask):
    """Take the order at table entry ``i`` off its level and free its slot and entry."""
    slot = np.int64(otab[2 * i + 1]) - 1
    word = oslot[slot, 1]
    lv = word >> 32
    _erase(otab, i, oshift, omask)
    oslot[slot, 0] = st[S_O_FREE]
    oslot[slot, 1] = 0
    st[S_O_FREE] = slot
    st[S_LIVE] -= 1
    left = lslot[lv, 2] - 1
    lslot[lv, 2] = left
    lslot[lv, 1] -= word & 0xFFFFFFFF
    if left == 0:
        _erase(ltab, _probe(ltab, U64(lslot[lv, 0]), lshift, lmask), lshift, lmask)
        lslot[lv, 3] = st[S_L_FREE]
        st[S_L_FREE] = lv
        st[S_L_LIVE] -= 1


# ---------------------------------------------------------------------------------- lookahead
# The records ahead of the one being applied say which entries it will touch. Stage 1 (1.5 *
# LOOKAHEAD records ahead) prefetches the table lines of the record's order reference(s) and of
# the level an add would join; stage 2 (LOOKAHEAD / 2 ahead) probes those lines, in cache by
# then, and prefetches the order slot and level slot they point to. Both stages are branch-free
# on the type byte (a guess made for a record of another type only wastes a prefetch): a
# mispredicted branch per stage per record cost more than the prefetches saved.

LOOKAHEAD = 8


@njit(**_INLINE)
def _level_key_ahead(buf, p, locs):
    """The level key an add at ``p`` would use (garbage for other records: only prefetched)."""
    book = U64(locs[_be16(buf, p + 1), L_BOOK]) & U64(0x3FFFFFFF)
    side = U64(buf[p + 19] == _SELL)
    return (book << _S33) | (side << _S32) | U64(_be32(buf, p + 32))


@njit(**_INLINE)
def _stage1(buf, q, end, otab, oshift, ltab, lshift, locs):
    if end - q < 40:
        return q
    p = q + 2
    second = p + 19 if buf[p] == _U else p + 11  # a replace's new reference
    _prefetch(otab, 2 * _home(_be64(buf, p + 11), oshift))
    _prefetch(otab, 2 * _home(_be64(buf, second), oshift))
    _prefetch(ltab, 2 * _home(_level_key_ahead(buf, p, locs), lshift))
    return q + 2 + _be16(buf, q)


@njit(**_INLINE)
def _stage2(buf, q, end, otab, oshift, omask, oslot, ltab, lshift, lmask, lslot, locs):
    if end - q < 40:
        return q
    p = q + 2
    i = _probe(otab, _be64(buf, p + 11), oshift, omask)
    _prefetch(oslot, 2 * (np.int64(otab[2 * i + 1]) - 1) if otab[2 * i + 1] else 0)
    j = _probe(ltab, _level_key_ahead(buf, p, locs), lshift, lmask)
    _prefetch(lslot, 4 * (np.int64(ltab[2 * j + 1]) - 1) if ltab[2 * j + 1] else 0)
    return q + 2 + _be16(buf, q)


# ---------------------------------------------------------------------------------- kernel


@njit(**_JIT)
def run(buf, pos, end, base, st, ex, otab, oslot, ltab, lslot, ntab, bname, locs, tickers, wire):
    """Apply the complete records of ``buf[pos:end]`` (``base`` = stream offset of ``buf[0]``).

    Returns ``(status, pos)``: ``DONE`` with the start of the incomplete tail, or ``GROW`` with
    the start of a record that needs a table grown first (nothing of it has been applied).
    """
    oshift = table_shift(otab)
    omask = (otab.shape[0] >> 1) - 1
    lshift = table_shift(ltab)
    lmask = (ltab.shape[0] >> 1) - 1
    ahead1 = ahead2 = pos
    for r in range(LOOKAHEAD * 3 // 2):
        ahead1 = _stage1(buf, ahead1, end, otab, oshift, ltab, lshift, locs)
        if r >= LOOKAHEAD:
            ahead2 = _stage2(buf, ahead2, end, otab, oshift, omask, oslot, ltab, lshift, lmask,
                             lslot, locs)  # fmt: skip
    records = messages = 0
    last_ts = st[S_LAST_TS]
    ocap = oslot.shape[0]
    lcap = lslot.shape[0]
    bcap = bname.shape[0]
    filtering = st[S_FILTER] != 0
    while end - pos >= 2:
        n = _be16(buf, pos)
        nxt = pos + 2 + n
        if nxt > end:
            break
        ahead1 = _stage1(buf, ahead1, end, otab, oshift, ltab, lshift, locs)
        ahead2 = _stage2(buf, ahead2, end, otab, oshift, omask, oslot, ltab, lshift, lmask,
                         lslot, locs)  # fmt: skip
        if n == 0:
            pos = nxt
            continue
        p = pos + 2
        t = np.int64(buf[p])
        if (t in (_A, _F, _U, _R)) and (
            (st[S_O_FREE] < 0 and st[S_O_NEXT] == ocap)
            or (st[S_L_FREE] < 0 and st[S_L_NEXT] == lcap)
            or st[S_N_BOOKS] == bcap
        ):
            break  # GROW: nothing of this record is applied yet
        records += 1
        offset = base + pos
        pos = nxt
        if filtering and n >= 11:  # agora.feed.source.RecordFilter, from header bytes only
            locate = _be16(buf, p + 1)
            if t == _R:
                if n >= 19:
                    name = _be64(buf, p + 11)
                    for k in range(tickers.shape[0]):
                        if tickers[k] == name:
                            locs[locate, L_FLAGS] |= F_SELECTED
            elif locate != 0 and (locs[locate, L_FLAGS] & F_SELECTED) == 0:
                continue
        length = np.int64(wire[t, 0, 1])
        if length != n:
            _issue(st, ex, K_MALFORMED, offset, t, n, length, 0, 0)
            continue
        bad = _ZERO  # any Alpha byte with its high bit set: one masked 8-byte word at a time
        for w in range(1, np.int64(wire[t, 0, 0]) + 1):
            bad |= _be64(buf, p + np.int64(wire[t, w, 0])) & wire[t, w, 1]
        if bad != _ZERO:
            _issue(st, ex, K_MALFORMED, offset, t, n, length, 1, 0)
            continue
        st[COUNTS + t] += 1
        messages += 1
        ts = (_be16(buf, p + 5) << 32) | _be32(buf, p + 7)
        if ts < last_ts:
            _issue(st, ex, K_TIME_BACKWARDS, offset, t, ts, last_ts, 0, 0)
        else:
            last_ts = ts
        if t in (_A, _F):
            locate = _be16(buf, p + 1)
            book = np.int64(locs[locate, L_BOOK])
            if book < 0:
                if (locs[locate, L_FLAGS] & F_UNLISTED) == 0:
                    locs[locate, L_FLAGS] |= F_UNLISTED
                    _issue(st, ex, K_UNKNOWN_SYMBOL, offset, t, locate, 0, 0, 0)
                book = np.int64(locs[locate, L_UNLISTED_BOOK])
                if book < 0:
                    book = _book_of_name(_unlisted_name(locate), st, ntab, bname)
                    locs[locate, L_UNLISTED_BOOK] = book
            ref = _be64(buf, p + 11)
            side = np.int64(buf[p + 19])
            shares = _be32(buf, p + 20)
            price = _be32(buf, p + 32)
            i = _probe(otab, ref, oshift, omask)
            if otab[2 * i + 1] != _ZERO:
                _issue(st, ex, K_DUPLICATE_ORDER, offset, t, np.int64(ref), 0, 0, 0)
            elif shares == 0 or price == 0 or (side != _BUY and side != _SELL):
                _issue(st, ex, K_INVALID_ORDER, offset, t, np.int64(ref), shares, price, side)
            else:
                lkey = (U64(book) << _S33) | (U64(side == _SELL) << _S32) | U64(price)
                _insert(st, otab, oslot, ltab, lslot, lshift, lmask, i, ref, lkey, shares)
        elif t == _D:
            ref = _be64(buf, p + 11)
            i = _probe(otab, ref, oshift, omask)
            if otab[2 * i + 1] == _ZERO:
                _issue(st, ex, K_UNKNOWN_ORDER, offset, t, np.int64(ref), 0, 0, 0)
            else:
                _remove(st, otab, oslot, ltab, lslot, i, oshift, omask, lshift, lmask)
        elif t in (_E, _C, _X):
            ref = _be64(buf, p + 11)
            qty = _be32(buf, p + 19)
            i = _probe(otab, ref, oshift, omask)
            if otab[2 * i + 1] == _ZERO:
                _issue(st, ex, K_UNKNOWN_ORDER, offset, t, np.int64(ref), 0, 0, 0)
                continue
            slot = np.int64(otab[2 * i + 1]) - 1
            word = oslot[slot, 1]
            left = word & 0xFFFFFFFF
            if qty == 0:
                _issue(st, ex, K_INVALID_ORDER, offset, t, np.int64(ref), 0, 0, 0)
            elif qty < left:
                oslot[slot, 1] = word - qty
                lslot[word >> 32, 1] -= qty
            else:
                _remove(st, otab, oslot, ltab, lslot, i, oshift, omask, lshift, lmask)
                if qty > left:
                    _issue(st, ex, K_NEGATIVE_QUANTITY, offset, t, np.int64(ref), qty, left, 0)
        elif t == _U:
            old = _be64(buf, p + 11)
            new = _be64(buf, p + 19)
            shares = _be32(buf, p + 27)
            price = _be32(buf, p + 31)
            i = _probe(otab, old, oshift, omask)
            if otab[2 * i + 1] == _ZERO:
                _issue(st, ex, K_UNKNOWN_ORDER, offset, t, np.int64(old), 0, 0, 0)
            elif new != old and otab[2 * _probe(otab, new, oshift, omask) + 1] != _ZERO:
                _issue(st, ex, K_DUPLICATE_ORDER, offset, t, np.int64(new), np.int64(old), 0, 0)
            elif shares == 0 or price == 0:
                _issue(st, ex, K_INVALID_ORDER, offset, t, np.int64(new), shares, price,
                       np.int64(old))  # fmt: skip
            else:
                slot = np.int64(otab[2 * i + 1]) - 1
                book_side = U64(lslot[oslot[slot, 1] >> 32, 0]) & ~_M32
                _remove(st, otab, oslot, ltab, lslot, i, oshift, omask, lshift, lmask)
                i = _probe(otab, new, oshift, omask)
                _insert(st, otab, oslot, ltab, lslot, lshift, lmask, i, new,
                        book_side | U64(price), shares)  # fmt: skip
        elif t == _R:
            locs[_be16(buf, p + 1), L_BOOK] = _book_of_name(_be64(buf, p + 11), st, ntab, bname)
    st[S_RECORDS] += records
    st[S_MESSAGES] += messages
    st[S_LAST_TS] = last_ts
    # the loop stops before a complete record only when a table is full
    return (DONE if end - pos < 2 or pos + 2 + _be16(buf, pos) > end else GROW), pos


@njit(**_JIT)
def walk_frames(buf, pos, end, limit):
    """The read floor: walk the BinaryFILE framing and sum the type bytes, nothing else.

    Stops at the incomplete tail or after ``limit`` non-empty records (< 0: no limit); returns
    ``(pos, records, type_byte_sum)`` with ``pos`` where it stopped.
    """
    records = 0
    total = 0
    while end - pos >= 2 and records != limit:
        nxt = pos + 2 + _be16(buf, pos)
        if nxt > end:
            break
        if nxt > pos + 2:
            records += 1
            total += buf[pos + 2]
        pos = nxt
    return pos, records, total
