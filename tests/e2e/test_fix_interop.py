"""Interoperability: QuickFIX (the widely used FIX engine, from PyPI) logs on to a real
``agora exchange serve`` process and trades: two QuickFIX sessions cross an order and both get
the right ExecutionReports; one replaces and cancels its order, and a fill the venue reports while
that session is logged out reaches it after it logs on again, through QuickFIX's own
ResendRequest (a possible duplicate with OrigSendingTime, as QuickFIX insists).

QuickFIX compiles from source when no wheel is cached; ``.ci/run`` installs it when it can and
this test skips, saying so, when it is not importable.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterator

import pytest

from tests.e2e.test_venue_process import start_venue, write_config

fix = pytest.importorskip("quickfix", reason="QuickFIX is not installed (pip install quickfix)")
fix44 = pytest.importorskip("quickfix44")

pytestmark = pytest.mark.e2e


class Recorder(fix.Application):
    """Collects logons and execution reports per session (QuickFIX calls back from its thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.logged_on: set[str] = set()
        self.reports: queue.Queue = queue.Queue()

    def onCreate(self, session_id): ...
    def onLogon(self, session_id):
        self.logged_on.add(session_id.getSenderCompID().getValue())
    def onLogout(self, session_id): ...
    def toAdmin(self, message, session_id): ...
    def fromAdmin(self, message, session_id): ...
    def toApp(self, message, session_id): ...

    def fromApp(self, message, session_id):
        msg_type = fix.MsgType()
        message.getHeader().getField(msg_type)
        if msg_type.getValue() == fix.MsgType_ExecutionReport:
            fields = {}
            for tag in (11, 17, 150, 39, 32, 31, 14, 151, 6, 41, 38, 44):
                if message.isSetField(tag):
                    fields[tag] = message.getField(tag)
            header = message.getHeader()
            for tag in (43, 122):  # PossDupFlag, OrigSendingTime
                if header.isSetField(tag):
                    fields[tag] = header.getField(tag)
            self.reports.put((session_id.getSenderCompID().getValue(), fields))


def settings_text(tmp_path, fix_port: int) -> str:
    common = f"""[DEFAULT]
ConnectionType=initiator
BeginString=FIX.4.4
TargetCompID=AGORA
SocketConnectHost=127.0.0.1
SocketConnectPort={fix_port}
HeartBtInt=30
ReconnectInterval=1
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=N
FileStorePath={tmp_path / 'qf-store'}
FileLogPath={tmp_path / 'qf-log'}
"""
    return common + "".join(f"\n[SESSION]\nSenderCompID={firm}\n" for firm in ("FIRM1", "FIRM2"))


def new_order(cl_ord_id: str, side: str, qty: int, price: str) -> fix.Message:
    order = fix44.NewOrderSingle()
    order.setField(fix.ClOrdID(cl_ord_id))
    order.setField(fix.Side(side))
    order.setField(fix.TransactTime())
    order.setField(fix.OrdType(fix.OrdType_LIMIT))
    order.setField(fix.Symbol("AAPL"))
    order.setField(fix.OrderQty(qty))
    order.setField(fix.Price(float(price)))
    order.setField(fix.HandlInst("1"))
    order.setField(fix.TimeInForce(fix.TimeInForce_DAY))
    return order


def session_id(firm: str) -> fix.SessionID:
    return fix.SessionID("FIX.4.4", firm, "AGORA")


def send(firm: str, message: fix.Message) -> None:
    fix.Session.sendToTarget(message, session_id(firm))


def replace(cl_ord_id: str, orig: str, side: str, qty: int, price: str) -> fix.Message:
    msg = fix44.OrderCancelReplaceRequest()
    for field in (fix.ClOrdID(cl_ord_id), fix.OrigClOrdID(orig), fix.Side(side),
                  fix.TransactTime(), fix.OrdType(fix.OrdType_LIMIT), fix.Symbol("AAPL"),
                  fix.OrderQty(qty), fix.Price(float(price)), fix.HandlInst("1")):
        msg.setField(field)
    return msg


def cancel(cl_ord_id: str, orig: str, side: str, qty: int) -> fix.Message:
    msg = fix44.OrderCancelRequest()
    for field in (fix.ClOrdID(cl_ord_id), fix.OrigClOrdID(orig), fix.Side(side),
                  fix.TransactTime(), fix.Symbol("AAPL"), fix.OrderQty(qty)):
        msg.setField(field)
    return msg


def until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@contextlib.contextmanager
def quickfix_on_a_venue(tmp_path) -> Iterator[Recorder]:
    """A venue process and a QuickFIX initiator logged on to it as FIRM1 and FIRM2 (the
    recorder of what they receive); both stopped afterwards."""
    config, _, _, _ = write_config(tmp_path)
    fix_port = int(next(line.split("=")[1] for line in config.read_text().splitlines()
                        if line.startswith("fix_port")))
    venue = start_venue(config)
    initiator = None
    try:
        recorder = Recorder()
        settings_path = tmp_path / "quickfix.cfg"
        settings_path.write_text(settings_text(tmp_path, fix_port))
        settings = fix.SessionSettings(str(settings_path))
        initiator = fix.SocketInitiator(
            recorder, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
        )
        initiator.start()
        assert until(lambda: recorder.logged_on == {"FIRM1", "FIRM2"})
        yield recorder
    finally:
        if initiator is not None:
            initiator.stop()
        venue.terminate()
        venue.wait(timeout=30)


def reports_until(recorder: Recorder, want: int, timeout: float = 15.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            got.append(recorder.reports.get(timeout=0.2))
    return got


def test_quickfix_initiators_trade_on_the_venue(tmp_path):
    with quickfix_on_a_venue(tmp_path) as recorder:
        send("FIRM1", new_order("S1", fix.Side_SELL, 100, "190.00"))
        (firm, accepted), = reports_until(recorder, 1)
        assert firm == "FIRM1" and accepted[150] == "0" and accepted[39] == "0"
        send("FIRM2", new_order("B1", fix.Side_BUY, 60, "190.00"))
        reports = reports_until(recorder, 3)
        by_firm = {}
        for firm, fields in reports:
            by_firm.setdefault(firm, []).append(fields)
        buyer_trade = next(f for f in by_firm["FIRM2"] if f[150] == "F")
        seller_trade = next(f for f in by_firm["FIRM1"] if f[150] == "F")
        assert (buyer_trade[32], buyer_trade[31], buyer_trade[39]) == ("60", "190", "2")
        assert (seller_trade[32], seller_trade[151], seller_trade[39]) == ("60", "40", "1")
        assert {buyer_trade[11], seller_trade[11]} == {"B1", "S1"}


def test_quickfix_replaces_cancels_and_recovers_a_fill_made_while_logged_out(tmp_path):
    with quickfix_on_a_venue(tmp_path) as recorder:
        send("FIRM1", new_order("S1", fix.Side_SELL, 100, "190.00"))
        (_, accepted), = reports_until(recorder, 1)
        assert (accepted[150], accepted[11]) == ("0", "S1")
        send("FIRM1", replace("S2", "S1", fix.Side_SELL, 80, "191.00"))
        (_, replaced), = reports_until(recorder, 1)
        assert (replaced[150], replaced[39], replaced[11], replaced[41]) == ("5", "0", "S2", "S1")
        assert (replaced[38], replaced[44], replaced[151]) == ("80", "191", "80")

        session = fix.Session.lookupSession(session_id("FIRM1"))
        session.logout("stepping out")
        assert until(lambda: not session.isLoggedOn())
        expected = session.getExpectedTargetNum()  # QuickFIX's next MsgSeqNum from the venue
        send("FIRM2", new_order("B1", fix.Side_BUY, 50, "191.00"))
        reports = reports_until(recorder, 2)
        assert sorted(f[150] for firm, f in reports if firm == "FIRM2") == ["0", "F"]
        assert all(firm == "FIRM2" for firm, _ in reports), "FIRM1 is logged out"

        session.logon()  # the venue's Logon runs ahead of `expected`: QuickFIX asks for a resend
        (firm, fill), = reports_until(recorder, 1)
        assert firm == "FIRM1" and session.getExpectedTargetNum() > expected
        assert (fill[150], fill[39], fill[11], fill[32], fill[31], fill[151]) == (
            "F", "1", "S2", "50", "191", "30")
        assert fill[43] == "Y" and 122 in fill, "a resent report is a possible duplicate"

        send("FIRM1", cancel("C1", "S2", fix.Side_SELL, 80))
        (_, cancelled), = reports_until(recorder, 1)
        assert (cancelled[150], cancelled[39], cancelled[11], cancelled[41]) == (
            "4", "4", "C1", "S2")
        assert (cancelled[14], cancelled[151]) == ("50", "0")
        assert recorder.reports.empty(), "nothing reported twice"
