"""SoupBinTCP 4.00: packet codec and an incremental TCP stream framer.

Source: shared/specs/soupbintcp40.md (Nasdaq *SoupBinTCP Version 4.00*, checked against the
3.00 PDF). Pure logic: no sockets, no timers (heartbeat timing belongs to the session layer).

Wire: ``Packet Length`` (u16 big-endian, bytes after itself = 1 + payload), ``Packet Type``
(one ASCII byte), payload. Types: ``+`` debug, ``A`` login accepted, ``J`` login rejected,
``S`` sequenced data, ``U`` unsequenced data (both directions, one class), ``H`` server
heartbeat, ``Z`` end of session, ``L`` login request, ``R`` client heartbeat, ``O`` logout.

Text fields (decisions where the spec is silent):

* Fixed-width character fields must be printable ASCII (0x20-0x7E). Debug text may be any
  7-bit ASCII (free-form text, "standard ASCII"); a non-ASCII debug packet is a
  ``ProtocolError``.
* Username / password are right-padded with spaces (spec). Login Accepted's session and
  sequence number are left-padded with spaces (spec). For the Login Request's session and
  sequence number the spec states no padding; mirroring Login Accepted (left) is
  **unverified**, so ``encode`` takes ``login_padding="left"|"right"`` and ``decode`` accepts
  both: padding spaces are stripped from both ends of session and sequence fields everywhere
  (digits and session ids hold no spaces), and from the right of username / password.
* Hence a field value must not start or end with a space (``encode`` refuses it: it would not
  survive the round trip); a blank session is ``""`` (all spaces on the wire).
* Sequence number fields hold 1 to 20 ASCII digits (``0`` in a Login Request = "from the most
  recent message"); leading zeros are accepted on decode. A blank sequence field is refused.
* Only the two reject codes of the spec (``A``, ``S``) are accepted.
* ``decode(..., sender="server"|"client")`` additionally refuses packet types the other side
  sends; without it every type is accepted.

``SoupFramer`` invariants: packets come out in stream order however the bytes are split; a
Packet Length of 0 or above ``max_packet_length`` is refused as soon as its two bytes arrive,
and the framer then refuses further input (the stream cannot be resynchronised). A packet whose
framing is sound but whose content is bad raises after the framer consumed it: the framer stays
usable and ``feed(b"")`` continues with the bytes already buffered. Either error carries the
packets decoded before it in that call (``SoupStreamError.packets``). ``close()`` reports bytes
left over at the end of the stream. Every malformed input raises ``ProtocolError``.

Limitations: the SoupBinTCP 4.1 heartbeat-timeout login field is not supported (not 4.00).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

import msgspec

from agora.protocols.errors import ProtocolError

MAX_PACKET_LENGTH = 0xFFFF  # the u16 Packet Length field; the spec defines no smaller limit
SESSION_LEN = 10
SEQUENCE_LEN = 20
USERNAME_LEN = 6
PASSWORD_LEN = 10
LOGIN_ACCEPTED_LEN = 1 + SESSION_LEN + SEQUENCE_LEN  # 31
LOGIN_REQUEST_LEN = 1 + USERNAME_LEN + PASSWORD_LEN + SESSION_LEN + SEQUENCE_LEN  # 47

Sender = Literal["server", "client"]
Padding = Literal["left", "right"]


class RejectReason(StrEnum):
    NOT_AUTHORIZED = "A"  # invalid username/password combination
    SESSION_NOT_AVAILABLE = "S"  # requested session invalid or not available


class Packet(msgspec.Struct, frozen=True):
    """Base of the packet records."""


class Debug(Packet, frozen=True):
    text: str = ""


class LoginAccepted(Packet, frozen=True):
    session: str
    sequence: int  # of the next Sequenced Data packet to be sent


class LoginRejected(Packet, frozen=True):
    reason: RejectReason


class SequencedData(Packet, frozen=True):
    message: bytes


class UnsequencedData(Packet, frozen=True):
    message: bytes


class ServerHeartbeat(Packet, frozen=True):
    pass


class EndOfSession(Packet, frozen=True):
    pass


class LoginRequest(Packet, frozen=True):
    username: str
    password: str
    session: str = ""  # blank: the currently active session
    sequence: int = 1  # next sequence number wanted; 0: from the most recent message


class ClientHeartbeat(Packet, frozen=True):
    pass


class LogoutRequest(Packet, frozen=True):
    pass


_TYPE_OF: dict[type[Packet], bytes] = {
    Debug: b"+",
    LoginAccepted: b"A",
    LoginRejected: b"J",
    SequencedData: b"S",
    UnsequencedData: b"U",
    ServerHeartbeat: b"H",
    EndOfSession: b"Z",
    LoginRequest: b"L",
    ClientHeartbeat: b"R",
    LogoutRequest: b"O",
}
_EMPTY: dict[int, type[Packet]] = {
    ord("H"): ServerHeartbeat,
    ord("Z"): EndOfSession,
    ord("R"): ClientHeartbeat,
    ord("O"): LogoutRequest,
}
_SENT_BY: dict[Sender, frozenset[int]] = {
    "server": frozenset(b"+AJSUHZ"),
    "client": frozenset(b"+LURO"),
}
_DIGITS = frozenset(b"0123456789")
#: data packets a framer builds without decode_body, per sender (those the sender may send)
_DATA_TYPES: dict[Sender | None, dict[int, type[Packet]]] = {
    sender: {k: cls for k, cls in ((0x53, SequencedData), (0x55, UnsequencedData))
             if sender is None or k in _SENT_BY[sender]}
    for sender in (None, "server", "client")
}


# ------------------------------------------------------------------------------- fields


def _text(value: object, width: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(f"{what} must be a str, got {type(value).__name__}")
    if not all(" " <= ch <= "~" for ch in value):
        raise ProtocolError(f"{what} must be printable ASCII, got {value!r}")
    if len(value) > width:
        raise ProtocolError(f"{what} {value!r} is longer than {width} characters")
    if value != value.strip(" "):
        raise ProtocolError(f"{what} {value!r} must not start or end with a space")
    return value.encode("ascii")


def _pad(raw: bytes, width: int, side: Padding) -> bytes:
    return raw.rjust(width) if side == "left" else raw.ljust(width)


def _sequence(value: object, what: str) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10**SEQUENCE_LEN:
        raise ProtocolError(f"{what} must be an int in [0, 10**{SEQUENCE_LEN}), got {value!r}")
    return str(value).encode("ascii")


def _read_text(raw: bytes, what: str, strip: Literal["both", "right"]) -> str:
    if not all(0x20 <= b <= 0x7E for b in raw):
        raise ProtocolError(f"{what} {raw!r} is not printable ASCII")
    text = raw.decode("ascii")
    return text.strip(" ") if strip == "both" else text.rstrip(" ")


def _read_sequence(raw: bytes, what: str) -> int:
    digits = raw.strip(b" ")
    if not digits or not all(b in _DIGITS for b in digits):
        raise ProtocolError(f"{what} {raw!r} is not space-padded ASCII digits")
    return int(digits)


# ------------------------------------------------------------------------------- codec


def encode_body(packet: Packet, *, login_padding: Padding = "left") -> bytes:
    """Packet Type byte + payload (what ``Packet Length`` counts)."""
    kind = _TYPE_OF.get(type(packet))
    if kind is None:
        raise ProtocolError(f"not a SoupBinTCP packet: {type(packet).__name__}")
    if isinstance(packet, SequencedData | UnsequencedData):
        if not isinstance(packet.message, bytes | bytearray | memoryview):
            raise ProtocolError(f"message must be bytes, got {type(packet.message).__name__}")
        return kind + bytes(packet.message)
    if isinstance(packet, Debug):
        if not isinstance(packet.text, str) or not packet.text.isascii():
            raise ProtocolError(f"debug text must be an ASCII str, got {packet.text!r}")
        return kind + packet.text.encode("ascii")
    if isinstance(packet, LoginAccepted):
        session = _text(packet.session, SESSION_LEN, "session")
        seq = _sequence(packet.sequence, "sequence number")
        return kind + session.rjust(SESSION_LEN) + seq.rjust(SEQUENCE_LEN)
    if isinstance(packet, LoginRejected):
        try:
            reason = RejectReason(packet.reason)
        except ValueError:
            raise ProtocolError(f"unknown login reject code {packet.reason!r}") from None
        return kind + reason.value.encode("ascii")
    if isinstance(packet, LoginRequest):
        if login_padding not in ("left", "right"):
            raise ProtocolError(f"login_padding must be 'left' or 'right', not {login_padding!r}")
        return (
            kind
            + _text(packet.username, USERNAME_LEN, "username").ljust(USERNAME_LEN)
            + _text(packet.password, PASSWORD_LEN, "password").ljust(PASSWORD_LEN)
            + _pad(_text(packet.session, SESSION_LEN, "session"), SESSION_LEN, login_padding)
            + _pad(_sequence(packet.sequence, "sequence number"), SEQUENCE_LEN, login_padding)
        )
    return kind  # the four packets without payload


def encode(packet: Packet, *, login_padding: Padding = "left") -> bytes:
    """The packet on the wire: 2-byte big-endian Packet Length, type, payload."""
    body = encode_body(packet, login_padding=login_padding)
    if len(body) > MAX_PACKET_LENGTH:
        raise ProtocolError(f"packet length {len(body)} exceeds {MAX_PACKET_LENGTH}")
    return len(body).to_bytes(2, "big") + body


_DATA_HEADER = struct.Struct(">H1s")  # Packet Length, Packet Type of a data packet


def sequenced_packets(messages: Iterable[object]) -> list[bytes]:
    """``[encode(SequencedData(m)) for m in messages]``: a server's outbound messages framed
    once, to be kept (a session's log, see ``soupbintcp_log``) and sent as they are. A ``bytes``
    message that fits is framed directly (no packet record); anything else goes through
    ``encode``, which frames it or raises its error."""
    packets: list[bytes] = []
    append = packets.append
    pack = _DATA_HEADER.pack
    for message in messages:
        if type(message) is bytes and len(message) < MAX_PACKET_LENGTH:
            append(pack(len(message) + 1, b"S") + message)
        else:
            append(encode(SequencedData(message)))  # type: ignore[arg-type]
    return packets


def decode_body(body: bytes, *, sender: Sender | None = None) -> Packet:
    """Decode Packet Type + payload (a frame without its length prefix)."""
    body = bytes(body)
    if not body:
        raise ProtocolError("empty packet: no packet type")
    kind = body[0]
    payload = body[1:]
    if sender is not None and kind not in _SENT_BY[sender]:
        raise ProtocolError(f"packet type {chr(kind)!r} is not sent by the {sender}")
    if kind in (0x53, 0x55):  # S, U
        return SequencedData(payload) if kind == 0x53 else UnsequencedData(payload)
    empty = _EMPTY.get(kind)
    if empty is not None:
        if payload:
            raise ProtocolError(
                f"{empty.__name__} packet has {len(payload)} payload bytes, expected none"
            )
        return empty()
    if kind == 0x2B:  # +
        if not payload.isascii():
            raise ProtocolError(f"debug text {payload[:40]!r} is not ASCII")
        return Debug(payload.decode("ascii"))
    if kind == 0x41:  # A
        _expect(payload, LOGIN_ACCEPTED_LEN - 1, "login accepted")
        return LoginAccepted(
            _read_text(payload[:SESSION_LEN], "session", "both"),
            _read_sequence(payload[SESSION_LEN:], "sequence number"),
        )
    if kind == 0x4A:  # J
        _expect(payload, 1, "login rejected")
        try:
            return LoginRejected(RejectReason(chr(payload[0])))
        except ValueError:
            raise ProtocolError(f"unknown login reject code {payload!r}") from None
    if kind == 0x4C:  # L
        _expect(payload, LOGIN_REQUEST_LEN - 1, "login request")
        user_end = USERNAME_LEN
        pass_end = user_end + PASSWORD_LEN
        session_end = pass_end + SESSION_LEN
        return LoginRequest(
            _read_text(payload[:user_end], "username", "right"),
            _read_text(payload[user_end:pass_end], "password", "right"),
            _read_text(payload[pass_end:session_end], "session", "both"),
            _read_sequence(payload[session_end:], "sequence number"),
        )
    raise ProtocolError(f"unknown packet type {bytes([kind])!r}")


def _expect(payload: bytes, size: int, what: str) -> None:
    if len(payload) != size:
        raise ProtocolError(f"{what} payload is {len(payload)} bytes, expected {size}")


def decode(data: bytes, *, sender: Sender | None = None) -> Packet:
    """Decode exactly one packet, length prefix included."""
    data = bytes(data)
    if len(data) < 2:
        raise ProtocolError(f"packet truncated: {len(data)} bytes, the length field needs 2")
    length = int.from_bytes(data[:2], "big")
    if length == 0:
        raise ProtocolError("packet length 0: no packet type")
    if len(data) - 2 != length:
        raise ProtocolError(f"packet length says {length} bytes but {len(data) - 2} follow")
    return decode_body(data[2:], sender=sender)


# ------------------------------------------------------------------------------- framer


class SoupStreamError(ProtocolError):
    """A stream fault; ``packets`` were decoded before it in the same ``feed`` call."""

    def __init__(self, message: str, packets: list[Packet], *, fatal: bool) -> None:
        super().__init__(message)
        self.packets = packets
        self.fatal = fatal  # True: framing lost, the framer refuses further input


class SoupFramer:
    """Incremental decoder of a SoupBinTCP byte stream: ``feed(bytes) -> list[Packet]``."""

    def __init__(
        self, *, max_packet_length: int = MAX_PACKET_LENGTH, sender: Sender | None = None
    ) -> None:
        if not 1 <= max_packet_length <= MAX_PACKET_LENGTH:
            raise ValueError(f"max_packet_length must be in [1, {MAX_PACKET_LENGTH}]")
        self.max_packet_length = max_packet_length
        self.sender = sender
        self._buf = bytearray()
        self._broken: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        """The packets completed by ``data``, in stream order (see the module notes).

        Same answers as ``feed_checked``, with fewer copies: a read that starts on a packet
        boundary is parsed in place, and Sequenced/Unsequenced Data packets (the hot path) are
        built directly where the sender may send them (``decode_body`` would build the same).
        """
        if self._broken is not None:
            raise SoupStreamError(f"stream already failed: {self._broken}", [], fatal=True)
        buf = self._buf
        if buf or type(data) is not bytes:
            buf += data
            data = bytes(buf)
        data_types = _DATA_TYPES.get(self.sender, {})  # type: ignore[call-overload]
        out: list[Packet] = []
        pos = 0
        size = len(data)
        try:
            while size - pos >= 2:
                length = (data[pos] << 8) | data[pos + 1]
                if length == 0 or length > self.max_packet_length:
                    self._refuse_length(length, pos, out)
                end = pos + 2 + length
                if end > size:
                    break
                packet_type = data_types.get(data[pos + 2])
                if packet_type is not None:
                    out.append(packet_type(data[pos + 3 : end]))
                    pos = end
                    continue
                body = data[pos + 2 : end]
                pos = end
                try:
                    out.append(decode_body(body, sender=self.sender))
                except ProtocolError as exc:
                    raise SoupStreamError(str(exc), out, fatal=False) from exc
        finally:
            if buf:
                del buf[:pos]
            elif pos < size:
                buf += data[pos:]
        return out

    def _refuse_length(self, length: int, pos: int, out: list[Packet]) -> None:
        """A packet length outside [1, max]: the stream is broken for good (both ``feed``s)."""
        self._broken = (
            f"packet length {length} at stream offset +{pos} is outside "
            f"[1, {self.max_packet_length}]"
        )
        raise SoupStreamError(self._broken, out, fatal=True)

    def feed_checked(self, data: bytes) -> list[Packet]:
        """``feed`` the plain way (every packet through ``decode_body``): its reference."""
        if self._broken is not None:
            raise SoupStreamError(f"stream already failed: {self._broken}", [], fatal=True)
        buf = self._buf
        buf += data
        out: list[Packet] = []
        pos = 0
        size = len(buf)
        try:
            while size - pos >= 2:
                length = (buf[pos] << 8) | buf[pos + 1]
                if length == 0 or length > self.max_packet_length:
                    self._refuse_length(length, pos, out)
                end = pos + 2 + length
                if end > size:
                    break
                body = bytes(buf[pos + 2 : end])
                pos = end
                try:
                    out.append(decode_body(body, sender=self.sender))
                except SoupStreamError:
                    raise
                except ProtocolError as exc:
                    raise SoupStreamError(str(exc), out, fatal=False) from exc
        finally:
            del buf[:pos]
        return out

    def close(self) -> None:
        """End of stream: raise if it stopped inside a packet."""
        if self._broken is not None:
            raise ProtocolError(f"stream failed: {self._broken}")
        if self._buf:
            raise ProtocolError(f"stream ended inside a packet: {len(self._buf)} bytes left over")
