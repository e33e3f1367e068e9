"""FIX 4.4 tag=value codec: encode, decode-and-validate, and an incremental stream framer.

Design notes
------------
* Framing follows shared/specs/fix44.md §1 (secondary): ``8=FIX.4.4``, ``9=BodyLength``, ``35``
  first; ``10=CheckSum`` (three digits, sum of bytes mod 256) last. BodyLength counts the bytes
  from just after the SOH ending ``9=`` through the SOH before ``10=``. Everything is computed
  over *bytes*; string values are UTF-8 on the wire.
* ``decode`` validates in two stages. Stage one (framing: BeginString, BodyLength, CheckSum,
  splittable fields) failures are *garbled* messages: FIX says they are discarded without a
  Reject and without consuming a sequence number, so ``FixError.garbled`` is set. Stage two
  (tags, values, header) failures carry the ``SessionRejectReason`` and, when readable, the
  offending message's MsgSeqNum / MsgType so the session can answer with Reject(35=3).
* Repeating groups are not modelled structurally: tags that are members of a repeating group
  used by this venue's messages (``GROUP_TAGS``) may repeat; any other repeated tag is reason 13.
* Tags above FIX44.xml's highest (956) outside the user-defined range 5000-9999 are reason 3
  (Undefined tag). Reason 2 (tag not defined for this MsgType) is not checked: the typed layer
  ignores fields it does not model.
* Length-prefixed data pairs (95/96, 90/91, 212/213, 93/89, 354/355) are honoured: the data
  field is read by its declared byte length, so it may contain SOH.
* ``FixFramer`` never raises away good frames: a feed that met garbage raises
  ``FixFramingError`` whose ``frames`` holds every complete frame of that feed, and the framer
  has already resynchronised on the next ``8=FIX.4.4<SOH>9=``.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Iterator, Sequence
from enum import Enum
from typing import Final

from agora.protocols.errors import ProtocolError

SOH: Final = b"\x01"
BEGIN_STRING: Final = "FIX.4.4"
FRAME_START: Final = b"8=FIX.4.4\x019="
MAX_BODY_LENGTH: Final = 64 * 1024
MAX_FIX44_TAG: Final = 956  # highest tag defined by FIX44.xml; 5000-9999 are user-defined
USER_DEFINED_TAGS: Final = range(5000, 10000)

HEADER_TAGS: Final = frozenset(
    (8, 9, 35, 49, 56, 115, 128, 90, 91, 34, 50, 142, 57, 143, 116, 144, 129, 145, 43, 97, 52,
     122, 212, 213, 347, 369, 627, 628, 629, 630)
)
TRAILER_TAGS: Final = frozenset((93, 89, 10))
REQUIRED_HEADER: Final = (35, 49, 56, 34, 52)
# length tag -> data tag whose value is exactly that many bytes (may contain SOH)
DATA_LENGTH_TAGS: Final = {95: 96, 90: 91, 212: 213, 93: 89, 354: 355, 348: 349, 350: 351}
# members of repeating groups in the header and in this venue's messages (may repeat)
GROUP_TAGS: Final = frozenset(
    (628, 629, 630, 372, 385, 448, 447, 452, 523, 803, 79, 661, 736, 467, 80, 524, 525, 538,
     545, 805, 336, 625, 233, 234, 455, 456, 865, 866, 867, 868, 375, 337, 437, 438, 655, 519,
     520, 521, 137, 138, 139, 891)
)

_TAG_RE = re.compile(rb"[1-9][0-9]{0,8}")
_INT_RE = re.compile(r"-?[0-9]+")
_TS_RE = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")


class FixError(ProtocolError):
    """A FIX message that cannot be accepted.

    ``reason``: SessionRejectReason code (int) when one applies, else ``None``.
    ``tag``: the offending tag (RefTagID), ``seq_num``/``msg_type``: of the offending message
    when they could be read (RefSeqNum/RefMsgType), ``garbled``: framing failure, to be dropped
    silently rather than rejected.
    """

    def __init__(
        self,
        text: str,
        *,
        reason: int | None = None,
        tag: int | None = None,
        seq_num: int | None = None,
        msg_type: str | None = None,
        garbled: bool = False,
    ) -> None:
        super().__init__(text)
        self.text = text
        self.reason = reason
        self.tag = tag
        self.seq_num = seq_num
        self.msg_type = msg_type
        self.garbled = garbled


class FixFramingError(FixError):
    """Garbage or an oversized frame in a stream; ``frames`` are the good frames of that feed."""

    def __init__(self, text: str, frames: list[bytes], discarded: int) -> None:
        super().__init__(text, garbled=True)
        self.frames = frames
        self.discarded = discarded


# ---------------------------------------------------------------------------------- values


class _SecondMemo:
    """The last second's text and value: consecutive timestamps share their second, and
    building or parsing a datetime costs microseconds (twice per message on the hot path)."""

    __slots__ = ("parsed", "parsed_secs", "secs", "text")

    def __init__(self) -> None:
        self.secs, self.text = -1, ""
        self.parsed, self.parsed_secs = "", 0


_memo = _SecondMemo()


def format_timestamp(ns: int) -> str:
    """UTCTIMESTAMP with milliseconds (``YYYYMMDD-HH:MM:SS.sss``); sub-ms digits are truncated."""
    secs, rem = divmod(ns, 1_000_000_000)
    memo = _memo
    if secs != memo.secs:
        t = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=secs)
        memo.secs, memo.text = secs, f"{t:%Y%m%d-%H:%M:%S}"
    return f"{memo.text}.{rem // 1_000_000:03d}"


def parse_timestamp(text: str, tag: int = 52) -> int:
    """UTCTIMESTAMP (0 to 9 fractional digits accepted) -> int ns since the epoch."""
    memo = _memo
    if text[:17] == memo.parsed:  # the memoised second: only the fraction is left to check
        frac = text[18:]
        if len(text) == 17 or (text[17] == "." and 0 < len(frac) <= 9 and frac.isdigit()
                               and frac.isascii()):
            return memo.parsed_secs * 1_000_000_000 + int(frac.ljust(9, "0"))
    m = _TS_RE.fullmatch(text)
    if m is None:
        raise FixError(f"tag {tag}: bad UTCTIMESTAMP {text!r}", reason=6, tag=tag)
    frac = m.group(7)
    whole = text[:17]
    if whole == memo.parsed:
        secs = memo.parsed_secs
    else:
        y, mo, d, h, mi, s = m.groups()[:6]
        try:
            t = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        except ValueError as exc:
            raise FixError(f"tag {tag}: bad UTCTIMESTAMP {text!r}", reason=6, tag=tag) from exc
        secs = (t - _dt.datetime(1970, 1, 1)) // _dt.timedelta(seconds=1)
        memo.parsed, memo.parsed_secs = whole, secs
    return secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))


def parse_int(text: str, tag: int) -> int:
    if _INT_RE.fullmatch(text) is None:
        raise FixError(f"tag {tag}: not an integer: {text!r}", reason=6, tag=tag)
    return int(text)


def parse_bool(text: str, tag: int) -> bool:
    if text == "Y":
        return True
    if text == "N":
        return False
    raise FixError(f"tag {tag}: BOOLEAN must be Y or N, got {text!r}", reason=6, tag=tag)


def _render(tag: int, value: object) -> bytes:
    if isinstance(value, bool):
        raw = b"Y" if value else b"N"
    elif isinstance(value, Enum):
        raw = str(value.value).encode()
    elif isinstance(value, int):
        raw = str(value).encode()
    elif isinstance(value, str):
        raw = value.encode()
    elif isinstance(value, bytes):
        raw = value
    else:
        raise FixError(f"tag {tag}: cannot encode {type(value).__name__} (floats are not money)")
    if not raw:
        raise FixError(f"tag {tag}: empty value", reason=4, tag=tag)
    if SOH in raw and tag not in DATA_LENGTH_TAGS.values():
        raise FixError(f"tag {tag}: value contains SOH", reason=17, tag=tag)
    return raw


def checksum(data: bytes) -> int:
    return sum(data) % 256


# ---------------------------------------------------------------------------------- encode


def encode(
    msg_type: str,
    fields: Iterable[tuple[int, object]],
    *,
    sender: str,
    target: str,
    seq_num: int,
    sending_time: int | str,
    poss_dup: bool = False,
    orig_sending_time: int | str | None = None,
    header: Iterable[tuple[int, object]] = (),
) -> bytes:
    """One complete message. ``sending_time``/``orig_sending_time``: int ns or a UTCTIMESTAMP."""
    if type(seq_num) is not int or seq_num < 1:
        raise FixError(f"MsgSeqNum must be a positive int, got {seq_num!r}", reason=5, tag=34)
    st = format_timestamp(sending_time) if isinstance(sending_time, int) else sending_time
    head: list[tuple[int, object]] = [
        (35, msg_type), (49, sender), (56, target), (34, str(seq_num))]  # str: the fast path
    if poss_dup:
        head.append((43, "Y"))
    head.append((52, st))
    if orig_sending_time is not None:
        ost = orig_sending_time
        head.append((122, format_timestamp(ost) if isinstance(ost, int) else ost))
    head.extend(header)
    items = (*head, *fields)
    body = _fast_body(items)
    if body is None:
        body = _checked_body(items)
    msg = b"8=FIX.4.4\x019=%d\x01%b" % (len(body), body)
    return msg + b"10=%03d\x01" % checksum(msg)


_CODEC_TAGS: Final = frozenset((8, 9, 10))


def _fast_body(items: Sequence[tuple[int, object]]) -> bytes | None:
    """The body when every value is a non-empty str without SOH under a plain tag (what typed
    messages produce); None sends the caller to the checked path, which names any problem."""
    parts = []
    for tag, value in items:
        if (type(value) is not str or type(tag) is not int or tag <= 0 or not value
                or tag in _CODEC_TAGS or "\x01" in value):
            return None
        parts.append(f"{tag}={value}\x01")
    return "".join(parts).encode()


def _checked_body(items: Sequence[tuple[int, object]]) -> bytes:
    parts = []
    for tag, value in items:
        if isinstance(tag, bool) or not isinstance(tag, int) or tag <= 0:
            raise FixError(f"invalid tag number {tag!r}", reason=0)
        if tag in (8, 9, 10):
            raise FixError(f"tag {tag} is written by the codec", reason=14, tag=tag)
        parts.append(b"%d=%b\x01" % (tag, _render(tag, value)))
    return b"".join(parts)


# ---------------------------------------------------------------------------------- decode


class FixMessage:
    """A decoded message: ordered ``fields`` (tag, value) plus first-occurrence dict access."""

    __slots__ = ("_index", "fields", "raw")

    def __init__(self, fields: Sequence[tuple[int, str]], raw: bytes = b"") -> None:
        self.fields: tuple[tuple[int, str], ...] = tuple(fields)
        self.raw = raw
        index: dict[int, str] = {}
        for tag, value in self.fields:
            index.setdefault(tag, value)
        self._index = index

    def __getitem__(self, tag: int) -> str:
        return self._index[tag]

    def __contains__(self, tag: object) -> bool:
        return tag in self._index

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(self.fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FixMessage) and self.fields == other.fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "FixMessage(" + "|".join(f"{t}={v}" for t, v in self.fields) + ")"

    def get(self, tag: int, default: str | None = None) -> str | None:
        return self._index.get(tag, default)

    @property
    def msg_type(self) -> str:
        return self._index[35]

    @property
    def seq_num(self) -> int:
        return int(self._index[34])

    @property
    def sender(self) -> str:
        return self._index[49]

    @property
    def target(self) -> str:
        return self._index[56]

    @property
    def sending_time(self) -> int:
        return parse_timestamp(self._index[52])

    @property
    def poss_dup(self) -> bool:
        return self._index.get(43) == "Y"

    def body(self) -> list[tuple[int, str]]:
        """The fields that are neither standard header nor trailer, in order."""
        return [(t, v) for t, v in self.fields if t not in HEADER_TAGS and t not in TRAILER_TAGS]


def _garbled(text: str, tag: int | None = None) -> FixError:
    return FixError(text, reason=5 if tag else None, tag=tag, garbled=True)


def _check_frame(data: bytes) -> int:
    """Stage one: BeginString, BodyLength, CheckSum. Returns the index where ``10=`` starts."""
    if not data.startswith(FRAME_START):
        raise _garbled(f"message must start with 8={BEGIN_STRING}<SOH>9=: {data[:16]!r}", 8)
    end9 = data.find(SOH, len(FRAME_START))
    digits = data[len(FRAME_START) : end9]
    if end9 < 0 or not digits.isdigit() or len(digits) > 9:
        raise _garbled(f"bad BodyLength {digits[:12]!r}", 9)
    body_start = end9 + 1
    trailer = body_start + int(digits)
    if (
        trailer > len(data)
        or data[trailer - 1 : trailer] != SOH
        or data[trailer : trailer + 3] != b"10="
        or len(data) != trailer + 7
    ):
        raise _garbled(f"BodyLength {int(digits)} does not match a {len(data)}-byte message", 9)
    ck = data[trailer + 3 : trailer + 6]
    if not ck.isdigit() or data[-1:] != SOH:
        raise _garbled(f"CheckSum must be three digits, got {ck!r}", 10)
    if int(ck) != checksum(data[:trailer]):
        raise _garbled(f"CheckSum {ck.decode()} != computed {checksum(data[:trailer]):03d}", 10)
    return trailer


def _split(data: bytes, end: int) -> list[tuple[int, str]]:
    """Split ``data[:end]`` into (tag, value); data fields are read by their declared length."""
    fields = _fast_split(data, end)
    return fields if fields is not None else _checked_split(data, end)


def _fast_split(data: bytes, end: int) -> list[tuple[int, str]] | None:
    """The common case in one pass over str: ASCII, well formed, no data-length field. None
    sends the caller to the checked path, which reports any problem precisely."""
    if not data.isascii() or (end and data[end - 1] != 1):
        return None
    out = []
    for field in data[:end].decode("ascii").split("\x01")[:-1]:
        tag_text, eq, value = field.partition("=")
        if (not eq or not value or not tag_text.isdigit() or tag_text[0] == "0"
                or len(tag_text) > 9):
            return None
        tag = int(tag_text)
        if tag in DATA_LENGTH_TAGS:
            return None
        out.append((tag, value))
    return out


def _checked_split(data: bytes, end: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pos = 0
    data_len: tuple[int, int] | None = None  # (data tag, byte length) announced by a length tag
    while pos < end:
        eq = data.find(b"=", pos, end)
        if eq < 0:
            raise _garbled(f"field without '=' at byte {pos}")
        raw_tag = data[pos:eq]
        if _TAG_RE.fullmatch(raw_tag) is None:
            tag_text = raw_tag.decode("latin-1")
            raise FixError(f"invalid tag number {tag_text!r}", reason=0)
        tag = int(raw_tag)
        if data_len is not None and data_len[0] == tag:
            stop = eq + 1 + data_len[1]
            if stop >= end or data[stop : stop + 1] != SOH:
                raise FixError(f"tag {tag}: data length mismatch", reason=5, tag=tag)
        else:
            stop = data.find(SOH, eq + 1, end)
            if stop < 0:
                raise _garbled("unterminated field")
        data_len = None
        try:
            value = data[eq + 1 : stop].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FixError(f"tag {tag}: value is not UTF-8", reason=6, tag=tag) from exc
        if not value:
            raise FixError(f"tag {tag} specified without a value", reason=4, tag=tag)
        if tag in DATA_LENGTH_TAGS:
            n = parse_int(value, tag)
            if n < 0:
                raise FixError(f"tag {tag}: negative length", reason=5, tag=tag)
            data_len = (DATA_LENGTH_TAGS[tag], n)
        out.append((tag, value))
        pos = stop + 1
    return out


def decode(data: bytes, *, validate_formats: bool = True) -> FixMessage:
    """Decode and validate one complete message (see module notes for the error policy)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FixError("decode expects bytes")
    data = bytes(data)
    trailer = _check_frame(data)
    fields = _split(data, trailer)
    fields.append((10, data[trailer + 3 : trailer + 6].decode()))
    # what the session needs to answer with a Reject, read before any semantic check
    seq_text = next((v for t, v in fields if t == 34), None)
    seq = int(seq_text) if seq_text is not None and seq_text.isdigit() else None
    mt = next((v for t, v in fields if t == 35), None)

    def fail(text: str, reason: int, tag: int | None) -> FixError:
        return FixError(text, reason=reason, tag=tag, seq_num=seq, msg_type=mt)

    if len(fields) < 4 or fields[2][0] != 35:
        if mt is None:
            raise fail("MsgType (35) missing", 1, 35)
        raise fail("MsgType (35) must be the third field", 14, 35)
    seen: set[int] = set()
    for i, (tag, _value) in enumerate(fields):
        if tag in (8, 9, 35, 10) and i not in (0, 1, 2, len(fields) - 1):
            raise fail(f"tag {tag} specified out of required order", 14, tag)
        if tag > MAX_FIX44_TAG and tag not in USER_DEFINED_TAGS:
            raise fail(f"tag {tag} is not defined in FIX 4.4", 3, tag)
        if tag in seen and tag not in GROUP_TAGS:
            raise fail(f"tag {tag} appears more than once", 13, tag)
        seen.add(tag)
    for tag in REQUIRED_HEADER:
        if tag not in seen:
            raise fail(f"required header tag {tag} missing", 1, tag)
    msg = FixMessage(fields, data)
    if validate_formats:
        try:
            if seq is None or seq < 1:
                raise FixError(f"MsgSeqNum must be a positive integer: {seq_text!r}", reason=6,
                               tag=34)
            parse_timestamp(msg[52], 52)
            if 122 in msg:
                parse_timestamp(msg[122], 122)
            for tag in (43, 97):
                if tag in msg:
                    parse_bool(msg[tag], tag)
        except FixError as exc:
            raise fail(exc.text, exc.reason or 6, exc.tag) from None
    return msg


