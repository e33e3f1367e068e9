"""OUCH 5.0 / SoupBinTCP on loopback: VenueCore + OuchGateway + OuchClient, real TCP sockets."""

from __future__ import annotations

import asyncio
import socket

import msgspec
import pytest

from agora.exchange.venue.config import load_config
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.ouch_gateway import OuchGateway
from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup
from agora.trading.clients.ouch_client import LoginRejectedError, OuchClient

pytestmark = pytest.mark.e2e

CONFIG = """
[venue]
directory = "{directory}"
fsync = "none"
host = "127.0.0.1"

[[symbols]]
symbol = "AAPL"
reference_price = "190.00"

[[participants]]
participant = "FIRM1"
username = "firm1"
password = "pw1"

[[participants]]
participant = "FIRM2"
username = "firm2"
password = "pw2"
"""

P = 10_000  # one dollar in Price(4)
WAIT = 5.0


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "venue.toml"
    path.write_text(CONFIG.format(directory=tmp_path / "journal"))
    return load_config(path)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def start(config, **kw):
    core = VenueCore(config)
    gateway = OuchGateway(core, port=0, **kw)
    await gateway.start()
    return core, gateway


async def stop(core, gateway, *clients):
    for client in clients:
        await client.close()
    await gateway.close()
    core.close()


def client(gateway, user, password, **kw) -> OuchClient:
    return OuchClient("127.0.0.1", gateway.port, user, password, **kw)


async def take(c: OuchClient, n: int) -> list:
    return [await c.recv(WAIT) for _ in range(n)]


async def quiet(c: OuchClient, seconds: float = 0.3) -> None:
    """Nothing more arrives (no duplicates, nothing foreign)."""
    with pytest.raises(TimeoutError):
        await c.recv(seconds)


def test_two_clients_trade_and_see_only_their_own(config):
    async def main():
        core, gw = await start(config)
        c1, c2 = client(gw, "firm1", "pw1"), client(gw, "firm2", "pw2")
        assert await c1.connect() == 1
        assert await c2.connect() == 1
        buy = await c1.enter_order("B", 100, "AAPL", 190 * P, cl_ord_id="MINE1")
        seq, acc = await c1.recv(WAIT)
        assert seq == 1 and isinstance(acc, ouch.OrderAccepted)
        assert (acc.user_ref_num, acc.quantity, acc.price, acc.symbol, acc.cl_ord_id) == (
            buy, 100, 190 * P, "AAPL", "MINE1")
        sell = await c2.enter_order("S", 60, "AAPL", 189 * P)
        (s1, a2), (s2, e2) = await take(c2, 2)
        assert (s1, s2) == (1, 2)
        assert isinstance(a2, ouch.OrderAccepted) and a2.user_ref_num == sell
        assert isinstance(e2, ouch.OrderExecuted)
        assert (e2.user_ref_num, e2.quantity, e2.price) == (sell, 60, 190 * P)
        assert e2.liquidity_flag == ouch.LiquidityFlag.REMOVED
        seq, e1 = await c1.recv(WAIT)
        assert seq == 2 and isinstance(e1, ouch.OrderExecuted)
        assert (e1.user_ref_num, e1.quantity, e1.price) == (buy, 60, 190 * P)
        assert e1.liquidity_flag == ouch.LiquidityFlag.ADDED
        assert e1.match_number == e2.match_number
        # cancel the rest: Quantity = intended total size 60 -> nothing left
        await c1.cancel(buy, 60)
        seq, cancelled = await c1.recv(WAIT)
        assert seq == 3 and isinstance(cancelled, ouch.OrderCanceled)
        assert (cancelled.quantity, cancelled.reason) == (40, "U")
        # an engine reject comes back as a sequenced Rejected
        bad = await c2.enter_order("B", 10, "NOPE", 190 * P)
        seq, rej = await c2.recv(WAIT)
        assert seq == 3 and isinstance(rej, ouch.Rejected) and rej.user_ref_num == bad
        assert rej.reason == ouch.RejectReason.INVALID_SYMBOL
        await quiet(c1)
        await quiet(c2)
        await stop(core, gw, c1, c2)

    run(main())


