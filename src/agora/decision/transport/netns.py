"""Replica processes in network namespaces of their own, joined by bridges: faults of the network.

:class:`NetnsCluster` is a :class:`~agora.decision.transport.cluster.ProcessCluster` whose replica
``i`` runs (``ip netns exec``) in a namespace of its own with one veth link into a bridge in the
caller's namespace. Replicas have addresses ``10.231.<net>.<i + 1>``; the bridge has ``.254``,
where clients in the caller's namespace bind (:attr:`NetnsCluster.client_host`). Every replica
sees the others through a real network device instead of loopback, and a fault is what a network
does, not a signal to a process (which keeps running, timers and all, through it):

* :meth:`~NetnsCluster.cut` takes a replica's link down: it reaches and hears nobody;
  :meth:`~NetnsCluster.mend` brings it back.
* :meth:`~NetnsCluster.partition` moves every replica not on the clients' side onto a second
  bridge: the two sides each talk among themselves and not to each other (a minority that can
  still vote among itself, which cutting links one by one cannot make).
* :meth:`~NetnsCluster.heal` undoes both.

Needs root (CAP_NET_ADMIN) and iproute2; :func:`unavailable` says why this machine cannot (tests
skip with that reason). No traffic shaping: ``tc netem`` needs a kernel module this machine may not
have; delay, loss and duplication are the simulator's. Closing the cluster stops the replicas and
deletes the namespaces and bridges, also after a failure; names carry this process's pid, and a
run killed before it cleaned up leaves them for ``ip netns del`` / ``ip link del``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from agora.decision.transport.cluster import ProcessCluster

PORT = 7_000  # every replica listens on this port of its own address
_SERIAL = itertools.count()
_SUBNET = "10.231"


def _ip(*args: str) -> None:
    """Run one ``ip`` command; raise with its own message if it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def unavailable() -> str | None:
    """Why namespaces cannot be used here, or None when they can (a trial namespace is made)."""
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    name = f"agora-probe-{uuid.uuid4().hex[:8]}"
    try:
        _ip("netns", "add", name)
    except OSError as exc:
        return f"cannot create a network namespace: {exc}"
    with contextlib.suppress(OSError):
        _ip("netns", "del", name)
    return None


def _free_net() -> int:
    """A third octet for ``10.231.x.0/24`` that no route of this namespace uses yet."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for net in [(os.getpid() + k) % 250 + 1 for k in range(250)]:
        if f"{_SUBNET}.{net}." not in routes:
            return net
    raise OSError(f"no free {_SUBNET}.x.0/24 subnet")


class NetnsCluster(ProcessCluster):
    def __init__(self, root: Path, n: int, **options: object) -> None:
        # unique per cluster (interface names have 15 characters): a deleted namespace's links
        # may outlive it for a moment, so a next cluster of this process must not reuse them
        self.tag = f"{os.getpid() % 100_000:05d}{next(_SERIAL) % 100:02d}"
        self.net = _free_net()
        self.client_host = f"{_SUBNET}.{self.net}.254"
        self.bridges = (f"agb{self.tag}", f"agc{self.tag}")  # the clients' side, the other
        self.namespaces = [f"agora-{self.tag}-r{i}" for i in range(n)]
        self.links = [f"agh{self.tag}{i}" for i in range(n)]  # host ends, on a bridge
        peers = [(f"{_SUBNET}.{self.net}.{i + 1}", PORT) for i in range(n)]
        super().__init__(root, n, peers=peers, **options)  # type: ignore[arg-type]
        self._made: list[tuple[str, ...]] = []  # ``ip`` arguments that undo what was made
        try:
            self._build()
        except BaseException:
            self._unbuild()
            raise

    def launcher(self, replica: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[replica], *super().launcher(replica)]

    def _build(self) -> None:
        main, other = self.bridges
        for bridge in (main, other):
            _ip("link", "add", bridge, "type", "bridge")
            self._made.append(("link", "del", bridge))
            _ip("link", "set", bridge, "up")
        _ip("addr", "add", f"{self.client_host}/24", "dev", main)
        for i, (ns, link) in enumerate(zip(self.namespaces, self.links, strict=True)):
            _ip("netns", "add", ns)
            self._made.append(("netns", "del", ns))  # takes the veth pair with it
            inner = f"agi{self.tag}{i}"
            _ip("link", "add", link, "type", "veth", "peer", "name", inner)
            self._made.append(("link", "del", link))  # at once, both ends (before the netns)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", link, "master", main)
            _ip("link", "set", link, "up")
            _ip("-n", ns, "addr", "add", f"{self.peers[i][0]}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _unbuild(self) -> None:
        for args in reversed(self._made):
            with contextlib.suppress(OSError):
                _ip(*args)
        self._made.clear()

    # ---------------------------------------------------------------- faults

    def cut(self, replicas: int | Iterable[int]) -> None:
        """Take the replicas' links down: each hears and reaches nobody until mended."""
        for i in _many(replicas):
            _ip("link", "set", self.links[i], "down")

    def mend(self, replicas: int | Iterable[int]) -> None:
        for i in _many(replicas):
            _ip("link", "set", self.links[i], "up")

    def partition(self, clients_side: Sequence[int]) -> None:
        """Split the network: ``clients_side`` stays with the clients, every other replica
        moves to the other bridge, where they still hear one another."""
        main, other = self.bridges
        for i in range(self.n):
            _ip("link", "set", self.links[i], "master", main if i in clients_side else other)

    def heal(self) -> None:
        """One network again: every link up and on the clients' bridge."""
        self.partition(range(self.n))
        self.mend(range(self.n))

    def stop(self) -> dict[int, int | None]:
        codes = super().stop()
        self._unbuild()
        return codes


def _many(replicas: int | Iterable[int]) -> list[int]:
    return [replicas] if isinstance(replicas, int) else list(replicas)
