"""FIX 4.4 order-entry gateway: an asyncio TCP acceptor in front of ``VenueCore``.

Design notes
------------
* One ``fix44.Session`` + ``FileSeqStore`` per configured ``fix_comp_id``, in
  ``<store_dir>/<comp id>/``. They live for the gateway's life, across connections, and their
  files survive venue restarts. A connection is bound to a session by its first frame: a
  Logon whose SenderCompID is a configured ``fix_comp_id`` and TargetCompID ours. Anything
  else gets a Logout with the reason (MsgSeqNum 1, not stored) and is closed; so is a second
  connection for a session that is already connected.
* Several sessions may belong to one participant (the replicas of a decision cluster each
  have one). Drop-copy policy: every session of a participant gets all of the participant's
  execution reports (accepts, fills, cancels, replaces), whichever session entered the order;
  rejects and cancel rejects go only to the session that sent the request. Each session keeps
  its own ``FixOrders`` fed with every batch, so OrigClOrdID in a cancel/replace resolves
  against all of the participant's orders, and the venue's duplicate ClOrdID check (per
  participant) refuses a ClOrdID another session already used. Limitation: a cancel's own
  ClOrdID joins the order's chain only in the session that sent it.
* **Group commit.** Requests go to the core with ``submit(group=True)`` and the gateway is an
  *early* listener: each command's events update every session's ``FixOrders`` inside
  ``submit``, before the next request of the read is mapped (a cancel finds the order entered
  just before it; a request's reject is matched to its session's pending request before
  another session's could take its place). What a session must send (reports, the gateway's
  own replies, session Rejects of unparsable requests) waits in its *outbox*, in request order;
  at the end of each read the gateway flushes the core (one journal write for the read's
  requests, the ITCH feed's datagrams) and the flush hook numbers, stores and writes every
  outbox, one store batch (one log flush) and one socket write per session, in that order.
  Nothing is sent before it is committed and stored, and MsgSeqNums follow request order.
  Reports caused by other gateways' orders (fills, drop copies) go out at the flush of those
  orders.
* Reports are produced by the core listener for every committed batch, whether or not the client
  is connected. Connected and ACTIVE: ``Session.send_app`` (numbered, stored, written).
  Otherwise the report is numbered and stored the same way without being written; when the
  client logs on again its Logon reply shows the gap and the client's ResendRequest gets the
  stored reports with PossDupFlag=Y (the session's normal resend path). Nothing is lost and
  nothing is sent twice except as PossDup resends.
* Restart: the gateway subscribes with ``replay=True``; ``FixOrders`` rebuilds ClOrdID/CumQty
  state from the whole session, and only batches after the participant's *watermark* (the last
  venue seq already reported: file ``reported``, raised by the ExecIDs ``<seq>-<k>`` found in
  the stored messages) are reported again. So a crash between the journal commit and the store
  write re-creates the missing reports instead of losing them. A brand-new store starts at the
  venue's current seq (no flood of old history). After ``close`` the listener ignores batches;
  a reopened gateway regenerates them from the replay.
* Actions returned by the session are performed with all Sends first, then Deliveries, so
  replies numbered during a delivery never overtake earlier-numbered session messages.
* Inbound application messages go through ``FixOrders.inbound``: parse errors become a session
  Reject, the rest a venue command or an immediate reply (see fix_mapping).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from agora.core.clock import Clock, WallClock
from agora.core.errors import MalformedCommand
from agora.core.events import Event
from agora.exchange.journal import FsyncPolicy
from agora.exchange.venue.config import VenueConfig
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.fix_mapping import FixOrders, Submit, reject_drop_copy
from agora.protocols.fix44.codec import FixError, FixFramingError, decode, encode
from agora.protocols.fix44.framer import FixFramer
from agora.protocols.fix44.messages import ExecutionReport, FixStruct
from agora.protocols.fix44.session import (
    Deliver,
    Disconnect,
    Role,
    Send,
    Session,
    SessionConfig,
    State,
)
from agora.protocols.fix44.store import CounterFile, FileSeqStore

_EXEC_ID = re.compile(rb"\x0117=(\d+)-\d+\x01")
LOCAL_EXEC_ID = "L"  # placeholder ExecID of the gateway's own reports, see _send_outbox
MAX_LOGON_BYTES = 8192


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class _Member:
    """One FIX session's state (a participant may have several), kept across connections."""

    def __init__(self, participant: str, comp_id: str, directory: Path, gateway: FixGateway):
        self.participant = participant
        self.comp_id = comp_id
        self.store = FileSeqStore(directory, fsync=gateway.fsync)
        cfg = SessionConfig(gateway.comp_id, comp_id, Role.ACCEPTOR,
                            heart_bt_int=gateway.heartbeat_s)
        self.session = Session(cfg, gateway.clock, self.store)
        self.orders = FixOrders(participant)
        self.conn: _Conn | None = None
        self.outbox: list[FixStruct | FixError] = []  # committed or local, awaiting the flush
        self.outbox_seq = 0  # the last venue seq whose reports joined the outbox
        self.watermark_path = directory / "reported"
        fresh = not self.watermark_path.exists() and self.store.next_sender == 1
        self.watermark_file = CounterFile(self.watermark_path, fsync=gateway.fsync)
        if fresh:
            self.watermark = gateway.core.history[-1][0] if gateway.core.history else 0
            self.save_watermark(self.watermark)
        else:
            stored = self.watermark_file.read()
            self.watermark = stored[0] if stored else 0
            for raw in self.store.get_messages(1, self.store.next_sender).values():
                m = _EXEC_ID.search(raw)
                if m:
                    self.watermark = max(self.watermark, int(m.group(1)))

    def save_watermark(self, seq: int) -> None:
        self.watermark_file.write(seq)
        self.watermark = seq


