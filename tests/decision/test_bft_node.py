"""The Byzantine-mode node without sockets: what a datagram may change before authentication."""

from __future__ import annotations

from agora.core.clock import SimClock
from agora.decision.bft import BftClient, BftConfig, BftReplica, Keyring
from agora.decision.bft.messages import ClientRequest, encode
from agora.decision.transport.bft_node import BftNode
from agora.decision.transport.framing import frames

PEERS = [("127.0.0.1", 9001 + r) for r in range(4)]


def test_only_an_authentic_request_teaches_the_node_a_clients_address():
    keys = Keyring("node-test", 4)
    node = BftNode(BftReplica(BftConfig(cluster=1, replica=1, n=4), keys), PEERS, SimClock())
    node.replica.start(0)
    [broadcast] = BftClient(1, 7, keys).request(b"x", 0, 0)
    genuine: ClientRequest = broadcast.message
    forged = ClientRequest(1, 7, 1, 0, b"x", tuple(b"\0" * 32 for _ in range(4)))
    [datagram] = frames(encode(forged), 1)
    node.on_datagram(datagram, ("10.0.0.66", 4444))
    assert 7 not in node.clients  # the forger cannot redirect client 7's replies
    [datagram] = frames(encode(genuine), 2)
    node.on_datagram(datagram, ("127.0.0.1", 5555))
    assert node.clients[7] == ("127.0.0.1", 5555)
    node.on_datagram(frames(encode(forged), 3)[0], ("10.0.0.66", 4444))
    assert node.clients[7] == ("127.0.0.1", 5555)
