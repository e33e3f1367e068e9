"""A decision node's saved state: a restart from it ends where a full replay ends, and a state
that no longer fits its inputs, rules or code is refused (the node then replays everything)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import msgspec
import pytest

from agora.bench.echo_floor import free_port
from agora.core.clock import SimClock
from agora.core.enums import Side, TimeInForce
from agora.core.events import CancelIntent, OrderIntent
from agora.decision.consensus.messages import Committed
from agora.decision.rules import decision_id
from agora.decision.transport.record import Recorder
from agora.decision.venue_bridge import DecisionApplier
from agora.trading import node_state
from agora.trading.clients.fix_client import FixClient
from agora.trading.decision_node import DecisionNode, read_node_log
from agora.trading.node_log import NodeLog
from tests.decision.test_venue_bridge import AGENTS, CONFIG, FIRM, committed, proposal

SYMBOL = "AAPL"


def session_log(count: int, seed: int = 3) -> list[Committed]:
    """Orders and cancels of several agents, with duplicates, no-ops and abandoned entries."""
    rng, seqs, orders, log = random.Random(seed), dict.fromkeys(AGENTS, 0), [], []
    for index in range(1, count + 1):
        agent = rng.choice(AGENTS)
        seqs[agent] += 1
        roll = rng.random()
        if roll < 0.05:
            log.append(committed(index))  # a leader no-op
            continue
        if roll < 0.1 and log and log[-1].payload:
            log.append(committed(index, log[-1].payload))  # a duplicate
            continue
        if roll < 0.4 and orders:
            action = CancelIntent(orders.pop(rng.randrange(len(orders))))
        else:
            side = rng.choice((Side.BUY, Side.SELL))
            action = OrderIntent(SYMBOL, side, 100, 1_000_000 + rng.randrange(-50, 50) * 100,
                                 TimeInForce.DAY)
            orders.append(decision_id(CONFIG.session, index))
        log.append(committed(index, proposal(agent, seqs[agent], action),
                             abandoned=rng.random() < 0.05))
    return log


def record(path: Path, items: list[Committed]) -> None:
    """Append ``items`` to the committed record as one incarnation of the replica would."""
    recorder = Recorder(path, 0)
    recorder.start(0)
    for item in items:
        recorder.committed(item, 0)
    recorder.flush()
    recorder.close()


def report(directory: Path, ids: list[str]) -> None:
    """Reports naming ``ids`` in venue.log, as a node's session would have logged them."""
    log = NodeLog(directory / "venue.log", SimClock())
    for ident in ids:
        log.write("report", id=ident, kind="NEW")
    log.close()


def node(directory: Path, *, state_every: int = 1, config=CONFIG) -> DecisionNode:
    client = FixClient("127.0.0.1", free_port(), "N0", store_dir=directory / "fix")
    return DecisionNode(DecisionApplier(config, FIRM, hold_cancels=False), client, directory,
                        state_every=state_every)


def close(n: DecisionNode) -> None:
    n.state_every = 0  # closing here must not save over the state under test
    asyncio.run(n.close())


def saved_then_more(directory: Path, log: list[Committed], cut: int) -> None:
    """A node that applied ``log[:cut]`` and saw reports of some of it saved its state; then
    its replica recorded the rest and more reports came, some for decisions beyond its log."""
    record(directory / "committed.log", log[:cut])
    first_ids = [decision_id(CONFIG.session, i) for i in range(1, cut, 3)]
    report(directory, first_ids)
    first = node(directory)
    first.save_state()
    close(first)
    record(directory / "committed.log", log[cut:])
    later = range(max(1, cut - 20), len(log) + 9, 4)  # some answered, some beyond the log
    report(directory, [decision_id(CONFIG.session, i) for i in later])


def state_of(n: DecisionNode) -> tuple:
    a = n.applier
    return (a.state(), dict(a.aggregator.counts), list(n.pending.items()), n._ahead)


@pytest.mark.parametrize("cut", [1, 57, 300])
def test_a_restart_from_the_saved_state_ends_where_a_full_replay_ends(tmp_path, cut):
    log = session_log(400)
    saved_then_more(tmp_path, log, cut)
    restarted = node(tmp_path)  # from the saved state
    assert [e.detail for e in read_node_log(tmp_path / "venue.log")
            if e.event == "state"][-1] == "loaded"
    replayed = node(tmp_path, state_every=0)  # everything, as without a saved state
    assert state_of(restarted) == state_of(replayed)
    assert replayed.applier.applied_index == 400 and restarted.pending  # not vacuous
    more = session_log(460, seed=3)[400:]  # and both go on alike
    decided = [[o.command for item in more for o in n._decide(item)]
               for n in (restarted, replayed)]
    assert decided[0] == decided[1] and decided[0]
    assert state_of(restarted) == state_of(replayed)
    close(restarted)
    close(replayed)


def _refused(directory: Path, why: str, **kwargs) -> None:
    n = node(directory, **kwargs)
    lines = [e.detail for e in read_node_log(directory / "venue.log") if e.event == "state"]
    assert why in lines[-1], lines[-1]
    full = node(directory, state_every=0, config=kwargs.get("config", CONFIG))
    assert state_of(n) == state_of(full)  # replayed from the start instead
    close(n)
    close(full)


def test_a_record_cut_below_the_saved_length_refuses_the_state(tmp_path):
    saved_then_more(tmp_path, session_log(120), 100)
    path = tmp_path / "committed.log"
    with open(path, "r+b") as f:  # the replica's record lost its tail and was rewritten
        f.truncate(path.stat().st_size // 3)
    _refused(tmp_path, "committed.log no longer holds what it read")


def test_a_venue_log_rewritten_refuses_the_state(tmp_path):
    saved_then_more(tmp_path, session_log(120), 100)
    (tmp_path / "venue.log").write_bytes(b"")
    _refused(tmp_path, "venue.log no longer holds what it read")


def test_other_rules_or_damage_refuse_the_state(tmp_path):
    saved_then_more(tmp_path, session_log(120), 100)
    _refused(tmp_path, "other rules", config=msgspec.structs.replace(CONFIG, vote_window=9))
    state = tmp_path / "node.state"
    data = bytearray(state.read_bytes())
    data[-5] ^= 0xFF
    state.write_bytes(bytes(data))
    _refused(tmp_path, "payload is damaged")
    state.write_bytes(b"\x03\x00")
    _refused(tmp_path, "header does not decode")


def test_other_code_refuses_the_state(tmp_path, monkeypatch):
    saved_then_more(tmp_path, session_log(60), 50)
    monkeypatch.setattr(node_state, "_code", lambda: b"another build")
    _refused(tmp_path, "saved by other code")


def test_the_node_saves_every_so_many_entries_between_the_replicas_steps(tmp_path):
    log = session_log(30)

    async def main() -> DecisionNode:
        n = node(tmp_path, state_every=10)
        for item in log:
            n.on_committed(item)
            await asyncio.sleep(0)  # the replica's next step comes after the saving callback
        return n

    n = asyncio.run(main())
    saved = [e.index for e in read_node_log(tmp_path / "venue.log") if e.detail == "saved"]
    assert saved == [10, 20, 30]
    close(n)


def test_a_node_whose_entry_failed_to_apply_saves_nothing(tmp_path):
    n = node(tmp_path, state_every=1_000)
    n.on_committed(session_log(3)[0])
    with pytest.raises(ValueError, match="a gap"):
        n.on_committed(session_log(3)[2])  # index 3 after 1: the applier refuses a gap
    n.save_state()
    assert not (tmp_path / "node.state").exists()
    n.state_every = 0
    asyncio.run(n.close())
