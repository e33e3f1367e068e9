"""Aggregation rules: table tests (one line per log entry and its outcome) and properties.

A table row is ``(agent, action, flags, verdict, expect)``: ``expect`` is the decided action for
a strategy entry, the symbol's committed fair price after a view entry, ``("ended", id)`` after
a report that ended an order, else None. Flags:
``unsigned``, ``forged`` (signed by a key outside the roster), ``tampered`` (signed, then the
price or budget changed), ``abandoned``, ``dup`` (re-commit the previous entry's proposal),
``seq=N`` (explicit sequence number), ``old`` (a lower seq than the agent's last, as if reordered);
comma-separated.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.core.enums import Side, TimeInForce
from agora.core.events import (
    CancelIntent,
    Decision,
    FairValue,
    OrderDone,
    OrderIntent,
    Proposal,
    Veto,
)
from agora.decision import rules
from agora.decision.rules import (
    Aggregator,
    CommittedProposal,
    Member,
    Role,
    RulesConfig,
    Verdict,
    base36,
    decide,
    decision_id,
    decision_index,
)
from agora.decision.signing import AgentKey, sign, verify

V = Verdict
P = 1_000_000  # $100.0000 in Price(4)
ROLES = {"v1": Role.VIEW, "v2": Role.VIEW, "v3": Role.VIEW, "r1": Role.RISK, "r2": Role.RISK}
ROLES |= {"s1": Role.STRATEGY, "s2": Role.STRATEGY, "s3": Role.STRATEGY}
ROLES |= {"duo": Role.STRATEGY, "solo": Role.STRATEGY}
ROLES |= {"d1": Role.REPORT, "d2": Role.REPORT, "d3": Role.REPORT}
WEIGHTS = {"duo": 2, "solo": 3}
KEYS = {name: AgentKey.generate(f"test-rules-{name}") for name in [*ROLES, "mallory"]}
MEMBERS = {n: Member(r, KEYS[n].public_bytes, WEIGHTS.get(n, 1)) for n, r in ROLES.items()}
PUBLIC = {n: m.public_key for n, m in MEMBERS.items()}


def config(**overrides) -> RulesConfig:
    base = dict(session="T", vote_threshold=1, collar_bps=None, vote_window=4, price_tolerance=100)
    return RulesConfig(MEMBERS, **(base | overrides))


def buy(price: int = P, qty: int = 100, sym: str = "AAA") -> OrderIntent:
    return OrderIntent(sym, Side.BUY, qty, price, TimeInForce.DAY)


def sell(price: int = P, qty: int = 100, sym: str = "AAA") -> OrderIntent:
    return OrderIntent(sym, Side.SELL, qty, price, TimeInForce.DAY)


def fv(price: int = P, unc: int = 100, sym: str = "AAA") -> FairValue:
    return FairValue(sym, price, unc)


def veto(sym: str = "AAA", on: bool = True, side: Side | None = None) -> Veto:
    return Veto(sym, "limit", on, side)


def cancel(index: int) -> CancelIntent:
    return CancelIntent(decision_id("T", index))


def done(index: int) -> OrderDone:
    return OrderDone(decision_id("T", index), "filled")


class Log:
    """Builds a committed log the way agents and consensus would, with injected faults."""

    def __init__(self) -> None:
        self.entries: list[CommittedProposal] = []
        self.seq: Counter[str] = Counter()
        self.invalid: set[int] = set()  # indices that must never yield a decision

    def add(self, agent: str, action, flags: str = "") -> CommittedProposal:
        index = len(self.entries) + 1
        options = dict(f.split("=") if "=" in f else (f, "") for f in flags.split(",") if f)
        if "dup" in options:
            proposal = self.entries[-1].proposal
        else:
            self.seq[agent] += 2  # gaps, so that "old" can be reordered without repeating
            seq = int(
                options.get("seq", self.seq[agent] - 3 if "old" in options else self.seq[agent])
            )
            key = KEYS["mallory" if "forged" in options else agent]
            proposal = sign(Proposal(agent, seq, 1_000_000, action), key)
            if "unsigned" in options:
                proposal = msgspec.structs.replace(proposal, signature=b"")
            if "tampered" in options:
                proposal = msgspec.structs.replace(proposal, budget_ns=0)
        entry = CommittedProposal(index, proposal, "abandoned" in options)
        bad = {"unsigned", "forged", "tampered", "abandoned", "dup"} & options.keys()
        if bad or agent not in MEMBERS:
            self.invalid.add(index)
        self.entries.append(entry)
        return entry


def run_table(rows: list[tuple], cfg: RulesConfig) -> tuple[Aggregator, Log]:
    aggregator, log = Aggregator(cfg), Log()
    for row, (agent, action, flags, verdict, expect) in enumerate(rows, start=1):
        outcome = aggregator.apply(log.add(agent, action, flags))
        if outcome.decision is not None:
            d = outcome.decision
            assert d.log_index == row and d.decision_id == d.client_order_id == "T" + base36(row)
            got = d.action
        elif outcome.fair_value is not None:
            got = outcome.fair_value.price
        elif outcome.ended is not None:
            got = ("ended", outcome.ended)
        else:
            got = None
        assert (outcome.index, outcome.verdict, got) == (row, verdict, expect), f"row {row}"
    assert sum(aggregator.counts.values()) == len(rows)
    return aggregator, log


# ---------------------------------------------------------------- tables

VALIDITY = [
    ("s1", buy(), "", V.DECIDED, buy()),
    ("s1", buy(), "unsigned", V.UNSIGNED, None),
    ("s1", buy(), "forged", V.BAD_SIGNATURE, None),
    ("s1", buy(), "tampered", V.BAD_SIGNATURE, None),
    ("mallory", buy(), "", V.UNKNOWN_AGENT, None),
    ("s1", buy(), "abandoned", V.ABANDONED, None),
    ("s2", sell(), "", V.DECIDED, sell()),
    ("s2", None, "dup", V.DUPLICATE, None),
    ("s1", sell(), "forged,seq=50", V.BAD_SIGNATURE, None),  # cannot burn s1's seq 50
    ("s1", sell(), "seq=50", V.DECIDED, sell()),
    ("s1", sell(), "seq=50", V.DUPLICATE, None),  # same (agent, seq), different content
    ("v1", buy(), "", V.WRONG_ROLE, None),
    ("s1", fv(), "", V.WRONG_ROLE, None),
    ("s1", veto(), "", V.WRONG_ROLE, None),
    ("r1", fv(), "", V.WRONG_ROLE, None),
    ("d1", buy(), "", V.WRONG_ROLE, None),
    ("s1", done(1), "", V.WRONG_ROLE, None),
    ("s1", buy(qty=0), "", V.INVALID, None),
    ("s1", buy(price=0), "", V.INVALID, None),
    ("v1", fv(unc=-1), "", V.INVALID, None),
    ("v1", fv(price=0), "", V.INVALID, None),
    ("s1", buy(), "abandoned", V.ABANDONED, None),
    ("s1", None, "dup", V.DUPLICATE, None),  # given up: a later copy cannot revive it
    ("s2", sell(), "forged,abandoned", V.BAD_SIGNATURE, None),
]

FAIR_VALUE = [  # view_quorum=2, collar 500 bps
    ("s1", buy(), "", V.NO_FAIR_VALUE, None),
    ("v1", fv(P), "", V.APPLIED, None),  # below quorum: no committed fair value yet
    ("s1", buy(), "", V.NO_FAIR_VALUE, None),
    ("v2", fv(P + 10_000), "", V.APPLIED, P),  # lower median of two
    ("s1", buy(P + 50_000), "", V.DECIDED, buy(P + 50_000)),  # exactly 500 bps: allowed
    ("s1", buy(P + 50_001), "", V.COLLAR, None),
    ("s1", sell(P - 50_001), "", V.COLLAR, None),
    ("v3", fv(2 * P), "", V.APPLIED, P + 10_000),  # a liar moves it only among honest values
    ("s1", sell(P - 40_000), "", V.DECIDED, sell(P - 40_000)),  # 496 bps of 1_010_000
    ("v1", fv(P + 20_000), "seq=10", V.APPLIED, P + 20_000),
    ("v1", fv(P), "seq=5", V.STALE, None),  # older than v1's latest: ignored
    ("v2", fv(P + 30_000), "", V.APPLIED, P + 30_000),
]

VIEW_AGE = [  # view_max_age=3
    ("v1", fv(P), "", V.APPLIED, P),
    ("s1", buy(), "", V.DECIDED, buy()),
    ("s1", buy(), "", V.DECIDED, buy()),
    ("s1", buy(), "", V.NO_FAIR_VALUE, None),  # the view is 3 positions old: aged out
    ("v2", fv(P + 100), "", V.APPLIED, P + 100),
    ("s1", buy(), "", V.DECIDED, buy()),
]

VETO = [
    ("s1", buy(), "", V.DECIDED, buy()),
    ("r1", veto("AAA"), "", V.APPLIED, None),
    ("s1", buy(), "", V.VETOED, None),
    ("s1", buy(sym="BBB"), "", V.DECIDED, buy(sym="BBB")),
    ("s1", cancel(1), "", V.DECIDED, cancel(1)),  # cancels pass a veto
    ("r2", veto(""), "", V.APPLIED, None),  # every symbol
    ("s1", buy(sym="BBB"), "", V.VETOED, None),
    ("r1", veto("AAA", on=False), "", V.APPLIED, None),
    ("s1", buy(), "", V.VETOED, None),  # r2's all-symbol veto still holds
    ("r2", veto("", on=False), "", V.APPLIED, None),
    ("s1", buy(), "", V.DECIDED, buy()),
    ("r1", veto("AAA"), "seq=100", V.APPLIED, None),
    ("r1", veto("AAA", on=False), "seq=50", V.STALE, None),  # a reordered old lift
    ("s1", buy(), "", V.VETOED, None),
    ("r1", veto("AAA"), "seq=101", V.APPLIED, None),  # a repeat is harmless
    ("r1", veto("AAA", on=False), "seq=102", V.APPLIED, None),
    ("s1", buy(), "", V.DECIDED, buy()),
    ("s1", cancel(1), "", V.ALREADY_CANCELLED, None),
    ("s1", cancel(3), "", V.UNKNOWN_ORDER, None),  # entry 3 was vetoed: no order
]

VOTE = [  # threshold 2, tolerance 100, window 4
    ("s1", buy(P, 200), "", V.PENDING, None),
    ("s2", buy(P + 100, 100), "", V.DECIDED, buy(P, 100)),  # least aggressive, smallest
    ("s3", buy(P, 200), "", V.ABSORBED, None),  # a straggler for decision 2
    ("s3", buy(P), "", V.PENDING, None),  # s3 already counted for 2: a new round
    ("s1", buy(P + 200), "", V.PENDING, None),  # 200 from s3's price: not compatible
    ("s1", buy(P + 100), "", V.DECIDED, buy(P)),  # s1 revised its vote
    ("s2", sell(P), "", V.PENDING, None),
    ("s3", sell(P + 500), "", V.PENDING, None),
    ("solo", sell(P + 1000), "", V.DECIDED, sell(P + 1000)),  # weight 3 alone, as proposed
    ("s1", sell(P + 500), "", V.DECIDED, sell(P + 500)),  # with s3; highest sell price
    ("s2", sell(P + 500), "", V.ABSORBED, None),
    ("s1", buy(P + 5000), "seq=100", V.PENDING, None),
    ("s1", buy(P), "seq=99", V.STALE, None),  # older than s1's pending vote
    ("s2", buy(P + 5000), "", V.DECIDED, buy(P + 5000)),
    ("s1", buy(P), "seq=101", V.PENDING, None),
    ("v1", fv(), "", V.APPLIED, P),
    ("v1", fv(), "", V.APPLIED, P),
    ("v1", fv(), "", V.APPLIED, P),
    ("s2", buy(P), "", V.PENDING, None),  # s1's vote (row 15) is 4 positions old: expired
    ("duo", buy(P, sym="BBB"), "", V.DECIDED, buy(P, sym="BBB")),  # weight 2 alone
    ("r1", veto("CCC"), "", V.APPLIED, None),
    ("s1", buy(P, sym="CCC"), "", V.VETOED, None),
    ("s2", buy(P, sym="CCC"), "", V.VETOED, None),
    ("r1", veto("CCC", on=False), "", V.APPLIED, None),
    ("s1", buy(P, sym="CCC"), "", V.PENDING, None),  # votes before the veto do not count
]

HEAVY_GROUP = [  # threshold 3, tolerance 100
    ("s1", buy(P - 100), "", V.PENDING, None),
    ("s2", buy(P + 100), "", V.PENDING, None),
    ("duo", buy(P), "", V.DECIDED, buy(P - 100)),  # two bands weigh 3: the lowest wins
    ("s3", buy(P + 100), "", V.PENDING, None),  # outside the decided band: votes with s2
    ("s1", buy(P - 50), "", V.PENDING, None),  # s1 was counted for row 3: a new round
]

CANCEL = [  # threshold 2
    ("solo", buy(), "", V.DECIDED, buy()),
    ("s1", cancel(1), "", V.PENDING, None),
    ("s2", cancel(1), "", V.DECIDED, cancel(1)),
    ("s3", cancel(1), "", V.ALREADY_CANCELLED, None),
    ("s1", cancel(2), "", V.UNKNOWN_ORDER, None),  # entry 2 is a vote, not an order
    ("solo", cancel(77), "", V.UNKNOWN_ORDER, None),
]

CANCEL_MEMORY = [  # threshold 1, cancel_memory=3: a cancel is remembered while fewer than 3 after
    ("solo", buy(), "", V.DECIDED, buy()),
    ("solo", buy(P - 100), "", V.DECIDED, buy(P - 100)),
    ("s1", cancel(1), "", V.DECIDED, cancel(1)),
    ("s2", cancel(2), "", V.DECIDED, cancel(2)),
    ("s2", cancel(1), "", V.ALREADY_CANCELLED, None),  # 2 after its cancel: remembered
    ("s3", cancel(1), "", V.UNKNOWN_ORDER, None),  # 3 after: forgotten, refused all the same
    ("s3", cancel(2), "", V.UNKNOWN_ORDER, None),
]

DONE = [  # threshold 2, done_quorum 2
    ("solo", buy(), "", V.DECIDED, buy()),
    ("solo", buy(P - 100), "", V.DECIDED, buy(P - 100)),
    ("d1", done(1), "", V.PENDING, None),
    ("d1", done(1), "", V.PENDING, None),  # one reporter twice is still one
    ("d2", done(1), "", V.APPLIED, ("ended", "T1")),
    ("d3", done(1), "", V.ORDER_ENDED, None),  # a late report of the same end
    ("s1", cancel(1), "", V.ORDER_ENDED, None),  # nothing left to cancel
    ("s1", cancel(2), "", V.PENDING, None),
    ("d1", done(2), "", V.PENDING, None),
    ("d2", done(2), "", V.APPLIED, ("ended", "T2")),  # s1's pending cancel ballot goes too
    ("s2", cancel(2), "", V.ORDER_ENDED, None),
    ("d1", done(77), "", V.UNKNOWN_ORDER, None),
    ("solo", buy(), "", V.DECIDED, buy()),
    ("d1", done(13), "", V.PENDING, None),
    ("solo", cancel(13), "", V.DECIDED, cancel(13)),  # its pending report goes with it
    ("d2", done(13), "", V.ALREADY_CANCELLED, None),
    ("d1", done(3), "", V.UNKNOWN_ORDER, None),  # entry 3 is a report, not an order
    ("d1", done(8), "", V.UNKNOWN_ORDER, None),  # entry 8 is a cancel ballot
]

DONE_MEMORY = [  # done_quorum 1, cancel_memory 2
    ("solo", buy(), "", V.DECIDED, buy()),
    ("d1", done(1), "", V.APPLIED, ("ended", "T1")),
    ("s1", cancel(1), "", V.ORDER_ENDED, None),  # 1 after its end: remembered
    ("d2", done(1), "", V.UNKNOWN_ORDER, None),  # 2 after: forgotten, refused all the same
]

SEQ_WINDOW = [  # seq_window=4: the spent seqs of an agent are its highest and the 3 below
    ("solo", buy(), "seq=100", V.DECIDED, buy()),
    ("solo", sell(), "seq=97", V.DECIDED, sell()),  # overtaken by fewer than 4: still fresh
    ("solo", buy(), "seq=97", V.DUPLICATE, None),
    ("solo", buy(), "seq=96", V.TOO_OLD, None),  # 4 below the highest: cannot tell, refused
    ("solo", buy(), "seq=95,abandoned", V.ABANDONED, None),  # abandoned says more
    ("solo", buy(), "seq=96,forged", V.BAD_SIGNATURE, None),
    ("solo", sell(), "seq=101", V.DECIDED, sell()),
    ("s1", buy(), "seq=1", V.DECIDED, buy()),  # one window per agent
    ("solo", buy(), f"seq={1 << 62}", V.DECIDED, buy()),  # a huge jump forgets the window
    ("solo", buy(), "seq=101", V.TOO_OLD, None),
    ("solo", buy(), f"seq={(1 << 62) - 1}", V.DECIDED, buy()),
    ("solo", buy(), f"seq={(1 << 62) - 1}", V.DUPLICATE, None),
]

TABLES = {
    "validity": (VALIDITY, {}),
    "fair_value": (FAIR_VALUE, {"view_quorum": 2, "collar_bps": 500}),
    "view_age": (VIEW_AGE, {"view_max_age": 3, "collar_bps": 500}),
    "veto": (VETO, {}),
    "vote": (VOTE, {"vote_threshold": 2}),
    "heavy_group": (HEAVY_GROUP, {"vote_threshold": 3}),
    "cancel": (CANCEL, {"vote_threshold": 2}),
    "seq_window": (SEQ_WINDOW, {"seq_window": 4}),
    "cancel_memory": (CANCEL_MEMORY, {"cancel_memory": 3}),
    "done": (DONE, {"vote_threshold": 2, "done_quorum": 2}),
    "done_memory": (DONE_MEMORY, {"cancel_memory": 2}),
}


@pytest.mark.parametrize("name", TABLES)
def test_table(name):
    rows, overrides = TABLES[name]
    _, log = run_table(rows, config(**overrides))
    assert decide(log.entries, config(**overrides)) == [
        o.decision for o in map(Aggregator(config(**overrides)).apply, log.entries) if o.decision
    ]


def test_a_decision_names_the_agents_whose_ballots_made_it():
    decided = {}
    for name in ("vote", "cancel"):
        rows, overrides = TABLES[name]
        aggregator, log = Aggregator(config(**overrides)), Log()
        for agent, action, flags, _, _ in rows:
            outcome = aggregator.apply(log.add(agent, action, flags))
            if outcome.decision is not None:
                decided[(name, outcome.index)] = outcome.decision.voters
    # the straggler absorbed at row 3 came after decision 2 was made: not among its voters
    assert [decided[("vote", i)] for i in (2, 6, 9, 10)] == [
        ("s1", "s2"), ("s1", "s3"), ("solo",), ("s1", "s3")]
    assert all(len(v) >= 1 and list(v) == sorted(v) for v in decided.values())


def test_invalid_entries_are_counted():
    aggregator, _ = run_table(VALIDITY, config())
    counts = aggregator.counts
    assert (counts[V.UNSIGNED], counts[V.BAD_SIGNATURE], counts[V.UNKNOWN_AGENT]) == (1, 4, 1)
    assert (counts[V.DUPLICATE], counts[V.ABANDONED], counts[V.DECIDED]) == (3, 2, 3)


def test_fair_value_and_veto_queries_follow_the_log():
    aggregator, _ = run_table(FAIR_VALUE, config(view_quorum=2, collar_bps=500))
    assert aggregator.fair_value("AAA") == FairValue("AAA", P + 30_000, 100)
    assert aggregator.fair_value("ZZZ") is None
    aggregator, _ = run_table(VETO[:6], config())
    assert aggregator.vetoed("AAA") and aggregator.vetoed("ANY")


# ---------------------------------------------------------------- identifiers and config


def test_ids_are_base36_of_the_index_and_fit_ouch_clordid():
    assert [base36(n) for n in (0, 9, 10, 35, 36, 1295, 1296)] == [
        "0", "9", "A", "Z", "10", "ZZ", "100"
    ]  # fmt: skip
    assert decision_id("AGORA1", 36**8 - 1) == "AGORA1ZZZZZZZZ"
    with pytest.raises(ValueError, match="14-character"):
        decision_id("AGORA1", 36**8)
    with pytest.raises(ValueError):
        base36(-1)


@given(index=st.integers(0, 36**8 - 1), session=st.sampled_from(["T", "AG", "AGORA1"]))
def test_decision_index_inverts_decision_id(index, session):
    assert decision_index(session, decision_id(session, index)) == index


@pytest.mark.parametrize("ident", ["", "T", "X1", "T01", "Ta", "T-1", "T 1", "T1_0", "T+1", "tA"])
def test_decision_index_of_anything_else_is_none(ident):
    assert decision_index("T", ident) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"session": ""},
        {"session": "TOOLONG"},
        {"session": "A-B"},
        {"session": "ÄB"},
        {"vote_threshold": 0},
        {"vote_window": 0},
        {"view_quorum": 0},
        {"seq_window": 0},
        {"cancel_memory": 0},
        {"done_quorum": 0},
        {"done_quorum": 4},  # three reporters (d1-d3): no order could ever end
        {"price_tolerance": -1},
        {"view_max_age": -1},
        {"collar_bps": -5},
    ],
)
def test_config_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        config(**bad)


def test_config_refuses_negative_weights_and_encodes():
    with pytest.raises(ValueError, match="negative weight"):
        RulesConfig({"x": Member(Role.STRATEGY, b"k" * 32, -1)})
    cfg = config()
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(cfg), type=RulesConfig) == cfg


def test_log_indices_must_increase():
    aggregator, log = Aggregator(config()), Log()
    entry = log.add("s1", buy())
    aggregator.apply(entry)
    with pytest.raises(ValueError, match="not increasing"):
        aggregator.apply(entry)


# ---------------------------------------------------------------- properties

AGENTS = [*ROLES, "mallory"]
KINDS = ["buy"] * 4 + ["sell"] * 4 + ["cancel"] * 2 + ["fv"] * 3 + ["veto_on"] + ["veto_off"] * 4
KINDS += ["done"] * 2
BY_ROLE = {role: [n for n, r in ROLES.items() if r is role] for role in Role}
ROLE_OF_KIND = {"buy": Role.STRATEGY, "sell": Role.STRATEGY, "cancel": Role.STRATEGY}
ROLE_OF_KIND |= {"fv": Role.VIEW, "veto_on": Role.RISK, "veto_off": Role.RISK}
ROLE_OF_KIND |= {"done": Role.REPORT}
OFFSETS = [-60_000, -200, -100, 0, 0, 100, 200, 60_000]
FLAGS = [""] * 12 + ["old", "unsigned", "forged", "tampered", "abandoned", "dup"]
CONFIGS = [
    config(vote_threshold=2, collar_bps=500, view_quorum=2, vote_window=16),
    config(vote_threshold=3, collar_bps=None, vote_window=6, view_max_age=5, done_quorum=2),
    config(vote_threshold=1, collar_bps=300, price_tolerance=0),
    config(vote_threshold=2, collar_bps=None, seq_window=1, cancel_memory=3),  # "old": too old
]
SPEC_CHOICES = [
    KINDS,
    range(len(AGENTS)),  # which agent
    [True] * 9 + [False],  # True: an agent whose role may send this kind
    ["AAA", "AAA", "AAA", "BBB", ""],  # "" only matters for vetoes (all symbols); orders use AAA
    OFFSETS,
    [1, 2, 3],  # lots of 100
    FLAGS,
    range(1, 4),  # a cancel names the order entry this many order entries back
]
spec = st.tuples(*(st.sampled_from(list(choices)) for choices in SPEC_CHOICES))


def build_log(specs: list[tuple]) -> Log:
    log, orders = Log(), [1]
    for kind, pick, right_role, sym, offset, lots, flags, back in specs:
        names = BY_ROLE[ROLE_OF_KIND[kind]] if right_role else AGENTS
        agent, symbol = names[pick % len(names)], sym or "AAA"
        if kind == "buy":
            action = buy(P + offset, 100 * lots, symbol)
        elif kind == "sell":
            action = sell(P + offset, 100 * lots, symbol)
        elif kind == "cancel":
            action = cancel(orders[-min(back, len(orders))])
        elif kind == "done":
            action = done(orders[-min(back, len(orders))])
        elif kind == "fv":
            action = fv(P + offset // 10, 100, symbol)
        else:
            action = veto(sym, kind == "veto_on", (None, Side.BUY, Side.SELL)[back - 1])
        log.add(agent, action, flags if log.entries or flags != "dup" else "")
        if kind in ("buy", "sell"):
            orders.append(len(log.entries))
    return log


def test_generated_logs_exercise_every_rule():
    """The property tests below are not vacuous: their logs reach (almost) every verdict."""
    rng, seen = random.Random(5), Counter()
    for cfg in CONFIGS:
        for _ in range(20):
            log = build_log([tuple(rng.choice(list(c)) for c in SPEC_CHOICES) for _ in range(30)])
            aggregator = Aggregator(cfg)
            for entry in log.entries:
                aggregator.apply(entry)
            seen += aggregator.counts
    assert set(Verdict) - set(seen) <= {V.INVALID}  # invalid values: the validity table
    assert seen[V.DECIDED] >= 100


def encoded(decisions: list[Decision]) -> bytes:
    return msgspec.msgpack.encode(decisions)


def judged(log: Log, seq_window: int = 1 << 30):
    """``(index, proposal, valid)`` per entry, valid = authentic, in time, and a fresh seq of a
    member in its role (independent model: a set of every spent seq, and the highest seq per
    agent for the window)."""
    seen: set[tuple[str, int]] = set()
    high: dict[str, int] = {}
    for index, proposal, abandoned in log.entries:
        agent, seq = proposal.agent, proposal.seq
        authentic = verify(proposal, PUBLIC)
        too_old = agent in high and seq <= high[agent] - seq_window
        valid = authentic and not abandoned and (agent, seq) not in seen and not too_old
        if authentic:
            seen.add((agent, seq))
            high[agent] = max(high.get(agent, seq), seq)
        kind = {Veto: Role.RISK, OrderDone: Role.REPORT, FairValue: Role.VIEW}.get(
            type(proposal.action), Role.STRATEGY)
        yield index, proposal, valid and ROLES.get(agent) is kind


def veto_violations(log: Log, decisions: list[Decision], seq_window: int = 1 << 30) -> list[int]:
    """Indices where an order was decided while a veto covered its symbol and side."""
    decided = {d.log_index: d.action for d in decisions}
    state: dict[tuple[str, str, Side | None], tuple[int, bool]] = {}
    bad = []
    for index, proposal, valid in judged(log, seq_window):
        agent, action = proposal.agent, proposal.action
        if valid and isinstance(action, Veto):
            key = (agent, action.symbol, action.side)
            previous = state.get(key, (-1, False))
            if proposal.seq >= previous[0]:
                state[key] = (proposal.seq, action.active)
        order = decided.get(index)
        if isinstance(order, OrderIntent):
            active = {(sym, side) for (_, sym, side), (_, on) in state.items() if on}
            if any(sym in ("", order.symbol) and side in (None, order.side)
                   for sym, side in active):
                bad.append(index)
    return bad


def order_ends(log: Log, decisions: list[Decision], cfg: RulesConfig) -> tuple[list, list[int]]:
    """The ``(index, order id)`` where reports end a live order, and the indices of cancels
    decided for an order that is not live (never decided, cancelled, or ended)."""
    decided = {d.log_index: d.action for d in decisions}
    live: set[str] = set()
    votes: dict[str, set[str]] = {}
    ends, bad = [], []
    for index, proposal, valid in judged(log, cfg.seq_window):
        action = decided.get(index)
        if isinstance(action, OrderIntent):
            live.add(decision_id("T", index))
        elif isinstance(action, CancelIntent):
            if action.decision_id not in live:
                bad.append(index)
            live.discard(action.decision_id)
            votes.pop(action.decision_id, None)
        elif valid and isinstance(proposal.action, OrderDone):
            target = proposal.action.decision_id
            if target in live:
                votes.setdefault(target, set()).add(proposal.agent)
                if len(votes[target]) >= cfg.done_quorum:
                    live.discard(target)
                    ends.append((index, target))
    return ends, bad


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(spec, max_size=30), cfg=st.sampled_from(CONFIGS))
def test_same_log_same_decisions_byte_for_byte(specs, cfg):
    log = build_log(specs)
    first = encoded(decide(log.entries, cfg))
    assert encoded(decide(list(log.entries), cfg)) == first
    aggregator = Aggregator(cfg)
    assert encoded([d for e in log.entries for d in aggregator.push(e)]) == first


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(spec, max_size=25), cfg=st.sampled_from(CONFIGS))
def test_incremental_equals_batch_on_every_prefix(specs, cfg):
    log = build_log(specs)
    aggregator, so_far = Aggregator(cfg), []
    for k, entry in enumerate(log.entries, start=1):
        so_far += aggregator.push(entry)
        assert so_far == decide(log.entries[:k], cfg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(spec, max_size=40), cfg=st.sampled_from(CONFIGS))
def test_invariants_of_every_log(specs, cfg):
    log = build_log(specs)
    aggregator = Aggregator(cfg)
    decisions, ends = [], []
    for entry in log.entries:
        outcome = aggregator.apply(entry)
        if outcome.ended is not None:
            ends.append((entry.index, outcome.ended))
        d = outcome.decision
        assert (d is not None) == (outcome.verdict is V.DECIDED)
        if d is None:
            continue
        decisions.append(d)
        assert d.log_index == entry.index not in log.invalid  # never from a bad entry
        if isinstance(d.action, OrderIntent) and cfg.collar_bps is not None:
            fair = aggregator.fair_value(d.action.symbol)
            assert abs(d.action.price - fair.price) * 10_000 <= cfg.collar_bps * fair.price
    assert veto_violations(log, decisions, cfg.seq_window) == []  # a veto always wins
    # an order ends where the reports' quorum says, and is never cancelled after it ends
    assert order_ends(log, decisions, cfg) == (ends, [])
    ids = [d.client_order_id for d in decisions]
    assert len(set(ids)) == len(ids)  # unique
    assert all(len(i) <= 14 and i.isalnum() and i.isascii() for i in ids)
    assert [d.decision_id for d in decisions] == ids
    assert sum(aggregator.counts.values()) == len(log.entries)


# ---------------------------------------------------------------- the checkers can fail

VETOED_LOG = [("r1", veto("AAA"), ""), ("solo", buy(), ""), ("s1", buy(P, sym="BBB"), "")]


def test_a_one_sided_veto_blocks_that_side_only_and_lifts_on_its_own():
    log = Log()
    log.add("r1", veto(side=Side.BUY), "")  # at a long limit
    log.add("solo", buy(), "")  # vetoed
    log.add("solo", sell(), "")  # reduces the long: decided
    log.add("r1", veto(side=Side.SELL), "")  # now the short side too (a separate veto)
    log.add("r1", veto(on=False, side=Side.BUY), "")  # lifts the buy side only
    log.add("solo", sell(P + 100), "")  # vetoed
    log.add("solo", buy(P - 100), "")  # decided
    aggregator = Aggregator(config())
    verdicts = [aggregator.apply(entry).verdict for entry in log.entries]
    assert verdicts == [V.APPLIED, V.VETOED, V.DECIDED, V.APPLIED, V.APPLIED, V.VETOED,
                        V.DECIDED]
    assert aggregator.vetoed("AAA", Side.SELL) and not aggregator.vetoed("AAA", Side.BUY)
    assert aggregator.vetoed("AAA")  # either side
    assert veto_violations(log, decide(log.entries, config())) == []


def test_canary_a_rule_that_ignores_vetoes_is_caught(monkeypatch):
    log = Log()
    for agent, action, flags in VETOED_LOG:
        log.add(agent, action, flags)
    assert veto_violations(log, decide(log.entries, config())) == []
    monkeypatch.setattr(Aggregator, "vetoed", lambda self, symbol, side=None: False)
    assert veto_violations(log, decide(log.entries, config())) == [2]


def test_canary_a_rule_that_skips_signatures_is_caught(monkeypatch):
    log = Log()
    log.add("solo", buy(), "forged")
    log.add("solo", buy(), "unsigned")
    assert decide(log.entries, config()) == []
    monkeypatch.setattr(rules, "verify", lambda proposal, keys: True)
    assert [d.log_index for d in decide(log.entries, config())] == [1]  # log.invalid has it


def test_canary_a_rule_that_ignores_reports_is_caught(monkeypatch):
    log = Log()
    for agent, action in [("solo", buy()), ("d1", done(1)), ("solo", cancel(1))]:
        log.add(agent, action)
    cfg = config()
    assert order_ends(log, decide(log.entries, cfg), cfg) == ([(2, "T1")], [])
    monkeypatch.setattr(Aggregator, "_on_done",
                        lambda self, index, reporter, done: rules.Outcome(index, V.PENDING))
    assert order_ends(log, decide(log.entries, cfg), cfg) == ([(2, "T1")], [3])


# ---------------------------------------------------------------- across processes


def seeded_digest(seed: int, n: int = 300) -> str:
    """sha256 of the decisions of a seeded random log (for the cross-process test)."""
    rng = random.Random(seed)
    specs = [tuple(rng.choice(list(c)) for c in SPEC_CHOICES) for _ in range(n)]
    log = build_log(specs)
    blob = b"".join(encoded(decide(log.entries, cfg)) for cfg in CONFIGS)
    return hashlib.sha256(blob).hexdigest()


def test_decisions_are_identical_across_processes_and_hash_seeds():
    root = Path(__file__).resolve().parents[2]
    code = "from tests.decision.test_rules import seeded_digest; print(seeded_digest(11))"
    digests = {seeded_digest(11)}
    for hash_seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        digests.add(run.stdout.strip())
    assert len(digests) == 1
