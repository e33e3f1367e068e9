"""FIX 4.4 errors: what every layer (codec, typed messages, session) raises and reads."""

from __future__ import annotations

from agora.protocols.errors import ProtocolError


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
