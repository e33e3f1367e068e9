"""An exchange on disk: journal segments and snapshots in one directory; start = recover.

Layout::

    DIR/journal-<base_seq:020d>.agj    journal segments; each starts where the previous ended
    DIR/snapshot-<seq:020d>.snap       engine state after ``seq`` (see agora.exchange.state)

``open_exchange`` always recovers first, so starting and restarting are one path (exchange-core's
replay-then-journal): load the newest readable snapshot, replay the segments after it, cut a torn
tail of the last segment (reported), then append to that segment. ``Exchange.snapshot()`` writes
a snapshot and rolls to a new segment based at its seq, which bounds the next replay; older
segments stay for audit and full replay. A snapshot that fails to read is reported and the next
older one (or a full replay) is used instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agora.core.clock import Clock, WallClock
from agora.core.errors import JournalCorruptError, SnapshotError
from agora.core.events import Event
from agora.exchange.engine import MatchingEngine
from agora.exchange.journal import (
    FsyncPolicy,
    JournalWriter,
    RecoveryReport,
    recover_journal,
    replay,
)
from agora.exchange.sequencer import Sequencer
from agora.exchange.snapshot import list_snapshots, read_snapshot, snapshot_path, write_snapshot
from agora.exchange.state import encode_state, restore

_SEGMENT = re.compile(r"journal-(\d{20})\.agj")


def segment_path(directory: Path, base_seq: int) -> Path:
    return directory / f"journal-{base_seq:020d}.agj"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """Journal segments as (base seq, path), oldest first."""
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _SEGMENT.fullmatch(p.name))]
    return sorted(found)


@dataclass
class Recovery:
    """What a start found: where state came from and anything that was wrong."""

    snapshot_seq: int = 0
    replayed: int = 0
    last_seq: int = 0
    journal: list[RecoveryReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def recover(
    directory: str | os.PathLike[str],
    *,
    truncate: bool = True,
    use_snapshots: bool = True,
    on_events: Callable[[int, list[Event]], None] | None = None,
) -> tuple[MatchingEngine, Recovery]:
    """Rebuild the engine from the newest good snapshot and the journal after it.

    ``use_snapshots=False`` replays every segment from the first (a full replay, for audit, or to
    regenerate every event of the session). ``on_events(seq, events)`` receives the events each
    replayed command produces again, identical to the first time (the engine is deterministic).
    """
    directory = Path(directory)
    info = Recovery()
    engine = MatchingEngine()
    for _seq, path in reversed(list_snapshots(directory) if use_snapshots else []):
        try:
            snap_seq, state = read_snapshot(path)
            engine = restore(state)
            info.snapshot_seq = snap_seq
            break
        except (SnapshotError, ValueError) as e:
            info.problems.append(f"snapshot {path.name} unusable ({e}); trying an older one")
    after = info.snapshot_seq
    segs = segments(directory)
    # the segment holding seq after+1 is the last one whose base is <= after
    start = max((i for i, (base, _) in enumerate(segs) if base <= after), default=None)
    if segs and start is None:
        raise JournalCorruptError(f"no journal segment covers seq {after + 1} in {directory}")
    last = after

    def apply(seq: int, ts: int, command: object) -> None:
        events = engine.process(command, ts)
        info.replayed += 1
        if on_events is not None:
            on_events(seq, events)

    for i, (base, path) in enumerate(segs[start:] if segs else []):
        if i and base != last:
            raise JournalCorruptError(
                f"{path.name} starts after seq {base}, previous ended at {last}"
            )
        is_last = start + i == len(segs) - 1
        if is_last and truncate:
            report = recover_journal(path, truncate=True)
            if report.problem:
                info.problems.append(f"{path.name}: {report.problem}")
        report = replay(path, apply, after_seq=max(base, after))
        if report.problem and not is_last:
            raise JournalCorruptError(
                f"{path.name} ends torn but later segments exist: {report.problem}"
            )
        info.journal.append(report)
        last = max(last, report.last_seq)
    info.last_seq = last
    return engine, info


class Exchange:
    """Engine + sequencer + journal on a directory. Use ``open_exchange``."""

    def __init__(
        self,
        directory: Path,
        engine: MatchingEngine,
        recovery: Recovery,
        fsync: FsyncPolicy,
        clock: Clock,
    ) -> None:
        self.directory = directory
        self.engine = engine
        self.recovery = recovery
        self.fsync = fsync
        self._clock = clock
        segs = segments(directory)
        base = segs[-1][0] if segs else recovery.last_seq
        self._writer = JournalWriter(segment_path(directory, base), fsync=fsync, base_seq=base)
        self.sequencer = Sequencer(engine, clock, self._writer, recovery.last_seq)

    @property
    def last_seq(self) -> int:
        return self.sequencer.last_seq

    def submit(self, command: object) -> list[Event]:
        return self.sequencer.submit(command)

    def commit(self) -> None:
        self.sequencer.commit()

    def snapshot(self) -> Path:
        """Write the state at ``last_seq`` and start a new journal segment after it."""
        self.commit()
        seq = self.last_seq
        path = write_snapshot(snapshot_path(self.directory, seq), seq, encode_state(self.engine))
        self._writer.close()
        self._writer = JournalWriter(
            segment_path(self.directory, seq), fsync=self.fsync, base_seq=seq
        )
        self.sequencer = Sequencer(self.engine, self._clock, self._writer, seq)
        return path

    def close(self) -> None:
        self.commit()
        self._writer.close()

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_exchange(
    directory: str | os.PathLike[str],
    *,
    fsync: FsyncPolicy = FsyncPolicy.NONE,
    clock: Clock | None = None,
    use_snapshots: bool = True,
    on_events: Callable[[int, list[Event]], None] | None = None,
) -> Exchange:
    """Create or recover the exchange in ``directory`` and return it ready to take commands.

    ``use_snapshots`` and ``on_events`` are passed to ``recover``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    engine, info = recover(directory, use_snapshots=use_snapshots, on_events=on_events)
    return Exchange(directory, engine, info, fsync, clock or WallClock())
