"""Which of one sender's sequence numbers are spent, in memory that does not grow with the log.

The rules must refuse a second commit of any ``(agent, seq)`` (integrity: no decision twice), and
an agent's proposals may commit out of order (retransmissions, several replicas' clients). A set
of every spent pair would grow with every proposal of the session: a view agent proposing a fair
value a thousand times a second would hold millions by the close. This is the anti-replay window
of IPsec (RFC 4303, section 3.4.3) instead: the highest seq spent, and one bit for each of the
``size - 1`` seqs below it. A seq that far below the highest cannot be told apart from a replay,
so it is refused as too old. Agents number their proposals one by one, so only a proposal
overtaken by ``size`` newer ones of the same agent meets that (see ``RulesConfig.seq_window``).

Pure integers, no clocks: every replica that applies the same log keeps the same windows.
"""

from __future__ import annotations

from enum import Enum


class Seq(Enum):
    """What :meth:`SeqWindow.spend` found."""

    FRESH = "fresh"  # not spent before: spent now
    SPENT = "spent"  # spent before (a duplicate)
    TOO_OLD = "too_old"  # below the window: cannot tell, refused


class SeqWindow:
    """The spent seqs of one sender: bit ``k`` of ``mask`` is seq ``high - k``."""

    __slots__ = ("_full", "high", "mask", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a seq window holds at least one seq, not {size}")
        self.size = size
        self._full = (1 << size) - 1
        self.high: int | None = None
        self.mask = 0

    def spend(self, seq: int) -> Seq:
        """Mark ``seq`` spent and say whether it was fresh."""
        high = self.high
        if high is None or seq > high:
            ahead = self.size if high is None else seq - high
            # a jump past the window (a faulty agent's huge seq) forgets all, never shifts by it
            kept = self.mask << ahead if ahead < self.size else 0
            self.mask = (kept | 1) & self._full
            self.high = seq
            return Seq.FRESH
        below = high - seq
        if below >= self.size:
            return Seq.TOO_OLD
        bit = 1 << below
        if self.mask & bit:
            return Seq.SPENT
        self.mask |= bit
        return Seq.FRESH


__all__ = ["Seq", "SeqWindow"]
