"""FIX 4.4 tag=value codec: encode and decode-and-validate (the stream framer is ``framer``).

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
* Fast paths: ``encode``, ``decode``, their frame check and split each try the common message
  first with few passes in Python (C-level str/bytes methods over the whole message), and hand
  anything else, valid or not, to the checked path beside them (``_checked_*``), which decides
  and names errors; tests/protocols/test_fix44_fast_paths.py holds each pair to the same answer.
  Where built, ``decode`` first asks the C ``scan`` (``speedups``), which reads the common
  message in one pass and leaves anything else to these paths.
* ``FixError`` lives in ``errors`` and the UTCTIMESTAMP text in ``timestamps``; both are
  imported here, where the rest of the package has always found them.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from enum import Enum
from typing import Final

from agora.protocols.fix44 import speedups
from agora.protocols.fix44.errors import FixError
from agora.protocols.fix44.errors import FixFramingError as FixFramingError
from agora.protocols.fix44.timestamps import format_timestamp, parse_timestamp

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
_REQUIRED_HEADER_SET: Final = frozenset(REQUIRED_HEADER)
# length tag -> data tag whose value is exactly that many bytes (may contain SOH)
DATA_LENGTH_TAGS: Final = {95: 96, 90: 91, 212: 213, 93: 89, 354: 355, 348: 349, 350: 351}
_LENGTH_TAGS: Final = frozenset(DATA_LENGTH_TAGS)
# members of repeating groups in the header and in this venue's messages (may repeat)
GROUP_TAGS: Final = frozenset(
    (628, 629, 630, 372, 385, 448, 447, 452, 523, 803, 79, 661, 736, 467, 80, 524, 525, 538,
     545, 805, 336, 625, 233, 234, 455, 456, 865, 866, 867, 868, 375, 337, 437, 438, 655, 519,
     520, 521, 137, 138, 139, 891)
)

_TAG_RE = re.compile(rb"[1-9][0-9]{0,8}")
_INT_RE = re.compile(r"-?[0-9]+")


# ---------------------------------------------------------------------------------- values


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
    """Sum of the bytes mod 256, read off Adler-32's first half (``1 + sum`` mod 65521, exact
    while a chunk sums below that: 256 bytes of at most 255 sum to 65,280)."""
    if type(data) is not bytes:
        return sum(data) % 256
    if len(data) <= 256:
        return (zlib.adler32(data) - 1) & 0xFF
    view = memoryview(data)
    total = 0
    for i in range(0, len(data), 256):
        total += (zlib.adler32(view[i : i + 256]) & 0xFFFF) - 1
    return total & 0xFF


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
    if not poss_dup and orig_sending_time is None and header == ():
        # the common message: the standard header in one piece, then the fast body
        head = common_header(msg_type, sender, target, seq_num, st)
        fields = fields if type(fields) is list else list(fields)
        text = None if head is None else _fast_text(fields)
        if text is not None:
            text = f"{head}\x01{text}"
            if text.count("\x01") == 5 + len(fields):  # no SOH inside a header value
                data = fast_envelope(text)
                if data is not None:
                    return data
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
    return envelope(_checked_body(items) if body is None else body)


def common_header(msg_type: object, sender: object, target: object, seq_num: int,
                  st: object) -> str | None:
    """The standard header ``35=...<SOH>...52=<st>`` (no SOH after it) when every value is a
    non-empty str, as in the common message; None sends the caller to its general path. A SOH
    inside a value is the caller's to find (it counts them over the whole message once)."""
    if (type(msg_type) is str and type(sender) is str and type(target) is str
            and type(st) is str and msg_type and sender and target and st):
        return f"35={msg_type}\x0149={sender}\x0156={target}\x0134={seq_num}\x0152={st}"
    return None


def envelope(body: bytes | str) -> bytes:
    """BeginString, BodyLength and CheckSum around ``body`` (str: UTF-8 on the wire)."""
    if type(body) is str:
        body = body.encode()
    msg = b"8=FIX.4.4\x019=%d\x01%b" % (len(body), body)
    return msg + b"10=%03d\x01" % checksum(msg)


def fast_envelope(text: str) -> bytes | None:
    """``envelope(text)``, or None when the text is not UTF-8 encodable (a lone surrogate):
    the checked path then names the value, where one encode of the whole text would not."""
    try:
        return envelope(text.encode())
    except UnicodeEncodeError:
        return None


