"""NASDAQ TotalView-ITCH 5.0: a pure codec for all 23 message types, plus BinaryFILE framing.

Source: *Nasdaq TotalView-ITCH 5.0* specification (``NQTVITCHspecification.pdf``, latest revision
entry 2023-04-28, which added the Direct Listing with Capital Raise ``O`` message and the Paused
imbalance direction), as transcribed in ``shared/specs/itch50.md``. Message classes live in
``itch50_messages`` and are re-exported here.

Conventions

* ``encode(msg) -> bytes`` and ``decode(data) -> message``; the type byte (offset 0) selects the
  class. Each type gets straight-line code generated once at import from its field layout, over
  precompiled big-endian ``struct.Struct`` objects. The 6-byte timestamp is unpacked as a 2-byte
  high + 4-byte low pair and packed with ``int.to_bytes(6, "big")`` (the faster option of each,
  measured on CPython 3.11). ``encode_reference``/``decode_reference`` are the slow, obvious
  implementation the tests hold the fast path equal to. Alpha values are memoised in bounded
  caches (at most 65,536 entries each; only valid values are cached).
* Integers are unsigned, big-endian. Prices are the raw ``int`` in Price(4) units (1/10,000 USD;
  Price(8) for the ``V`` levels): money is never a float. Timestamps are ``int`` ns since midnight.
* Alpha fields are ``str``: ASCII, right-padded with spaces on the wire, padding stripped on
  decode (so a value with trailing spaces does not round-trip as such, and an all-space field
  decodes to ``""``). One-byte code fields are ``str`` of length 1 and are never stripped.
* Every failure is an :class:`ItchError` (a ``ProtocolError``) naming the reason: empty input,
  unknown type byte, wrong length for the type, non-ASCII alpha bytes; on encode a non-ITCH
  object, an integer out of its field's range (negative, too wide, timestamp ``>= 2**48``) or an
  alpha value that is too long / not ASCII / a code field not exactly one character.

Limitations

* Code values (side, event code, cross type...) and the spec's semantic limits (Price(4) maximum
  200,000.0000, ``stock_locate == 0`` for ``S``/``V``/``W``/``K``) are not checked: only the wire
  widths are. Higher layers decide what a legal value is.
* Framing: ITCH messages carry no length; the transport (MoldUDP64, SoupBinTCP) or a file framing
  supplies it. This module only implements the daily-file framing below.
* BinaryFILE framing (``write_file_records`` / ``iter_file_messages``): each record is a 2-byte
  big-endian length followed by one message. Nasdaq's BinaryFILE document was **not** obtained,
  so this framing is **unverified** against the official text; it follows public implementations.
  A zero-length record (said to mark end of session) is skipped, not treated as an error.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from typing import IO, Any, get_type_hints

from agora.protocols.errors import ProtocolError
from agora.protocols.itch50_messages import *  # noqa: F403 - re-export the message classes
from agora.protocols.itch50_messages import MESSAGE_CLASSES, ItchMessage, Message, Wire
from agora.protocols.itch50_messages import __all__ as _messages_all

__all__ = [
    *_messages_all,
    "MESSAGE_LENGTHS",
    "MESSAGE_TYPES",
    "ItchError",
    "decode",
    "decode_reference",
    "encode",
    "encode_reference",
    "iter_file_messages",
    "write_file_records",
]


class ItchError(ProtocolError):
    """Bytes or field values that are not valid ITCH 5.0."""


# ---------------------------------------------------------------------------------------------
# Layouts: derived once from the annotations of the message classes.

_STRUCT_CODES = {("uint", 2): "H", ("uint", 4): "I", ("uint", 8): "Q", ("char", 1): "B"}


def _layout(cls: type[ItchMessage]) -> tuple[tuple[str, str, int], ...]:
    """``(field, kind, size)`` for every field of ``cls`` in wire order (after the type byte)."""
    hints = get_type_hints(cls, include_extras=True)
    out = []
    for name in cls.__struct_fields__:
        wire = next(m for m in hints[name].__metadata__ if isinstance(m, Wire))
        out.append((name, wire.kind, wire.size))
    return tuple(out)


LAYOUTS: dict[type[ItchMessage], tuple[tuple[str, str, int], ...]] = {
    cls: _layout(cls) for cls in MESSAGE_CLASSES
}

MESSAGE_TYPES: dict[str, type[ItchMessage]] = {cls.MESSAGE_TYPE: cls for cls in MESSAGE_CLASSES}

_LENGTH_BY_BYTE: dict[int, int] = {
    ord(cls.MESSAGE_TYPE): 1 + sum(size for _, _, size in LAYOUTS[cls]) for cls in MESSAGE_CLASSES
}

#: Total length in bytes (type byte included) of each message type, keyed by both the ``str``
#: and the ``bytes`` form of the type code: ``MESSAGE_LENGTHS["A"] == MESSAGE_LENGTHS[b"A"] == 36``.
MESSAGE_LENGTHS: dict[bytes | str, int] = {}
for _code, _length in _LENGTH_BY_BYTE.items():
    MESSAGE_LENGTHS[chr(_code)] = _length
    MESSAGE_LENGTHS[bytes((_code,))] = _length

# ---------------------------------------------------------------------------------------------
# Fast path: one specialised encoder and decoder per type, generated from the layout.

_CHR: tuple[str, ...] = tuple(chr(i) for i in range(128))  # IndexError for non-ASCII bytes
_ORD: dict[str, int] = {chr(i): i for i in range(128)}  # KeyError for anything else

# Alpha fields repeat (a day has ~12k symbols): memoise wire bytes <-> str. Only valid values enter
# the caches, and each stops growing at _CACHE_LIMIT entries so hostile input cannot bloat it.
_CACHE_LIMIT = 1 << 16
_ALPHA_DECODED: dict[bytes, str] = {}
_ALPHA_ENCODED: dict[int, dict[str, bytes]] = {2: {}, 4: {}, 8: {}}


class _Invalid(Exception):
    """Internal: the fast encoder found a bad value; the slow path explains which."""


def _alpha_decode(raw: bytes) -> str:
    text = raw.decode("ascii").rstrip(" ")  # UnicodeDecodeError is reported by decode()
    if len(_ALPHA_DECODED) < _CACHE_LIMIT:
        _ALPHA_DECODED[raw] = text
    return text


def _alpha_encode(value: str, size: int) -> bytes:
    raw = value.encode("ascii").ljust(size)  # UnicodeEncodeError is reported by encode()
    if len(raw) != size:
        raise _Invalid
    cache = _ALPHA_ENCODED[size]
    if len(cache) < _CACHE_LIMIT:
        cache[value] = raw
    return raw


def _build(cls: type[ItchMessage]) -> tuple[Any, Any, Any]:
    """Generate the decoder and encoder of ``cls``: straight-line code over two Structs that
    differ only in the timestamp (decode: 2-byte high + 4-byte low; encode: ``int.to_bytes``,
    each the faster option measured on CPython 3.11)."""
    decode_fmt = encode_fmt = ">B"
    targets = ["_type"]
    pre_decode = []
    args = []
    pre_encode = []
    pack_args = [str(ord(cls.MESSAGE_TYPE))]
    for name, kind, size in LAYOUTS[cls]:
        if kind == "timestamp":
            decode_fmt += "HI"
            encode_fmt += "6s"
            targets += [f"{name}_hi", f"{name}_lo"]
            args.append(f"({name}_hi << 32) | {name}_lo")
            pack_args.append(f"m.{name}.to_bytes(6, 'big')")
            continue
        targets.append(name)
        if kind == "alpha":
            decode_fmt += f"{size}s"
            encode_fmt += f"{size}s"
            pre_decode.append(
                f"    try:\n        {name} = _ALPHA_DECODED[{name}]\n"
                f"    except KeyError:\n        {name} = _alpha_decode({name})"
            )
            args.append(name)
            pre_encode.append(
                f"    try:\n        {name} = _PAD{size}[m.{name}]\n"
                f"    except KeyError:\n        {name} = _alpha_encode(m.{name}, {size})"
            )
            pack_args.append(name)
        elif kind == "char":
            decode_fmt += "B"
            encode_fmt += "B"
            args.append(f"_CHR[{name}]")
            pack_args.append(f"_ORD[m.{name}]")
        else:
            decode_fmt += _STRUCT_CODES[kind, size]
            encode_fmt += _STRUCT_CODES[kind, size]
            args.append(name)
            pack_args.append(f"m.{name}")
    unpacker = struct.Struct(decode_fmt)
    packer = struct.Struct(encode_fmt)
    assert unpacker.size == packer.size == _LENGTH_BY_BYTE[ord(cls.MESSAGE_TYPE)]
    encode_body = "".join(line + "\n" for line in pre_encode) + (
        f"    return _pack({', '.join(pack_args)})\n")
    src = (
        "def _decode(data):\n"
        f"    {', '.join(targets)} = _unpack(data)\n"
        + "".join(line + "\n" for line in pre_decode)
        + f"    return _cls({', '.join(args)})\n"
        "def _encode(m):\n"
        + encode_body
        # the same body over the fields as arguments (``packer``): no message to build
        + f"def _pack_fields({', '.join(name for name, _, _ in LAYOUTS[cls])}):\n"
        + re.sub(r"\bm\.", "", encode_body)
    )
    namespace: dict[str, Any] = {
        "_unpack": unpacker.unpack,
        "_pack": packer.pack,
        "_cls": cls,
        "_CHR": _CHR,
        "_ORD": _ORD,
        "_ALPHA_DECODED": _ALPHA_DECODED,
        "_alpha_decode": _alpha_decode,
        "_alpha_encode": _alpha_encode,
        **{f"_PAD{size}": cache for size, cache in _ALPHA_ENCODED.items()},
    }
    exec(compile(src, f"<itch50 {cls.MESSAGE_TYPE!r} codec>", "exec"), namespace)
    return namespace["_decode"], namespace["_encode"], namespace["_pack_fields"]


_DECODERS: dict[int, Any] = {}
_ENCODERS: dict[type, Any] = {}
_PACKERS: dict[type, Any] = {}
for _cls in MESSAGE_CLASSES:
    _DECODERS[ord(_cls.MESSAGE_TYPE)], _ENCODERS[_cls], _PACKERS[_cls] = _build(_cls)


def packer(cls: type[ItchMessage]) -> Any:
    """``cls``'s encoder over its fields, given positionally in wire order (``stock_locate``,
    ``tracking_number``, ``timestamp``, then the type's own): ``encode(cls(*fields))`` without
    building the message, for a publisher that maps its own events. A bad value raises what
    the packing raised (``struct.error``, ``KeyError``, ...), unexplained: call ``encode`` on
    the message for the :class:`ItchError` that names the field."""
    return _PACKERS[cls]


def _length_error(data: bytes | memoryview, code: int) -> ItchError:
    expected = _LENGTH_BY_BYTE[code]
    got = len(data)
    what = "truncated" if got < expected else "too long"
    return ItchError(
        f"ITCH {chr(code)!r} message {what}: {got} bytes, the type is {expected} bytes"
    )


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decode exactly one ITCH 5.0 message (no framing); raise :class:`ItchError` if invalid."""
    try:
        decoder = _DECODERS[data[0]]
    except IndexError:
        raise ItchError("empty ITCH message: no type byte") from None
    except KeyError:
        if not isinstance(data[0], int):
            raise TypeError(f"decode expects bytes, got {type(data).__name__}") from None
        raise ItchError(f"unknown ITCH message type byte 0x{data[0]:02x}") from None
    try:
        return decoder(data)
    except struct.error:
        raise _length_error(data, data[0]) from None
    except (IndexError, UnicodeDecodeError):
        raise ItchError(
            f"ITCH {chr(data[0])!r} message has a non-ASCII byte in an Alpha field"
        ) from None


