"""FixClient: an asyncio FIX 4.4 initiator for agora's (or any) FIX order-entry venue.

Design notes
------------
* The protocol work is the pure ``fix44.Session`` (initiator role); this class only moves bytes
  between it and a socket, ticks its timer, and performs its actions. Gap detection,
  ResendRequest, PossDup resends and SequenceReset-GapFill are therefore the session's own.
* With ``store_dir`` the sequence numbers (and sent application messages, for the venue's
  resend requests) are a ``FileSeqStore``: a new ``FixClient`` on the same directory resumes
  where the last one stopped, so reports produced while it was away arrive through the
  session's resend (PossDupFlag=Y). Without it a ``MemorySeqStore`` lives as long as the object
  (reconnecting the same object also resumes).
* Application messages received (ExecutionReport, OrderCancelReject, BusinessMessageReject,
  and session Rejects) are parsed into typed structs and queued for ``receive``; ``received``
  keeps every raw delivered ``FixMessage`` (with its PossDupFlag) for inspection.
* Prices are Price(4) ints and sides/TIFs are agora's enums; nothing here is a float.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agora.core.clock import Clock, WallClock
from agora.core.enums import OrderType, Side, TimeInForce
from agora.protocols.fix44 import enums as fx
from agora.protocols.fix44.codec import FixError, FixFramingError, FixMessage, decode
from agora.protocols.fix44.framer import FixFramer
from agora.protocols.fix44.messages import (
    FixStruct,
    NewOrderSingle,
    OrderCancelReplaceRequest,
    OrderCancelRequest,
    OrderStatusRequest,
    from_message,
)
from agora.protocols.fix44.session import (
    Deliver,
    Disconnect,
    LoggedOn,
    Role,
    Send,
    Session,
    SessionConfig,
    State,
)
from agora.protocols.fix44.store import FileSeqStore, MemorySeqStore

_SIDE = {Side.BUY: fx.Side.BUY, Side.SELL: fx.Side.SELL}
_TIF = {TimeInForce.DAY: fx.TimeInForce.DAY, TimeInForce.GTC: fx.TimeInForce.GOOD_TILL_CANCEL,
        TimeInForce.IOC: fx.TimeInForce.IMMEDIATE_OR_CANCEL,
        TimeInForce.FOK: fx.TimeInForce.FILL_OR_KILL}


class FixClientError(ConnectionError):
    """Logon refused, connection lost, or a wait timed out."""


class FixClient:
    def __init__(
        self,
        host: str,
        port: int,
        sender_comp_id: str,
        target_comp_id: str = "AGORA",
        *,
        store_dir: str | Path | None = None,
        heartbeat_s: int = 30,
        timer_interval_s: float = 0.2,
        clock: Clock | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.clock = clock or WallClock()
        self.store: MemorySeqStore = (FileSeqStore(store_dir, fsync=False) if store_dir
                                      else MemorySeqStore())
        cfg = SessionConfig(sender_comp_id, target_comp_id, Role.INITIATOR,
                            heart_bt_int=heartbeat_s)
        self.session = Session(cfg, self.clock, self.store)
        self.timer_interval_s = timer_interval_s
        self.received: list[FixMessage] = []
        self.logout_text: str | None = None
        self._queue: asyncio.Queue[FixStruct] = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task] = []
        self._logged_on: asyncio.Event = asyncio.Event()
        self._gone: asyncio.Event = asyncio.Event()
        self._gone_reason = ""

    @property
    def logged_on(self) -> bool:
        return self.session.state is State.ACTIVE

    # ------------------------------------------------------------------ connection

    async def connect(self, timeout: float = 5.0) -> None:
        """Open the socket and log on; raises ``FixClientError`` if the venue refuses."""
        reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout)
        self._logged_on.clear()
        self._gone.clear()
        self.logout_text = None
        self._perform(self.session.connect())
        self._tasks = [asyncio.create_task(self._read(reader)),
                       asyncio.create_task(self._tick())]
        waits = [asyncio.create_task(self._logged_on.wait()),
                 asyncio.create_task(self._gone.wait())]
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for t in waits:
            t.cancel()
        if not self._logged_on.is_set():
            await self.close()
            reason = self.logout_text or self._gone_reason or "logon timed out"
            raise FixClientError(f"logon failed: {reason}")

    async def logout(self, text: str | None = None, timeout: float = 5.0) -> None:
        """Graceful Logout; closes the socket when the venue answers (or after ``timeout``)."""
        if self.session.state is State.ACTIVE:
            self._perform(self.session.logout(text))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone.wait(), timeout)
        await self.close()

    async def close(self) -> None:
        """Drop the connection without a Logout (sequence numbers are kept)."""
        writer = self._writer
        self._disconnect("closed by client")
        if writer is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await t
        self._tasks = []

    def close_store(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ order entry

    def send(self, msg: FixStruct | tuple[str, list[tuple[int, object]]]) -> int:
        """Send an application message (typed, or raw ``(MsgType, fields)``); its MsgSeqNum."""
        if self._writer is None or self.session.state is not State.ACTIVE:
            raise FixClientError("not logged on")
        seq = self.session.next_sender
        self._writer.write(self.session.send_app(msg))
        return seq

    def new_order(self, cl_ord_id: str, symbol: str, side: Side, qty: int, price: int | None = None,
                  *, order_type: OrderType = OrderType.LIMIT, tif: TimeInForce = TimeInForce.DAY,
                  post_only: bool = False, max_floor: int | None = None,
                  min_qty: int | None = None) -> int:
        market = order_type is OrderType.MARKET
        return self.send(NewOrderSingle(
            cl_ord_id=cl_ord_id, symbol=symbol, side=_SIDE[side], order_qty=qty,
            ord_type=fx.OrdType.MARKET if market else fx.OrdType.LIMIT,
            price=None if market else price, time_in_force=_TIF[tif],
            exec_inst="6" if post_only else None, max_floor=max_floor, min_qty=min_qty,
            handl_inst="1", transact_time=self.clock.now_ns()))

    def cancel(self, orig_cl_ord_id: str, cl_ord_id: str, symbol: str, side: Side) -> int:
        return self.send(OrderCancelRequest(
            orig_cl_ord_id=orig_cl_ord_id, cl_ord_id=cl_ord_id, symbol=symbol, side=_SIDE[side],
            transact_time=self.clock.now_ns()))

    def replace(self, orig_cl_ord_id: str, cl_ord_id: str, symbol: str, side: Side, qty: int,
                price: int, *, max_floor: int | None = None) -> int:
        """``qty`` is the new total OrderQty (including what has already executed)."""
        return self.send(OrderCancelReplaceRequest(
            orig_cl_ord_id=orig_cl_ord_id, cl_ord_id=cl_ord_id, symbol=symbol, side=_SIDE[side],
            order_qty=qty, price=price, ord_type=fx.OrdType.LIMIT, max_floor=max_floor,
            handl_inst="1", transact_time=self.clock.now_ns()))

    def status(self, cl_ord_id: str, symbol: str, side: Side, req_id: str | None = None) -> int:
        return self.send(OrderStatusRequest(cl_ord_id=cl_ord_id, symbol=symbol,
                                            side=_SIDE[side], ord_status_req_id=req_id))

    async def receive(self, timeout: float = 5.0) -> FixStruct:
        """The next application message (typed); ``TimeoutError`` if none arrives in time."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    def pending(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ internals

    async def _read(self, reader: asyncio.StreamReader) -> None:
        peek = FixFramer()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.session.state is not State.ACTIVE:
                    self._peek_logout(peek, data)
                self._perform(self.session.on_bytes(data))
                if self._writer is None:
                    return
        except (ConnectionError, OSError) as exc:
            self._gone_reason = str(exc)
        self._disconnect(self._gone_reason or "connection closed by venue")

    def _peek_logout(self, framer: FixFramer, data: bytes) -> None:
        """Before logon, remember a Logout's Text (why the venue refused us)."""
        try:
            frames = framer.feed(data)
        except FixFramingError as exc:
            frames = exc.frames
        for frame in frames:
            with contextlib.suppress(FixError):
                msg = decode(frame)
                if msg.msg_type == "5":
                    self.logout_text = msg.get(58, "")

    async def _tick(self) -> None:
        while self._writer is not None:
            await asyncio.sleep(self.timer_interval_s)
            self._perform(self.session.on_timer())

    def _perform(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self._writer is not None:
                    self._writer.write(action.data)
            elif isinstance(action, Deliver):
                msg = action.message
                self.received.append(msg)
                try:
                    self._queue.put_nowait(from_message(msg))
                except FixError as exc:
                    if self._writer is not None and self.session.state is State.ACTIVE:
                        self._writer.write(self.session.reject(exc))
            elif isinstance(action, LoggedOn):
                self._logged_on.set()
            elif isinstance(action, Disconnect):
                self._gone_reason = action.reason
                self._disconnect(action.reason)

    def _disconnect(self, reason: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.session.state is not State.DISCONNECTED:
            self.session.disconnected()
        self._gone_reason = self._gone_reason or reason
        self._gone.set()
