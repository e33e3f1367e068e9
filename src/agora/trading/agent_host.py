"""Agents hosted by a decision node: the venue's feed and fills in, signed proposals out.

An agents file (``--agents``) is a JSON list of :data:`AgentSpec`: ``kind`` (``market_view``,
``risk``, ``market_maker``, ``momentum``, ``reporter``), ``name``, ``seed`` (the Ed25519 key is
derived from it, so every node and the rules' author derive the same public key), ``weight``,
``budget_ms`` and the kind's ``config`` (its ``*Config``/``RiskLimits`` fields).
:func:`roster` turns every node's file into the rules' members; :func:`check_members` refuses to
start a node whose agents the ``--rules`` do not list with the same role, key and weight.

Inputs, as :class:`AgentHost` feeds them:

* ``on_book``: from the node's :class:`~agora.feed.live.ItchSubscriber`. Throttled per symbol:
  a change marks the symbol dirty, and dirty symbols are flushed at most once per
  ``book_interval_ns`` (the first change after a quiet interval is flushed at the end of its
  event-loop turn), so a burst of ITCH messages becomes one view of the latest book.
* ``on_decisions`` / ``on_fair_value``: from the node's own applier (its ``on_outcome`` hook)
  over the committed log, so every node's agents see the same decisions and fair values in the
  same order. A restart replays the log into the agents (their proposals then are dropped) and
  resumes each agent's ``seq`` above the highest one committed.
* ``on_fill``: ExecutionReports with ExecType TRADE from the node's FIX session (the venue sends
  every session of the participant every report), once per ExecID (the latest
  :data:`EXEC_IDS_REMEMBERED` are remembered: a venue resends after a reconnect what the node's
  FIX session had not stored yet, a few messages, never that many fills back). A fill the venue
  made before a cancel but this node hears after the cancel was decided still counts for the
  order (the Agent base keeps a cancelled order's fills until the venue is done with it), so
  every node's makers hold the same inventory. A node behind the others on the log can hear an
  order's fill or end before it applies the order's decision: such a report waits for it
  (:class:`~agora.trading.reports.EarlyReports`, a second at most, then goes on as a
  stranger's with an ``unclaimed`` line in ``agents.log``).
* ``on_order_done``: a report that ends an order (cancelled, expired, rejected, a cancel refused
  because the order is final).
* ``on_tick``: every ``tick_ns``.

Every proposal goes to the cluster through this node's :class:`ClusterClient` (a
:class:`~agora.decision.transport.bft_client.BftClusterClient` when ``start`` is given the
Byzantine-mode cluster's keyring: the same pool, its requests broadcast and settled by f + 1
matching replies). Its consensus
client ids must differ between nodes (``client_id_base``) and between starts of one node: the
replicas answer a known ``(client id, request number)`` with the old reply instead of committing
the new request, so a restarted node that reused its ids would lose its first proposals to
replies of the previous run. :func:`client_epoch` counts the starts in the node's directory and
each start takes the next :data:`CLIENT_POOL` ids. ``agents.log`` (same line format as
``venue.log``) records ``proposed`` (id = agent, index = seq, detail = what triggered it),
``committed`` / ``abandoned`` (index = log index), ``fill``, ``done`` (id = the ClOrdID of an
order the venue ended otherwise than by a fill), ``state`` (an agent's position,
inventory, fair values, as JSON) and ``stats`` (per agent, every second and at exit: proposed,
committed, abandoned, in flight, and the rules' verdicts on its log entries: ``decided``,
``pending``, ``absorbed``, ``applied``, ...; a restart recounts the verdicts from the log, the
proposal counts start again).

Restart: the committed log holds no fills, so a restarted node first replays the log into the
agents, then the fills and ends of orders its ``agents.log`` recorded
(:meth:`AgentHost.restore_reports`, the fills with their ExecIDs, so a PossDup resend of one does
not count twice); reports made while it was down arrive as the venue's resends. A node that saved
its state (``--state-every``) saved its agents' too (:meth:`AgentHost.state`), and a restart from
it replays only the record's tail into them and only the reports logged after the save.
Limitations: the restored reports follow all the replayed decisions instead of falling between
them, and a report the venue sent just before the crash but that did not reach ``agents.log``
comes back only as a resend (if the FIX session had not yet stored it).
ITCH is anonymous, so the book views leave out the participant's own resting orders, known from the
FIX reports (:class:`~agora.trading.reports.OwnOrders`; the venue's OrderID is the feed's order
reference): the cluster's quotes do not feed back into its fair value (``exclude_own=False``,
``decision_node --views-include-own-orders``, keeps them; a maker's ``requote_threshold`` must then
exceed that effect, or it chases its own quotes). The feed's Add Order of an order may come before
its report, so from applying a decided order until the venue's verdict on it the node's views of
that symbol wait (:meth:`~agora.trading.reports.OwnOrders.expect`, a second at most); a node that
applies the order after the feed brought it still counts it until the report. Entries a restarted
replica catches up on after its replay reach the agents live, so they may propose on stale state
(the rules absorb or refuse most of it: votes, ``ALREADY_CANCELLED``). Each node views its own
feed, so nodes propose at slightly different moments; the agents run in the replica's process and
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from agora.core.clock import Clock
from agora.core.enums import Side
from agora.core.events import OrderIntent, Proposal
from agora.core.recent import Recent
from agora.decision.agents import (
    Agent,
    Fill,
    MarketMakerAgent,
    MarketMakerConfig,
    MarketViewAgent,
    MarketViewConfig,
    MomentumAgent,
    MomentumConfig,
    ReporterAgent,
    ReporterConfig,
    RiskAgent,
    RiskLimits,
)
from agora.decision.bft.auth import Keyring
from agora.decision.rules import CommittedProposal, Member, Outcome, RulesConfig
from agora.decision.signing import AgentKey
from agora.decision.transport.bft_client import BftClusterClient
from agora.decision.transport.client import ClusterClient
from agora.decision.transport.client import Outcome as Submitted
from agora.feed.live import ItchSubscriber
from agora.protocols.fix44.messages import ExecutionReport, FixStruct
from agora.trading.node_log import NodeEvent, NodeLog, iter_node_log
from agora.trading.reports import (
    EarlyReports,
    OwnOrders,
    ended_order_of,
    fill_of,
    order_of,
)

CLIENT_POOL = 16  # consensus client ids (requests in flight) per start of a node's agents
EXEC_IDS_REMEMBERED = 65_536  # the dedup horizon of fills (module notes)


class AgentsFileError(ValueError):
    """An agents file that cannot be read, or agents that do not match the rules."""


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    name: str
    seed: str
    weight: int = 1
    budget_ms: int = 50  # the proposal's commit deadline (0: none)

    def __post_init__(self) -> None:
        if not self.name or not self.seed:
            raise ValueError("name and seed must not be empty")
        if self.weight < 0 or self.budget_ms < 0:
            raise ValueError("weight and budget_ms must be >= 0")


class MarketViewSpec(_Spec, frozen=True, tag="market_view"):
    config: MarketViewConfig = msgspec.field(default_factory=MarketViewConfig)


class RiskSpec(_Spec, frozen=True, tag="risk"):
    config: RiskLimits = msgspec.field(default_factory=RiskLimits)


class MarketMakerSpec(_Spec, frozen=True, tag="market_maker"):
    config: MarketMakerConfig = msgspec.field(default_factory=MarketMakerConfig)


class MomentumSpec(_Spec, frozen=True, tag="momentum"):
    config: MomentumConfig = msgspec.field(default_factory=MomentumConfig)


class ReporterSpec(_Spec, frozen=True, tag="reporter"):
    config: ReporterConfig = msgspec.field(default_factory=ReporterConfig)


AgentSpec = MarketViewSpec | RiskSpec | MarketMakerSpec | MomentumSpec | ReporterSpec

_AGENT_OF: dict[type, type[Agent]] = {
    MarketViewSpec: MarketViewAgent,
    RiskSpec: RiskAgent,
    MarketMakerSpec: MarketMakerAgent,
    MomentumSpec: MomentumAgent,
    ReporterSpec: ReporterAgent,
}


def load_specs(path: Path) -> list[AgentSpec]:
    """An agents file, validated; :class:`AgentsFileError` names the file and the problem."""
    try:
        specs = msgspec.json.decode(Path(path).read_bytes(), type=list[AgentSpec])
    except (OSError, msgspec.DecodeError) as exc:
        raise AgentsFileError(f"agents file {path}: {exc}") from exc
    names = Counter(spec.name for spec in specs)
    twice = sorted(name for name, n in names.items() if n > 1)
    if twice:
        raise AgentsFileError(f"agents file {path}: names used twice: {twice}")
    return specs


def build_agent(spec: AgentSpec) -> Agent:
    cls = _AGENT_OF[type(spec)]
    return cls(spec.name, AgentKey.generate(spec.seed), spec.config,  # type: ignore[call-arg]
               budget_ns=spec.budget_ms * 1_000_000)


def member_of(spec: AgentSpec) -> Member:
    return Member(_AGENT_OF[type(spec)].role, AgentKey.generate(spec.seed).public_bytes,
                  spec.weight)


def roster(paths: Iterable[Path]) -> dict[str, Member]:
    """The rules' members for every node's agents file (one name, one member across files)."""
    members: dict[str, Member] = {}
    for path in paths:
        for spec in load_specs(path):
            member = member_of(spec)
            if members.setdefault(spec.name, member) != member:
                raise AgentsFileError(f"agent {spec.name!r} is defined differently in {path}")
    return members


def check_members(rules: RulesConfig, specs: Sequence[AgentSpec]) -> None:
    """Every hosted agent must be a member of the rules as its spec says (else it would only
    produce UNKNOWN_AGENT or BAD_SIGNATURE verdicts)."""
    problems = []
    for spec in specs:
        have, want = rules.members.get(spec.name), member_of(spec)
        if have is None:
            problems.append(f"{spec.name!r} is not a member")
        elif have != want:
            problems.append(f"{spec.name!r} differs (role {have.role}/{want.role}, weight "
                            f"{have.weight}/{want.weight}, key "
                            f"{'same' if have.public_key == want.public_key else 'different'})")
    if problems:
        raise AgentsFileError("the rules' members do not match the agents: " + "; ".join(problems)
                              + " (derive them with agora.trading.agent_host.roster)")


def client_epoch(directory: Path) -> int:
    """0 on the first start in ``directory``, then 1, 2, ...: persisted (atomically) before use."""
    path = Path(directory) / "agents.epoch"
    try:
        epoch = int(path.read_text()) + 1
    except FileNotFoundError:
        epoch = 0
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(epoch))
    os.replace(tmp, path)
    return epoch


def fill_detail(fill: Fill, exec_id: str) -> str:
    """The ``detail`` of an ``agents.log`` fill line (the line's id, kind and index carry the
    ClOrdID, side and quantity); :func:`fill_of_line` reads it back."""
    return f"{fill.symbol} px={fill.price} leaves={fill.leaves_qty} exec={exec_id}"


def fill_of_line(event: NodeEvent) -> tuple[Fill, str | None]:
    """The fill an ``agents.log`` fill line recorded and its ExecID (None on lines written
    before ExecIDs were); ValueError naming the line's problem if it is not one."""
    try:
        symbol, *fields = event.detail.split()
        values = dict(f.split("=", 1) for f in fields)
        fill = Fill(event.at_ns, symbol, Side[event.kind], event.index, int(values["px"]),
                    event.id, int(values["leaves"]))
    except (ValueError, KeyError) as exc:
        raise ValueError(f"not a fill line ({exc!r}): {event.kind} {event.index} "
                         f"{event.detail!r}") from None
    return fill, values.get("exec")


