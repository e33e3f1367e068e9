"""OUCH 5.0 <-> agora events: the pure mapping behind the OUCH gateway (no I/O, no clock).

Design notes
------------
* **One outbound stream per OUCH account, a pure function of the event history.** An account
  is one OUCH login (a participant may have several: one ``[[participants]]`` section each, see
  ``ouch_gateway``); every order carries its account in its client order id (below).
  ``outbound`` turns each committed event batch into ``(account, OUCH message)`` pairs; *which*
  messages and how many depend only on the events, so the gateway's per-account Sequenced Data
  log is rebuilt identically by replaying the venue's history after a restart (no lost or
  duplicated sequence number). A kill switch (Disable/Enable Order Entry) is the participant's:
  every account of it hears the response, the requesting one with its UserRefNum. Fields the
  engine does not keep (ClOrdID, Capacity, ISO, CrossType, the OUCH side ``T``/``E``, Display
  ``A``, Firm, the UserRefNum of a Disable/Enable request) come from an in-memory *context*
  recorded at entry; after a restart they fall back to defaults (``""``,
  ``A``gency, ``N``, ``N``, ``B``/``S``, ``Y``, no Firm, UserRefNum 0). Only message *content*
  of replayed old messages can differ, never the numbering.
* Responses that the events cannot determine (Account Query Response, Mass Cancel Response, a
  Disable/Enable Response that changed nothing, a Rejected for an order the gateway refused
  before the engine saw it) are returned as ``Inbound.replies``: the gateway sends them as
  SoupBinTCP 4.00 *Unsequenced* Data (best effort, not replayed at re-login).
* **UserRefNum.** ``client_order_id = "O:<account>:<UserRefNum>"``: the participant's orders
  of both gateways and all its accounts share the engine's client order ids, and only ids of
  this form are OUCH's (the FIX gateway refuses ClOrdIDs that start with ``O:``), so a FIX order
  with a numeric ClOrdID neither collides with an OUCH order nor moves an OUCH account's
  UserRefNum, and two accounts may use the same UserRefNum. Per account the
  last consumed UserRefNum is the maximum of the ids seen in OrderAccepted / OrderRejected /
  OrderReplaced events and of the Mass Cancel / Disable / Enable requests mapped live. Spec §6:
  a new-order request (Enter, Replace, Mass Cancel, Disable, Enable) whose UserRefNum is not
  above the last one is *ignored* (treated as a benign re-send); ``reject_stale=True`` answers
  it instead with a Rejected ``0x000F`` Other (unsequenced). A client recovers the next value
  by Account Query. UserRefIdx channels are not supported (one channel per account).
* **Quantities.** Cancel Quantity = new intended total size: keep ``max(0, Q - executed)``
  leaves (no-op if that does not reduce). Replace Quantity = total liable including executed:
  new leaves ``Q - executed`` (<= 0: the engine rejects it, INVALID_QUANTITY). ``executed`` is
  counted along the whole replace chain.
* **Cancel/Replace of an order that is not live, and Modify** are ignored (spec: redundant
  cancels are silently ignored; Modify is not supported). A replace the engine refuses gets a
  Rejected and leaves the order untouched (the spec would cancel it; our engine keeps it).
* Price ``>= 2_000_000_000`` ($200,000, incl. 0x7FFFFFFF) is a MARKET order (spec §1).
* Timestamps: event ``ts`` (ns since the Unix epoch) -> ns since *UTC* midnight.

Code tables (also in the report): ``REJECT_CODES`` and ``CANCEL_CODES`` below, each total over
agora's enums (a unit test holds them complete).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from agora.core import enums as ag
from agora.core.events import (
    CancelOrder,
    Execution,
    KillSwitch,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderReplaced,
    ParticipantUpdated,
    ReplaceOrder,
    TradingStatus,
)
from agora.protocols import ouch50 as ouch
from agora.protocols.ouch50_fast import EMPTY_OPTIONS

NS_PER_DAY = 86_400 * 1_000_000_000
MARKET_PRICE = 2_000_000_000  # $200,000.0000: at or above it OUCH means "market"
MAX_USER_REF_NUM = 0xFFFFFFFF

R = ouch.RejectReason
#: agora RejectReason -> nearest OUCH 5.0 reject reason (§8.2).
REJECT_CODES: dict[ag.RejectReason, R] = {
    ag.RejectReason.INVALID_QUANTITY: R.INVALID_QUANTITY,
    ag.RejectReason.INVALID_PRICE: R.INVALID_PRICE,
    ag.RejectReason.INVALID_TICK: R.INVALID_PRICE,  # OUCH has no tick code
    ag.RejectReason.INVALID_LOT: R.INVALID_QUANTITY,
    ag.RejectReason.INVALID_DISPLAY_QTY: R.INVALID_MAX_FLOOR,  # display comes from MaxFloor
    ag.RejectReason.INVALID_MIN_QTY: R.INVALID_MIN_QUANTITY,
    ag.RejectReason.INVALID_ORDER_TYPE: R.RISK_MARKET_ORDER_NOT_ALLOWED,  # market + extras
    ag.RejectReason.INVALID_TIME_IN_FORCE: R.OTHER,  # no TIF code in §8.2
    ag.RejectReason.INVALID_SYMBOL_SPEC: R.OTHER,  # operator-only
    ag.RejectReason.INVALID_PARTICIPANT_SPEC: R.OTHER,  # operator-only
    ag.RejectReason.INVALID_CLIENT_ORDER_ID: R.OTHER,  # cannot happen: O:<UserRefNum>
    ag.RejectReason.MALFORMED: R.PROCESSING_ERROR,
    ag.RejectReason.UNKNOWN_SYMBOL: R.INVALID_SYMBOL,
    ag.RejectReason.UNKNOWN_PARTICIPANT: R.FIRM_NOT_AUTHORIZED,
    ag.RejectReason.UNKNOWN_ORDER: R.REPLACE_NOT_ALLOWED,  # only replaces reach a Rejected
    ag.RejectReason.DUPLICATE_CLIENT_ORDER_ID: R.OTHER,  # stale UserRefNums are ignored first
    ag.RejectReason.DUPLICATE_SYMBOL: R.OTHER,  # operator-only
    ag.RejectReason.SYMBOL_HALTED: R.HALTED,
    ag.RejectReason.MARKET_CLOSED: R.DESTINATION_CLOSED,
    ag.RejectReason.NOT_ALLOWED_IN_STATE: R.RISK_PRE_MARKET_NOT_ALLOWED,  # PRE_OPEN only
    ag.RejectReason.INVALID_STATE_TRANSITION: R.OTHER,  # operator-only
    ag.RejectReason.PRICE_OUT_OF_BAND: R.FAT_FINGER,  # venue-wide price band
    ag.RejectReason.PRICE_COLLAR: R.RISK_FAT_FINGER,  # participant's price collar
    ag.RejectReason.MAX_ORDER_QTY: R.RISK_MAX_QUANTITY_EXCEEDED,
    ag.RejectReason.MAX_NOTIONAL: R.RISK_SINGLE_ORDER_NOTIONAL_EXCEEDED,
    ag.RejectReason.MAX_OPEN_ORDERS: R.RISK_AGGREGATE_EXPOSURE_EXCEEDED,
    ag.RejectReason.KILL_SWITCH: R.FIRM_NOT_AUTHORIZED,  # order entry disabled
    ag.RejectReason.POST_ONLY_WOULD_CROSS: R.CROSSED_MARKET,
}

C = ouch.CancelReason
#: agora CancelReason -> OUCH 5.0 Order Canceled reason (§8.1).
CANCEL_CODES: dict[ag.CancelReason, C] = {
    ag.CancelReason.USER: C.USER_REQUESTED,
    ag.CancelReason.IMMEDIATE_OR_CANCEL: C.IMMEDIATE_OR_CANCEL,
    ag.CancelReason.FILL_OR_KILL: C.IMMEDIATE_OR_CANCEL,  # IOC family, not fillable at once
    ag.CancelReason.MIN_QTY: C.IMMEDIATE_OR_CANCEL,  # IOC with MinQty not met at once
    ag.CancelReason.SELF_TRADE: C.SELF_MATCH_PREVENTION,
    ag.CancelReason.KILL_SWITCH: C.SUPERVISORY,  # risk-desk action, not the user's cancel
    ag.CancelReason.EXPIRED: C.TIMEOUT,  # DAY order at the close: TIF expired
}

TIF_IN: dict[str, ag.TimeInForce] = {
    ouch.TimeInForce.DAY: ag.TimeInForce.DAY,
    ouch.TimeInForce.IOC: ag.TimeInForce.IOC,
    ouch.TimeInForce.GTX: ag.TimeInForce.GTC,  # extended hours: rests across sessions
    ouch.TimeInForce.AFTER_HOURS: ag.TimeInForce.DAY,  # no separate after-hours session
}  # GTT ('6', needs ExpireTime) is refused
TIF_OUT: dict[ag.TimeInForce, ouch.TimeInForce] = {
    ag.TimeInForce.DAY: ouch.TimeInForce.DAY,
    ag.TimeInForce.IOC: ouch.TimeInForce.IOC,
    ag.TimeInForce.FOK: ouch.TimeInForce.IOC,
    ag.TimeInForce.GTC: ouch.TimeInForce.GTX,
}


_LIVE = ouch.OrderState.LIVE
_POST_ONLY = ouch.PostOnly.POST_ONLY
_ORDER_ENTRY = frozenset({ouch.EnterOrder, ouch.ReplaceOrderRequest})  # a stale one is rejected


def ns_since_midnight(ts: int) -> int:
    """Event time (ns since the epoch) -> OUCH Timestamp (ns since UTC midnight)."""
    return ts % NS_PER_DAY


OUCH_ORDER_ID_PREFIX = "O:"  # engine client order ids of OUCH orders (see the module notes)


def ouch_order_id(account: str, urn: int) -> str:
    """The engine's client order id of the order ``account`` entered as UserRefNum ``urn``."""
    return f"O:{account}:{urn}"


