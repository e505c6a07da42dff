"""The follower's refusals on the gRPC port, before any handler runs.

A real follower answers every write, and every read whose client sends ``requires-leader:
true`` (esdbclient does unless its node preference is not the leader), with ``NotLeader``
naming the leader (``RpcExceptions.LeaderInfo``); with no leader known (an election) it
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
# Served by any member unless the caller requires the leader.
READS = frozenset(
    {
        "/event_store.client.streams.Streams/Read",
    }
)


def leader_required(method: str, metadata: Any) -> bool | None:
    """True: only the leader serves this call; False: any member; None: every member."""
    service = method[1:].partition("/")[0]
    if service in EVERY_MEMBER:
        return None
    if method in READS:
        for key, value in metadata or ():
            if key == "requires-leader":
                return str(value).lower() == "true"
        return False
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
    def __init__(self, refusal: Callable[[], BaseException | None]) -> None:
        """``refusal``: None when this member is the leader, else what it answers."""
        self._refusal = refusal

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
        return _wrapped(handler, refusal)


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
