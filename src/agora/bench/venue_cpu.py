"""The venue's own CPU per OUCH order, without client sockets: ``python -m agora.bench.venue_cpu``.

The venue of ``agora exchange serve`` (journal with fsync none, ITCH publisher sending real
datagrams, OUCH and FIX gateways subscribed) is driven through a real OUCH connection protocol
over an in-memory transport: a login, then Enter Order / Cancel pairs, ``batch`` messages per
``data_received`` call followed by one event-loop turn (the group commit). The figure is process
CPU time per message: the ceiling one core puts on the venue's order rate, to set beside the
end-to-end figures of ``agora bench gateway`` (the rest is the clients' CPU and the kernel).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from agora.bench.venue_setup import PRICE, cancel_packet, enter_packet, write_config
from agora.exchange.venue.config import load_config
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.fix_gateway import FixGateway
from agora.exchange.venue.itch_publisher import ItchPublisher
from agora.exchange.venue.ouch_gateway import OuchGateway
from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup


class _MemoryTransport(asyncio.Transport):
    """Counts what the venue writes; never backs up."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closed = False

    def write(self, data) -> None:  # type: ignore[override]
        self.written += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name, default=None):
        return ("memory", 0) if name == "peername" else default

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _orders(pairs: int) -> list[bytes]:
    out = []
    for k in range(1, pairs + 1):
        out.append(enter_packet(k, ouch.Side.BUY, PRICE - 100 * (1 + k % 20)))
        out.append(cancel_packet(k))
    return out


async def _measure(config_path: Path, pairs: int, batch: int) -> dict:
    config = load_config(config_path)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the feed's destination, unread
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 26)  # never full: no drop path
    sink.bind(("127.0.0.1", config.venue.itch_port))
    core = VenueCore(config)
    publisher = ItchPublisher(core, config)
    gateway = OuchGateway(core, config)
    fix = FixGateway(core, config, Path(config.venue.directory) / "fix")
    await publisher.start()
    core.seal()  # as the venue process does once its listeners have subscribed
    conn = gateway.new_connection()
    transport = _MemoryTransport()
    conn.connection_made(transport)
    conn.data_received(soup.encode(soup.LoginRequest("rtt", "pw", "", 0)))
    messages = _orders(pairs)
    chunks = [b"".join(messages[i : i + batch]) for i in range(0, len(messages), batch)]
    await asyncio.sleep(0)
    start = time.process_time()
    for chunk in chunks:
        conn.data_received(chunk)
        await asyncio.sleep(0)  # one loop turn: the core's flush (group commit) runs
    cpu = time.process_time() - start
    conn.connection_lost(None)
    await fix.close()
    await gateway.close()
    await publisher.close()
    core.close()
    sink.close()
    n = len(messages)
    return {"batch": batch, "messages": n, "cpu_us_per_message": round(cpu / n * 1e6, 2),
            "messages_per_cpu_s": round(n / cpu), "bytes_out": transport.written}


def measure(pairs: int = 10_000, batch: int = 1) -> dict:
    """Venue CPU per message for ``pairs`` enter/cancel pairs, ``batch`` messages per read."""
    with tempfile.TemporaryDirectory(prefix="agora-venue-cpu-") as tmp:
        config_path, _, _ = write_config(Path(tmp), 4)
        return uvloop.run(_measure(config_path, pairs, batch))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    pairs = int(args[0]) if args else 10_000
    results = [measure(pairs, batch) for batch in (1, 64)]
    for r in results:
        print(f"batch {r['batch']:>3}: {r['cpu_us_per_message']:.1f} us CPU per message "
              f"({r['messages_per_cpu_s']:,} messages per CPU second)")
    print("RESULT " + json.dumps({f"batch{r['batch']}_cpu_us_per_message":
                                  r["cpu_us_per_message"] for r in results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
