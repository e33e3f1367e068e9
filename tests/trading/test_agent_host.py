"""The agent host without processes: agents files, the rules' roster, fills from FIX reports,
cancels held until the venue answers them, the book throttle, fresh client ids per start, and the
replay of a restarted node's log (proposals dropped, seqs resumed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from agora.core.clock import WallClock
from agora.core.enums import Side
from agora.core.events import (
    CancelIntent,
    Decision,
    FairValue,
    NewOrder,
    OrderDone,
    OrderIntent,
    Proposal,
    ReplaceOrder,
)
from agora.decision.agents import MarketMakerAgent, MomentumAgent
from agora.decision.rules import CommittedProposal, Outcome, Role, RulesConfig, Verdict
from agora.exchange.venue.config import load_config
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.fix_mapping import FixOrders
from agora.exchange.venue.itch_feed import ItchMapper
from agora.feed.book import L3Book
from agora.protocols import itch50
from agora.protocols.fix44 import enums as fx
from agora.protocols.fix44.messages import ExecutionReport, OrderCancelReject
from agora.trading import decision_node
from agora.trading.agent_host import (
    AgentHost,
    AgentsFileError,
    agent_state,
    build_agent,
    check_members,
    client_epoch,
    load_specs,
    member_of,
    roster,
)
from agora.trading.decision_node import NodeLog, read_node_log
from agora.trading.reports import OwnOrders, ended_order_of, fill_of
from tests.exchange.venue.test_config_core import CONFIG
from tests.exchange.venue.test_config_core import write as write_config

SPECS = [
    {"kind": "market_view", "name": "mv0", "seed": "host:mv0"},
    {"kind": "market_maker", "name": "mm0", "seed": "host:mm0", "weight": 2,
     "config": {"half_spread": 200, "qty": 100}},
    {"kind": "risk", "name": "risk0", "seed": "host:risk0", "config": {"max_position": 5_000}},
]


def write(tmp_path: Path, specs: list, name: str = "agents.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(specs))
    return path


def test_an_agents_file_is_validated_with_clear_errors(tmp_path):
    specs = load_specs(write(tmp_path, SPECS))
    assert [(s.name, type(s).__name__) for s in specs] == [
        ("mv0", "MarketViewSpec"), ("mm0", "MarketMakerSpec"), ("risk0", "RiskSpec")]
    assert specs[1].config.qty == 100 and specs[2].config.max_position == 5_000
    momentum = load_specs(write(tmp_path, [{"kind": "momentum", "name": "mo", "seed": "s",
                                            "budget_ms": 0, "config": {"window": 7}}]))
    agent = build_agent(momentum[0])
    assert isinstance(agent, MomentumAgent) and agent.config.window == 7 and agent.budget_ns == 0
    reporter = load_specs(write(tmp_path, [{"kind": "reporter", "name": "rep", "seed": "s"}]))
    assert member_of(reporter[0]).role is Role.REPORT
    assert agent_state(build_agent(reporter[0])) == {"seq": 0, "open_orders": 0, "live_orders": 0,
                                                     "unconfirmed_reports": 0}
    cases = {
        "unknown kind": ([{"kind": "oracle", "name": "x", "seed": "s"}], "oracle"),
        "bad config": ([{"kind": "market_maker", "name": "x", "seed": "s",
                         "config": {"qty": 0}}], "qty"),
        "unknown field": ([{"kind": "risk", "name": "x", "seed": "s", "sede": 1}], "sede"),
        "no seed": ([{"kind": "risk", "name": "x"}], "seed"),
        "a reporter's unknown setting": ([{"kind": "reporter", "name": "x", "seed": "s",
                                         "config": {"quorum": 2}}], "quorum"),
        "a reporter that never waits": ([{"kind": "reporter", "name": "x", "seed": "s",
                                          "config": {"repeat_ms": 0}}], "repeat_ms"),
        "twice": ([SPECS[0], SPECS[0]], "names used twice"),
    }
    for case, (bad, word) in cases.items():
        with pytest.raises(AgentsFileError, match=word) as info:
            load_specs(write(tmp_path, bad, "bad.json"))
        assert "bad.json" in str(info.value), case
    with pytest.raises(AgentsFileError, match=r"missing\.json"):
        load_specs(tmp_path / "missing.json")


def test_the_roster_of_every_nodes_file_is_what_the_rules_must_hold(tmp_path):
    one = write(tmp_path, SPECS[:2], "one.json")
    two = write(tmp_path, [SPECS[0], SPECS[2]], "two.json")  # mv0 on both nodes
    members = roster([one, two])
    assert list(members) == ["mv0", "mm0", "risk0"] and members["mm0"].weight == 2
    rules = RulesConfig(members)
    check_members(rules, load_specs(one))
    other = write(tmp_path, [{**SPECS[0], "seed": "another"}], "three.json")
    with pytest.raises(AgentsFileError, match="'mv0' is defined differently"):
        roster([one, other])
    with pytest.raises(AgentsFileError, match=r"'mv0' differs .*key different"):
        check_members(rules, load_specs(other))
    with pytest.raises(AgentsFileError, match="'risk0' is not a member"):
        check_members(RulesConfig({"mv0": members["mv0"]}), load_specs(two))


def test_a_node_refuses_agents_its_rules_do_not_list(tmp_path, capsys):
    agents = write(tmp_path, SPECS)
    rules = tmp_path / "rules.json"
    rules.write_bytes(b'{"members": {}}')
    args = decision_node.build_parser().parse_args([
        "--id", "0", "--peers", "127.0.0.1:1", "--dir", str(tmp_path / "node"),
        "--rules", str(rules), "--participant", "F", "--venue", "127.0.0.1:1",
        "--comp-id", "N0", "--agents", str(agents)])
    assert asyncio.run(decision_node.serve(args)) == 2
    assert "'mv0' is not a member" in capsys.readouterr().err


def test_each_start_of_a_node_takes_fresh_client_ids(tmp_path):
    assert [client_epoch(tmp_path) for _ in range(3)] == [0, 1, 2]
    assert (tmp_path / "agents.epoch").read_text() == "2"


def report(exec_id: str, exec_type: fx.ExecType = fx.ExecType.TRADE, *, cl_ord_id: str = "H5",
           side: fx.Side = fx.Side.SELL) -> ExecutionReport:
    return ExecutionReport(
        order_id="1", exec_id=exec_id, exec_type=exec_type, ord_status=fx.OrdStatus.FILLED,
        side=side, leaves_qty=60, cum_qty=40, avg_px=1_900_000, cl_ord_id=cl_ord_id,
        symbol="AAPL", last_qty=40, last_px=1_900_000)


class FakeClient:
    def __init__(self) -> None:
        self.submitted: list[tuple[bytes, int, asyncio.Future]] = []

    def submit(self, payload: bytes, budget_ns: int = 0) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.submitted.append((payload, budget_ns, future))
        return future


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Callable[..., AgentHost]]:
    """Makes a host of SPECS logging to ``agents.log``; closes its log afterwards."""
    made: list[AgentHost] = []

    def make(**options) -> AgentHost:
        log = NodeLog(tmp_path / "agents.log", WallClock())
        made.append(AgentHost(load_specs(write(tmp_path, SPECS)), WallClock(), log, **options))
        return made[-1]

    yield make
    for h in made:
        h.log.close()


def events(h: AgentHost, event: str) -> list:
    return [e for e in read_node_log(h.log.path) if e.event == event]


def test_fills_from_trade_reports_reach_every_agent_once(host):
    assert fill_of(report("E1", fx.ExecType.NEW), 0) is None
    fill = fill_of(report("E1"), 7)
    assert (fill.side, fill.qty, fill.price, fill.leaves_qty) == (Side.SELL, 40, 1_900_000, 60)
    h = host()
    h.on_report(report("E1"))
    h.on_report(report("E1"))  # a PossDup resend, or the same report twice
    h.on_report(report("E2", fx.ExecType.NEW))
    assert h.agents[2].books["AAPL"].qty == -40
    assert [(e.id, e.kind, e.index) for e in events(h, "fill")] == [("H5", "SELL", 40)]
    states = {e.id: json.loads(e.detail) for e in events(h, "state")}
    assert states["risk0"]["position"] == {"AAPL": -40} and set(states) == {"mv0", "mm0", "risk0"}


def test_a_replayed_log_spends_seqs_and_proposes_nothing_then_live_outcomes_submit(host):
    async def scenario() -> None:
        h = host()
        h.client = FakeClient()  # type: ignore[assignment]
        ballot = Proposal("mm0", 9, 0, OrderIntent("AAPL", Side.BUY, 100, 1_899_800))
        fair = FairValue("AAPL", 1_900_000, 100)
        h.on_outcome(CommittedProposal(1, ballot), Outcome(1, Verdict.PENDING))
        h.on_outcome(CommittedProposal(2, Proposal("mv0", 3, 0, fair)),
                     Outcome(2, Verdict.APPLIED, fair_value=fair))
        assert h.client.submitted == [] and h.agents[1].seq >= 9 and h.agents[0].seq >= 3
        seq = h.agents[1].seq
        h.replaying = False
        h.agents[1].quoted.clear()
        h.agents[1].outstanding.clear()  # the replay's dropped quotes (they expire in time)
        moved = FairValue("AAPL", 1_910_000, 100)
        h.on_outcome(CommittedProposal(3, Proposal("mv0", 4, 0, moved)),
                     Outcome(3, Verdict.APPLIED, fair_value=moved))
        proposed = events(h, "proposed")
        assert [(e.id, e.index, e.detail) for e in proposed] == [
            ("mm0", seq + 1, "fair_value"), ("mm0", seq + 2, "fair_value")]
        _, budget, first = h.client.submitted[0]
        assert budget == 50_000_000  # budget_ms from the spec
        first.set_result(SimpleNamespace(reply=SimpleNamespace(abandoned=True, index=4)))
        await asyncio.sleep(0)
        h.write_stats()
        stats = {e.id: json.loads(e.detail) for e in events(h, "stats")}
        assert stats["mm0"]["pending"] == 1 and stats["mm0"]["proposed"] == 2
        assert stats["mm0"]["abandoned"] == 1 and stats["mv0"]["applied"] == 2

    asyncio.run(scenario())


def test_book_changes_are_flushed_at_most_once_per_interval(host):
    async def scenario() -> None:
        h, book, views = watched_host(host, 100_000_000)
        change = [SimpleNamespace(symbol="AAPL"), SimpleNamespace(symbol="MSFT")]
        h._on_feed(change)
        h._on_feed(change)  # same turn: one view
        await asyncio.sleep(0.01)
        assert [v.symbol for v in views] == ["AAPL"] and views[0].bids[0].qty == 500
        book.add(4, Side.BUY, 1_895_000, 100)
        h._on_feed(change)  # within the interval: waits for its end
        await asyncio.sleep(0.02)
        assert len(views) == 1
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(views) == 2:
                break
        assert views[1].bids[0].price == 1_895_000
        assert (views[1].ts - views[0].ts) >= 100_000_000

    asyncio.run(scenario())


def test_a_restarted_host_gets_its_fills_back_and_does_not_count_a_resend_twice(host):
    def replay(h: AgentHost) -> None:
        fair = FairValue("AAPL", 1_900_000, 100)
        h.on_outcome(CommittedProposal(1, Proposal("mv0", 1, 0, fair)),
                     Outcome(1, Verdict.APPLIED, fair_value=fair))
        bid = OrderIntent("AAPL", Side.BUY, 100, 1_899_800)
        h.on_outcome(CommittedProposal(2, Proposal("mm0", 1, 0, bid)),
                     Outcome(2, Verdict.DECIDED, Decision("H2", 2, bid, "H2", ("mm0",))))

    async def scenario() -> None:
        first = host()
        first.client = FakeClient()  # type: ignore[assignment]
        replay(first)
        first.replaying = False
        first.on_report(report("E1", cl_ord_id="H2", side=fx.Side.BUY))
        assert first.agents[1].inventory == {"AAPL": 40}
        first.log.write("fill", id="H2", kind="BUY", index=5, detail="AAPL px=oops leaves=0")
        first.log.close()  # the node is killed (after a damaged line, say)
        again = host()
        replay(again)  # the committed log, as the node replays it at start
        assert again.agents[1].inventory == {}
        assert again.restore_reports() == 1
        errors = [e for e in read_node_log(again.log.path) if e.event == "error"]
        assert len(errors) == 1 and "px=oops" in errors[0].detail
        maker, risk = again.agents[1], again.agents[2]
        assert maker.inventory == {"AAPL": 40} and risk.books["AAPL"].qty == 40
        again.client = FakeClient()  # type: ignore[assignment]
        again.replaying = False
        again.on_report(report("E1", cl_ord_id="H2", side=fx.Side.BUY))  # the venue's resend
        again.on_report(report("E2", cl_ord_id="H2", side=fx.Side.BUY))
        assert maker.inventory == {"AAPL": 80} and risk.books["AAPL"].qty == 80

    asyncio.run(scenario())


def test_only_the_venues_verdicts_end_an_order():
    assert ended_order_of(report("E1", fx.ExecType.CANCELED, cl_ord_id="H2")) == "H2"
    assert ended_order_of(msgspec.structs.replace(
        report("E2", fx.ExecType.CANCELED, cl_ord_id="C1"), orig_cl_ord_id="H2")) == "H2"
    assert ended_order_of(report("E3", fx.ExecType.EXPIRED, cl_ord_id="H2")) == "H2"
    # the venue's verdict (every session gets it) ends the order; this node's own copy refused
    # as a duplicate says nothing about the order
    refused = msgspec.structs.replace(report("E4", fx.ExecType.REJECTED, cl_ord_id="H2"),
                                      ord_rej_reason=fx.OrdRejReason.EXCHANGE_CLOSED)
    assert ended_order_of(refused) == "H2"
    duplicate = msgspec.structs.replace(refused, ord_rej_reason=fx.OrdRejReason.DUPLICATE_ORDER)
    assert ended_order_of(duplicate) is None
    assert ended_order_of(report("E5", cl_ord_id="H2")) is None  # a fill: on_fill's business
    too_late = OrderCancelReject(order_id="1", cl_ord_id="C1", orig_cl_ord_id="H2",
                                 ord_status=fx.OrdStatus.FILLED,
                                 cxl_rej_response_to=fx.CxlRejResponseTo.ORDER_CANCEL)
    assert ended_order_of(too_late) == "H2"
    live = msgspec.structs.replace(too_late, ord_status=fx.OrdStatus.NEW)
    assert ended_order_of(live) is None


def quoting_host(host) -> tuple[AgentHost, MarketMakerAgent, OrderIntent]:
    """A live host whose maker has quoted on a committed fair value at log index 1; its bid."""
    h = host()
    h.client = FakeClient()  # type: ignore[assignment]
    h.replaying = False
    maker = h.agents[1]
    fair = FairValue("AAPL", 1_900_000, 100)
    h.on_outcome(CommittedProposal(1, Proposal("mv0", 1, 0, fair)),
                 Outcome(1, Verdict.APPLIED, fair_value=fair))
    return h, maker, next(a for _, a, _ in maker.outstanding if a.side is Side.BUY)


def test_a_fill_reported_after_its_cancel_was_decided_still_counts_for_the_order(host):
    """The venue filled the order before the cancel reached it; this node's FIX session reports
    the fill after the log decided the cancel. The maker no longer counts on the order, but the
    fill is its own: every node's makers hold the same inventory."""
    async def scenario() -> None:
        h, maker, bid = quoting_host(host)
        order = Decision("H2", 2, bid, "H2", ("mm0",))
        h.on_outcome(CommittedProposal(2, Proposal("mm0", 1, 0, bid)),
                     Outcome(2, Verdict.DECIDED, order))
        assert "H2" in maker.orders
        cancel = Decision("H3", 3, CancelIntent("H2"), "H3", ("mm0",))
        h.on_outcome(CommittedProposal(3, Proposal("mm0", 9, 0, cancel.action)),
                     Outcome(3, Verdict.DECIDED, cancel))
        assert "H2" not in maker.orders  # at once, as on every node
        h.on_report(report("E1", cl_ord_id="H2", side=fx.Side.BUY))  # filled before the cancel
        assert maker.inventory == {"AAPL": 40}
        h.on_report(OrderCancelReject(order_id="NONE", cl_ord_id="H3", orig_cl_ord_id="H2",
                                      ord_status=fx.OrdStatus.FILLED,
                                      cxl_rej_response_to=fx.CxlRejResponseTo.ORDER_CANCEL))
        assert all("H2" not in agent._closing for agent in h.agents)  # the venue is done
        h.on_report(report("E2", cl_ord_id="H2", side=fx.Side.BUY))  # nothing is open any more
        assert maker.inventory == {"AAPL": 40}

    asyncio.run(scenario())


