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
* **Order quorum** (a participant's ``order_quorum = k > 1``; :mod:`.quorum` has the rules).
  Its commands are not submitted but offered to the participant's ``QuorumGate`` (the request
  leaves ``pending`` while held). When k sessions sent equal commands under a ClOrdID, the
  requests are mapped again against the current state (a cancel's order may have filled
  meanwhile) and the command is submitted once, through the normal path: risk, journal,
  matching, reports and drop copies to every session. A new order's venue reject is answered to
  the first agreeing session and reaches the others as the usual drop copy; each agreeing session
  of a cancel / replace gets its own answer (and its cancel's ClOrdID in the report). Each
  conflicting copy's session gets a duplicate refusal (ExecutionReport 150=8 with OrdRejReason 6,
  or OrderCancelReject 102=6, Text saying the quorum agreed on different content), and the venue
  logs it (logger ``agora.exchange.venue.fix_gateway``, warning, naming the session) as evidence
  of a faulty node; so is a session contradicting its own held copy. The timer refuses copies
  that found no quorum in ``quorum_timeout_ms`` (OrdRejReason / CxlRejReason 99, Text "quorum:
  no k sessions sent this request within T ms"); a session holding ``quorum_max_held`` requests
  has the next refused (99, with the reason). A new order or replace whose ClOrdID the engine has
  already seen is submitted at once and refused as a duplicate ClOrdID exactly as without a
  quorum; a cancel whose ClOrdID a quorum already used is refused (102=6). A cancel / replace
  naming a held ClOrdID is parked until that ClOrdID leaves the gate. Held copies are never
  journaled: a venue crash loses them (the decision nodes re-send unresolved commands on
  logon). Sequence numbers are untouched: a held request was delivered like any other. The OUCH
  gateway refuses such a participant's logins (one OUCH session would enter orders alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from agora.core.clock import Clock, WallClock
from agora.core.errors import MalformedCommand
from agora.core.events import CancelOrder, Event, NewOrder, ReplaceOrder
from agora.exchange.journal import FsyncPolicy
from agora.exchange.venue.config import VenueConfig
from agora.exchange.venue.core import VenueCore
from agora.exchange.venue.fix_mapping import FixOrders, Submit, reject_drop_copy
from agora.exchange.venue.quorum import Copy, QuorumGate, Reached, Refused
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
WATERMARK_BLOCK = 256  # stored messages a restart reads back at a time to find its watermark
log = logging.getLogger(__name__)


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
            self.watermark = gateway.core.published_seq
            self.save_watermark(self.watermark)
        else:
            stored = self.watermark_file.read()
            self.watermark = max(stored[0] if stored else 0, self._last_reported())

    def _last_reported(self) -> int:
        """The venue seq of the last report in the resend log (0: none), read back from its
        end a block at a time: reports are stored in venue-seq order (an outbox holds one
        flush's batches in order), so the last that names a venue seq names the highest, and
        a restart reads the tail of a long session's log, not all of it."""
        store = self.store
        end = store.next_sender - 1
        while end >= store.first_stored:
            begin = max(store.first_stored, end - WATERMARK_BLOCK + 1)
            block = store.get_messages(begin, end)
            for seq in sorted(block, reverse=True):
                m = _EXEC_ID.search(block[seq])
                if m:
                    return int(m.group(1))
            end = begin - 1
        return 0

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
        self.gates: dict[str, QuorumGate] = {}  # participants with order_quorum > 1
        for p in config.participants:
            if p.order_quorum > 1 and p.participant not in self.gates:
                self.gates[p.participant] = QuorumGate(
                    p.participant, p.order_quorum, config.venue.quorum_timeout_ms * 1_000_000,
                    config.venue.quorum_max_held)
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
        for participant in FixOrders.participants_of(events, by_participant):
            members = by_participant[participant]
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
        now = self.clock.now_ns()  # the SendingTime of the outbox
        with m.store.batch():  # one log flush and seqnums write, before the socket write
            for item in outbox:
                if isinstance(item, FixError):
                    if live:
                        out.append(session.reject(item))
                    continue
                if type(item) is ExecutionReport and item.exec_id == LOCAL_EXEC_ID:
                    item = msgspec.structs.replace(item, exec_id=f"L{session.next_sender}")
                if live:
                    out.append(session.send_app(item, now))
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
            self._flush()

    def _flush(self) -> None:
        """Commit and publish what is pending, then send the replies left in any outbox (a read
        that submitted nothing; a quorum's verdict reaches other sessions too)."""
        self.core.flush()
        for m in self.members.values():
            if m.outbox:
                self._send_outbox(m)

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
            kind = type(action)  # exact types: a type test, not an isinstance on a Struct
            if kind is Send:
                if conn is not None:
                    conn.write(action.data)
            elif kind is Deliver:
                deliveries.append(action.message)
            elif kind is Disconnect:
                self._drop(m, conn)
        for msg in deliveries:
            self._on_app(m, msg)

    def _on_app(self, m: _Member, msg, *, park: bool = True) -> None:
        if msg.msg_type == "3":
            return  # a session Reject from the client: nothing to do at the application level
        gate = self.gates.get(m.participant)
        if gate is not None and park and self._park(gate, m, msg):
            return
        local_id = LOCAL_EXEC_ID  # becomes L<MsgSeqNum> when the reply is numbered
        try:
            result = m.orders.inbound(msg, local_id)
        except FixError as exc:
            m.outbox.append(exc)
            return
        if type(result) is not Submit:
            m.outbox.append(result)
        elif gate is None:
            self._submit(m, result)
        else:
            self._offer(gate, m, result)

    def _submit(self, m: _Member, sub: Submit) -> None:
        try:
            self.core.submit(sub.command, group=True)  # its events: _on_events, now
        except MalformedCommand as exc:
            m.outbox.append(m.orders.malformed(sub, str(exc), LOCAL_EXEC_ID))
        finally:
            m.orders.done(sub)

    # ------------------------------------------------------------------ order quorum

    def _park(self, gate: QuorumGate, m: _Member, msg) -> bool:
        """A cancel / replace naming a ClOrdID still held waits for it (quorum module)."""
        if msg.msg_type not in ("F", "G"):
            return False
        target = msg.get(41)
        if not target or not gate.is_held(target):
            return False
        return gate.park(target, m.comp_id, msg, self.clock.now_ns()) is None  # full: map now

    def _offer(self, gate: QuorumGate, m: _Member, sub: Submit) -> None:
        command = sub.command
        cl = command.client_order_id
        content = _content(command, m.orders.pending[cl])
        if not isinstance(command, CancelOrder) and self._used(m.participant, cl):
            self._late(gate, m, cl, content)
            self._submit(m, sub)  # the engine refuses a used ClOrdID, exactly as without quorum
            return
        request = m.orders.take(sub)
        if cl in gate.released:  # a cancel's ClOrdID (the engine does not check those)
            self._late(gate, m, cl, content)
            m.outbox.append(m.orders.refusal(
                request, f"ClOrdID {cl} already used by a request the quorum accepted",
                LOCAL_EXEC_ID, duplicate=True))
            return
        verdict = gate.offer(Copy(m.comp_id, request, content), self.clock.now_ns())
        if isinstance(verdict, Refused):
            if verdict.conflict:
                log.warning("FIX quorum %s: session %s sent two different requests under "
                            "ClOrdID %s (evidence of a faulty node): %s", m.participant,
                            m.comp_id, cl, command)
            m.outbox.append(m.orders.refusal(request, verdict.text, LOCAL_EXEC_ID,
                                             duplicate=verdict.conflict))
        elif isinstance(verdict, Reached):
            self._reached(gate, cl, verdict)

    def _used(self, participant: str, cl_ord_id: str) -> bool:
        p = self.core.engine.participants.get(participant)
        return p is not None and cl_ord_id in p.client_order_ids

    def _late(self, gate: QuorumGate, m: _Member, cl: str, content) -> None:
        accepted = gate.released.get(cl)
        if accepted is not None and accepted != content:
            log.warning("FIX quorum %s: session %s sent %s under ClOrdID %s after the quorum "
                        "accepted %s (evidence of a faulty node)", m.participant, m.comp_id,
                        content, cl, accepted)

    def _reached(self, gate: QuorumGate, cl: str, verdict: Reached) -> None:
        """Submit the agreed command once (mapped again now: the order may have moved while
        the copies gathered), refuse every conflicting copy, then map what was parked on it."""
        mapped = []
        for c in verdict.agreeing:
            mem = self.members[c.session]
            mapped.append((mem, c.request, mem.orders.request(c.request, LOCAL_EXEC_ID)))
        if all(isinstance(r, Submit) and _content(r.command, request) == verdict.command
               for _, request, r in mapped):
            command = mapped[0][2].command  # type: ignore[union-attr]
            if isinstance(command, NewOrder):  # one session answers; the rest get drop copies
                for mem, _, r in mapped[1:]:
                    mem.orders.done(r)
            try:
                self.core.submit(command, group=True)
            except MalformedCommand as exc:
                for mem, request, r in mapped:
                    mem.orders.done(r)
                    mem.outbox.append(mem.orders.refusal(request, str(exc), LOCAL_EXEC_ID))
            else:
                for mem, _, r in mapped:
                    mem.orders.done(r)
        else:  # e.g. the order filled or was replaced meanwhile: a reply, or refused
            for mem, request, r in mapped:
                if isinstance(r, Submit):
                    mem.orders.done(r)
                    r = mem.orders.refusal(request, "quorum: the order changed while the "
                                           "copies gathered; send the request again",
                                           LOCAL_EXEC_ID)
                mem.outbox.append(r)
        for c in verdict.conflicting:
            mem = self.members[c.session]
            log.warning("FIX quorum %s: session %s sent %s under ClOrdID %s; the quorum of %d "
                        "(%s) accepted %s (evidence of a faulty node)", gate.participant,
                        c.session, c.command, cl, gate.quorum,
                        ",".join(a.session for a in verdict.agreeing), verdict.command)
            mem.outbox.append(mem.orders.refusal(
                c.request, f"quorum: {gate.quorum} sessions agreed on different content for "
                f"ClOrdID {cl}", LOCAL_EXEC_ID, duplicate=True))
        self._unpark(gate, gate.unpark(cl))

    def _unpark(self, gate: QuorumGate, items) -> None:
        for session, msg in items:
            self._on_app(self.members[session], msg, park=False)

    def _expire(self, gate: QuorumGate) -> None:
        due = gate.expire(self.clock.now_ns())
        ms = self.config.venue.quorum_timeout_ms
        for cl, c, disputed in due.copies:
            mem = self.members[c.session]
            (log.warning if disputed else log.info)(
                "FIX quorum %s: %s from session %s under ClOrdID %s found no quorum of %d in "
                "%d ms%s", gate.participant, c.command, c.session, cl, gate.quorum, ms,
                " (copies disagreed)" if disputed else "")
            mem.outbox.append(mem.orders.refusal(
                c.request, f"quorum: no {gate.quorum} sessions sent this request within {ms} ms",
                LOCAL_EXEC_ID))
        self._unpark(gate, due.parked)
        if due.copies or due.parked:
            self._flush()

    async def _tick(self) -> None:
        """Quorum expiry and every session's timers. A failure is logged with its traceback and
        the timer carries on: an exception here would otherwise end the task, and with it every
        heartbeat and quorum timeout of the venue's life, without a word until shutdown."""
        while True:
            await asyncio.sleep(self.timer_interval_s)
            for gate in self.gates.values():
                try:
                    self._expire(gate)
                except Exception:
                    log.exception("FIX quorum %s: expiry failed", gate.participant)
            for m in self.members.values():
                if m.conn is not None:
                    try:
                        self._perform(m, m.session.on_timer())
                    except Exception:
                        log.exception("FIX %s: session timer failed", m.comp_id)


def _content(command, request):
    """What copies of a request are compared by: the command it maps to, except that a replace
    counts the request's total OrderQty, not the leaves mapped from the current CumQty (a fill
    between two copies must not split them)."""
    if isinstance(command, ReplaceOrder):
        return msgspec.structs.replace(command, qty=request.order_qty)
    return command
