"""The venue's own CPU per order, without client sockets: ``python -m agora.bench.venue_cpu``.

The venue of ``agora exchange serve`` (journal with fsync none, ITCH publisher sending real
datagrams, OUCH and FIX gateways subscribed, its garbage collector's settings) is driven in
process, ``batch`` messages per read followed by one event-loop turn (the group commit):

- OUCH (``measure``): a real OUCH connection protocol over an in-memory transport, a login, then
  Enter Order / Cancel pairs;
- FIX (``measure_fix``): a logged-on FIX session of the gateway (``FixGateway._read``, as its
  connection task calls it), NewOrderSingles that rest, each answered by an ExecutionReport New:
  the order flow of the FIX sustained phase of ``agora bench gateway``.

The figure is process CPU time per message: the ceiling one core puts on the venue's order rate,
to set beside the end-to-end figures of ``agora bench gateway`` (the rest is the clients' CPU and
the kernel). The messages are encoded before the clock starts; ``prepare_only`` stops there, so
that ``benchmarks/venue_instructions.py`` can subtract that work from an instruction count.

``python -m agora.bench.venue_cpu [--protocol ouch|fix] [--batch N] [--prepare-only] [COUNT]``:
COUNT pairs (OUCH) or orders (FIX); without ``--protocol``, OUCH at 1 and 64 per read and FIX at
64 per read.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from agora.bench.venue_setup import PRICE, SYMBOL, cancel_packet, enter_packet, write_config
from agora.core.gc_tuning import collecting_rarely
from agora.exchange.venue.config import load_config
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.fix_gateway import FixGateway
from agora.exchange.venue.itch_publisher import ItchPublisher
from agora.exchange.venue.ouch_gateway import OuchGateway
from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup
from agora.protocols.fix44 import enums as fx
from agora.protocols.fix44.messages import Logon, NewOrderSingle, encode_message

FIX_COMP_ID = "F0"  # a session of write_config's


class _MemoryTransport(asyncio.Transport):
    """Counts what the venue writes; never backs up (an OUCH transport, a FIX writer)."""

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


class _Venue:
    """The venue of ``agora exchange serve`` in this process, its feed going to a sink socket."""

    async def start(self, config_path: Path) -> None:
        config = load_config(config_path)
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the feed's destination
        self.sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 26)  # never full
        self.sink.bind(("127.0.0.1", config.venue.itch_port))
        self.core = VenueCore(config)
        self.publisher = ItchPublisher(self.core, config)
        self.ouch = OuchGateway(self.core, config)
        self.fix = FixGateway(self.core, config, Path(config.venue.directory) / "fix")
        await self.publisher.start()
        self.core.seal()  # as the venue process does once its listeners have subscribed
        gc.freeze()  # and its garbage collector's settings (``_run`` undoes them)

    async def close(self) -> None:
        await self.fix.close()
        await self.ouch.close()
        await self.publisher.close()
        self.core.close()
        self.sink.close()


def _chunks(messages: list[bytes], batch: int) -> list[bytes]:
    return [b"".join(messages[i : i + batch]) for i in range(0, len(messages), batch)]


async def _measure(config_path: Path, pairs: int, batch: int, prepare_only: bool) -> dict:
    venue = _Venue()
    await venue.start(config_path)
    conn = venue.ouch.new_connection()
    transport = _MemoryTransport()
    conn.connection_made(transport)
    conn.data_received(soup.encode(soup.LoginRequest("rtt", "pw", "", 0)))
    messages = _orders(pairs)
    chunks = _chunks(messages, batch)
    await asyncio.sleep(0)
    start = time.process_time()
    for chunk in () if prepare_only else chunks:
        conn.data_received(chunk)
        await asyncio.sleep(0)  # one loop turn: the core's flush (group commit) runs
    cpu = time.process_time() - start
    conn.connection_lost(None)
    await venue.close()
    return _figures("ouch", batch, len(messages), cpu, transport.written)


async def _measure_fix(config_path: Path, orders: int, batch: int, prepare_only: bool) -> dict:
    from agora.exchange.venue.fix_gateway import _Conn  # the gateway's own connection record

    venue = _Venue()
    await venue.start(config_path)
    now = time.time_ns()

    def encoded(msg, seq: int) -> bytes:
        return encode_message(msg, sender=FIX_COMP_ID, target=venue.fix.comp_id, seq_num=seq,
                              sending_time=now)

    writer = _MemoryTransport()
    logon = encoded(Logon(heart_bt_int=30), 1)
    member = venue.fix._bind(_Conn(writer), bytearray(logon))
    if member is None:
        raise RuntimeError(f"the FIX gateway refused {FIX_COMP_ID}'s Logon")
    venue.fix._read(member, logon)
    messages = [encoded(NewOrderSingle(
        cl_ord_id=f"f{k}", symbol=SYMBOL, side=fx.Side.BUY, order_qty=100,
        ord_type=fx.OrdType.LIMIT, price=PRICE - 100 * (1 + k % 50),
        time_in_force=fx.TimeInForce.DAY, handl_inst="1", transact_time=now), k + 2)
        for k in range(orders)]
    chunks = _chunks(messages, batch)
    start = time.process_time()
    for chunk in () if prepare_only else chunks:
        venue.fix._read(member, chunk)
        await asyncio.sleep(0)
    cpu = time.process_time() - start
    answered = member.session.next_sender - 2  # after the Logon: one report per order
    await venue.close()
    if not prepare_only and answered != orders:
        raise RuntimeError(f"{orders} NewOrderSingles, {answered} answers")
    return _figures("fix", batch, len(messages), cpu, writer.written)


def _figures(protocol: str, batch: int, n: int, cpu: float, written: int) -> dict:
    return {"protocol": protocol, "batch": batch, "messages": n,
            "cpu_us_per_message": round(cpu / n * 1e6, 2) if cpu else 0.0,
            "messages_per_cpu_s": round(n / cpu) if cpu else 0, "bytes_out": written}


def _run(measurement, count: int, batch: int, prepare_only: bool) -> dict:
    """One measurement with the venue process's GC settings (``run_venue(tune_gc=True)``),
    restored afterwards: ``agora bench gateway`` measures in its own process."""
    with tempfile.TemporaryDirectory(prefix="agora-venue-cpu-") as tmp, collecting_rarely():
        config_path, _, _ = write_config(Path(tmp), 4)
        return uvloop.run(measurement(config_path, count, batch, prepare_only))


def measure(pairs: int = 10_000, batch: int = 1, *, prepare_only: bool = False) -> dict:
    """Venue CPU per OUCH message for ``pairs`` enter/cancel pairs, ``batch`` messages per read."""
    return _run(_measure, pairs, batch, prepare_only)


def measure_fix(orders: int = 10_000, batch: int = 64, *, prepare_only: bool = False) -> dict:
    """Venue CPU per FIX NewOrderSingle for ``orders`` resting orders, ``batch`` per read."""
    return _run(_measure_fix, orders, batch, prepare_only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agora.bench.venue_cpu",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=10_000,
                        help="enter/cancel pairs (OUCH) or orders (FIX)")
    parser.add_argument("--protocol", choices=("ouch", "fix"))
    parser.add_argument("--batch", type=int, default=64, help="messages per read")
    parser.add_argument("--prepare-only", action="store_true",
                        help="encode the messages, drive nothing (an instruction count's base)")
    args = parser.parse_args(argv)
    if args.protocol is None:
        runs = [("ouch", 1), ("ouch", 64), ("fix", 64)]
    else:
        runs = [(args.protocol, args.batch)]
    results = [(measure if protocol == "ouch" else measure_fix)(
        args.count, batch, prepare_only=args.prepare_only) for protocol, batch in runs]
    for r in results:
        print(f"{r['protocol']} batch {r['batch']:>3}: {r['cpu_us_per_message']:.1f} us CPU per "
              f"message ({r['messages_per_cpu_s']:,} messages per CPU second)")
    print("RESULT " + json.dumps({f"{r['protocol']}_batch{r['batch']}_cpu_us_per_message":
                                  r["cpu_us_per_message"] for r in results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
