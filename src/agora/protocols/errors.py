"""Errors of the wire codecs: every malformed input raises one of these, never anything else."""

from agora.core.errors import AgoraError


class ProtocolError(AgoraError, ValueError):
    """Bytes or fields that do not follow the protocol (truncated, oversized, bad value...)."""
