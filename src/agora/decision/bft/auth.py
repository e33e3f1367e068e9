"""Keys, sealing and opening of replica messages, and client authenticators.

Two ways to hold keys:

* ``Keyring(secret, n)``: every key of the cluster, derived from one secret: replica ``i``'s
  Ed25519 key is ``AgentKey.generate(secret + ":replica:" + i)`` (the key handling of
  ``decision.signing``), the MAC key of a replica pair or of a (client, replica) pair is
  ``sha256(domain || secret || ids)``. For the simulator, tests and development clusters only:
  whoever holds the secret can act as any replica or client.
* ``Keyring.holding(...)``, built from a party's own key file (``keys.py``): a replica holds its
  own private key, every public key, the MAC keys of the pairs it belongs to and its client
  master key (a client's MAC key with replica ``r`` is :func:`client_key` of ``r``'s master); a
  client holds its MAC keys with every replica. Asking it for anything else raises
  :class:`MissingKey`, so a compromised replica or client has only its own keys to misuse.

Trade-off of the modes (see ``AuthMode``): a MAC is about 60 times cheaper than verifying a
signature but proves nothing to a third party, so a replica cannot forward a MACed vote as
evidence. The protocol is built so that it never needs to (view change uses the P/Q-set rule,
state transfer uses signed checkpoints): checkpoints, view changes and new views are signed in
both modes. Signature checks are cached by exact input (like ``decision.signing``); in the
simulator all replicas share that cache, so a signature is verified once per process, not once
per receiver: simulated crypto cost is lower than a deployment's.

Limitations: no key rotation; a client with a bad MAC for some replicas can make backups
disagree on whether its request is authentic (PBFT's known authenticator issue): that can cost
liveness (a view change) but never safety.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from agora.decision.bft.config import AuthMode
from agora.decision.bft.messages import (
    ALWAYS_SIGNED,
    ClientReply,
    ClientRequest,
    Inner,
    Sealed,
    decode_inner,
    encode,
    request_content,
)
from agora.decision.signing import AgentKey, signature_ok

_SIG_DOMAIN = b"agora.bft-sig:"
MAC_LEN = 32


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


@lru_cache(maxsize=32_768)
def _verified(raw: bytes, signature: bytes, data: bytes) -> bool:
    return signature_ok(raw, signature, data)


class MissingKey(LookupError):
    """A keyring built from one party's key file was asked for another party's key."""


def client_key(master: bytes, client_id: int) -> bytes:
    """The MAC key of ``client_id`` with the replica whose client master key is ``master``."""
    return _mac(master, b"agora.bft-client:%d" % client_id)


def _party(k: int) -> str:
    return f"client {-k}" if k < 0 else f"replica {k}"


class Keyring:
    """The key material one party holds (see the module notes on who may use what)."""

    def __init__(self, secret: bytes | str | int, n: int) -> None:
        self.secret: bytes | None = (str(secret).encode() if not isinstance(secret, bytes)
                                     else secret)
        self.n = n
        self.owner = "the cluster secret"
        self.keys: list[AgentKey | None] = [
            AgentKey.generate(self.secret + b":replica:" + str(i).encode()) for i in range(n)]
        self.public = [key.public_bytes for key in self.keys if key is not None]
        self._pair: dict[tuple[int, int], bytes] = {}
        self._client_masters: dict[int, bytes] = {}
        self._client_ok = lru_cache(maxsize=8_192)(self._check_client)

    @classmethod
    def holding(cls, n: int, public: list[bytes], *, owner: str,
                signing: dict[int, AgentKey] | None = None,
                pairs: dict[tuple[int, int], bytes] | None = None,
                client_masters: dict[int, bytes] | None = None) -> Keyring:
        """Only the given keys (one party's key file): anything else raises MissingKey."""
        if len(public) != n:
            raise ValueError(f"{owner}: {len(public)} public keys for {n} replicas")
        ring = cls.__new__(cls)
        ring.secret, ring.n, ring.owner = None, n, owner
        ring.keys = [(signing or {}).get(i) for i in range(n)]
        ring.public = list(public)
        ring._pair = {(min(a, b), max(a, b)): key for (a, b), key in (pairs or {}).items()}
        ring._client_masters = dict(client_masters or {})
        ring._client_ok = lru_cache(maxsize=8_192)(ring._check_client)
        return ring

    def pair_key(self, a: int, b: int) -> bytes:
        """Replica pair ``{a, b}``; clients use ``-client_id`` as their id."""
        lo, hi = min(a, b), max(a, b)
        key = self._pair.get((lo, hi))
        if key is None:
            if self.secret is not None:
                key = hashlib.sha256(b"agora.bft-mac:" + self.secret
                                     + f":{lo}:{hi}".encode()).digest()
            elif lo < 0 and hi in self._client_masters:
                key = client_key(self._client_masters[hi], -lo)
            else:
                raise MissingKey(f"{self.owner} holds no MAC key for {_party(lo)} and "
                                 f"{_party(hi)}")
            self._pair[(lo, hi)] = key
        return key

    # ---------------------------------------------------------------- replica messages

    def seal(self, sender: int, message: Inner, mode: AuthMode) -> Sealed:
        body = encode(message)
        if mode is AuthMode.SIGNATURES or isinstance(message, ALWAYS_SIGNED):
            key = self.keys[sender]
            if key is None:
                raise MissingKey(f"{self.owner} holds no signing key of replica {sender}")
            return Sealed(message.cluster, sender, body,
                          signature=key.sign_bytes(_SIG_DOMAIN + body))
        macs = tuple(b"" if r == sender else _mac(self.pair_key(sender, r), body)
                     for r in range(self.n))
        return Sealed(message.cluster, sender, body, macs=macs)

    def check_signature(self, sealed: Sealed) -> bool:
        return (0 <= sealed.sender < self.n and len(sealed.signature) == 64
                and _verified(self.public[sealed.sender], sealed.signature,
                              _SIG_DOMAIN + sealed.body))

    def open(self, me: int, sealed: Sealed, mode: AuthMode) -> Inner | None:
        """The authentic inner message, or None (bad auth, garbage, or a body naming another
        sender). A signature is accepted in MAC mode too; a MAC never for an always-signed
        type, nor in signature mode."""
        sender = sealed.sender
        if not 0 <= sender < self.n:
            return None
        if sealed.signature:
            if not self.check_signature(sealed):
                return None
            signed = True
        else:
            if mode is AuthMode.SIGNATURES or len(sealed.macs) != self.n or sender == me:
                return None
            if not hmac.compare_digest(sealed.macs[me],
                                       _mac(self.pair_key(sender, me), sealed.body)):
                return None
            signed = False
        try:
            message = decode_inner(sealed.body)
        except Exception:
            return None
        if message.replica != sender or message.cluster != sealed.cluster:
            return None
        if not signed and isinstance(message, ALWAYS_SIGNED):
            return None
        return message

    # ---------------------------------------------------------------- clients

    def client_macs(self, request: ClientRequest) -> tuple[bytes, ...]:
        content = request_content(request)
        return tuple(_mac(self.pair_key(-request.client_id, r), content) for r in range(self.n))

    def client_ok(self, me: int, request: ClientRequest) -> bool:
        """Whether ``request`` carries a valid MAC for replica ``me``. Remembered by exact
        request: a replica checks each request when it arrives (its node too, before trusting
        its address) and again inside the primary's pre-prepare."""
        return self._client_ok(me, request)

    def _check_client(self, me: int, request: ClientRequest) -> bool:
        if request.client_id <= 0 or len(request.macs) != self.n:
            return False
        expected = _mac(self.pair_key(-request.client_id, me), request_content(request))
        return hmac.compare_digest(request.macs[me], expected)

    def _reply_bytes(self, reply: ClientReply) -> bytes:
        return encode((reply.cluster, reply.replica, reply.view, reply.client_id,
                       reply.request_number, reply.index, reply.abandoned))

    def seal_reply(self, reply: ClientReply) -> ClientReply:
        key = self.pair_key(-reply.client_id, reply.replica)
        return ClientReply(reply.cluster, reply.replica, reply.view, reply.client_id,
                           reply.request_number, reply.index, _mac(key, self._reply_bytes(reply)),
                           reply.abandoned)

    def reply_ok(self, reply: ClientReply) -> bool:
        if not 0 <= reply.replica < self.n:
            return False
        key = self.pair_key(-reply.client_id, reply.replica)
        return hmac.compare_digest(reply.mac, _mac(key, self._reply_bytes(reply)))
