"""Small shared types of the BFT replica: its phase, its counters, a stable checkpoint."""

from __future__ import annotations

import enum

import msgspec

from agora.decision.bft.messages import Sealed


class Phase(enum.IntEnum):
    NORMAL = 0
    VIEW_CHANGE = 1


class BftStats(msgspec.Struct):
    views_started: int = 0  # views this replica installed as their primary
    view_changes_begun: int = 0
    suspicions: int = 0  # times this replica began to suspect its view (suspicion.py)
    committed: int = 0
    recoveries: int = 0  # restarts that rebuilt state from the replica's records
    fills: int = 0  # state transfers applied
    dropped_auth: int = 0  # bad MAC/signature, non-member, body naming another sender
    dropped_view: int = 0  # wrong view (old or replayed), or wrong phase
    dropped_invalid: int = 0  # bad digest, outside watermarks, bad client MAC, bad proof
    dropped_equivocation: int = 0  # a second digest for one (view, seq)
    duplicates: int = 0  # a vote already counted
    dropped_stale: int = 0  # a Status older than its sender's latest (reordered or replayed)
    unconfirmed_status: int = 0  # a Status not naming this incarnation: answered, not counted
    deadline_total: int = 0  # requests with a budget whose verdict executed
    deadline_abandoned: int = 0
    snapshots: int = 0  # restart snapshots appended (snapshot.py)
    started_from: int = 0  # the executed batch of the snapshot this incarnation started at


class Stable(msgspec.Struct, frozen=True):
    seq: int
    chain: bytes
    proof: tuple[Sealed, ...]