def test_reports_of_an_order_not_yet_applied_wait_for_its_decision(host):
    """A node behind the others hears the fill of an order the others decided before it applies
    the order itself: the fill reaches its agents after the decision, so its maker counts it."""
    async def scenario() -> None:
        h = host(session="AG")
        h.client = FakeClient()  # type: ignore[assignment]
        h.replaying = False
        maker, risk = h.agents[1], h.agents[2]
        for agent in h.agents:  # the agents' time is the wall clock's, as the ticks make it
            agent.on_tick(h.clock.now_ns())
        fair = FairValue("AAPL", 1_900_000, 100)
        h.on_outcome(CommittedProposal(1, Proposal("mv0", 1, 0, fair)),
                     Outcome(1, Verdict.APPLIED, fair_value=fair))
        bid = next(a for _, a, _ in maker.outstanding if a.side is Side.BUY)
        h.on_report(report("E1", cl_ord_id="AG3", side=fx.Side.BUY))  # index 3: not yet here
        h.on_report(report("E1", cl_ord_id="AG3", side=fx.Side.BUY))  # a resend, parked too
        h.on_report(report("E2", fx.ExecType.CANCELED, cl_ord_id="AG5"))
        h.on_report(report("E3", cl_ord_id="OTHER1", side=fx.Side.SELL))  # not this log's
        assert len(h.early) == 3 and risk.books["AAPL"].qty == -40 and maker.inventory == {}
        ballot = Proposal("mm9", 1, 0, bid)  # a ballot of another node's maker (pending)
        h.on_outcome(CommittedProposal(2, ballot), Outcome(2, Verdict.PENDING))
        assert len(h.early) == 3
        decided = Decision("AG3", 3, bid, "AG3", ("mm8", "mm9"))  # mm0 not among the voters
        h.on_outcome(CommittedProposal(3, ballot), Outcome(3, Verdict.DECIDED, decided))
        assert maker.inventory == {"AAPL": 40} and risk.books["AAPL"].qty == 0
        assert [e.id for e in events(h, "fill")] == ["OTHER1", "AG3"]  # once per ExecID
        assert len(h.early) == 1  # the cancel of index 5 waits on
        h.on_outcome(CommittedProposal(6, Proposal("mv0", 2, 0, fair)),
                     Outcome(6, Verdict.APPLIED, fair_value=fair))  # index 5 was no order
        assert len(h.early) == 0
        h.on_report(report("E4", cl_ord_id="AG3", side=fx.Side.BUY))  # applied: goes on at once
        assert maker.inventory == {"AAPL": 80}

    asyncio.run(scenario())


