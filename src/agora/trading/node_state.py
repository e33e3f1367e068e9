"""A decision node's state on disk, so that a restart reads the session's tail, not all of it.

A restarted node rebuilds its rules, its applier and its unanswered commands by replaying its
replica's committed record from the first entry, and the rules check every proposal's Ed25519
signature again (~60 of the ~95 us an entry costs), so a node restarted late in a long session
took many minutes (BENCHMARKS.md). Every ``every`` applied entries, and when it closes, a node
now saves that state (:func:`save`) with how far it had read its inputs: the committed record,
its own ``venue.log`` and, with hosted agents, their ``agents.log``. A restart loads it
(:func:`load`) and reads only what follows.

A shortcut, never a source of truth:

* The node saves between its replica's steps (a callback its commit hook schedules), when the
  record holds, flushed, exactly the entries applied, and ``venue.log`` every report taken in.
* A saved state is used only if its inputs still hold the bytes it read (at least its lengths,
  and the same digest of the 4 KiB before each: the files are only appended to, or cut at a
  torn tail), its payload's digest matches, and the rules, the participant, the cancel mode and
  the code of the modules whose objects it holds are the same. Otherwise the node says why on
  stderr and in ``venue.log`` (a ``state`` line) and replays from the start, as without one.
* A node that hosts agents saves theirs too (:meth:`AgentHost.state`: each agent but its key,
  the verdict counts, the fills' ExecIDs), with how far it had read ``agents.log``, a third
  input checked like the other two; a restart then replays into them only the record's tail and
  the fills logged after that point. The hosted agents' specs are part of the configuration the
  state must match.

The payload is msgpack (:class:`NodeStateData`), but for the rules' own state, a pickle of the
:class:`~agora.decision.rules.Aggregator` (its private containers, bounded by design, would
need a schema of their own), and the agents' (likewise): written by this code into the node's
own directory and read back only by the same code (the code digest), by a process that already
trusts that directory with its committed record and FIX sequence numbers. (Pickling the node's
unanswered commands instead took 208 ms for 20,000 of them, msgpack 14 ms.)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import pickle
import struct
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from agora.core.files import replace_durably
from agora.decision.venue_bridge import ApplierState, Outgoing

if TYPE_CHECKING:
    from agora.trading.decision_node import DecisionNode

FORMAT = 3
TAIL = 4096  # bytes before an input's saved length whose digest must still match
_LEN = struct.Struct("<I")
# the modules whose classes a saved state holds: any change to them makes it unusable
CODE = ("agora.core.enums", "agora.core.events", "agora.core.recent", "agora.decision.rules",
        "agora.decision.seq_window", "agora.decision.venue_bridge", "agora.trading.decision_node",
        "agora.trading.agent_host", "agora.trading.reports", "agora.decision.agents.base",
        "agora.decision.agents.execution", "agora.decision.agents.market_maker",
        "agora.decision.agents.market_view", "agora.decision.agents.momentum",
        "agora.decision.agents.reporter", "agora.decision.agents.risk")


class StateHeader(msgspec.Struct, frozen=True):
    """What a saved state was built from, and how far it read its inputs."""

    format: int
    code: bytes
    config: bytes  # digest of the rules, participant, cancel mode and hosted agents' specs
    applied: int
    record_size: int
    record_tail: bytes
    venue_size: int
    venue_tail: bytes
    agents_size: int  # agents.log (0 without hosted agents)
    agents_tail: bytes
    payload: bytes  # digest of the payload


class NodeStateData(msgspec.Struct, frozen=True, array_like=True):
    """The applier's and the node's state (``DecisionApplier``, ``DecisionNode``)."""

    applier: ApplierState
    aggregator: bytes  # a pickle of its rules (see the module notes)
    pending: dict[str, Outgoing]  # the node's commands no report named
    ahead: dict[str, int]  # the node's reported ClOrdIDs beyond its log
    agents: bytes  # the hosted agents' state (AgentHost.state), b"" without


class NodeFiles(NamedTuple):
    """A node's directory: its saved state and the two inputs the state is read from."""

    state: Path
    record: Path  # the replica's committed record
    venue: Path  # the node's venue.log
    agents: Path  # its agents.log (hosted agents' fills)

    @classmethod
    def of(cls, directory: Path) -> NodeFiles:
        return cls(directory / "node.state", directory / "committed.log",
                   directory / "venue.log", directory / "agents.log")


