"""Calls in flight when the node stops, as KurrentDB ends them
(``GrpcStreamingShutdownMiddleware`` with ``ServerShuttingDownInterceptor``): every streaming
call (subscriptions, reads, appends, persistent subscriptions) ends at once with
``UNAVAILABLE "The server is shutting down. Please retry after 5 seconds."`` and the rich
details ``ErrorInfo(SERVER_SHUTTING_DOWN)`` and ``RetryInfo`` (5 s on a single node); unary
calls drain, within the stop's grace.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from esdblocal.services import rich_status

RETRY_AFTER_SECONDS = 5  # a single node: the client waits for it to come back
MESSAGE = f"The server is shutting down. Please retry after {RETRY_AFTER_SECONDS} seconds."


class ShuttingDown(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self._open: set[asyncio.Task[Any]] = set()
        self.stopping = False

    def stop_streaming_calls(self) -> None:
        """Begin the shutdown: every open streaming call ends as the server's do."""
        self.stopping = True
        for task in list(self._open):
            task.cancel()

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        kinds = {
            (True, True): (grpc.stream_stream_rpc_method_handler, handler.stream_stream),
            (True, False): (grpc.stream_unary_rpc_method_handler, handler.stream_unary),
            (False, True): (grpc.unary_stream_rpc_method_handler, handler.unary_stream),
        }
        make, behaviour = kinds[(handler.request_streaming, handler.response_streaming)]
        # A response stream is an async generator, or a coroutine writing with
        # context.write (as the refusing handlers of Authenticate).
        streams = inspect.isasyncgenfunction(behaviour)
        wrapped = self._streaming(behaviour) if streams else self._call(behaviour)
        return make(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _call(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            task = self._enter()
            try:
                if self.stopping:  # began while stopping: ends at once, as the server's would
                    await self._ended_by_shutdown(context)
                return await behaviour(request, context)
            except asyncio.CancelledError:
                await self._ended_by_shutdown(context)
                raise
            finally:
                self._open.discard(task)

        return call

    def _streaming(
        self, behaviour: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        """Cancelled only while the service's own code runs: a cancellation landing in
        gRPC's write of a response would end the call without our status. A shutdown that
        finds the call writing ends it when the write is done."""

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            task = self._enter()
            responses = behaviour(request, context).__aiter__()
            try:
                while True:
                    if self.stopping:
                        await self._ended_by_shutdown(context)
                    self._open.add(task)
                    try:
                        response = await responses.__anext__()
                    except StopAsyncIteration:
                        return
                    finally:
                        self._open.discard(task)
                    yield response
            except asyncio.CancelledError:
                await self._ended_by_shutdown(context)
                raise

        return streaming

    def _enter(self) -> asyncio.Task[Any]:
        """The call's task, among those a shutdown cancels (``_open``: each is there while
        it runs the service's code)."""
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        return task

    async def _ended_by_shutdown(self, context: grpc.aio.ServicerContext) -> None:
        """A cancellation by the shutdown (not by the client) becomes the server's answer."""
        if not self.stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        await rich_status.abort(
            context,
            grpc.StatusCode.UNAVAILABLE,
            MESSAGE,
            "SERVER_SHUTTING_DOWN",
            "server",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
