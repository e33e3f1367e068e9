"""``agora bench gateway``: order entry round trips and throughput against a real venue process.

A venue (``agora exchange serve``, uvloop, journal fsync none) runs as its own process on
loopback. Clients use plain blocking sockets (the cheapest client there is, so the figure is the
venue's) and the agora codecs:

- OUCH 5.0 round trip: Enter Order -> Order Accepted, one order in flight, each order cancelled
  afterwards (untimed) so the book stays small; timed to the return of the read that brought the
  Accepted, as the echo floor's client times its reads, and (reported beside it) to the end of
  the client's framing, decoding and check of it (about 11 us more here: the client's Python);
  with the client and the venue pinned to one vCPU and to two, alternating in blocks with the
  echo floor pinned alike (``gateway_rtt``: the placement moves a round trip 4x on this host);
- sustained OUCH throughput: ``clients`` processes, each keeping a window of orders in flight,
  ``runs`` times (the median reported);
- FIX 4.4 round trip (NewOrderSingle -> ExecutionReport New), with agora's async ``FixClient``
  on uvloop as the client (its session layer is part of the figure), and sustained throughput;
- the sustained phases' clients are lean load generators sharing the venue's two cores: orders
  encoded by the agora codecs before the clock starts, every order the window allows in one
  send, answers counted in the returned bytes (``_ouch_flood``, ``_fix_flood``);
- ITCH 5.0 over MoldUDP64 during the OUCH run: a subscriber process joins the live feed,
  recovers gaps by retransmission, and reports the messages it kept and their rate;
- the floor: a raw TCP echo round trip with blocking sockets, in the same run, the fastest
  placement's;
- the venue's own CPU per OUCH message without client sockets (``agora.bench.venue_cpu``), one
  message per read and 64 per read, and per FIX NewOrderSingle at 64 per read: the ceiling one
  core puts on the order rate.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import NamedTuple

import uvloop
from rich.console import Console
from rich.table import Table

from agora.bench import venue_cpu
from agora.bench.gateway_rtt import OuchSession, RoundTrips, round_trips_beside_the_floor
from agora.bench.latency import percentiles
from agora.bench.venue_setup import PRICE, SYMBOL, enter_packet, write_config
from agora.core.enums import Side
from agora.feed.live import ItchSubscriber
from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup
from agora.protocols.fix44 import enums as fx
from agora.protocols.fix44 import speedups
from agora.protocols.fix44.framer import FixFramer
from agora.protocols.fix44.messages import Logon, NewOrderSingle, encode_message
from agora.trading.clients.fix_client import FixClient

console = Console()

def _feed_ports(config: Path) -> tuple[int, int]:
    values = dict(line.split(" = ") for line in config.read_text().splitlines() if " = " in line)
    return int(values["itch_port"]), int(values["retransmit_port"])


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; else None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _venue_flood(worker, venue: subprocess.Popen, port: int, clients: int,
                 orders: int, first_client: int = 0) -> tuple[float, float | None]:
    """(orders/s, the venue's CPU us per order over the phase, None where /proc is missing):
    the CPU figure near the wall time per order says the venue, not its clients, set the rate."""
    before = _cpu_s(venue.pid)
    rate = _flood(worker, port, clients, orders, first_client)
    after = _cpu_s(venue.pid)
    if before is None or after is None:
        return rate, None
    return rate, (after - before) / (clients * orders) * 1e6


def _start_venue(config: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agora.cli.main", "exchange", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, text=True,
    )
    for line in proc.stdout:
        if line.startswith("publishing itch"):
            return proc
    raise RuntimeError(f"the venue did not start (exit code {proc.wait()})")


def _drive(sock: socket.socket, payloads: list[bytes], window: int,
           answered: Callable[[bytes], int], start_line: Barrier) -> tuple[float, float]:
    """Wait at ``start_line`` for the other clients, then send ``payloads`` with at most
    ``window`` unanswered, every one the window allows in one send; ``answered(data)`` counts
    the answers a read completes. Returns (first send, last answer) on the monotonic clock,
    which every process of the host shares."""
    start_line.wait(timeout=120)
    started = time.monotonic()
    total, sent, answers = len(payloads), 0, 0
    while answers < total:
        if sent < total and sent - answers < window:
            end = min(total, answers + window)
            sock.sendall(b"".join(payloads[sent:end]))
            sent = end
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("venue closed the connection")
        answers += answered(data)
    return started, time.monotonic()


def _ouch_flood(args: tuple[int, str, int, int, bool], start_line: Barrier
                ) -> tuple[int, float, float]:
    """One client process: ``orders`` Enter Orders with ``window`` in flight, once every client
    is at ``start_line``; returns (acks, first send, last answer).

    A load generator should cost the venue's machine as little as it can, so the orders are
    encoded before the clock starts, each send carries every order the window allows (as an
    OUCH client with a burst to send packs it in one TCP segment), and the answers are counted
    by their OUCH type in the session's SoupBinTCP framer's packets (``A``, Order Accepted; a
    ``J``, Rejected, fails the run; the round trip phase decodes and checks every answer)."""
    port, username, orders, window, buy = args
    session = OuchSession(port, username)
    side = ouch.Side.BUY if buy else ouch.Side.SELL
    offset = -100 if side is ouch.Side.BUY else 100
    packets = [enter_packet(k, side, PRICE + offset * (1 + k % 50)) for k in range(1, orders + 1)]

    def accepted(data: bytes) -> int:
        count = 0
        for packet in session.framer.feed(data):
            if isinstance(packet, soup.SequencedData):
                if packet.message[:1] == b"A":
                    count += 1
                elif packet.message[:1] == b"J":
                    raise RuntimeError(f"the venue rejected an order: {packet.message!r}")
        return count

    started, ended = _drive(session.sock, packets, window, accepted, start_line)
    session.sock.close()
    return orders, started, ended


async def _report_for(client: FixClient, cl_ord_id: str) -> None:
    """Wait for the report answering ``cl_ord_id`` (never count a stale or resent one)."""
    while getattr(await client.receive(), "cl_ord_id", None) != cl_ord_id:
        pass


async def _fix_round_trips_async(port: int, count: int, warmup: int) -> list[int]:
    client = FixClient("127.0.0.1", port, "RTTF")
    await client.connect()
    clock = time.perf_counter_ns
    samples = []
    for i in range(warmup + count):
        price = PRICE - 100 * (1 + i % 20)
        t0 = clock()
        client.new_order(f"o{i}", SYMBOL, Side.BUY, 100, price)
        await _report_for(client, f"o{i}")  # ExecutionReport New
        elapsed = clock() - t0
        client.cancel(f"o{i}", f"c{i}", SYMBOL, Side.BUY)
        await _report_for(client, f"c{i}")
        if i >= warmup:
            samples.append(elapsed)
    await client.logout()
    await client.close()
    return samples


def _fix_round_trips(port: int, count: int, warmup: int) -> list[int]:
    return uvloop.run(_fix_round_trips_async(port, count, warmup))


def _fix_flood(args: tuple[int, str, int, int, bool], start_line: Barrier
               ) -> tuple[int, float, float]:
    """One client process: ``orders`` NewOrderSingles with ``window`` in flight, as
    :func:`_ouch_flood` (the same return). A lean load generator: a blocking socket, the
    messages encoded by agora's codec before the clock starts (MsgSeqNum 2.., SendingTime the
    encoding time, well within the venue's skew allowance), each send carrying every order the
    window allows, and ExecutionReports New (``150=0``) counted among the frames ``FixFramer``
    splits the answers into (a Rejected, ``150=8``, fails the run)."""
    port, comp_id, orders, window, buy = args
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    now = time.time_ns()
    side = fx.Side.BUY if buy else fx.Side.SELL
    offset = -100 if side is fx.Side.BUY else 100

    def encoded(msg, seq: int) -> bytes:
        return encode_message(msg, sender=comp_id, target="AGORA", seq_num=seq, sending_time=now)

    messages = [encoded(NewOrderSingle(
        cl_ord_id=f"f{k}", symbol=SYMBOL, side=side, order_qty=100, ord_type=fx.OrdType.LIMIT,
        price=PRICE + offset * (1 + k % 50), time_in_force=fx.TimeInForce.DAY, handl_inst="1",
        transact_time=now), k + 2) for k in range(orders)]
    framer = FixFramer()

    def frames() -> list[bytes]:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"the venue closed {comp_id}'s connection")
        return framer.feed(data)

    sock.sendall(encoded(Logon(heart_bt_int=30), 1))
    while not any(b"\x0135=A\x01" in frame for frame in frames()):  # the venue's Logon
        pass

    def accepted(data: bytes) -> int:
        count = 0
        for frame in framer.feed(data):
            if b"\x01150=8\x01" in frame:
                raise RuntimeError(f"the venue rejected an order: {frame!r}")
            count += b"\x01150=0\x01" in frame
        return count

    started, ended = _drive(sock, messages, window, accepted, start_line)
    sock.close()
    return orders, started, ended


class ItchKept(NamedTuple):
    """What the feed's subscriber kept up with during one OUCH run."""

    messages: int
    requests: int  # retransmission requests it sent
    span_s: float  # from its first message to its last

    @property
    def rate(self) -> float:
        return self.messages / self.span_s if self.span_s else 0.0


def _itch_listener(args: tuple[int, int, float, multiprocessing.Queue]) -> None:
    """A subscriber process: joins the live feed, recovers gaps, reports what it kept up with."""
    itch_port, retransmit_port, seconds, out = args

    async def listen() -> ItchKept:
        feed = ItchSubscriber(port=itch_port, retransmit=("127.0.0.1", retransmit_port),
                              next_sequence=None)
        await feed.start()
        first = last = None
        count = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            if feed.messages != count:
                now = time.monotonic()
                first = first or now
                last, count = now, feed.messages
        requests = feed.requests_sent
        await feed.close()
        return ItchKept(count, requests, (last - first) if first and last else 0.0)

    out.put(uvloop.run(listen()))


def _flood_client(worker, job: tuple, start_line: Barrier, results: multiprocessing.Queue
                  ) -> None:
    """A flood client process: the worker's (answers, first send, last answer), or its error
    (the start line is broken so that the other clients do not wait for this one)."""
    try:
        results.put(worker(job, start_line))
    except BaseException as exc:
        start_line.abort()
        results.put(f"{job[1]}: {exc!r}")


def _flood(worker, port: int, clients: int, orders: int, first_client: int = 0) -> float:
    """Orders/s over the window from the first client's first send to the last client's last
    answer; the clients are the configured sessions ``first_client ..`` (each run its own,
    since their UserRefNums and MsgSeqNums start afresh), even ones buying and odd ones selling.
    The clients log in and encode their orders first, then start together. (Timing each client
    from its own start and dividing by the longest client's time, as this did before, made the
    window shorter than the venue's when the clients started apart: some runs gave more than
    one core's worth of the venue's CPU per second.)"""
    ctx = multiprocessing.get_context("spawn")
    start_line = ctx.Barrier(clients)
    results = ctx.Queue()
    prefix = "o" if worker is _ouch_flood else "F"
    jobs = [(port, f"{prefix}{first_client + i}", orders, 64, i % 2 == 0) for i in range(clients)]
    procs = [ctx.Process(target=_flood_client, args=(worker, job, start_line, results))
             for job in jobs]
    for proc in procs:
        proc.start()
    try:
        answers = [results.get(timeout=300) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
    failed = [a for a in answers if isinstance(a, str)]
    if failed:
        raise RuntimeError(f"a flood client failed: {'; '.join(failed)}")
    first = min(started for _, started, _ in answers)
    last = max(ended for _, _, ended in answers)
    return sum(count for count, _, _ in answers) / (last - first)


class Sustained(NamedTuple):
    """One run of each sustained phase."""

    ouch: float  # orders/s
    ouch_cpu: float | None  # the venue's CPU us per order meanwhile
    fix: float
    fix_cpu: float | None
    itch: ItchKept


def _ouch_run(venue: subprocess.Popen, feed: tuple[int, int], port: int, clients: int,
              orders: int, first_client: int) -> tuple[float, float | None, ItchKept]:
    """The OUCH flood with an ITCH subscriber process following the feed (its port and the
    retransmission port) meanwhile."""
    itch_port, retransmit_port = feed
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()
    listener = ctx.Process(target=_itch_listener,
                           args=((itch_port, retransmit_port, 2.0 + orders / 500, results),))
    listener.start()
    time.sleep(1.0)  # let it bind before the flood starts
    rate, cpu = _venue_flood(_ouch_flood, venue, port, clients, orders, first_client)
    itch = results.get(timeout=120)
    listener.join(timeout=30)
    return rate, cpu, itch


def run(round_trips: int, orders: int, clients: int, runs: int = 3) -> dict:
    """Every phase against one venue process; the sustained phases ``runs`` times (OUCH and
    FIX alternating, each run with its own client sessions), their medians reported."""
    with tempfile.TemporaryDirectory(prefix="agora-bench-gw-") as tmp:
        config, port, fix_port = write_config(Path(tmp), clients * runs)
        feed = _feed_ports(config)
        with console.status("venue CPU per message, in process"):
            cpu = [venue_cpu.measure(max(1_000, orders), batch) for batch in (1, 64)]
            fix_in_process = venue_cpu.measure_fix(max(1_000, orders), 64)
        venue = _start_venue(config)
        try:
            with console.status("OUCH round trips and the raw TCP echo floor, alternating, on "
                                "one vCPU and on two"):
                rtt = round_trips_beside_the_floor(port, round_trips, venue.pid)
            with console.status("FIX round trips"):
                fix_rtt = percentiles(_fix_round_trips(fix_port, round_trips, 500))
            sustained = []
            for k in range(runs):
                with console.status(f"sustained run {k + 1} of {runs}: OUCH ({clients} clients, "
                                    "ITCH subscriber), then FIX"):
                    ouch, ouch_cpu, itch = _ouch_run(venue, feed, port, clients, orders,
                                                     k * clients)
                    fix, fix_cpu = _venue_flood(_fix_flood, venue, fix_port, clients, orders,
                                                k * clients)
                sustained.append(Sustained(ouch, ouch_cpu, fix, fix_cpu, itch))
        finally:
            venue.terminate()
            venue.wait(timeout=30)
            venue.stdout.close()
    result = _result(rtt, fix_rtt, sustained, cpu, fix_in_process, clients)
    _print(result, orders)
    print("RESULT " + json.dumps(result), flush=True)
    return result


def _median(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _placement(samples: RoundTrips) -> dict:
    echo, ouch_rtt, decoded = (percentiles(samples.echo), percentiles(samples.received),
                               percentiles(samples.decoded))
    return {"echo_p50_us": round(echo[0], 1), "echo_p99_us": round(echo[1], 1),
            "ouch_p50_us": round(ouch_rtt[0], 1), "ouch_p99_us": round(ouch_rtt[1], 1),
            "ouch_p999_us": round(ouch_rtt[2], 1),
            "ouch_decoded_p50_us": round(decoded[0], 1),
            "ouch_decoded_p99_us": round(decoded[1], 1),
            "ouch_p50_vs_echo_blocks": [round(r, 2) for r in samples.ratios]}


def _result(rtt: dict[str, RoundTrips], fix_rtt: tuple[float, float, float],
            sustained: list[Sustained], cpu: list[dict], fix_in_process: dict,
            clients: int) -> dict:
    """The headline figures (RESULT): the floor is the fastest placement's echo, the OUCH
    round trip the venue's fastest placement (``gateway_rtt``), each placement's figures under
    ``placements``; the sustained rates are medians of the runs."""
    placed = {name: _placement(samples) for name, samples in rtt.items()}
    floor = min(placed.values(), key=lambda f: f["echo_p50_us"])
    best = min(placed.values(), key=lambda f: f["ouch_p50_us"])
    return {
        "echo_p50_us": floor["echo_p50_us"], "echo_p99_us": floor["echo_p99_us"],
        "ouch_rtt_p50_us": best["ouch_p50_us"], "ouch_rtt_p99_us": best["ouch_p99_us"],
        "ouch_rtt_p999_us": best["ouch_p999_us"],
        "ouch_p50_vs_floor": round(best["ouch_p50_us"] / floor["echo_p50_us"], 2),
        "ouch_p99_vs_floor": round(best["ouch_p99_us"] / floor["echo_p99_us"], 2),
        "ouch_rtt_decoded_p50_us": best["ouch_decoded_p50_us"],
        "ouch_rtt_decoded_p99_us": best["ouch_decoded_p99_us"],
        "placements": placed,
        "ouch_orders_per_s": round(_median([s.ouch for s in sustained])),
        "ouch_orders_per_s_runs": [round(s.ouch) for s in sustained],
        "fix_rtt_p50_us": round(fix_rtt[0], 1), "fix_rtt_p99_us": round(fix_rtt[1], 1),
        "fix_rtt_p999_us": round(fix_rtt[2], 1),
        "fix_orders_per_s": round(_median([s.fix for s in sustained])),
        "fix_orders_per_s_runs": [round(s.fix) for s in sustained], "clients": clients,
        "ouch_sustained_venue_cpu_us_per_order": _rounded(
            _median([s.ouch_cpu for s in sustained])),
        "fix_sustained_venue_cpu_us_per_order": _rounded(_median([s.fix_cpu for s in sustained])),
        "itch_messages_per_s": round(_median([s.itch.rate for s in sustained])),
        "itch_messages": sum(s.itch.messages for s in sustained),
        "itch_retransmission_requests": sum(s.itch.requests for s in sustained),
        "venue_cpu_us_per_message_batch1": cpu[0]["cpu_us_per_message"],
        "venue_cpu_us_per_message_batch64": cpu[1]["cpu_us_per_message"],
        "venue_cpu_us_per_fix_order_batch64": fix_in_process["cpu_us_per_message"],
        "fix_codec": speedups.implementation(),
    }


def _print(r: dict, orders: int) -> None:
    table = Table(title="agora bench gateway (loopback, venue in its own process, uvloop)")
    for name in ("measure", "p50 us", "p99 us", "p99.9 us", "vs floor p50 / p99"):
        table.add_column(name)
    floor50, floor99 = r["echo_p50_us"], r["echo_p99_us"]

    def vs_floor(p50: float, p99: float) -> str:
        return f"{p50 / floor50:.2f} / {p99 / floor99:.2f}"

    for name, f in r["placements"].items():
        where = name.replace("_", " ")
        table.add_row(f"raw TCP echo, {where}", f"{f['echo_p50_us']:.1f}",
                      f"{f['echo_p99_us']:.1f}", "", vs_floor(f["echo_p50_us"], f["echo_p99_us"]))
        table.add_row(f"OUCH Enter -> Accepted, {where}", f"{f['ouch_p50_us']:.1f}",
                      f"{f['ouch_p99_us']:.1f}", f"{f['ouch_p999_us']:.1f}",
                      vs_floor(f["ouch_p50_us"], f["ouch_p99_us"]))
        table.add_row("  the same, decoded by the client", f"{f['ouch_decoded_p50_us']:.1f}",
                      f"{f['ouch_decoded_p99_us']:.1f}", "", "")
    table.add_row("FIX NewOrderSingle -> New, unpinned", f"{r['fix_rtt_p50_us']:.1f}",
                  f"{r['fix_rtt_p99_us']:.1f}", f"{r['fix_rtt_p999_us']:.1f}",
                  vs_floor(r["fix_rtt_p50_us"], r["fix_rtt_p99_us"]))
    console.print(table)
    console.print(f"the floor: the fastest echo ({floor50:.1f} us at p50); the OUCH round trip: "
                  f"the venue's fastest placement ({r['ouch_rtt_p50_us']:.1f} us, "
                  f"{r['ouch_p50_vs_floor']:.2f}x the floor)")
    runs = len(r["ouch_orders_per_s_runs"])
    ouch_runs = ", ".join(f"{x:,}" for x in r["ouch_orders_per_s_runs"])
    fix_runs = ", ".join(f"{x:,}" for x in r["fix_orders_per_s_runs"])
    console.print(f"sustained, {r['clients']} clients x {orders:,} orders, 64 in flight, median "
                  f"of {runs} runs: OUCH {r['ouch_orders_per_s']:,} orders/s ({ouch_runs}), "
                  f"FIX {r['fix_orders_per_s']:,} ({fix_runs})")
    ouch_cpu, fix_cpu = (r["ouch_sustained_venue_cpu_us_per_order"],
                         r["fix_sustained_venue_cpu_us_per_order"])
    if ouch_cpu is not None and fix_cpu is not None:
        console.print(f"the venue process's CPU per order meanwhile (medians): OUCH {ouch_cpu:.1f}"
                      f" us, FIX {fix_cpu:.1f} us (1e6 / rate: "
                      f"{1e6 / r['ouch_orders_per_s']:.1f} and {1e6 / r['fix_orders_per_s']:.1f}"
                      " us; near it, the venue's core is the limit)")
    console.print(f"venue CPU per OUCH message, no client sockets: "
                  f"{r['venue_cpu_us_per_message_batch1']:.1f} us at 1 per read, "
                  f"{r['venue_cpu_us_per_message_batch64']:.1f} us at 64 per read; per FIX "
                  f"NewOrderSingle: {r['venue_cpu_us_per_fix_order_batch64']:.1f} us at 64 per "
                  "read")
    console.print(f"FIX codec hot paths: {r['fix_codec']} (AGORA_PURE_PYTHON=1 runs the Python "
                  "ones)")
    console.print(f"ITCH during the OUCH runs: a subscriber process per run kept "
                  f"{r['itch_messages']:,} messages, median {r['itch_messages_per_s']:,} "
                  f"messages/s, {r['itch_retransmission_requests']} retransmission requests")
