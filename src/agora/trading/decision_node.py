"""A decision node: one replica of the decision cluster that carries its decisions to the venue.

``python -m agora.trading.decision_node`` takes every replica option of
``agora.decision.transport.replica_main`` plus ``--rules`` (a JSON ``RulesConfig``), the venue's
FIX endpoint and this node's own FIX ``--comp-id``. It runs the replica unchanged and, on every
committed entry, a :class:`~agora.decision.venue_bridge.DecisionApplier` whose commands it sends
over its own FIX 4.4 session: a NewOrderSingle with ClOrdID = the decision's
``client_order_id``, a cancel decision as an OrderCancelRequest with OrigClOrdID = the target
order's ``client_order_id`` (the venue resolves it, so cancels are never held).

Design notes
------------
* **Every replica sends** (no sender election, no failover gap): the venue accepts the first
  copy of each ClOrdID and refuses the others (``DUPLICATE_CLIENT_ORDER_ID``, per participant,
  across its sessions); a second copy of a cancel finds the order done (CxlRejReason 0).
* **No decision lost.** A decided command is *resolved* once any report names its ClOrdID
  (accepted, rejected, filled, cancelled, including the drop copies another replica's copy
  causes). On every logon the node re-sends, in log order, every decided command not resolved;
  the venue's dedup makes that safe. A restarted node rebuilds its decisions by replaying its
  replica's ``committed.log`` from the start (the rules need every entry) and its resolved set
  from ``venue.log``; its FIX sequence numbers persist in ``--dir/fix`` so the venue's reports
  made while it was down arrive as PossDup resends.
* ``venue.log`` in ``--dir`` is a JSON line per fact (:class:`NodeEvent`): ``decided``,
  ``sent`` (``resend`` in ``detail`` for a re-send), ``report``, ``connected``,
  ``disconnected``, ``error``. Written to the OS at once (a SIGKILL loses nothing written); a
  torn last line is skipped when read.
* An unreachable venue is retried with exponential backoff (``--retry-min-ms`` to
  ``--retry-max-ms``); each failure is an ``error`` line and a line on stderr, never silent.

Limitations: only LIMIT orders and full cancels (what the rules decide); a command the venue
never answers (a lost connection before it was read) waits for the next logon to be re-sent;
``venue.log`` grows without bound, like the committed log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec

from agora.core.clock import Clock, WallClock
from agora.core.events import NewOrder
from agora.decision.consensus.messages import Committed
from agora.decision.rules import RulesConfig
from agora.decision.transport import replica_main
from agora.decision.transport.udp import read_records
from agora.decision.venue_bridge import DecisionApplier, Outgoing
from agora.protocols.fix44.messages import (
    BusinessMessageReject,
    ExecutionReport,
    FixStruct,
    OrderCancelReject,
)
from agora.trading.clients.fix_client import FixClient, FixClientError


class NodeEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of ``venue.log``."""

    event: str
    at_ns: int
    id: str = ""  # a ClOrdID
    kind: str = ""  # new / cancel for decided and sent; ExecType name or reject kind for reports
    index: int = 0  # the committed log index of a decision
    detail: str = ""


_event_decoder = msgspec.json.Decoder(NodeEvent)


