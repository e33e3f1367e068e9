"""Wire messages, log entries and the replica's outbox: everything a transport needs to carry.

Every message is a frozen, tagged, ``array_like`` msgspec Struct whose first two fields are the
cluster id and the sender (a replica index, or a client id for :class:`Request`; a
:class:`RequestBatch` carries whole requests instead, each with its own), so one decoder reads
any datagram and a receiver drops traffic from another cluster before looking further.
:func:`encode` / :func:`decode` are the wire format (msgpack); they are the only codec the
simulator and a real transport should use, so the simulator exercises the bytes a socket would.

Schema evolution follows ``agora.core.events``: append fields at the end with defaults, never
reorder or reuse a tag.

Outbox items (:class:`Send`, :class:`Broadcast`, :class:`ToClient`, :class:`Committed`) are what a
replica returns from each step; they never go on the wire themselves. ``Broadcast`` means "every
other replica" (a client's ``Broadcast`` means every replica), so a transport may multicast it.
"""

from __future__ import annotations

import msgspec


class Entry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One op of the replicated log, immutable once prepared.

    ``view`` is the view that first prepared it; ``received_ns`` and ``stamp_ns`` are that view's
    leader clock at the request's receipt and at prepare; ``commit_hint`` is that leader's commit
    number when it prepared this entry (what the deadline rule reads, see ``deadline.py``).
    ``client_id == 0`` marks a no-op the leader appended itself.
    """

    index: int
    view: int
    client_id: int
    request_number: int
    budget_ns: int
    received_ns: int
    stamp_ns: int
    commit_hint: int
    payload: bytes


class Message(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    """Base of every wire message: which cluster it belongs to."""

    cluster: int


class Request(Message):
    """A client asks for ``payload`` to be committed once; ``budget_ns`` 0 means no deadline."""

    client_id: int
    request_number: int
    budget_ns: int
    payload: bytes


class Reply(Message):
    """Where a client's request sits in the log, and whether it was abandoned.

    From the leader of ``view`` (``replica == view % n``) it says the request committed. From a
    backup it is a *backup acknowledgement*: the backup holds the request at ``index``, as
    prepared by the leader of ``view`` (only for requests without a deadline, so ``abandoned``
    is False). ``f`` such acknowledgements from distinct backups for the same view and index
    mean ``f + 1`` replicas hold it (the leader sent it): committed, by VR's own rule, one
    network hop sooner than the leader's reply can arrive. See ``client.py``.

    ``queue_full`` (from the leader only, with ``index`` 0): the request was *not* queued because
    the leader's queue is full (``ReplicaConfig.pending_max``); the client should retry it there
    after a pause rather than wait for its retry timer. It says nothing of any commit.
    """

    replica: int
    view: int
    client_id: int
    request_number: int
    index: int
    abandoned: bool
    queue_full: bool = False  # appended (schema evolution): older peers read False


class RequestBatch(Message):
    """Several clients' requests in one datagram (a client process's event-loop turn).

    Each request keeps its own client id and request number, so exactly-once is unchanged: the
    leader takes them one by one, in order, as if they had come in separate datagrams.
    """

    requests: tuple[Request, ...]


class Hello(Message):
    """A client process tells every replica where clients ``first_id .. first_id + count - 1``
    listen (a transport matter: backups need it to send acknowledgements; replicas' state
    machines ignore it)."""

    first_id: int
    count: int


class ReplyBatch(Message):
    """Several replies to clients behind one address (a transport's grouping, never a step's)."""

    replica: int
    replies: tuple[Reply, ...]


class Prepare(Message):
    """Leader -> backups: consecutive log entries of ``view``, and the leader's commit number."""

    replica: int
    view: int
    commit: int
    entries: tuple[Entry, ...]


class PrepareOk(Message):
    """Backup -> leader: "I hold every entry of ``view``'s log up to ``op``" (cumulative).

    ``checkpoint``: the sender's newest durable checkpoint (``Storage.kept_checkpoint``), from
    which the leader works out how far every replica may compact (see ``Commit``)."""

    replica: int
    view: int
    op: int
    checkpoint: int = 0  # appended (schema evolution): older peers send 0


