"""FIX 4.4 session layer as a pure state machine: bytes and timer ticks in, actions out.

Design notes
------------
* No sockets and no wall clock: the owner feeds received bytes (``on_bytes``) or decoded
  messages (``on_message``), calls ``on_timer`` periodically, and performs the returned actions
  in order: ``Send`` (write bytes), ``Deliver`` (an application message, or a Reject received,
  for the application), ``Disconnect`` (close the transport, then call ``disconnected``),
  plus informational ``LoggedOn`` / ``Ignored``. Time comes from the injected ``Clock``.
* Sequence numbers live in a store (``store.FileSeqStore`` for durability). Every sent message
  consumes the next sender number; application messages are stored raw for resends. A read
  (``on_bytes``) is one store batch: its messages' number updates reach the disk once, at its
  end, before the owner performs any action (store.py's notes).
* Inbound MsgSeqNum (spec §2, secondary): equal -> process; higher -> queue it, send one
  ResendRequest(expected, 0) and process the queue in order once the gap is filled; lower
  without PossDupFlag=Y -> Logout with text and Disconnect; lower with PossDupFlag -> ignored.
  SequenceReset-Reset skips the check (NewSeqNo may not decrease: Reject 5); GapFill moves the
  expected number to NewSeqNo. ResendRequest and Logout are acted on even while a gap is open.
* Answering ResendRequest: stored application messages are re-sent with PossDupFlag=Y,
  OrigSendingTime = original SendingTime, a fresh SendingTime and their original MsgSeqNum;
  runs of admin (unstored) numbers become one SequenceReset-GapFill each.
* A malformed message with a readable MsgSeqNum gets a Reject (reason, RefTagID, RefMsgType)
  and consumes its number; garbled ones (BodyLength/CheckSum) are dropped silently.
* Liveness: Heartbeat after HeartBtInt of send silence; TestRequest after
  ``test_request_ratio`` x HeartBtInt of receive silence; any inbound message answers it, none
  within a further HeartBtInt -> Disconnect. Logon and Logout handshakes have timeouts too.
* SendingTime further than ``max_clock_skew_s`` from our clock -> Reject 10, Logout, Disconnect.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import msgspec

from agora.core.clock import Clock
from agora.protocols.fix44.codec import (
    FixError,
    FixFramingError,
    FixMessage,
    decode,
    encode,
)
from agora.protocols.fix44.framer import FixFramer
from agora.protocols.fix44.messages import (
    ADMIN_TYPES,
    FixStruct,
    Heartbeat,
    Logon,
    Logout,
    Reject,
    ResendRequest,
    SequenceReset,
    TestRequest,
    encode_message,
    from_message,
    to_fields,
)
from agora.protocols.fix44.store import MemorySeqStore

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes
    msg_type: str
    seq_num: int


class Deliver(msgspec.Struct, frozen=True, gc=False):  # one per message: a Struct is cheaper
    message: FixMessage


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: str


@dataclass(frozen=True, slots=True)
class LoggedOn:
    heart_bt_int: int


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


Action = Send | Deliver | Disconnect | LoggedOn | Ignored


class Role(Enum):
    INITIATOR = "initiator"
    ACCEPTOR = "acceptor"


class State(Enum):
    DISCONNECTED = "disconnected"
    AWAITING_LOGON = "awaiting_logon"  # acceptor, connected
    LOGON_SENT = "logon_sent"  # initiator
    ACTIVE = "active"
    LOGOUT_SENT = "logout_sent"  # we started the logout; we close on the answer
    LOGOUT_RECEIVED = "logout_received"  # we answered; the peer closes


_LOGGING_ON = (State.AWAITING_LOGON, State.LOGON_SENT)  # a tuple: found by identity, no hash


@dataclass(frozen=True, slots=True)
class SessionConfig:
    sender_comp_id: str
    target_comp_id: str
    role: Role
    heart_bt_int: int = 30  # seconds; the acceptor adopts the initiator's value
    reset_on_logon: bool = False  # initiator sends ResetSeqNumFlag=Y
    test_request_ratio: float = 1.2
    logon_timeout_s: int = 10
    logout_timeout_s: int = 10
    max_clock_skew_s: int | None = 120


class Session:
    def __init__(
        self, config: SessionConfig, clock: Clock, store: MemorySeqStore | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store if store is not None else MemorySeqStore()
        self.framer = FixFramer()
        self.state = State.DISCONNECTED
        self.heart_bt_int = config.heart_bt_int
        self._since = self._last_sent = self._last_recv = 0
        self._test_req: tuple[str, int] | None = None  # (TestReqID, sent at)
        self._test_req_count = 0
        self._queue: dict[int, FixMessage] = {}
        self._answered: set[int] = set()  # queued ResendRequests already answered
        self._resend_until: int | None = None  # highest seq seen when ResendRequest was sent

    # ------------------------------------------------------------------ owner API

    @property
    def next_sender(self) -> int:
        return self.store.next_sender

    @property
    def next_target(self) -> int:
        return self.store.next_target

    def connect(self) -> list[Action]:
        """The transport is up: an initiator sends Logon, an acceptor waits for one."""
        if self.state is not State.DISCONNECTED:
            raise FixError(f"connect() in state {self.state.value}")
        now = self.clock.now_ns()
        self._since = self._last_sent = self._last_recv = now
        if self.config.role is Role.ACCEPTOR:
            self.state = State.AWAITING_LOGON
            return []
        self.state = State.LOGON_SENT
        if self.config.reset_on_logon:
            self.store.reset()
        logon = Logon(heart_bt_int=self.config.heart_bt_int,
                      reset_seq_num_flag=True if self.config.reset_on_logon else None)
        return [self._send(logon, now)]

    def disconnected(self) -> None:
        """The transport is gone (whoever closed it). Sequence numbers are kept."""
        self.state = State.DISCONNECTED
        self.framer = FixFramer()
        self._queue.clear()
        self._answered.clear()
        self._test_req = self._resend_until = None

    def logout(self, text: str | None = None) -> list[Action]:
        now = self.clock.now_ns()
        if self.state is not State.ACTIVE:
            return [Disconnect("logout before logon completed")]
        self.state, self._since = State.LOGOUT_SENT, now
        return [self._send(Logout(text=text), now)]

    def send_app(self, msg: FixStruct | tuple[str, list[tuple[int, Any]]],
                 now: int | None = None) -> bytes:
        """Encode, number and store an application message; returns the bytes to write.
        ``now``: the SendingTime, when the caller sends several at one clock reading."""
        if self.state is not State.ACTIVE:
            raise FixError(f"cannot send application messages in state {self.state.value}")
        return self._number(msg, self.clock.now_ns() if now is None else now)[0]

    def store_app(self, msg: FixStruct | tuple[str, list[tuple[int, Any]]]) -> None:
        """Number and store an application message without sending it, in any state (the
        counterparty is away: its ResendRequest after the next Logon gets it as a PossDup)."""
        self._number(msg, self.clock.now_ns())

    def reject(self, err: FixError) -> bytes:
        """Session Reject for a delivered message the application could not parse."""
        return self._reject(err, self.clock.now_ns()).data

    def on_bytes(self, data: bytes) -> list[Action]:
        """The actions for a read; its messages' store writes are made once, at its end, and
        they are checked against one clock reading (a read is handled in microseconds)."""
        actions: list[Action] = []
        try:
            frames = self.framer.feed(data)
        except FixFramingError as exc:
            frames = exc.frames
            actions.append(Ignored(exc.text))
        now = self.clock.now_ns()
        with self.store.batch():  # nothing leaves before we return (store.py's notes)
            for frame in frames:
                try:
                    msg = decode(frame)
                except FixError as exc:
                    actions += self._on_bad(exc)
                else:
                    actions += self._on_message(msg, now)
                if self.state is State.DISCONNECTED:
                    break
        return actions

    def on_message(self, msg: FixMessage) -> list[Action]:
        return self._on_message(msg, self.clock.now_ns())

    def _on_message(self, msg: FixMessage, now: int) -> list[Action]:
        if self.state is State.DISCONNECTED:
            return [Ignored("not connected")]
        self._last_recv = now
        self._test_req = None  # any inbound traffic proves the peer alive
        cfg = self.config
        index = msg._index  # the properties' dict, read directly on this per-message path
        sender, target = index[49], index[56]
        if sender != cfg.target_comp_id or target != cfg.sender_comp_id:
            tag = 49 if sender != cfg.target_comp_id else 56
            err = FixError(f"CompID problem: {sender}->{target}", reason=9, tag=tag,
                           seq_num=msg.seq_num, msg_type=msg.msg_type)
            return self._fatal(now, err.text, err if self.state is State.ACTIVE else None)
        skew = cfg.max_clock_skew_s
        if skew is not None and index.get(43) != "Y" and abs(msg.sending_time - now) > skew * NS:
            err = FixError("SendingTime accuracy problem", reason=10, tag=52,
                           seq_num=msg.seq_num, msg_type=msg.msg_type)
            return self._fatal(now, err.text, err if self.state is State.ACTIVE else None)
        if self.state in _LOGGING_ON:
            if msg.msg_type != "A":
                self.disconnected()
                return [Disconnect(f"expected Logon, got MsgType {msg.msg_type}")]
            return self._on_logon(msg, now)
        mt, seq = index[35], int(index[34])
        if mt == "4" and index.get(123) != "Y":
            return self._on_sequence_reset(msg, now)
        expected = self.store.next_target
        if mt == "5" and seq >= expected:
            if seq == expected:
                self._advance(seq + 1)
            self._queue.clear()
            return self._on_logout(now)
        if seq < expected:
            if msg.poss_dup:
                return [Ignored(f"duplicate MsgSeqNum {seq} (PossDup)")]
            return self._fatal(now, f"MsgSeqNum too low, expecting {expected} but received {seq}")
        if seq > expected:
            self._queue[seq] = msg
            actions: list[Action] = []
            if mt == "2":
                self._answered.add(seq)
                actions += self._admin(msg, now)
            if self._resend_until is None:
                self._resend_until = seq
                actions.append(self._send(ResendRequest(begin_seq_no=expected, end_seq_no=0), now))
            return actions
        actions = self._process(msg, now)
        while self._queue and self.state is State.ACTIVE and self.next_target in self._queue:
            actions += self._process(self._queue.pop(self.next_target), now)
        if self._resend_until is not None and self.next_target > self._resend_until:
            self._resend_until = None
        return actions

    def on_timer(self) -> list[Action]:
        now = self.clock.now_ns()
        st = self.state
        if st in _LOGGING_ON:
            if now - self._since >= self.config.logon_timeout_s * NS:
                self.disconnected()
                return [Disconnect("logon timeout")]
        elif st in (State.LOGOUT_SENT, State.LOGOUT_RECEIVED):
            if now - self._since >= self.config.logout_timeout_s * NS:
                self.disconnected()
                return [Disconnect("logout timeout")]
        elif st is State.ACTIVE and self.heart_bt_int > 0:
            hb = self.heart_bt_int * NS
            actions: list[Action] = []
            if self._test_req is not None:
                req_id, sent_at = self._test_req
                if now - sent_at >= hb:
                    self.disconnected()
                    return [Disconnect(f"no answer to TestRequest {req_id}")]
            elif now - self._last_recv >= hb * self.config.test_request_ratio:
                self._test_req_count += 1
                req_id = f"TEST{self._test_req_count}"
                self._test_req = (req_id, now)
                actions.append(self._send(TestRequest(test_req_id=req_id), now))
            if now - self._last_sent >= hb:
                actions.append(self._send(Heartbeat(), now))
            return actions
        return []

    # ------------------------------------------------------------------ internals

    def _send(self, msg: FixStruct | tuple[str, list[tuple[int, Any]]], now: int) -> Send:
        return Send(*self._number(msg, now))

    def _number(self, msg: FixStruct | tuple[str, list[tuple[int, Any]]],
                now: int) -> tuple[bytes, str, int]:
        """Encode ``msg`` with the next MsgSeqNum, store it if it is an application message,
        advance; (bytes, MsgType, MsgSeqNum), with no ``Send`` for the callers that only
        want the bytes (a report costs a frozen dataclass less)."""
        seq = self.store.next_sender
        cfg = self.config
        if isinstance(msg, FixStruct):
            mt = msg.MSG_TYPE
            raw = encode_message(msg, sender=cfg.sender_comp_id, target=cfg.target_comp_id,
                                 seq_num=seq, sending_time=now)
        else:
            mt, fields = msg
            raw = encode(mt, fields, sender=cfg.sender_comp_id, target=cfg.target_comp_id,
                         seq_num=seq, sending_time=now)
        if mt not in ADMIN_TYPES:
            self.store.store_message(seq, raw)
        self.store.set_next_sender(seq + 1)
        self._last_sent = now
        return raw, mt, seq

    def _reject(self, err: FixError, now: int) -> Send:
        reason = err.reason if err.reason is not None else 99
        return self._send(Reject(ref_seq_num=err.seq_num or 0, ref_tag_id=err.tag,
                                 ref_msg_type=err.msg_type, session_reject_reason=reason,
                                 text=err.text[:200]), now)

    def _fatal(self, now: int, text: str, reject: FixError | None = None) -> list[Action]:
        """Reject (optional), Logout with ``text`` if logged on, then Disconnect."""
        actions: list[Action] = []
        if reject is not None:
            actions.append(self._reject(reject, now))
        if self.state in (State.ACTIVE, State.LOGOUT_RECEIVED, State.LOGOUT_SENT):
            actions.append(self._send(Logout(text=text), now))
        self.disconnected()
        actions.append(Disconnect(text))
        return actions

    def _advance(self, n: int) -> None:
        self.store.set_next_target(n)
        if self._queue:
            for s in [s for s in self._queue if s < n]:
                del self._queue[s]

    def _on_bad(self, err: FixError) -> list[Action]:
        now = self.clock.now_ns()
        if err.garbled or err.seq_num is None:
            return [Ignored(f"garbled message dropped: {err.text}")]
        if self.state is not State.ACTIVE:
            self.disconnected()
            return [Disconnect(f"invalid message before logon: {err.text}")]
        self._last_recv = now
        if err.seq_num == self.next_target:
            self._advance(err.seq_num + 1)
            return [self._reject(err, now)]
        if err.seq_num > self.next_target and self._resend_until is None:
            self._resend_until = err.seq_num
            req = ResendRequest(begin_seq_no=self.next_target, end_seq_no=0)
            return [self._send(req, now)]
        return [Ignored(f"invalid message with MsgSeqNum {err.seq_num} dropped")]

    def _on_logon(self, msg: FixMessage, now: int) -> list[Action]:
        try:
            logon = from_message(msg)
            assert isinstance(logon, Logon)
            if logon.heart_bt_int < 0:
                raise FixError("negative HeartBtInt", reason=5, tag=108)
        except FixError as exc:
            self.disconnected()
            return [Disconnect(f"invalid Logon: {exc.text}")]
        acceptor = self.config.role is Role.ACCEPTOR
        if logon.reset_seq_num_flag:
            if acceptor:
                self.store.reset()
            else:
                self.store.set_next_target(1)
        seq, expected = msg.seq_num, self.next_target
        if seq < expected:
            self.disconnected()
            return [Disconnect(f"MsgSeqNum too low, expecting {expected} but received {seq}")]
        actions: list[Action] = []
        if acceptor:
            self.heart_bt_int = logon.heart_bt_int
            reply = Logon(heart_bt_int=logon.heart_bt_int,
                          reset_seq_num_flag=True if logon.reset_seq_num_flag else None)
            actions.append(self._send(reply, now))
        self.state, self._since = State.ACTIVE, now
        actions.append(LoggedOn(self.heart_bt_int))
        if seq == expected:
            self._advance(seq + 1)
        else:
            self._resend_until = seq
            actions.append(self._send(ResendRequest(begin_seq_no=expected, end_seq_no=0), now))
        return actions

    def _on_logout(self, now: int) -> list[Action]:
        if self.state is State.LOGOUT_SENT:
            self.disconnected()
            return [Disconnect("logout complete")]
        self.state, self._since = State.LOGOUT_RECEIVED, now
        return [self._send(Logout(), now)]

    def _on_sequence_reset(self, msg: FixMessage, now: int) -> list[Action]:
        try:
            reset = from_message(msg)
            assert isinstance(reset, SequenceReset)
            if reset.new_seq_no < self.next_target:
                raise FixError(f"NewSeqNo {reset.new_seq_no} < expected {self.next_target}",
                               reason=5, tag=36, seq_num=msg.seq_num, msg_type="4")
        except FixError as exc:
            return [self._reject(exc, now)]
        self._advance(reset.new_seq_no)
        actions: list[Action] = []
        while self._queue and self.state is State.ACTIVE and self.next_target in self._queue:
            actions += self._process(self._queue.pop(self.next_target), now)
        if self._resend_until is not None and self.next_target > self._resend_until:
            self._resend_until = None
        return actions

    def _process(self, msg: FixMessage, now: int) -> list[Action]:
        """Handle an in-sequence message (MsgSeqNum == expected)."""
        index = msg._index
        seq, mt = int(index[34]), index[35]
        if index.get(43) == "Y" and 122 not in index:
            self._advance(seq + 1)
            err = FixError("OrigSendingTime required with PossDupFlag=Y", reason=1, tag=122,
                           seq_num=seq, msg_type=mt)
            return [self._reject(err, now)]
        if mt not in ADMIN_TYPES:
            self._advance(seq + 1)
            return [Deliver(msg)]
        if mt == "4":  # GapFill
            try:
                gap = from_message(msg)
                assert isinstance(gap, SequenceReset)
                if gap.new_seq_no <= seq:
                    raise FixError(f"GapFill NewSeqNo {gap.new_seq_no} <= MsgSeqNum {seq}",
                                   reason=5, tag=36, seq_num=seq, msg_type=mt)
            except FixError as exc:
                self._advance(seq + 1)
                return [self._reject(exc, now)]
            self._advance(gap.new_seq_no)
            return []
        self._advance(seq + 1)
        if seq in self._answered:
            self._answered.discard(seq)
            return []
        return self._admin(msg, now)

    def _admin(self, msg: FixMessage, now: int) -> list[Action]:
        try:
            typed = from_message(msg)
        except FixError as exc:
            return [self._reject(exc, now)]
        if isinstance(typed, TestRequest):
            return [self._send(Heartbeat(test_req_id=typed.test_req_id), now)]
        if isinstance(typed, ResendRequest):
            return self._replay(typed.begin_seq_no, typed.end_seq_no, now)
        if isinstance(typed, Reject):
            return [Deliver(msg)]
        if isinstance(typed, Logon):
            return self._fatal(now, "unexpected Logon on an active session")
        return []  # Heartbeat: liveness already recorded

    def _replay(self, begin: int, end: int, now: int) -> list[Action]:
        last = self.store.next_sender - 1
        end = last if end == 0 or end > last else end
        if begin < 1 or begin > end:
            return []
        stored = self.store.get_messages(begin, end)
        actions: list[Action] = []
        gap_start: int | None = None
        for s in range(begin, end + 1):
            raw = stored.get(s)
            if raw is None:
                gap_start = s if gap_start is None else gap_start
                continue
            if gap_start is not None:
                actions.append(self._gap_fill(gap_start, s, now))
                gap_start = None
            old = decode(raw, validate_formats=False)
            data = encode(old.msg_type, old.body(), sender=self.config.sender_comp_id,
                          target=self.config.target_comp_id, seq_num=s, sending_time=now,
                          poss_dup=True, orig_sending_time=old[52])
            actions.append(Send(data, old.msg_type, s))
        if gap_start is not None:
            actions.append(self._gap_fill(gap_start, end + 1, now))
        self._last_sent = now
        return actions

    def _gap_fill(self, seq: int, new_seq: int, now: int) -> Send:
        data = encode("4", to_fields(SequenceReset(new_seq_no=new_seq, gap_fill_flag=True)),
                      sender=self.config.sender_comp_id, target=self.config.target_comp_id,
                      seq_num=seq, sending_time=now, poss_dup=True, orig_sending_time=now)
        return Send(data, "4", seq)


__all__ = [
    "Action",
    "Deliver",
    "Disconnect",
    "Ignored",
    "LoggedOn",
    "Role",
    "Send",
    "Session",
    "SessionConfig",
    "State",
]
