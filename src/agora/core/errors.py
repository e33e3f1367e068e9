"""Exceptions for conditions that are bugs or unreadable data, not business rejects.

Business outcomes (an order refused for risk) are events (``OrderRejected``), never exceptions.
"""


class AgoraError(Exception):
    """Base of agora's exceptions."""


class JournalCorruptError(AgoraError):
    """A journal record failed its checksum or framing somewhere other than the torn tail."""


class SnapshotError(AgoraError):
    """A snapshot file is unreadable or does not match the journal it claims to cover."""


class MalformedCommand(AgoraError, ValueError):
    """An input that is not a well-typed command (wrong type, bad enum, float money, overflow)."""
