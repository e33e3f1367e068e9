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
  replica's ``committed.log``, a chunk at a time (the rules need every entry, each once), after
  reading which commands were answered from ``venue.log``: from the state it saved last
  (``--state-every`` applied entries, and on exit; :mod:`agora.trading.node_state`; with its
  hosted agents' state) when that still fits its files, else from the start; its FIX sequence
  numbers persist in ``--dir/fix`` so the venue's reports made while it was down arrive as
  PossDup resends.
* ``venue.log`` in ``--dir`` is a JSON line per fact (:class:`NodeEvent`): ``decided``,
  ``sent`` (``resend`` in ``detail`` for a re-send), ``report``, ``connected``,
  ``disconnected``, ``error``, ``state`` (saved, loaded, or why not loaded). Written to the
  OS at once (a SIGKILL loses nothing written); a torn last line is skipped when read.
* An unreachable venue is retried with exponential backoff (``--retry-min-ms`` to
  ``--retry-max-ms``); each failure is an ``error`` line and a line on stderr, never silent.
* **Agents** (optional, ``--agents FILE``): the node hosts agents
  (:mod:`agora.trading.agent_host`) fed by the venue's ITCH feed (``--itch`` binds the feed's
  port, ``--retransmit`` is the venue's retransmission port), by the decisions and fair values
  of this node's applier, by the fills its FIX session reports and by a periodic tick; their
  signed proposals go to the cluster through a ClusterClient, and ``agents.log`` records them.
  The ``--rules`` members must list every hosted agent (``agent_host.check_members``).
* **Byzantine mode** (``--mode bft --key-file F``, n = 3f + 1; ``--secret-file`` for
  development): the node runs the PBFT
  replica on the asyncio driver (:class:`~agora.decision.transport.bft_node.AsyncBftNode`)
  and its agents propose through a
  :class:`~agora.decision.transport.bft_client.BftClusterClient` (each proposal broadcast to
  every replica, settled by f + 1 matching MACed replies) with the keys of their client ids
  (``--client-key-file``; with ``--secret-file``, the same secret). The replica options are
  checked as ``replica_main`` checks them (one of ``--key-file``/``--secret-file``, ``--fsync
  batch`` refused). Nothing here reads ``Committed.view`` (always 0 in this mode):
  the applier keys on the log index, and the venue's ClOrdID dedup is unchanged. The venue
  side: give the cluster's participant ``order_quorum = f + 1`` in the venue config
  (:mod:`agora.exchange.venue.quorum`): the venue then submits a request (new order, cancel,
  replace) only when f + 1 nodes' sessions sent the same one under its ClOrdID, so a faulty node
  alone can neither place, alter nor cancel an order (its altered copy is refused and logged,
  its lone copy times out after ``quorum_timeout_ms``). Without it the old limitation holds: the
  mode protects the agreed log, not the venue from a faulty node's own FIX session (every node
  sends every decision as the participant and the venue keeps the first copy of a ClOrdID, so a
  Byzantine node could send an altered order under a decided ClOrdID first, or one nobody
  decided). With the quorum, copies that reach the venue more than ``quorum_timeout_ms`` apart
  do not form it (the node is told, and the command counts as resolved); held copies die with a
  venue crash and re-form from the re-sends on every logon.
* The node always serves its replica on the event loop (``--io`` is not read).

* **Memory follows what is open, not the session.** The node keeps the commands no report has
  named yet (``pending``; a cancel's carries its order, whose symbol and side its FIX message
  needs), its applier the decided orders not yet ended (cancelled, or reported done by the
  agents of role ``report``: ``rules.py`` item 7), and the reports naming ClOrdIDs ahead of its
  own log (a drop copy of another node's command, which this node's replica has not committed yet:
  its ClOrdID's log index, :func:`~agora.decision.rules.decision_index`, is beyond the applier's).
  A report of a command already applied and answered is a fact for ``venue.log``, not memory.

Limitations: only LIMIT orders and full cancels (what the rules decide); a command the venue
never answers (a lost connection before it was read) waits for the next logon to be re-sent;
without reporters in the roster, a decided order that fills is kept until the session ends, like
the rules' live orders (the log does not know fills); ``venue.log`` grows without bound, like
the committed log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from agora.core.clock import Clock, WallClock
from agora.core.events import NewOrder
from agora.decision.bft.auth import Keyring
from agora.decision.bft.keys import load_keyring
from agora.decision.consensus.messages import Committed
from agora.decision.rules import RulesConfig, decision_index
from agora.decision.transport import replica_main
from agora.decision.transport.record import iter_records
from agora.decision.venue_bridge import DecisionApplier, Outgoing
from agora.protocols.fix44.messages import FixStruct
from agora.trading import node_state
from agora.trading.agent_host import (
    CLIENT_POOL,
    AgentHost,
    check_members,
    client_epoch,
    load_specs,
)
from agora.trading.clients.fix_client import FixClient, FixClientError
from agora.trading.node_log import NodeEvent as NodeEvent  # re-exported: the log's reader
from agora.trading.node_log import NodeLog, iter_node_log
from agora.trading.node_log import read_node_log as read_node_log  # re-exported
from agora.trading.node_state import NodeFiles, Starts
from agora.trading.reports import report_key


