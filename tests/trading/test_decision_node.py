"""The decision node without the replica: committed entries in, FIX to an in-process venue.

Pins the paths the process test reaches only by timing: a venue that is not up yet (errors with
backoff, then everything sent on logon), a second session of the participant whose copies are
refused as duplicates, and a restarted node that re-sends exactly what it never saw answered.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from agora.bench.echo_floor import free_port
from agora.core.enums import CancelReason, RejectReason
from agora.core.events import OrderAccepted, OrderCancelled, OrderRejected
from agora.decision.bft.auth import Keyring
from agora.decision.bft.keys import KeyFileError, load_keyring, make_cluster
from agora.decision.rules import Member, Role
from agora.decision.signing import AgentKey
from agora.decision.transport.record import Recorder
from agora.decision.venue_bridge import DecisionApplier
from agora.protocols.fix44 import enums as fx
from agora.protocols.fix44.messages import ExecutionReport
from agora.trading.clients.fix_client import FixClient
from agora.trading.decision_node import (
    DecisionNode,
    NodeEvent,
    agents_keyring,
    check_done_quorum,
    read_node_log,
    run,
)
from tests.decision.test_venue_bridge import CONFIG as RULES
from tests.decision.test_venue_bridge import FIRM, hand_log
from tests.e2e.test_fix_gateway import Venue

VENUE = """
[venue]
directory = "{directory}"
fsync = "none"

[[symbols]]
symbol = "AAPL"
reference_price = "100.00"

[[participants]]
participant = "FIRM1"
username = "n0"
password = "pw"
fix_comp_id = "NODE0"

