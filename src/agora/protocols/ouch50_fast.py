"""OUCH 5.0 fast codecs: one generated encoder and decoder per message type.

:mod:`agora.protocols.ouch50` keeps the checked, table-driven codec (``_Layout``) as the
reference; for each of its layouts this module generates straight-line code (at import, like the
ITCH codec) that packs or unpacks the whole message with one precompiled ``struct.Struct`` and
converts the character and Alpha fields through memo dicts filled by the checked conversion.

Contract: a fast function answers only when it can prove the checked path would give the same
result, and returns ``None`` otherwise; the caller then runs the checked path, which produces the
bytes, the message or the exact error. So the fast path changes no output and no error text:

* encode: every integer field must be exactly ``int`` (``RejectReason`` too for the reject code:
  ``bool`` and other integer-likes go to the checked path) and in range (``struct.error``
  otherwise); a code or Alpha value must be in its field's memo (misses are converted by the
  field's checked ``enc``; a value it refuses is a miss); ``options`` must be ``None`` where the
  type allows it, or exactly an ``Options``. An empty ``Options`` is the empty appendage; a
  non-empty one goes through the checked ``encode_appendage`` (the fields are known valid by
  then, so its error, if any, is the one the checked path raises).
* decode: the length must match (base, base - 2 without Appendage Length where optional, or
  base + Appendage Length), and every code and Alpha field must be in its memo (filled by the
  checked ``dec``; invalid bytes are misses). An empty appendage decodes to one shared empty
  ``Options`` (frozen: equal to a fresh one); a non-empty one goes through the checked
  ``decode_appendage``. The caller has already checked the input type and the type byte.

Memos are per field kind, bounded (cleared when ``MEMO_MAX`` entries are reached) and only ever
hold values the checked conversion accepted. tests/protocols/test_ouch50_fast.py holds every
generated function equal to the checked path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from msgspec.structs import astuple

from agora.protocols.ouch50_appendage import (
    Alpha,
    Chars,
    Kind,
    Options,
    RejectCode,
    UInt,
    decode_appendage,
    encode_appendage,
)

#: appendage rules of a layout (``ouch50._Layout.mode``)
NONE, REQUIRED, OPTIONAL = 0, 1, 2

MEMO_MAX = 4096
EMPTY_OPTIONS = Options()


class _Memo(dict):
    """Input value -> converted value, filled by a checked conversion; a refused value is a miss
    (``KeyError``). Bounded: cleared when full."""

    __slots__ = ("_convert",)

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self._convert = convert

    def __missing__(self, key: Any) -> Any:
        try:
            value = self._convert(key)
        except Exception:  # the checked path will raise it (with the field's name)
            raise KeyError(key) from None
        if len(self) >= MEMO_MAX:
            self.clear()
        self[key] = value
        return value


_ENCODE_MEMOS: dict[int, _Memo] = {}
_DECODE_MEMOS: dict[int, _Memo] = {}


def _encode_memo(kind: Kind) -> _Memo:
    memo = _ENCODE_MEMOS.get(id(kind))
    if memo is None:
        memo = _ENCODE_MEMOS[id(kind)] = _Memo(lambda value: kind.enc(value, ""))
    return memo


def _decode_memo(kind: Kind) -> _Memo:
    memo = _DECODE_MEMOS.get(id(kind))
    if memo is None:
        memo = _DECODE_MEMOS[id(kind)] = _Memo(lambda raw: kind.dec(raw, ""))
    return memo


def compile_codec(
    cls: type, type_byte: bytes, kinds: list[Kind], mode: int, allowed: frozenset[int], base: int
) -> tuple[Callable[[Any, bool], bytes | None], Callable[[bytes, bool], Any]]:
    """``(encode(msg, strict), decode(data, strict))`` for one message type (see the module
    notes); both return ``None`` where the checked path must answer."""
    name = cls.__name__
    fields = [f"f{i}" for i in range(len(kinds))]
    fmt = "".join(k.fmt for k in kinds)
    ns: dict[str, Any] = {
        "_astuple": astuple,
        "_cls": cls,
        "_T": type_byte,
        "_NAME": name,
        "_ALLOWED": allowed,
        "_Options": Options,
        "_EMPTY": EMPTY_OPTIONS,
        "_StructError": struct.error,
        "_encode_appendage": encode_appendage,
        "_decode_appendage": decode_appendage,
        "_pack": struct.Struct(">1s" + fmt + ("H" if mode != NONE else "")).pack,
        "_pack_short": struct.Struct(">1s" + fmt).pack,
        "_unpack": struct.Struct(">x" + fmt + ("H" if mode != NONE else "")).unpack_from,
        "_unpack_short": struct.Struct(">x" + fmt).unpack,  # without Appendage Length
    }
    int_checks, enc_lines, enc_args, dec_lines, dec_args = [], [], [], [], []
    for i, (f, kind) in enumerate(zip(fields, kinds, strict=True)):
        if isinstance(kind, RejectCode):
            ns[f"_CODES{i}"] = kind.codes
            int_checks.append(f"(type({f}) is not int and type({f}) is not _CODES{i})")
            enc_args.append(f)
            ns[f"_D{i}"] = _decode_memo(kind)
            dec_lines.append(f"        {f} = _D{i}[{f}]")
            dec_args.append(f)
        elif isinstance(kind, UInt):
            int_checks.append(f"type({f}) is not int")
            enc_args.append(f)
            dec_args.append(f)
        else:
            assert isinstance(kind, Alpha | Chars), kind
            ns[f"_E{i}"] = _encode_memo(kind)
            ns[f"_D{i}"] = _decode_memo(kind)
            enc_lines.append(f"        e{i} = _E{i}[{f}]")
            enc_args.append(f"e{i}")
            dec_lines.append(f"        {f} = _D{i}[{f}]")
            dec_args.append(f)
    head = ", ".join([*fields, "opts"] if mode != NONE else fields)
    src = [f"def encode(m, strict):\n    {head}, = _astuple(m)\n"]
    if int_checks:
        src.append(f"    if {' or '.join(int_checks)}:\n        return None\n")
    if enc_lines:
        src.append("    try:\n" + "\n".join(enc_lines) + "\n")
        src.append("    except (KeyError, TypeError):\n        return None\n")
    values = ", ".join(["_T", *enc_args])
    if mode == NONE:
        src.append(f"    try:\n        return _pack({values})\n")
        src.append("    except _StructError:\n        return None\n")
    else:
        src.append("    if opts is None:\n")
        if mode == OPTIONAL:
            src.append(f"        try:\n            return _pack_short({values})\n")
            src.append("        except _StructError:\n            return None\n")
        else:
            src.append("        return None\n")
        src.append("    if type(opts) is not _Options:\n        return None\n")
        src.append("    if opts is _EMPTY or opts == _EMPTY:\n")
        src.append(f"        try:\n            return _pack({values}, 0)\n")
        src.append("        except _StructError:\n            return None\n")
        src.append(f"    try:\n        head = _pack_short({values})\n")  # fields before options
        src.append("    except _StructError:\n        return None\n")
        src.append("    app = _encode_appendage(opts, _ALLOWED, _NAME, strict)\n")
        src.append("    return head + len(app).to_bytes(2, 'big') + app\n")

    src.append("def decode(data, strict):\n    n = len(data)\n")
    with_len = ", ".join([*fields, "app_len"])
    if mode == NONE:
        src.append(f"    if n != {base}:\n        return None\n")
        src.append(f"    {', '.join(fields)}, = _unpack(data)\n")
    else:
        src.append(f"    if n == {base}:\n        {with_len}, = _unpack(data)\n")
        src.append("        if app_len:\n            return None\n        opts = _EMPTY\n")
        if mode == OPTIONAL:
            src.append(f"    elif n == {base - 2}:\n")
            if fields:
                src.append(f"        {', '.join(fields)}, = _unpack_short(data)\n")
            src.append("        opts = None\n")
        src.append(f"    elif n > {base}:\n        {with_len}, = _unpack(data)\n")
        src.append(f"        if n != {base} + app_len:\n            return None\n")
        src.append("        opts = False\n")
        src.append("    else:\n        return None\n")
        dec_args.append("opts")
    if dec_lines:
        src.append("    try:\n" + "\n".join(dec_lines) + "\n")
        src.append("    except KeyError:\n        return None\n")
    if mode != NONE:
        src.append("    if opts is False:\n")
        src.append(f"        opts = _decode_appendage(data, {base}, _ALLOWED, _NAME, strict)\n")
    src.append(f"    return _cls({', '.join(dec_args)})\n")
    exec(compile("".join(src), f"<ouch50 {name} codec>", "exec"), ns)
    return ns["encode"], ns["decode"]