class DecisionNode:
    """The applier, the commands not yet answered, and the FIX session (see the module notes)."""

    def __init__(self, applier: DecisionApplier, client: FixClient, directory: Path, *,
                 clock: Clock | None = None, retry_min_s: float = 0.05,
                 retry_max_s: float = 1.0,
                 on_report: Callable[[FixStruct], None] | None = None,
                 state_every: int = 0, agents: AgentHost | None = None) -> None:
        """``state_every``: save the node's state every so many applied entries and on close,
        and start from the saved one (``node_state.py``); 0: neither, replay from the start.
        ``agents``: the host whose agents the applier feeds (their state is saved with the
        node's; the caller restores their fills from :attr:`agents_start` on)."""
        self.applier = applier
        self.on_report = on_report  # sees every venue message (the agents' fills)
        self.client = client
        self.clock = clock or WallClock()
        self.retry_min_s, self.retry_max_s = retry_min_s, retry_max_s
        self.session = applier.aggregator.config.session
        self.pending: dict[str, Outgoing] = {}  # ClOrdID -> command no report named, log order
        self._ahead: dict[str, int] = {}  # reported ClOrdIDs beyond the log -> their index
        self._ahead_heap: list[tuple[int, str]] = []  # the same, lowest index first
        self.state_every = state_every
        self.agents = agents
        self.files = files = NodeFiles.of(directory)
        starts = node_state.load(self, files) if state_every else "not kept"
        record_start, venue_start, self.agents_start = \
            (starts.record, starts.venue, starts.agents) if isinstance(starts, Starts) \
            else (0, 0, 0)
        for event in iter_node_log(files.venue, venue_start):  # what was answered before
            if event.event == "report":
                self._note_report(event.id)
        for record in iter_records(files.record, record_start):  # the rules need every entry
            if record.item is not None:
                self._decide(record.item)
        self._forget_passed()
        self.log = NodeLog(files.venue, self.clock)
        self.closing = False
        self._saved_at, self._saving, self._broken = self.applier.applied_index, False, False
        if isinstance(starts, Starts):
            self.log.write("state", index=starts.applied, detail="loaded")
        elif state_every:
            self.log.write("state", detail=f"not loaded: {starts}")
            if starts != "none saved":
                print(f"decision node: saved state not used ({starts}): replayed the whole "
                      f"committed record", file=sys.stderr, flush=True)

    def _decide(self, item: Committed) -> list[Outgoing]:
        """The commands ``item`` decides; those no report has named yet become pending."""
        out = self.applier.apply(item)
        for o in out:
            key = o.command.client_order_id
            if self._ahead.pop(key, None) is None:  # else answered before we decided it
                self.pending[key] = o
        self._forget_passed()
        return out

    def _note_report(self, cl_ord_id: str) -> None:
        """A report names ``cl_ord_id``: its command, if pending, is resolved; the ClOrdID of a
        decision beyond the applied log (every one, while the log is replayed) is kept."""
        if self.pending.pop(cl_ord_id, None) is not None:
            return
        index = decision_index(self.session, cl_ord_id)
        if index is not None and index > self.applier.applied_index \
                and cl_ord_id not in self._ahead:
            self._ahead[cl_ord_id] = index
            heapq.heappush(self._ahead_heap, (index, cl_ord_id))

    def _forget_passed(self) -> None:
        """Drop reported ClOrdIDs the log has passed without deciding them (not ours)."""
        heap, applied = self._ahead_heap, self.applier.applied_index
        while heap and heap[0][0] <= applied:
            self._ahead.pop(heapq.heappop(heap)[1], None)

    def state(self) -> tuple[dict[str, Outgoing], dict[str, int]]:
        """What the node itself keeps (its applier has its own): the pending commands and the
        reported ClOrdIDs ahead of the log (``node_state``)."""
        return self.pending, self._ahead

    def restore(self, pending: dict[str, Outgoing], ahead: dict[str, int]) -> None:
        self.pending, self._ahead = pending, ahead
        self._ahead_heap = [(index, ident) for ident, index in ahead.items()]
        heapq.heapify(self._ahead_heap)

    def unresolved(self) -> Iterator[Outgoing]:
        """The decided commands no report has named, in log order."""
        return iter(list(self.pending.values()))

    # ------------------------------------------------------------------ replica -> venue

    def on_committed(self, item: Committed) -> None:
        """The replica's hook: decide, log, and send at once when logged on (every node sends
        every decision, even one the venue has answered for another node's copy already)."""
        try:
            decided = self._decide(item)
        except BaseException:
            self._broken = True  # ends the process; what it applied so far must not be saved
            raise
        for o in decided:
            self.log.write("decided", id=o.command.client_order_id, kind=_kind(o),
                           index=o.decision.log_index, detail=",".join(o.decision.voters))
            if self.client.logged_on:
                self._send(o, "")
        every = self.state_every
        if every and not self._saving and self.applier.applied_index - self._saved_at >= every:
            self._saving = True  # after this step, once the replica has flushed its record
            asyncio.get_running_loop().call_soon(self.save_state)

    def save_state(self) -> None:
        """Save the node's state (between the replica's steps; see ``node_state.py``); never
        after an entry failed to apply (the state may hold half of it)."""
        self._saving = False
        if self._broken:
            return
        try:
            node_state.save(self, self.files)
        except OSError as exc:  # a shortcut lost: a restart replays more, nothing else
            self.log.write("error", detail=f"state not saved: {exc}")
            return
        self._saved_at = self.applier.applied_index
        self.log.write("state", index=self._saved_at, detail="saved")

    def _send(self, o: Outgoing, detail: str) -> None:
        """Send ``o`` (a cancel names its order's symbol and side, ``o.order``)."""
        command, target = o.command, o.order
        try:
            if isinstance(command, NewOrder):
                self.client.new_order(command.client_order_id, command.symbol, command.side,
                                      command.qty, command.price, order_type=command.order_type,
                                      tif=command.tif)
            else:
                assert target is not None
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
        for o in self.unresolved():
            self._send(o, "resend")
        return True

    def _on_report(self, msg: FixStruct) -> None:
        if self.on_report is not None:
            self.on_report(msg)
        key = report_key(msg)
        if key is None:
            self.log.write("error", detail=f"venue sent {type(msg).__name__}: {msg}")
            return
        cl_ord_id, kind, text = key
        if cl_ord_id:
            self._note_report(cl_ord_id)
        self.log.write("report", id=cl_ord_id, kind=kind, detail=text)

    async def close(self, task: asyncio.Task | None = None) -> None:
        self.closing = True
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.state_every:
            self.save_state()
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
    p.add_argument("--state-every", type=int, default=50_000,
                   help="save the node's state (with its agents') every N applied entries and "
                        "on exit, so that a restart reads only what follows (0: never)")
    a = p.add_argument_group("agents")
    a.add_argument("--agents", type=Path, help="JSON list of agent specs to host")
    a.add_argument("--itch", help="host:port to receive the venue's ITCH feed on (a multicast "
                                  "group lets every node of the host share one feed)")
    a.add_argument("--retransmit", help="host:port of the venue's retransmission service")
    a.add_argument("--symbols", default="", help="symbols to follow, comma-separated (all)")
    a.add_argument("--book-interval-ms", type=float, default=5.0,
                   help="at most one book view per symbol per interval")
    a.add_argument("--tick-ms", type=int, default=100)
    a.add_argument("--views-include-own-orders", action="store_true",
                   help="count the participant's own resting orders in the agents' book views "
                        "(by default they are left out: ITCH is anonymous, and a fair value that "
                        "sees the cluster's own quotes chases them)")
    a.add_argument("--client-id-base", type=int,
                   help="first consensus client id of the agents (default 1000000 * (id + 1)); "
                        f"each start of the node takes the next {CLIENT_POOL}")
    a.add_argument("--client-key-file", type=Path,
                   help="--mode bft with --key-file: the client key file holding the agents' "
                        "client ids (`agora keys bft-clients DIR --clients A-B`)")
    return p