def test_replace_and_account_query(config):
    async def main():
        core, gw = await start(config)
        c1, c2 = client(gw, "firm1", "pw1"), client(gw, "firm2", "pw2")
        await c1.connect()
        await c2.connect()
        buy = await c1.enter_order("B", 500, "AAPL", 190 * P)
        await c1.recv(WAIT)
        await c2.enter_order("S", 100, "AAPL", 190 * P)
        await take(c2, 2)
        await c1.recv(WAIT)  # executed 100
        new = await c1.replace(buy, 500, 191 * P)  # total liable 500 -> 400 open
        seq, rep = await c1.recv(WAIT)
        assert isinstance(rep, ouch.OrderReplaced)
        assert (rep.orig_user_ref_num, rep.user_ref_num, rep.quantity, rep.price) == (
            buy, new, 400, 191 * P)
        await c1.account_query()
        seq, q = await c1.recv(WAIT)
        assert seq is None and q.next_user_ref_num == new + 1
        # a stale UserRefNum is ignored (spec §6)
        await c1.enter_order("B", 10, "AAPL", 190 * P, user_ref_num=1)
        await quiet(c1)
        await stop(core, gw, c1, c2)

    run(main())


def test_order_entry_switch_answers_sequenced_or_unsequenced(config):
    """A Disable that engages the kill switch is answered by the event (sequenced); one that
    changes nothing is answered at once, unsequenced."""
    async def main():
        core, gw = await start(config)
        c1 = client(gw, "firm1", "pw1")
        await c1.connect()
        first = await c1.disable_order_entry("FRM")
        seq, answer = await c1.recv(WAIT)
        assert seq is not None and isinstance(answer, ouch.DisableOrderEntryResponse)
        assert (answer.user_ref_num, answer.firm) == (first, "FRM")
        again = await c1.disable_order_entry("FRM")
        seq, answer = await c1.recv(WAIT)
        assert seq is None and isinstance(answer, ouch.DisableOrderEntryResponse)
        assert answer.user_ref_num == again
        await c1.enable_order_entry()
        seq, answer = await c1.recv(WAIT)
        assert seq is not None and isinstance(answer, ouch.EnableOrderEntryResponse)
        await quiet(c1)
        await stop(core, gw, c1)

    run(main())


def test_login_rejections(config):
    async def main():
        core, gw = await start(config)
        with pytest.raises(LoginRejectedError) as info:
            await client(gw, "firm1", "wrong").connect()
        assert info.value.reason is soup.RejectReason.NOT_AUTHORIZED
        with pytest.raises(LoginRejectedError) as info:
            await client(gw, "nobody", "pw1").connect()
        assert info.value.reason is soup.RejectReason.NOT_AUTHORIZED
        with pytest.raises(LoginRejectedError) as info:
            await client(gw, "firm1", "pw1", session="OTHER00001").connect()
        assert info.value.reason is soup.RejectReason.SESSION_NOT_AVAILABLE
        await stop(core, gw)

    run(main())


def test_a_participant_under_order_quorum_cannot_bypass_it_over_ouch(tmp_path, caplog):
    """Its orders count only when k FIX sessions agree (venue.quorum): an OUCH login, which
    would enter orders alone, is refused, and the log says why."""
    path = tmp_path / "venue.toml"
    path.write_text(CONFIG.format(directory=tmp_path / "journal") + """
[[participants]]
participant = "CLUSTER"
username = "node0"
password = "pw"
fix_comp_id = "NODE0"
order_quorum = 2

[[participants]]
participant = "CLUSTER"
username = "node1"
password = "pw"
fix_comp_id = "NODE1"
order_quorum = 2
""")

    async def main():
        core, gw = await start(load_config(path))
        with pytest.raises(LoginRejectedError) as info:
            await client(gw, "node0", "pw").connect()
        assert info.value.reason is soup.RejectReason.NOT_AUTHORIZED
        c = client(gw, "firm1", "pw1")
        await c.connect()  # participants without a quorum log on as before
        await stop(core, gw, c)

    run(main())
    assert "participant CLUSTER has order_quorum 2" in caplog.text


