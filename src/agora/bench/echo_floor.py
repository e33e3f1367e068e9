"""The physical floor of a loopback round trip: plain blocking sockets, nothing else.

``python -m agora.bench.echo_floor serve PORT`` echoes every byte it reads (TCP_NODELAY) until the
peer closes; ``measure_echo(...)`` drives it with fixed-size messages one at a time and returns the
round-trip times. Gateway benchmarks report their round trips as a ratio to this floor, measured
in the same run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from agora.core.ports import unused_ports


def serve(port: int) -> None:
    with socket.create_server(("127.0.0.1", port)) as server:
        print("ready", flush=True)
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(65536):
                conn.sendall(data)


def free_port() -> int:
    """A free loopback port (TCP and UDP), outside the ephemeral range (``core.ports``); a
    caller needing several takes them in one ``unused_ports(k)`` call, so they differ."""
    return unused_ports(1)[0]


def measure_echo(count: int = 20_000, size: int = 64, warmup: int = 2_000) -> list[int]:
    """Round trips in ns of ``count`` messages of ``size`` bytes to an echo server process."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "agora.bench.echo_floor", "serve", str(port)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        server.stdout.readline()
        payload = b"x" * size
        samples: list[int] = []
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            clock = time.perf_counter_ns
            for i in range(warmup + count):
                t0 = clock()
                conn.sendall(payload)
                got = 0
                while got < size:
                    got += len(conn.recv(size - got))
                if i >= warmup:
                    samples.append(clock() - t0)
        return samples
    finally:
        server.stdout.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m agora.bench.echo_floor serve PORT")
