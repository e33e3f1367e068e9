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


class EchoServer:
    """An echo server process and one connection to it, for round trips taken in blocks between
    other measurements (so that the floor and the figure see the same minutes of the host)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.payload = b"x" * size
        port = free_port()
        self.server = subprocess.Popen(
            [sys.executable, "-m", "agora.bench.echo_floor", "serve", str(port)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            self.server.stdout.readline()
            self.conn = socket.create_connection(("127.0.0.1", port))
            self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            self.server.kill()
            self.server.wait(timeout=10)
            raise

    def round_trips(self, count: int, warmup: int = 0) -> list[int]:
        """Round trips in ns of ``count`` messages, one at a time, after ``warmup`` untimed."""
        conn, payload, size = self.conn, self.payload, self.size
        clock = time.perf_counter_ns
        samples: list[int] = []
        for i in range(warmup + count):
            t0 = clock()
            conn.sendall(payload)
            got = 0
            while got < size:
                chunk = conn.recv(size - got)
                if not chunk:
                    raise ConnectionError("the echo server closed the connection")
                got += len(chunk)
            if i >= warmup:
                samples.append(clock() - t0)
        return samples

    def close(self) -> None:
        self.conn.close()  # the server ends when its peer closes
        self.server.stdout.close()
        self.server.wait(timeout=10)

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure_echo(count: int = 20_000, size: int = 64, warmup: int = 2_000) -> list[int]:
    """Round trips in ns of ``count`` messages of ``size`` bytes to an echo server process."""
    with EchoServer(size) as echo:
        return echo.round_trips(count, warmup)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m agora.bench.echo_floor serve PORT")
