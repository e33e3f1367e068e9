"""FIX 4.4 gateway end to end: real TCP on 127.0.0.1, VenueCore on a tmp dir, FixClient peers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from agora.core.enums import OrderType, Side
from agora.exchange.venue.config import load_config
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.fix_gateway import FixGateway
from agora.protocols.fix44.codec import decode
from agora.protocols.fix44.enums import CxlRejReason, ExecType, OrdRejReason, OrdStatus
from agora.protocols.fix44.framer import FixFramer
from agora.protocols.fix44.messages import ADMIN_TYPES, ExecutionReport, OrderCancelReject
from agora.trading.clients.fix_client import FixClient, FixClientError

pytestmark = pytest.mark.e2e

CONFIG = """
[venue]
directory = "{directory}"
fsync = "none"

[[symbols]]
symbol = "AAPL"
reference_price = "190.00"

[[participants]]
participant = "FIRM1"
username = "firm1"
password = "pw1"
fix_comp_id = "CLIENT1"

[[participants]]
participant = "FIRM2"
username = "firm2"
password = "pw2"
fix_comp_id = "CLIENT2"
"""

PX = 1_900_000  # 190.00


class Venue:
    def __init__(self, tmp_path, config: str = CONFIG):
        self.tmp = tmp_path
        path = tmp_path / "venue.toml"
        path.write_text(config.format(directory=tmp_path / "journal"))
        self.config = load_config(path)
        self.core: VenueCore | None = None
        self.gateway: FixGateway | None = None

    async def open(self, port: int = 0) -> int:
        self.core = VenueCore(self.config)
        self.gateway = FixGateway(self.core, self.config, self.tmp / "fix")
        return await self.gateway.start("127.0.0.1", port)

    async def close(self) -> None:
        if self.gateway is not None:
            await self.gateway.close()
        if self.core is not None:
            self.core.close()
        self.gateway = self.core = None

    def client(self, comp_id: str, **kw) -> FixClient:
        assert self.gateway is not None
        return FixClient("127.0.0.1", self.gateway.port, comp_id, **kw)


def run(coro_fn, tmp_path, timeout: float = 30.0, config: str = CONFIG):
    async def main():
        venue = Venue(tmp_path, config)
        await venue.open()
        try:
            await asyncio.wait_for(coro_fn(venue), timeout)
        finally:
            await venue.close()

    asyncio.run(main())


async def expect(client: FixClient, **want) -> ExecutionReport | OrderCancelReject:
    msg = await client.receive(timeout=5.0)
    for key, value in want.items():
        assert getattr(msg, key) == value, (key, msg)
    return msg


async def no_more(client: FixClient, wait: float = 0.3) -> None:
    with contextlib.suppress(TimeoutError):
        msg = await client.receive(timeout=wait)
        raise AssertionError(f"unexpected message {msg}")


def test_two_clients_trade(tmp_path):
    async def body(venue: Venue):
        a, b = venue.client("CLIENT1"), venue.client("CLIENT2")
        await a.connect()
        await b.connect()
        a.new_order("A1", "AAPL", Side.SELL, 300, PX)
        await expect(a, exec_type=ExecType.NEW, ord_status=OrdStatus.NEW, cl_ord_id="A1",
                     leaves_qty=300, cum_qty=0, order_qty=300, price=PX)
        b.new_order("B1", "AAPL", Side.BUY, 100, PX + 100)
        await expect(b, exec_type=ExecType.NEW, cl_ord_id="B1")
        await expect(b, exec_type=ExecType.TRADE, ord_status=OrdStatus.FILLED, last_qty=100,
                     last_px=PX, cum_qty=100, leaves_qty=0, avg_px=PX)
        await expect(a, exec_type=ExecType.TRADE, ord_status=OrdStatus.PARTIALLY_FILLED,
                     last_qty=100, last_px=PX, cum_qty=100, leaves_qty=200, avg_px=PX)
        # replace: OrderQty is the total (including the 100 executed) -> 150 new leaves
        a.replace("A1", "A2", "AAPL", Side.SELL, 250, PX + 100)
        await expect(a, exec_type=ExecType.REPLACED, ord_status=OrdStatus.PARTIALLY_FILLED,
                     cl_ord_id="A2", orig_cl_ord_id="A1", leaves_qty=150, cum_qty=100,
                     order_qty=250, price=PX + 100)
        b.new_order("B2", "AAPL", Side.BUY, 50, order_type=OrderType.MARKET)
        await expect(b, exec_type=ExecType.NEW, cl_ord_id="B2")
        await expect(b, exec_type=ExecType.TRADE, last_qty=50, last_px=PX + 100)
        await expect(a, exec_type=ExecType.TRADE, cum_qty=150, leaves_qty=100,
                     avg_px=(100 * PX + 50 * (PX + 100)) // 150)
        a.status("A2", "AAPL", Side.SELL, req_id="S1")
        await expect(a, exec_type=ExecType.ORDER_STATUS, ord_status_req_id="S1",
                     cum_qty=150, leaves_qty=100, ord_status=OrdStatus.PARTIALLY_FILLED)
        a.cancel("A2", "A3", "AAPL", Side.SELL)
        await expect(a, exec_type=ExecType.CANCELED, ord_status=OrdStatus.CANCELED,
                     cl_ord_id="A3", orig_cl_ord_id="A2", leaves_qty=0, cum_qty=150)
        a.cancel("A2", "A4", "AAPL", Side.SELL)  # already canceled: too late
        await expect(a, cxl_rej_reason=CxlRejReason.TOO_LATE_TO_CANCEL, cl_ord_id="A4")
        # engine-side rejects arrive as ExecutionReport 8 with OrdRejReason
        b.new_order("B3", "AAPL", Side.BUY, 10, PX * 2)
        await expect(b, exec_type=ExecType.REJECTED, ord_status=OrdStatus.REJECTED,
                     ord_rej_reason=3, cl_ord_id="B3")
        await no_more(a)
        await no_more(b)
        await a.logout()
        await b.logout()

    run(body, tmp_path)


def test_unknown_comp_id_refused_and_unknown_cancel_rejected(tmp_path):
    async def body(venue: Venue):
        stranger = venue.client("NOBODY")
        with pytest.raises(FixClientError, match="unknown SenderCompID"):
            await stranger.connect()
        a = venue.client("CLIENT1")
        await a.connect()
        a.cancel("NOPE", "C1", "AAPL", Side.BUY)
        await expect(a, cl_ord_id="C1", orig_cl_ord_id="NOPE", order_id="NONE",
                     cxl_rej_reason=CxlRejReason.UNKNOWN_ORDER, cxl_rej_response_to="1")
        # a second connection for a logged-on session is refused; the first keeps working
        dup = venue.client("CLIENT1")
        with pytest.raises(FixClientError, match="already connected"):
            await dup.connect()
        a.status("NOPE", "AAPL", Side.BUY)
        await expect(a, exec_type=ExecType.ORDER_STATUS, ord_status=OrdStatus.REJECTED)
        await a.logout()

    run(body, tmp_path)


def test_missed_fill_delivered_exactly_once_after_reconnect(tmp_path):
    async def body(venue: Venue):
        store = venue.tmp / "client1"
        a, b = venue.client("CLIENT1", store_dir=store), venue.client("CLIENT2")
        await a.connect()
        await b.connect()
        a.new_order("A1", "AAPL", Side.BUY, 100, PX)
        await expect(a, exec_type=ExecType.NEW)
        await a.close()  # abrupt: no Logout
        a.close_store()
        await asyncio.sleep(0.1)
        b.new_order("B1", "AAPL", Side.SELL, 60, PX)
        await expect(b, exec_type=ExecType.NEW)
        await expect(b, exec_type=ExecType.TRADE, last_qty=60)
        a2 = venue.client("CLIENT1", store_dir=store)  # a new process resuming from its store
        await a2.connect()
        fill = await expect(a2, exec_type=ExecType.TRADE, last_qty=60, cum_qty=60, leaves_qty=40)
        assert fill.cl_ord_id == "A1"
        assert a2.received[-1].poss_dup
        await no_more(a2)
        # the session carries on normally
        a2.cancel("A1", "A2", "AAPL", Side.BUY)
        await expect(a2, exec_type=ExecType.CANCELED, leaves_qty=0, cum_qty=60)
        await a2.logout()
        a2.close_store()
        await b.logout()

    run(body, tmp_path)


def test_venue_restart_keeps_sequence_numbers(tmp_path):
    async def main():
        venue = Venue(tmp_path)
        stores = tmp_path / "client1", tmp_path / "client2"
        await venue.open()
        try:
            a = venue.client("CLIENT1", store_dir=stores[0])
            b = venue.client("CLIENT2", store_dir=stores[1])
            await a.connect()
            await b.connect()
            a.new_order("A1", "AAPL", Side.BUY, 100, PX)
            await expect(a, exec_type=ExecType.NEW)
            b.new_order("B1", "AAPL", Side.SELL, 30, PX)
            await expect(b, exec_type=ExecType.NEW)
            await expect(b, exec_type=ExecType.TRADE)
            await expect(a, exec_type=ExecType.TRADE, cum_qty=30)
            before = a.session.next_target
            await venue.close()  # logs both sessions out, closes the journal
            for client in (a, b):
                await client.close()
                client.close_store()
            await venue.open()  # same journal and FIX store directories
            b = venue.client("CLIENT2", store_dir=stores[1])
            await b.connect()
            await no_more(b)  # nothing is re-reported after the restart
            b.new_order("B2", "AAPL", Side.SELL, 70, PX)
            await expect(b, exec_type=ExecType.NEW)
            await expect(b, exec_type=ExecType.TRADE, last_qty=70, cum_qty=70)
            a = venue.client("CLIENT1", store_dir=stores[0])
            assert a.session.next_target == before + 1  # + the venue's Logout
            await a.connect()
            # the fill made while CLIENT1 was away, once; CumQty continues across the restart
            await expect(a, exec_type=ExecType.TRADE, last_qty=70, cum_qty=100, leaves_qty=0,
                         ord_status=OrdStatus.FILLED)
            await no_more(a)
            a.status("A1", "AAPL", Side.BUY)
            await expect(a, exec_type=ExecType.ORDER_STATUS, cum_qty=100, leaves_qty=0)
            for client in (a, b):
                await client.logout()
                client.close_store()
        finally:
            await venue.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_restart_finds_its_report_watermark_from_the_end_of_the_resend_log(tmp_path,
                                                                            monkeypatch):
    """A crash after a flush's reports reached the resend log but before the watermark file
    was rewritten: the restart takes the watermark from the last stored report that names a
    venue seq, reading the log back from its end a block at a time past the gateway's own
    replies (no venue seq), and re-reports nothing."""
    from agora.exchange.venue import fix_gateway
    from agora.protocols.fix44.store import CounterFile

    monkeypatch.setattr(fix_gateway, "WATERMARK_BLOCK", 2)

    async def main():
        venue = Venue(tmp_path)
        store = tmp_path / "client2"
        await venue.open()
        try:
            b = venue.client("CLIENT2", store_dir=store)
            await b.connect()
            for n in range(3):
                b.new_order(f"B{n}", "AAPL", Side.SELL, 30, PX + 100 * n)
                await expect(b, exec_type=ExecType.NEW)
            for n in range(3):  # the gateway's own replies: the last five stored messages
                b.cancel(f"NOPE{n}", f"C{n}", "AAPL", Side.SELL)
                await expect(b, cl_ord_id=f"C{n}", cxl_rej_reason=CxlRejReason.UNKNOWN_ORDER)
            await venue.close()
            await b.close()
            b.close_store()
            reported = tmp_path / "fix" / "CLIENT2" / "reported"
            counter = CounterFile(reported, fsync=False)
            counter.write(0)  # as if the crash came before the watermark's rewrite
            counter.close()
            await venue.open()
            assert venue.gateway.members["CLIENT2"].watermark > 0
            b = venue.client("CLIENT2", store_dir=store)
            await b.connect()
            await no_more(b)  # nothing is re-reported after the restart
            await b.logout()
            b.close_store()
        finally:
            await venue.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_garbage_from_one_client_does_not_disturb_another(tmp_path):
    async def body(venue: Venue):
        a, b = venue.client("CLIENT1"), venue.client("CLIENT2")
        await a.connect()
        await b.connect()
        # raw garbage on a fresh socket: closed, nobody else notices
        reader, writer = await asyncio.open_connection("127.0.0.1", venue.gateway.port)
        writer.write(b"\x00\xffGARBAGE" * 100)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
        # garbage inside a logged-on session: dropped by the session layer, session continues
        b._writer.write(b"8=FIX.4.4\x019=5\x0135=D\x0110=000\x01garbage")
        a.new_order("A1", "AAPL", Side.SELL, 10, PX)
        await expect(a, exec_type=ExecType.NEW)
        b.new_order("B1", "AAPL", Side.BUY, 10, PX)
        await expect(b, exec_type=ExecType.NEW)
        await expect(b, exec_type=ExecType.TRADE, last_qty=10)
        await expect(a, exec_type=ExecType.TRADE, last_qty=10, ord_status=OrdStatus.FILLED)
        # a well-framed order without Side: session Reject; an unsupported MsgType: BMR 3
        b.send(("D", [(11, "B2"), (55, "AAPL"), (60, "20240102-10:00:00"), (38, 5), (40, "2"),
                      (44, "190")]))
        await expect(b, ref_tag_id=54, session_reject_reason=1)
        b.send(("V", [(262, "MD1")]))
        await expect(b, ref_msg_type="V", business_reject_reason=3)
        b.new_order("B3", "AAPL", Side.BUY, 5, PX)
        await expect(b, exec_type=ExecType.NEW, cl_ord_id="B3")
        await no_more(a)
        await a.logout()
        await b.logout()

    run(body, tmp_path)


SECOND_SESSION = """
[[participants]]
participant = "FIRM1"
username = "firm1b"
password = "pw1b"
fix_comp_id = "CLIENT1B"
"""


def test_two_sessions_of_one_participant_share_orders_and_dedup(tmp_path):
    async def body(venue: Venue):
        a, a2, b = venue.client("CLIENT1"), venue.client("CLIENT1B"), venue.client("CLIENT2")
        for client in (a, a2, b):
            await client.connect()
        a.new_order("X1", "AAPL", Side.BUY, 100, PX)
        await expect(a, exec_type=ExecType.NEW, cl_ord_id="X1")
        await expect(a2, exec_type=ExecType.NEW, cl_ord_id="X1", leaves_qty=100)  # drop copy
        # the same ClOrdID from the participant's other session: a duplicate, told to it alone
        a2.new_order("X1", "AAPL", Side.BUY, 100, PX)
        dup = await expect(a2, exec_type=ExecType.REJECTED, ord_status=OrdStatus.REJECTED,
                           cl_ord_id="X1", ord_rej_reason=OrdRejReason.DUPLICATE_ORDER)
        assert dup.text.startswith("DUPLICATE_CLIENT_ORDER_ID")
        # a fill of an order entered by one session reaches both
        b.new_order("Y1", "AAPL", Side.SELL, 30, PX)
        await expect(b, exec_type=ExecType.NEW)
        await expect(b, exec_type=ExecType.TRADE, last_qty=30)
        for client in (a, a2):
            await expect(client, exec_type=ExecType.TRADE, cl_ord_id="X1", cum_qty=30,
                         leaves_qty=70)
        # OrigClOrdID resolves whichever session entered the order
        a2.cancel("X1", "C1", "AAPL", Side.BUY)
        await expect(a2, exec_type=ExecType.CANCELED, cl_ord_id="C1", orig_cl_ord_id="X1",
                     leaves_qty=0, cum_qty=30)
        await expect(a, exec_type=ExecType.CANCELED, cl_ord_id="X1", leaves_qty=0)
        a.cancel("X1", "C2", "AAPL", Side.BUY)  # the second copy of the cancel: too late
        await expect(a, cl_ord_id="C2", cxl_rej_reason=CxlRejReason.TOO_LATE_TO_CANCEL)
        for client in (a, a2, b):
            await no_more(client)
            await client.logout()
        assert (venue.tmp / "fix" / "CLIENT1B").is_dir()  # a store of its own

    run(body, tmp_path, config=CONFIG + SECOND_SESSION)


def test_a_venue_reject_reaches_every_session_of_the_participant_a_duplicate_does_not(tmp_path):
    """Decision nodes each send every decided order: the node whose copy came second must
    still learn that the venue refused the order (its own copy is only a duplicate)."""

    async def body(venue: Venue):
        a, a2, b = venue.client("CLIENT1"), venue.client("CLIENT1B"), venue.client("CLIENT2")
        for client in (a, a2, b):
            await client.connect()
        a.new_order("R1", "AAPL", Side.BUY, 100, PX + 1)  # off the 0.01 tick
        own = await expect(a, exec_type=ExecType.REJECTED, cl_ord_id="R1")
        copy = await expect(a2, exec_type=ExecType.REJECTED, cl_ord_id="R1")
        assert copy.exec_id == own.exec_id + "D"
        assert (copy.ord_rej_reason, copy.text, copy.symbol, copy.side, copy.order_qty) == (
            own.ord_rej_reason, own.text, "AAPL", own.side, 100)
        assert own.text.startswith("INVALID_TICK")
        a2.new_order("R1", "AAPL", Side.BUY, 100, PX + 1)  # the second node's copy
        await expect(a2, cl_ord_id="R1", ord_rej_reason=OrdRejReason.DUPLICATE_ORDER)
        for client in (a, a2, b):
            await no_more(client)
            await client.logout()

    run(body, tmp_path, config=CONFIG + SECOND_SESSION)


@contextlib.contextmanager
def one_write(client: FixClient):
    """Hold the client's messages and send them in one TCP write (one read at the venue)."""
    writer, held = client._writer, []
    client._writer = type("Held", (), {"write": staticmethod(held.append)})()
    try:
        yield
    finally:
        client._writer = writer
        writer.write(b"".join(held))


