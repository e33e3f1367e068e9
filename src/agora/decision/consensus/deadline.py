"""Deadlines decided from the log alone, so every replica abandons the same requests.

The rule. A request with ``budget_ns > 0`` carries ``received_ns``: the clock of the leader that
prepared it, read when that leader received it. Every entry also carries ``stamp_ns`` (that
leader's clock at prepare, monotonic within a view) and ``commit_hint`` (that leader's commit
number at prepare). Entry ``k`` is *witnessed* by the first later entry ``j`` that either

* belongs to the same view and has ``commit_hint >= k``: the leader knew ``k`` was committed when
  it prepared ``j``, so ``stamp_ns(j)`` is a reading of the same clock that took
  ``received_ns(k)``, taken after ``k`` committed. Verdict: abandoned iff
  ``stamp_ns(j) > received_ns(k) + budget_ns(k)``; or
* belongs to a later view: a view change happened before the commit was witnessed. The clocks of
  two leaders cannot be compared, and a view change lasts at least a view-change timeout, so the
  verdict is abandoned.

Only committed entries are read, so the verdict of ``k`` is known once its witness commits, and it
is the same on every replica. The leader appends a no-op as witness when no request is there to
carry one (one more round trip for a deadline request on an idle cluster; none under load).

What it measures: the commit time is over-estimated by the gap between the commit and the next
prepare (zero when the leader witnesses at once), and the budget runs from the receipt by the
leader that prepared the request, not from the client's send (a client that retries sends its
remaining budget, measured on its own clock). Clock jumps on the leader distort the measured time
(a backward jump is frozen by the monotonic stamp, a forward jump abandons early) but never the
agreement.
"""

from __future__ import annotations

from collections.abc import Sequence

from agora.decision.consensus.messages import Entry


def needs_verdict(entry: Entry) -> bool:
    return entry.client_id != 0 and entry.budget_ns > 0


def verdict(log: Sequence[Entry], index: int, limit: int) -> bool | None:
    """Was entry ``index`` (1-based) abandoned, by entries up to ``limit``? None: not yet."""
    entry = log[index - 1]
    for j in range(index, min(limit, len(log))):
        witness = log[j]
        if witness.view != entry.view:
            return True
        if witness.commit_hint >= index:
            return witness.stamp_ns > entry.received_ns + entry.budget_ns
    return None


def witness_needed(log: Sequence[Entry], first: int, commit: int, view: int) -> bool:
    """Should the leader of ``view`` append a no-op so entries from ``first`` on get a verdict?

    True when some unwitnessed deadline entry could be witnessed by a new entry right now: it is
    committed (the new entry's commit hint covers it) or it comes from an older view.
    """
    # Only the last such entry matters: whatever witnesses it also witnesses every earlier one
    # (same view: its commit hint covers them; older view: the later view's entry resolves them).
    op = len(log)
    for index in range(op, first - 1, -1):
        entry = log[index - 1]
        if needs_verdict(entry) and (index <= commit or entry.view < view):
            return verdict(log, index, op) is None
    return False
