"""What a venue FIX message means to a decision node: the command it resolves, the fill it carries,
the order it ends.

The venue sends every session of a participant every report (drop copies), so each node sees
every fill of the cluster's account. A drop copy of a cancel names the cancelled order's ClOrdID;
only the session that sent a cancel copy gets the answer naming the cancel's own ClOrdID.
"""

from __future__ import annotations

from agora.core.enums import Side
from agora.core.recent import Recent
from agora.decision.agents import Fill
from agora.decision.rules import base36
from agora.protocols.fix44 import enums as fx
from agora.protocols.fix44.messages import (
    BusinessMessageReject,
    ExecutionReport,
    FixStruct,
    OrderCancelReject,
)

_SIDES = {fx.Side.BUY: Side.BUY, fx.Side.SELL: Side.SELL}


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


def fill_of(msg: FixStruct, ts: int) -> Fill | None:
    """The Fill an ExecutionReport of ExecType TRADE carries; None for any other message."""
    if not isinstance(msg, ExecutionReport) or msg.exec_type is not fx.ExecType.TRADE:
        return None
    if msg.last_qty is None or msg.last_px is None or msg.symbol is None:
        return None
    side = _SIDES.get(msg.side)
    if side is None:
        return None
    return Fill(ts, msg.symbol, side, msg.last_qty, msg.last_px, msg.cl_ord_id or "",
                msg.leaves_qty)


_ENDED = frozenset((fx.ExecType.CANCELED, fx.ExecType.EXPIRED))
_FINAL = frozenset((fx.OrdStatus.FILLED, fx.OrdStatus.CANCELED, fx.OrdStatus.EXPIRED))


def ended_order_of(msg: FixStruct) -> str | None:
    """The ClOrdID of the order a report says the venue is done with (cancelled, expired,
    rejected by the venue, or a cancel refused because the order is already final); None
    otherwise. A fill that leaves nothing ends its order too, but arrives as a :class:`Fill`
    (``leaves_qty`` 0).

    A reject ends the order unless it says *duplicate*: every replica sends each decided order,
    so each node but the first gets its own copy refused as a duplicate whatever became of the
    order (alive, filled or rejected): the engine looks for a used client order id before any
    other check of a new order (only the kill switch comes first, and it cancels every order of
    the participant anyway). The venue's verdict on the first copy reaches every session of the
    participant (the reject's drop copy), so every node's agents learn it."""
    if isinstance(msg, ExecutionReport):
        if msg.exec_type in _ENDED:
            return msg.orig_cl_ord_id or msg.cl_ord_id or None
        if (msg.exec_type is fx.ExecType.REJECTED
                and msg.ord_rej_reason is not fx.OrdRejReason.DUPLICATE_ORDER):
            return msg.cl_ord_id or None
        return None
    if isinstance(msg, OrderCancelReject) and msg.ord_status in _FINAL:
        return msg.orig_cl_ord_id or None
    return None


def order_of(msg: FixStruct) -> str | None:
    """The ClOrdID of the order whose fill or end a report brings the agents; None if neither."""
    fill = fill_of(msg, 0)
    return ended_order_of(msg) if fill is None else fill.client_order_id


_LIVE = frozenset((fx.OrdStatus.NEW, fx.OrdStatus.PARTIALLY_FILLED, fx.OrdStatus.PENDING_NEW,
                   fx.OrdStatus.PENDING_CANCEL, fx.OrdStatus.PENDING_REPLACE))