@pytest.mark.parametrize("log_keep", [8192, 1])  # 1: resends come from the file
def test_reconnect_gets_exactly_the_missed_messages(config, log_keep):
    async def main():
        core, gw = await start(config, log_keep=log_keep)
        c1, c2 = client(gw, "firm1", "pw1"), client(gw, "firm2", "pw2")
        await c1.connect()
        await c2.connect()
        buy = await c1.enter_order("B", 100, "AAPL", 190 * P)
        await c2.enter_order("S", 30, "AAPL", 190 * P)
        await take(c2, 2)
        assert [s for s, _ in await take(c1, 2)] == [1, 2]
        c1.abort()  # broken link, no logout
        await asyncio.sleep(0.1)
        for _ in range(2):  # firm1's resting buy is hit twice while it is away
            await c2.enter_order("S", 10, "AAPL", 190 * P)
            await take(c2, 2)
        assert await c1.connect() == c1.last_seq + 1 == 3
        got = await take(c1, 2)
        assert [s for s, _ in got] == [3, 4]
        assert all(isinstance(m, ouch.OrderExecuted) and (m.user_ref_num, m.quantity) == (buy, 10)
                   for _, m in got)
        await quiet(c1)
        if log_keep == 1:  # so the replay below reads messages 1-3 back from the file
            assert gw.logs["FIRM1"].in_memory == 1
        assert await c1.connect(1) == 1  # from 1: everything again, identically numbered
        replay = await take(c1, 4)
        assert [s for s, _ in replay] == [1, 2, 3, 4]
        assert [type(m) for _, m in replay] == [ouch.OrderAccepted] + [ouch.OrderExecuted] * 3
        await quiet(c1)
        assert await c1.connect(0) == 5  # 0: only new messages
        await quiet(c1)
        await stop(core, gw, c1, c2)

    run(main())


@pytest.mark.parametrize("log_keep", [8192, 1])  # 1: resends come from the file
def test_restart_resumes_without_loss_or_duplicate(config, log_keep):
    async def main():
        core, gw = await start(config, log_keep=log_keep)
        c1, c2 = client(gw, "firm1", "pw1"), client(gw, "firm2", "pw2")
        await c1.connect()
        await c2.connect()
        buy = await c1.enter_order("B", 100, "AAPL", 190 * P)
        await take(c1, 1)
        await c2.enter_order("S", 30, "AAPL", 190 * P)
        await take(c2, 2)
        await take(c1, 1)  # E 30, seq 2
        c1.abort()
        await asyncio.sleep(0.1)
        await c2.enter_order("S", 20, "AAPL", 190 * P)  # firm1 misses this execution (seq 3)
        await take(c2, 2)
        last1, last2 = c1.last_seq, c2.last_seq
        await stop(core, gw, c2)

        core, gw = await start(config, log_keep=log_keep)  # restarts from its journal
        c1.port = c2.port = gw.port
        assert await c1.connect() == last1 + 1
        (seq, e), = await take(c1, 1)
        assert seq == 3 and isinstance(e, ouch.OrderExecuted)
        assert (e.user_ref_num, e.quantity) == (buy, 20)
        await quiet(c1)
        assert await c2.connect() == last2 + 1
        await quiet(c2, 0.1)
        # trading continues after the restart with the numbering continued
        await c2.enter_order("S", 50, "AAPL", 190 * P)
        (s1, _), (s2, e2) = await take(c2, 2)
        assert (s1, s2) == (last2 + 1, last2 + 2) and e2.quantity == 50
        (seq, e1), = await take(c1, 1)
        assert seq == 4 and e1.user_ref_num == buy and e1.quantity == 50
        await quiet(c1)
        await stop(core, gw, c1, c2)

    run(main())


