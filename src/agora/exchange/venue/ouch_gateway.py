"""The venue's binary order entry: NASDAQ OUCH 5.0 over SoupBinTCP 4.00 (asyncio TCP server).

Design notes
------------
* **Accounts.** Each ``[[participants]]`` section's username is one OUCH account (its name:
  the username in upper case); a participant may have several (sections with the same
  participant and limits, own username and password), as firms have several OUCH ports. An
  account sees the orders it entered, with its own UserRefNums and sequence numbers; a kill
  switch is the participant's (every account hears it).
* **Outbound log per account.** At construction the gateway subscribes to the VenueCore with
  ``replay=True``: every event batch of the session (replayed from the journal after a restart,
  then live) goes through :class:`OuchMapper`, whose per-account output is appended to that
  account's log (a ``SessionLog``: the SoupBinTCP packets, recent ones in memory, older ones in
  an unnamed file in the venue's directory). Log index ``i`` is SoupBinTCP sequence ``i + 1``.
  The log is a pure function of the journal, so a client that logs in again (after a drop or a
  venue restart) with its last sequence number + 1 gets exactly what it missed.
* **Group commit.** Orders go to the core with ``submit(group=True)``; the gateway is an *early*
  listener: the mapper follows each command as it is applied (a Cancel in the same read as its
  Enter finds the order), and the encoded messages are staged until the core's flush hook, after
  the journal commit, when they join the logs and each session gets one write per turn.
* **One sender per session.** A session's sender task writes ``log[next - 1]`` while it is
  behind, so replay and live messages share one path and stay in order; the listener only wakes
  it. Unsequenced replies (see ouch_mapping) go through the same task. It sends a Server
  Heartbeat after ``heartbeat_interval`` (1 s) without output and drops the client when nothing
  arrived for ``client_timeout`` (15 s).
* **Login.** Username and password are compared case-insensitively (SoupBinTCP 3.8); bad ones
  get Login Rejected ``A``; a session other than blank or the configured one gets ``S``.
  Requested sequence 0 = the next new message; a number beyond the log is clamped to the next
  new message (the spec leaves it open). **A second login of the same account kicks the
  first session** (its socket is closed): a client reconnecting after a dead link must not be
  locked out until the server notices the old connection died.
* **Malformed input** (framing error, a packet type a client may not send, undecodable OUCH, a
  command the core refuses as malformed) is logged and that connection alone is closed; a
  decodable order with a bad field gets the protocol's Rejected instead (from the engine,
  sequenced, or from the mapper, unsequenced). Other sessions are untouched.
* ``close()`` sends End of Session to every logged-in client, closes them and the server. The
  core's listener stays subscribed (VenueCore has no unsubscribe) but no longer wakes anyone.
* Threading: the core must be driven from the gateway's event loop thread (the listener is
  called inside ``core.submit``); calls from another thread are handed over thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence

from agora.core.clock import Clock, WallClock
from agora.core.errors import MalformedCommand
from agora.core.events import Event
from agora.exchange.venue.config import ParticipantSection, VenueConfig
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.ouch_mapping import OuchMapper, ns_since_midnight
from agora.protocols import ouch50 as ouch
from agora.protocols import soupbintcp as soup
from agora.protocols.errors import ProtocolError
from agora.protocols.soupbintcp_log import SessionLog

log = logging.getLogger(__name__)


_WRITE_THROUGH_MAX = 64 * 1024  # bytes already queued in the transport
_WRITE_THROUGH_MESSAGES = 1024  # a larger backlog is the sender task's (chunks, drain)


def account_name(section: ParticipantSection) -> str:
    """The OUCH account a section's login is: its username, in upper case (SoupBinTCP compares
    usernames case-insensitively)."""
    return section.username.upper()


class _Session:
    """One logged-in connection."""

    def __init__(self, gateway: OuchGateway, participant: str, account: str, conn: _Connection,
                 next_seq: int):
        self.gateway = gateway
        self.participant = participant
        self.account = account
        self.conn = conn
        self.transport: asyncio.Transport = conn.transport
        self.next_seq = next_seq
        self.unsequenced: list[bytes] = []
        self.wake = asyncio.Event()
        self.closed = False
        self.last_received = asyncio.get_running_loop().time()
        self.sender: asyncio.Task | None = None

    def close(self, why: str) -> None:
        if not self.closed:
            log.info("OUCH %s: closing session: %s", self.account, why)
            self.closed = True
            self.transport.close()
            self.wake.set()

    def write_through(self) -> bool:
        """Write new sequenced messages at once when the transport is not backed up.

        The common case (a live, caught-up session) then costs no task switch; a backlog or a
        full send buffer is left to ``run_sender``, which drains with flow control. Order is
        kept: both paths take messages from ``next_seq`` and advance it before any await.
        """
        if self.closed or self.transport.get_write_buffer_size() > _WRITE_THROUGH_MAX:
            return False
        out = self.gateway.logs.get(self.account)
        if out is None:
            return True  # nothing sequenced for this account yet
        if out.count - self.next_seq >= _WRITE_THROUGH_MESSAGES:
            return False
        chunk = self._take_sequenced(out, _WRITE_THROUGH_MESSAGES)
        if chunk:
            self.transport.write(b"".join(chunk))
        return True

    def _take_sequenced(self, out: SessionLog, limit: int) -> list[bytes]:
        """Up to ``limit`` packets from ``next_seq`` on, advancing it (before any await); they
        come as one ``bytes`` in a list (empty if there was nothing to send)."""
        data, count = out.take(self.next_seq - 1, limit)
        self.next_seq += count
        return [data] if count else []

    async def run_sender(self) -> None:
        gw = self.gateway
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        while not self.closed:
            out = gw.log_of(self.account)
            chunk = self._take_sequenced(out, 256)
            while self.unsequenced:
                chunk.append(soup.encode(soup.UnsequencedData(self.unsequenced.pop(0))))
            now = loop.time()
            if not chunk and now - last_sent >= gw.heartbeat_interval:
                chunk.append(soup.encode(soup.ServerHeartbeat()))
            if chunk:
                self.transport.write(b"".join(chunk))
                await self.conn.writable.wait()  # flow control: the client reads slowly
                last_sent = loop.time()
                if self.next_seq <= len(out):
                    continue
            if loop.time() - self.last_received > gw.client_timeout:
                self.close("client heartbeat timeout")
                return
            self.wake.clear()
            if self.next_seq <= len(gw.log_of(self.account)) or self.unsequenced:
                continue
            wait = max(0.0, gw.heartbeat_interval - (loop.time() - last_sent))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), min(wait, gw.heartbeat_interval))


class _Connection(asyncio.Protocol):
    """One TCP connection: SoupBinTCP framing and login, then the session's inbound packets.

    A protocol rather than a stream: inbound data is handled in ``data_received`` itself, so an
    order reaches the core without a task switch.
    """

    def __init__(self, gateway: OuchGateway) -> None:
        self.gateway = gateway
        self.framer = soup.SoupFramer(sender="client")
        self.transport: asyncio.Transport
        self.peer: object = None
        self.session: _Session | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self._login_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        gw = self.gateway
        gw._connections.add(self)
        self._login_timer = asyncio.get_running_loop().call_later(
            gw.login_timeout, self._login_expired)

    def _login_expired(self) -> None:
        if self.session is None:
            log.info("OUCH %s: no login in time", self.peer)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        gw = self.gateway
        try:
            packets = self.framer.feed(data)
            if self.session is None:
                packets = self._login(packets)
                if self.session is None:
                    return
            gw._serve(self.session, packets)
        except ProtocolError as exc:
            log.warning("OUCH %s (%s): malformed input, disconnecting: %s",
                        self.peer, self.session and self.session.account, exc)
            self._end()

    def _login(self, packets: list) -> list:
        """Handle packets before login; what follows an accepted login is returned."""
        for i, packet in enumerate(packets):
            if isinstance(packet, soup.Debug):
                continue
            if not isinstance(packet, soup.LoginRequest):
                raise ProtocolError(f"{type(packet).__name__} before Login Request")
            if self._login_timer is not None:
                self._login_timer.cancel()
            gw = self.gateway
            section = gw._authenticate(packet)
            if isinstance(section, soup.RejectReason):
                log.info("OUCH login of %r from %s rejected: %s",
                         packet.username, self.peer, section)
                self.transport.write(soup.encode(soup.LoginRejected(section)))
                self.transport.close()  # after the buffered reject is written
                return []
            self.session = gw._open_session(section, packet.sequence, self)
            return packets[i + 1 :]
        return []

    def eof_received(self) -> bool:
        try:
            self.framer.close()  # a partial packet at EOF is a truncated packet
        except ProtocolError as exc:
            log.warning("OUCH %s: %s", self.peer, exc)
        return False

    def _end(self) -> None:
        if self.session is not None:
            self.session.close("connection ended")
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.info("OUCH %s: connection lost: %s", self.peer, exc)
        if self._login_timer is not None:
            self._login_timer.cancel()
        self.writable.set()  # release a sender waiting for flow control
        gw = self.gateway
        gw._connections.discard(self)
        session = self.session
        if session is not None:
            session.close("connection ended")
            if gw.sessions.get(session.account) is session:
                del gw.sessions[session.account]
            if session.sender is not None:
                session.sender.cancel()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class OuchGateway:
    """OUCH 5.0 / SoupBinTCP 4.00 server in front of a :class:`VenueCore`."""

    def __init__(
        self,
        core: VenueCore,
        config: VenueConfig | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        heartbeat_interval: float = 1.0,
        client_timeout: float = 15.0,
        login_timeout: float = 30.0,
        clock: Clock | None = None,
        reject_stale_user_ref_num: bool = False,
        log_keep: int = 8192,
    ) -> None:
        self.core = core
        self.config = config or core.config
        self.host = host or self.config.venue.host
        self.requested_port = self.config.venue.ouch_port if port is None else port
        self.session_name = self.config.venue.session
        self.heartbeat_interval = heartbeat_interval
        self.client_timeout = client_timeout
        self.login_timeout = login_timeout
        self.clock = clock or WallClock()
        self.mapper = OuchMapper(reject_stale=reject_stale_user_ref_num)
        for section in self.config.participants:  # before the replay: orders name accounts
            self.mapper.register(section.participant, account_name(section))
        self.logs: dict[str, SessionLog] = {}  # by account
        self._log_directory = self.config.venue.directory
        self._log_keep = log_keep  # messages per account kept in memory (SessionLog.keep)
        self.sessions: dict[str, _Session] = {}  # by account
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._connections: set[_Connection] = set()
        self._closing = False
        self._staged: dict[str, list[bytes]] = {}  # account -> messages awaiting the commit
        core.subscribe(self._on_events, replay=True, flushed=self._on_flushed, early=True)

    # ------------------------------------------------------------------ core side

    def _on_events(self, seq: int, events: Sequence[Event]) -> None:
        """Early listener: the mapper follows the engine now; the messages wait for the commit."""
        staged = self._staged
        encode = ouch.encode
        for account, msg in self.mapper.outbound(events):
            messages = staged.get(account)
            if messages is None:
                staged[account] = [encode(msg)]
            else:
                messages.append(encode(msg))

    def _on_flushed(self) -> None:
        """After each commit: the staged messages join the logs, one write per session."""
        if not self._staged:
            return
        staged, self._staged = self._staged, {}
        if self._closing:  # the logs are closed: nobody can be sent these any more
            return
        logs = self.logs
        for account, messages in staged.items():
            out = logs.get(account)
            if out is None:
                out = self.log_of(account)
            out.extend(soup.sequenced_packets(messages))  # framed once, kept and sent as is
            session = self.sessions.get(account)
            if session is not None:
                self._wake(session)

    def log_of(self, account: str) -> SessionLog:
        """The account's outbound log (an empty one until its first message)."""
        out = self.logs.get(account)
        if out is None:
            out = self.logs[account] = SessionLog(self._log_directory, keep=self._log_keep)
        return out

    def _wake(self, session: _Session) -> None:
        if self._loop is None or threading.get_ident() == self._thread:
            if not session.write_through():
                session.wake.set()
        else:
            self._loop.call_soon_threadsafe(session.wake.set)

    # ------------------------------------------------------------------ server

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._server = await self._loop.create_server(
            self.new_connection, self.host, self.requested_port
        )
        log.info("OUCH gateway listening on %s:%d", self.host, self.port)
        return self.port

    def new_connection(self) -> asyncio.Protocol:
        """The protocol for one accepted connection (``start`` serves these; a benchmark may
        drive one over an in-memory transport)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.get_ident()
        return _Connection(self)

    async def close(self) -> None:
        """End of Session to every client, then close the connections and the server."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                session.transport.write(soup.encode(soup.EndOfSession()))
            session.close("end of session")
        for conn in list(self._connections):
            conn.transport.close()
        senders = [s.sender for s in self.sessions.values() if s.sender is not None]
        for task in senders:
            task.cancel()
        if senders:
            await asyncio.wait(senders, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
        for out in self.logs.values():
            out.close()

    def _authenticate(self, login: soup.LoginRequest) -> ParticipantSection | soup.RejectReason:
        section = next(
            (p for p in self.config.participants
             if p.username.upper() == login.username.upper()
             and p.password.upper() == login.password.upper()),
            None,
        )
        if section is None:
            return soup.RejectReason.NOT_AUTHORIZED
        if section.order_quorum > 1:  # its orders count only when k FIX sessions agree
            log.warning("OUCH login of %r refused: participant %s has order_quorum %d, which "
                        "OUCH order entry would bypass (quorum applies to FIX)",
                        login.username, section.participant, section.order_quorum)
            return soup.RejectReason.NOT_AUTHORIZED
        if login.session not in ("", self.session_name) or self._closing:
            return soup.RejectReason.SESSION_NOT_AVAILABLE
        return section

    def _open_session(self, section: ParticipantSection, requested: int, conn: _Connection
                      ) -> _Session:
        account = account_name(section)
        old = self.sessions.pop(account, None)
        if old is not None:
            old.close("superseded by a new login")
        available = len(self.log_of(account)) + 1
        start = available if requested == 0 or requested > available else requested
        conn.transport.write(soup.encode(soup.LoginAccepted(self.session_name, start)))
        session = _Session(self, section.participant, account, conn, start)
        self.sessions[account] = session
        session.sender = asyncio.get_running_loop().create_task(session.run_sender())
        log.info("OUCH %s (participant %s) logged in from sequence %d", account,
                 section.participant, start)
        return session

    def _serve(self, session: _Session, packets: list) -> None:
        """The packets of one read, in order; orders go to the core as one group commit."""
        session.last_received = self._loop.time() if self._loop else 0.0
        for packet in packets:
            if session.closed:
                return
            kind = type(packet)  # decoded: exact types (an isinstance on a Struct costs 5x)
            if kind is soup.UnsequencedData:
                self._inbound(session, packet.message)
            elif kind is soup.LogoutRequest:
                session.close("logout")
                return
            elif kind is soup.LoginRequest:
                raise ProtocolError("Login Request on a logged-in session")
            # ClientHeartbeat and Debug only refresh last_received

    def _inbound(self, session: _Session, payload: bytes) -> None:
        msg = ouch.decode_inbound(payload)  # OuchError (a ProtocolError) -> disconnect
        participant, account = session.participant, session.account
        now = self.clock.now_ns()
        action = self.mapper.inbound(participant, msg, now, account)
        if action.ignored:
            log.info("OUCH %s: %s ignored: %s", account, type(msg).__name__, action.ignored)
        for command in action.commands:
            try:
                self.core.submit(command, group=True)  # committed and answered at the flush
            except MalformedCommand as exc:
                if not isinstance(msg, ouch.EnterOrder | ouch.ReplaceOrderRequest):
                    raise ProtocolError(f"command refused by the core: {exc}") from exc
                log.warning("OUCH %s: %s refused as malformed: %s", account, msg, exc)
                action.replies.append(ouch.Rejected(
                    ns_since_midnight(now), msg.user_ref_num, ouch.RejectReason.PROCESSING_ERROR,
                    msg.cl_ord_id,
                ))
        replies = action.replies
        pending = self.mapper.unanswered(account, now)
        if pending:
            replies = replies + pending
        if replies:
            session.unsequenced.extend(ouch.encode(r) for r in replies)
            session.wake.set()