def test_quotes_proposed_before_the_first_tick_are_recognised_when_decided(host):
    """A fresh node's maker quotes on the first committed fair value before any book view or
    tick has told it the time: the host passes the time with the outcome, so the quotes do not
    expire at the first tick and another node's decision of them is the maker's own (a CI run
    once left node 2's maker without its fill this way)."""
    async def scenario() -> None:
        h, maker, bid = quoting_host(host)
        h._run("tick", lambda a: a.on_tick(h.clock.now_ns()))  # the first tick, just after
        decided = Decision("H2", 2, bid, "H2", ("mm8", "mm9"))  # other nodes' makers voted
        h.on_outcome(CommittedProposal(2, Proposal("mm9", 1, 0, bid)),
                     Outcome(2, Verdict.DECIDED, decided))
        assert "H2" in maker.orders

    asyncio.run(scenario())


def test_a_parked_report_whose_decision_never_comes_goes_on_after_the_hold(host):
    async def scenario() -> None:
        h = host(session="AG", tick_ns=5_000_000)
        h.early.hold_ns = 20_000_000
        h.replaying = False
        task = asyncio.create_task(h._ticks())
        try:
            h.on_report(report("E1", cl_ord_id="AG7", side=fx.Side.BUY))
            await asyncio.sleep(0.01)
            assert len(h.early) == 1 and "AAPL" not in h.agents[2].books
            for _ in range(100):
                await asyncio.sleep(0.01)
                if not h.early:
                    break
        finally:
            task.cancel()
        assert h.agents[2].books["AAPL"].qty == 40 and h.agents[1].inventory == {}
        unclaimed = events(h, "unclaimed")
        assert [(e.id, e.kind) for e in unclaimed] == [("AG7", "ExecutionReport")]

    asyncio.run(scenario())