def agent_state(agent: Agent) -> dict[str, Any]:
    """What an agent holds that a test or an operator wants to see."""
    state: dict[str, Any] = {"seq": agent.seq, "open_orders": len(agent.orders)}
    if isinstance(agent, MarketMakerAgent):
        state |= {"inventory": agent.inventory, "fair": agent.fair}
    elif isinstance(agent, RiskAgent):
        state |= {"position": {s: b.qty for s, b in agent.books.items()},
                  "vetoes": sorted(f"{v.symbol or '*'}:{v.side.name if v.side else 'BOTH'}"
                                   for v in agent.vetoes.values() if v.active)}
    elif isinstance(agent, MarketViewAgent):
        state |= {"fair": {s: f.price for s, f in agent.last.items()}}
    elif isinstance(agent, ReporterAgent):
        state |= {"live_orders": len(agent.live), "unconfirmed_reports": len(agent.unconfirmed)}
    return state


class AgentHost:
    """Runs a node's agents (see the module notes). ``start()`` before the replica runs."""

    def __init__(self, specs: Sequence[AgentSpec], clock: Clock, log: NodeLog, *,
                 symbols: Sequence[str] = (), book_interval_ns: int = 5_000_000,
                 tick_ns: int = 100_000_000, depth: int = 10,
                 exclude_own: bool = True, session: str = "") -> None:
        """``session``: the rules' (the log's ClOrdID prefix): reports of its orders wait for
        their decisions (:class:`~agora.trading.reports.EarlyReports`); "": none wait."""
        self.specs = list(specs)
        self.agents = [build_agent(spec) for spec in specs]
        self.own = OwnOrders() if exclude_own else None  # left out of the book views
        self.early = EarlyReports(session)
        self.clock = clock
        self.log = log
        self.symbols = frozenset(symbols)  # empty: every symbol of the feed
        self.book_interval_ns = book_interval_ns
        self.tick_ns = tick_ns
        self.depth = depth
        self.replaying = True  # the node replays its committed log first: no proposals then
        self.counts: dict[str, Counter[str]] = {a.name: Counter() for a in self.agents}
        self.client: ClusterClient | None = None
        self.feed: ItchSubscriber | None = None
        self._dirty: dict[str, None] = {}  # symbols changed since the last flush, in order
        self._flush: asyncio.TimerHandle | None = None
        self._flush_due_ns = 0  # when _flush fires, on self.clock
        self._held_since: dict[str, int] = {}  # symbol -> when its views started to wait
        self._last_flush_ns = 0
        self._exec_ids = Recent(EXEC_IDS_REMEMBERED)
        self._tasks: list[asyncio.Task] = []

    async def start(self, cluster: int, peers: Sequence[tuple[str, int]], *, client_id_base: int,
                    itch: tuple[str, int] | None = None,
                    retransmit: tuple[str, int] | None = None,
                    keyring: Keyring | None = None) -> None:
        """Connect the proposals' client (to a Byzantine-mode cluster with ``keyring``), the
        feed, and start the ticks."""
        self.replaying = False
        if keyring is None:
            self.client = await ClusterClient.connect(cluster, peers, self.clock,
                                                      first_id=client_id_base, pool=CLIENT_POOL)
        else:
            self.client = await BftClusterClient.connect(
                cluster, peers, self.clock, keyring=keyring, first_id=client_id_base,
                pool=CLIENT_POOL)
        if itch is not None:
            self.feed = ItchSubscriber(host=itch[0], port=itch[1], retransmit=retransmit,
                                       on_events=self._on_feed)
            await self.feed.start()
        self._tasks.append(asyncio.create_task(self._ticks()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._flush is not None:
            self._flush.cancel()
        if self.feed is not None:
            await self.feed.close()
        if self.client is not None:
            self.client.close()
        self.write_stats()

    # ------------------------------------------------------------------ inputs

    def on_outcome(self, entry: CommittedProposal, outcome: Outcome) -> None:
        """The applier's hook: count the verdict, hand decisions and fair values to every agent."""
        proposal = entry.proposal
        counts = self.counts.get(proposal.agent)
        if counts is not None:
            counts[outcome.verdict.value] += 1
            if self.replaying:  # resume above every seq the log has spent
                agent = next(a for a in self.agents if a.name == proposal.agent)
                agent.seq = max(agent.seq, proposal.seq)
        decision = outcome.decision
        now = self.clock.now_ns()  # the agents time their proposals from it (base notes)
        if decision is not None:
            if (self.own is not None and not self.replaying
                    and isinstance(decision.action, OrderIntent)):
                self.own.expect(decision.client_order_id, decision.action.symbol, now)
            self._run("decision", lambda a: a.on_decisions([decision], now))
        if outcome.fair_value is not None:
            fair = outcome.fair_value
            self._run("fair_value", lambda a: a.on_fair_value(fair, now))
        if outcome.ended is not None:
            for agent in self.agents:
                agent.on_ended(outcome.ended)
        early = self.early.applied(entry.index)
        if early:
            for msg in early:
                self._to_agents(msg, now)

    def on_report(self, msg: FixStruct) -> None:
        """A venue report from the node's FIX session: a fill goes to every agent (once per ExecID),
        and so does the end of an order, after the order's decision (parked until then)."""
        now = self.clock.now_ns()
        if self.own is not None:
            symbol = self.own.on_report(msg)
            if symbol is not None and self.feed is not None:  # no feed: no views to redo
                self._changed([symbol])
        about = order_of(msg)
        if about is None or not self.early.park(about, msg, now):
            self._to_agents(msg, now)

    def _to_agents(self, msg: FixStruct, now: int) -> None:
        ended = ended_order_of(msg)
        if ended is not None:
            self.log.write("done", id=ended)
            self._run("done", lambda a: a.on_order_done(ended, now))
        fill = fill_of(msg, now)
        if (fill is None or not isinstance(msg, ExecutionReport)
                or not self._exec_ids.add(msg.exec_id)):
            return
        self.log.write("fill", id=fill.client_order_id, kind=fill.side.name, index=fill.qty,
                       detail=fill_detail(fill, msg.exec_id))
        self._run("fill", lambda a: a.on_fill(fill))
        for agent in self.agents:
            self.log.write("state", id=agent.name, detail=json.dumps(agent_state(agent)))

    def state(self) -> bytes:
        """What the agents learnt (each agent's attributes but its key, the verdict counts, the
        fills' ExecIDs), for the node's saved state (``node_state.py``, which trusts it as it
        trusts the rules' pickle). Not the feed's views or the reports in flight: a restart
        rebuilds those, as it does after a full replay."""
        agents = {a.name: {k: v for k, v in vars(a).items() if k != "key"}
                  for a in self.agents}
        return pickle.dumps((agents, self.counts, self._exec_ids),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, data: bytes) -> None:
        """Become the host ``state()`` was taken from (same specs); raises, changing nothing,
        if ``data`` does not load or names other agents."""
        agents, counts, exec_ids = pickle.loads(data)
        if set(agents) != {a.name for a in self.agents}:
            raise ValueError(f"the state holds agents {sorted(agents)}, not these")
        for agent in self.agents:
            vars(agent).update(agents[agent.name])
        self.counts, self._exec_ids = counts, exec_ids

    def restore_reports(self, start: int = 0) -> int:
        """After the node replayed its committed log into the agents, and before ``start``: the
        fills and ends of orders that earlier runs heard of (this node's ``agents.log`` from
        byte ``start``: where a loaded state had read it) go to the agents again, in the order
        they came (positions and inventory survive a restart, and a reporter proposes again what
        the log has not yet ended), and the fills' ExecIDs are known (the venue's PossDup resend
        of one is not counted twice). They come after every replayed decision, not between them
        as they happened. Returns how many fills were restored."""
        restored, damaged = 0, []
        for event in iter_node_log(self.log.path, start):  # a line at a time
            if event.event == "done":
                self._run("done", lambda a, event=event: a.on_order_done(event.id, event.at_ns))
                continue
            if event.event != "fill":
                continue
            try:
                fill, exec_id = fill_of_line(event)
            except ValueError as exc:  # a damaged line: said once read through, the rest restored
                damaged.append((event.id, f"fill not restored: {exc}"))
                continue
            if exec_id is not None and not self._exec_ids.add(exec_id):
                continue
            self._run("fill", lambda a, fill=fill: a.on_fill(fill))
            restored += 1
        for ident, detail in damaged:
            self.log.write("error", id=ident, detail=detail)
        return restored

    def _on_feed(self, events: list) -> None:
        self._changed(getattr(event, "symbol", None) for event in events)

    def _changed(self, symbols: Iterable[str | None]) -> None:
        """These symbols' views are out of date: flush them within the throttle."""
        for symbol in symbols:
            if symbol and (not self.symbols or symbol in self.symbols):
                self._dirty[symbol] = None
        if self._dirty:
            self._flush_at(self._last_flush_ns + self.book_interval_ns)

    def _flush_at(self, at_ns: int) -> None:
        """Flush the views at ``at_ns`` (now if past), unless a flush is due sooner already (a
        hold's end must not delay the flush a verdict asks for)."""
        if self._flush is not None:
            if self._flush_due_ns <= at_ns:
                return
            self._flush.cancel()
        self._flush_due_ns = at_ns
        wait_ns = max(0, at_ns - self.clock.now_ns())
        self._flush = asyncio.get_running_loop().call_later(wait_ns / 1e9, self._flush_books)

    def _flush_books(self) -> None:
        self._flush = None
        self._last_flush_ns = now = self.clock.now_ns()
        dirty, self._dirty = self._dirty, {}
        if self.feed is None:
            return
        books = self.feed.handler.books
        own = self.own.ids if self.own is not None else ()
        held: list[int] = []
        for symbol in dirty:
            until = self.own.held_until(symbol, now) if self.own is not None else None
            if until is not None:  # an own order's Add may be in the book, not yet its id
                since = self._held_since.setdefault(symbol, now)
                if now - since < self.own.hold_ns:  # (a stream of orders: a hold at most)
                    self._dirty[symbol] = None
                    held.append(min(until, since + self.own.hold_ns))
                    continue
            self._held_since.pop(symbol, None)
            book = books.get(symbol)
            if book is not None:
                view = book.view(now, self.depth, own)
                self._run("book", lambda a, view=view: a.on_book(view))
        if held:  # the verdict's report flushes sooner; this is the hold's end
            self._flush_at(min(held))

    async def _ticks(self) -> None:
        every, last_stats = self.tick_ns / 1e9, self.clock.now_ns()
        while True:
            await asyncio.sleep(every)
            now = self.clock.now_ns()
            self._run("tick", lambda a, now=now: a.on_tick(now))
            for msg in self.early.expired(now):  # no decision came: on as a stranger's report
                self.log.write("unclaimed", id=order_of(msg) or "",
                               kind=type(msg).__name__, detail="no decision within the hold")
                self._to_agents(msg, now)
            if now - last_stats >= 1_000_000_000:
                last_stats = now
                self.write_stats()

    # ------------------------------------------------------------------ proposals

    def _run(self, trigger: str, call: Callable[[Agent], list[Proposal]]) -> None:
        """Call every agent, submit what they propose (dropped while replaying)."""
        for agent in self.agents:
            proposals = call(agent)
            if self.replaying or self.client is None:
                continue
            for proposal in proposals:
                self._submit(agent.name, proposal, trigger)

    def _submit(self, name: str, proposal: Proposal, trigger: str) -> None:
        assert self.client is not None
        self.counts[name]["proposed"] += 1
        future = self.client.submit(msgspec.msgpack.encode(proposal), proposal.budget_ns)
        self.log.write("proposed", id=name, kind=type(proposal.action).__name__,
                       index=proposal.seq, detail=trigger)
        future.add_done_callback(partial(self._replied, name, proposal.seq))

    def _replied(self, name: str, seq: int, future: asyncio.Future[Submitted]) -> None:
        if future.cancelled():
            return
        reply = future.result().reply
        if reply is None:  # the client gave up (it does not, today)
            return
        event = "abandoned" if reply.abandoned else "committed"
        self.counts[name][event] += 1
        self.log.write(event, id=name, index=reply.index, detail=f"seq={seq}")

    def write_stats(self) -> None:
        for name, counts in self.counts.items():
            zero = dict.fromkeys(("proposed", "committed", "abandoned"), 0)
            detail = zero | dict(sorted(counts.items()))
            detail["in_flight"] = detail["proposed"] - detail["committed"] - detail["abandoned"]
            self.log.write("stats", id=name, detail=json.dumps(detail))
