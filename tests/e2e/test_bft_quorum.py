"""A lying node's FIX session against a venue with an order quorum, end to end: the venue process
with ``order_quorum = 2`` for the cluster's participant, four Byzantine-mode decision nodes
(``test_bft_decision_nodes``' scenario: quotes, a fill, the requote), and node 3's FIX identity
taken by a rogue client before node 3 can log on (node 3's replica is SIGKILLed once the first
quotes are accepted, so node 3 as a whole is the one faulty node of f = 1).

The rogue races the others: it keeps an altered copy (another side, quantity and price) of every
ClOrdID the cluster will use held at the venue, sends an order nobody decided, and tries to
cancel every decided order it sees accepted. Checks: every decided order and cancel reached the
venue exactly once *with the decided content* (``check`` plus the content), nothing else was
placed or cancelled (its lone cancels are still held, or timed out, when the run ends), the
rogue's altered copies were refused as the quorum's duplicates and its lone order timed out (the
run waits for that: the scenario itself can end within one quorum timeout of the rogue's first
copies), and the venue logged the evidence naming NODE3.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading

import pytest

from agora.core.enums import Side
from agora.core.events import OrderAccepted
from agora.decision.rules import base36
from agora.protocols.fix44.enums import ExecType, OrdRejReason
from agora.protocols.fix44.messages import ExecutionReport
from agora.trading.clients.fix_client import FixClient, FixClientError
from tests.e2e import test_agent_nodes as agent_nodes
from tests.e2e.test_agent_nodes import SESSION, SYMBOL, check
from tests.e2e.test_bft_decision_nodes import bft_run
from tests.e2e.test_decision_venue import FIRM

pytestmark = pytest.mark.e2e
ROGUE_ID = "NODE3"
IDS = [SESSION + base36(i) for i in range(1, 41)]  # the cluster's next ClOrdIDs
ALTERED = dict(side=Side.BUY, qty=7_777, price=2_000_000)  # a big buy at 200.00
TIMEOUT_MS = 1_000
NO_QUORUM = "no 2 sessions sent this request"  # the refusal of a copy that found no quorum
RESEND_S = 0.1  # the rogue re-holds its expired copies this often


class Rogue:
    """A FIX client on its own thread and loop, logged on as NODE3 before the nodes start."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(10), "the rogue could not log on"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert self.errors.empty(), repr(self.errors.get())

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by close()
            self.errors.put(exc)
            self.ready.set()

    async def _main(self) -> None:
        client = FixClient("127.0.0.1", self.port, ROGUE_ID, timer_interval_s=0.05)
        await client.connect(timeout=5)
        self.ready.set()
        with contextlib.suppress(FixClientError):  # the venue stopping ends the rogue too
            await self._race(client)
        with contextlib.suppress(Exception):
            await client.logout(timeout=1.0)

    async def _race(self, client: FixClient) -> None:
        settled: set[str] = set()  # ClOrdIDs the venue has accepted or taken
        cancelled: set[str] = set()
        client.new_order("ROGUE1", SYMBOL, **ALTERED)  # an order nobody decided
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            for cl in IDS:
                if cl not in settled:  # held, or re-held once its copy timed out
                    client.new_order(cl, SYMBOL, **ALTERED)
            # every RESEND_S however busy the session: waiting for a quiet 0.1 s instead, a
            # rogue whose first copies expired before the nodes' orders came (a slow start
            # under load) was kept busy by the copies of their reports and re-held nothing
            # until they had been placed (the test failed ~1 in 3 beside two CPU burners)
            until = loop.time() + RESEND_S
            with contextlib.suppress(TimeoutError):
                while (left := until - loop.time()) > 0:
                    msg = await client.receive(timeout=left)
                    self.received.append(msg)
                    cl = getattr(msg, "cl_ord_id", None)
                    if isinstance(msg, ExecutionReport) and cl in IDS and (
                            msg.exec_type is not ExecType.REJECTED
                            or msg.ord_rej_reason is OrdRejReason.DUPLICATE_ORDER):
                        settled.add(cl)
                    if (isinstance(msg, ExecutionReport) and msg.exec_type is ExecType.NEW
                            and cl not in cancelled and msg.side is not None):
                        cancelled.add(cl)  # try to cancel a decided order, alone
                        client.cancel(cl, f"Z{cl}", SYMBOL,
                                      Side.BUY if msg.side.value == "1" else Side.SELL)


