"""Aggregation rules: a pure function from the committed log to decisions.

The consensus layer commits one ordered log of ``(index, Proposal, abandoned)`` entries; every
replica runs these rules over it and gets the same :class:`~agora.core.events.Decision` list,
byte for byte. :func:`decide` is the batch form; :class:`Aggregator` consumes entries one at a time
and, after any prefix, has yielded exactly ``decide(prefix)``. Nothing here reads a clock, a random
source, or iterates a ``set`` into its output: state is dicts in log (insertion) order.

Each entry gets one :class:`Verdict`, checked in this order (the first that applies wins):

1. Authenticity: ``UNKNOWN_AGENT`` (not in the roster), ``UNSIGNED`` (empty signature),
   ``BAD_SIGNATURE`` (forged or tampered). Checked first so that a forged entry can change no
   state, not even burn a genuine ``(agent, seq)``.
2. ``ABANDONED``: the consensus layer marked it (deadline missed). It yields nothing, but its
   ``(agent, seq)`` is spent: the agent has given the proposal up (and may re-propose under a new
   seq), so a later copy committed in time must not bring it back (that would double an order).
   Then ``DUPLICATE`` (same ``(agent, seq)`` already spent), ``TOO_OLD`` (``seq_window`` or more
   below the agent's highest seq: too old to tell from a replay, ``seq_window.py``),
   ``WRONG_ROLE`` (a view may only send FairValue, a risk agent Veto, a strategy
   OrderIntent/CancelIntent, a reporter OrderDone), ``INVALID`` (non-positive qty/price,
   negative uncertainty).
3. FairValue (views): each view agent's latest FairValue per symbol (highest ``seq``; an older
   one is ``STALE``) is kept. The symbol's *committed fair value* is the lower median of those
   no older than ``view_max_age`` log positions, once at least ``view_quorum`` agents have one;
   its uncertainty is the lower median of theirs. With ``n >= 2f + 1`` views, f liars cannot move
   the median outside the range of honest values.
4. Veto (risk): per ``(agent, symbol, side)`` the highest ``seq`` wins (an older one is
   ``STALE``, so a reordered lift cannot undo a newer veto). An order of a side is vetoed while
   any risk agent's veto on its symbol or on ``""`` (all symbols), for that side or for both
   (``side`` None), is active. Activating a veto drops the pending votes it covers.
5. OrderIntent (strategies): ``VETOED`` while vetoed; with a collar set, ``NO_FAIR_VALUE`` when
   the symbol has no committed fair value and ``COLLAR`` when
   ``|price - fair| * 10_000 > collar_bps * fair`` (exact integer test). Then the vote below.
6. CancelIntent (strategies): passes vetoes; ``UNKNOWN_ORDER`` unless it names an order decision
   of this log, ``ALREADY_CANCELLED`` once a cancel for it was decided, ``ORDER_ENDED`` once
   reporters ended it (7.; either while fewer than ``cancel_memory`` log positions after it,
   then ``UNKNOWN_ORDER``: refused either way). Then the vote below.
7. OrderDone (reporters): the venue has finished with an order decision (filled, expired,
   cancelled or rejected by the venue). ``UNKNOWN_ORDER`` unless it names a live order decision,
   ``ALREADY_CANCELLED`` / ``ORDER_ENDED`` when its order ended already; else the reporter counts
   towards ``done_quorum`` distinct reporters (``PENDING`` below it). At the quorum the order
   ends (``APPLIED``, with ``Outcome.ended`` naming it): the rules forget it and its pending
   cancel ballots, and a later cancel of it reads ``ORDER_ENDED`` (for ``cancel_memory`` log
   positions, then ``UNKNOWN_ORDER``). Every node's reporter sees every report of the account,
   so with crash faults one suffices; in the Byzantine mode ``done_quorum = f + 1`` keeps f
   lying reporters from ending a live order (which would make it impossible to cancel).

The weighted vote. Each strategy agent has an integer ``weight``; a vote (ballot) belongs to a key:
``(symbol, side, tif)`` for orders, the target ``decision_id`` for cancels. An agent has at most
one pending ballot per key: a newer ``seq`` replaces it, an older one is ``STALE``. Ballots live
for ``vote_window`` log positions (``j - i < vote_window``). When a ballot arrives at index ``j``:

- if its agent's weight alone reaches ``vote_threshold``, it is decided as proposed;
- else, if a decision of the same key made within the window did not count this agent, and the
  ballot's price with that decision's voters' prices spans at most ``price_tolerance``, the
  ballot is ``ABSORBED``: a late vote for a decision already made (replicas of one strategy
  propose the same intent, and without this the stragglers would add up to a second, unwanted
  order); the oldest such decision takes it;
- else it joins the pending ballots, and the heaviest group of pending ballots that contains it,
  whose prices all lie within ``price_tolerance`` of each other and pass the collar now, is
  decided if its total weight reaches ``vote_threshold`` (ties: the lowest price band). The
  decided order is the most conservative one every voter agreed to: the least aggressive price
  (lowest buy, highest sell) and the smallest quantity. The group's ballots are consumed.

Identifiers. An entry yields at most one decision, so the log index identifies it:
``client_order_id = decision_id = session + base36(index)`` (digits and upper-case letters),
at most 14 characters, so OUCH 5.0's ClOrdID (14 alphanumerics) and FIX ClOrdID (tag 11) both
carry it. Every replica derives the same id, so a decision sent twice is sent with one id: agora's
venue refuses the second (``DUPLICATE_CLIENT_ORDER_ID``). OUCH does not check ClOrdID for
uniqueness; there ``log_index``, which only grows, can serve as the UserRefNum that must increase
per account. ``session`` (1-6 alphanumerics) must differ between logs trading on one account,
and neither may begin the other: ``"AG" + base36(1189)`` and ``"AGX" + base36(1)`` are both
``AGX1``.

Memory: the spent ``(agent, seq)`` pairs take ``seq_window / 8`` bytes per agent, whatever the
log's length; an ended order (cancelled, or done at the venue) is remembered for
``cancel_memory`` log positions. The live-order set holds the orders decided and not yet ended:
with reporters in the roster an order that fills leaves it once reported; without them the log
does not know fills, so filled orders stay until the session ends (and a cancel of one is still
decided, and the venue rejects it). Limitations: one strategy agent's vote is one price and
quantity per key.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import NamedTuple

import msgspec

from agora.core.enums import Side
from agora.core.events import (
    CancelIntent,
    Decision,
    FairValue,
    OrderDone,
    OrderIntent,
    Proposal,
    Veto,
)
from agora.decision.seq_window import Seq, SeqWindow
from agora.decision.signing import verify

BPS = 10_000
CLIENT_ORDER_ID_MAX = 14  # OUCH 5.0 ClOrdID is 14 alphanumeric characters
SESSION_MAX = 6
_DIGITS36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Role(StrEnum):
    """What an agent may propose."""

    VIEW = "view"  # FairValue
    RISK = "risk"  # Veto
    STRATEGY = "strategy"  # OrderIntent, CancelIntent
    REPORT = "report"  # OrderDone


class Member(msgspec.Struct, frozen=True):
    """One agent of the roster: its role, raw Ed25519 public key and voting weight."""

    role: Role
    public_key: bytes
    weight: int = 1


class RulesConfig(msgspec.Struct, frozen=True):
    """The rules' parameters; every replica must hold the same one (it is msgpack-encodable)."""

    members: dict[str, Member]
    session: str = "AG"
    view_quorum: int = 1  # views needed before a symbol has a committed fair value
    view_max_age: int = 0  # log positions a view counts for; 0: until replaced
    vote_threshold: int = 1  # total strategy weight that makes a decision
    vote_window: int = 64  # log positions a ballot stays pending
    price_tolerance: int = 0  # Price(4): max spread between the prices of one group
    collar_bps: int | None = 500  # None: no collar (and no fair value needed)
    # an agent's proposal overtaken by this many newer ones of its own is refused as TOO_OLD
    seq_window: int = 16_384
    # log positions an ended order is remembered for (ALREADY_CANCELLED or ORDER_ENDED, then
    # UNKNOWN_ORDER)
    cancel_memory: int = 65_536
    # distinct reporters whose OrderDone ends an order (f + 1 in the Byzantine mode; at most
    # the roster's reporters)
    done_quorum: int = 1

    def __post_init__(self) -> None:
        if not (0 < len(self.session) <= SESSION_MAX and self.session.isascii()):
            raise ValueError(f"session must be 1-{SESSION_MAX} ASCII characters: {self.session!r}")
        if not self.session.isalnum():
            raise ValueError(f"session must be alphanumeric: {self.session!r}")
        if min(self.view_quorum, self.vote_threshold, self.vote_window, self.seq_window,
               self.cancel_memory, self.done_quorum) < 1:
            raise ValueError("view_quorum, vote_threshold, vote_window, seq_window, "
                             "cancel_memory and done_quorum must be >= 1")
        if self.view_max_age < 0 or self.price_tolerance < 0:
            raise ValueError("view_max_age and price_tolerance must be >= 0")
        if self.collar_bps is not None and self.collar_bps < 0:
            raise ValueError("collar_bps must be >= 0 (or None)")
        for name, member in self.members.items():
            if member.weight < 0:
                raise ValueError(f"member {name!r} has a negative weight")
        reporters = self.reporters
        if reporters and self.done_quorum > reporters:
            raise ValueError(f"done_quorum {self.done_quorum} exceeds the roster's {reporters} "
                             f"reporters: no order could ever end")

    @property
    def reporters(self) -> int:
        """How many members may report orders done (``Role.REPORT``)."""
        return sum(m.role is Role.REPORT for m in self.members.values())