def test_requests_of_one_read_are_answered_in_request_order(tmp_path):
    """One read, one group commit: a cancel finds the order entered just before it, and the
    venue's reports, the gateway's own replies and a session Reject keep the requests' order."""

    async def body(venue: Venue):
        a = venue.client("CLIENT1")
        await a.connect()
        with one_write(a):
            a.new_order("N1", "AAPL", Side.BUY, 10, PX)
            a.cancel("N1", "C1", "AAPL", Side.BUY)  # the order of this very read
            a.cancel("NOPE", "C2", "AAPL", Side.BUY)  # the gateway's own reject
            a.status("N1", "AAPL", Side.BUY)  # the gateway's own report
            a.send(("D", [(11, "N2"), (55, "AAPL"), (60, "20240102-10:00:00"), (38, 5),
                          (40, "2"), (44, "190")]))  # no Side: a session Reject
            a.new_order("N1", "AAPL", Side.BUY, 10, PX)  # a duplicate: the venue's reject
        await expect(a, exec_type=ExecType.NEW, cl_ord_id="N1")
        await expect(a, exec_type=ExecType.CANCELED, cl_ord_id="C1", orig_cl_ord_id="N1")
        await expect(a, cl_ord_id="C2", cxl_rej_reason=CxlRejReason.UNKNOWN_ORDER)
        status = await expect(a, exec_type=ExecType.ORDER_STATUS, ord_status=OrdStatus.CANCELED)
        await expect(a, ref_tag_id=54, session_reject_reason=1)
        await expect(a, exec_type=ExecType.REJECTED, cl_ord_id="N1",
                     ord_rej_reason=OrdRejReason.DUPLICATE_ORDER)
        await no_more(a)
        # the gateway's own report is identified by the MsgSeqNum it went out with
        assert status.exec_id == f"L{a.session.next_target - 3}"
        await a.logout()

    run(body, tmp_path)


