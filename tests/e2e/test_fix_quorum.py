"""The venue's order quorum, end to end in process: a FixGateway on 127.0.0.1 with a participant
of four FIX sessions (a decision cluster, ``order_quorum = 2``) and a counterparty of its own.

Checked at the engine (``VenueCore.history``) as well as on the wire: one copy places nothing; k
equal copies place one order whose reports reach every session; an altered copy is refused to
its session alone and logged, while the agreed content trades; a lone copy times out; cancels,
replaces and parked cancels need the quorum too; held copies are bounded per session."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agora.core.enums import Side
from agora.core.events import OrderAccepted, OrderCancelled, OrderReplaced
from agora.protocols.fix44.enums import CxlRejReason, ExecType, OrdRejReason
from agora.trading.clients.fix_client import FixClient
from tests.e2e.test_fix_gateway import PX, Venue, expect, no_more, run

pytestmark = pytest.mark.e2e

CONFIG = """
[venue]
directory = "{directory}"
fsync = "none"
quorum_timeout_ms = TIMEOUT
quorum_max_held = MAX_HELD

[[symbols]]
symbol = "AAPL"
reference_price = "190.00"

[[participants]]
participant = "FIRM2"
username = "firm2"
password = "pw2"
fix_comp_id = "CLIENT2"
""" + "".join(f"""
[[participants]]
participant = "CLUSTER"
username = "node{i}"
password = "pw"
fix_comp_id = "N{i}"
order_quorum = 2
""" for i in range(4))


def config(timeout_ms: int = 10_000, max_held: int = 1000) -> str:
    return CONFIG.replace("TIMEOUT", str(timeout_ms)).replace("MAX_HELD", str(max_held))


async def logon(venue: Venue) -> tuple[list[FixClient], FixClient]:
    nodes = [venue.client(f"N{i}") for i in range(4)]
    other = venue.client("CLIENT2")
    for client in [*nodes, other]:
        await client.connect()
    return nodes, other


def commands(venue: Venue, kind, cl_ord_id: str) -> list:
    """The engine's events of ``kind`` for ``cl_ord_id`` (what the venue really did)."""
    assert venue.core is not None
    venue.core.flush()
    return [ev for _, events in venue.core.history for ev in events
            if isinstance(ev, kind) and getattr(ev, "client_order_id", None) == cl_ord_id]


def accepted(venue: Venue, cl_ord_id: str) -> list[OrderAccepted]:
    return commands(venue, OrderAccepted, cl_ord_id)


async def quiet(*clients: FixClient) -> None:
    await asyncio.gather(*(no_more(c) for c in clients))


async def logout(*clients: FixClient) -> None:
    for client in clients:
        await client.logout()


def test_one_copy_places_nothing_and_a_second_equal_copy_places_one_order(tmp_path):
    async def body(venue: Venue):
        nodes, other = await logon(venue)
        nodes[0].new_order("Q1", "AAPL", Side.BUY, 100, PX)
        await quiet(*nodes, other)
        assert accepted(venue, "Q1") == []  # held: the engine has not seen it
        await asyncio.sleep(0.01)  # another TransactTime: copies differ there, not in content
        nodes[1].new_order("Q1", "AAPL", Side.BUY, 100, PX)
        for node in nodes:  # every session of the participant gets the accept, once
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q1", leaves_qty=100)
        assert len(accepted(venue, "Q1")) == 1
        # a copy after the quorum: a duplicate ClOrdID, to its session alone, as without quorum
        nodes[2].new_order("Q1", "AAPL", Side.BUY, 100, PX)
        await expect(nodes[2], exec_type=ExecType.REJECTED, cl_ord_id="Q1",
                     ord_rej_reason=OrdRejReason.DUPLICATE_ORDER)
        # the order trades; every node sees the fill
        other.new_order("S1", "AAPL", Side.SELL, 100, PX)
        await expect(other, exec_type=ExecType.NEW)
        await expect(other, exec_type=ExecType.TRADE, last_qty=100)
        for node in nodes:
            await expect(node, exec_type=ExecType.TRADE, cl_ord_id="Q1", last_qty=100,
                         leaves_qty=0)
        await quiet(*nodes, other)
        assert len(accepted(venue, "Q1")) == 1
        await logout(*nodes, other)

    run(body, tmp_path, config=config())