class CommittedProposal(NamedTuple):
    """One committed log entry. ``abandoned``: committed after its deadline (budget_ns)."""

    index: int
    proposal: Proposal
    abandoned: bool = False


class Verdict(StrEnum):
    """What one log entry did. Appended, never renamed: table tests and counters use them."""

    DECIDED = "decided"
    PENDING = "pending"
    ABSORBED = "absorbed"
    APPLIED = "applied"
    STALE = "stale"
    ABANDONED = "abandoned"
    UNKNOWN_AGENT = "unknown_agent"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    DUPLICATE = "duplicate"
    WRONG_ROLE = "wrong_role"
    INVALID = "invalid"
    VETOED = "vetoed"
    NO_FAIR_VALUE = "no_fair_value"
    COLLAR = "collar"
    UNKNOWN_ORDER = "unknown_order"
    ALREADY_CANCELLED = "already_cancelled"
    TOO_OLD = "too_old"
    ORDER_ENDED = "order_ended"


class Outcome(msgspec.Struct, frozen=True):
    """The verdict on one entry, its decision if any, after a view update the symbol's
    committed fair value (None while below quorum), and the order decision an OrderDone ended."""

    index: int
    verdict: Verdict
    decision: Decision | None = None
    fair_value: FairValue | None = None
    ended: str | None = None