def encode(msg: ItchMessage) -> bytes:
    """Encode one message to its exact wire bytes; raise :class:`ItchError` on a bad field."""
    try:
        encoder = _ENCODERS[type(msg)]
    except KeyError:
        raise ItchError(f"not an ITCH 5.0 message: {type(msg).__name__}") from None
    try:
        return encoder(msg)
    except (
        _Invalid,
        struct.error,
        KeyError,
        UnicodeEncodeError,
        OverflowError,
        AttributeError,
        TypeError,
    ):
        raise _explain(msg) from None


def _explain(msg: ItchMessage) -> ItchError:
    """The specific reason why ``msg`` cannot be encoded (slow path, only after a failure)."""
    for name, kind, size in LAYOUTS[type(msg)]:
        value = getattr(msg, name)
        where = f"ITCH {msg.MESSAGE_TYPE!r} {name}"
        if kind in ("uint", "timestamp"):
            bits = 48 if kind == "timestamp" else 8 * size
            if not isinstance(value, int):
                return ItchError(f"{where} must be an int, got {type(value).__name__}")
            if value < 0:
                return ItchError(f"{where} is negative: {value}")
            if value >= 1 << bits:
                return ItchError(f"{where} does not fit in {bits} bits: {value}")
        else:
            if not isinstance(value, str):
                return ItchError(f"{where} must be a str, got {type(value).__name__}")
            if not value.isascii():
                return ItchError(f"{where} is not ASCII: {value!r}")
            if kind == "char" and len(value) != 1:
                return ItchError(f"{where} must be exactly 1 character: {value!r}")
            if len(value) > size:
                return ItchError(f"{where} is longer than {size} characters: {value!r}")
    return ItchError(f"cannot encode ITCH {msg.MESSAGE_TYPE!r} message: {msg!r}")