def status(order_id: str, exec_type: fx.ExecType, ord_status: fx.OrdStatus, leaves: int, *,
           cl_ord_id: str, orig: str | None = None) -> ExecutionReport:
    return ExecutionReport(
        order_id=order_id, exec_id=f"x{order_id}{exec_type.value}{leaves}", exec_type=exec_type,
        ord_status=ord_status, side=fx.Side.BUY, leaves_qty=leaves, cum_qty=0, avg_px=0,
        cl_ord_id=cl_ord_id, orig_cl_ord_id=orig, symbol="AAPL")


def test_own_orders_follow_the_venue_reports():
    own = OwnOrders()
    S, T = fx.OrdStatus, fx.ExecType
    assert own.on_report(status("11", T.NEW, S.NEW, 100, cl_ord_id="a")) == "AAPL"
    assert own.on_report(status("11", T.NEW, S.NEW, 100, cl_ord_id="a")) is None  # a resend
    assert own.on_report(status("12", T.NEW, S.NEW, 50, cl_ord_id="b")) == "AAPL"
    assert own.on_report(status("11", T.TRADE, S.PARTIALLY_FILLED, 60, cl_ord_id="a")) is None
    assert own.ids == {11, 12}
    # a replace: the venue gives the order a new id; the old one leaves with the report
    assert own.on_report(status("13", T.REPLACED, S.NEW, 60, cl_ord_id="a2", orig="a")) == "AAPL"
    assert own.ids == {12, 13}
    assert own.on_report(status("13", T.CANCELED, S.CANCELED, 0, cl_ord_id="c", orig="a2"))
    assert own.on_report(status("12", T.TRADE, S.FILLED, 0, cl_ord_id="b")) == "AAPL"
    assert own.ids == set() and own._by_cl_ord_id == {}
    assert own.on_report(status("NONE", T.REJECTED, S.REJECTED, 0, cl_ord_id="d")) is None
    for odd in ("", "12a", "\u00b2", "-5"):  # not a venue order id: ignored, never a crash
        assert own.on_report(status(odd, T.NEW, S.NEW, 10, cl_ord_id="z")) is None, odd
    assert own.ids == set()
    assert own.on_report(OrderCancelReject(
        order_id="NONE", cl_ord_id="e", orig_cl_ord_id="d", ord_status=S.REJECTED,
        cxl_rej_response_to=fx.CxlRejResponseTo.ORDER_CANCEL_REQUEST)) is None