def base36(n: int) -> str:
    if n < 0:
        raise ValueError(f"negative log index {n}")
    digits = []
    while True:
        n, r = divmod(n, 36)
        digits.append(_DIGITS36[r])
        if n == 0:
            return "".join(reversed(digits))


def decision_id(session: str, index: int) -> str:
    """``session + base36(index)``; raises when the index no longer fits 14 characters."""
    ident = session + base36(index)
    if len(ident) > CLIENT_ORDER_ID_MAX:
        raise ValueError(f"log index {index} does not fit a {CLIENT_ORDER_ID_MAX}-character id")
    return ident


def decision_index(session: str, ident: str) -> int | None:
    """The log index whose :func:`decision_id` under ``session`` is ``ident``; None if none is
    (another session's id, or not one of the canonical base36 forms ``decision_id`` makes)."""
    digits = ident[len(session):]
    if not ident.startswith(session) or not digits or (len(digits) > 1 and digits[0] == "0"):
        return None
    if not all(c in _DIGITS36 for c in digits):
        return None
    return int(digits, 36)


class _Ballot(NamedTuple):
    agent: str
    seq: int
    index: int
    weight: int
    price: int  # 0 for cancels
    qty: int


class _Group(NamedTuple):
    """A decision made by a vote, remembered for the window so late votes are absorbed."""

    index: int
    voters: set[str]
    low: int
    high: int


_ROLE_OF: dict[type, Role] = {
    FairValue: Role.VIEW,
    Veto: Role.RISK,
    OrderIntent: Role.STRATEGY,
    CancelIntent: Role.STRATEGY,
    OrderDone: Role.REPORT,
}