_CODEC_TAGS: Final = frozenset((8, 9, 10))
_TAG_PREFIXES: Final = {tag: f"{tag}=" for tag in range(1, MAX_FIX44_TAG + 1)
                        if tag not in _CODEC_TAGS}


def _fast_body(items: Sequence[tuple[int, object]]) -> bytes | None:
    """The body when every value is a non-empty str without SOH under a plain tag (what typed
    messages produce); None sends the caller to the checked path, which names any problem."""
    text = _fast_text(items)
    try:
        return None if text is None else text.encode()
    except UnicodeEncodeError:  # a lone surrogate: the checked path names its value
        return None


def _fast_text(items: Sequence[tuple[int, object]]) -> str | None:
    """``_fast_body`` before UTF-8: SOH inside values is found by one count at the end."""
    if not items:
        return ""
    parts = []
    for tag, value in items:
        if type(value) is not str or type(tag) is not int or not value:
            return None
        prefix = _TAG_PREFIXES.get(tag)
        if prefix is None:
            if tag <= 0 or tag in _CODEC_TAGS:
                return None
            prefix = f"{tag}="
        parts.append(prefix + value)
    text = "\x01".join(parts)
    if text.count("\x01") != len(parts) - 1:
        return None
    return text + "\x01"


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
    """A decoded message: ordered ``fields`` (tag, value) plus first-occurrence dict access.

    ``decode`` keeps the SendingTime it parsed while validating (``sending_time`` reads it
    instead of parsing the text again: the session checks it on every message), and the tags
    and values it split: the (tag, value) pairs are made on the first read of ``fields``
    (the hot path reads the index only)."""

    __slots__ = ("_columns", "_fields", "_index", "_sending_time", "raw")

    def __init__(self, fields: Sequence[tuple[int, str]], raw: bytes = b"") -> None:
        self._fields: tuple[tuple[int, str], ...] | None = tuple(fields)
        self._columns: tuple[list[int], list[str]] | None = None
        self.raw = raw
        self._sending_time: int | None = None
        index: dict[int, str] = {}
        for tag, value in self._fields:
            index.setdefault(tag, value)
        self._index = index

    @property
    def fields(self) -> tuple[tuple[int, str], ...]:
        fields = self._fields
        if fields is None:
            fields = self._fields = tuple(_pairs(self._columns))  # type: ignore[arg-type]
        return fields

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
        ns = self._sending_time
        return parse_timestamp(self._index[52]) if ns is None else ns

    @property
    def poss_dup(self) -> bool:
        return self._index.get(43) == "Y"

    def body(self) -> list[tuple[int, str]]:
        """The fields that are neither standard header nor trailer, in order."""
        return [(t, v) for t, v in self.fields if t not in HEADER_TAGS and t not in TRAILER_TAGS]


def _message(
    columns: tuple[list[int], list[str]], raw: bytes, index: dict[int, str],
    sending_time: int | None,
) -> FixMessage:
    """``FixMessage(fields, raw)`` when the caller already holds its tags and values, index
    and parsed SendingTime (None: not parsed)."""
    msg = _new_message(FixMessage)
    msg._fields, msg._columns, msg.raw, msg._index = None, columns, raw, index
    msg._sending_time = sending_time
    return msg


_new_message = object.__new__


def _garbled(text: str, tag: int | None = None) -> FixError:
    return FixError(text, reason=5 if tag else None, tag=tag, garbled=True)


def _check_frame(data: bytes) -> int:
    """Stage one: BeginString, BodyLength, CheckSum. Returns the index where ``10=`` starts."""
    end9 = data.find(b"\x01", 12, 22)  # a good BodyLength is 1 to 9 digits after FRAME_START
    if end9 > 12 and data.startswith(FRAME_START):
        digits = data[12:end9]
        if digits.isdigit():
            trailer = end9 + 1 + int(digits)
            if (len(data) == trailer + 7 and data[trailer - 1] == 1
                    and data.startswith(b"10=", trailer) and data[-1] == 1):
                ck = data[trailer + 3 : trailer + 6]
                if ck.isdigit() and int(ck) == checksum(data[:trailer]):
                    return trailer
    return _checked_frame(data)


def _checked_frame(data: bytes) -> int:
    """``_check_frame`` one check at a time, naming the first that fails."""
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