def open_host(args: argparse.Namespace, rules: RulesConfig) -> AgentHost | None:
    """The agents of ``--agents``, checked against the rules; None without agents."""
    if args.agents is None:
        return None
    specs = load_specs(args.agents)
    check_members(rules, specs)
    symbols = [s for s in args.symbols.split(",") if s]
    log = NodeLog(args.dir / "agents.log", WallClock())
    return AgentHost(specs, WallClock(), log, symbols=symbols,
                     book_interval_ns=int(args.book_interval_ms * 1e6),
                     tick_ns=args.tick_ms * 1_000_000,
                     exclude_own=not args.views_include_own_orders, session=rules.session)


def check_done_quorum(rules: RulesConfig, mode: str, n: int) -> None:
    """In the Byzantine mode (n = 3f + 1) f lying reporters must not be able to end a live
    order (it could no longer be cancelled): with reporters, ``done_quorum`` must exceed f."""
    f = (n - 1) // 3
    reporters = rules.reporters
    if mode == "bft" and reporters and rules.done_quorum <= f:
        raise ValueError(f"the rules' done_quorum is {rules.done_quorum} with {reporters} "
                         f"reporters: the Byzantine mode with n = {n} needs at least f + 1 = "
                         f"{f + 1} (f lying reporters could end a live order)")


