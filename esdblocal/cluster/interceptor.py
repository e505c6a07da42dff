"""The follower's refusals on the gRPC port, before any handler runs.

A real follower answers every write whose client sends ``requires-leader: true`` (esdbclient
always does), and every such read, with ``NotLeader`` naming the leader
(``RpcExceptions.LeaderInfo``); a write without it (the Node.js client's default) it forwards
to the leader and answers with the leader's answer (``ClusterVNodeController``'s
``ForwardRequest``); with no leader known (an election) it
answers ``Server Is Not Ready``. Persistent subscriptions and projections live on the
leader only. Gossip, server features and the members' own calls are served by every member.

On the leader the handlers run as they are, except that a write whose majority does not
come within the commit timeout ends as the real server's does (ABORTED "Operation timed
out"), and a refusal that comes back from the log mid-call is sent as above.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from esdblocal.cluster.errors import CommitTimeout, NotLeader, NotReady
from esdblocal.cluster.wire import SERVICE as INTERNAL

# Served by every member, whatever its state.
EVERY_MEMBER = frozenset(
    {
        "event_store.client.gossip.Gossip",
        "event_store.client.server_features.ServerFeatures",
        INTERNAL,
        "grpc.health.v1.Health",
    }
)
# Writes a follower forwards to its leader unless the caller requires the leader.
FORWARDED = frozenset(
    {
        "/event_store.client.streams.Streams/Append",
        "/event_store.client.streams.Streams/BatchAppend",
        "/event_store.client.streams.Streams/Delete",
        "/event_store.client.streams.Streams/Tombstone",
    }
)
# Headers grpc sets itself on the forwarded call.
_OWN_HEADERS = ("user-agent", "te", "content-type", "grpc-", ":")
# Served by any member unless the caller requires the leader.
READS = frozenset(
    {
        "/event_store.client.streams.Streams/Read",
    }
)


def _requires_leader(metadata: Any) -> bool | None:
    for key, value in metadata or ():
        if key == "requires-leader":
            return str(value).lower() == "true"
    return None


def forwardable(method: str, metadata: Any) -> bool:
    """A write a follower forwards: the caller did not send ``requires-leader: true``."""
    return method in FORWARDED and not _requires_leader(metadata)


def leader_required(method: str, metadata: Any) -> bool | None:
    """True: only the leader serves this call; False: any member; None: every member."""
    service = method[1:].partition("/")[0]
    if service in EVERY_MEMBER:
        return None
    if method in READS:
        return bool(_requires_leader(metadata))
    return True


async def abort(context: grpc.aio.ServicerContext, error: BaseException) -> None:
    """The real server's answer for each refusal (always raises)."""
    if isinstance(error, NotLeader):
        context.set_trailing_metadata(
            (
                ("exception", "not-leader"),
                ("leader-endpoint-host", error.host),
                ("leader-endpoint-port", str(error.port)),
            )
        )
        await context.abort(grpc.StatusCode.NOT_FOUND, "Leader info available")
    if isinstance(error, NotReady):
        await context.abort(grpc.StatusCode.UNAVAILABLE, "Server Is Not Ready")
    if isinstance(error, CommitTimeout):
        await context.abort(grpc.StatusCode.ABORTED, "Operation timed out: Commit phase timeout.")
    raise error


_Refusals = (NotLeader, NotReady, CommitTimeout)


class ClusterInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        refusal: Callable[[], BaseException | None],
        leader_channel: Callable[[], grpc.aio.Channel | None] = lambda: None,
    ) -> None:
        """``refusal``: None when this member is the leader, else what it answers;
        ``leader_channel``: the leader's channel, while following one."""
        self._refusal = refusal
        self._leader_channel = leader_channel

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        required = leader_required(details.method, details.invocation_metadata)
        if required is None:
            return handler
        refusal = self._refusal() if required else None
        if isinstance(refusal, NotLeader) and forwardable(
            details.method, details.invocation_metadata
        ):
            channel = self._leader_channel()
            if channel is not None:
                return _forwarding(handler, details.method, channel)
        return _wrapped(handler, refusal)


def _same(message: bytes) -> bytes:
    return message


def _forwarding(handler: grpc.RpcMethodHandler, method: str, channel: grpc.aio.Channel) -> Any:
    """A handler of the same kind that relays the call, as bytes, to the leader: its answers,
    status and trailers become this call's."""

    def metadata(context: grpc.aio.ServicerContext) -> tuple[tuple[str, Any], ...]:
        return tuple(
            (key, value)
            for key, value in context.invocation_metadata() or ()
            if not key.startswith(_OWN_HEADERS)
        )

    async def relayed_error(context: grpc.aio.ServicerContext, error: grpc.aio.AioRpcError) -> None:
        trailers = error.trailing_metadata()
        if trailers:
            context.set_trailing_metadata(tuple(trailers))
        await context.abort(error.code(), error.details() or "")

    if handler.request_streaming and handler.response_streaming:  # BatchAppend
        bidi = channel.stream_stream(method, _same, _same)

        async def stream_stream(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[bytes]:
            call = bidi(requests, metadata=metadata(context), timeout=context.time_remaining())
            try:
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as error:
                await relayed_error(context, error)

        return grpc.stream_stream_rpc_method_handler(stream_stream)
    # Append (client streaming), Delete and Tombstone (unary): one answer.
    if handler.request_streaming:
        call: Any = channel.stream_unary(method, _same, _same)
        make: Any = grpc.stream_unary_rpc_method_handler
    else:
        call = channel.unary_unary(method, _same, _same)
        make = grpc.unary_unary_rpc_method_handler

    async def one_answer(request: Any, context: grpc.aio.ServicerContext) -> bytes:
        try:
            return await call(  # type: ignore[no-any-return]
                request, metadata=metadata(context), timeout=context.time_remaining()
            )
        except grpc.aio.AioRpcError as error:
            await relayed_error(context, error)
            raise

    return make(one_answer)


def _wrapped(handler: grpc.RpcMethodHandler, refusal: BaseException | None) -> Any:
    """The same kind of handler: refusing at once, or mapping refusals raised inside."""
    streaming_response = handler.response_streaming
    behavior = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )

    if streaming_response:

        async def stream_behavior(
            request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            if refusal is not None:
                await abort(context, refusal)
            try:
                async for response in behavior(request, context):
                    yield response
            except _Refusals as error:
                await abort(context, error)

        new: Any = stream_behavior
    else:

        async def unary_behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if refusal is not None:
                await abort(context, refusal)
            try:
                return await behavior(request, context)
            except _Refusals as error:
                await abort(context, error)

        new = unary_behavior

    if handler.request_streaming and streaming_response:
        make = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        make = grpc.stream_unary_rpc_method_handler
    elif streaming_response:
        make = grpc.unary_stream_rpc_method_handler
    else:
        make = grpc.unary_unary_rpc_method_handler
    return make(
        new,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
