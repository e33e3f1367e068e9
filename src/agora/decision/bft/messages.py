"""Wire types of the Byzantine mode, the batch digest and the checkpoint hash chain.

Every replica message travels inside a :class:`Sealed` envelope: the sender, the body's msgpack
bytes and either an Ed25519 signature or an authenticator (one HMAC per replica). The body
repeats its sender, and a receiver drops an envelope whose body names someone else. Clients send
:class:`ClientRequest` with their own authenticator (one MAC per replica, keyed per client and
replica), and replicas answer with a MACed :class:`ClientReply`.

Digests cover request content only (client, request number, budget, payload), never the MACs,
so the same request retried with a fresh authenticator has the same digest. The chain is
``chain(k) = sha256(chain(k - 1) || digest(k))`` from 32 zero bytes: a checkpoint names the
whole executed prefix, so a state transfer can be checked against 2f + 1 signed checkpoints
whoever sends the batches.

Schema evolution as in ``consensus.messages``: append fields with defaults, never reorder.
"""

from __future__ import annotations

import hashlib

import msgspec


class ClientRequest(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    cluster: int
    client_id: int
    request_number: int
    budget_ns: int
    payload: bytes
    macs: tuple[bytes, ...] = ()  # one per replica, index = replica


class ClientReply(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    cluster: int
    replica: int
    view: int
    client_id: int
    request_number: int
    index: int  # of the request in the executed request sequence
    mac: bytes = b""
    abandoned: bool = False  # the deadline verdict (``deadline.py``); covered by the MAC


class Sealed(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    """An authenticated replica message: ``body`` is the encoded inner message."""

    cluster: int
    sender: int
    body: bytes
    signature: bytes = b""
    macs: tuple[bytes, ...] = ()


class Inner(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    cluster: int
    replica: int


class PrePrepare(Inner):
    view: int
    seq: int
    digest: bytes
    batch: tuple[ClientRequest, ...]


class Prepare(Inner):
    view: int
    seq: int
    digest: bytes


class Commit(Inner):
    view: int
    seq: int
    digest: bytes


class PEntry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Prepared: ``seq`` held ``digest`` (content ``batch``) with a certificate in ``view``."""

    seq: int
    view: int
    digest: bytes
    batch: tuple[ClientRequest, ...]


class QEntry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Pre-prepared: the replica accepted a pre-prepare of ``digest`` for ``seq`` in ``view``."""

    seq: int
    view: int
    digest: bytes


class Checkpoint(Inner):
    """Always signed: "I executed up to ``seq`` and my chain there is ``chain``"."""

    seq: int
    chain: bytes


class ViewChange(Inner):
    """Always signed. ``proof``: 2f + 1 sealed checkpoints for ``(ckpt_seq, ckpt_chain)``
    (empty at seq 0); P and Q entries above ``ckpt_seq``."""

    view: int
    ckpt_seq: int
    ckpt_chain: bytes
    proof: tuple[Sealed, ...]
    prepared: tuple[PEntry, ...]
    preprepared: tuple[QEntry, ...]


class NewView(Inner):
    """Always signed by the new primary: the view changes it decided from (their content
    fixes the new view's pre-prepares, which every backup recomputes)."""

    view: int
    view_changes: tuple[Sealed, ...]


class Timing(Inner):
    """Always signed: "I executed batch ``seq`` this long after I first saw each of its new
    requests with a budget" (in batch order; ``deadline.LATE`` where I never saw one before).
    2f + 1 of them from distinct replicas, put in a later batch by the primary, decide those
    deadlines."""

    seq: int
    elapsed: tuple[int, ...]


class Status(Inner):
    """Heartbeat: where the sender is; peers answer with a NewView or a Fill it lacks.
    ``suspect``: its timer ran out in ``view`` and it would leave it; ``boot`` (a number of the
    sender's incarnation) and ``beat`` (its count of Status messages in that incarnation) let a
    receiver drop one older than the latest it has; ``seen`` (the boot of each replica's latest
    Status the sender had, by replica number, 0 for none; its own boot at its own) lets a
    receiver tell one sent after the sender heard the receiver's incarnation (``suspicion.py``)."""

    view: int
    executed: int
    suspect: bool = False
    boot: int = 0
    beat: int = 0
    seen: tuple[int, ...] = ()


class Fill(Inner):
    """State transfer: batches ``start .. seq`` and signed checkpoints for the chain at ``seq``:
    f + 1 signers make it safe to apply (one is correct), 2f + 1 also make it stable. Checked
    against the proof, so any one sender will do."""

    seq: int
    chain: bytes
    proof: tuple[Sealed, ...]
    start: int
    batches: tuple[tuple[ClientRequest, ...], ...]


InnerMessage = (PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView | Status | Fill
                | Timing)
WireMessage = Sealed | ClientRequest | ClientReply
ALWAYS_SIGNED = (Checkpoint, ViewChange, NewView, Timing)

_encoder = msgspec.msgpack.Encoder()
_inner_decoder = msgspec.msgpack.Decoder(InnerMessage)
_wire_decoder = msgspec.msgpack.Decoder(WireMessage)
_content_encoder = msgspec.msgpack.Encoder()
ZERO_CHAIN = bytes(32)


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> WireMessage:
    """Parse a datagram; raises ``msgspec.ValidationError``/``DecodeError`` on garbage."""
    return _wire_decoder.decode(data)


def decode_inner(data: bytes) -> InnerMessage:
    return _inner_decoder.decode(data)


def request_content(request: ClientRequest) -> bytes:
    """What a client's MACs and a batch digest cover: everything but the MACs."""
    return _content_encoder.encode((request.cluster, request.client_id, request.request_number,
                                    request.budget_ns, request.payload))


def digest(batch: tuple[ClientRequest, ...]) -> bytes:
    h = hashlib.sha256(b"agora.bft-batch")
    for request in batch:
        h.update(request_content(request))
    return h.digest()


def chain_next(chain: bytes, batch_digest: bytes) -> bytes:
    return hashlib.sha256(chain + batch_digest).digest()
