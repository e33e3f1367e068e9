"""The order quorum's gate (pure) and its configuration: k copies of equal content, per-copy
timeouts, a session counting once, per-session bounds, parked requests; refused configs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agora.core.enums import Side
from agora.core.events import CancelOrder, NewOrder
from agora.exchange.venue.config import ConfigError, load_config
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.fix_gateway import FixGateway
from agora.exchange.venue.quorum import Copy, Held, QuorumGate, Reached, Refused
from tests.exchange.venue.test_config_core import write

MS = 1_000_000


def order(cl: str = "o1", price: int = 1_900_000, side: Side = Side.BUY) -> NewOrder:
    return NewOrder("C", cl, "AAPL", side, 100, price)


def copy(session: str, command) -> Copy:
    return Copy(session, f"request of {session}", command)


def gate(k: int = 2, max_held: int = 100) -> QuorumGate:
    return QuorumGate("C", k, 1000 * MS, max_held)


def test_k_equal_copies_from_distinct_sessions_reach_the_quorum_once():
    g = gate(k=3)
    assert g.offer(copy("N0", order()), 0) == Held()
    assert g.offer(copy("N1", order()), 1) == Held()
    verdict = g.offer(copy("N2", order()), 2)
    assert isinstance(verdict, Reached) and verdict.command == order()
    assert [c.session for c in verdict.agreeing] == ["N0", "N1", "N2"]
    assert verdict.conflicting == []
    assert not g.is_held("o1") and g.released["o1"] == order() and not g.load


def test_a_conflicting_copy_is_held_apart_and_named_when_the_other_content_wins():
    g = gate()
    assert g.offer(copy("N3", order(price=1)), 0) == Held()
    assert g.offer(copy("N0", order()), 0) == Held()  # different content: not a quorum
    verdict = g.offer(copy("N1", order()), 0)
    assert isinstance(verdict, Reached) and verdict.command == order()
    assert [(c.session, c.command.price) for c in verdict.conflicting] == [("N3", 1)]


def test_a_sessions_second_copy_counts_once_and_may_not_change():
    g = gate()
    assert g.offer(copy("N0", order()), 0) == Held()
    assert g.offer(copy("N0", order()), 1) == Held(absorbed=True)
    refused = g.offer(copy("N0", order(side=Side.SELL)), 2)
    assert isinstance(refused, Refused) and refused.conflict
    assert g.load["N0"] == 1 and g.is_held("o1")


def test_each_held_copy_expires_on_its_own_deadline():
    g = gate(k=3)
    g.offer(copy("N0", order()), 0)
    g.offer(copy("N1", order()), 600 * MS)
    due = g.expire(999 * MS)
    assert due.copies == [] and due.gone == []
    due = g.expire(1000 * MS)
    assert [(cl, c.session, disputed) for cl, c, disputed in due.copies] == [("o1", "N0", False)]
    assert due.gone == [] and g.is_held("o1")
    # N1 is still held: N2 and N3 can still make a quorum of 3 with it
    g.offer(copy("N2", order()), 1100 * MS)
    assert isinstance(g.offer(copy("N3", order()), 1200 * MS), Reached)


def test_expiry_says_when_the_copies_disagreed_and_releases_what_was_parked():
    g = gate()
    g.offer(copy("N0", order()), 0)
    g.offer(copy("N3", order(price=1)), 0)
    assert g.park("o1", "N0", "cancel of o1", 10) is None
    due = g.expire(1000 * MS)
    assert [(c.session, d) for _, c, d in due.copies] == [("N0", True), ("N3", True)]
    assert due.gone == ["o1"] and due.parked == [("N0", "cancel of o1")]
    assert not g.held and not g.parked and not g.load


def test_parked_requests_wait_for_their_target_or_their_own_timeout():
    g = gate()
    g.offer(copy("N0", order()), 500 * MS)
    g.park("o1", "N1", "first", 0)
    g.park("o1", "N2", "second", 400 * MS)
    assert g.expire(1000 * MS - 1).parked == []
    due = g.expire(1000 * MS)  # "first" timed out on its own; its target is still held
    assert due.parked == [("N1", "first")] and due.gone == [] and g.is_held("o1")
    due = g.expire(1500 * MS)  # N0's copy expires: the target left, "second" is due with it
    assert due.gone == ["o1"] and due.parked == [("N2", "second")]
    g.offer(copy("N0", order("o2")), 0)
    g.park("o2", "N1", "c2", 0)
    assert g.unpark("o2") == [("N1", "c2")] and g.load == {"N0": 1}


def test_held_requests_are_bounded_per_session():
    g = gate(max_held=2)
    g.offer(copy("N3", order("a")), 0)
    assert g.park("a", "N3", "x", 0) is None
    refused = g.offer(copy("N3", order("b")), 0)
    assert isinstance(refused, Refused) and "quorum_max_held" in refused.text
    assert not refused.conflict
    assert isinstance(g.park("a", "N3", "y", 0), Refused)
    # another session is not starved by N3's share
    assert g.offer(copy("N0", order("b")), 0) == Held()
    assert isinstance(g.offer(copy("N1", order("b")), 0), Reached)


def test_cancels_are_compared_by_their_command():
    g = gate()
    g.offer(copy("N0", CancelOrder("C", 7, 0, "c1")), 0)
    assert g.offer(copy("N1", CancelOrder("C", 8, 0, "c1")), 0) == Held()  # other order
    assert isinstance(g.offer(copy("N2", CancelOrder("C", 7, 0, "c1")), 0), Reached)


def test_released_ids_are_remembered_up_to_a_bound():
    g = QuorumGate("C", 1, MS, 10, remember=2)
    for cl in ("a", "b", "c"):
        assert isinstance(g.offer(copy("N0", order(cl)), 0), Reached)
    assert list(g.released) == ["b", "c"]


# ---------------------------------------------------------------- configuration

CLUSTER = """
[venue]
directory = "{{directory}}"
fsync = "none"
{venue}

