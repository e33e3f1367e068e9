"""Interoperability: QuickFIX (the widely used FIX engine, from PyPI) logs on to a real
``agora exchange serve`` process and trades: two QuickFIX sessions cross an order and both get
the right ExecutionReports.

QuickFIX compiles from source when no wheel is cached; ``.ci/run`` installs it when it can and
this test skips, saying so, when it is not importable.
"""

from __future__ import annotations

import contextlib
import queue
import time

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
            for tag in (11, 17, 150, 39, 32, 31, 14, 151, 6):
                if message.isSetField(tag):
                    fields[tag] = message.getField(tag)
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


def reports_until(recorder: Recorder, want: int, timeout: float = 15.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            got.append(recorder.reports.get(timeout=0.2))
    return got


def test_quickfix_initiators_trade_on_the_venue(tmp_path):
    config, _, _, _ = write_config(tmp_path)
    fix_port = int(next(line.split("=")[1] for line in config.read_text().splitlines()
                        if line.startswith("fix_port")))
    venue = start_venue(config)
    recorder = Recorder()
    settings_path = tmp_path / "quickfix.cfg"
    settings_path.write_text(settings_text(tmp_path, fix_port))
    settings = fix.SessionSettings(str(settings_path))
    initiator = fix.SocketInitiator(
        recorder, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    initiator.start()
    try:
        deadline = time.monotonic() + 15
        while recorder.logged_on != {"FIRM1", "FIRM2"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder.logged_on == {"FIRM1", "FIRM2"}

        def send(firm: str, message: fix.Message) -> None:
            fix.Session.sendToTarget(message, fix.SessionID("FIX.4.4", firm, "AGORA"))

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
    finally:
        initiator.stop()
        venue.terminate()
        venue.wait(timeout=30)
