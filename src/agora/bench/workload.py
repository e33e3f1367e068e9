"""Seeded order-flow workloads for benchmarks and soak tests.

``engine_workload`` makes the issue's mix over several symbols: about 45% passive limit adds, 45%
cancels of orders the generator believes open, and 10% aggressive IOC orders that cross the
touch. Order ids are predicted (the engine assigns them in acceptance order, and every generated
order is valid), so cancels name real orders; a few of them name orders already filled by then
and are rejected ``UNKNOWN_ORDER``, which a real venue sees too.
"""

from __future__ import annotations

import random

from agora.core.enums import Side, TimeInForce, TradingState
from agora.core.events import (
    AddSymbol,
    CancelOrder,
    NewOrder,
    ParticipantSpec,
    SetParticipant,
    SetTradingState,
    SymbolSpec,
)

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AMD")
PARTICIPANTS = ("P01", "P02", "P03", "P04", "P05", "P06", "P07", "P08")
TICK = 100  # one cent


def setup_commands(symbols: int = 8, reference_price: int = 1_000_000) -> list:
    """Symbols, participants and the open: what a session starts with."""
    commands: list = [
        AddSymbol(SymbolSpec(s, reference_price, TICK, 1, 2_000)) for s in SYMBOLS[:symbols]
    ]
    commands += [SetParticipant(ParticipantSpec(p)) for p in PARTICIPANTS]
    commands += [SetTradingState(s, TradingState.OPEN) for s in SYMBOLS[:symbols]]
    return commands


def engine_workload(
    n_orders: int, *, seed: int = 1, symbols: int = 8, reference_price: int = 1_000_000
) -> list:
    """``n_orders`` order-entry commands (adds, cancels, aggressive IOCs), seeded."""
    rng = random.Random(seed)
    names = SYMBOLS[:symbols]
    mids = dict.fromkeys(names, reference_price)
    live: list[tuple[int, str]] = []  # (order id, owner) believed open
    next_id = 1
    commands: list = []
    for i in range(n_orders):
        roll = rng.random()
        participant = PARTICIPANTS[rng.randrange(len(PARTICIPANTS))]
        if roll < 0.45 and live:
            k = rng.randrange(len(live))
            live[k], live[-1] = live[-1], live[k]
            order_id, owner = live.pop()
            commands.append(CancelOrder(owner, order_id))
            continue
        symbol = names[rng.randrange(len(names))]
        mid = mids[symbol] = max(
            reference_price // 2, mids[symbol] + TICK * rng.choice((-1, 0, 0, 1))
        )
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        qty = 100 * rng.randint(1, 10)
        if roll < 0.90:
            offset = TICK * rng.randint(1, 20)
            price = mid - offset if side is Side.BUY else mid + offset
            commands.append(NewOrder(participant, f"c{i}", symbol, side, qty, price))
            live.append((next_id, participant))
        else:
            price = mid + TICK * 3 if side is Side.BUY else mid - TICK * 3
            commands.append(
                NewOrder(participant, f"c{i}", symbol, side, qty, price, tif=TimeInForce.IOC)
            )
        next_id += 1
    return commands