def test_an_expected_order_holds_its_symbols_views_until_the_venues_verdict():
    own = OwnOrders(hold_ns=1_000)
    S, T = fx.OrdStatus, fx.ExecType
    own.expect("q1", "AAPL", 100)
    assert own.held_until("AAPL", 100) == 1_100 and own.held_until("MSFT", 100) is None
    duplicate = status("NONE", T.REJECTED, S.REJECTED, 0, cl_ord_id="q1")
    duplicate = msgspec.structs.replace(duplicate, ord_rej_reason=fx.OrdRejReason.DUPLICATE_ORDER)
    assert own.on_report(duplicate) is None  # this node's copy refused: no verdict yet
    assert own.held_until("AAPL", 500) == 1_100
    assert own.on_report(status("11", T.NEW, S.NEW, 100, cl_ord_id="q1")) == "AAPL"
    assert own.held_until("AAPL", 500) is None and own.ids == {11}
    own.expect("q1", "AAPL", 600)  # applied after its verdict came (a faster node sent it)
    assert own.held_until("AAPL", 600) is None
    own.expect("q2", "AAPL", 700)  # the venue's reject is a verdict too
    assert own.on_report(status("NONE", T.REJECTED, S.REJECTED, 0, cl_ord_id="q2")) == "AAPL"
    own.expect("q3", "AAPL", 800)  # no verdict at all: the hold ends
    assert own.held_until("AAPL", 1_799) == 1_800 and own.held_until("AAPL", 1_800) is None
    assert own._awaited == {}


