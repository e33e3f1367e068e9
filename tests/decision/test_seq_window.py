"""The anti-replay window against a model that remembers every seq, and its memory bound."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.core.events import FairValue, Proposal
from agora.decision import rules
from agora.decision.rules import Aggregator, Member, Role, RulesConfig, Verdict
from agora.decision.seq_window import Seq, SeqWindow


def model(seqs: list[int], size: int) -> list[Seq]:
    """Every seq ever spent in a set; too old when ``size`` or more below the highest so far."""
    spent: set[int] = set()
    high: int | None = None
    out = []
    for seq in seqs:
        if high is not None and seq <= high - size:
            out.append(Seq.TOO_OLD)
        else:
            out.append(Seq.SPENT if seq in spent else Seq.FRESH)
            spent.add(seq)
        high = seq if high is None else max(high, seq)
    return out


# mostly counting up with reorders and repeats, sometimes a jump far ahead
steps = st.lists(st.one_of(st.integers(-40, 40), st.integers(1, 1 << 70)), max_size=200)


@settings(max_examples=300, deadline=None)
@given(steps=steps, size=st.sampled_from([1, 2, 3, 8, 64, 100]), start=st.integers(-5, 5))
def test_window_matches_the_model_that_remembers_everything(steps, size, start):
    seqs, seq = [], start
    for step in steps:
        seq += step
        seqs.append(seq)
    window = SeqWindow(size)
    assert [window.spend(s) for s in seqs] == model(seqs, size)
    assert 0 <= window.mask < 1 << size  # the whole memory: size bits


def test_a_window_needs_room_for_one_seq():
    with pytest.raises(ValueError, match="at least one"):
        SeqWindow(0)


def test_rules_memory_stays_flat_while_an_agent_proposes_for_ever(monkeypatch):
    """20,000 fair values of one view agent: the second 10,000 add no memory to the rules (a set
    of every spent pair grew 2 MB per 10,000). Signatures are not checked here: their
    verification cache (``signing.py``) is bounded on its own and would blur the figure."""
    monkeypatch.setattr(rules, "verify", lambda proposal, keys: True)
    config = RulesConfig({"v": Member(Role.VIEW, b"k" * 32)}, seq_window=1024)
    proposals = [Proposal("v", seq, 0, FairValue("AAA", 1_000_000 + seq % 7, 10), b"s" * 64)
                 for seq in range(1, 20_001)]
    aggregator = Aggregator(config)
    tracemalloc.start()
    try:
        for index, proposal in enumerate(proposals[:10_000], start=1):
            aggregator.apply((index, proposal, False))
        half = tracemalloc.get_traced_memory()[0]
        for index, proposal in enumerate(proposals[10_000:], start=10_001):
            aggregator.apply((index, proposal, False))
        grown = tracemalloc.get_traced_memory()[0] - half
    finally:
        tracemalloc.stop()
    assert aggregator.counts[Verdict.APPLIED] == 20_000
    assert grown < 16_384, grown
