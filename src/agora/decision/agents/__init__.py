"""Built-in agents and the agent API they share.

``base``: :class:`Agent` (inputs in, signed proposals out; own-order bookkeeping) and
:class:`Fill`. Views: :class:`MarketViewAgent` (fair value from microprice and depth imbalance).
Risk: :class:`RiskAgent` (position, notional, loss; vetoes). Strategies:
:class:`MarketMakerAgent` (quotes around the committed fair value), :class:`MomentumAgent`
(order-flow imbalance), :class:`ExecutionAgent` (TWAP slicing of a parent order). Reports:
:class:`ReporterAgent` (tells the log which decided orders the venue is done with).
Agents never read a clock and never import the consensus layer; they see the committed log only
through the decisions and fair values the rules derive from it.
"""

from agora.decision.agents.base import DEFAULT_BUDGET_NS, Agent, Fill, LiveOrder, fills_for
from agora.decision.agents.execution import ExecutionAgent
from agora.decision.agents.market_maker import MarketMakerAgent, MarketMakerConfig
from agora.decision.agents.market_view import MarketViewAgent, MarketViewConfig
from agora.decision.agents.momentum import MomentumAgent, MomentumConfig
from agora.decision.agents.reporter import ReporterAgent, ReporterConfig
from agora.decision.agents.risk import RiskAgent, RiskLimits

__all__ = [
    "DEFAULT_BUDGET_NS",
    "Agent",
    "ExecutionAgent",
    "Fill",
    "LiveOrder",
    "MarketMakerAgent",
    "MarketMakerConfig",
    "MarketViewAgent",
    "MarketViewConfig",
    "MomentumAgent",
    "MomentumConfig",
    "ReporterAgent",
    "ReporterConfig",
    "RiskAgent",
    "RiskLimits",
    "fills_for",
]
