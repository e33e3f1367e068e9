"""Replica configuration: cluster shape, limits and local timeouts (all in the replica's own ns).

Timeouts are compared only with the replica's own clock readings (``now - mark``); nothing
compares two replicas' clocks. A reading that goes backwards resets the mark (the timer restarts)
instead of producing a negative elapsed time; a forward jump fires timers early, which costs at
most a spurious view change.
"""

from __future__ import annotations

import enum

import msgspec


class Canary(enum.StrEnum):
    """Deliberate protocol breakage, so tests can prove the checker fails. Never in production."""

    NONE = "none"
    SMALL_QUORUM = "small-quorum"  # commit with f acknowledgements instead of f + 1
    TRUST_LOSSY_STORAGE = "trust-lossy-storage"  # restart from unsynced storage, skip recovery


class ReplicaConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything fixed for a replica's lifetime. ``n = 2f + 1`` tolerates ``f`` crashes."""

    cluster: int
    replica: int
    n: int
    heartbeat_ns: int = 2_000_000
    view_change_timeout_ns: int = 10_000_000
    resend_ns: int = 3_000_000
    pipeline_max: int = 8  # uncommitted Prepares (batches) the leader keeps in flight
    batch_max: int = 32  # entries per Prepare
    pending_max: int = 4_096  # requests queued at the leader beyond the pipeline
    repair_max: int = 2_048  # entries per StartView / RecoveryResponse (a prefix is enough)
    canary: Canary = Canary.NONE
    backup_acks: bool = True  # the f backups after the leader tell clients what they prepared
    pre_vote: bool = True  # ask f others before starting a view change on a silent leader
    # applied entries kept in memory (between this and this plus FORGET_MAX, or twice it if
    # less); older ones are read back from storage by the rare replica that needs them
    # (entry_log.py)
    log_memory: int = 16_384
    # applied entries between checkpoints of the client table (0: none), so that a restart
    # applies what follows the last one rather than the whole log (checkpoint.py)
    checkpoint_every: int = 65_536

    def __post_init__(self) -> None:
        if self.n < 1 or self.n % 2 == 0:
            raise ValueError(f"n must be odd and positive (n = 2f + 1), got {self.n}")
        if not 0 <= self.replica < self.n:
            raise ValueError(f"replica {self.replica} is not in 0..{self.n - 1}")
        if min(self.pipeline_max, self.batch_max, self.pending_max, self.repair_max,
               self.log_memory) < 1:
            raise ValueError("pipeline_max, batch_max, pending_max, repair_max and log_memory "
                             "must be >= 1")
        if min(self.heartbeat_ns, self.view_change_timeout_ns, self.resend_ns) <= 0:
            raise ValueError("timeouts must be positive")
        if self.checkpoint_every < 0:
            raise ValueError("checkpoint_every must be >= 0 (0: no checkpoints)")

    @property
    def f(self) -> int:
        return (self.n - 1) // 2

    @property
    def commit_quorum(self) -> int:
        """Replicas (leader included) that must hold an op before it commits."""
        quorum = self.f + 1
        return quorum - 1 if self.canary is Canary.SMALL_QUORUM and quorum > 1 else quorum
