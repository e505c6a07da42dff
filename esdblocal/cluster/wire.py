"""The members' own calls to each other, on each node's gRPC port: gossip, votes, replication.

The real server gossips and elects over gRPC (``event_store.cluster.Gossip`` and
``Elections``) and replicates over its internal TCP port; esdblocal carries all three as
one gRPC service of its own, ``esdblocal.cluster.Internal``, whose messages are msgpack
(msgspec Structs): no client ever calls it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import msgspec

SERVICE = "esdblocal.cluster.Internal"
GOSSIP = f"/{SERVICE}/Gossip"
VOTE = f"/{SERVICE}/Vote"
REPLICATE = f"/{SERVICE}/Replicate"


class Epoch(msgspec.Struct, array_like=True, frozen=True):
    """One leader's term as its ``$epoch-information`` event records it: the event's
    position (where the epoch starts), the epoch's number and id, and who led it."""

    number: int
    position: int
    id: str
    leader: int


class State(msgspec.Struct, frozen=True):
    """What a member says about itself (its half of a gossip exchange)."""

    index: int
    instance_id: str
    state: str  # a VNodeState name: Unknown, PreLeader, Leader, CatchingUp, Follower, ...
    term: int  # the last election it took part in
    leader: int  # the member it follows or leads (-1: none known)
    epoch: Epoch | None  # the last epoch in its log
    writer: int  # where its next record goes (the writer checkpoint)
    chaser: int  # the last position it holds (-1: none)
    committed: int  # the last position it knows a majority holds
    host: str
    port: int
    http_port: int | None
    started: float  # when this process started (a restarted member is a new instance)


class VoteRequest(msgspec.Struct, frozen=True):
    term: int
    candidate: int
    epoch_number: int
    writer: int


class VoteReply(msgspec.Struct, frozen=True):
    term: int
    granted: bool


class Subscribe(msgspec.Struct, tag=True, frozen=True):
    """A follower's first message: where its log ends and its last epochs, newest first."""

    index: int
    term: int
    writer: int
    epochs: list[Epoch]


class Ack(msgspec.Struct, tag=True, frozen=True):
    """The follower holds (durably) every record up to ``position``."""

    position: int


Row = tuple[int, str, int, str, str, str, int, bytes, bytes]  # a Recorded, field by field


class Batch(msgspec.Struct, tag=True, frozen=True):
    """Records after the follower's position, in log order. ``checkpoints`` (the
    leader's projection checkpoints) come when the batch reaches the leader's head;
    ``committed`` is the last position a majority holds, as the leader knows it."""

    rows: list[Row]
    checkpoints: dict[str, int] | None
    head: int
    committed: int


class Truncate(msgspec.Struct, tag=True, frozen=True):
    """The follower's log diverged at ``position``: it must drop everything from there."""

    position: int


class Refused(msgspec.Struct, tag=True, frozen=True):
    """Not the leader (any more), or a stale term."""

    reason: str


FromFollower = Subscribe | Ack
FromLeader = Batch | Truncate | Refused

_encoder = msgspec.msgpack.Encoder()
encode = _encoder.encode
decode_state = msgspec.msgpack.Decoder(State).decode
decode_vote_request = msgspec.msgpack.Decoder(VoteRequest).decode
decode_vote_reply = msgspec.msgpack.Decoder(VoteReply).decode
decode_from_follower = msgspec.msgpack.Decoder(FromFollower).decode
decode_from_leader = msgspec.msgpack.Decoder(FromLeader).decode


def handler(
    gossip: Callable[[State, grpc.aio.ServicerContext], Awaitable[State]],
    vote: Callable[[VoteRequest, grpc.aio.ServicerContext], Awaitable[VoteReply]],
    replicate: Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]],
) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Gossip": grpc.unary_unary_rpc_method_handler(
                gossip, request_deserializer=decode_state, response_serializer=encode
            ),
            "Vote": grpc.unary_unary_rpc_method_handler(
                vote, request_deserializer=decode_vote_request, response_serializer=encode
            ),
            "Replicate": grpc.stream_stream_rpc_method_handler(
                replicate, request_deserializer=decode_from_follower, response_serializer=encode
            ),
        },
    )


class Peer:
    """One other member, reached over its gRPC port."""

    def __init__(self, index: int, host: str, port: int, ca: bytes | None = None) -> None:
        """``ca``: a secure cluster's CA; the member is then dialled over TLS, as it serves."""
        self.index = index
        self.target = f"{host}:{port}"
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            # A killed member is noticed at once, and a restarted one dialled at once.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 300),
            ("grpc.min_reconnect_backoff_ms", 100),
        ]
        self._channel = (
            grpc.aio.insecure_channel(self.target, options=options)
            if ca is None
            else grpc.aio.secure_channel(self.target, grpc.ssl_channel_credentials(ca), options)
        )
        self.gossip = self._channel.unary_unary(
            GOSSIP, request_serializer=encode, response_deserializer=decode_state
        )
        self.vote = self._channel.unary_unary(
            VOTE, request_serializer=encode, response_deserializer=decode_vote_reply
        )
        self.replicate = self._channel.stream_stream(
            REPLICATE, request_serializer=encode, response_deserializer=decode_from_leader
        )

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel to this member (a follower forwards clients' writes to its leader)."""
        return self._channel

    async def close(self) -> None:
        await self._channel.close()
