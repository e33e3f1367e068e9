"""BFT replica configuration: cluster shape, authentication mode, limits and local timeouts.

``n = 3f + 1`` tolerates ``f`` Byzantine replicas. Timeouts are compared only with the replica's
own clock readings, as in the crash-tolerant mode (``consensus/config.py``).
"""

from __future__ import annotations

import enum

import msgspec


class AuthMode(enum.StrEnum):
    """How normal-case messages are authenticated (view change and checkpoints always sign).

    ``macs``: HMAC-SHA256 authenticators (one MAC per receiver, pairwise keys), about 2 us per
    MAC; not transferable, so a third party cannot check them. ``signatures``: Ed25519 on every
    message (about 40 us to sign, 125 us to verify on the 2-core VM), transferable.
    """

    MACS = "macs"
    SIGNATURES = "signatures"


class BftCanary(enum.StrEnum):
    """Deliberate breakage so tests can prove the checker fails. Never in production."""

    NONE = "none"
    # prepared with f prepares (not 2f) and committed with f + 1 commits (not 2f + 1)
    SMALL_QUORUM = "small-quorum"
    # the new view trusts one replica's pre-prepared claim (A2 with 1 instead of f + 1)
    TRUST_CLAIMS = "trust-claims"


class BftConfig(msgspec.Struct, frozen=True, kw_only=True):
    cluster: int
    replica: int
    n: int
    auth: AuthMode = AuthMode.MACS
    status_ns: int = 5_000_000  # Status heartbeat period
    request_timeout_ns: int = 20_000_000  # a known request not executed by then: view change
    view_change_timeout_ns: int = 15_000_000  # doubled per failed attempt
    resend_ns: int = 4_000_000  # view-change retransmission
    idle_checkpoint_ns: int = 3_000_000  # checkpoint the executed point after this long idle
    checkpoint_every: int = 16  # also checkpoint every this many sequence numbers
    pipeline_max: int = 8  # sequence numbers the primary keeps in flight
    batch_max: int = 32
    watermark_window: int = 4_096  # accept pre-prepares up to stable checkpoint + this
    # batches per state-transfer message: a peer far behind gets them a stable checkpoint at a
    # time, so no Fill is a session's worth of datagrams
    fill_max: int = 256
    # executed batches kept in memory (between this and this plus FORGET_MAX, or twice it if
    # less) by a replica with a storage to read older ones back from (executed.py)
    log_memory: int = 8_192
    # a restart snapshot after this many executed batches or requests (snapshot.py; 0: none)
    snapshot_every: int = 8_192
    canary: BftCanary = BftCanary.NONE

    def __post_init__(self) -> None:
        if self.n < 4 or (self.n - 1) % 3:
            raise ValueError(f"n must be 3f + 1 with f >= 1, got {self.n}")
        if not 0 <= self.replica < self.n:
            raise ValueError(f"replica {self.replica} is not in 0..{self.n - 1}")
        if min(self.pipeline_max, self.batch_max, self.checkpoint_every, self.fill_max,
               self.log_memory) < 1:
            raise ValueError("pipeline_max, batch_max, checkpoint_every, fill_max and "
                             "log_memory must be >= 1")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0 (0: none), got "
                             f"{self.snapshot_every}")

    @property
    def f(self) -> int:
        return (self.n - 1) // 3

    @property
    def prepare_quorum(self) -> int:
        """Matching prepares from backups, besides the pre-prepare."""
        return self.f if self.canary is BftCanary.SMALL_QUORUM else 2 * self.f

    @property
    def claim_quorum(self) -> int:
        """View changes that must vouch for a batch's pre-prepare (rule A2, view_change.py)."""
        return 1 if self.canary is BftCanary.TRUST_CLAIMS else self.f + 1

    @property
    def commit_quorum(self) -> int:
        return self.f + 1 if self.canary is BftCanary.SMALL_QUORUM else 2 * self.f + 1