class Commit(Message):
    """Leader heartbeat: commit number, sent when there is nothing to prepare, and the
    compaction floor: no replica's newest durable checkpoint is below ``floor``, so none will
    ever need an entry at or below it from another (see ``core.py``)."""

    replica: int
    view: int
    commit: int
    floor: int = 0  # appended (schema evolution): older leaders send 0


class StartViewChange(Message):
    """A replica suspects the leader and votes to move to ``view``; carries its commit number."""

    replica: int
    view: int
    commit: int


class DoViewChange(Message):
    """A vote for ``view`` sent to its leader, with the voter's log after ``base``.

    ``base`` never exceeds the commit number the new leader announced in its own
    StartViewChange, so the leader already holds entries ``1..base``.
    """

    replica: int
    view: int
    log_view: int
    op: int
    commit: int
    base: int
    entries: tuple[Entry, ...]


class StartView(Message):
    """The leader's log of ``view`` after ``base`` (a prefix of it when capped) and commit."""

    replica: int
    view: int
    commit: int
    base: int
    entries: tuple[Entry, ...]


class RequestStartView(Message):
    """A lagging replica asks the leader of ``view`` for its log after ``base``."""

    replica: int
    view: int
    base: int


class PreVote(Message):
    """A backup that has not heard from its leader asks whether the others have not either,
    before starting ``view`` (it persists nothing and changes nothing by asking)."""

    replica: int
    view: int


class PreVoteOk(Message):
    """The sender has not heard from its leader either (or is itself changing views)."""

    replica: int
    view: int


class Recovery(Message):
    """A replica whose storage may have lost writes asks the cluster for its state."""

    replica: int
    view: int
    nonce: int
    commit: int


class RecoveryResponse(Message):
    """Answer to :class:`Recovery`; only the leader of ``view`` sends log entries."""

    replica: int
    view: int
    nonce: int
    commit: int
    base: int
    entries: tuple[Entry, ...]


ReplicaMessage = (
    Prepare
    | PrepareOk
    | Commit
    | StartViewChange
    | DoViewChange
    | StartView
    | RequestStartView
    | PreVote
    | PreVoteOk
    | Recovery
    | RecoveryResponse
)
AnyMessage = Request | Reply | RequestBatch | ReplyBatch | Hello | ReplicaMessage


class Send(msgspec.Struct, frozen=True, gc=False):
    """Outbox: send ``message`` to replica ``to``."""

    to: int
    message: Message


class Broadcast(msgspec.Struct, frozen=True, gc=False):
    """Outbox: send ``message`` to every other replica."""

    message: Message


class ToClient(msgspec.Struct, frozen=True, gc=False):
    """Outbox: send ``message`` (a :class:`Reply`) to client ``client_id``.

    A leader's replies answer committed entries and must follow the step's ``Committed``
    records; a backup's acknowledgements (``message.replica`` is not the view's leader) are
    about entries it has not seen commit, so a transport may send them first.
    """

    client_id: int
    message: Message


class Committed(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Outbox: log entry ``index`` is committed; emitted in index order, once per index.

    ``view`` is the view that prepared the entry. ``client_id == 0`` is a leader no-op that an
    application skips. ``abandoned`` is the deadline verdict every replica agrees on.
    """

    index: int
    view: int
    client_id: int
    request_number: int
    payload: bytes
    abandoned: bool


Outbox = Send | Broadcast | ToClient | Committed

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyMessage)


def encode(message: Message) -> bytes:
    """The message's wire bytes (msgpack, array-like, tag first)."""
    return _encoder.encode(message)


def decode(data: bytes) -> AnyMessage:
    """Parse wire bytes; raises ``msgspec.ValidationError``/``DecodeError`` on garbage."""
    return _decoder.decode(data)
