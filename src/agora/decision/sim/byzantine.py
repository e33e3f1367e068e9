"""Byzantine behaviours for the simulator: what up to f faulty replicas do to their outputs.

A Byzantine replica runs the correct replica code, and a :class:`Byzantine` filter rewrites
what it emits before the network sees it. It holds only its own key material (its Ed25519 key
and the MAC keys of pairs it belongs to), so anything claiming another sender fails
authentication at a correct receiver, as a real forgery would. Behaviours (any subset):

* ``equivocate``: as primary, send one pre-prepare to half the replicas and a different one
  (the batch reversed, or cut to its first request, or empty) for the same sequence number to
  the others;
* ``forge``: also emit votes claiming another replica's identity (MACs under our own keys, or
  a garbage signature) and votes whose body names another sender inside our envelope;
* ``replay``: re-send old messages of other replicas it captured (prepares, commits, view
  changes, new views, checkpoints) to random replicas, later;
* ``wrong_digest``: prepares and commits for a random digest instead of the right one;
* ``silent``: emit nothing at all;
* ``withhold``: as primary, never pre-prepare requests of client 1 (backups must time out and
  change the view);
* ``lie``: its view changes claim, for every sequence number it knows and the next few, that
  it prepared (and pre-prepared) a null batch in the view just before, signed with its own key
  (the claims are well formed, so only the P/Q decision rule stands between them and a
  rewritten log);
* ``clock``: its deadline timings (``bft/deadline.py``) report, at random, 0 (pull every verdict
  towards "in time") or a year (towards "abandoned") for every request.

Every random choice uses the cluster's seeded generator, so runs stay deterministic.
"""

from __future__ import annotations

import random

from agora.decision.bft.auth import Keyring
from agora.decision.bft.config import AuthMode
from agora.decision.bft.messages import (
    Commit,
    Inner,
    PEntry,
    Prepare,
    PrePrepare,
    QEntry,
    Sealed,
    Timing,
    ViewChange,
    decode_inner,
    digest,
)
from agora.decision.consensus.messages import Broadcast, Committed, Outbox, Send

BEHAVIOURS = ("equivocate", "forge", "replay", "wrong_digest", "silent", "withhold", "lie",
              "clock")
_YEAR_NS = 365 * 86_400 * 10**9


class Byzantine:
    def __init__(self, me: int, n: int, kinds: frozenset[str], keyring: Keyring, mode: AuthMode,
                 rng: random.Random) -> None:
        unknown = kinds - set(BEHAVIOURS)
        if unknown:
            raise ValueError(f"unknown Byzantine behaviours {sorted(unknown)}")
        self.me, self.n, self.kinds = me, n, kinds
        self.keys, self.mode, self.rng = keyring, mode, rng
        self.captured: list[Sealed] = []
        self.emitted = 0

    def capture(self, message: object) -> None:
        """Remember some traffic addressed to us, to replay later."""
        if "replay" in self.kinds and isinstance(message, Sealed):
            if len(self.captured) < 256:
                self.captured.append(message)
            elif self.rng.random() < 0.1:
                self.captured[self.rng.randrange(256)] = message

    def _seal(self, m: Inner) -> Sealed:
        return self.keys.seal(self.me, m, self.mode)

    def rewrite(self, out: list[Outbox]) -> list[Outbox]:
        if "silent" in self.kinds:
            return [item for item in out if isinstance(item, Committed)]
        result: list[Outbox] = []
        for item in out:
            inner = None
            if isinstance(item, Send | Broadcast) and isinstance(item.message, Sealed):
                inner = decode_inner(item.message.body)
            if isinstance(inner, ViewChange) and "lie" in self.kinds and inner.view > 0:
                lie = self._seal(self._lie(inner))
                item = Send(item.to, lie) if isinstance(item, Send) else Broadcast(lie)
            if isinstance(inner, Timing) and "clock" in self.kinds:
                value = self.rng.choice((0, _YEAR_NS))
                lie = self._seal(Timing(inner.cluster, self.me, inner.seq,
                                        (value,) * len(inner.elapsed)))
                item = Send(item.to, lie) if isinstance(item, Send) else Broadcast(lie)
            if isinstance(inner, PrePrepare):
                if "withhold" in self.kinds and any(r.client_id == 1 for r in inner.batch):
                    continue
                if "equivocate" in self.kinds and isinstance(item, Broadcast):
                    result.extend(self._equivocate(inner))
                    continue
            if isinstance(inner, Prepare | Commit):
                if "wrong_digest" in self.kinds and self.rng.random() < 0.5:
                    bogus = type(inner)(inner.cluster, self.me, inner.view, inner.seq,
                                        self.rng.randbytes(32))
                    item = Broadcast(self._seal(bogus))
                if "forge" in self.kinds:
                    result.extend(self._forge(inner))
            result.append(item)
        if "replay" in self.kinds and self.captured and self.rng.random() < 0.3:
            old = self.rng.choice(self.captured)
            result.append(Send(self.rng.randrange(self.n), old))
        self.emitted += len(result)
        return result

    def _lie(self, m: ViewChange) -> ViewChange:
        known = {e.seq for e in m.prepared} | {e.seq for e in m.preprepared}
        top = max(known, default=m.ckpt_seq)
        seqs = sorted(known | set(range(m.ckpt_seq + 1, top + 4)))
        null = digest(())
        return ViewChange(m.cluster, self.me, m.view, m.ckpt_seq, m.ckpt_chain, m.proof,
                          tuple(PEntry(s, m.view - 1, null, ()) for s in seqs),
                          tuple(QEntry(s, m.view - 1, null) for s in seqs))

    def _equivocate(self, m: PrePrepare) -> list[Outbox]:
        choice = self.rng.randrange(3)
        other = (tuple(reversed(m.batch)) if choice == 0 else m.batch[:1] if choice == 1 else ())
        if digest(other) == m.digest:
            other = ()
        twin = PrePrepare(m.cluster, self.me, m.view, m.seq, digest(other), other)
        first, second = self._seal(m), self._seal(twin)
        peers = [r for r in range(self.n) if r != self.me]
        self.rng.shuffle(peers)
        half = len(peers) // 2
        return ([Send(r, first) for r in peers[:half]]
                + [Send(r, second) for r in peers[half:]])

    def _forge(self, m: Prepare | Commit) -> list[Outbox]:
        victim = self.rng.choice([r for r in range(self.n) if r != self.me])
        claimed = type(m)(m.cluster, victim, m.view, m.seq, self.rng.randbytes(32))
        inside = self._seal(claimed)  # authentic from us, but the body names the victim
        body = Sealed(m.cluster, victim, inside.body, inside.signature, inside.macs)
        garbage_sig = Sealed(m.cluster, victim, inside.body, signature=self.rng.randbytes(64))
        return [Broadcast(body), Broadcast(garbage_sig), Broadcast(inside)]