def test_reports_that_are_no_verdict_leave_a_hold_in_place():
    """Bad or unrelated input: a report without ClOrdID, a cancel reject naming the awaited
    id, a report of an unknown order: the hold stays, nothing raises."""
    own = OwnOrders(hold_ns=1_000)
    S, T = fx.OrdStatus, fx.ExecType
    own.expect("q1", "AAPL", 0)
    assert own.on_report(status("11", T.NEW, S.NEW, 100, cl_ord_id="")) == "AAPL"  # new id
    assert own.on_report(OrderCancelReject(
        order_id="NONE", cl_ord_id="c9", orig_cl_ord_id="q1", ord_status=S.REJECTED,
        cxl_rej_response_to=fx.CxlRejResponseTo.ORDER_CANCEL_REQUEST)) is None
    assert own.on_report(status("NONE", T.REJECTED, S.REJECTED, 0, cl_ord_id="zz")) is None
    assert own.held_until("AAPL", 10) == 1_000


def watched_host(host, book_interval_ns: int) -> tuple[AgentHost, L3Book, list]:
    """A host over a seeded AAPL book (orders 2 and 3); the views its first agent gets."""
    h = host(book_interval_ns=book_interval_ns, symbols=["AAPL"])
    book = L3Book("AAPL")
    book.add(2, Side.BUY, 1_890_000, 500)
    book.add(3, Side.SELL, 1_910_000, 500)
    h.feed = SimpleNamespace(handler=SimpleNamespace(books={"AAPL": book}))  # type: ignore
    views: list = []
    h.agents[0].on_book = lambda view: views.append(view) or []  # type: ignore[method-assign]
    return h, book, views


def live_host(host, hold_ns: int) -> tuple[AgentHost, L3Book, list]:
    """A live host (not replaying) over a seeded AAPL book; the views its first agent gets."""
    h, book, views = watched_host(host, 1_000_000)
    h.replaying = False
    h.own.hold_ns = hold_ns
    return h, book, views


def decide(h: AgentHost, index: int, intent: OrderIntent, cl_ord_id: str) -> None:
    """The applier's outcome of a decided order at log ``index``."""
    h.on_outcome(CommittedProposal(index, Proposal("mm0", 100 + index, 0, intent)),
                 Outcome(index, Verdict.DECIDED,
                         decision=Decision(f"d{index}", index, intent, cl_ord_id, ("mm0",))))


def test_a_decided_order_holds_the_views_until_its_report_or_the_holds_end(host):
    """The Add Order of a decided order before its report: no view counts it as the market's."""
    async def scenario() -> None:
        h, book, views = live_host(host, 200_000_000)
        intent = OrderIntent("AAPL", Side.BUY, 100, 1_895_000)
        decide(h, 5, intent, "AN5")
        decide(h, 6, intent, "AN6")
        book.add(11, Side.BUY, 1_895_000, 100)  # the venue took AN5: its Add comes first
        h._on_feed([SimpleNamespace(symbol="AAPL")])
        await asyncio.sleep(0.02)
        assert views == []
        h.on_report(status("11", fx.ExecType.NEW, fx.OrdStatus.NEW, 100, cl_ord_id="AN5"))
        await asyncio.sleep(0.02)
        assert views == []  # AN6 still awaits its verdict
        h.on_report(status("NONE", fx.ExecType.REJECTED, fx.OrdStatus.REJECTED, 0,
                            cl_ord_id="AN6"))
        await asyncio.sleep(0.02)  # the last verdict flushes at once, not at the hold's end
        assert [(v.bids[0].price, v.bids[0].qty) for v in views] == [(1_890_000, 500)]
        decide(h, 7, OrderIntent("AAPL", Side.SELL, 100, 1_905_000), "AN7")
        book.add(12, Side.SELL, 1_905_000, 100)
        h._on_feed([SimpleNamespace(symbol="AAPL")])
        started = h.clock.now_ns()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(views) == 2:
                break
        assert h.clock.now_ns() - started >= 100_000_000  # no verdict: held until the hold ends
        assert (views[1].asks[0].price, views[1].asks[0].qty) == (1_905_000, 100)  # then counted

    asyncio.run(scenario())


