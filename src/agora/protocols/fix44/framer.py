"""FIX 4.4 stream framer: split a byte stream into complete messages by BodyLength.

``FixFramer`` never raises away good frames: a feed that met garbage raises ``FixFramingError``
whose ``frames`` holds every complete frame of that feed, and the framer has already
resynchronised on the next ``8=FIX.4.4<SOH>9=``. CheckSum is verified later, by ``decode``.
"""

from __future__ import annotations

from agora.protocols.fix44 import speedups
from agora.protocols.fix44.codec import FRAME_START, MAX_BODY_LENGTH, SOH, FixFramingError


def _fast_frames(view: bytes, limit: int) -> tuple[list[bytes], int]:
    """The complete, well-formed frames back to back from the start of ``view`` (which starts
    with ``8=FIX.4.4<SOH>9=``) and the offset after the last one."""
    frames: list[bytes] = []
    size, pos = len(view), 0
    while view.startswith(FRAME_START, pos):
        end9 = view.find(b"\x01", pos + 12, pos + 23)
        digits = view[pos + 12 : end9]
        if end9 < 0 or not digits.isdigit():
            break
        length = int(digits)
        trailer = end9 + 1 + length
        total = trailer + 7
        if length > limit:
            break
        if not (total <= size and view[trailer - 1] == 1
                and view.startswith(b"10=", trailer)
                and view[trailer + 3 : trailer + 6].isdigit() and view[total - 1] == 1):
            break
        frames.append(view[pos:total])
        pos = total
    return frames, pos


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
        """Complete frames first by offsets over one copy of the buffer, while they are well
        formed back to back (``_fast_frames``, or its C twin); whatever follows (a partial
        frame, anything odd) is left to ``_checked_feed``, which decides and reports exactly as
        if it had read it all."""
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        if buf.startswith(FRAME_START):
            view = bytes(buf)
            ext = speedups.ext
            split = _fast_frames if ext is None else ext.split
            frames, pos = split(view, self.max_body_length)
            del buf[:pos]
            if not buf:
                return frames
        return self._checked_feed(frames)

    def _checked_feed(self, frames: list[bytes]) -> list[bytes]:
        """The buffer one check at a time: frames, waits for more bytes, or drops garbage up
        to the next frame start (raising ``FixFramingError`` with every frame of the feed)."""
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