class Starts(msgspec.Struct, frozen=True):
    """Where a restart reads on: byte offsets of the committed record, venue.log and
    agents.log."""

    applied: int
    record: int
    venue: int
    agents: int


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _tail(path: Path, size: int) -> bytes | None:
    """The digest of the ``TAIL`` bytes before ``size`` in ``path``; None if it is shorter."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < size:
                return None
            f.seek(max(0, size - TAIL))
            return _digest(f.read(min(size, TAIL)))
    except FileNotFoundError:
        return None if size else _digest(b"")


def _end(path: Path) -> tuple[int, bytes]:
    """``path``'s length now and the digest :func:`_tail` will compare against."""
    size = path.stat().st_size if path.exists() else 0
    tail = _tail(path, size)
    assert tail is not None  # its own length
    return size, tail


@functools.cache
def _code() -> bytes:
    """Their source, found without importing (the node may run as ``__main__``)."""
    origins = (importlib.util.find_spec(name).origin for name in CODE)  # type: ignore[union-attr]
    return _digest(b"".join(Path(origin or "").read_bytes() for origin in origins))


def _config(node: DecisionNode) -> bytes:
    applier = node.applier
    specs = None if node.agents is None else node.agents.specs
    return _digest(msgspec.msgpack.encode(
        (applier.aggregator.config, applier.participant, applier.hold_cancels, specs)))


def save(node: DecisionNode, files: NodeFiles) -> None:
    """Write the node's state with how far it has read its inputs (their whole lengths now:
    call it between the replica's steps)."""
    a = node.applier
    payload = msgspec.msgpack.encode(NodeStateData(
        a.state(), pickle.dumps(a.aggregator, protocol=pickle.HIGHEST_PROTOCOL),
        *node.state(), b"" if node.agents is None else node.agents.state()))
    header = msgspec.msgpack.encode(StateHeader(
        FORMAT, _code(), _config(node), node.applier.applied_index, *_end(files.record),
        *_end(files.venue), *_end(files.agents), _digest(payload)))
    replace_durably(files.state, _LEN.pack(len(header)) + header + payload, sync=False)


def load(node: DecisionNode, files: NodeFiles) -> Starts | str:
    """Put a saved state into ``node`` and say where to read on; or why it is not usable (the
    node then replays from the start). A missing file says so too."""
    try:
        data = files.state.read_bytes()
    except FileNotFoundError:
        return "none saved"
    try:
        (length,) = _LEN.unpack_from(data)
        header = msgspec.msgpack.decode(data[_LEN.size:_LEN.size + length], type=StateHeader)
    except (struct.error, msgspec.DecodeError):
        return "its header does not decode"
    payload = data[_LEN.size + length:]
    why = _unusable(header, payload, node, files)
    if why:
        return why
    try:
        state = msgspec.msgpack.decode(payload, type=NodeStateData)
        aggregator = pickle.loads(state.aggregator)  # trusted: see the module notes
        if node.agents is not None:
            node.agents.restore(state.agents)
    except Exception as exc:  # the code and the digest matched: a bug, said, not fatal
        return f"its payload does not load ({exc!r})"
    node.applier.restore(state.applier, aggregator)
    node.restore(state.pending, state.ahead)
    return Starts(header.applied, header.record_size, header.venue_size, header.agents_size)


def _unusable(header: StateHeader, payload: bytes, node: DecisionNode,
              files: NodeFiles) -> str:
    if header.format != FORMAT:
        return f"format {header.format}, not {FORMAT}"
    if header.code != _code():
        return "saved by other code"
    if header.config != _config(node):
        return "saved under other rules, participant, cancel mode or agents"
    if _digest(payload) != header.payload:
        return "its payload is damaged"
    inputs = ((files.record, header.record_size, header.record_tail),
              (files.venue, header.venue_size, header.venue_tail),
              (files.agents, header.agents_size, header.agents_tail))
    for path, size, tail in inputs:
        if _tail(path, size) != tail:
            return f"{path.name} no longer holds what it read (its first {size} bytes)"
    return ""


__all__ = ["NodeFiles", "Starts", "load", "save"]
