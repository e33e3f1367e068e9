"""The deadline rule, as a table, and the leader's witness no-op on an idle cluster."""

from __future__ import annotations

import pytest

from agora.decision.consensus import Committed
from agora.decision.consensus.deadline import verdict, witness_needed
from agora.decision.consensus.messages import Entry, Prepare

from .test_consensus_replica import Net


def entry(index: int, view: int = 0, budget: int = 0, received: int = 0, stamp: int = 0,
          hint: int = 0, client: int = 1) -> Entry:
    return Entry(index, view, client, index, budget, received, stamp, hint, b"")


# one line per case: the log (after entry 1, which has budget 100 received at 1000), the limit
# the verdict may read up to, and the verdict
CASES = [
    ("witness on time", [entry(2, stamp=1_100, hint=1)], 2, False),
    ("witness late", [entry(2, stamp=1_101, hint=1)], 2, True),
    ("hint too low, later witness on time", [entry(2, stamp=1_050, hint=0),
                                             entry(3, stamp=1_090, hint=1)], 3, False),
    ("hint too low, later witness late", [entry(2, stamp=1_000, hint=0),
                                          entry(3, stamp=5_000, hint=2)], 3, True),
    ("view change before a witness", [entry(2, stamp=1_000, hint=0),
                                      entry(3, view=1, stamp=0, hint=2)], 3, True),
    ("witness not committed yet", [entry(2, stamp=1_100, hint=1)], 1, None),
    ("no witness yet", [entry(2, stamp=1_050, hint=0)], 2, None),
]


@pytest.mark.parametrize(("name", "tail", "limit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_verdict_table(name, tail, limit, expected):
    log = [entry(1, budget=100, received=1_000, stamp=1_000), *tail]
    assert verdict(log, 1, limit) is expected


def test_witness_needed_only_for_a_committed_or_older_view_deadline_entry():
    log = [entry(1, budget=100, received=0, stamp=0)]
    assert not witness_needed(log, 1, commit=0, view=0)  # not committed: a witness can't cover it
    assert witness_needed(log, 1, commit=1, view=0)
    assert witness_needed(log, 1, commit=0, view=1)  # any entry of the new view decides it
    log.append(entry(2, stamp=10, hint=1))
    assert not witness_needed(log, 1, commit=1, view=0)  # entry 2 will decide it
    assert not witness_needed([entry(1)], 1, commit=1, view=0)  # no budget, no verdict needed


def test_idle_leader_appends_a_witness_and_every_replica_agrees_on_the_verdict():
    net = Net(3)
    net.submit(1, 1, b"deadline", budget_ns=50_000_000)
    net.pump()
    net.tick(3_000_000)
    net.pump()
    expected = [Committed(1, 0, 1, 1, b"deadline", False), Committed(2, 0, 0, 0, b"", False)]
    assert all(net.committed[r] == expected for r in range(3))
    prepares = [m for _, dst, m in net.sent if isinstance(m, Prepare) and dst == 1]
    assert prepares[1].entries[0].commit_hint == 1  # the no-op witnesses entry 1


def test_a_request_committed_after_its_budget_is_abandoned_everywhere():
    net = Net(3)
    net.submit(1, 1, b"late", budget_ns=1_000)
    net.now += 5_000  # the acknowledgements reach the leader 5 us after receipt
    net.pump()
    net.tick(3_000_000)
    net.pump()
    for r in range(3):
        assert [(c.client_id, c.abandoned) for c in net.committed[r]] == [(1, True), (0, False)]
    assert [(reply.request_number, reply.abandoned) for reply in net.replies] == [(1, True)]
    assert net.replicas[0].stats.miss_rate == 1.0