class FixGateway:
    def __init__(
        self,
        core: VenueCore,
        config: VenueConfig,
        store_dir: str | Path,
        *,
        comp_id: str = "AGORA",
        heartbeat_s: int = 30,
        timer_interval_s: float = 0.2,
        clock: Clock | None = None,
    ) -> None:
        self.core = core
        self.config = config
        self.comp_id = comp_id
        self.heartbeat_s = heartbeat_s
        self.timer_interval_s = timer_interval_s
        self.clock = clock or WallClock()
        self.fsync = config.venue.fsync is not FsyncPolicy.NONE
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._timer: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        root = Path(store_dir)
        self.members: dict[str, _Member] = {}
        for p in config.participants:
            if p.fix_comp_id:
                self.members[p.fix_comp_id] = _Member(
                    p.participant, p.fix_comp_id, root / p.fix_comp_id, self)
        self._by_participant: dict[str, list[_Member]] = {}
        for m in self.members.values():
            self._by_participant.setdefault(m.participant, []).append(m)
        core.subscribe(self._on_events, replay=True, flushed=self._on_flushed, early=True)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen (port 0: an ephemeral port); returns the bound port."""
        host = host or self.config.venue.host
        port = self.config.venue.fix_port if port is None else port
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._timer = asyncio.create_task(self._tick())
        return self.port

    async def close(self, timeout: float = 2.0) -> None:
        """Log every connected session out (waiting up to ``timeout``), then stop."""
        if self._server is not None:
            self._server.close()
        for m in self.members.values():
            if m.conn is not None and m.session.state is State.ACTIVE:
                self._perform(m, m.session.logout("venue closing"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(m.conn is not None for m in self.members.values()) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self._closed = True
        for m in self.members.values():
            self._drop(m, m.conn)
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        if self._server is not None:
            await self._server.wait_closed()
        for m in self.members.values():
            m.store.close()
            m.watermark_file.close()

    # ------------------------------------------------------------------ venue -> clients

    def _on_events(self, seq: int, events: Sequence[Event]) -> None:
        """Early listener: the sessions' orders follow the engine now; reports wait for the
        commit in their outboxes (see the module notes)."""
        if self._closed:
            return
        by_participant = self._by_participant
        for participant in FixOrders.participants_of(events):
            members = by_participant.get(participant, ())
            copies: list[tuple[_Member, FixStruct]] = []
            for m in members:
                messages = m.orders.apply(seq, events)
                if messages and seq > m.watermark:
                    m.outbox.extend(messages)
                    m.outbox_seq = seq
                if len(members) > 1:
                    copies.extend((m, copy) for msg in messages
                                  if (copy := reject_drop_copy(msg)) is not None)
            for source, copy in copies:  # a venue verdict: every session of the participant
                for m in members:
                    if m is not source and seq > m.watermark:
                        m.outbox.append(copy)
                        m.outbox_seq = seq

    def _on_flushed(self) -> None:
        for m in self.members.values():
            if m.outbox:
                self._send_outbox(m)

    def _send_outbox(self, m: _Member) -> None:
        """Number, store and (when logged on) write ``m``'s outbox in order, one socket write;
        then raise the watermark past the reports it held."""
        outbox, m.outbox = m.outbox, []
        session = m.session
        live = session.state is State.ACTIVE and m.conn is not None
        out = []
        with m.store.batch():  # one log flush and seqnums write, before the socket write
            for item in outbox:
                if isinstance(item, FixError):
                    if live:
                        out.append(session.reject(item))
                    continue
                if isinstance(item, ExecutionReport) and item.exec_id == LOCAL_EXEC_ID:
                    item = msgspec.structs.replace(item, exec_id=f"L{session.next_sender}")
                if live:
                    out.append(session.send_app(item))
                else:  # not logged on: numbered and stored, resent when it asks
                    session.store_app(item)
        if out and m.conn is not None:
            m.conn.write(b"".join(out))
        if m.outbox_seq > m.watermark:
            m.save_watermark(m.outbox_seq)

    # ------------------------------------------------------------------ clients -> venue

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = _Conn(writer)
        member: _Member | None = None
        pending = bytearray()
        try:
            while not conn.closed:
                data = await reader.read(65536)
                if not data or self._closed:
                    break
                if member is None:
                    pending += data
                    member = self._bind(conn, pending)
                    if member is not None:
                        self._read(member, bytes(pending))
                else:
                    self._read(member, data)
                if not conn.closed:
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if member is not None:
                self._drop(member, conn)
            conn.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    def _read(self, member: _Member, data: bytes) -> None:
        """One read: its requests applied, then one commit, then the reports. The inbound
        MsgSeqNum reaches the disk only after that commit (``store.hold_target``): a crash
        between the two makes the client resend the read, never skips its orders."""
        with member.store.hold_target():
            self._perform(member, member.session.on_bytes(data))
            self.core.flush()
            if member.outbox:  # replies of a read that submitted nothing
                self._send_outbox(member)

    def _bind(self, conn: _Conn, pending: bytearray) -> _Member | None:
        """Identify the session from the first frame; refuse (Logout + close) if we cannot."""
        try:
            frames = FixFramer().feed(bytes(pending))
        except FixFramingError as exc:
            frames = exc.frames
            if not frames:
                conn.close()  # garbage before any Logon: not a FIX peer
                return None
        if not frames:
            if len(pending) > MAX_LOGON_BYTES:
                conn.close()
            return None
        try:
            first = decode(frames[0])
        except FixError:
            conn.close()
            return None
        sender = first.get(49, "")
        m = self.members.get(sender or "")
        problem = None
        if first.msg_type != "A":
            problem = "first message must be Logon"
        elif m is None:
            problem = f"unknown SenderCompID {sender}"
        elif first.get(56) != self.comp_id:
            problem = f"TargetCompID must be {self.comp_id}"
        elif m.conn is not None or m.session.state is not State.DISCONNECTED:
            problem = f"session {sender} is already connected"
        if problem is not None:
            conn.write(encode("5", [(58, problem)], sender=self.comp_id, target=sender or "?",
                              seq_num=1, sending_time=self.clock.now_ns()))
            conn.close()
            return None
        assert m is not None
        m.conn = conn
        m.session.connect()
        return m

    def _drop(self, m: _Member, conn: _Conn | None) -> None:
        if conn is None or m.conn is not conn:
            return
        m.conn = None
        m.session.disconnected()
        conn.close()

    def _perform(self, m: _Member, actions: list) -> None:
        conn = m.conn
        deliveries = []
        for action in actions:
            if isinstance(action, Send):
                if conn is not None:
                    conn.write(action.data)
            elif isinstance(action, Deliver):
                deliveries.append(action.message)
            elif isinstance(action, Disconnect):
                self._drop(m, conn)
        for msg in deliveries:
            self._on_app(m, msg)

    def _on_app(self, m: _Member, msg) -> None:
        if msg.msg_type == "3":
            return  # a session Reject from the client: nothing to do at the application level
        local_id = LOCAL_EXEC_ID  # becomes L<MsgSeqNum> when the reply is numbered
        try:
            result = m.orders.inbound(msg, local_id)
        except FixError as exc:
            m.outbox.append(exc)
            return
        if isinstance(result, Submit):
            try:
                self.core.submit(result.command, group=True)  # its events: _on_events, now
            except MalformedCommand as exc:
                m.outbox.append(m.orders.malformed(result, str(exc), local_id))
            finally:
                m.orders.done(result)
        else:
            m.outbox.append(result)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.timer_interval_s)
            for m in self.members.values():
                if m.conn is not None:
                    self._perform(m, m.session.on_timer())
