"""The event vocabulary: one frozen msgspec Struct per fact, used everywhere.

Inputs (commands) are what a participant or operator asks for; they carry no time, because the
sequencer stamps each with a sequence number and ``ts`` when it journals it. Outputs are what
happened, each with ``ts`` (int ns, event time: the sequencer's stamp of the input that caused it).

Schema evolution (the journal stores these): append new fields at the end with defaults; never
reorder or remove fields; never reuse a tag. Structs are ``array_like`` so journal records are
compact msgpack arrays whose first element is the tag.
"""

from __future__ import annotations

import msgspec

from agora.core.enums import (
    CancelReason,
    OrderType,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
    TradingState,
)


class Record(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    """Base of every command and event (gives the msgpack tag and immutability)."""


# ---------------------------------------------------------------- inputs: order entry


class NewOrder(Record):
    """Enter an order. ``display_qty``: None shows it all, 0 hides it, else an iceberg peak."""

    participant: str
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    price: int = 0  # Price(4); must be 0 for MARKET
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    post_only: bool = False
    display_qty: int | None = None
    min_qty: int = 0


class CancelOrder(Record):
    """Cancel an order, or reduce it: ``leaves_qty`` is the open quantity to keep (0 = all)."""

    participant: str
    order_id: int
    leaves_qty: int = 0
    client_order_id: str = ""  # the request's own id, echoed on a reject


class ReplaceOrder(Record):
    """Cancel-replace: new price and open quantity under a new client order id.

    Keeps time priority only if the price is unchanged and the quantity does not grow.
    ``display_qty``: None keeps the order's display setting.
    """

    participant: str
    order_id: int
    client_order_id: str
    price: int
    qty: int
    display_qty: int | None = None


# ---------------------------------------------------------------- inputs: operator


class SymbolSpec(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Reference data of one instrument. Band is limit-up/limit-down around the reference."""

    symbol: str
    reference_price: int
    tick_size: int = 100  # one cent in Price(4)
    lot_size: int = 1
    band_bps: int = 1_000  # +/- 10%


class ParticipantSpec(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A member firm's exchange-side limits. Notional is price units x shares (Price(4))."""

    participant: str
    max_order_qty: int = 1_000_000
    max_notional: int = 10**16
    collar_bps: int = 10_000  # |price - reference| / reference, in basis points
    max_open_orders: int = 1_000_000
    stp: StpMode = StpMode.NONE


class AddSymbol(Record):
    spec: SymbolSpec
    state: TradingState = TradingState.PRE_OPEN


class SetParticipant(Record):
    """Add a participant or replace its limits (open orders are not re-checked)."""

    spec: ParticipantSpec


class SetTradingState(Record):
    symbol: str
    state: TradingState


class KillSwitch(Record):
    """Engage: cancel all of the participant's orders and refuse new ones. Release: allow again."""

    participant: str
    engaged: bool = True


Command = (
    NewOrder
    | CancelOrder
    | ReplaceOrder
    | AddSymbol
    | SetParticipant
    | SetTradingState
    | KillSwitch
)


# ---------------------------------------------------------------- outputs: order outcomes


class OrderAccepted(Record):
    ts: int
    symbol: str
    order_id: int
    participant: str
    client_order_id: str
    side: Side
    price: int
    qty: int
    order_type: OrderType
    tif: TimeInForce
    display_qty: int | None
    post_only: bool
    min_qty: int


class OrderRejected(Record):
    ts: int
    participant: str
    client_order_id: str
    reason: RejectReason
    text: str
    order_id: int = 0  # the order a cancel/replace named, if any


class OrderCancelled(Record):
    """``cancelled_qty`` left the order; ``leaves_qty`` remains open (0: the order is gone)."""

    ts: int
    symbol: str
    order_id: int
    participant: str
    client_order_id: str
    cancelled_qty: int
    leaves_qty: int
    reason: CancelReason


class OrderReplaced(Record):
    """``order_id == old_order_id`` when priority was kept, a new id when it was lost."""

    ts: int
    symbol: str
    old_order_id: int
    order_id: int
    participant: str
    client_order_id: str
    orig_client_order_id: str
    side: Side
    price: int
    qty: int
    display_qty: int | None


class Execution(Record):
    """One trade, both sides. ``aggressor`` is None for an auction (cross) trade."""

    ts: int
    symbol: str
    trade_id: int
    price: int
    qty: int
    aggressor: Side | None
    buy_order_id: int
    buy_participant: str
    buy_client_order_id: str
    buy_leaves: int
    sell_order_id: int
    sell_participant: str
    sell_client_order_id: str
    sell_leaves: int


# ---------------------------------------------------------------- outputs: market data (L3)


class BookAdd(Record):
    """A displayed quantity joins the back of its price level (ITCH 'A')."""

    ts: int
    symbol: str
    order_id: int
    side: Side
    price: int
    qty: int


class BookExecute(Record):
    """Displayed quantity executed (ITCH 'E'); at zero the order leaves the book."""

    ts: int
    symbol: str
    order_id: int
    qty: int
    trade_id: int
    price: int
    cross: bool = False


class BookCancel(Record):
    """Displayed quantity reduced, the order stays with its priority (ITCH 'X')."""

    ts: int
    symbol: str
    order_id: int
    qty: int


class BookDelete(Record):
    """The order's displayed quantity leaves the book (ITCH 'D')."""

    ts: int
    symbol: str
    order_id: int


class BookReplace(Record):
    """An order moves to a new price/quantity under a new id, losing priority (ITCH 'U')."""

    ts: int
    symbol: str
    old_order_id: int
    order_id: int
    price: int
    qty: int


class Trade(Record):
    """A print that is not a book execution: hidden order hit (ITCH 'P') or cross (ITCH 'Q')."""

    ts: int
    symbol: str
    trade_id: int
    price: int
    qty: int
    side: Side | None  # side of the resting (hidden) order; None for a cross
    cross: bool = False


# ---------------------------------------------------------------- outputs: venue


class SymbolDirectory(Record):
    ts: int
    spec: SymbolSpec


class TradingStatus(Record):
    ts: int
    symbol: str
    state: TradingState
    reference_price: int


class ParticipantUpdated(Record):
    ts: int
    spec: ParticipantSpec
    kill_switch: bool


class CommandRejected(Record):
    """An operator command that could not apply (unknown symbol, invalid transition...)."""

    ts: int
    reason: RejectReason
    text: str


Event = (
    OrderAccepted
    | OrderRejected
    | OrderCancelled
    | OrderReplaced
    | Execution
    | BookAdd
    | BookExecute
    | BookCancel
    | BookDelete
    | BookReplace
    | Trade
    | SymbolDirectory
    | TradingStatus
    | ParticipantUpdated
    | CommandRejected
)


# ---------------------------------------------------------------- decisions: agents and consensus


class OrderIntent(Record):
    """An agent wants an order at the venue (limit price in Price(4))."""

    symbol: str
    side: Side
    qty: int
    price: int
    tif: TimeInForce = TimeInForce.DAY


class CancelIntent(Record):
    """An agent wants the order sent for an earlier decision cancelled."""

    decision_id: str


class OrderDone(Record):
    """A reporter agent says the venue has finished with the order of an earlier decision: filled,
    expired, cancelled by the venue itself, or rejected (``reason``: which, for the audit trail).
    The committed log then knows the order is over (the rules forget it; see ``rules.py``)."""

    decision_id: str
    reason: str


class Veto(Record):
    """A risk agent blocks new orders on ``symbol`` ("" = every symbol) until lifted: orders of
    ``side`` only (at a long limit, buys; sells still reduce the position), or of both sides
    when ``side`` is None. A veto on one side and one on both are separate vetoes."""

    symbol: str
    reason: str
    active: bool = True
    side: Side | None = None


class FairValue(Record):
    """A market view: fair value and its uncertainty, both Price(4)."""

    symbol: str
    price: int
    uncertainty: int


class Proposal(Record):
    """What one agent puts to the consensus log. ``(agent, seq)`` identifies it (``seq`` grows per
    agent); ``budget_ns`` is how long it may take to commit (0: no deadline); ``signature`` covers
    the encoded proposal with an empty signature, by the agent's key."""

    agent: str
    seq: int
    budget_ns: int
    action: OrderIntent | CancelIntent | Veto | FairValue | OrderDone
    signature: bytes = b""


class Decision(Record):
    """What the aggregation rules made of the committed log: one effect on the venue. Its
    ``client_order_id`` is derived from the log alone, so whichever replica sends it, the venue
    accepts it once and rejects the duplicates."""

    decision_id: str
    log_index: int
    action: OrderIntent | CancelIntent
    client_order_id: str
    voters: tuple[str, ...] = ()
    """The agents whose ballots made it, by name (the audit trail of who decided an order)."""