[[symbols]]
symbol = "AAPL"
reference_price = "190.00"

[[participants]]
participant = "C"
username = "n0"
password = "p"
fix_comp_id = "N0"
order_quorum = {k0}

[[participants]]
participant = "C"
username = "n1"
password = "p"
fix_comp_id = "N1"
order_quorum = {k1}

[[participants]]
participant = "C"
username = "ouch-only"
password = "p"
order_quorum = {k1}

[[participants]]
participant = "F"
username = "f"
password = "p"
"""


def cluster(tmp_path, k0: int = 2, k1: int = 2, venue: str = ""):
    return write(tmp_path, CLUSTER.format(k0=k0, k1=k1, venue=venue))


def test_a_quorum_within_the_participants_fix_sessions_is_accepted(tmp_path):
    config = load_config(cluster(tmp_path))
    assert [p.order_quorum for p in config.participants] == [2, 2, 2, 1]
    assert config.venue.quorum_timeout_ms == 2000 and config.venue.quorum_max_held >= 1


@pytest.mark.parametrize(("k0", "k1", "venue", "message"), [
    (3, 3, "", "order_quorum 3 exceeds its 2 FIX sessions"),
    (2, 1, "", r"order_quorum differs between its sections \('n1'"),
    (0, 0, "", "order_quorum must be at least 1"),
    (-1, -1, "", "order_quorum must be at least 1"),
    (2, 2, "quorum_timeout_ms = 0", "quorum_timeout_ms must be at least 1"),
    (2, 2, "quorum_max_held = 0", "quorum_max_held must be at least 1"),
])
def test_a_quorum_that_cannot_work_is_refused_with_the_reason(tmp_path, k0, k1, venue, message):
    with pytest.raises(ConfigError, match=message):
        load_config(cluster(tmp_path, k0, k1, venue))


def test_a_participant_without_fix_sessions_keeps_the_default_quorum(tmp_path):
    config = load_config(cluster(tmp_path, 1, 1, "quorum_timeout_ms = 0"))  # unused: fine
    assert all(p.order_quorum == 1 for p in config.participants)


def test_a_failure_in_the_fix_gateways_timer_is_logged_and_the_timer_carries_on(
        tmp_path, caplog):
    """Quorum expiry and session timers share one task: an exception must not end it."""
    two_nodes = CLUSTER.format(venue="", k0=2, k1=2)
    config = load_config(write(tmp_path, two_nodes[:two_nodes.rindex("[[participants]]")]))
    core = VenueCore(config)

    async def scenario() -> int:
        gateway = FixGateway(core, config, tmp_path / "fix", timer_interval_s=0.005)
        calls = 0
        expire = gateway._expire

        def flaky(gate: QuorumGate) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("boom")
            expire(gate)

        gateway._expire = flaky  # type: ignore[method-assign]
        await gateway.start(host="127.0.0.1", port=0)
        for _ in range(200):
            await asyncio.sleep(0.005)
            if calls >= 3:
                break
        await gateway.close()
        return calls

    try:
        with caplog.at_level(logging.ERROR, "agora.exchange.venue.fix_gateway"):
            assert asyncio.run(scenario()) >= 3
    finally:
        core.close()
    assert "FIX quorum C: expiry failed" in caplog.text and "boom" in caplog.text