[[participants]]
participant = "FIRM1"
username = "n1"
password = "pw"
fix_comp_id = "NODE1"
"""
DECIDED = {"VB1", "VB3", "VB7"}  # hand_log: two orders and a cancel of VB1


def node(tmp_path: Path, name: str, port: int) -> DecisionNode:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    client = FixClient("127.0.0.1", port, name.upper(), store_dir=directory / "fix",
                       timer_interval_s=0.05)
    return DecisionNode(DecisionApplier(RULES, FIRM, hold_cancels=False), client, directory,
                        retry_min_s=0.02, retry_max_s=0.1)


def log(n: DecisionNode, event: str) -> list[NodeEvent]:
    return [e for e in read_node_log(n.log.path) if e.event == event]


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def venue_events(venue: Venue) -> list:
    assert venue.core is not None
    return [e for _seq, events in venue.core.history for e in events
            if getattr(e, "participant", None) == FIRM]


def test_unreachable_venue_then_every_decision_once_and_copies_refused(tmp_path):
    async def main() -> tuple[list, DecisionNode, DecisionNode]:
        port = free_port()
        first = node(tmp_path, "node0", port)
        task = asyncio.create_task(first.run())
        for item in hand_log():
            first.on_committed(item)
        await until(lambda: len(log(first, "error")) >= 3)  # retried, and said so each time
        assert log(first, "sent") == [] and {e.id for e in log(first, "decided")} == DECIDED
        venue = Venue(tmp_path, VENUE)
        await venue.open(port)
        try:
            await until(lambda: not first.pending)  # every command answered
            second = node(tmp_path, "node1", port)
            task2 = asyncio.create_task(second.run())
            await until(lambda: second.client.logged_on)
            for item in hand_log():
                second.on_committed(item)
            await until(lambda: not second.pending)
            await first.close(task)
            await second.close(task2)
            return venue_events(venue), first, second
        finally:
            await venue.close()

    events, first, second = asyncio.run(asyncio.wait_for(main(), 20))
    assert [e.client_order_id for e in events if isinstance(e, OrderAccepted)] == ["VB1", "VB3"]
    refused = [(e.client_order_id, e.reason) for e in events if isinstance(e, OrderRejected)]
    assert refused == [(k, RejectReason.DUPLICATE_CLIENT_ORDER_ID) for k in ("VB1", "VB3")]
    user_cancels = [e for e in events
                    if isinstance(e, OrderCancelled) and e.reason is CancelReason.USER]
    assert len(user_cancels) == 1
    assert all(e.detail.startswith(f"no session with venue 127.0.0.1:{first.client.port} (")
               and "retrying in" in e.detail for e in log(first, "error"))
    assert [(e.id, e.detail) for e in log(first, "sent")] == [
        ("VB1", "resend"), ("VB3", "resend"), ("VB7", "resend")]  # in log order, on logon
    assert [e.detail for e in log(second, "sent")] == ["", "", ""]  # live: sent at once
    second_reports = {(e.id, e.kind) for e in log(second, "report")}
    assert {("VB1", "REJECTED"), ("VB1", "NEW"), ("VB7", "CANCEL_REJECT TOO_LATE_TO_CANCEL")} \
        <= second_reports


def test_restart_resends_only_what_was_never_answered(tmp_path):
    directory = tmp_path / "node0"
    directory.mkdir()
    recorder = Recorder(directory / "committed.log", 0)  # what the replica recorded, then died
    recorder.start(0)
    for item in hand_log():
        recorder.committed(item, 0)
    recorder.close()

    async def incarnation(venue: Venue, unanswered: set[str]) -> DecisionNode:
        assert venue.gateway is not None
        n = node(tmp_path, "node0", venue.gateway.port)
        # rebuilt from the committed record, less what venue.log says was answered
        assert set(n.pending) == unanswered
        task = asyncio.create_task(n.run())
        await until(lambda: not n.pending)
        await asyncio.sleep(0.2)  # time for a wrong extra send to show
        await n.close(task)
        return n

    async def main() -> tuple[list, list[int]]:
        venue = Venue(tmp_path, VENUE)
        await venue.open()
        try:
            first = await incarnation(venue, DECIDED)
            sent = [len(log(first, "sent"))]
            again = await incarnation(venue, set())  # everything answered: nothing to send
            sent.append(len(log(again, "sent")) - sent[0])
            return venue_events(venue), sent
        finally:
            await venue.close()

    events, sent = asyncio.run(asyncio.wait_for(main(), 20))
    assert sent == [3, 0]
    assert [e.client_order_id for e in events if isinstance(e, OrderAccepted)] == ["VB1", "VB3"]
    assert not [e for e in events if isinstance(e, OrderRejected)]


def test_venue_restart_decisions_made_meanwhile_are_sent_on_reconnect(tmp_path):
    async def main() -> tuple[list, DecisionNode]:
        venue = Venue(tmp_path, VENUE)
        port = await venue.open()
        n = node(tmp_path, "node0", port)
        task = asyncio.create_task(n.run())
        try:
            await until(lambda: n.client.logged_on)
            n.on_committed(hand_log()[0])
            await until(lambda: "VB1" not in n.pending)
            await venue.close()  # Logout to every session; the journal and FIX stores remain
            await until(lambda: len(log(n, "error")) >= 2)
            for item in hand_log()[1:]:
                n.on_committed(item)  # decided while the venue is down: VB3, VB7
            await venue.open(port)
            await until(lambda: not n.pending)
            await n.close(task)
            return venue_events(venue), n
        finally:
            await venue.close()

    events, n = asyncio.run(asyncio.wait_for(main(), 20))
    assert [e.client_order_id for e in events if isinstance(e, OrderAccepted)] == ["VB1", "VB3"]
    assert not [e for e in events if isinstance(e, OrderRejected)]
    assert [e.event for e in read_node_log(n.log.path)].count("disconnected") == 1
    assert [(e.id, e.detail) for e in log(n, "sent")] == [
        ("VB1", ""), ("VB3", "resend"), ("VB7", "resend")]


def report(cl_ord_id: str, exec_type: fx.ExecType = fx.ExecType.NEW) -> ExecutionReport:
    return ExecutionReport(order_id="1", exec_id="1", exec_type=exec_type,
                           ord_status=fx.OrdStatus.NEW, side=fx.Side.BUY, leaves_qty=100,
                           cum_qty=0, avg_px=0, cl_ord_id=cl_ord_id)


def test_the_node_keeps_what_is_open_not_what_was_answered(tmp_path):
    """No venue: reports handed in as its session would. A command answered before its node
    decided it is not pending; answered commands and a cancelled order leave nothing behind;
    reports of other sessions' ids or of ids the log passed are not kept."""
    n = node(tmp_path, "node0", free_port())
    entries = hand_log()
    n._on_report(report("VB3"))  # a drop copy of another node's VB3, ahead of this log
    n._on_report(report("XX9"))  # another session's order on the account: not ours
    n._on_report(report("VB6"))  # index 6: an undecodable entry, decides nothing
    for item in entries[:6]:
        n.on_committed(item)
    assert list(n.pending) == ["VB1"] and n.applier._orders.keys() == {"VB1", "VB3"}
    assert n._ahead == {}  # VB3 taken, VB6 passed by the log, XX9 never kept
    n.on_committed(entries[6])  # the cancel of VB1
    assert list(n.pending) == ["VB1", "VB7"] and n.pending["VB7"].order.client_order_id == "VB1"
    assert n.applier._orders.keys() == {"VB3"}  # VB1's cancel is decided: nothing more to cancel it
    for cl_ord_id in ("VB1", "VB7", "VB1"):  # a late fill's report of VB1 too
        n._on_report(report(cl_ord_id))
    assert n.pending == {} and n._ahead == {}
    assert {e.id for e in log(n, "decided")} == DECIDED  # every decision recorded
    assert {e.id for e in log(n, "report")} == {"VB1", "VB3", "VB6", "VB7", "XX9"}
    n.log.close()
    n.client.close_store()


