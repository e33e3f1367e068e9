"""The checker can fail: each property, violated on purpose with hand-made outputs."""

from __future__ import annotations

from agora.decision.consensus import Committed, Reply
from agora.decision.sim import Checker


def checker() -> Checker:
    c = Checker()
    c.on_submit(1, 1, b"a", 0)
    c.on_submit(1, 2, b"b", 5)
    c.on_submit(2, 1, b"c", 0)
    for replica in range(3):
        c.on_start(replica, 0)
    return c


def kinds(c: Checker) -> list[str]:
    return [failure.split(":")[0] for failure in c.failures]


def test_a_clean_history_passes_and_converges():
    c = checker()
    log = [Committed(1, 0, 1, 1, b"a", False), Committed(2, 0, 0, 0, b"", False),
           Committed(3, 1, 1, 2, b"b", True), Committed(4, 1, 2, 1, b"c", False)]
    for replica in range(3):
        for item in log:
            c.on_committed(replica, item)
    c.on_reply(Reply(9, 0, 1, 1, 2, 3, True))
    assert c.ok and c.converged(3, clients_busy=False)
    assert not c.converged(3, clients_busy=True)
    assert c.deadline_figures() == (1, 1)


def test_each_violation_is_reported():
    c = checker()
    c.on_committed(0, Committed(1, 0, 1, 1, b"a", False))
    c.on_committed(1, Committed(1, 0, 2, 1, b"c", False))  # agreement
    c.on_committed(0, Committed(3, 0, 2, 1, b"c", False))  # order: skipped index 2
    c.on_committed(2, Committed(1, 0, 1, 1, b"a", False))
    c.on_committed(2, Committed(2, 0, 1, 1, b"a", False))  # integrity: (1, 1) again
    c.on_committed(1, Committed(4, 0, 3, 1, b"z", False))  # validity: never submitted
    c.on_committed(1, Committed(5, 0, 2, 1, b"C", False))  # validity: payload changed
    c.on_committed(1, Committed(6, 0, 0, 0, b"x", False))  # validity: no-op with payload
    c.on_committed(1, Committed(7, 0, 2, 1, b"c", True))  # deadline: no budget, abandoned
    c.on_reply(Reply(9, 0, 0, 2, 1, 1, False))  # reply: index 1 holds client 1's request
    assert {"agreement", "order", "integrity", "validity", "deadline", "reply"} <= set(kinds(c))


def test_a_reply_ahead_of_every_commit_is_checked_when_its_index_commits():
    c = checker()
    early = Reply(9, 1, 0, 1, 1, 1, False)  # a backup acknowledgement, before any Committed
    c.on_reply(early)
    assert c.ok and c.unconfirmed() == [early]
    c.on_committed(0, Committed(1, 0, 1, 1, b"a", False))
    assert c.ok and c.unconfirmed() == []
    wrong = Reply(9, 1, 0, 2, 1, 2, False)  # names index 2 for client 2 ...
    c.on_reply(wrong)
    c.on_committed(0, Committed(2, 0, 1, 2, b"b", False))  # ... which holds client 1's
    assert kinds(c) == ["reply"]


def test_a_reply_whose_index_never_commits_blocks_convergence():
    c = checker()
    c.on_reply(Reply(9, 1, 0, 2, 1, 99, False))
    assert not c.converged(3, clients_busy=False)
    assert "index nobody committed" in c.liveness_report(3) and "index=99" in c.liveness_report(3)


def test_liveness_report_names_what_is_missing():
    c = checker()
    c.on_committed(0, Committed(1, 0, 1, 1, b"a", False))
    assert not c.converged(3, clients_busy=False)
    report = c.liveness_report(3)
    assert "(1, 2)" in report and "replicas behind" in report