# ---------------------------------------------------------------------------------- framer


class FixFramer:
    """Split a byte stream into complete FIX messages using BodyLength.

    ``feed`` returns complete frames (CheckSum is verified later by ``decode``). Bytes that
    cannot start a frame, a BodyLength above ``max_body_length``, or a frame whose BodyLength
    does not land on ``10=NNN<SOH>`` are discarded up to the next ``8=FIX.4.4<SOH>9=`` and
    reported by raising ``FixFramingError`` once the whole feed is processed.
    """

    __slots__ = ("_buf", "discarded", "max_body_length")

    def __init__(self, max_body_length: int = MAX_BODY_LENGTH) -> None:
        self._buf = bytearray()
        self.max_body_length = max_body_length
        self.discarded = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        problems: list[str] = []
        dropped = 0
        buf = self._buf
        while buf:
            problem = None
            if not buf.startswith(FRAME_START):
                if FRAME_START.startswith(bytes(buf[: len(FRAME_START)])):
                    break  # a possible frame start, wait for more bytes
                problem = "garbage before 8=FIX.4.4"
            else:
                end9 = buf.find(SOH, len(FRAME_START), len(FRAME_START) + 11)
                digits = bytes(buf[len(FRAME_START) : end9 if end9 >= 0 else len(buf)])
                if not digits.isdigit() and digits:
                    problem = f"bad BodyLength {digits[:12]!r}"
                elif end9 < 0:
                    if len(digits) > 10:
                        problem = "BodyLength too long"
                    else:
                        break
                elif not digits:
                    problem = "empty BodyLength"
                elif int(digits) > self.max_body_length:
                    problem = f"BodyLength {int(digits)} exceeds {self.max_body_length}"
                else:
                    trailer = end9 + 1 + int(digits)
                    total = trailer + 7
                    if len(buf) < total:
                        break
                    if (
                        buf[trailer - 1] == 1
                        and buf[trailer : trailer + 3] == b"10="
                        and bytes(buf[trailer + 3 : trailer + 6]).isdigit()
                        and buf[total - 1] == 1
                    ):
                        frames.append(bytes(buf[:total]))
                        del buf[:total]
                        continue
                    problem = "BodyLength does not end at 10=NNN<SOH>"
            # resynchronise: drop bytes up to the next frame start (or a possible partial one)
            nxt = buf.find(FRAME_START, 1)
            if nxt < 0:
                nxt = len(buf)
                for k in range(min(len(FRAME_START) - 1, len(buf) - 1), 0, -1):
                    if FRAME_START.startswith(bytes(buf[-k:])):
                        nxt = len(buf) - k
                        break
            dropped += nxt
            del buf[:nxt]
            problems.append(problem)
        if problems:
            self.discarded += dropped
            raise FixFramingError(
                f"discarded {dropped} bytes: " + "; ".join(dict.fromkeys(problems)), frames, dropped
            )
        return frames