def test_garbage_from_one_client_does_not_disturb_another(config):
    async def main():
        core, gw = await start(config)
        c1 = client(gw, "firm1", "pw1")
        await c1.connect()
        # garbage before login
        r, w = await asyncio.open_connection("127.0.0.1", gw.port)
        w.write(b"\x00\x00\xffgarbage")
        assert await asyncio.wait_for(r.read(), WAIT) == b""
        w.close()
        # logged in, then an undecodable OUCH message, then framing garbage
        for junk in (soup.encode(soup.UnsequencedData(b"Zjunk")), b"\x00\x00garbage"):
            c2 = client(gw, "firm2", "pw2")
            await c2.connect(0)
            c2._write(junk)
            with pytest.raises(ConnectionError):
                while True:
                    await c2.recv(WAIT)
            await c2.close()
        urn = await c1.enter_order("B", 10, "AAPL", 190 * P)
        seq, acc = await c1.recv(WAIT)
        assert isinstance(acc, ouch.OrderAccepted) and acc.user_ref_num == urn and seq == 1
        await stop(core, gw, c1)

    run(main())


def test_heartbeats_timeout_second_login_and_end_of_session(config):
    async def main():
        core, gw = await start(config, heartbeat_interval=0.05, client_timeout=0.3)
        # a raw client that never heartbeats: sees server heartbeats, then gets dropped
        r, w = await asyncio.open_connection("127.0.0.1", gw.port)
        w.write(soup.encode(soup.LoginRequest("firm1", "pw1", "", 1)))
        data = await asyncio.wait_for(r.read(), WAIT)  # until the server closes
        framer = soup.SoupFramer(sender="server")
        packets = framer.feed(data)
        assert isinstance(packets[0], soup.LoginAccepted)
        assert sum(isinstance(p, soup.ServerHeartbeat) for p in packets) >= 3
        w.close()
        # a heartbeating client stays; a second login of the same firm kicks the first
        c1 = client(gw, "firm1", "pw1", heartbeat_interval=0.05)
        await c1.connect()
        await asyncio.sleep(0.5)
        assert c1.connected
        c1b = client(gw, "firm1", "pw1", heartbeat_interval=0.05)
        await c1b.connect()
        with pytest.raises(ConnectionError):
            await c1.recv(WAIT)
        await gw.close()
        with pytest.raises(ConnectionError):
            await c1b.recv(WAIT)
        assert c1b.end_of_session
        await c1.close()
        await c1b.close()
        core.close()

    run(main())


def test_port_is_ephemeral(config):
    async def main():
        core, gw = await start(config)
        with socket.create_connection(("127.0.0.1", gw.port), timeout=WAIT):
            pass
        await stop(core, gw)

    run(main())


def test_a_burst_in_one_write_is_answered_in_order_with_one_group_commit(config):
    """100 Enter Orders (and a malformed one between) in one TCP write: one journal commit for
    the turn, every accept in order, the bad order's reject in its place among them."""

    async def main():
        core, gw = await start(config)
        commits = []
        real_commit = core.exchange.commit
        core.exchange.commit = lambda: (commits.append(core.exchange.last_seq), real_commit())
        c1 = client(gw, "firm1", "pw1")
        await c1.connect()
        burst = []
        for i in range(1, 101):
            symbol = "NOPE" if i == 50 else "AAPL"  # the engine rejects it, sequenced, in place
            msg = ouch.EnterOrder(
                i, ouch.Side.BUY, 10, symbol, (180 + i % 5) * P, ouch.TimeInForce.DAY,
                ouch.Display.VISIBLE, ouch.Capacity.AGENCY, ouch.IntermarketSweep.NOT_ELIGIBLE,
                ouch.CrossType.CONTINUOUS, f"B{i}")
            burst.append(soup.encode(soup.UnsequencedData(ouch.encode(msg))))
        c1._write(b"".join(burst))
        got = await take(c1, 100)
        assert [seq for seq, _ in got] == list(range(1, 101))
        assert [m.user_ref_num for _, m in got] == list(range(1, 101))
        assert isinstance(got[49][1], ouch.Rejected)
        assert all(isinstance(m, ouch.OrderAccepted) for i, (_, m) in enumerate(got) if i != 49)
        assert 1 <= len(commits) <= 10  # grouped: a few reads at most, never one per order
        await quiet(c1)
        await stop(core, gw, c1)

    run(main())