def _fast_split(data: bytes, end: int) -> list[tuple[int, str]] | None:
    """``_fast_columns`` as (tag, value) pairs."""
    columns = _fast_columns(data, end)
    return None if columns is None else _pairs(columns)


def _pairs(columns: tuple[list[int], list[str]]) -> list[tuple[int, str]]:
    tags, values = columns
    return list(zip(tags, values, strict=True))


def _fast_columns(data: bytes, end: int) -> tuple[list[int], list[str]] | None:
    """The common case without a loop in Python: ASCII, every field ``tag=value<SOH>`` with a
    plain tag and no ``=`` in the value, no data-length field. None sends the caller to the
    checked path, which reads anything valid and reports any problem precisely."""
    if not data.isascii():
        return None
    raw = data[:end]
    # one '=' then one SOH per field, in turn (so no '=' in values), and nothing after the last
    if (raw.translate(None, _NOT_SEPARATORS) != b"=\x01" * raw.count(b"\x01")
            or raw[-1:] not in (b"\x01", b"")):
        return None
    flat = raw.decode("ascii").replace("=", "\x01").split("\x01")  # tag, value, ..., ""
    flat.pop()
    values = flat[1::2]
    if "" in values:
        return None
    tag_texts = flat[0::2]
    tags = list(map(_TAG_NUMBERS.get, tag_texts))  # the usual tags, already validated
    if None in tags:
        if not "".join(tag_texts).isdigit() or any(t[:1] in ("", "0") for t in tag_texts):
            return None
        tags = list(map(int, tag_texts))
        if max(tags) > 999_999_999:
            return None
    if not _LENGTH_TAGS.isdisjoint(tags):
        return None
    return tags, values


_NOT_SEPARATORS: Final = bytes(b for b in range(256) if b not in b"=\x01")
_TAG_NUMBERS: Final = {str(tag): tag for tag in range(1, MAX_FIX44_TAG + 1)}


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
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise FixError("decode expects bytes")
        data = bytes(data)
    if speedups.ext is not None:  # the common message in one C pass
        scanned = speedups.ext.scan(data, validate_formats)
        if scanned is not None:
            tags, values, index, sending_time = scanned
            return _message((tags, values), data, index, sending_time)
    trailer = _check_frame(data)
    columns = _fast_columns(data, len(data))  # with the trailer, a well-formed 10=NNN<SOH>
    if columns is None:
        fields = _checked_split(data, trailer)
        fields.append((10, data[trailer + 3 : trailer + 6].decode()))
        return _checked_message(data, fields, validate_formats)
    tags, values = columns
    # The common message passes every check of _checked_message at once: no repeated tag (so
    # 8, 9, 35 and 10 are where the frame and the split put them), no tag above 956, the
    # header complete, MsgSeqNum and SendingTime well formed, no 43/97/122 to check. Anything
    # else, valid or not, takes the checked path, which also names the first problem.
    index = dict(zip(tags, values))  # noqa: B905 (equal by construction)
    if (len(index) != len(tags) or tags[2] != 35 or max(index) > MAX_FIX44_TAG
            or not index.keys() >= _REQUIRED_HEADER_SET):
        return _checked_message(data, _pairs(columns), validate_formats)
    sending_time = None
    if validate_formats:
        seq_text = index[34]
        if (not seq_text.isdigit() or int(seq_text) < 1
                or 122 in index or 43 in index or 97 in index):
            return _checked_message(data, _pairs(columns), validate_formats)
        try:
            sending_time = parse_timestamp(index[52], 52)
        except FixError:
            return _checked_message(data, _pairs(columns), validate_formats)
    return _message(columns, data, index, sending_time)


def _checked_message(
    data: bytes, fields: list[tuple[int, str]], validate_formats: bool
) -> FixMessage:
    """Stage two one check at a time: the first failure becomes the FixError to reject with."""
    # what the session needs to answer with a Reject, read before any semantic check
    seq_text = next((v for t, v in fields if t == 34), None)
    seq = (int(seq_text) if seq_text is not None and seq_text.isascii() and seq_text.isdigit()
           else None)  # str.isdigit also takes '²', which int() refuses
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
            msg._sending_time = parse_timestamp(msg[52], 52)
            if 122 in msg:
                parse_timestamp(msg[122], 122)
            for tag in (43, 97):
                if tag in msg:
                    parse_bool(msg[tag], tag)
        except FixError as exc:
            raise fail(exc.text, exc.reason or 6, exc.tag) from None
    return msg
