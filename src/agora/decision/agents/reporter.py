"""Reporter agent: tells the committed log when the venue is done with one of the cluster's orders.

The log holds decisions, not their fate at the venue, so without reports the rules (and every
node's applier) keep each decided order until it is cancelled by a decision: an order that fills,
expires or is refused by the venue stays for the rest of the session, and a cancel of it is still
decided and sent, only for the venue to refuse it. A reporter watches the account's reports (the
node hands it every fill and every end of an order its FIX session hears) and proposes
:class:`~agora.core.events.OrderDone` for each decided order that ends otherwise than by a
cancel decision: a fill that leaves nothing (``"filled"``), or an end the venue made itself
(expiry, an IOC remainder, the kill switch, a refusal: ``"ended"``). The rules end the order
once ``done_quorum`` distinct reporters said so (``rules.py`` item 7).

The reporter knows the orders still live from the decisions (an order decision adds one, a
cancel decision takes its target out: its end is the cancel's, which the log knows already;
:meth:`ReporterAgent.on_ended`, the log's end of an order, takes it out too, whoever reported
it), so its memory follows the open orders, even for a node that missed a report or restarted.
Every node may host one (each its own name and key, so that they count as distinct reporters
for ``done_quorum``); their reports of one end are committed once each and all but the quorum's
read ``ORDER_ENDED``.

A report is proposed again until the log ends its order: after ``repeat_ms``, then twice as long
each time, up to 64 times ``repeat_ms`` between two. A proposal can be lost (its node crashed
before it reached the cluster; the driver drops proposals while it replays, as after a restart,
when the fills and ends its ``agents.log`` recorded reach the agents again), and the quorum may
wait for reporters that are down. Without the repeat such an order, with a single reporter,
stayed live for the rest of the session. The rules count a reporter once per order, so a repeat
changes nothing but the log's length.
"""

from __future__ import annotations

import msgspec

from agora.core.events import CancelIntent, Decision, OrderDone, OrderIntent
from agora.decision.agents.base import Action, Agent, Fill, LiveOrder
from agora.decision.rules import Role
from agora.decision.signing import AgentKey

REPEAT_GROWTH_MAX = 64  # the longest wait between two proposals of a report, in repeat_ms


class ReporterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``repeat_ms``: how long a report waits for the log to end its order before it is
    proposed again (then twice as long each time; see the module notes)."""

    repeat_ms: int = 1_000

    def __post_init__(self) -> None:
        if self.repeat_ms <= 0:
            raise ValueError("repeat_ms must be positive")


class Unconfirmed(msgspec.Struct):
    """A report proposed and not yet seen to end its order."""

    reason: str
    due_ns: int  # when to propose it again
    wait_ns: int  # the wait before that


class ReporterAgent(Agent):
    role = Role.REPORT

    def __init__(self, name: str, key: AgentKey, config: ReporterConfig | None = None,
                 **kwargs) -> None:
        super().__init__(name, key, **kwargs)
        self.config = config or ReporterConfig()
        self.live: dict[str, str] = {}  # client order id -> decision id, decided orders open
        self._client_of: dict[str, str] = {}  # the same, decision id -> client order id
        self.unconfirmed: dict[str, Unconfirmed] = {}  # decision id -> its report

    def _decided(self, decision: Decision, mine: bool) -> list[Action]:
        action = decision.action
        if isinstance(action, OrderIntent):
            self.live[decision.client_order_id] = decision.decision_id
            self._client_of[decision.decision_id] = decision.client_order_id
        elif isinstance(action, CancelIntent):  # ended by the log itself: nothing to report
            self.on_ended(action.decision_id)
        return []

    def on_ended(self, decision_id: str) -> None:
        """The committed log ended this order (``Outcome.ended``): nothing left to report."""
        self.unconfirmed.pop(decision_id, None)
        client_order_id = self._client_of.pop(decision_id, None)
        if client_order_id is not None:
            del self.live[client_order_id]

    def _fill(self, fill: Fill, order: LiveOrder | None) -> list[Action]:
        if fill.leaves_qty > 0:
            return []
        return self._report(fill.client_order_id, "filled")

    def _order_done(self, client_order_id: str) -> list[Action]:
        return self._report(client_order_id, "ended")

    def _report(self, client_order_id: str, reason: str) -> list[Action]:
        decision_id = self.live.pop(client_order_id, None)
        if decision_id is None:  # not a live decided order: another's, or reported already
            return []
        del self._client_of[decision_id]
        wait = self.config.repeat_ms * 1_000_000
        self.unconfirmed[decision_id] = Unconfirmed(reason, self.now_ns + wait, wait)
        return [OrderDone(decision_id, reason)]

    def _tick(self, now_ns: int) -> list[Action]:
        repeats: list[Action] = []
        longest = REPEAT_GROWTH_MAX * self.config.repeat_ms * 1_000_000
        for decision_id, report in self.unconfirmed.items():
            if report.due_ns <= now_ns:
                report.wait_ns = min(2 * report.wait_ns, longest)
                report.due_ns = now_ns + report.wait_ns
                repeats.append(OrderDone(decision_id, report.reason))
        return repeats