class OwnOrders:
    """The venue order ids of the participant's resting orders, followed from its
    ExecutionReports (the venue's OrderID is the ITCH order reference number).

    ITCH is anonymous, so a node's book views would count the cluster's own quotes as market
    liquidity; the views leave these ids out instead. Every node's FIX session gets every report
    of the participant, so every node excludes the same orders. A report can arrive before or
    after the feed's Add Order for it: an id not (or no longer) in the book changes nothing.
    Ids leave on a report that ends the order (filled, cancelled, expired, done) and, for a
    replace, the old order's id when the Replaced report names its ClOrdID.

    The feed's Add Order often arrives before the report that names its id (they travel on
    different sockets, and other nodes may send the order first), so a view made in between would
    count the cluster's own quote. A node therefore calls :meth:`expect` for each decided order it
    applies: until the venue's first verdict on it (any report naming its ClOrdID but a duplicate
    refusal), :meth:`held_until` tells the views of its symbol to wait, for ``hold_ns`` at most
    (no verdict at all: the venue or the session is down, and the views carry on).
    """

    def __init__(self, hold_ns: int = 1_000_000_000, remember: int = 4_096) -> None:
        self.ids: set[int] = set()
        self._by_cl_ord_id: dict[str, int] = {}
        self.hold_ns = hold_ns
        self._awaited: dict[str, tuple[str, int]] = {}  # ClOrdID -> (symbol, hold deadline ns)
        self._answered = Recent(remember)  # ClOrdIDs with a verdict, the last ``remember``

    def expect(self, cl_ord_id: str, symbol: str, now_ns: int) -> None:
        """A decided order this node applied: hold its symbol's views until its verdict (none if
        it came already: a faster node sent the order first)."""
        if cl_ord_id not in self._answered:
            self._awaited[cl_ord_id] = (symbol, now_ns + self.hold_ns)

    def held_until(self, symbol: str, now_ns: int) -> int | None:
        """The deadline of the latest hold on ``symbol``'s views, None if none holds them."""
        until = None
        for cl_ord_id, (sym, deadline) in list(self._awaited.items()):
            if deadline <= now_ns:
                del self._awaited[cl_ord_id]  # no verdict in time: stop holding
            elif sym == symbol and (until is None or deadline > until):
                until = deadline
        return until

    def on_report(self, msg: FixStruct) -> str | None:
        """Follow one venue message; the symbol whose own orders or holds changed, else None."""
        released = self._verdict(msg)
        changed = self._follow(msg)
        return changed or released

    def _verdict(self, msg: FixStruct) -> str | None:
        """The symbol whose views a report naming an awaited order releases."""
        if not isinstance(msg, ExecutionReport) or not msg.cl_ord_id:
            return None
        if (msg.exec_type is fx.ExecType.REJECTED
                and msg.ord_rej_reason is fx.OrdRejReason.DUPLICATE_ORDER):
            return None  # this node's copy refused: says nothing about the order
        cl_ord_id = msg.cl_ord_id
        self._answered.add(cl_ord_id)
        awaited = self._awaited.pop(cl_ord_id, None)
        return awaited[0] if awaited is not None else None

    def _follow(self, msg: FixStruct) -> str | None:
        order_id_text = msg.order_id if isinstance(msg, ExecutionReport) else ""
        if not (order_id_text.isascii() and order_id_text.isdigit()):
            return None  # "NONE": a reject or a status of an unknown order; or not a venue id
        order_id = int(order_id_text)
        ids = self.ids
        changed = False
        if msg.exec_type is fx.ExecType.REPLACED and msg.orig_cl_ord_id:
            old = self._by_cl_ord_id.pop(msg.orig_cl_ord_id, None)
            if old is not None and old != order_id and old in ids:
                ids.discard(old)
                changed = True
        cl_ord_id = msg.cl_ord_id or ""
        if msg.ord_status in _LIVE and msg.leaves_qty > 0:
            if order_id not in ids:
                ids.add(order_id)
                changed = True
            if cl_ord_id:
                self._by_cl_ord_id[cl_ord_id] = order_id
        else:
            if order_id in ids:
                ids.discard(order_id)
                changed = True
            for key in (cl_ord_id, msg.orig_cl_ord_id):
                if key and self._by_cl_ord_id.get(key) == order_id:
                    del self._by_cl_ord_id[key]
        return msg.symbol if changed else None


class EarlyReports:
    """Reports about this log's orders that reach a node before it applied their decision.

    Nodes apply the committed log at their own pace, and the venue sends every session of the
    participant every report. A node behind the others (a slow replica, a Byzantine primary
    voted out) can therefore hear an order's fill, or its end, before its applier decides the
    order, and its agents would take the fill for a stranger's: a maker would never count it in
    its inventory, and that node's makers would quote apart from the others'. The order's ClOrdID
    names its log index (``session + base36(index)``), so the host parks a report whose index
    lies beyond the last applied one until the log reaches that index (:meth:`applied`), then
    hands it on after the decision. A report whose ClOrdID is not of this log's form goes on at
    once. ``hold_ns`` bounds the wait (:meth:`expired`): a node stuck behind, or another log with
    the same session on the account (a configuration error), still gets its fills."""

    def __init__(self, session: str, hold_ns: int = 1_000_000_000) -> None:
        self.session = session
        self.hold_ns = hold_ns
        self.applied_index = 0
        self._parked: dict[int, list[tuple[int, FixStruct]]] = {}  # index -> [(deadline, msg)]

    def __len__(self) -> int:
        return sum(len(msgs) for msgs in self._parked.values())

    def index_of(self, cl_ord_id: str) -> int | None:
        """The log index a ClOrdID of this log names; None for any other ClOrdID."""
        if not (self.session and cl_ord_id.startswith(self.session)):
            return None
        digits = cl_ord_id[len(self.session):]
        try:
            index = int(digits, 36)
            canonical = base36(index) == digits  # no lower case, sign, space, _ or 0 pad
        except ValueError:  # not base 36, or negative
            return None
        return index if canonical else None

    def park(self, cl_ord_id: str, msg: FixStruct, now_ns: int) -> bool:
        """Keep ``msg`` if it is about an order of a log index not yet applied here."""
        index = self.index_of(cl_ord_id)
        if index is None or index <= self.applied_index:
            return False
        self._parked.setdefault(index, []).append((now_ns + self.hold_ns, msg))
        return True

    def applied(self, index: int) -> list[FixStruct]:
        """The node applied the log up to ``index``: the reports that may go on, oldest first."""
        self.applied_index = max(self.applied_index, index)
        due = sorted(i for i in self._parked if i <= index)
        return [msg for i in due for _, msg in self._parked.pop(i)]

    def expired(self, now_ns: int) -> list[FixStruct]:
        """The reports of each index whose first report has waited ``hold_ns`` (the later ones
        of that order go with it, in order), their order still not applied here."""
        late = [i for i, msgs in self._parked.items() if msgs[0][0] <= now_ns]
        return [msg for i in sorted(late) for _, msg in self._parked.pop(i)]