# ---------------------------------------------------------------------------------------------
# Reference implementation: field by field with int.from_bytes / int.to_bytes, no struct.
# Slow and obvious; the tests hold the fast path equal to it.


def decode_reference(data: bytes | bytearray | memoryview) -> Message:
    """Straightforward decoder, same contract as :func:`decode`."""
    data = bytes(data)
    if not data:
        raise ItchError("empty ITCH message: no type byte")
    cls = MESSAGE_TYPES.get(chr(data[0]))
    if cls is None:
        raise ItchError(f"unknown ITCH message type byte 0x{data[0]:02x}")
    if len(data) != _LENGTH_BY_BYTE[data[0]]:
        raise _length_error(data, data[0])
    values = []
    offset = 1
    for _name, kind, size in LAYOUTS[cls]:
        raw = data[offset : offset + size]
        offset += size
        if kind in ("uint", "timestamp"):
            values.append(int.from_bytes(raw, "big"))
            continue
        if not raw.isascii():
            raise ItchError(
                f"ITCH {cls.MESSAGE_TYPE!r} message has a non-ASCII byte in an Alpha field"
            )
        text = raw.decode("ascii")
        values.append(text if kind == "char" else text.rstrip(" "))
    return cls(*values)


def encode_reference(msg: ItchMessage) -> bytes:
    """Straightforward encoder, same contract as :func:`encode`."""
    if type(msg) not in LAYOUTS:
        raise ItchError(f"not an ITCH 5.0 message: {type(msg).__name__}")
    parts = [msg.MESSAGE_TYPE.encode("ascii")]
    for name, kind, size in LAYOUTS[type(msg)]:
        value = getattr(msg, name)
        try:
            if kind in ("uint", "timestamp"):
                parts.append(value.to_bytes(size, "big"))
            else:
                if kind == "char" and len(value) != 1:
                    raise ValueError
                parts.append(value.encode("ascii").ljust(size, b" "))
                if len(parts[-1]) != size:
                    raise ValueError
        except (OverflowError, ValueError, AttributeError, TypeError):
            raise _explain(msg) from None
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------
# BinaryFILE framing (unverified, see the module docstring).