def test_enter_then_cancel_and_replace_in_the_same_write(config):
    """Group commit must not hide an order from the next message of the same read."""

    async def main():
        core, gw = await start(config)
        c1 = client(gw, "firm1", "pw1")
        await c1.connect()
        enter = ouch.EnterOrder(
            1, ouch.Side.BUY, 100, "AAPL", 185 * P, ouch.TimeInForce.DAY, ouch.Display.VISIBLE,
            ouch.Capacity.AGENCY, ouch.IntermarketSweep.NOT_ELIGIBLE, ouch.CrossType.CONTINUOUS,
            "E1")
        enter2 = msgspec.structs.replace(enter, user_ref_num=2, cl_ord_id="E2")
        replace = ouch.ReplaceOrderRequest(2, 3, 50, 184 * P, ouch.TimeInForce.DAY,
                                           ouch.Display.VISIBLE, ouch.IntermarketSweep.NOT_ELIGIBLE,
                                           "R3")
        c1._write(b"".join(soup.encode(soup.UnsequencedData(ouch.encode(m))) for m in (
            enter, ouch.CancelOrderRequest(1, 0), enter2, replace)))
        kinds = [type(m) for _, m in await take(c1, 4)]
        assert kinds == [ouch.OrderAccepted, ouch.OrderCanceled, ouch.OrderAccepted,
                         ouch.OrderReplaced]
        await quiet(c1)
        await stop(core, gw, c1)

    run(main())


def test_a_burst_cut_by_a_truncated_packet_and_a_drop_loses_no_accepted_order(config):
    """Orders of a read that ends in half a packet, then the connection dropped: every whole
    order is still committed (the group commit runs even though the client is gone) and a
    reconnect from sequence 1 gets each answer exactly once."""

    async def main():
        core, gw = await start(config)
        _, w = await asyncio.open_connection("127.0.0.1", gw.port)
        w.write(soup.encode(soup.LoginRequest("firm1", "pw1", "", 1)))
        orders = [
            soup.encode(soup.UnsequencedData(ouch.encode(ouch.EnterOrder(
                i, ouch.Side.BUY, 10, "AAPL", 180 * P, ouch.TimeInForce.DAY, ouch.Display.VISIBLE,
                ouch.Capacity.AGENCY, ouch.IntermarketSweep.NOT_ELIGIBLE,
                ouch.CrossType.CONTINUOUS, f"T{i}"))))
            for i in range(1, 21)
        ]
        w.write(b"".join(orders) + orders[0][:7])  # 20 whole orders, then a truncated packet
        w.transport.abort()  # dropped, not logged out
        for _ in range(100):
            if len(gw.logs.get("FIRM1", [])) >= 20:
                break
            await asyncio.sleep(0.01)
        c1 = client(gw, "firm1", "pw1")
        assert await c1.connect(1) == 1
        got = await take(c1, 20)
        assert [seq for seq, _ in got] == list(range(1, 21))
        assert [m.user_ref_num for _, m in got] == list(range(1, 21))
        assert all(isinstance(m, ouch.OrderAccepted) for _, m in got)
        await quiet(c1)
        await stop(core, gw, c1)

    run(main())