def venue_output(proc) -> list[str]:
    """The venue process's output lines (stderr included: its log), once it has exited."""
    lines = list(proc.seen)
    with contextlib.suppress(queue.Empty):
        while True:
            lines.append(proc.lines.get(timeout=1))
    return lines


def texts(messages, kind) -> list[str]:
    return [m.text or "" for m in messages if isinstance(m, kind)]


def test_a_lying_node_cannot_place_alter_or_cancel_an_order_with_a_venue_quorum(
        tmp_path, monkeypatch):
    rogue = Rogue()
    real_config, real_start = agent_nodes.venue_config, agent_nodes.start_venue

    def venue_config(path, n):
        config, fix_port, itch_port, retransmit_port = real_config(path, n)
        text = config.read_text()
        text = text.replace('fix_comp_id = "NODE', 'order_quorum = 2\nfix_comp_id = "NODE')
        text = text.replace("heartbeat_ms = 50", f"heartbeat_ms = 50\nquorum_timeout_ms = "
                                                 f"{TIMEOUT_MS}")
        config.write_text(text)
        rogue.port = fix_port
        return config, fix_port, itch_port, retransmit_port

    def start_venue(config):
        proc = real_start(config)
        rogue.start()  # logged on as NODE3 before any node process is started
        return proc

    async def lone_copies_expired() -> None:
        """The scenario can end within TIMEOUT_MS of the rogue's first copies (its lone order
        ROGUE1 among them): keep the venue up until their refusals came, a few timeouts at most
        (if they never come, the assertion below names what did)."""
        for _ in range(5 * TIMEOUT_MS // 50):
            if any(NO_QUORUM in t for t in texts(list(rogue.received), ExecutionReport)):
                return
            await asyncio.sleep(0.05)

    monkeypatch.setattr(agent_nodes, "venue_config", venue_config)
    monkeypatch.setattr(agent_nodes, "start_venue", start_venue)
    try:
        result = bft_run(tmp_path, kill=3, before_stop=lone_copies_expired)
    finally:
        rogue.close()
    assert result["live"] == [0, 1, 2]
    check(result)  # each decided order and cancel exactly once; nothing undecided placed
    replay, venue = result["replay"], result["venue"]
    placed = {e.client_order_id: e for e in venue.events
              if isinstance(e, OrderAccepted) and e.participant == FIRM}
    assert set(placed) == set(replay.orders)
    for cl, order in replay.orders.items():  # with the decided content, not the rogue's
        got = placed[cl]
        assert (got.side, got.qty, got.price) == (order.side, order.qty, order.price), cl
        assert got.qty != ALTERED["qty"]
    # the rogue was refused: altered copies as the quorum's duplicates, lone requests timed out
    reports = texts(rogue.received, ExecutionReport)
    output = venue_output(result["venue_proc"])
    why = f"{reports}; the venue's quorum log: {[line for line in output if 'quorum' in line]}"
    assert any("2 sessions agreed on different content" in t for t in reports), why
    assert any(NO_QUORUM in t for t in reports), why
    assert not [m for m in rogue.received if isinstance(m, ExecutionReport)
                and m.cl_ord_id.startswith("Z")], "a lone cancel was executed"
    # and the venue logged the evidence, naming the session
    evidence = [line for line in output if "faulty node" in line]
    assert evidence and all(f"session {ROGUE_ID}" in line for line in evidence), evidence