def parse_ouch_order_id(client_order_id: str) -> tuple[str, int] | None:
    """(account, UserRefNum) of an OUCH order's client order id; None for any other id."""
    if client_order_id[:2] != OUCH_ORDER_ID_PREFIX:
        return None
    account, colon, digits = client_order_id[2:].rpartition(":")
    if colon and account and digits.isdigit() and digits.isascii():
        n = int(digits)
        if 0 < n <= MAX_USER_REF_NUM:
            return account, n
    return None


def user_ref_num(client_order_id: str) -> int | None:
    """The UserRefNum of an OUCH order's client order id, None for any other id (FIX's)."""
    parsed = parse_ouch_order_id(client_order_id)
    return None if parsed is None else parsed[1]


class EntryContext(msgspec.Struct):
    """What an Enter/Replace said that the engine does not keep (echoed on A/U/J)."""

    cl_ord_id: str = ""
    side: ouch.Side | None = None
    capacity: ouch.Capacity = ouch.Capacity.AGENCY
    intermarket_sweep: ouch.IntermarketSweep = ouch.IntermarketSweep.NOT_ELIGIBLE
    cross_type: ouch.CrossType = ouch.CrossType.CONTINUOUS
    display: ouch.Display = ouch.Display.VISIBLE
    firm: str | None = None


