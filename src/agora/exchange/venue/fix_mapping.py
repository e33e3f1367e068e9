"""FIX 4.4 order entry <-> agora commands and events: pure mapping plus per-participant state.

Design notes
------------
* ``FixOrders`` is the gateway's view of one participant: ClOrdID <-> engine order id and, per
  order, OrderQty / CumQty / notional (for AvgPx) / leaves / OrdStatus. It is rebuilt by
  feeding it every event batch of the session (``VenueCore.subscribe(..., replay=True)``);
  ``apply`` always returns the FIX messages a batch produces and the *caller* decides whether
  they are new (to send) or already reported (to drop). No I/O and no clock here.
* ExecIDs are deterministic: ``"<venue seq>-<k>"`` (k-th report of that batch for this
  participant), so a replay regenerates the same ids. Reports the gateway makes on its own
  (local rejects, status replies) use the id the caller passes (the FIX MsgSeqNum they will get).
* OrderID(37) is the engine's current order id (it changes when a replace loses priority).
* Every accepted order of the participant is reported (drop-copy semantics, whichever gateway
  or FIX session entered it); rejects and cancel rejects only for requests this session sent
  (``pending``). One ``FixOrders`` per FIX session: sessions of one participant each see every
  event of the participant, so each resolves OrigClOrdID against all of its orders. The venue's
  verdict refusing a new order also reaches the participant's other sessions
  (:func:`reject_drop_copy`, ExecID suffixed ``D``), unless it is a duplicate ClOrdID: that
  reject concerns only the copy its session sent, not the order the ClOrdID names.
* AvgPx is Price(4): notional / CumQty rounded half-up to 1/10,000.
* For the order quorum (``quorum``, ``fix_gateway``): ``request`` maps a typed request again
  against the current state when its quorum forms, ``take`` forgets a request the gateway holds
  instead of submitting, and ``refusal`` is the gateway's own reject of a request it never
  submitted (conflict, timeout, bound).

Inbound (NewOrderSingle 35=D, and 35=F / 35=G for their own ClOrdID)
  ClOrdID -> client_order_id, except that a ClOrdID starting with ``O:`` is refused (103=99 /
  102=99): those ids are the OUCH gateway's (``ouch_mapping``), so the two gateways' orders of
  one participant never share one; Side 1 BUY, 2 SELL (others: reject 103=11); OrdType 1 MARKET
  (Price ignored), 2 LIMIT (others: reject 103=11); TimeInForce absent/0 DAY, 1 GTC, 3 IOC,
  4 FOK (others: reject 103=11); ExecInst containing '6' -> post_only (other values ignored);
  MaxFloor(111) N > 0 -> iceberg display_qty N, MaxFloor 0 -> hidden order (display_qty 0);
  MinQty(110) -> min_qty. Missing Symbol / OrderQty / Price on a limit: BusinessMessageReject 5.
Inbound (35=F) OrigClOrdID (any ClOrdID of the order's chain) -> CancelOrder(order_id);
  unknown: OrderCancelReject 37=NONE 102=1; order already done: 102=0 (too late).
Inbound (35=G) -> ReplaceOrder(qty = OrderQty - CumQty, price, display_qty from MaxFloor);
  new leaves <= 0, OrdType not LIMIT, a changed Side/Symbol/TimeInForce: OrderCancelReject 99.
Inbound (35=H) -> ExecutionReport 150=I with the current state (unknown: 39=8, 103=5).
Other application MsgTypes -> BusinessMessageReject 3 (unsupported message type).

Outbound
  OrderAccepted -> 150=0/39=0; Execution -> 150=F (32/31 LastQty/LastPx), 39=1 or 2, one per
  side of this participant; OrderCancelled with leaves 0 -> 150=4/39=4 (EXPIRED: 150=C/39=C;
  IOC/FOK/min-qty/STP/kill-switch remainders are 4); a reduce (leaves > 0, from another gateway)
  -> 150=D Restated with 39=0/1; OrderReplaced -> 150=5, 39=0/1; OrderRejected of a new order ->
  150=8/39=8 with OrdRejReason (``ORD_REJ_REASON``); of a cancel/replace -> OrderCancelReject with
  CxlRejReason (``CXL_REJ_REASON``) and CxlRejResponseTo 1 (F) / 2 (G).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Container, Sequence
from dataclasses import dataclass, field

import msgspec

from agora.core import enums as core
from agora.core.events import (
    CancelOrder,
    Event,
    Execution,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderReplaced,
    ReplaceOrder,
)
from agora.exchange.venue.ouch_mapping import OUCH_ORDER_ID_PREFIX
from agora.protocols.fix44.codec import FixMessage
from agora.protocols.fix44.enums import (
    BusinessRejectReason,
    CxlRejReason,
    CxlRejResponseTo,
    ExecType,
    OrdRejReason,
    OrdStatus,
    OrdType,
    Side,
    TimeInForce,
)
from agora.protocols.fix44.messages import (
    BusinessMessageReject,
    ExecutionReport,
    FixStruct,
    NewOrderSingle,
    OrderCancelReject,
    OrderCancelReplaceRequest,
    OrderCancelRequest,
    OrderStatusRequest,
    from_message,
)

R = core.RejectReason
ORD_REJ_REASON: dict[core.RejectReason, OrdRejReason] = {
    R.INVALID_QUANTITY: OrdRejReason.INCORRECT_QUANTITY,
    R.INVALID_PRICE: OrdRejReason.OTHER,
    R.INVALID_TICK: OrdRejReason.OTHER,
    R.INVALID_LOT: OrdRejReason.INCORRECT_QUANTITY,
    R.INVALID_DISPLAY_QTY: OrdRejReason.INCORRECT_QUANTITY,
    R.INVALID_MIN_QTY: OrdRejReason.INCORRECT_QUANTITY,
    R.INVALID_ORDER_TYPE: OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
    R.INVALID_TIME_IN_FORCE: OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
    R.INVALID_SYMBOL_SPEC: OrdRejReason.OTHER,
    R.INVALID_PARTICIPANT_SPEC: OrdRejReason.OTHER,
    R.INVALID_CLIENT_ORDER_ID: OrdRejReason.OTHER,
    R.MALFORMED: OrdRejReason.OTHER,
    R.UNKNOWN_SYMBOL: OrdRejReason.UNKNOWN_SYMBOL,
    R.UNKNOWN_PARTICIPANT: OrdRejReason.UNKNOWN_ACCOUNT,
    R.UNKNOWN_ORDER: OrdRejReason.UNKNOWN_ORDER,
    R.DUPLICATE_CLIENT_ORDER_ID: OrdRejReason.DUPLICATE_ORDER,
    R.DUPLICATE_SYMBOL: OrdRejReason.OTHER,
    R.SYMBOL_HALTED: OrdRejReason.EXCHANGE_CLOSED,
    R.MARKET_CLOSED: OrdRejReason.EXCHANGE_CLOSED,
    R.NOT_ALLOWED_IN_STATE: OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
    R.INVALID_STATE_TRANSITION: OrdRejReason.OTHER,
    R.PRICE_OUT_OF_BAND: OrdRejReason.ORDER_EXCEEDS_LIMIT,
    R.PRICE_COLLAR: OrdRejReason.ORDER_EXCEEDS_LIMIT,
    R.MAX_ORDER_QTY: OrdRejReason.ORDER_EXCEEDS_LIMIT,
    R.MAX_NOTIONAL: OrdRejReason.ORDER_EXCEEDS_LIMIT,
    R.MAX_OPEN_ORDERS: OrdRejReason.ORDER_EXCEEDS_LIMIT,
    R.KILL_SWITCH: OrdRejReason.BROKER_CREDIT,  # 0 = "Broker / Exchange option"
    R.POST_ONLY_WOULD_CROSS: OrdRejReason.OTHER,
}
"""agora RejectReason -> FIX OrdRejReason(103); the Text(58) always carries the agora reason."""

CXL_REJ_REASON: dict[core.RejectReason, CxlRejReason] = {
    R.UNKNOWN_ORDER: CxlRejReason.UNKNOWN_ORDER,
    R.DUPLICATE_CLIENT_ORDER_ID: CxlRejReason.DUPLICATE_CL_ORD_ID,
    R.KILL_SWITCH: CxlRejReason.BROKER_CREDIT,  # 2 = "Broker / Exchange option"
}
"""agora RejectReason -> FIX CxlRejReason(102); every other reason is 99 (Other) with Text."""

TO_SIDE = {Side.BUY: core.Side.BUY, Side.SELL: core.Side.SELL}
FROM_SIDE = {v: k for k, v in TO_SIDE.items()}
TO_TIF = {TimeInForce.DAY: core.TimeInForce.DAY, TimeInForce.GOOD_TILL_CANCEL: core.TimeInForce.GTC,
          TimeInForce.IMMEDIATE_OR_CANCEL: core.TimeInForce.IOC,
          TimeInForce.FILL_OR_KILL: core.TimeInForce.FOK}
FROM_TIF = {v: k for k, v in TO_TIF.items()}
TO_ORD_TYPE = {OrdType.MARKET: core.OrderType.MARKET, OrdType.LIMIT: core.OrderType.LIMIT}
FROM_ORD_TYPE = {v: k for k, v in TO_ORD_TYPE.items()}
SUPPORTED = frozenset("DFGH")


class OrderInfo(msgspec.Struct, gc=False):
    """One order as its FIX reports describe it. A Struct: built once per order, 2.6x faster
    than a slotted dataclass; it holds no references back, so no GC tracking."""

    order_id: int
    cl_ord_id: str
    symbol: str
    side: core.Side
    ord_type: core.OrderType
    tif: core.TimeInForce
    price: int
    order_qty: int  # FIX OrderQty: CumQty + leaves
    leaves: int
    cum_qty: int = 0
    notional: int = 0
    status: OrdStatus = OrdStatus.NEW
    orig_cl_ord_id: str | None = None

    @property
    def avg_px(self) -> int:
        return (2 * self.notional + self.cum_qty) // (2 * self.cum_qty) if self.cum_qty else 0

    @property
    def live_status(self) -> OrdStatus:
        return OrdStatus.PARTIALLY_FILLED if self.cum_qty else OrdStatus.NEW


class Submit(msgspec.Struct, frozen=True, gc=False):
    """Hand ``command`` to the venue; its events come back through ``FixOrders.apply``."""

    command: NewOrder | CancelOrder | ReplaceOrder


@functools.cache
def _party_fields(kind: type) -> tuple[str, ...]:
    """The fields of an event type that name a participant (none for the book's events),
    found once per type instead of tried on every event."""
    names = getattr(kind, "__struct_fields__", ())
    return tuple(n for n in ("participant", "buy_participant", "sell_participant") if n in names)


@dataclass(slots=True)
class FixOrders:
    participant: str
    orders: dict[int, OrderInfo] = field(default_factory=dict)  # engine order id -> order
    by_cl_ord_id: dict[str, OrderInfo] = field(default_factory=dict)  # every id of a chain
    pending: dict[str, FixStruct] = field(default_factory=dict)  # request ClOrdID -> request
    cancelling: dict[int, OrderCancelRequest] = field(default_factory=dict)  # order id -> F

    # ------------------------------------------------------------------ inbound

    def inbound(self, msg: FixMessage, local_id: str) -> Submit | FixStruct:
        """A delivered application message -> a command to submit or an immediate reply.

        Raises ``FixError`` (for a session Reject) when a supported message does not parse.
        """
        mt = msg.msg_type
        if mt not in SUPPORTED:
            return BusinessMessageReject(
                ref_seq_num=msg.seq_num, ref_msg_type=mt,
                business_reject_reason=BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE,
                text=f"MsgType {mt} is not supported by this venue")
        typed = from_message(msg)
        missing = _missing(typed)
        if missing:
            return BusinessMessageReject(
                ref_seq_num=msg.seq_num, ref_msg_type=mt,
                business_reject_ref_id=getattr(typed, "cl_ord_id", None),
                business_reject_reason=BusinessRejectReason.CONDITIONALLY_REQUIRED_FIELD_MISSING,
                text=f"conditionally required field {missing} missing")
        if type(typed) is OrderStatusRequest:
            return self.status(typed, local_id)
        return self.request(typed, local_id)

    def request(self, m: FixStruct, local_id: str) -> Submit | FixStruct:
        """Map a typed NewOrderSingle / OrderCancelRequest / OrderCancelReplaceRequest against
        the current state: the command (its request now ``pending``) or an immediate reply."""
        cl_ord_id: str = m.cl_ord_id  # type: ignore[attr-defined]
        if cl_ord_id.startswith(OUCH_ORDER_ID_PREFIX):
            text = (f"ClOrdID {cl_ord_id}: the prefix {OUCH_ORDER_ID_PREFIX!r} is reserved for "
                    f"the venue's OUCH orders")
            if isinstance(m, NewOrderSingle):
                return self.new_order_reject(m, OrdRejReason.OTHER, text, local_id)
            return self.cancel_reject(m, self.by_cl_ord_id.get(m.orig_cl_ord_id),  # type: ignore
                                      CxlRejReason.OTHER, text)
        kind = type(m)  # typed messages are of their exact types
        if kind is NewOrderSingle:
            return self._new(m, local_id)  # type: ignore[arg-type]
        if kind is OrderCancelRequest:
            return self._cancel(m)  # type: ignore[arg-type]
        assert isinstance(m, OrderCancelReplaceRequest)
        return self._replace(m)

    def _new(self, m: NewOrderSingle, local_id: str) -> Submit | FixStruct:
        side, ord_type = TO_SIDE.get(m.side), TO_ORD_TYPE.get(m.ord_type)
        tif = TO_TIF.get(m.time_in_force or TimeInForce.DAY)
        bad = ("Side" if side is None else "OrdType" if ord_type is None
               else "TimeInForce" if tif is None else None)
        if bad is not None:
            return self.new_order_reject(m, OrdRejReason.UNSUPPORTED_ORDER_CHARACTERISTIC,
                                         f"unsupported {bad}", local_id)
        market = ord_type is core.OrderType.MARKET
        exec_inst = (m.exec_inst or "").split()
        assert side is not None and ord_type is not None and tif is not None
        assert m.symbol is not None and m.order_qty is not None
        self.pending[m.cl_ord_id] = m
        return Submit(NewOrder(
            self.participant, m.cl_ord_id, m.symbol, side, m.order_qty,
            0 if market else (m.price or 0), ord_type, tif, "6" in exec_inst,
            m.max_floor, m.min_qty or 0))

    def _cancel(self, m: OrderCancelRequest) -> Submit | FixStruct:
        info = self.by_cl_ord_id.get(m.orig_cl_ord_id)
        problem = self._cancel_problem(info, m)
        if problem is not None:
            return problem
        assert info is not None
        self.pending[m.cl_ord_id] = m
        self.cancelling[info.order_id] = m
        return Submit(CancelOrder(self.participant, info.order_id, 0, m.cl_ord_id))

    def _replace(self, m: OrderCancelReplaceRequest) -> Submit | FixStruct:
        info = self.by_cl_ord_id.get(m.orig_cl_ord_id)
        problem = self._cancel_problem(info, m)
        if problem is not None:
            return problem
        assert info is not None and m.order_qty is not None and m.price is not None
        text = None
        if m.ord_type is not OrdType.LIMIT:
            text = "only limit orders can be replaced (OrdType must be 2)"
        elif m.time_in_force is not None and TO_TIF.get(m.time_in_force) is not info.tif:
            text = "TimeInForce cannot change"
        elif m.symbol is not None and m.symbol != info.symbol:
            text = "Symbol cannot change"
        elif m.order_qty - info.cum_qty <= 0:
            text = f"OrderQty {m.order_qty} must exceed CumQty {info.cum_qty}"
        if text is not None:
            return self.cancel_reject(m, info, CxlRejReason.OTHER, text)
        self.pending[m.cl_ord_id] = m
        return Submit(ReplaceOrder(self.participant, info.order_id, m.cl_ord_id, m.price,
                                   m.order_qty - info.cum_qty, m.max_floor))

    def _cancel_problem(self, info: OrderInfo | None,
                        m: OrderCancelRequest | OrderCancelReplaceRequest) -> FixStruct | None:
        if info is None:
            return self.cancel_reject(m, None, CxlRejReason.UNKNOWN_ORDER,
                                      f"unknown order {m.orig_cl_ord_id}")
        if info.leaves == 0:
            return self.cancel_reject(m, info, CxlRejReason.TOO_LATE_TO_CANCEL,
                                      f"order is {info.status.name.lower()}")
        if TO_SIDE.get(m.side) is not info.side:
            return self.cancel_reject(m, info, CxlRejReason.OTHER, "Side does not match")
        return None

    def status(self, m: OrderStatusRequest, local_id: str) -> ExecutionReport:
        info = self.by_cl_ord_id.get(m.cl_ord_id)
        if info is None and m.order_id and m.order_id.isdigit():
            info = self.orders.get(int(m.order_id))
        if info is None:
            return ExecutionReport(
                order_id="NONE", exec_id=local_id, exec_type=ExecType.ORDER_STATUS,
                ord_status=OrdStatus.REJECTED, side=m.side, leaves_qty=0, cum_qty=0, avg_px=0,
                cl_ord_id=m.cl_ord_id, ord_status_req_id=m.ord_status_req_id, symbol=m.symbol,
                ord_rej_reason=OrdRejReason.UNKNOWN_ORDER, text="unknown order")
        return self._report(info, local_id, ExecType.ORDER_STATUS, info.status, None,
                            ord_status_req_id=m.ord_status_req_id)

    def new_order_reject(self, m: NewOrderSingle, reason: OrdRejReason, text: str,
                         exec_id: str, ts: int | None = None) -> ExecutionReport:
        return ExecutionReport(
            order_id="NONE", exec_id=exec_id, exec_type=ExecType.REJECTED,
            ord_status=OrdStatus.REJECTED, side=m.side, leaves_qty=0, cum_qty=0, avg_px=0,
            cl_ord_id=m.cl_ord_id, ord_rej_reason=reason, symbol=m.symbol,
            order_qty=m.order_qty, ord_type=m.ord_type, price=m.price,
            time_in_force=m.time_in_force, transact_time=ts, text=text[:200])

    def cancel_reject(self, m: FixStruct, info: OrderInfo | None, reason: CxlRejReason,
                      text: str, ts: int | None = None) -> OrderCancelReject:
        replace = isinstance(m, OrderCancelReplaceRequest)
        return OrderCancelReject(
            order_id=str(info.order_id) if info else "NONE", cl_ord_id=m.cl_ord_id,
            orig_cl_ord_id=m.orig_cl_ord_id,
            ord_status=info.status if info else OrdStatus.REJECTED,
            cxl_rej_response_to=(CxlRejResponseTo.ORDER_CANCEL if replace
                                 else CxlRejResponseTo.ORDER_CANCEL_REQUEST),
            cxl_rej_reason=reason, transact_time=ts, text=text[:200])

    def done(self, sub: Submit) -> None:
        """The venue has processed ``sub``: forget the request (its events were applied)."""
        self.pending.pop(sub.command.client_order_id, None)
        if type(sub.command) is CancelOrder:
            self.cancelling.pop(sub.command.order_id, None)

    def take(self, sub: Submit) -> FixStruct:
        """Forget ``sub`` as ``done`` does; the request it was mapped from."""
        request = self.pending[sub.command.client_order_id]
        self.done(sub)
        return request

    def refusal(self, request: FixStruct, text: str, local_id: str, *,
                duplicate: bool = False) -> FixStruct:
        """The gateway's own refusal of ``request`` (never submitted): a new order's reject
        (OrdRejReason 99, or 6 duplicate) or an OrderCancelReject (CxlRejReason 99, or 6)."""
        if isinstance(request, NewOrderSingle):
            reason = OrdRejReason.DUPLICATE_ORDER if duplicate else OrdRejReason.OTHER
            return self.new_order_reject(request, reason, text, local_id)
        info = self.by_cl_ord_id.get(request.orig_cl_ord_id)  # type: ignore[attr-defined]
        cxl = CxlRejReason.DUPLICATE_CL_ORD_ID if duplicate else CxlRejReason.OTHER
        return self.cancel_reject(request, info, cxl, text)

    def malformed(self, sub: Submit, text: str, local_id: str) -> FixStruct:
        """The venue refused ``sub.command`` as malformed: the matching reject."""
        request = self.pending[sub.command.client_order_id]
        self.done(sub)
        if isinstance(request, NewOrderSingle):
            return self.new_order_reject(request, OrdRejReason.OTHER, text, local_id)
        info = self.by_cl_ord_id.get(request.orig_cl_ord_id)  # type: ignore[attr-defined]
        return self.cancel_reject(request, info, CxlRejReason.OTHER, text)

    # ------------------------------------------------------------------ outbound

    @staticmethod
    def participants_of(events: Sequence[Event], among: Container[str]) -> list[str]:
        """The participants ``among`` those ``apply`` would look at in ``events``, in order of
        first mention (the others may skip it). Runs for every command the venue applies, most
        of them of no FIX session's participant: no set is built for those."""
        out: list[str] = []
        for ev in events:
            for name in _party_fields(type(ev)):
                participant = getattr(ev, name)
                if participant in among and participant not in out:
                    out.append(participant)
        return out

    def apply(self, seq: int, events: Sequence[Event]) -> list[FixStruct]:
        """Update the state with one committed batch; the messages it produces, in order (the
        k-th with ExecID ``<seq>-<k>``)."""
        me = self.participant
        out: list[FixStruct] = []
        for ev in events:
            kind = type(ev)  # engine events are of their exact types
            if kind is Execution:
                if ev.buy_participant == me:
                    out.append(self._fill(ev, ev.buy_order_id, ev.buy_leaves,
                                          f"{seq}-{len(out) + 1}"))
                if ev.sell_participant == me:
                    out.append(self._fill(ev, ev.sell_order_id, ev.sell_leaves,
                                          f"{seq}-{len(out) + 1}"))
                continue
            if getattr(ev, "participant", None) != me:
                continue
            eid = f"{seq}-{len(out) + 1}"
            if kind is OrderAccepted:
                self.pending.pop(ev.client_order_id, None)
                # every order stays for its reports (status, too-late cancels): one str per
                # symbol, not the 53-byte copy each decoded message brings (357 -> 304 B/order)
                info = OrderInfo(ev.order_id, ev.client_order_id, sys.intern(ev.symbol), ev.side,
                                 ev.order_type, ev.tif, ev.price, ev.qty, ev.qty)
                self.orders[ev.order_id] = info
                self.by_cl_ord_id[ev.client_order_id] = info
                out.append(self._report(info, eid, ExecType.NEW, OrdStatus.NEW, ev.ts))
            elif kind is OrderCancelled:
                out.extend(self._cancelled(ev, eid))
            elif kind is OrderReplaced:
                out.extend(self._replaced(ev, eid))
            elif kind is OrderRejected:
                out.extend(self._rejected(ev, eid))
        return out

    def _fill(self, ev: Execution, order_id: int, leaves: int, eid: str) -> ExecutionReport:
        info = self.orders[order_id]
        info.cum_qty += ev.qty
        info.notional += ev.qty * ev.price
        info.leaves = leaves
        info.status = OrdStatus.FILLED if leaves == 0 else OrdStatus.PARTIALLY_FILLED
        if leaves == 0:
            del self.orders[order_id]
        return self._report(info, eid, ExecType.TRADE, info.status, ev.ts,
                            last_qty=ev.qty, last_px=ev.price)

    def _cancelled(self, ev: OrderCancelled, eid: str) -> list[FixStruct]:
        info = self.orders.get(ev.order_id)
        if info is None:
            return []
        ids: dict[str, str] = {}
        request = self.cancelling.pop(ev.order_id, None)
        if request is not None and ev.reason is core.CancelReason.USER:
            # FIX: the cancel's own ClOrdID, OrigClOrdID = the order's
            ids = {"cl_ord_id": request.cl_ord_id, "orig_cl_ord_id": info.cl_ord_id}
            self.by_cl_ord_id[request.cl_ord_id] = info
        info.leaves = ev.leaves_qty
        info.order_qty = info.cum_qty + ev.leaves_qty
        if ev.leaves_qty:
            info.status = info.live_status
            exec_type = ExecType.RESTATED
        else:
            del self.orders[ev.order_id]
            expired = ev.reason is core.CancelReason.EXPIRED
            info.status = OrdStatus.EXPIRED if expired else OrdStatus.CANCELED
            exec_type = ExecType.EXPIRED if expired else ExecType.CANCELED
            # the canceled order keeps its OrderQty in the report (CumQty + cancelled)
            info.order_qty = info.cum_qty + ev.cancelled_qty
        return [self._report(info, eid, exec_type, info.status, ev.ts,
                             text=core.CancelReason(ev.reason).name, **ids)]

    def _replaced(self, ev: OrderReplaced, eid: str) -> list[FixStruct]:
        info = self.orders.pop(ev.old_order_id, None)
        if info is None:
            return []
        self.pending.pop(ev.client_order_id, None)
        info.order_id, info.price, info.leaves = ev.order_id, ev.price, ev.qty
        info.orig_cl_ord_id, info.cl_ord_id = info.cl_ord_id, ev.client_order_id
        info.order_qty = info.cum_qty + ev.qty
        info.status = info.live_status
        self.orders[ev.order_id] = info
        self.by_cl_ord_id[ev.client_order_id] = info
        return [self._report(info, eid, ExecType.REPLACED, info.status, ev.ts)]

    def _rejected(self, ev: OrderRejected, eid: str) -> list[FixStruct]:
        request = self.pending.pop(ev.client_order_id, None)
        text = f"{core.RejectReason(ev.reason).name}: {ev.text}"
        if isinstance(request, NewOrderSingle):
            reason = ORD_REJ_REASON.get(ev.reason, OrdRejReason.OTHER)
            return [self.new_order_reject(request, reason, text, eid, ev.ts)]
        if isinstance(request, OrderCancelRequest | OrderCancelReplaceRequest):
            info = self.by_cl_ord_id.get(request.orig_cl_ord_id)
            reason = CXL_REJ_REASON.get(ev.reason, CxlRejReason.OTHER)
            if reason is CxlRejReason.UNKNOWN_ORDER and info is not None:
                reason = CxlRejReason.TOO_LATE_TO_CANCEL
            return [self.cancel_reject(request, info, reason, text, ev.ts)]
        return []  # not sent by this gateway (or lost in a crash window): nothing to answer

    def _report(self, info: OrderInfo, eid: str, exec_type: ExecType, status: OrdStatus,
                ts: int | None, *, cl_ord_id: str | None = None,
                orig_cl_ord_id: str | None = None, **extra) -> ExecutionReport:
        """The order's ExecutionReport; ClOrdID the order's latest unless given, OrigClOrdID
        the one it replaced (on a replace) unless given."""
        if orig_cl_ord_id is None and exec_type is ExecType.REPLACED:
            orig_cl_ord_id = info.orig_cl_ord_id
        return ExecutionReport(
            order_id=str(info.order_id), exec_id=eid, exec_type=exec_type, ord_status=status,
            side=FROM_SIDE[info.side], leaves_qty=info.leaves, cum_qty=info.cum_qty,
            avg_px=info.avg_px, symbol=info.symbol, order_qty=info.order_qty,
            ord_type=FROM_ORD_TYPE[info.ord_type],
            price=info.price if info.ord_type is core.OrderType.LIMIT else None,
            time_in_force=FROM_TIF[info.tif], transact_time=ts,
            cl_ord_id=info.cl_ord_id if cl_ord_id is None else cl_ord_id,
            orig_cl_ord_id=orig_cl_ord_id, **extra)


def reject_drop_copy(msg: FixStruct) -> ExecutionReport | None:
    """The copy of a venue reject of a new order for the participant's other sessions, or None
    (any other message, and a duplicate ClOrdID's reject; see the module notes)."""
    if (isinstance(msg, ExecutionReport) and msg.exec_type is ExecType.REJECTED
            and msg.ord_rej_reason is not OrdRejReason.DUPLICATE_ORDER):
        return msgspec.structs.replace(msg, exec_id=msg.exec_id + "D")
    return None


_WITH_ORDER_FIELDS = frozenset({NewOrderSingle, OrderCancelReplaceRequest})


def _missing(m: FixStruct) -> str | None:
    """The first conditionally required field the message lacks, as 'Name (tag)'."""
    if type(m) in _WITH_ORDER_FIELDS:
        if m.symbol is None:
            return "Symbol (55)"
        if m.order_qty is None:
            return "OrderQty (38)"
        if m.ord_type is OrdType.LIMIT and m.price is None:
            return "Price (44)"
    return None
