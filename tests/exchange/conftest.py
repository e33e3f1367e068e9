"""Fixtures for scenario tests that run against every implementation of the matching rules.

``engine_cls`` is parametrized over ``ReferenceEngine`` and, when it imports, the fast
``MatchingEngine``. ``make_venue`` builds a ready engine (symbols, participants, trading state)
wrapped in a ``Venue`` that stamps commands with known timestamps and blanks the free-form
``text`` of rejects (the rules fix the reason, not the wording).
"""

from __future__ import annotations

import msgspec
import pytest

from agora.core.enums import TradingState
from agora.core.events import (
    AddSymbol,
    CommandRejected,
    OrderRejected,
    ParticipantSpec,
    SetParticipant,
    SetTradingState,
    SymbolSpec,
)
from agora.exchange.reference import ReferenceEngine

IMPLEMENTATIONS: list[type] = [ReferenceEngine]
try:  # the fast engine may be absent or half-written; test it only when it imports
    from agora.exchange.engine import MatchingEngine
except Exception:  # pragma: no cover - depends on the state of the tree
    pass
else:
    IMPLEMENTATIONS.append(MatchingEngine)

# AAPL: $100.00, one-cent tick, lot 1, +/-10% band -> [90.00, 110.00]
AAPL = SymbolSpec("AAPL", 1_000_000, 100, 1, 1_000)
# MSFT: $250.00, five-cent tick, lot 10, +/-5% band -> [237.50, 262.50]
MSFT = SymbolSpec("MSFT", 2_500_000, 500, 10, 500)

SETUP_TS = 1  # ts of the commands that build the venue
PREP_TS = 3  # ts of a test's preparatory commands
T = 7  # ts of the command under test


def blank_text(events: list) -> list:
    """Events with the free-form ``text`` of rejects blanked."""
    return [
        msgspec.structs.replace(ev, text="")
        if isinstance(ev, OrderRejected | CommandRejected) else ev
        for ev in events
    ]


class Venue:
    """An engine plus the timestamps tests use."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def send(self, command, ts: int = T) -> list:
        events = self.engine.process(command, ts)
        assert events, f"no outcome for {command}"
        return blank_text(events)

    def prep(self, *commands) -> list:
        """Apply preparatory commands (at PREP_TS); none of them may be refused."""
        out = []
        for command in commands:
            events = self.send(command, PREP_TS)
            assert not any(isinstance(e, OrderRejected | CommandRejected) for e in events), events
            out.extend(events)
        return out

    def book(self) -> list[tuple]:
        return self.engine.resting_orders()


def build_engine(engine_cls, participants=("A", "B", "C", "D"), symbols=(AAPL, MSFT),
                 state: TradingState = TradingState.OPEN):
    """A fresh engine with ``symbols`` (opened by default) and ``participants``.

    ``participants`` holds names (default limits, no STP) or full ``ParticipantSpec``s.
    """
    engine = engine_cls()
    commands: list = [AddSymbol(spec) for spec in symbols]
    for p in participants:
        spec = p if isinstance(p, ParticipantSpec) else ParticipantSpec(p)
        commands.append(SetParticipant(spec))
    if state is TradingState.OPEN:
        commands += [SetTradingState(spec.symbol, TradingState.OPEN) for spec in symbols]
    elif state is not TradingState.PRE_OPEN:
        commands += [SetTradingState(spec.symbol, state) for spec in symbols]
    for command in commands:
        events = engine.process(command, SETUP_TS)
        assert not any(isinstance(e, CommandRejected) for e in events), events
    return engine


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda cls: cls.__name__)
def engine_cls(request):
    return request.param


@pytest.fixture
def make_venue(engine_cls):
    def make(participants=("A", "B", "C", "D"), symbols=(AAPL, MSFT),
             state: TradingState = TradingState.OPEN) -> Venue:
        return Venue(build_engine(engine_cls, participants, symbols, state))

    return make


@pytest.fixture
def venue(make_venue) -> Venue:
    """AAPL and MSFT open; participants A, B, C, D with default limits and no STP."""
    return make_venue()