def test_a_stream_of_decided_orders_holds_the_views_for_one_hold_at_most(host):
    async def scenario() -> None:
        h, _, views = live_host(host, 100_000_000)
        intent = OrderIntent("AAPL", Side.BUY, 100, 1_895_000)
        started = h.clock.now_ns()
        for n in range(50):  # a new decided order every 10 ms or more, none answered
            decide(h, n, intent, f"AN{n}")
            h._on_feed([SimpleNamespace(symbol="AAPL")])
            await asyncio.sleep(0.01)
            if views:
                break
        waited_ms = (h.clock.now_ns() - started) / 1e6
        assert views, "the stream kept the views waiting past one hold"
        assert waited_ms >= 100, waited_ms

    asyncio.run(scenario())


@pytest.mark.parametrize("exclude_own", [True, False])
def test_book_views_leave_out_the_participants_own_orders(host, exclude_own):
    async def scenario() -> None:
        h = host(book_interval_ns=1_000_000, symbols=["AAPL"], exclude_own=exclude_own)
        book = L3Book("AAPL")
        book.add(11, Side.BUY, 1_895_000, 100)  # ours: its report names venue order 11
        book.add(2, Side.BUY, 1_890_000, 500)
        book.add(3, Side.SELL, 1_910_000, 500)
        h.feed = SimpleNamespace(handler=SimpleNamespace(books={"AAPL": book}))  # type: ignore
        views: list = []
        h.agents[0].on_book = lambda view: views.append(view) or []  # type: ignore[method-assign]

        async def next_view(count: int) -> None:
            for _ in range(100):
                await asyncio.sleep(0.005)
                if len(views) >= count:
                    return

        h._on_feed([SimpleNamespace(symbol="AAPL")])  # the Add Order came before the report
        await next_view(1)
        assert (views[0].bids[0].price, views[0].bids[0].qty) == (1_895_000, 100)
        h.on_report(status("11", fx.ExecType.NEW, fx.OrdStatus.NEW, 100, cl_ord_id="q1"))
        await next_view(2)  # the report alone refreshes the view, when it changes it
        assert len(views) == (2 if exclude_own else 1)
        best = views[-1].bids[0]
        assert (best.price, best.qty) == ((1_890_000, 500) if exclude_own else (1_895_000, 100))
        assert views[-1].asks[0].qty == 500
    asyncio.run(scenario())


def test_the_venues_fix_order_id_is_its_itch_order_reference(tmp_path):
    """What OwnOrders relies on: a resting order's FIX OrderID names the ITCH Add Order's order
    reference number, also after a replace (which gives the order a new one)."""
    core = VenueCore(load_config(write_config(tmp_path, CONFIG)))
    fix, itch = FixOrders("FIRM1"), ItchMapper()
    reports: list = []
    refs: list[int] = []

    def follow(seq: int, events) -> None:
        reports.extend(fix.apply(seq, events))
        for m in itch.map_events(events):
            if isinstance(m, itch50.AddOrder):
                refs.append(m.order_reference_number)
            elif isinstance(m, itch50.OrderReplace):
                refs.append(m.new_order_reference_number)

    core.subscribe(follow, replay=True)
    try:
        core.submit(NewOrder("FIRM1", "o1", "AAPL", Side.BUY, 100, 1_890_000))
        core.submit(ReplaceOrder("FIRM1", int(reports[-1].order_id), "o2", 1_891_000, 200))
    finally:
        core.close()
    assert [r.exec_type for r in reports] == [fx.ExecType.NEW, fx.ExecType.REPLACED]
    assert [int(r.order_id) for r in reports] == refs
    assert refs[0] != refs[1]


