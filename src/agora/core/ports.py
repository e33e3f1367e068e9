"""Loopback ports for servers a program or test is about to start.

Why not port 0's answer: a port the kernel hands out for ``bind(("127.0.0.1", 0))`` comes from
the ephemeral range, the same range it draws from for every client socket's automatic port, so
between the check and the server's own bind another process (or the same program's client
socket, bound first) may take it: a rare "address already in use" in tests that start many
processes. Ports below the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``) are
never handed out automatically; this picks free ones there at random, each checked by binding
it for both TCP and UDP, all held at once so they differ.

A port handed out is free until its server binds it, so two calls of one process could hand out
the same port to two servers not yet started (a test picks its venue's ports, then its nodes'
feed ports, then its replicas', and starts them later: a rare "address already in use"). So a
process never hands out again one of the latest :data:`REMEMBERED` ports it handed out.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

from agora.core.recent import Recent

LOWEST = 10_000  # below: well-known services' neighbourhood
REMEMBERED = 4_096  # ports handed out lately, not handed out again (a fifth of the range)
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out = Recent(REMEMBERED)


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def unused_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free for TCP and UDP on ``host``, outside the ephemeral range."""
    top = _ephemeral_start()
    if top - LOWEST < 4 * count:
        raise RuntimeError(f"no room below the ephemeral range (starts at {top})")
    rng = random.SystemRandom()
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(100 * count):
            if len(ports) == count:
                break
            port = rng.randrange(LOWEST, top)
            if port in ports or port in _handed_out:
                continue
            pair = [socket.socket(socket.AF_INET, kind)
                    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)]
            try:
                for s in pair:
                    s.bind((host, port))
            except OSError:
                for s in pair:
                    s.close()
                continue
            held.extend(pair)
            ports.append(port)
        if len(ports) < count:
            raise RuntimeError(f"found only {len(ports)} of {count} free ports on {host}")
        for port in ports:
            _handed_out.add(port)
        return ports
    finally:
        for s in held:
            s.close()
