"""ITCH 5.0 over MoldUDP64 on real loopback sockets: loss recovery, restart, late join.

One venue (VenueCore on a temporary directory, 3 symbols, 8 participants) publishes a seeded
workload while the subscriber drops 15% of the datagrams it receives (retransmissions included).
After quiescence the subscriber's L3 book must equal the engine's displayed book exactly. The
venue is then closed and reopened from its journal: the restarted publisher must hold the same
messages under the same sequence numbers and continue after them. Finally a late joiner
bootstraps from the TCP snapshot channel and follows the (still lossy) feed to the same book.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from agora.bench.workload import PARTICIPANTS, engine_workload
from agora.core.enums import Side, TimeInForce, TradingState
from agora.core.events import CancelOrder, NewOrder, ReplaceOrder, SetTradingState
from agora.exchange.venue.config import load_config
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.itch_feed import displayed_book
from agora.exchange.venue.itch_publisher import ItchPublisher
from agora.feed.integrity import IssueKind
from agora.feed.live import ItchSubscriber, SnapshotError
from agora.protocols.moldudp64 import ReplayStatus, RequestPacket

pytestmark = pytest.mark.e2e

SYMBOLS = ("AAPL", "MSFT", "NVDA")
ORDERS = 3_000
LOSS = 0.15
TIMEOUT_S = 30.0


def make_config(tmp_path, itch_port: int):
    lines = [
        "[venue]",
        f'directory = "{tmp_path / "journal"}"',
        'fsync = "none"',
        f"itch_port = {itch_port}",
        "retransmit_port = 0",
        "snapshot_port = 0",
        "heartbeat_ms = 30",
    ]
    for s in SYMBOLS:
        lines += ["[[symbols]]", f'symbol = "{s}"', 'reference_price = "100.00"',
                  'band_pct = "20"']
    for p in PARTICIPANTS:
        lines += ["[[participants]]", f'participant = "{p}"', f'username = "{p.lower()}"',
                  f'password = "pw{p}"']
    path = tmp_path / "venue.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


def lossy(seed: int):
    rng = random.Random(seed)
    return lambda data: rng.random() < LOSS


async def submit_all(core: VenueCore, commands) -> None:
    for i, command in enumerate(commands):
        core.submit(command)
        if i % 20 == 19:
            await asyncio.sleep(0)  # let the loop move datagrams


def stored(publisher: ItchPublisher) -> list[bytes]:
    """Every message the publisher can retransmit, by sequence number from 1."""
    out: list[bytes] = []
    while len(out) + 1 < publisher.next_sequence:
        replay = publisher.store.answer(RequestPacket(publisher.session, len(out) + 1, 0xFFFE))
        assert replay.status is ReplayStatus.SERVED
        for packet in replay.packets:
            out.extend(packet.messages)
    return out


def special_commands(core: VenueCore) -> list:
    """Icebergs, hidden orders, replaces and a halt with a reopening cross, per symbol."""
    commands: list = []
    for i, s in enumerate(SYMBOLS):
        commands += [
            NewOrder("P01", f"ice{s}", s, Side.BUY, 1_000, 990_000, display_qty=100),
            NewOrder("P02", f"hid{s}", s, Side.SELL, 500, 1_040_000, display_qty=0),
            NewOrder("P03", f"lift{s}", s, Side.BUY, 2_000, 1_045_000, tif=TimeInForce.IOC),
            NewOrder("P04", f"hit{s}", s, Side.SELL, 1_500, 985_000, tif=TimeInForce.IOC),
            SetTradingState(s, TradingState.HALTED),
            NewOrder("P05", f"hb{s}", s, Side.BUY, 300 + 100 * i, 1_010_000),
            NewOrder("P06", f"hs{s}", s, Side.SELL, 400, 995_000),
            SetTradingState(s, TradingState.OPEN),
        ]
    return commands


def follow_up(core: VenueCore, seed: int, n: int) -> list:
    """Cancels, reduces and replaces of orders resting now, plus new and aggressive orders."""
    rng = random.Random(seed)
    resting = sorted(core.engine.orders.values(), key=lambda o: o.order_id)
    commands: list = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.5 and resting:
            o = resting.pop(rng.randrange(len(resting)))
            if roll < 0.25:
                commands.append(CancelOrder(o.participant, o.order_id))
            elif roll < 0.35 and o.leaves > 100:
                commands.append(CancelOrder(o.participant, o.order_id, 100))
            else:
                price = o.price + rng.choice((-100, 0, 100))
                commands.append(ReplaceOrder(o.participant, o.order_id, f"r{seed}-{i}", price,
                                             max(100, o.leaves - 100 * rng.randint(0, 1))))
            continue
        s = SYMBOLS[rng.randrange(len(SYMBOLS))]
        side = rng.choice((Side.BUY, Side.SELL))
        price = 1_000_000 + rng.randint(-30, 30) * 100
        tif = TimeInForce.IOC if roll > 0.9 else TimeInForce.DAY
        commands.append(NewOrder(PARTICIPANTS[i % len(PARTICIPANTS)], f"f{seed}-{i}", s, side,
                                 100 * rng.randint(1, 5), price, tif=tif))
    return commands


async def settle(sub: ItchSubscriber, pub: ItchPublisher, core: VenueCore) -> None:
    await sub.wait_for_sequence(pub.next_sequence, TIMEOUT_S)
    assert sub.detector.gaps() == []
    assert sub.book_levels() == displayed_book(core.engine)


def test_lossy_feed_restart_and_late_joiner(tmp_path):
    asyncio.run(asyncio.wait_for(scenario(tmp_path), 4 * TIMEOUT_S))


async def scenario(tmp_path) -> None:
    commands = engine_workload(ORDERS, seed=11, symbols=len(SYMBOLS))
    sub = ItchSubscriber(drop=lossy(1), retry_ms=20)
    await sub.start()
    config = make_config(tmp_path, sub.port)
    core = VenueCore(config)
    pub = ItchPublisher(core)
    late: ItchSubscriber | None = None
    try:
        await pub.start()
        sub.retransmit = pub.retransmit_address
        await submit_all(core, commands[: ORDERS // 2])
        await settle(sub, pub, core)
        assert sub.dropped > 0 and sub.requests_sent > 0
        assert len(sub.book_levels()) == 2 * len(SYMBOLS)
        counts = sub.handler.report.counts  # the gaps were seen, and nothing else went wrong
        assert counts.get(IssueKind.SEQUENCE_GAP, 0) > 0 and set(counts) == {IssueKind.SEQUENCE_GAP}
        assert not sub.stale(1_000) and sub.stale(0)

        # restart: same messages under the same sequence numbers, then the feed continues
        before, next_sequence = stored(pub), pub.next_sequence
        await pub.close()
        core.close()
        core = VenueCore(config)
        pub = ItchPublisher(core)
        await pub.start()
        assert pub.next_sequence == next_sequence
        assert stored(pub) == before
        sub.retransmit = pub.retransmit_address
        await submit_all(core, commands[ORDERS // 2 :])
        await submit_all(core, special_commands(core))
        await settle(sub, pub, core)
        assert sub.prints > 0 and sub.states == dict.fromkeys(SYMBOLS, "T")
        assert sub.system_events == ["O"]

        # a late joiner on the same feed port: snapshot, then the lossy feed
        await sub.close()
        late = ItchSubscriber(port=sub.port, retransmit=pub.retransmit_address,
                              next_sequence=None, drop=lossy(2), retry_ms=20)
        await late.start()
        host, port = pub.snapshot_address
        with pytest.raises(SnapshotError, match="NOT_AUTHORIZED"):
            await late.bootstrap_from_snapshot(host, port, "p01", "wrong")
        snapshot_sequence = await late.bootstrap_from_snapshot(host, port, "p01", "pwP01")
        assert snapshot_sequence == pub.next_sequence
        assert late.book_levels() == displayed_book(core.engine)
        await submit_all(core, follow_up(core, seed=5, n=400))  # fills the book...
        await submit_all(core, follow_up(core, seed=6, n=400))  # ...then works its orders
        await settle(late, pub, core)
        assert late.messages < pub.next_sequence - snapshot_sequence + 200  # no history replay
    finally:
        await pub.close()
        core.close()
        await sub.close()
        if late is not None:
            await late.close()
