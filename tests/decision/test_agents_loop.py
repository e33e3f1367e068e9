"""Agents and rules closed in a loop: proposals are committed in order (a stand-in for consensus),
the rules decide, and decisions and committed fair values flow back to every agent."""

from __future__ import annotations

from agora.core.enums import Side
from agora.core.events import CancelIntent, Decision, OrderIntent, Proposal
from agora.decision.agents import (
    Agent,
    Fill,
    MarketMakerAgent,
    MarketMakerConfig,
    MarketViewAgent,
    RiskAgent,
    RiskLimits,
)
from agora.decision.agents.market_maker import quotes
from agora.decision.rules import Aggregator, CommittedProposal, RulesConfig, Verdict
from agora.decision.signing import AgentKey
from agora.feed.book import BookView, Level

MM = MarketMakerConfig(half_spread=200, qty=100, tick=100, requote_threshold=100)


class Loop:
    """Commits proposals first in, first out and feeds the results back to every agent."""

    def __init__(self, agents: list[Agent], **rules) -> None:
        self.agents = agents
        members = {a.name: a.member() for a in agents}
        self.aggregator = Aggregator(RulesConfig(members, session="L", **rules))
        self.index = 0
        self.decisions: list[Decision] = []
        self.verdicts: list[tuple[str, Verdict]] = []

    def run(self, proposals: list[Proposal]) -> None:
        queue = list(proposals)
        while queue:
            proposal = queue.pop(0)
            self.index += 1
            outcome = self.aggregator.apply(CommittedProposal(self.index, proposal))
            self.verdicts.append((proposal.agent, outcome.verdict))
            if outcome.decision is not None:
                self.decisions.append(outcome.decision)
                for agent in self.agents:
                    queue += agent.on_decisions([outcome.decision])
            if outcome.fair_value is not None:
                for agent in self.agents:
                    queue += agent.on_fair_value(outcome.fair_value)

    def book(self, view: BookView) -> None:
        self.run([p for agent in self.agents for p in agent.on_book(view)])

    def fill(self, fill: Fill) -> None:
        self.run([p for agent in self.agents for p in agent.on_fill(fill)])


def cluster(risk: RiskLimits) -> tuple[Loop, list[MarketMakerAgent], RiskAgent]:
    views = [MarketViewAgent(f"view{i}", AgentKey.generate(f"loop-view{i}")) for i in range(3)]
    makers = [MarketMakerAgent(f"mm{i}", AgentKey.generate(f"loop-mm{i}"), MM) for i in range(3)]
    guard = RiskAgent("risk", AgentKey.generate("loop-risk"), risk)
    loop = Loop([*views, *makers, guard], view_quorum=2, vote_threshold=2, collar_bps=500)
    return loop, makers, guard


def book(ts: int, bid: int, ask: int) -> BookView:
    return BookView("AAA", ts, [Level(bid, 500, 3)], [Level(ask, 500, 3)])


def orders(decisions: list[Decision]) -> list[OrderIntent]:
    return [d.action for d in decisions if isinstance(d.action, OrderIntent)]


def test_three_replicas_of_a_market_maker_send_one_quote_per_side():
    loop, makers, _ = cluster(RiskLimits())
    loop.book(book(1_000, 999_900, 1_000_100))  # fair 1_000_000 (balanced)
    bid, ask = quotes(1_000_000, 0, MM)
    assert orders(loop.decisions) == [
        OrderIntent("AAA", Side.BUY, 100, bid),
        OrderIntent("AAA", Side.SELL, 100, ask),
    ]
    assert [d.client_order_id for d in loop.decisions] == ["L6", "L7"]  # views: 1-3, mm0: 4-5
    assert all(list(mm.orders) == ["L6", "L7"] for mm in makers)  # every replica agrees
    assert [v for a, v in loop.verdicts if a == "mm2"] == [Verdict.ABSORBED] * 2
    assert all(mm.outstanding == [] for mm in makers)


def test_fair_value_move_requotes_once_and_a_fill_moves_every_replica():
    loop, makers, guard = cluster(RiskLimits())
    loop.book(book(1_000, 999_900, 1_000_100))
    loop.book(book(2_000, 1_000_400, 1_000_600))  # fair 1_000_500: a 500 move
    cancels = [d.action for d in loop.decisions if isinstance(d.action, CancelIntent)]
    assert cancels == [CancelIntent("L6"), CancelIntent("L7")]
    assert orders(loop.decisions)[2:] == [
        OrderIntent("AAA", Side.BUY, 100, 1_000_300),
        OrderIntent("AAA", Side.SELL, 100, 1_000_700),
    ]
    live = list(makers[0].orders)
    assert all(list(mm.orders) == live for mm in makers) and len(live) == 2
    loop.fill(Fill(3_000, "AAA", Side.BUY, 100, 1_000_300, live[0], leaves_qty=0))
    assert all(mm.inventory == {"AAA": 100} for mm in makers)
    assert guard.books["AAA"].qty == 100
    assert orders(loop.decisions)[-2:] == [  # skewed down by 100 x 1
        OrderIntent("AAA", Side.BUY, 100, 1_000_200),
        OrderIntent("AAA", Side.SELL, 100, 1_000_600),
    ]


def test_a_risk_veto_stops_new_quotes_but_not_cancels():
    loop, makers, guard = cluster(RiskLimits(max_position=200, release_pct=50))
    loop.book(book(1_000, 999_900, 1_000_100))
    live = list(makers[0].orders)
    loop.fill(Fill(2_000, "AAA", Side.BUY, 100, 999_800, live[0], leaves_qty=0))
    # worst case after the requote's new bid: 100 long + 100 open = 200: vetoed
    assert guard.vetoes[("AAA", Side.BUY)].active
    vetoed_at = next(i for i, (a, v) in enumerate(loop.verdicts) if a == "risk") + 1
    later = [d for d in loop.decisions if d.log_index > vetoed_at]
    assert loop.aggregator.vetoed("AAA", Side.BUY)
    assert not loop.aggregator.vetoed("AAA", Side.SELL)  # a sell reduces the long
    assert all(o.side is Side.SELL for o in orders(later))
    loop.book(book(3_000, 1_000_400, 1_000_600))  # a move: cancels pass, new bids do not
    cancels = [d for d in loop.decisions if isinstance(d.action, CancelIntent)]
    assert cancels and cancels[-1].log_index > vetoed_at
    later = orders([d for d in loop.decisions if d.log_index > vetoed_at])
    assert all(o.side is Side.SELL for o in later)
    assert Verdict.VETOED in [v for _, v in loop.verdicts[vetoed_at:]]
