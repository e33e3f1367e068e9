"""The sequencer: the exchange's single writer. Stamp, journal, then apply.

Each input command gets the next sequence number and a time from the injected clock, is appended
to the journal, and only then reaches the engine. Whoever publishes the resulting events (a
gateway, a feed) must call ``commit()`` first: with FsyncPolicy NONE that hands the journal's
buffer to the OS (survives a process crash), with BATCH or ALWAYS it also fsyncs (survives power
loss). Calling ``commit()`` once per batch of inputs is group commit: one write and at most one
fsync for the whole batch.

Every command is encoded for the journal and decoded back with the typed decoder before anything
else happens, so a malformed command (a float price, an unknown enum value, a wrong type, an
integer that overflows) raises ``MalformedCommand`` and is neither journalled nor applied; and the
engine sees exactly the command that replay will decode.
"""

from __future__ import annotations

import msgspec

from agora.core.clock import Clock
from agora.core.errors import MalformedCommand
from agora.core.events import Command, Event
from agora.exchange.engine import MatchingEngine
from agora.exchange.journal import FsyncPolicy, JournalWriter


class Sequencer:
    __slots__ = (
        "_append", "_clock", "_decode", "_encode", "_process", "engine", "journal", "last_seq"
    )

    def __init__(
        self,
        engine: MatchingEngine,
        clock: Clock,
        journal: JournalWriter | None = None,
        last_seq: int = 0,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.last_seq = last_seq
        self._clock = clock
        self._process = engine.process
        self._append = journal.append if journal is not None else None
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(Command).decode
        if journal is not None and journal.last_seq != last_seq:
            raise ValueError(f"journal ends at seq {journal.last_seq}, sequencer at {last_seq}")

    def submit(self, command: object) -> list[Event]:
        """Sequence, journal and apply one command; returns its events (not yet committed)."""
        try:
            payload = self._encode(command)
            command = self._decode(payload)
        except (msgspec.MsgspecError, OverflowError, TypeError) as e:
            raise MalformedCommand(f"not a valid exchange command: {e}") from None
        seq = self.last_seq + 1
        ts = self._clock.now_ns()
        if self._append is not None:
            self._append(seq, ts, payload)
        self.last_seq = seq
        return self._process(command, ts)

    def commit(self) -> None:
        """Make every submitted command durable per the journal's policy before publishing."""
        journal = self.journal
        if journal is None:
            return
        if journal.policy is FsyncPolicy.NONE:
            journal.flush()
        else:
            journal.sync()
