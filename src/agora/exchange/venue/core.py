"""VenueCore: the single-threaded heart of the venue.

Every gateway hands its decoded commands to ``submit``; the command is validated, sequenced,
journalled and committed (durable per the fsync policy) before any listener sees its events, so
nothing is published that a restart could forget. Listeners (the ITCH feed, the OUCH and FIX
gateways) get every event batch in sequence order and pick what concerns them.

At open, the journal is replayed in full and the events of the whole session are kept in
``history``; a listener that subscribes with ``replay=True`` first receives all of it, so a gateway
rebuilds its per-participant outbound sequence (and a client resumes from its last sequence
number) after a restart without losing or duplicating a report. The engine is deterministic, so
the regenerated events are identical to the ones first published.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agora.core.clock import Clock, WallClock
from agora.core.enums import TradingState
from agora.core.events import AddSymbol, Event, SetParticipant, SetTradingState
from agora.exchange.store import Exchange, open_exchange
from agora.exchange.venue.config import VenueConfig

EventListener = Callable[[int, Sequence[Event]], None]
"""Called with (sequence number of the command, its events)."""


class VenueCore:
    def __init__(self, config: VenueConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.history: list[tuple[int, list[Event]]] = []
        self.exchange: Exchange = open_exchange(
            config.venue.directory,
            fsync=config.venue.fsync,
            clock=clock or WallClock(),
            use_snapshots=False,
            on_events=lambda seq, events: self.history.append((seq, events)),
        )
        self._listeners: list[EventListener] = []
        self._apply_config()

    @property
    def engine(self):
        return self.exchange.engine

    def subscribe(self, listener: EventListener, *, replay: bool = False) -> None:
        """Add a listener; with ``replay`` it first gets every event since the session began."""
        if replay:
            for seq, events in self.history:
                listener(seq, events)
        self._listeners.append(listener)

    def submit(self, command: object) -> list[Event]:
        """Sequence, journal, commit, then publish; raises MalformedCommand before any of it."""
        events = self.exchange.submit(command)
        self.exchange.commit()
        seq = self.exchange.last_seq
        self.history.append((seq, events))
        for listener in self._listeners:
            listener(seq, events)
        return events

    def _apply_config(self) -> None:
        """Add configured symbols and participants the journal does not know yet; open them."""
        engine = self.exchange.engine
        for section in self.config.participants:
            spec = section.spec()
            known = engine.participants.get(spec.participant)
            if known is None or known.spec != spec:
                self.submit(SetParticipant(spec))
        for section in self.config.symbols:
            if section.symbol not in engine.symbols:
                self.submit(AddSymbol(section.spec()))
                self.submit(SetTradingState(section.symbol, TradingState.OPEN))

    def close(self) -> None:
        self.exchange.close()
