"""Execution: slice a parent OrderIntent into child OrderIntents over time (TWAP) and by size.

``start(parent, start_ns, end_ns)`` spreads ``parent.qty`` over ``N = ceil((end - start) /
slice_ns)`` equal time slices. Slice ``k`` (from ``start + k * slice_ns``) brings the target
released quantity to ``parent.qty * min(k + 1, N) // N`` (integer partition: the slices sum to the
parent exactly); at the first tick in a slice the agent proposes one child for what the target
exceeds the quantity released so far, capped at ``max_child_qty``. Ticks skipped by the caller are
caught up in one child (still capped); after ``end_ns`` the rest goes out ``max_child_qty`` per
slice. Children keep the parent's symbol, side, limit price and TimeInForce.

"Released" counts children proposed and not refused: a child that expires undecided (vetoed,
outside the collar, abandoned) gives its quantity back to be released again in a later slice.
The parent is done when decided children add up to ``parent.qty``.

Limitations: one parent at a time; the schedule counts *decided* children, so the unfilled rest
of an IOC child is not sent again (fills are counted in ``filled`` for the caller to see).
"""

from __future__ import annotations

from typing import Any

from agora.core.events import Decision, OrderIntent
from agora.decision.agents.base import Action, Agent, Fill, LiveOrder
from agora.decision.rules import Role
from agora.decision.signing import AgentKey


class ExecutionAgent(Agent):
    """Works one parent order as TWAP child orders (a STRATEGY-role agent)."""

    role = Role.STRATEGY

    def __init__(
        self, name: str, key: AgentKey, *, slice_ns: int, max_child_qty: int, **kw: Any
    ) -> None:
        super().__init__(name, key, **kw)  # kw: the Agent options (budget_ns, pending_ttl_ns)
        if slice_ns <= 0 or max_child_qty <= 0:
            raise ValueError("slice_ns and max_child_qty must be > 0")
        self.slice_ns = slice_ns
        self.max_child_qty = max_child_qty
        self.parent: OrderIntent | None = None
        self.start_ns = 0
        self.slices = 0
        self.released = 0
        self.decided = 0
        self.filled = 0
        self._next_slice = 0

    def start(self, parent: OrderIntent, start_ns: int, end_ns: int) -> None:
        """Begin working ``parent`` from ``start_ns`` to ``end_ns`` (children come on ticks)."""
        if self.parent is not None and not self.done:
            raise ValueError(f"{self.name} is still working {self.parent}")
        if parent.qty <= 0 or end_ns <= start_ns:
            raise ValueError("a parent needs qty > 0 and end_ns > start_ns")
        self.parent = parent
        self.start_ns = start_ns
        self.slices = -(-(end_ns - start_ns) // self.slice_ns)
        self.released = self.decided = self.filled = self._next_slice = 0

    @property
    def done(self) -> bool:
        return self.parent is not None and self.decided >= self.parent.qty

    def target(self, slice_index: int) -> int:
        """Quantity that should be released once slice ``slice_index`` has begun."""
        assert self.parent is not None
        return self.parent.qty * min(slice_index + 1, self.slices) // self.slices

    def _tick(self, now_ns: int) -> list[Action]:
        parent = self.parent
        if parent is None or self.done or now_ns < self.start_ns:
            return []
        k = (now_ns - self.start_ns) // self.slice_ns
        if k < self._next_slice:
            return []
        self._next_slice = k + 1
        child = min(self.target(k) - self.released, self.max_child_qty)
        if child <= 0:
            return []
        self.released += child
        return [OrderIntent(parent.symbol, parent.side, child, parent.price, parent.tif)]

    def _decided(self, decision: Decision, mine: bool) -> list[Action]:
        if mine and isinstance(decision.action, OrderIntent):
            self.decided += decision.action.qty
        return []

    def _expired(self, action: Action) -> list[Action]:
        if isinstance(action, OrderIntent):
            self.released -= action.qty
        return []

    def _fill(self, fill: Fill, order: LiveOrder | None) -> list[Action]:
        if order is not None:
            self.filled += fill.qty
        return []
