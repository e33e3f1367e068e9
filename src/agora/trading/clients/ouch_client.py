"""An asyncio OUCH 5.0 / SoupBinTCP 4.00 order-entry client.

Design notes
------------
* ``connect()`` opens the socket, logs in and starts two tasks: a reader that decodes every
  packet into the receive queue, and a heartbeat task that sends a Client Heartbeat whenever the
  client sent nothing for ``heartbeat_interval`` (SoupBinTCP: 1 s).
* Received items are :class:`Received` ``(seq, message)``: ``seq`` is the SoupBinTCP sequence
  number of a Sequenced Data message, ``None`` for Unsequenced Data (replies the venue cannot
  replay: Account Query, Mass Cancel responses, gateway-level rejects). ``recv(timeout)`` or
  ``async for`` consume them; End of Session / a lost connection end the stream
  (``recv`` raises ``ConnectionError`` once the queue is drained).
* ``last_seq`` is the number of the last sequenced message *received* (put in the queue). A
  later ``connect()`` without an explicit ``sequence`` asks for ``last_seq + 1``, so a reconnect
  resumes exactly: nothing missed, nothing twice. Server silence for ``server_timeout`` is a
  dead link: the client closes the socket (reconnecting is the caller's decision).
* UserRefNums: ``next_user_ref_num`` starts at 1 and each Enter/Replace takes the next one; a
  client restarting mid-day should set it from ``account_query()``'s NextUserRefNum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import NamedTuple

from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup
from agora.protocols.errors import ProtocolError

log = logging.getLogger(__name__)


class Received(NamedTuple):
    seq: int | None  # None: unsequenced
    message: ouch.OuchMessage


class LoginRejectedError(ConnectionError):
    def __init__(self, reason: soup.RejectReason) -> None:
        super().__init__(f"login rejected: {reason.name} ({reason.value})")
        self.reason = reason


_END = object()


class OuchClient:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        session: str = "",
        heartbeat_interval: float = 1.0,
        server_timeout: float = 15.0,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password, self.session = username, password, session
        self.heartbeat_interval = heartbeat_interval
        self.server_timeout = server_timeout
        self.last_seq = 0
        self.next_user_ref_num = 1
        self.end_of_session = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._last_sent = 0.0
        self._last_received = 0.0
        self.connected = False

    # ------------------------------------------------------------------ session

    async def connect(self, sequence: int | None = None, *, timeout: float = 5.0) -> int:
        """Log in; returns the sequence number the server will send next.

        ``sequence``: the next sequence number wanted; default ``last_seq + 1``; 0 = only new
        messages. Raises :class:`LoginRejectedError` or ``ConnectionError``.
        """
        await self.close(logout=False)
        self.end_of_session = False
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout
        )
        want = self.last_seq + 1 if sequence is None else sequence
        writer.write(soup.encode(soup.LoginRequest(
            self.username, self.password, self.session, want
        )))
        framer = soup.SoupFramer(sender="server")
        try:
            accepted, rest = await asyncio.wait_for(self._await_login(reader, framer), timeout)
        except BaseException:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            raise
        self._reader, self._writer = reader, writer
        self.connected = True
        self.last_seq = accepted.sequence - 1
        loop = asyncio.get_running_loop()
        self._last_sent = self._last_received = loop.time()
        self._tasks = [
            asyncio.create_task(self._read_loop(framer, rest)),
            asyncio.create_task(self._heartbeat_loop()),
        ]
        return accepted.sequence

    @staticmethod
    async def _await_login(reader, framer):
        while True:
            data = await reader.read(4096)
            if not data:
                raise ConnectionError("connection closed before login completed")
            packets = framer.feed(data)
            for i, packet in enumerate(packets):
                if isinstance(packet, soup.LoginAccepted):
                    return packet, packets[i + 1 :]
                if isinstance(packet, soup.LoginRejected):
                    raise LoginRejectedError(packet.reason)

    async def _read_loop(self, framer: soup.SoupFramer, pending: list) -> None:
        loop = asyncio.get_running_loop()
        try:
            packets = pending
            while True:
                for packet in packets:
                    if isinstance(packet, soup.SequencedData):
                        self.last_seq += 1
                        msg = ouch.decode_outbound(packet.message)
                        self._queue.put_nowait(Received(self.last_seq, msg))
                    elif isinstance(packet, soup.UnsequencedData):
                        msg = ouch.decode_outbound(packet.message)
                        self._queue.put_nowait(Received(None, msg))
                    elif isinstance(packet, soup.EndOfSession):
                        self.end_of_session = True
                        return
                assert self._reader is not None
                data = await self._reader.read(65536)
                if not data:
                    return
                self._last_received = loop.time()
                packets = framer.feed(data)
        except (ConnectionError, OSError, ProtocolError) as exc:
            log.warning("OUCH client %s: %s", self.username, exc)
        finally:
            self.connected = False
            self._queue.put_nowait(_END)
            if self._writer is not None:
                self._writer.close()

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError, OSError):
            while self.connected:
                now = loop.time()
                if now - self._last_received > self.server_timeout:
                    log.warning("OUCH client %s: server silent, closing", self.username)
                    if self._writer is not None:
                        self._writer.close()
                    return
                idle = now - self._last_sent
                if idle >= self.heartbeat_interval:
                    self._write(soup.encode(soup.ClientHeartbeat()))
                    idle = 0.0
                await asyncio.sleep(min(self.heartbeat_interval - idle, self.heartbeat_interval))

    def _write(self, data: bytes) -> None:
        if self._writer is None or not self.connected:
            raise ConnectionError("not connected")
        self._writer.write(data)
        self._last_sent = asyncio.get_running_loop().time()

    async def close(self, *, logout: bool = True) -> None:
        """Logout (optional) and close the socket; queued messages stay readable."""
        writer = self._writer
        if writer is not None:
            if logout and self.connected:
                with contextlib.suppress(Exception):
                    writer.write(soup.encode(soup.LogoutRequest()))
                    await writer.drain()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        self._writer = None
        self.connected = False

    def abort(self) -> None:
        """Drop the connection without a logout (to test or simulate a broken link)."""
        if self._writer is not None:
            self._writer.transport.abort()

    # ------------------------------------------------------------------ receiving

    async def recv(self, timeout: float | None = None) -> Received:
        async def get() -> Received:
            while True:
                item = await self._queue.get()
                if item is not _END:
                    return item
                if not self.connected:
                    self._queue.put_nowait(_END)  # stay ended for later calls
                    raise ConnectionError("session ended")
                # an end marker of an earlier connection: skip it

        return await asyncio.wait_for(get(), timeout)

    def __aiter__(self):
        return self

    async def __anext__(self) -> Received:
        try:
            return await self.recv()
        except ConnectionError:
            raise StopAsyncIteration from None

    # ------------------------------------------------------------------ order entry

    async def send(self, msg: ouch.OuchMessage) -> None:
        self._write(soup.encode(soup.UnsequencedData(ouch.encode(msg))))
        assert self._writer is not None
        await self._writer.drain()

    def _take_ref(self, user_ref_num: int | None) -> int:
        urn = self.next_user_ref_num if user_ref_num is None else user_ref_num
        self.next_user_ref_num = max(self.next_user_ref_num, urn + 1)
        return urn

    async def enter_order(
        self,
        side: str,
        quantity: int,
        symbol: str,
        price: int,
        *,
        time_in_force: str = ouch.TimeInForce.DAY,
        display: str = ouch.Display.VISIBLE,
        cl_ord_id: str = "",
        user_ref_num: int | None = None,
        min_qty: int | None = None,
        max_floor: int | None = None,
        post_only: bool = False,
        capacity: str = ouch.Capacity.AGENCY,
    ) -> int:
        """Send an Enter Order; returns its UserRefNum. ``price`` is Price(4)."""
        urn = self._take_ref(user_ref_num)
        options = ouch.Options(
            min_qty=min_qty, max_floor=max_floor, post_only="P" if post_only else None
        )
        await self.send(ouch.EnterOrder(
            urn, ouch.Side(side), quantity, symbol, price, ouch.TimeInForce(time_in_force),
            ouch.Display(display), ouch.Capacity(capacity), ouch.IntermarketSweep.NOT_ELIGIBLE,
            ouch.CrossType.CONTINUOUS, cl_ord_id, options,
        ))
        return urn

    async def cancel(self, user_ref_num: int, quantity: int = 0) -> None:
        """Cancel (quantity 0) or reduce the order to an intended total size of ``quantity``."""
        await self.send(ouch.CancelOrderRequest(user_ref_num, quantity))

    async def replace(
        self,
        orig_user_ref_num: int,
        quantity: int,
        price: int,
        *,
        time_in_force: str = ouch.TimeInForce.DAY,
        display: str = ouch.Display.VISIBLE,
        cl_ord_id: str = "",
        user_ref_num: int | None = None,
        max_floor: int | None = None,
    ) -> int:
        """Replace: ``quantity`` is the total liable including executed shares."""
        urn = self._take_ref(user_ref_num)
        await self.send(ouch.ReplaceOrderRequest(
            orig_user_ref_num, urn, quantity, price, ouch.TimeInForce(time_in_force),
            ouch.Display(display), ouch.IntermarketSweep.NOT_ELIGIBLE, cl_ord_id,
            ouch.Options(max_floor=max_floor),
        ))
        return urn

    async def mass_cancel(self, symbol: str = "", firm: str = "") -> int:
        urn = self._take_ref(None)
        await self.send(ouch.MassCancelRequest(urn, firm, symbol))
        return urn

    async def disable_order_entry(self, firm: str = "") -> int:
        urn = self._take_ref(None)
        await self.send(ouch.DisableOrderEntryRequest(urn, firm))
        return urn

    async def enable_order_entry(self, firm: str = "") -> int:
        urn = self._take_ref(None)
        await self.send(ouch.EnableOrderEntryRequest(urn, firm))
        return urn

    async def account_query(self) -> None:
        """Ask for NextUserRefNum; the response arrives (unsequenced) through ``recv``."""
        await self.send(ouch.AccountQueryRequest())
