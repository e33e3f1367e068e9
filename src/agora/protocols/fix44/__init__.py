"""FIX 4.4: tag=value codec (``codec``) and stream framer (``framer``), typed messages
(``messages``, ``enums``), and a pure session-layer state machine (``session``) with durable
sequence numbers (``store``).

Built from shared/specs/fix44.md (tags, Req flags, enums from QuickFIX's FIX44.xml; framing and
session rules from secondary sources).
"""

from agora.protocols.fix44.codec import (
    FixError,
    FixFramingError,
    FixMessage,
    decode,
    encode,
)
from agora.protocols.fix44.framer import FixFramer

__all__ = ["FixError", "FixFramer", "FixFramingError", "FixMessage", "decode", "encode"]