class LiveOrder(msgspec.Struct):
    order_id: int
    symbol: str
    side: ag.Side
    leaves: int
    executed: int = 0
    hidden: bool = False
    tif: ag.TimeInForce = ag.TimeInForce.DAY
    context: EntryContext = msgspec.field(default_factory=EntryContext)


class Account(msgspec.Struct):
    """OUCH state of one account, rebuilt from the event stream."""

    last_user_ref_num: int = 0
    orders: dict[int, LiveOrder] = msgspec.field(default_factory=dict)  # by UserRefNum
    kill_switch: bool = False
    contexts: dict[int, EntryContext] = msgspec.field(default_factory=dict)  # pending entries
    pending_switch: tuple[int, str, bool] | None = None  # (UserRefNum, firm, engaged)

    def consume(self, urn: int) -> None:
        if urn > self.last_user_ref_num:
            self.last_user_ref_num = urn


class Inbound(msgspec.Struct):
    """What to do with one inbound message: submit ``commands``, send ``replies`` unsequenced."""

    commands: list[object] = msgspec.field(default_factory=list)
    replies: list[ouch.OuchMessage] = msgspec.field(default_factory=list)
    ignored: str = ""  # why nothing happened (logged by the gateway)


class OuchMapper:
    """Both directions for every account; feed it every event batch in order.

    ``register`` names each participant's accounts (the gateway does, from its configuration,
    before the first event); a participant with none registered has one account of its own name.
    """

    def __init__(self, *, reject_stale: bool = False) -> None:
        self.accounts: dict[str, Account] = {}
        self.reject_stale = reject_stale
        self._accounts_of: dict[str, list[str]] = {}  # participant -> its accounts, in order
        # engine order id -> (account name, account, UserRefNum) of every live OUCH order: a
        # cancel or an execution finds its account without parsing the client order id
        self._owner: dict[int, tuple[str, Account, int]] = {}
        self._states: dict[str, ag.TradingState] = {}
        self._handlers: dict[type, object] = {}  # event type -> bound handler or None

    def register(self, participant: str, account: str) -> None:
        """``account`` is one of ``participant``'s OUCH accounts."""
        if not account or ":" in account:
            raise ValueError(f"OUCH account name {account!r} must be non-empty, without ':'")
        names = self._accounts_of.setdefault(participant, [])
        if account not in names:
            names.append(account)

    def accounts_of(self, participant: str) -> list[str]:
        return self._accounts_of.get(participant) or [participant]

    def account(self, name: str) -> Account:
        acct = self.accounts.get(name)
        if acct is None:
            acct = self.accounts[name] = Account()
        return acct

    # ------------------------------------------------------------------ inbound

    def inbound(self, participant: str, msg: ouch.OuchMessage, now_ns: int,
                account: str | None = None) -> Inbound:
        """One message of ``participant``'s ``account`` (default: the participant's name)."""
        name = account or participant
        acct = self.account(name)
        ts = ns_since_midnight(now_ns)
        kind = type(msg)  # decoded: exact types (an isinstance on a Struct costs 5x)
        if kind is ouch.CancelOrderRequest:
            return self._cancel(participant, acct, msg)  # type: ignore[arg-type]
        if kind is ouch.AccountQueryRequest:
            return Inbound(replies=[ouch.AccountQueryResponse(ts, acct.last_user_ref_num + 1)])
        if kind is ouch.ModifyOrderRequest:
            return Inbound(ignored="Modify Order is not supported")
        urn = msg.user_ref_num  # type: ignore[attr-defined]
        if urn <= acct.last_user_ref_num:
            why = f"UserRefNum {urn} is not above the last one ({acct.last_user_ref_num})"
            if self.reject_stale and kind in _ORDER_ENTRY:
                return Inbound([], [ouch.Rejected(ts, urn, R.OTHER, msg.cl_ord_id)], why)
            return Inbound(ignored=why)
        if kind is ouch.EnterOrder:
            return self._enter(participant, name, acct, msg, ts)  # type: ignore[arg-type]
        if kind is ouch.ReplaceOrderRequest:
            return self._replace(participant, name, acct, msg, ts)  # type: ignore[arg-type]
        acct.consume(urn)
        if kind is ouch.MassCancelRequest:
            side = msg.options.side
            wanted = None if side is None else ag.Side.BUY if side == "B" else ag.Side.SELL
            cmds: list[object] = [
                CancelOrder(participant, o.order_id, 0, "")
                for o in sorted(acct.orders.values(), key=lambda o: o.order_id)
                if (not msg.symbol or o.symbol == msg.symbol) and wanted in (None, o.side)
            ]
            reply = ouch.MassCancelResponse(ts, urn, msg.firm, msg.symbol)
            return Inbound(cmds, [reply])
        if kind is ouch.DisableOrderEntryRequest or kind is ouch.EnableOrderEntryRequest:
            engaged = kind is ouch.DisableOrderEntryRequest
            acct.pending_switch = (urn, msg.firm, engaged)
            return Inbound([KillSwitch(participant, engaged)])
        return Inbound(ignored=f"unexpected inbound message {type(msg).__name__}")

    def unanswered(self, account: str, now_ns: int) -> list[ouch.OuchMessage]:
        """After submitting a Disable/Enable: its response if no state change answered it."""
        acct = self.account(account)
        pending, acct.pending_switch = acct.pending_switch, None
        if pending is None:
            return []
        urn, firm, engaged = pending
        cls = ouch.DisableOrderEntryResponse if engaged else ouch.EnableOrderEntryResponse
        return [cls(ns_since_midnight(now_ns), urn, firm)]

    @staticmethod
    def _unsupported(tif: str, opts: ouch.Options) -> tuple[R, str] | None:
        if tif not in TIF_IN:
            return R.OTHER, f"time in force {tif!r} is not supported"
        if opts is EMPTY_OPTIONS:  # what an empty appendage decodes to: nothing to refuse
            return None
        if opts.price_type not in (None, "L"):
            return R.INVALID_PEG_TYPE, f"price type {opts.price_type!r} is not supported"
        if opts.peg_offset or opts.discretion_price or opts.discretion_peg_offset:
            return R.PEGGING_NOT_ALLOWED, "pegging and discretion are not supported"
        if opts.random_reserves:
            return R.INVALID_MAX_FLOOR, "random reserves are not supported"
        if opts.expire_time:
            return R.OTHER, "expire time is not supported"
        return None

    @staticmethod
    def _display(display: str, opts: ouch.Options) -> int | None:
        if display == ouch.Display.HIDDEN:
            return 0
        return opts.max_floor or None

    def _enter(self, participant: str, name: str, acct: Account, msg: ouch.EnterOrder,
               ts: int) -> Inbound:
        urn = msg.user_ref_num
        acct.consume(urn)
        opts = msg.options
        problem = self._unsupported(msg.time_in_force, opts)
        if problem:
            return Inbound([], [ouch.Rejected(ts, urn, problem[0], msg.cl_ord_id)], problem[1])
        market = msg.price >= MARKET_PRICE
        acct.contexts[urn] = EntryContext(
            msg.cl_ord_id, msg.side, msg.capacity, msg.intermarket_sweep, msg.cross_type,
            msg.display, opts.firm,
        )
        return Inbound([NewOrder(
            participant,
            ouch_order_id(name, urn),
            msg.symbol,
            ag.Side.BUY if msg.side == ouch.Side.BUY else ag.Side.SELL,
            msg.quantity,
            0 if market else msg.price,
            ag.OrderType.MARKET if market else ag.OrderType.LIMIT,
            TIF_IN[msg.time_in_force],
            opts.post_only == ouch.PostOnly.POST_ONLY,
            self._display(msg.display, opts),
            opts.min_qty or 0,
        )])

    def _replace(
        self, participant: str, name: str, acct: Account, msg: ouch.ReplaceOrderRequest, ts: int
    ) -> Inbound:
        order = acct.orders.get(msg.orig_user_ref_num)
        if order is None:
            return Inbound(ignored=f"Replace: UserRefNum {msg.orig_user_ref_num} is not live")
        urn = msg.user_ref_num
        acct.consume(urn)
        problem = self._unsupported(msg.time_in_force, msg.options)
        if problem:
            return Inbound([], [ouch.Rejected(ts, urn, problem[0], msg.cl_ord_id)], problem[1])
        old = order.context
        acct.contexts[urn] = EntryContext(
            msg.cl_ord_id, old.side, old.capacity, msg.intermarket_sweep, old.cross_type,
            msg.display, old.firm,
        )
        return Inbound([ReplaceOrder(
            participant,
            order.order_id,
            ouch_order_id(name, urn),
            msg.price,
            msg.quantity - order.executed,
            self._display(msg.display, msg.options),
        )])

    @staticmethod
    def _cancel(participant: str, acct: Account, msg: ouch.CancelOrderRequest) -> Inbound:
        order = acct.orders.get(msg.user_ref_num)
        if order is None:
            return Inbound(ignored=f"Cancel: UserRefNum {msg.user_ref_num} is not live")
        keep = max(0, msg.quantity - order.executed)
        if keep >= order.leaves:
            return Inbound(ignored=f"Cancel to {msg.quantity} does not reduce the order")
        return Inbound([CancelOrder(participant, order.order_id, keep, "")])

    # ------------------------------------------------------------------ outbound

    def outbound(self, events: Iterable[object]) -> list[tuple[str, ouch.OuchMessage]]:
        """OUCH messages for one committed event batch, in order, with their account."""
        out: list[tuple[str, ouch.OuchMessage]] = []
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event), _UNKNOWN)
            if handler is _UNKNOWN:
                handler = self._handler(type(event))
            if handler is not None:
                handler(event, out)
        return out

    def _handler(self, kind: type):
        """The handler of an event type (None: nothing to send), found once per type."""
        handler = next((getattr(self, name) for cls, name in _OUTBOUND_HANDLERS
                        if issubclass(kind, cls)), None)
        self._handlers[kind] = handler
        return handler

    def _status(self, e: TradingStatus, out: list) -> None:
        self._states[e.symbol] = e.state

    def _accepted(self, e: OrderAccepted, out: list) -> None:
        parsed = parse_ouch_order_id(e.client_order_id)
        if parsed is None:
            return
        name, urn = parsed
        acct = self.account(name)
        acct.consume(urn)
        ctx = acct.contexts.pop(urn, None) or EntryContext()
        order = LiveOrder(e.order_id, e.symbol, e.side, e.qty, 0, e.display_qty == 0, e.tif, ctx)
        acct.orders[urn] = order
        self._owner[e.order_id] = (name, acct, urn)
        if ctx.firm is None and not e.min_qty and not e.display_qty and not e.post_only:
            opts = EMPTY_OPTIONS  # equal to the Options below with every field None
        else:
            opts = ouch.Options(
                firm=ctx.firm,
                min_qty=e.min_qty or None,
                max_floor=e.display_qty or None,
                post_only=_POST_ONLY if e.post_only else None,
            )
        out.append((name, ouch.OrderAccepted(
            e.ts % NS_PER_DAY, urn, self._side(e.side, ctx), e.qty, e.symbol, e.price,
            TIF_OUT[e.tif], self._display_out(e.display_qty, ctx), e.order_id, ctx.capacity,
            ctx.intermarket_sweep, ctx.cross_type, _LIVE, ctx.cl_ord_id, opts,
        )))

    def _replaced(self, e: OrderReplaced, out: list) -> None:
        parsed = parse_ouch_order_id(e.client_order_id)
        orig = user_ref_num(e.orig_client_order_id)
        if parsed is None or orig is None:
            return
        name, urn = parsed
        acct = self.account(name)
        acct.consume(urn)
        order = acct.orders.pop(orig, None)
        ctx = acct.contexts.pop(urn, None) or (order.context if order else EntryContext())
        executed = order.executed if order else 0
        tif = order.tif if order else ag.TimeInForce.DAY
        self._owner.pop(e.old_order_id, None)
        acct.orders[urn] = LiveOrder(
            e.order_id, e.symbol, e.side, e.qty, executed, e.display_qty == 0, tif, ctx
        )
        self._owner[e.order_id] = (name, acct, urn)
        opts = ouch.Options(max_floor=e.display_qty) if e.display_qty else EMPTY_OPTIONS
        out.append((name, ouch.OrderReplaced(
            e.ts % NS_PER_DAY, orig, urn, self._side(e.side, ctx), e.qty, e.symbol,
            e.price, TIF_OUT[tif], self._display_out(e.display_qty, ctx), e.order_id,
            ctx.capacity, ctx.intermarket_sweep, ctx.cross_type, _LIVE, ctx.cl_ord_id, opts,
        )))

    def _rejected(self, e: OrderRejected, out: list) -> None:
        parsed = parse_ouch_order_id(e.client_order_id)
        if parsed is None:  # a cancel's reject: OUCH ignores redundant cancels silently
            return
        name, urn = parsed
        acct = self.account(name)
        acct.consume(urn)
        ctx = acct.contexts.pop(urn, None) or EntryContext()
        code = REJECT_CODES.get(e.reason, R.OTHER)
        out.append((name, ouch.Rejected(
            ns_since_midnight(e.ts), urn, code, ctx.cl_ord_id
        )))

    def _cancelled(self, e: OrderCancelled, out: list) -> None:
        owner = self._owner.get(e.order_id)
        if owner is not None:
            name, acct, urn = owner
        else:
            parsed = parse_ouch_order_id(e.client_order_id)  # the cancelled order's own id
            if parsed is None:
                return
            name, urn = parsed
            acct = self.account(name)
        order = acct.orders.get(urn)
        if order is not None:
            order.leaves = e.leaves_qty
            if e.leaves_qty == 0:
                self._forget(acct, urn, order)
        out.append((name, ouch.OrderCanceled(
            e.ts % NS_PER_DAY, urn, e.cancelled_qty, CANCEL_CODES[e.reason]
        )))

    def _execution(self, e: Execution, out: list) -> None:
        state = self._states.get(e.symbol)
        for side, order_id, client_id, leaves in (
            (ag.Side.BUY, e.buy_order_id, e.buy_client_order_id, e.buy_leaves),
            (ag.Side.SELL, e.sell_order_id, e.sell_client_order_id, e.sell_leaves),
        ):
            owner = self._owner.get(order_id)
            if owner is not None:
                name, acct, urn = owner
            else:
                parsed = parse_ouch_order_id(client_id)
                if parsed is None:
                    continue
                name, urn = parsed
                acct = self.account(name)
            order = acct.orders.get(urn)
            if e.aggressor is None:
                flag = (ouch.LiquidityFlag.HALT_CROSS if state is ag.TradingState.HALTED
                        else ouch.LiquidityFlag.OPENING_CROSS)
            elif e.aggressor is side:
                flag = ouch.LiquidityFlag.REMOVED
            elif order is not None and order.hidden:
                flag = ouch.LiquidityFlag.NON_DISPLAYED_ADDING
            else:
                flag = ouch.LiquidityFlag.ADDED
            if order is not None:
                order.leaves = leaves
                order.executed += e.qty
                if leaves == 0:
                    self._forget(acct, urn, order)
            out.append((name, ouch.OrderExecuted(
                ns_since_midnight(e.ts), urn, e.qty, e.price, flag, e.trade_id
            )))

    def _participant(self, e: ParticipantUpdated, out: list) -> None:
        """A kill switch changed: every account of the participant hears it (module notes)."""
        cls = ouch.DisableOrderEntryResponse if e.kill_switch else ouch.EnableOrderEntryResponse
        ts = ns_since_midnight(e.ts)
        for name in self.accounts_of(e.spec.participant):
            acct = self.account(name)
            if e.kill_switch == acct.kill_switch:
                continue  # limits changed (or a repeated switch): the events say nothing to send
            acct.kill_switch = e.kill_switch
            urn, firm = 0, ""
            if acct.pending_switch is not None and acct.pending_switch[2] == e.kill_switch:
                urn, firm, _ = acct.pending_switch
                acct.pending_switch = None
            out.append((name, cls(ts, urn, firm)))

    def _forget(self, acct: Account, urn: int, order: LiveOrder) -> None:
        acct.orders.pop(urn, None)
        self._owner.pop(order.order_id, None)

    @staticmethod
    def _side(side: ag.Side, ctx: EntryContext) -> ouch.Side:
        if ctx.side is not None and (ctx.side == ouch.Side.BUY) == (side is ag.Side.BUY):
            return ctx.side
        return ouch.Side.BUY if side is ag.Side.BUY else ouch.Side.SELL

    @staticmethod
    def _display_out(display_qty: int | None, ctx: EntryContext) -> ouch.Display:
        if display_qty == 0:
            return ouch.Display.HIDDEN
        if ctx.display == ouch.Display.ATTRIBUTABLE:
            return ouch.Display.ATTRIBUTABLE
        return ouch.Display.VISIBLE


_UNKNOWN = object()
#: outbound event types and their OuchMapper handlers, in the order a subclass is matched
_OUTBOUND_HANDLERS: list[tuple[type, str]] = [
    (Execution, "_execution"),
    (OrderAccepted, "_accepted"),
    (OrderCancelled, "_cancelled"),
    (OrderReplaced, "_replaced"),
    (OrderRejected, "_rejected"),
    (ParticipantUpdated, "_participant"),
    (TradingStatus, "_status"),
]