_U16 = struct.Struct(">H")
_READ_CHUNK = 1 << 20


def write_file_records(messages: Iterable[ItchMessage], *, end_of_session: bool = False) -> bytes:
    """Frame messages as BinaryFILE records: 2-byte big-endian length + message, back to back.

    With ``end_of_session=True`` a zero-length record is appended (the end-of-session marker that
    public implementations describe; unverified against Nasdaq's BinaryFILE document).
    """
    pack = _U16.pack
    parts = []
    for msg in messages:
        body = encode(msg)
        parts.append(pack(len(body)))
        parts.append(body)
    if end_of_session:
        parts.append(b"\x00\x00")
    return b"".join(parts)


def iter_file_messages(source: bytes | bytearray | memoryview | IO[bytes]) -> Iterator[Message]:
    """Yield the messages of a BinaryFILE stream (bytes, or a binary file object read in chunks).

    Zero-length records are skipped. A truncated final record, or a record whose payload is not a
    valid message, raises :class:`ItchError` naming the record's byte offset in the stream.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield from _iter_buffer(memoryview(source), 0, final=True)
        return
    base = 0  # stream offset of buf[0]
    buf = b""
    while True:
        chunk = source.read(_READ_CHUNK)
        if not chunk:
            yield from _iter_buffer(memoryview(buf), base, final=True)
            return
        buf = buf + chunk if buf else bytes(chunk)
        consumed = 0
        for item in _iter_buffer(memoryview(buf), base, final=False):
            if isinstance(item, int):
                consumed = item
            else:
                yield item
        buf = buf[consumed:]
        base += consumed


def _iter_buffer(view: memoryview, base: int, *, final: bool) -> Iterator[Any]:
    """Decode the complete records of ``view``. When not ``final``, the last item yielded is the
    number of bytes consumed (an ``int``); an incomplete tail is left for the next chunk."""
    pos = 0
    end = len(view)
    unpack_from = _U16.unpack_from
    while pos < end:
        if end - pos < 2:
            if not final:
                break
            raise ItchError(
                f"truncated BinaryFILE record at offset {base + pos}: {end - pos} of 2 length bytes"
            )
        (length,) = unpack_from(view, pos)
        stop = pos + 2 + length
        if stop > end:
            if not final:
                break
            raise ItchError(
                f"truncated BinaryFILE record at offset {base + pos}: "
                f"length {length}, only {end - pos - 2} bytes follow"
            )
        if length:
            try:
                yield decode(view[pos + 2 : stop])
            except ItchError as exc:
                raise ItchError(f"BinaryFILE record at offset {base + pos}: {exc}") from None
        pos = stop
    if not final:
        yield pos