def test_a_hosted_reporter_reports_ended_orders_and_follows_the_log(tmp_path):
    """A fill that leaves nothing and a venue's own cancel become OrderDone proposals; an order
    the log ended on another reporter's word is not reported again."""
    async def scenario() -> None:
        log = NodeLog(tmp_path / "agents.log", WallClock())
        spec = [{"kind": "reporter", "name": "rep0", "seed": "host:rep0"}]
        h = AgentHost(load_specs(write(tmp_path, spec)), WallClock(), log)
        h.client, h.replaying = FakeClient(), False  # type: ignore[assignment]
        bid = OrderIntent("AAPL", Side.BUY, 40, 1_900_000)
        for index in (2, 3, 4):
            order = Decision(f"H{index}", index, bid, f"H{index}", ("mm0",))
            h.on_outcome(CommittedProposal(index, Proposal("mm0", index, 0, bid)),
                         Outcome(index, Verdict.DECIDED, order))
        full = msgspec.structs.replace(report("E1", cl_ord_id="H2", side=fx.Side.BUY),
                                       leaves_qty=0)
        h.on_report(full)
        h.on_report(ExecutionReport(order_id="2", exec_id="E2", exec_type=fx.ExecType.CANCELED,
                                    ord_status=fx.OrdStatus.CANCELED, side=fx.Side.BUY,
                                    leaves_qty=0, cum_qty=0, avg_px=0, cl_ord_id="H3"))
        done = OrderDone("H4", "filled")
        h.on_outcome(CommittedProposal(5, Proposal("rep9", 1, 0, done)),
                     Outcome(5, Verdict.APPLIED, ended="H4"))  # another node's reporter
        h.on_report(msgspec.structs.replace(full, exec_id="E3", cl_ord_id="H4"))
        proposed = [msgspec.msgpack.decode(p, type=Proposal).action
                    for p, _, _ in h.client.submitted]
        assert proposed == [OrderDone("H2", "filled"), OrderDone("H3", "ended")]
        assert h.agents[0].live == {}
        log.close()

    asyncio.run(scenario())


def test_a_restarted_reporter_proposes_again_the_reports_the_log_never_got(tmp_path):
    """A node with the only reporter is killed after its reports of a fill to zero and of a
    venue's cancel reached ``agents.log`` but before the cluster committed them: the restarted
    node's reporter proposes both again (the ``done`` line brings back the cancel), and not the
    report the log did commit."""
    spec = [{"kind": "reporter", "name": "rep0", "seed": "host:rep0",
             "config": {"repeat_ms": 1}}]
    bid = OrderIntent("AAPL", Side.BUY, 40, 1_900_000)

    def make() -> AgentHost:
        log = NodeLog(tmp_path / "agents.log", WallClock())
        return AgentHost(load_specs(write(tmp_path, spec)), WallClock(), log)

    def replay(h: AgentHost, *, done_h4: bool) -> None:
        for index in (2, 3, 4):
            decided = Decision(f"H{index}", index, bid, f"H{index}", ("mm0",))
            h.on_outcome(CommittedProposal(index, Proposal("mm0", index, 0, bid)),
                         Outcome(index, Verdict.DECIDED, decided))
        if done_h4:
            h.on_outcome(CommittedProposal(5, Proposal("rep0", 1, 0, OrderDone("H4", "filled"))),
                         Outcome(5, Verdict.APPLIED, ended="H4"))

    def proposed(h: AgentHost) -> list:
        return [msgspec.msgpack.decode(p, type=Proposal).action for p, _, _ in h.client.submitted]

    async def scenario() -> None:
        first = make()
        first.client = FakeClient()  # type: ignore[assignment]
        replay(first, done_h4=False)
        first.replaying = False
        full = msgspec.structs.replace(report("E1", cl_ord_id="H4", side=fx.Side.BUY),
                                       leaves_qty=0)
        first.on_report(full)  # this report commits (index 5): replayed below
        first.on_report(msgspec.structs.replace(full, exec_id="E2", cl_ord_id="H2"))
        first.on_report(ExecutionReport(order_id="3", exec_id="E3",
                                        exec_type=fx.ExecType.CANCELED,
                                        ord_status=fx.OrdStatus.CANCELED, side=fx.Side.BUY,
                                        leaves_qty=0, cum_qty=0, avg_px=0, cl_ord_id="H3"))
        assert proposed(first) == [OrderDone("H4", "filled"), OrderDone("H2", "filled"),
                                   OrderDone("H3", "ended")]
        first.log.close()  # killed: only the first report was committed
        again = make()
        again.client = FakeClient()  # type: ignore[assignment]
        replay(again, done_h4=True)
        assert again.restore_reports() == 2  # the fills; the cancel came back from its line
        assert proposed(again) == []  # nothing is proposed while replaying
        again.replaying = False
        await asyncio.sleep(0.002)
        again._run("tick", lambda a: a.on_tick(again.clock.now_ns()))
        assert sorted(proposed(again), key=lambda a: a.decision_id) == [
            OrderDone("H2", "filled"), OrderDone("H3", "ended")]
        again.log.close()

    asyncio.run(scenario())
