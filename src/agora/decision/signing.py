"""Ed25519 keys and proposal signatures: who proposed what, and that nobody changed it on the way.

What is signed: ``msgspec.msgpack.encode(proposal with signature=b"")``, the proposal's own
array-like msgpack encoding (tag, agent, seq, budget_ns, action, b""). Every field is covered, so
a changed agent, seq, budget or any action field makes the signature invalid; the signature itself
is the only field left out. msgpack encoding of these Structs is canonical (fixed field order, no
maps), so every replica rebuilds the same bytes.

Keys: :meth:`AgentKey.generate` with a seed derives the 32-byte Ed25519 private key as
``sha256(b"agora.agent-key:" + seed)``, so tests and the simulator get the same keys on every run;
without a seed the key is random (``os.urandom`` inside ``cryptography``). A seeded key is as
secret as its seed: use one only where determinism matters more than secrecy.

:func:`verify` never raises on bad input: an unknown agent, a missing, short or wrong signature, a
malformed public key, or a tampered field all give False. Cost: one Ed25519 verification per call
(about 0.23 ms with ``cryptography`` on the 2-core test VM), unless the same (key, signature,
message) was checked before: results are kept in a bounded LRU cache (16,384 entries, exact
inputs as the key), and public-key objects are cached by their bytes.

Limitation: there is no key rotation or revocation here; the roster (agent -> public key) is
configuration that every replica must hold identically.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agora.core.events import Proposal

SIGNATURE_LEN = 64
PUBLIC_KEY_LEN = 32
_SEED_DOMAIN = b"agora.agent-key:"
_encoder = msgspec.msgpack.Encoder()


class AgentKey:
    """An agent's Ed25519 private key and its raw 32-byte public key."""

    __slots__ = ("_private", "public_bytes")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_bytes: bytes = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls, seed: int | str | bytes | None = None) -> AgentKey:
        """A fresh key: random without ``seed``, else derived from it deterministically."""
        if seed is None:
            return cls(Ed25519PrivateKey.generate())
        if isinstance(seed, int):
            seed = str(seed)
        if isinstance(seed, str):
            seed = seed.encode()
        private_bytes = hashlib.sha256(_SEED_DOMAIN + seed).digest()
        return cls(Ed25519PrivateKey.from_private_bytes(private_bytes))

    def sign_bytes(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:  # never show the private key
        return f"AgentKey(public={self.public_bytes.hex()[:16]}...)"


def signed_bytes(proposal: Proposal) -> bytes:
    """The exact bytes a signature covers: the proposal encoded with an empty signature."""
    if proposal.signature:
        proposal = msgspec.structs.replace(proposal, signature=b"")
    return _encoder.encode(proposal)


def sign(proposal: Proposal, key: AgentKey) -> Proposal:
    """The same proposal carrying ``key``'s signature over :func:`signed_bytes`."""
    return msgspec.structs.replace(proposal, signature=key.sign_bytes(signed_bytes(proposal)))


@lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> Ed25519PublicKey | None:
    if len(raw) != PUBLIC_KEY_LEN:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def verify(proposal: Proposal, public_keys: dict[str, bytes]) -> bool:
    """True only if ``proposal.agent`` is known and its key signed exactly this proposal."""
    raw = public_keys.get(proposal.agent)
    if raw is None or len(proposal.signature) != SIGNATURE_LEN:
        return False
    return _verified(bytes(raw), proposal.signature, signed_bytes(proposal))


@lru_cache(maxsize=16_384)
def _verified(raw: bytes, signature: bytes, message: bytes) -> bool:
    """One Ed25519 check, remembered: replaying a log (restart, catch-up, a second reader of the
    same entry) then costs a dictionary lookup. The key is the full input, so a hit is exact."""
    public = _public_key(raw)
    if public is None:
        return False
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True