class Aggregator:
    """The rules applied one committed entry at a time (see the module notes)."""

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self.counts: Counter[Verdict] = Counter()
        self._keys = {name: m.public_key for name, m in config.members.items()}
        self._last_index = -1
        self._spent: dict[str, SeqWindow] = {}  # agent -> its spent seqs (members only)
        self._views: dict[str, dict[str, tuple[int, int, FairValue]]] = {}  # sym->agent->(seq,i,fv)
        # (agent, symbol, side) -> (seq, on); (symbol ("" = all), side (None = both)) -> active
        self._vetoes: dict[tuple[str, str, Side | None], tuple[int, bool]] = {}
        self._vetoed: Counter[tuple[str, Side | None]] = Counter()
        self._ballots: dict[tuple, dict[str, _Ballot]] = {}  # key -> agent -> pending ballot
        self._groups: dict[tuple, deque[_Group]] = {}
        self._live: dict[str, str] = {}  # order decision id -> symbol
        self._done_votes: dict[str, set[str]] = {}  # live order -> reporters below the quorum
        # ended orders -> what a later cancel reads (ALREADY_CANCELLED or ORDER_ENDED), and ...
        self._ended: dict[str, Verdict] = {}
        self._ends: deque[tuple[int, str]] = deque()  # ... the same in log order: (index, id)

    # ------------------------------------------------------------------ public

    def push(self, entry: CommittedProposal | tuple[int, Proposal, bool]) -> list[Decision]:
        """Consume one entry; the decisions it yields (zero or one)."""
        decision = self.apply(entry).decision
        return [] if decision is None else [decision]

    def apply(self, entry: CommittedProposal | tuple[int, Proposal, bool]) -> Outcome:
        """Consume one entry and say what it did."""
        index, proposal, abandoned = entry
        if index <= self._last_index:
            raise ValueError(f"log index {index} after {self._last_index}: not increasing")
        self._last_index = index
        outcome = self._judge(index, proposal, abandoned)
        self.counts[outcome.verdict] += 1
        return outcome

    def fair_value(self, symbol: str) -> FairValue | None:
        """The committed fair value of ``symbol`` as of the last entry consumed."""
        return self._fair_value(symbol, self._last_index)

    def vetoed(self, symbol: str, side: Side | None = None) -> bool:
        """Whether an order of ``side`` on ``symbol`` is vetoed (``side`` None: of either side)."""
        sides = (None, side) if side is not None else (None, Side.BUY, Side.SELL)
        vetoed = self._vetoed
        return any(vetoed[(sym, s)] > 0 for sym in (symbol, "") for s in sides)

    # ------------------------------------------------------------------ validity

    def _judge(self, index: int, proposal: Proposal, abandoned: bool) -> Outcome:
        member = self.config.members.get(proposal.agent)
        if member is None:
            return Outcome(index, Verdict.UNKNOWN_AGENT)
        if not proposal.signature:
            return Outcome(index, Verdict.UNSIGNED)
        if not verify(proposal, self._keys):
            return Outcome(index, Verdict.BAD_SIGNATURE)
        window = self._spent.get(proposal.agent)
        if window is None:
            window = self._spent[proposal.agent] = SeqWindow(self.config.seq_window)
        seq = window.spend(proposal.seq)
        if abandoned:
            return Outcome(index, Verdict.ABANDONED)
        if seq is not Seq.FRESH:
            return Outcome(index, Verdict.DUPLICATE if seq is Seq.SPENT else Verdict.TOO_OLD)
        action = proposal.action
        if _ROLE_OF[type(action)] is not member.role:
            return Outcome(index, Verdict.WRONG_ROLE)
        if isinstance(action, FairValue):
            return self._on_view(index, proposal, action)
        if isinstance(action, Veto):
            return Outcome(index, self._on_veto(proposal, action))
        ballot = _Ballot(proposal.agent, proposal.seq, index, member.weight, 0, 0)
        if isinstance(action, CancelIntent):
            return self._on_cancel(ballot, action)
        if isinstance(action, OrderDone):
            return self._on_done(index, proposal.agent, action)
        return self._on_order(ballot._replace(price=action.price, qty=action.qty), action)

    # ------------------------------------------------------------------ views and vetoes

    def _on_view(self, index: int, proposal: Proposal, fair: FairValue) -> Outcome:
        if fair.price <= 0 or fair.uncertainty < 0:
            return Outcome(index, Verdict.INVALID)
        views = self._views.setdefault(fair.symbol, {})
        previous = views.get(proposal.agent)
        if previous is not None and previous[0] > proposal.seq:
            return Outcome(index, Verdict.STALE)
        views[proposal.agent] = (proposal.seq, index, fair)
        return Outcome(index, Verdict.APPLIED, fair_value=self._fair_value(fair.symbol, index))

    def _fair_value(self, symbol: str, index: int) -> FairValue | None:
        max_age = self.config.view_max_age
        fresh = [
            fair
            for _seq, at, fair in self._views.get(symbol, {}).values()
            if not max_age or index - at < max_age
        ]
        if len(fresh) < self.config.view_quorum:
            return None
        middle = (len(fresh) - 1) // 2  # lower median: always a value some view proposed
        price = sorted(f.price for f in fresh)[middle]
        return FairValue(symbol, price, sorted(f.uncertainty for f in fresh)[middle])

    def _on_veto(self, proposal: Proposal, veto: Veto) -> Verdict:
        key = (proposal.agent, veto.symbol, veto.side)
        previous = self._vetoes.get(key)
        if previous is not None and previous[0] > proposal.seq:
            return Verdict.STALE
        was_on = previous is not None and previous[1]
        self._vetoes[key] = (proposal.seq, veto.active)
        if veto.active and not was_on:
            self._vetoed[(veto.symbol, veto.side)] += 1
            for ballot_key, pending in self._ballots.items():
                if (ballot_key[0] == "order" and veto.symbol in ("", ballot_key[1])
                        and veto.side in (None, ballot_key[2])):
                    pending.clear()
        elif was_on and not veto.active:
            self._vetoed[(veto.symbol, veto.side)] -= 1
        return Verdict.APPLIED

    # ------------------------------------------------------------------ orders and cancels

    def _collar(self, symbol: str, price: int, index: int) -> Verdict | None:
        """None when ``price`` passes the collar, else why not."""
        bps = self.config.collar_bps
        if bps is None:
            return None
        fair = self._fair_value(symbol, index)
        if fair is None:
            return Verdict.NO_FAIR_VALUE
        return Verdict.COLLAR if abs(price - fair.price) * BPS > bps * fair.price else None

    def _on_order(self, ballot: _Ballot, intent: OrderIntent) -> Outcome:
        index = ballot.index
        if intent.qty <= 0 or intent.price <= 0:
            return Outcome(index, Verdict.INVALID)
        if self.vetoed(intent.symbol, intent.side):
            return Outcome(index, Verdict.VETOED)
        refused = self._collar(intent.symbol, intent.price, index)
        if refused is not None:
            return Outcome(index, refused)
        key = vote_key(intent)
        pending = self._pending(key, index)
        previous = pending.get(ballot.agent)
        if previous is not None and previous.seq > ballot.seq:
            return Outcome(index, Verdict.STALE)
        pending.pop(ballot.agent, None)
        if ballot.weight >= self.config.vote_threshold:
            return self._decide_order(key, [ballot], intent)
        if self._absorb(key, ballot):
            return Outcome(index, Verdict.ABSORBED)
        pending[ballot.agent] = ballot
        eligible = [
            b for b in pending.values() if self._collar(intent.symbol, b.price, index) is None
        ]
        weight, group = _heaviest_group(eligible, ballot, self.config.price_tolerance)
        if weight < self.config.vote_threshold:
            return Outcome(index, Verdict.PENDING)
        for voter in group:
            del pending[voter.agent]
        price = (min if intent.side is Side.BUY else max)(b.price for b in group)
        qty = min(b.qty for b in group)
        agreed = OrderIntent(intent.symbol, intent.side, qty, price, intent.tif)
        return self._decide_order(key, group, agreed)

    def _decide_order(self, key: tuple, group: list[_Ballot], intent: OrderIntent) -> Outcome:
        index = max(b.index for b in group)  # the entry that completed the vote
        decision = self._decision(index, intent, group)
        self._live[decision.decision_id] = intent.symbol
        prices = [b.price for b in group]
        voted = _Group(index, {b.agent for b in group}, min(prices), max(prices))
        self._recent(key, index).append(voted)
        return Outcome(index, Verdict.DECIDED, decision)

    def _recent(self, key: tuple, index: int) -> deque[_Group]:
        """The key's decisions still within the window at ``index``, oldest first."""
        groups = self._groups.setdefault(key, deque())
        while groups and index - groups[0].index >= self.config.vote_window:
            groups.popleft()
        return groups

    def _absorb(self, key: tuple, ballot: _Ballot) -> bool:
        """A late vote for a decision of this key, made within the window without this agent."""
        tolerance = self.config.price_tolerance
        # oldest first: a straggler most likely belongs to the oldest decision it fits
        for group in self._recent(key, ballot.index):
            fits = max(group.high, ballot.price) - min(group.low, ballot.price) <= tolerance
            if fits and ballot.agent not in group.voters:
                group.voters.add(ballot.agent)
                return True
        return False

    def _on_cancel(self, ballot: _Ballot, cancel: CancelIntent) -> Outcome:
        index, target = ballot.index, cancel.decision_id
        refused = self._not_live(index, target)
        if refused is not None:
            return Outcome(index, refused)
        key = vote_key(cancel)
        pending = self._pending(key, index)
        pending[ballot.agent] = ballot
        if sum(b.weight for b in pending.values()) < self.config.vote_threshold:
            return Outcome(index, Verdict.PENDING)
        self._end(index, target, Verdict.ALREADY_CANCELLED)
        return Outcome(index, Verdict.DECIDED,
                       self._decision(index, cancel, list(pending.values())))

    def _on_done(self, index: int, reporter: str, done: OrderDone) -> Outcome:
        target = done.decision_id
        refused = self._not_live(index, target)
        if refused is not None:
            return Outcome(index, refused)
        votes = self._done_votes.setdefault(target, set())
        votes.add(reporter)
        if len(votes) < self.config.done_quorum:
            return Outcome(index, Verdict.PENDING)
        self._end(index, target, Verdict.ORDER_ENDED)
        return Outcome(index, Verdict.APPLIED, ended=target)

    def _not_live(self, index: int, target: str) -> Verdict | None:
        """Why ``target`` is no live order decision at ``index`` (None if it is one)."""
        ends, memory = self._ends, self.config.cancel_memory
        while ends and index - ends[0][0] >= memory:
            self._ended.pop(ends.popleft()[1], None)
        ended = self._ended.get(target)
        if ended is not None:
            return ended
        return None if target in self._live else Verdict.UNKNOWN_ORDER

    def _end(self, index: int, target: str, verdict: Verdict) -> None:
        """The order ``target`` is over: forget it, its pending cancel ballots and done votes;
        a later cancel or report of it reads ``verdict`` while it is remembered."""
        del self._live[target]
        self._ballots.pop(("cancel", target), None)
        self._done_votes.pop(target, None)
        self._ended[target] = verdict
        self._ends.append((index, target))

    def _pending(self, key: tuple, index: int) -> dict[str, _Ballot]:
        """The key's pending ballots, those older than the window dropped."""
        pending = self._ballots.setdefault(key, {})
        window = self.config.vote_window
        for agent in [a for a, b in pending.items() if index - b.index >= window]:
            del pending[agent]
        return pending

    def _decision(self, index: int, action: OrderIntent | CancelIntent,
                  ballots: list[_Ballot]) -> Decision:
        ident = decision_id(self.config.session, index)
        return Decision(ident, index, action, ident, tuple(sorted(b.agent for b in ballots)))