def test_a_participant_with_two_accounts_trades_on_both_at_once(tmp_path):
    """Two sections of FIRM1 are two OUCH accounts: both logged in at once (neither kicks the
    other), each with its own UserRefNums and sequence numbers and only its own orders' messages
    (a cross between them reports each side to its account), the participant's kill switch
    heard by both; a restart rebuilds both streams."""
    path = tmp_path / "venue.toml"
    path.write_text(CONFIG.format(directory=tmp_path / "journal") + """
[[participants]]
participant = "FIRM1"
username = "firm1b"
password = "pw1b"
""")
    config = load_config(path)

    async def main():
        core, gw = await start(config)
        a, b = client(gw, "firm1", "pw1"), client(gw, "FIRM1B", "pw1b")
        assert await a.connect() == 1 and await b.connect() == 1
        buy = await a.enter_order("B", 100, "AAPL", 190 * P)
        (_, acc_a), = await take(a, 1)
        assert isinstance(acc_a, ouch.OrderAccepted) and acc_a.user_ref_num == buy
        sell = await b.enter_order("S", 40, "AAPL", 190 * P)
        assert buy == sell == 1  # each account numbers its own orders
        (s1, acc_b), (s2, ex_b) = await take(b, 2)
        assert (s1, s2) == (1, 2) and isinstance(acc_b, ouch.OrderAccepted)
        assert isinstance(ex_b, ouch.OrderExecuted) and ex_b.quantity == 40
        (seq, ex_a), = await take(a, 1)
        assert seq == 2 and isinstance(ex_a, ouch.OrderExecuted) and ex_a.user_ref_num == buy
        assert ex_a.match_number == ex_b.match_number
        await b.cancel(buy, 0)  # account B's UserRefNum 1 is filled: A's order is not B's
        await quiet(b)
        await a.disable_order_entry()  # cancels A's rest (60), then both hear the switch
        (_, gone), (_, off_a) = await take(a, 2)
        (_, off_b), = await take(b, 1)
        assert isinstance(gone, ouch.OrderCanceled) and (gone.user_ref_num, gone.quantity) == (
            buy, 60)
        assert isinstance(off_a, ouch.DisableOrderEntryResponse) and off_a.user_ref_num == 2
        assert isinstance(off_b, ouch.DisableOrderEntryResponse) and off_b.user_ref_num == 0
        await quiet(a)
        last_a, last_b = a.last_seq, b.last_seq
        await stop(core, gw, a, b)

        core, gw = await start(config)  # the venue restarts: both streams rebuilt
        for c, last in ((a, last_a), (b, last_b)):
            c.port = gw.port
            assert await c.connect(1) == 1
            replay = await take(c, last)
            assert [seq for seq, _ in replay] == list(range(1, last + 1))
            await quiet(c, 0.1)
        await stop(core, gw, a, b)

    run(main())


def test_a_session_replayed_from_sequence_1_after_thousands_of_messages_is_exact(config):
    """4,000 messages with 64 to 128 kept in memory: a login from sequence 1 is sent the spilled
    ones from the file, in chunks under flow control, then the ones in memory, each once."""

    async def main():
        core, gw = await start(config, log_keep=64)
        c1 = client(gw, "firm1", "pw1")
        await c1.connect()
        orders = []
        for k in range(1, 2_001):
            orders.append(ouch.EnterOrder(
                k, ouch.Side.BUY, 100, "AAPL", (186 + k % 4) * P, ouch.TimeInForce.DAY,
                ouch.Display.VISIBLE, ouch.Capacity.AGENCY, ouch.IntermarketSweep.NOT_ELIGIBLE,
                ouch.CrossType.CONTINUOUS, f"C{k}"))
            orders.append(ouch.CancelOrderRequest(k, 0))
        for i in range(0, len(orders), 200):
            c1._write(b"".join(soup.encode(soup.UnsequencedData(ouch.encode(m)))
                               for m in orders[i:i + 200]))
        live = await take(c1, 4_000)
        assert [s for s, _ in live] == list(range(1, 4_001))
        assert [type(m) for _, m in live[:2]] == [ouch.OrderAccepted, ouch.OrderCanceled]
        assert gw.logs["FIRM1"].in_memory <= 128
        c1.abort()
        await asyncio.sleep(0.1)
        assert await c1.connect(1) == 1
        replay = await take(c1, 4_000)
        assert replay == live  # same numbers, same messages
        await quiet(c1)
        await stop(core, gw, c1)

    run(main())
