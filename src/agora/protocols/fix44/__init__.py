"""FIX 4.4: tag=value codec (``codec``), typed messages (``messages``, ``enums``), and a pure
session-layer state machine (``session``) with durable sequence numbers (``store``).

Built from shared/specs/fix44.md (tags, Req flags, enums from QuickFIX's FIX44.xml; framing and
session rules from secondary sources).
"""

from agora.protocols.fix44.codec import (
    FixError,
    FixFramer,
    FixFramingError,
    FixMessage,
    decode,
    encode,
)

__all__ = ["FixError", "FixFramer", "FixFramingError", "FixMessage", "decode", "encode"]