def test_an_altered_copy_is_refused_and_logged_while_the_agreed_content_trades(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="agora.exchange.venue.fix_gateway")

    async def body(venue: Venue):
        nodes, other = await logon(venue)
        other.new_order("S2", "AAPL", Side.SELL, 100, PX)
        await expect(other, exec_type=ExecType.NEW)
        # the faulty node races the others with an altered order under the decided ClOrdID
        nodes[3].new_order("Q2", "AAPL", Side.SELL, 900, PX - 500)
        nodes[0].new_order("Q2", "AAPL", Side.BUY, 100, PX)
        await quiet(*nodes, other)
        assert accepted(venue, "Q2") == []  # one copy of each content: no quorum yet
        nodes[1].new_order("Q2", "AAPL", Side.BUY, 100, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q2", side="1", price=PX)
        await expect(other, exec_type=ExecType.TRADE, cl_ord_id="S2", last_qty=100)
        for node in nodes:
            await expect(node, exec_type=ExecType.TRADE, cl_ord_id="Q2", last_qty=100)
        # the altered copy's session alone is told (after the reports of the same commit)
        refused = await expect(nodes[3], exec_type=ExecType.REJECTED, cl_ord_id="Q2",
                               ord_rej_reason=OrdRejReason.DUPLICATE_ORDER, order_qty=900)
        assert "2 sessions agreed on different content" in refused.text
        await quiet(*nodes, other)
        [order] = accepted(venue, "Q2")
        assert (order.side, order.qty, order.price) == (Side.BUY, 100, PX)
        # a late altered copy: refused as a duplicate by the engine, and logged too
        nodes[2].new_order("Q2", "AAPL", Side.BUY, 100, PX + 100)
        await expect(nodes[2], exec_type=ExecType.REJECTED,
                     ord_rej_reason=OrdRejReason.DUPLICATE_ORDER)
        await logout(*nodes, other)

    run(body, tmp_path, config=config())
    faulty = [r.getMessage() for r in caplog.records if "faulty node" in r.getMessage()]
    assert len(faulty) == 2, faulty
    assert "session N3 sent" in faulty[0] and "(N0,N1)" in faulty[0]
    assert "session N2 sent" in faulty[1]


def test_the_venues_reject_of_an_agreed_order_reaches_every_session_once(tmp_path):
    """The first agreeing session gets the reject, every other one its drop copy (the
    decision nodes' agents learn the order is dead), nobody two of them; a conflicting copy's
    session gets the drop copy and its own refusal."""

    async def body(venue: Venue):
        nodes, other = await logon(venue)
        nodes[3].new_order("Q12", "AAPL", Side.BUY, 900, PX + 1)  # altered quantity
        nodes[2].new_order("Q12", "AAPL", Side.BUY, 100, PX + 1)  # off the 0.01 tick
        nodes[0].new_order("Q12", "AAPL", Side.BUY, 100, PX + 1)
        own = await expect(nodes[2], exec_type=ExecType.REJECTED, cl_ord_id="Q12")
        assert own.text.startswith("INVALID_TICK")
        for node in (nodes[0], nodes[1], nodes[3]):
            copy = await expect(node, exec_type=ExecType.REJECTED, cl_ord_id="Q12",
                                ord_rej_reason=own.ord_rej_reason, order_qty=100)
            assert copy.exec_id == own.exec_id + "D"
        await expect(nodes[3], exec_type=ExecType.REJECTED, cl_ord_id="Q12", order_qty=900,
                     ord_rej_reason=OrdRejReason.DUPLICATE_ORDER)
        await quiet(*nodes, other)
        await logout(*nodes, other)

    run(body, tmp_path, config=config())


def test_an_order_nobody_else_sent_times_out_with_a_reject(tmp_path):
    async def body(venue: Venue):
        nodes, other = await logon(venue)
        nodes[3].new_order("Q3", "AAPL", Side.BUY, 100, PX)
        msg = await expect(nodes[3], exec_type=ExecType.REJECTED, cl_ord_id="Q3",
                           ord_rej_reason=OrdRejReason.OTHER)
        assert "no 2 sessions sent this request within 300 ms" in msg.text
        await quiet(*nodes, other)
        assert accepted(venue, "Q3") == []
        # the ClOrdID is not burnt: two copies within the timeout still make the order
        nodes[0].new_order("Q3", "AAPL", Side.BUY, 100, PX)
        nodes[1].new_order("Q3", "AAPL", Side.BUY, 100, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q3")
        await logout(*nodes, other)

    run(body, tmp_path, config=config(timeout_ms=300))


def test_cancels_need_a_quorum_too(tmp_path):
    async def body(venue: Venue):
        nodes, other = await logon(venue)
        for node in nodes[:2]:
            node.new_order("Q4", "AAPL", Side.BUY, 100, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q4")
        nodes[3].cancel("Q4", "C4", "AAPL", Side.BUY)  # alone: nothing happens
        await quiet(*nodes, other)
        assert commands(venue, OrderCancelled, "Q4") == []
        nodes[3].cancel("Q4", "C4", "AAPL", Side.BUY)  # its own second copy counts once
        await quiet(*nodes, other)
        nodes[0].cancel("Q4", "C4", "AAPL", Side.BUY)
        for node in (nodes[3], nodes[0]):  # each agreeing session: its cancel's ClOrdID
            await expect(node, exec_type=ExecType.CANCELED, cl_ord_id="C4",
                         orig_cl_ord_id="Q4", leaves_qty=0)
        for node in nodes[1:3]:  # the others: the drop copy naming the order
            await expect(node, exec_type=ExecType.CANCELED, cl_ord_id="Q4")
        assert len(commands(venue, OrderCancelled, "Q4")) == 1
        nodes[1].cancel("Q4", "C4", "AAPL", Side.BUY)  # late copy: the order is done
        await expect(nodes[1], cl_ord_id="C4", cxl_rej_reason=CxlRejReason.TOO_LATE_TO_CANCEL)
        await quiet(*nodes, other)
        await logout(*nodes, other)

    run(body, tmp_path, config=config())


def test_an_altered_cancel_is_refused_and_a_cancel_nobody_else_sent_times_out(tmp_path):
    async def body(venue: Venue):
        nodes, other = await logon(venue)
        for cl in ("Q5", "Q6"):
            for node in nodes[:2]:
                node.new_order(cl, "AAPL", Side.BUY, 100, PX)
            for node in nodes:
                await expect(node, exec_type=ExecType.NEW, cl_ord_id=cl)
        nodes[3].cancel("Q6", "C5", "AAPL", Side.BUY)  # the faulty node aims at another order
        nodes[0].cancel("Q5", "C5", "AAPL", Side.BUY)
        nodes[1].cancel("Q5", "C5", "AAPL", Side.BUY)
        for node in nodes[:2]:
            await expect(node, exec_type=ExecType.CANCELED, cl_ord_id="C5", orig_cl_ord_id="Q5")
        await expect(nodes[3], exec_type=ExecType.CANCELED, cl_ord_id="Q5")
        await expect(nodes[3], cl_ord_id="C5", orig_cl_ord_id="Q6",
                     cxl_rej_reason=CxlRejReason.DUPLICATE_CL_ORD_ID)
        await expect(nodes[2], exec_type=ExecType.CANCELED, cl_ord_id="Q5")
        assert commands(venue, OrderCancelled, "Q6") == []
        # the same ClOrdID again, now aimed at Q6: refused (a cancel's ClOrdID is used once)
        nodes[3].cancel("Q6", "C5", "AAPL", Side.BUY)
        await expect(nodes[3], cl_ord_id="C5", cxl_rej_reason=CxlRejReason.DUPLICATE_CL_ORD_ID)
        nodes[3].cancel("Q6", "C6", "AAPL", Side.BUY)  # alone, and nobody follows
        msg = await expect(nodes[3], cl_ord_id="C6", cxl_rej_reason=CxlRejReason.OTHER)
        assert "no 2 sessions sent this request" in msg.text
        await quiet(*nodes, other)
        assert commands(venue, OrderCancelled, "Q6") == []
        await logout(*nodes, other)

    run(body, tmp_path, config=config(timeout_ms=1000))


def test_a_cancel_sent_before_its_order_had_a_quorum_waits_for_it(tmp_path):
    """A fast node sends a decided order and at once its decided cancel: the cancel names a
    ClOrdID still held, so it waits (parked) instead of being refused as an unknown order."""

    async def body(venue: Venue):
        nodes, other = await logon(venue)
        nodes[0].new_order("Q7", "AAPL", Side.BUY, 100, PX)
        nodes[0].cancel("Q7", "C7", "AAPL", Side.BUY)
        await quiet(*nodes)
        nodes[1].new_order("Q7", "AAPL", Side.BUY, 100, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q7")
        await quiet(*nodes)  # the parked cancel is now held: one copy
        nodes[1].cancel("Q7", "C7", "AAPL", Side.BUY)
        for node in nodes[:2]:
            await expect(node, exec_type=ExecType.CANCELED, cl_ord_id="C7")
        for node in nodes[2:]:
            await expect(node, exec_type=ExecType.CANCELED, cl_ord_id="Q7")
        await logout(*nodes, other)

    run(body, tmp_path, config=config())


def test_replaces_need_a_quorum_and_are_mapped_when_it_forms(tmp_path):
    async def body(venue: Venue):
        nodes, other = await logon(venue)
        for node in nodes[:2]:
            node.new_order("Q8", "AAPL", Side.BUY, 100, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q8")
        nodes[0].replace("Q8", "R8", "AAPL", Side.BUY, 200, PX - 100)
        await quiet(*nodes)
        assert commands(venue, OrderReplaced, "R8") == []
        nodes[2].replace("Q8", "R8", "AAPL", Side.BUY, 200, PX - 100)
        for node in nodes:
            await expect(node, exec_type=ExecType.REPLACED, cl_ord_id="R8", orig_cl_ord_id="Q8",
                         order_qty=200, price=PX - 100)
        assert len(commands(venue, OrderReplaced, "R8")) == 1
        await logout(*nodes, other)

    run(body, tmp_path, config=config())


def test_a_fill_between_two_copies_of_a_replace_does_not_split_them(tmp_path):
    """The copies are compared with their total OrderQty; the command is mapped when the
    quorum forms, from the CumQty then (100 ordered, 30 filled, replaced to 200: 170 open)."""

    async def body(venue: Venue):
        nodes, other = await logon(venue)
        for node in nodes[:2]:
            node.new_order("Q11", "AAPL", Side.BUY, 100, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q11")
        nodes[0].replace("Q11", "R11", "AAPL", Side.BUY, 200, PX)
        other.new_order("S11", "AAPL", Side.SELL, 30, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.TRADE, cl_ord_id="Q11", cum_qty=30)
        nodes[1].replace("Q11", "R11", "AAPL", Side.BUY, 200, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.REPLACED, cl_ord_id="R11", order_qty=200,
                         cum_qty=30, leaves_qty=170)
        [replaced] = commands(venue, OrderReplaced, "R11")
        assert replaced.qty == 170
        await quiet(*nodes)
        await logout(*nodes, other)

    run(body, tmp_path, config=config())


def test_held_requests_are_bounded_per_session(tmp_path):
    async def body(venue: Venue):
        nodes, other = await logon(venue)
        for i in range(2):  # the faulty node fills its share with orders nobody decided
            nodes[3].new_order(f"J{i}", "AAPL", Side.BUY, 100, PX)
        nodes[3].new_order("J2", "AAPL", Side.BUY, 100, PX)
        msg = await expect(nodes[3], exec_type=ExecType.REJECTED, cl_ord_id="J2",
                           ord_rej_reason=OrdRejReason.OTHER)
        assert "quorum_max_held" in msg.text
        for node in nodes[:2]:  # the others' share is their own
            node.new_order("Q9", "AAPL", Side.BUY, 100, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q9")
        await quiet(*nodes)
        assert accepted(venue, "J0") == accepted(venue, "J2") == []
        await logout(*nodes, other)

    run(body, tmp_path, config=config(max_held=2))


def test_without_a_quorum_the_first_copy_wins_as_before(tmp_path):
    """order_quorum = 1 (the default) is today's behaviour: no gate, the first copy trades."""

    async def body(venue: Venue):
        assert venue.gateway is not None and venue.gateway.gates == {}
        nodes, other = await logon(venue)
        nodes[3].new_order("Q10", "AAPL", Side.SELL, 900, PX)
        for node in nodes:
            await expect(node, exec_type=ExecType.NEW, cl_ord_id="Q10", order_qty=900)
        [order] = accepted(venue, "Q10")
        assert (order.side, order.qty) == (Side.SELL, 900)
        await logout(*nodes, other)

    run(body, tmp_path, config=config().replace("order_quorum = 2", "order_quorum = 1"))