def open_node(args: argparse.Namespace) -> tuple[DecisionNode, AgentHost | None]:
    """The node and its agents; ValueError (AgentsFileError among them) says what is wrong with
    the rules or the agents."""
    try:
        rules = msgspec.json.decode(args.rules.read_bytes(), type=RulesConfig)
    except msgspec.DecodeError as exc:
        raise ValueError(f"rules file {args.rules}: {exc}") from exc
    if args.session:
        rules = msgspec.structs.replace(rules, session=args.session)
    check_done_quorum(rules, args.mode, len(replica_main.parse_peers(args.peers)))
    (host, port), = replica_main.parse_peers(args.venue)
    args.dir.mkdir(parents=True, exist_ok=True)
    agents = open_host(args, rules)
    client = FixClient(host, port, args.comp_id, args.target_comp_id,
                       store_dir=args.dir / "fix", heartbeat_s=5)
    applier = DecisionApplier(rules, args.participant, hold_cancels=False,
                              on_outcome=agents.on_outcome if agents else None)
    node = DecisionNode(applier, client, args.dir, retry_min_s=args.retry_min_ms / 1000,
                        retry_max_s=args.retry_max_ms / 1000,
                        on_report=agents.on_report if agents else None,
                        state_every=args.state_every, agents=agents)
    return node, agents


def agents_keyring(args: argparse.Namespace, replica: Keyring, first: int) -> Keyring:
    """The keys the agents' client ids ``first ..`` use in Byzantine mode: their own client key
    file, or the replica's keyring when it holds every key (a development cluster secret)."""
    ids = range(first, first + CLIENT_POOL)
    if args.client_key_file is not None:
        return load_keyring(args.client_key_file, clients=ids)
    if replica.secret is not None:
        return replica
    raise ValueError(f"--agents with --key-file need --client-key-file: a client key file "
                     f"holding client ids {ids.start}-{ids.stop - 1} (`agora keys "
                     f"bft-clients`)")


async def serve(args: argparse.Namespace, keyring: Keyring | None = None) -> int:
    """The node until SIGTERM; ``keyring``: the Byzantine mode's replica keys (read with
    :func:`~agora.decision.transport.replica_main.bft_keyring` if None)."""
    if args.mode == "bft" and keyring is None:
        keyring = replica_main.bft_keyring(args)
    try:
        node, agents = open_node(args)
    except ValueError as exc:  # the rules or the agents file
        print(f"decision node: {exc}", file=sys.stderr, flush=True)
        return 2
    if agents is not None:  # after the node replayed its log into them
        agents.restore_reports(node.agents_start)
        itch = replica_main.parse_peers(args.itch)[0] if args.itch else None
        retransmit = replica_main.parse_peers(args.retransmit)[0] if args.retransmit else None
        base = ((args.client_id_base or 1_000_000 * (args.id + 1))
                + client_epoch(args.dir) * CLIENT_POOL)  # fresh ids on every start
        peers = replica_main.parse_peers(args.peers)
        try:
            client_keys = None if keyring is None else agents_keyring(args, keyring, base)
        except ValueError as exc:
            print(f"decision node: {exc}", file=sys.stderr, flush=True)
            return 2
        await agents.start(args.cluster, peers, client_id_base=base, itch=itch,
                           retransmit=retransmit, keyring=client_keys)
    task = asyncio.create_task(node.run())
    try:
        return await replica_main.main(args, on_committed=node.on_committed, keyring=keyring)
    finally:
        await node.close(task)
        if agents is not None:
            await agents.close()
            agents.log.close()


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    replica_main.check_counts(parser, args)  # the replica's own counts, as replica_main checks
    if args.state_every < 0:
        parser.error("--state-every must be >= 0 (0: never save the node's state)")
    keyring = None
    if args.mode == "bft":
        try:
            keyring = replica_main.bft_keyring(args)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
    return replica_main.start(serve(args, keyring))


if __name__ == "__main__":
    sys.exit(run())