def read_node_log(path: Path) -> list[NodeEvent]:
    """Every whole line of a node's ``venue.log`` (a torn last line is skipped)."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        with contextlib.suppress(msgspec.DecodeError):
            events.append(_event_decoder.decode(line))
    return events


class NodeLog:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._file = open(path, "ab")  # noqa: SIM115 - lives with the node

    def write(self, event: str, **fields: object) -> None:
        line = NodeEvent(event, self.clock.now_ns(), **fields)  # type: ignore[arg-type]
        self._file.write(msgspec.json.encode(line) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def report_key(msg: FixStruct) -> tuple[str, str, str] | None:
    """(ClOrdID, kind, text) of a report that resolves a command; None for anything else."""
    if isinstance(msg, ExecutionReport):
        return msg.cl_ord_id or "", msg.exec_type.name, msg.text or ""
    if isinstance(msg, OrderCancelReject):
        reason = msg.cxl_rej_reason.name if msg.cxl_rej_reason is not None else ""
        return msg.cl_ord_id, f"CANCEL_REJECT {reason}".strip(), msg.text or ""
    if isinstance(msg, BusinessMessageReject):
        return msg.business_reject_ref_id or "", "BUSINESS_REJECT", msg.text or ""
    return None


class DecisionNode:
    """The applier, what was decided and resolved, and the FIX session (see the module notes)."""

    def __init__(self, applier: DecisionApplier, client: FixClient, directory: Path, *,
                 clock: Clock | None = None, retry_min_s: float = 0.05,
                 retry_max_s: float = 1.0) -> None:
        self.applier = applier
        self.client = client
        self.clock = clock or WallClock()
        self.retry_min_s, self.retry_max_s = retry_min_s, retry_max_s
        self.decided: dict[str, Outgoing] = {}  # ClOrdID -> command, in log order
        self.resolved = {e.id for e in read_node_log(directory / "venue.log")
                         if e.event == "report"}
        for record in read_records(directory / "committed.log"):  # the rules need every entry
            if record.item is not None:
                self._decide(record.item)
        self.log = NodeLog(directory / "venue.log", self.clock)
        self.closing = False

    def _decide(self, item: Committed) -> list[Outgoing]:
        out = self.applier.apply(item)
        for o in out:
            self.decided[o.command.client_order_id] = o
        return out

    def unresolved(self) -> Iterator[Outgoing]:
        return (o for key, o in self.decided.items() if key not in self.resolved)

    # ------------------------------------------------------------------ replica -> venue

    def on_committed(self, item: Committed) -> None:
        """The replica's hook: decide, log, and send at once when logged on."""
        for o in self._decide(item):
            self.log.write("decided", id=o.command.client_order_id, kind=_kind(o),
                           index=o.decision.log_index)
            if self.client.logged_on:
                self._send(o, "")

    def _send(self, o: Outgoing, detail: str) -> None:
        command = o.command
        try:
            if isinstance(command, NewOrder):
                self.client.new_order(command.client_order_id, command.symbol, command.side,
                                      command.qty, command.price, order_type=command.order_type,
                                      tif=command.tif)
            else:
                target = self.decided[o.target].command
                self.client.cancel(o.target, command.client_order_id, target.symbol,
                                   target.side)
        except FixClientError as exc:  # lost just now: the next logon re-sends it
            self.log.write("error", id=command.client_order_id, detail=f"not sent: {exc}")
            return
        self.log.write("sent", id=command.client_order_id, kind=_kind(o), detail=detail)

    # ------------------------------------------------------------------ the session

    async def run(self) -> None:
        """Keep the session up (backoff), re-send on every logon, record every report."""
        delay = self.retry_min_s
        while not self.closing:
            if not self.client.logged_on:
                if not await self._connect(delay):
                    delay = min(delay * 2, self.retry_max_s)
                    continue
                delay = self.retry_min_s
            try:
                msg = await self.client.receive(timeout=0.1)
            except TimeoutError:
                if not self.client.logged_on:
                    self.log.write("disconnected")
                continue
            self._on_report(msg)

    async def _connect(self, delay: float) -> bool:
        client = self.client
        try:
            await client.connect(timeout=2.0)
        except (FixClientError, OSError, TimeoutError) as exc:
            text = (f"no session with venue {client.host}:{client.port} "
                    f"({exc or type(exc).__name__}); retrying in {delay:.2f} s")
            self.log.write("error", detail=text)
            print(f"decision node: {text}", file=sys.stderr, flush=True)
            await asyncio.sleep(delay)
            return False
        self.log.write("connected")
        for o in list(self.unresolved()):
            self._send(o, "resend")
        return True

    def _on_report(self, msg: FixStruct) -> None:
        key = report_key(msg)
        if key is None:
            self.log.write("error", detail=f"venue sent {type(msg).__name__}: {msg}")
            return
        cl_ord_id, kind, text = key
        if cl_ord_id:
            self.resolved.add(cl_ord_id)
        self.log.write("report", id=cl_ord_id, kind=kind, detail=text)

    async def close(self, task: asyncio.Task | None = None) -> None:
        self.closing = True
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(FixClientError, OSError):
            await self.client.logout(timeout=1.0)
        self.client.close_store()
        self.log.close()


def _kind(o: Outgoing) -> str:
    return "new" if isinstance(o.command, NewOrder) else "cancel"


# ---------------------------------------------------------------- the process


def build_parser() -> argparse.ArgumentParser:
    p = replica_main.build_parser()
    p.prog = "decision_node"
    p.description = __doc__.splitlines()[0]
    p.add_argument("--rules", type=Path, required=True, help="RulesConfig as JSON")
    p.add_argument("--session", default="", help="override the rules' session (id prefix)")
    p.add_argument("--participant", required=True)
    p.add_argument("--venue", required=True, help="host:port of the venue's FIX gateway")
    p.add_argument("--comp-id", required=True, help="this node's FIX SenderCompID")
    p.add_argument("--target-comp-id", default="AGORA")
    p.add_argument("--retry-min-ms", type=int, default=50)
    p.add_argument("--retry-max-ms", type=int, default=1_000)
    return p


def open_node(args: argparse.Namespace) -> DecisionNode:
    rules = msgspec.json.decode(args.rules.read_bytes(), type=RulesConfig)
    if args.session:
        rules = msgspec.structs.replace(rules, session=args.session)
    (host, port), = replica_main.parse_peers(args.venue)
    args.dir.mkdir(parents=True, exist_ok=True)
    client = FixClient(host, port, args.comp_id, args.target_comp_id,
                       store_dir=args.dir / "fix", heartbeat_s=5)
    applier = DecisionApplier(rules, args.participant, hold_cancels=False)
    return DecisionNode(applier, client, args.dir, retry_min_s=args.retry_min_ms / 1000,
                        retry_max_s=args.retry_max_ms / 1000)


async def serve(args: argparse.Namespace) -> int:
    node = open_node(args)
    task = asyncio.create_task(node.run())
    try:
        return await replica_main.main(args, on_committed=node.on_committed)
    finally:
        await node.close(task)


def run(argv: list[str] | None = None) -> int:
    return replica_main.start(serve(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(run())
