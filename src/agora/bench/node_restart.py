"""A decision node after a long session: ``python -m agora.bench.node_restart``.

Writes a committed record of ``entries`` signed proposals, as a market-making cluster makes them
(per order and its cancel by a strategy agent, two fair values of a view agent), then measures a
decision node (``agora.trading.decision_node``, in this process; its FIX session is never
opened, the venue plays no part):

- its restart: rebuilding its state by replaying the whole record (the rules check every
  signature again), and from the state it saved (``trading/node_state.py``); medians of
  ``runs``, each a fresh node on the same directory;
- saving that state, with every order and cancel unanswered (the worst case: a venue down);
- its memory per order-and-cancel pair once reports answer them: ``tracemalloc``'s growth over
  the second half of a record of ``memory_entries``, traced from the start (a block allocated
  before tracing starts is not subtracted when freed, so a bounded cache that turns over would
  look like growth). The first half fills the bounded signature cache, and the rules here
  remember a cancel for 8,192 log positions (``cancel_memory``; 65,536 by default), so the
  second half measures the steady state;
- the same per order that fills instead of being cancelled: with a reporter agent's
  ``OrderDone`` in the log after each (the rules and the applier forget the order), and without
  (the log never hears of the fill: a fair value takes the cancel's place).

``python -m agora.bench.node_restart [--entries N] [--runs R] [--memory-entries M]``; ends with
``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import msgspec

from agora.core.enums import Side, TimeInForce
from agora.core.events import CancelIntent, FairValue, OrderDone, OrderIntent, Proposal
from agora.decision.consensus.messages import Committed
from agora.decision.rules import Member, Role, RulesConfig, decision_id
from agora.decision.signing import AgentKey, sign
from agora.decision.transport.record import Recorder
from agora.decision.venue_bridge import DecisionApplier
from agora.protocols.fix44 import enums as fx
from agora.protocols.fix44.messages import ExecutionReport
from agora.trading.clients.fix_client import FixClient
from agora.trading.decision_node import DecisionNode

PARTICIPANT, SYMBOL, SESSION = "FIRM1", "AAPL", "NR"
STRATEGY, VIEW = AgentKey.generate("node-restart:s1"), AgentKey.generate("node-restart:v1")
REPORTER = AgentKey.generate("node-restart:r1")
RULES = RulesConfig({"s1": Member(Role.STRATEGY, STRATEGY.public_bytes),
                     "v1": Member(Role.VIEW, VIEW.public_bytes),
                     "r1": Member(Role.REPORT, REPORTER.public_bytes)}, session=SESSION,
                    collar_bps=None, cancel_memory=8_192)


def session(entries: int, end: str = "cancel") -> list[Committed]:
    """``entries`` committed entries: per group of four, two fair values, an order, and its
    ``end``: its cancel, a reporter's OrderDone (``"done"``: it filled) or nothing the log hears
    of (``"unreported"``: a third fair value instead)."""
    out: list[Committed] = []

    def add(proposal: Proposal, key: AgentKey) -> None:
        index = len(out) + 1
        out.append(Committed(index, 0, 1, index, msgspec.msgpack.encode(sign(proposal, key)),
                             False))

    for k in range(entries // 4):
        for _ in range(2):
            add(Proposal("v1", len(out) + 1, 0, FairValue(SYMBOL, 1_000_000 + k % 9, 10)), VIEW)
        add(Proposal("s1", len(out) + 1, 0, OrderIntent(SYMBOL, Side.BUY, 100,
                                                        990_000 - k % 50 * 100,
                                                        TimeInForce.DAY)), STRATEGY)
        order = decision_id(SESSION, len(out))
        if end == "cancel":
            add(Proposal("s1", len(out) + 1, 0, CancelIntent(order)), STRATEGY)
        elif end == "done":
            add(Proposal("r1", len(out) + 1, 0, OrderDone(order, "filled")), REPORTER)
        else:
            add(Proposal("v1", len(out) + 1, 0, FairValue(SYMBOL, 1_000_000, 10)), VIEW)
    return out


def node(directory: Path, state_every: int = 0) -> DecisionNode:
    client = FixClient("127.0.0.1", 9, "N0", store_dir=directory / "fix")
    return DecisionNode(DecisionApplier(RULES, PARTICIPANT, hold_cancels=False), client,
                        directory, state_every=state_every)


def close(n: DecisionNode) -> None:
    n.log.close()
    n.client.close_store()


def timed_restart(directory: Path, state_every: int) -> tuple[float, DecisionNode]:
    start = time.perf_counter()
    n = node(directory, state_every)
    return time.perf_counter() - start, n


def answered(cl_ord_id: str) -> ExecutionReport:
    return ExecutionReport(order_id="1", exec_id="1", exec_type=fx.ExecType.NEW,
                           ord_status=fx.OrdStatus.NEW, side=fx.Side.BUY, leaves_qty=100,
                           cum_qty=0, avg_px=0, cl_ord_id=cl_ord_id)


def memory_per_order(directory: Path, items: list[Committed]) -> float:
    """Bytes the node keeps per order (a group of four entries, see ``session``), each command
    answered once decided."""
    n = node(directory)

    def play(part: list[Committed]) -> None:
        for item in part:
            n.on_committed(item)
            n._on_report(answered(decision_id(SESSION, item.index)))

    half = len(items) // 2
    tracemalloc.start()
    try:
        play(items[:half])
        before = tracemalloc.get_traced_memory()[0]
        play(items[half:])
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    close(n)
    return grown / ((len(items) - half) / 4)


def measure(entries: int = 40_000, runs: int = 3, memory_entries: int = 80_000) -> dict:
    items = session(entries)
    with tempfile.TemporaryDirectory(prefix="agora-node-restart-") as tmp:
        directory = Path(tmp) / "node"
        directory.mkdir()
        recorder = Recorder(directory / "committed.log", 0)
        recorder.start(0)
        for item in items:
            recorder.committed(item, 0)
        recorder.flush()
        recorder.close()
        replays, loads, saves = [], [], []
        for _ in range(runs):
            seconds, n = timed_restart(directory, 0)
            replays.append(seconds)
            close(n)
        n = node(directory, state_every=entries)
        for _ in range(runs):
            start = time.perf_counter()
            n.save_state()
            saves.append(time.perf_counter() - start)
        pending, size = len(n.pending), (directory / "node.state").stat().st_size
        close(n)
        for _ in range(runs):
            seconds, n = timed_restart(directory, entries)
            assert n.applier.applied_index == len(items) and len(n.pending) == pending
            loads.append(seconds)
            close(n)
        per_order = {}
        for end in ("cancel", "done", "unreported"):
            memory_dir = Path(tmp) / f"memory-{end}"
            memory_dir.mkdir()
            per_order[end] = memory_per_order(memory_dir, session(memory_entries, end))
    replay = statistics.median(replays)
    return {
        "entries": len(items), "runs": runs,
        "restart_replay_s": round(replay, 3),
        "replay_us_per_entry": round(replay / len(items) * 1e6, 1),
        "restart_from_state_s": round(statistics.median(loads), 4),
        "state_bytes": size, "state_pending_commands": pending,
        "save_state_ms": round(statistics.median(saves) * 1e3, 1),
        "memory_entries": memory_entries,
        "memory_bytes_per_answered_pair": round(per_order["cancel"], 1),
        "memory_bytes_per_filled_order_reported": round(per_order["done"], 1),
        "memory_bytes_per_filled_order_unreported": round(per_order["unreported"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agora.bench.node_restart",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-entries", type=int, default=80_000)
    args = parser.parse_args(argv)
    if args.entries < 4 or args.memory_entries < 8 or args.runs < 1:
        parser.error("--entries must be >= 4, --memory-entries >= 8 (one order and cancel per "
                     "four entries, measured over the second half) and --runs >= 1")
    r = measure(args.entries, args.runs, args.memory_entries)
    print(f"decision node after {r['entries']:,} committed entries (medians of {r['runs']}):")
    print(f"  restart replaying the record: {r['restart_replay_s']:.2f} s "
          f"({r['replay_us_per_entry']} us per entry)")
    print(f"  restart from its saved state ({r['state_bytes']:,} bytes, "
          f"{r['state_pending_commands']:,} unanswered commands): "
          f"{r['restart_from_state_s'] * 1e3:.1f} ms")
    print(f"  saving that state: {r['save_state_ms']} ms")
    print(f"  memory per answered order and cancel, over the second half of "
          f"{r['memory_entries']:,} entries: {r['memory_bytes_per_answered_pair']} bytes")
    print(f"  memory per filled order, the same way: "
          f"{r['memory_bytes_per_filled_order_reported']} bytes with a reporter's OrderDone, "
          f"{r['memory_bytes_per_filled_order_unreported']} without")
    print("RESULT " + json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
