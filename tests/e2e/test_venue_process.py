"""``agora exchange serve`` as a real process on loopback: trade over OUCH, watch over ITCH,
SIGKILL it, restart it, resume without losing or duplicating a report, then stop it gracefully."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from agora.core.ports import unused_ports
from agora.feed.live import ItchSubscriber
from agora.protocols import ouch50 as ouch
from agora.trading.clients.ouch_client import OuchClient

pytestmark = pytest.mark.e2e
PRICE = 1_900_000  # $190.00


FIRMS = """
[[participants]]
participant = "FIRM1"
username = "firm1"
password = "pw1"
fix_comp_id = "FIRM1"

[[participants]]
participant = "FIRM2"
username = "firm2"
password = "pw2"
fix_comp_id = "FIRM2"
"""


def venue_toml(tmp_path, participants: str = FIRMS,
               fsync: str = "batch") -> tuple[object, list[int], list[int]]:
    """A config on ephemeral ports: (path, [ouch, fix, snapshot] TCP, [itch, retransmit] UDP)."""
    ports = unused_ports(5)
    tcp, udp = ports[:3], ports[3:]
    path = tmp_path / "venue.toml"
    path.write_text(f"""
[venue]
directory = "{tmp_path / 'venue'}"
fsync = "{fsync}"
ouch_port = {tcp[0]}
fix_port = {tcp[1]}
snapshot_port = {tcp[2]}
itch_port = {udp[0]}
retransmit_port = {udp[1]}

[[symbols]]
symbol = "AAPL"
reference_price = "190.00"
{participants}""")
    return path, tcp, udp


def write_config(tmp_path) -> tuple:
    path, tcp, udp = venue_toml(tmp_path)
    return path, tcp[0], udp[0], udp[1]


def start_venue(config) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agora.cli.main", "exchange", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith("publishing itch"):
            proc.seen = seen  # the reader thread keeps draining stdout
            proc.lines = lines
            return proc
    proc.kill()
    raise AssertionError("venue did not start:\n" + "".join(seen))


async def drain(client: OuchClient, seconds: float = 0.5) -> list:
    got = []
    while True:
        try:
            got.append(await client.recv(timeout=seconds))
        except TimeoutError:
            return got


def kinds(received: list) -> list[str]:
    return [type(r.message).__name__ for r in received]


def test_venue_process_trade_kill_restart_resume_stop(tmp_path):
    config, ouch_port, itch_port, retransmit_port = write_config(tmp_path)

    async def first_life():
        feed = ItchSubscriber(port=itch_port, retransmit=("127.0.0.1", retransmit_port))
        await feed.start()
        seller = OuchClient("127.0.0.1", ouch_port, "firm1", "pw1")
        buyer = OuchClient("127.0.0.1", ouch_port, "firm2", "pw2")
        await seller.connect()
        await buyer.connect()
        await seller.enter_order(ouch.Side.SELL, 100, "AAPL", PRICE)
        await drain(seller, 0.3)
        await buyer.enter_order(ouch.Side.BUY, 60, "AAPL", PRICE)
        bought, sold = await drain(buyer), await drain(seller)
        executed = [r.message for r in bought if isinstance(r.message, ouch.OrderExecuted)]
        assert [m.quantity for m in executed] == [60]
        assert sum(m.quantity for m in (r.message for r in sold)
                   if isinstance(m, ouch.OrderExecuted)) == 60
        await asyncio.sleep(0.3)
        book = feed.book_levels()
        await feed.close()
        last = seller.last_seq
        seller.abort()
        buyer.abort()
        return book, last

    proc = start_venue(config)
    try:
        book, seller_last = asyncio.run(first_life())
        # the feed shows the seller's remaining 40 shares alone at $190.00
        ((price, ((_ref, shares),)),) = book["AAPL", "S"]
        assert (price, shares) == (PRICE, 40)
        assert ("AAPL", "B") not in book
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    async def second_life():
        buyer = OuchClient("127.0.0.1", ouch_port, "firm2", "pw2")
        await buyer.connect()
        # a fresh client object: its UserRefNums must continue above the ones used before
        await buyer.enter_order(ouch.Side.BUY, 40, "AAPL", PRICE, user_ref_num=2)
        assert "OrderExecuted" in kinds(await drain(buyer))
        seller = OuchClient("127.0.0.1", ouch_port, "firm1", "pw1")
        await seller.connect(seller_last + 1)  # resume exactly after the last report seen
        missed = await drain(seller)
        await seller.close()
        await buyer.close()
        return missed

    proc = start_venue(config)
    try:
        missed = asyncio.run(second_life())
        assert kinds(missed) == ["OrderExecuted"], kinds(missed)
        assert missed[0].seq == seller_last + 1
        assert missed[0].message.quantity == 40
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out = []
        while not proc.lines.empty():
            out.append(proc.lines.get())
        assert "stopped" in "".join(out), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
