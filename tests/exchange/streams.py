"""Hypothesis strategies for random command streams over a small, busy market.

Prices sit in a narrow band so orders cross often; three participants use different STP modes.
Cancels and replaces are drawn with a negative placeholder order id -k; ``resolve`` turns it into
the id of a live order (the k-th, cyclically) just before the command is applied, usually with
its owner as participant, so most of them hit real orders and some are refused.
"""

from __future__ import annotations

import msgspec
from hypothesis import strategies as st

from agora.core.enums import OrderType, Side, StpMode, TimeInForce, TradingState
from agora.core.events import (
    AddSymbol,
    CancelOrder,
    KillSwitch,
    NewOrder,
    ParticipantSpec,
    ReplaceOrder,
    SetParticipant,
    SetTradingState,
    SymbolSpec,
)

SYMBOLS = ("AAA", "BBB")
PARTICIPANTS = ("P1", "P2", "P3")
REF = 100_000  # $10.00
TICK = 100


def setup(open_symbols: bool = True) -> list:
    stps = (StpMode.NONE, StpMode.CANCEL_OLDEST, StpMode.CANCEL_NEWEST)
    commands: list = [AddSymbol(SymbolSpec(s, REF, TICK, 1, 1_000)) for s in SYMBOLS]
    commands += [
        SetParticipant(ParticipantSpec(p, max_order_qty=5_000, max_open_orders=40, stp=stp))
        for p, stp in zip(PARTICIPANTS, stps, strict=True)
    ]
    if open_symbols:
        commands += [SetTradingState(s, TradingState.OPEN) for s in SYMBOLS]
    return commands


participants = st.sampled_from(PARTICIPANTS)
symbols = st.sampled_from(SYMBOLS)
prices = st.integers(-6, 6).map(lambda k: REF + k * TICK)
quantities = st.integers(1, 12).map(lambda k: k * 10)
displays = st.one_of(st.none(), st.just(0), st.integers(1, 4).map(lambda k: k * 10))
order_ids = st.integers(1, 10_000).map(lambda k: -k)
_client_ids = st.integers(0, 10**9).map(lambda k: f"c{k}")


@st.composite
def new_orders(draw) -> NewOrder:
    market = draw(st.integers(0, 9)) == 0
    tif = draw(st.sampled_from(list(TimeInForce)))
    display = None if market else draw(displays)
    min_qty = draw(st.sampled_from((0, 0, 10, 30))) if tif is TimeInForce.IOC else 0
    return NewOrder(
        draw(participants),
        draw(_client_ids),
        draw(symbols),
        draw(st.sampled_from((Side.BUY, Side.SELL))),
        draw(quantities),
        0 if market else draw(prices),
        OrderType.MARKET if market else OrderType.LIMIT,
        tif,
        (not market) and draw(st.integers(0, 7)) == 0,
        display,
        min_qty,
    )


cancels = st.builds(
    CancelOrder, participants, order_ids, st.sampled_from((0, 0, 10, 20)), _client_ids
)
replaces = st.builds(
    ReplaceOrder, participants, order_ids, _client_ids, prices, quantities,
    st.one_of(st.none(), st.none(), displays),
)
state_changes = st.builds(SetTradingState, symbols, st.sampled_from(list(TradingState)))
kill_switches = st.builds(KillSwitch, participants, st.sampled_from((True, False, False)))

_WEIGHTED = [
    (new_orders(), 50), (cancels, 20), (replaces, 20), (state_changes, 3), (kill_switches, 3)
]
commands = st.sampled_from([s for s, weight in _WEIGHTED for _ in range(weight)]).flatmap(
    lambda strategy: strategy
)
streams = st.lists(commands, min_size=10, max_size=150)


def resolve(command, live_orders: dict):
    """Bind a placeholder order id (-k) to a live order of ``live_orders`` (id -> order)."""
    if not isinstance(command, CancelOrder | ReplaceOrder) or command.order_id > 0:
        return command
    k = -command.order_id
    if not live_orders:
        return msgspec.structs.replace(command, order_id=k)
    ids = sorted(live_orders)
    order_id = ids[k % len(ids)]
    owner = live_orders[order_id].participant if k % 7 else command.participant
    return msgspec.structs.replace(command, order_id=order_id, participant=owner)
