"""A node's JSON-lines logs (``venue.log``, ``agents.log``): one :class:`NodeEvent` per line.

Each line is written to the OS at once (a SIGKILL loses nothing written); a torn last line is
skipped when read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from agora.core.clock import Clock


class NodeEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of a node log (fields as each event uses them; see the writers' notes)."""

    event: str
    at_ns: int
    id: str = ""  # venue.log: a ClOrdID; agents.log: an agent's name (a ClOrdID for fill)
    kind: str = ""  # new / cancel for decided and sent; ExecType name or reject kind for reports
    index: int = 0  # a committed log index (agents.log proposed: the seq; fill: the quantity)
    detail: str = ""


_event_decoder = msgspec.json.Decoder(NodeEvent)


def iter_node_log(path: Path, start: int = 0) -> Iterator[NodeEvent]:
    """Every whole line of a node log, a line at a time (a torn last line is skipped): a
    restarted node reads a whole session's log, which it must not hold in memory at once.
    ``start``: a byte offset where a line ends."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return
    with f:
        f.seek(start)
        for line in f:
            with contextlib.suppress(msgspec.DecodeError):
                yield _event_decoder.decode(line)


def read_node_log(path: Path) -> list[NodeEvent]:
    """Every whole line of a node log (a torn last line is skipped)."""
    return list(iter_node_log(path))


class NodeLog:
    """Appends :class:`NodeEvent` lines, stamped by ``clock``."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._file = open(path, "ab")  # noqa: SIM115 - lives with the node

    def write(self, event: str, **fields: object) -> None:
        line = NodeEvent(event, self.clock.now_ns(), **fields)  # type: ignore[arg-type]
        self._file.write(msgspec.json.encode(line) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