def test_reports_are_stored_before_they_are_written(tmp_path):
    """A flush's reports reach the session's message log (one batch) before the socket write
    that carries them, so a resend after a crash can never miss a report the client saw."""

    async def body(venue: Venue):
        a = venue.client("CLIENT1")
        await a.connect()
        member = venue.gateway.members["CLIENT1"]
        log = venue.tmp / "fix" / "CLIENT1" / "messages.log"
        written = []
        socket_write = member.conn.write

        def write(data: bytes) -> None:
            stored = log.read_bytes()
            for frame in FixFramer().feed(data):
                if decode(frame).msg_type not in ADMIN_TYPES:
                    written.append(frame in stored)
            socket_write(data)

        member.conn.write = write
        with one_write(a):
            for n in range(5):
                a.new_order(f"N{n}", "AAPL", Side.BUY, 10, PX - 100 * n)
            a.cancel("NOPE", "C1", "AAPL", Side.BUY)
        for _ in range(5):
            await expect(a, exec_type=ExecType.NEW)
        await expect(a, cl_ord_id="C1", cxl_rej_reason=CxlRejReason.UNKNOWN_ORDER)
        assert written == [True] * 6
        await a.logout()

    run(body, tmp_path)


def test_the_inbound_seqnum_reaches_the_disk_after_the_journal_commits_the_read(tmp_path):
    """A crash between the two must make the client resend the read's orders (refused as
    duplicates if they were committed), never leave the venue expecting numbers past orders
    its journal does not hold."""

    async def body(venue: Venue):
        a = venue.client("CLIENT1")
        await a.connect()
        member = venue.gateway.members["CLIENT1"]
        events: list[tuple[str, int]] = []
        counter_write, flush = member.store._seqnums.write, venue.core.flush

        def write(sender: int, target: int) -> None:
            events.append(("seqnums", target))
            counter_write(sender, target)

        def committing() -> None:
            events.append(("commit", member.session.store.next_target))
            flush()

        member.store._seqnums.write = write
        venue.core.flush = committing
        with one_write(a):
            for n in range(3):
                a.new_order(f"S{n}", "AAPL", Side.BUY, 10, PX - 100 * n)
        for _ in range(3):
            await expect(a, exec_type=ExecType.NEW)
        target = member.store.next_target
        first_commit = events.index(("commit", target))
        written = [i for i, (what, value) in enumerate(events)
                   if what == "seqnums" and value == target]
        assert written and written[0] > first_commit, events
        await a.logout()

    run(body, tmp_path)