def test_agents_in_byzantine_mode_need_a_client_key_file_holding_their_ids(tmp_path):
    make_cluster(tmp_path, 4, [(100, 131)])
    replica = load_keyring(tmp_path / "replica-0.json", replica=0)
    bare = argparse.Namespace(client_key_file=None)
    with pytest.raises(ValueError, match=r"need --client-key-file: .* client ids 100-115"):
        agents_keyring(bare, replica, 100)
    shared = Keyring(b"a development secret", 4)
    assert agents_keyring(bare, shared, 100) is shared  # the secret holds every key
    with_file = argparse.Namespace(client_key_file=tmp_path / "clients-100-131.json")
    assert agents_keyring(with_file, replica, 116).pair_key(-131, 2)
    with pytest.raises(KeyFileError, match="holds clients 100-131, not 132"):
        agents_keyring(with_file, replica, 117)


@pytest.mark.parametrize(("option", "why"), [
    (["--state-every", "-1"], "--state-every must be >= 0"),
    (["--checkpoint-every", "-5"], "--checkpoint-every and --snapshot-every must be >= 0"),
])
def test_the_process_refuses_negative_counts(tmp_path, capsys, option, why):
    argv = ["--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--dir",
            str(tmp_path), "--rules", str(tmp_path / "rules.json"), "--participant", FIRM,
            "--venue", "127.0.0.1:9", "--comp-id", "NODE0", *option]
    with pytest.raises(SystemExit) as exit_:
        run(argv)
    assert exit_.value.code == 2 and why in capsys.readouterr().err


def test_byzantine_mode_with_reporters_needs_a_done_quorum_above_f():
    reporters = {name: Member(Role.REPORT, AgentKey.generate(f"dn:{name}").public_bytes)
                 for name in ("rep0", "rep1")}
    rules = msgspec.structs.replace(RULES, members=RULES.members | reporters)
    check_done_quorum(rules, "cft", 4)  # crash faults: no reporter lies, one report suffices
    with pytest.raises(ValueError, match=r"2 reporters: .* needs at least f \+ 1 = 2"):
        check_done_quorum(rules, "bft", 4)
    check_done_quorum(msgspec.structs.replace(rules, done_quorum=2), "bft", 4)
    check_done_quorum(RULES, "bft", 7)  # no reporters: nothing can end an order


def test_the_process_refuses_a_malformed_rules_file_saying_why(tmp_path, capsys):
    (tmp_path / "rules.json").write_text('{"members": {}, "session": "far too long"}')
    argv = ["--id", "0", "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--dir",
            str(tmp_path), "--rules", str(tmp_path / "rules.json"), "--participant", FIRM,
            "--venue", "127.0.0.1:9", "--comp-id", "NODE0"]
    assert run(argv) == 2
    assert "rules file" in capsys.readouterr().err