def vote_key(action: OrderIntent | CancelIntent) -> tuple:
    """What ballots are counted under: ``("order", symbol, side, tif)`` or ``("cancel", target
    decision id)``; an agent has at most one pending ballot per key."""
    if isinstance(action, OrderIntent):
        return ("order", action.symbol, action.side, action.tif)
    return ("cancel", action.decision_id)


def _heaviest_group(
    ballots: list[_Ballot], trigger: _Ballot, tolerance: int
) -> tuple[int, list[_Ballot]]:
    """The heaviest set of ballots containing ``trigger`` whose prices span <= ``tolerance``.

    Such a set is a price band ``[low, low + tolerance]`` holding the trigger's price; only bands
    starting at a ballot's price need trying. Ties go to the lowest band. O(n^2), n = ballots.
    """
    best_weight, best = -1, [trigger]
    starts = sorted({b.price for b in ballots if trigger.price - tolerance <= b.price})
    for low in (p for p in starts if p <= trigger.price):
        group = [b for b in ballots if low <= b.price <= low + tolerance]
        weight = sum(b.weight for b in group)
        if weight > best_weight:
            best_weight, best = weight, group
    return best_weight, best


def decide(
    log: Sequence[CommittedProposal] | Iterable[tuple[int, Proposal, bool]], config: RulesConfig
) -> list[Decision]:
    """Every decision the committed ``log`` yields under ``config``, in log order."""
    aggregator = Aggregator(config)
    return [decision for entry in log for decision in aggregator.push(entry)]


__all__ = [
    "Aggregator",
    "CommittedProposal",
    "Member",
    "Outcome",
    "Role",
    "RulesConfig",
    "Verdict",
    "base36",
    "decide",
    "decision_id",
    "decision_index",
]
