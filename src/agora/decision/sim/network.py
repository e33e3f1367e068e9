"""The simulated network: per-message fate (drop, delay, duplicate) and partitions.

Delays are ``delay_min + lognormal`` with, at probability ``tail_prob``, a Pareto multiplier: a
heavy tail, so messages overtake each other (reordering needs nothing more). A slow replica
multiplies the delay of everything it sends or receives. A partition assigns replicas to groups;
only replicas of one group reach each other. Clients reach every replica (their messages still
suffer loss, delay and duplication): a client cut off is indistinguishable from a client that
retries later. ``heal`` removes every fault and keeps plain lognormal delays.
"""

from __future__ import annotations

import math
import random

import msgspec


class NetworkOptions(msgspec.Struct, frozen=True, kw_only=True):
    drop: float = 0.0
    duplicate: float = 0.0
    delay_min_ns: int = 20_000
    delay_median_ns: int = 100_000
    delay_sigma: float = 0.5
    tail_prob: float = 0.0
    tail_alpha: float = 1.5
    delay_max_ns: int = 100_000_000
    slow_factor: int = 1


class Network:
    def __init__(self, options: NetworkOptions, rng: random.Random, n: int) -> None:
        self.options = options
        self.rng = rng
        self.n = n
        self.groups: list[int] = [0] * n
        self.slow: set[int] = set()
        self._mu = math.log(max(1, options.delay_median_ns - options.delay_min_ns))

    def partition(self, groups: list[int]) -> None:
        if len(groups) != self.n:
            raise ValueError("one group number per replica")
        self.groups = list(groups)

    def heal(self) -> None:
        self.groups = [0] * self.n
        self.slow = set()
        self.options = msgspec.structs.replace(self.options, drop=0.0, duplicate=0.0,
                                               tail_prob=0.0, slow_factor=1)

    def connected(self, src: int, dst: int) -> bool:
        """Nodes at or above ``n`` are clients and reach everyone."""
        return src >= self.n or dst >= self.n or self.groups[src] == self.groups[dst]

    def delays(self, src: int, dst: int) -> list[int]:
        """Delivery delays of this message's copies: none if it is lost."""
        if not self.connected(src, dst):
            return []
        rng, o = self.rng, self.options
        if o.drop and rng.random() < o.drop:
            return []
        copies = 2 if o.duplicate and rng.random() < o.duplicate else 1
        return [self._delay(src, dst) for _ in range(copies)]

    def _delay(self, src: int, dst: int) -> int:
        rng, o = self.rng, self.options
        delay = rng.lognormvariate(self._mu, o.delay_sigma)
        if o.tail_prob and rng.random() < o.tail_prob:
            delay *= rng.paretovariate(o.tail_alpha)
        if src in self.slow or dst in self.slow:
            delay *= o.slow_factor
        return o.delay_min_ns + min(int(delay), o.delay_max_ns)
