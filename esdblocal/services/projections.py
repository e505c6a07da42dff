"""The Projections gRPC service over the projection subsystem (esdblocal.projections).

Refusals are the real server's: an unknown projection is ``NOT_FOUND "Projection 'x' not
found"``; a name taken, or a running projection deleted, is ``UNKNOWN`` with the envelope
text esdbclient recognises ("… received Conflict instead", "… received OperationFailed
instead"); tracking emitted streams without emitting is "Exception was thrown by handler.".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
from esdbclient.protos.Grpc import projections_pb2, projections_pb2_grpc, shared_pb2
from google.protobuf import json_format, struct_pb2

from esdblocal.projections.manager import (
    CONTINUOUS,
    ONE_TIME,
    TRANSIENT,
    Managed,
    ProjectionError,
    ProjectionManager,
)
from esdblocal.security import deny
from esdblocal.services.shared import NodeParts


class Projections(projections_pb2_grpc.ProjectionsServicer):  # type: ignore[misc]
    def __init__(self, parts: NodeParts, manager: ProjectionManager) -> None:
        self._manager = manager
        self._parts = parts
        self._users = parts.users  # None: an insecure node

    async def _authenticated(self, context: grpc.aio.ServicerContext) -> None:
        """A secure node manages projections for signed-in users only (anonymous: Access
        Denied); bad credentials never get here (the interceptor refused them)."""
        if self._users is not None and self._parts.principal(context) is None:
            await deny(context)

    async def _refuse(self, context: grpc.aio.ServicerContext, error: ProjectionError) -> None:
        if error.kind == "NotFound":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Projection '{error.name}' not found")
        if error.kind == "Invalid":
            await context.abort(grpc.StatusCode.UNKNOWN, "Exception was thrown by handler.")
        await context.abort(
            grpc.StatusCode.UNKNOWN,
            f"Envelope callback expected Updated, received {error.kind} instead",
        )

    async def _managed(self, context: grpc.aio.ServicerContext, call: Awaitable[Any]) -> None:
        """Run a management call; a refusal becomes the server's error."""
        try:
            await call
        except ProjectionError as error:
            await self._refuse(context, error)

    async def Create(
        self, request: projections_pb2.CreateReq, context: grpc.aio.ServicerContext
    ) -> projections_pb2.CreateResp:
        await self._authenticated(context)
        options = request.options
        which = options.WhichOneof("mode")
        try:
            if which == "continuous":
                c = options.continuous
                await self._manager.create(
                    c.name, options.query, CONTINUOUS, c.emit_enabled, c.track_emitted_streams
                )
            elif which == "transient":
                await self._manager.create(options.transient.name, options.query, TRANSIENT)
            else:
                await self._manager.create(None, options.query, ONE_TIME)
        except ProjectionError as error:
            await self._refuse(context, error)
        return projections_pb2.CreateResp()

    async def Update(
        self, request: projections_pb2.UpdateReq, context: grpc.aio.ServicerContext
    ) -> projections_pb2.UpdateResp:
        await self._authenticated(context)
        options = request.options
        emit = options.emit_enabled if options.WhichOneof("emit_option") == "emit_enabled" else None
        await self._managed(context, self._manager.update(options.name, options.query, emit))
        return projections_pb2.UpdateResp()

    async def Delete(
        self, request: projections_pb2.DeleteReq, context: grpc.aio.ServicerContext
    ) -> projections_pb2.DeleteResp:
        await self._authenticated(context)
        o = request.options
        await self._managed(
            context,
            self._manager.delete(
                o.name, o.delete_emitted_streams, o.delete_state_stream, o.delete_checkpoint_stream
            ),
        )
        return projections_pb2.DeleteResp()

    async def Statistics(
        self, request: projections_pb2.StatisticsReq, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[projections_pb2.StatisticsResp]:
        await self._authenticated(context)
        options = request.options
        which = options.WhichOneof("mode")
        selected: list[Managed]
        if which == "name":
            try:
                selected = [self._manager.get(options.name)]
            except ProjectionError as error:
                await self._refuse(context, error)
        else:
            mode = {"transient": TRANSIENT, "continuous": CONTINUOUS, "one_time": ONE_TIME}
            wanted = mode.get(which or "")
            selected = [m for m in self._manager.projections.values() if wanted in (None, m.mode)]
        for managed in selected:
            details = projections_pb2.StatisticsResp.Details(**self._manager.statistics(managed))
            yield projections_pb2.StatisticsResp(details=details)

    async def Disable(
        self, request: projections_pb2.DisableReq, context: grpc.aio.ServicerContext
    ) -> projections_pb2.DisableResp:
        await self._authenticated(context)
        await self._managed(
            context, self._manager.disable(request.options.name, request.options.write_checkpoint)
        )
        return projections_pb2.DisableResp()

    async def Enable(
        self, request: projections_pb2.EnableReq, context: grpc.aio.ServicerContext
    ) -> projections_pb2.EnableResp:
        await self._authenticated(context)
        await self._managed(context, self._manager.enable(request.options.name))
        return projections_pb2.EnableResp()

    async def Reset(
        self, request: projections_pb2.ResetReq, context: grpc.aio.ServicerContext
    ) -> projections_pb2.ResetResp:
        await self._authenticated(context)
        await self._managed(context, self._manager.reset(request.options.name))
        return projections_pb2.ResetResp()

    async def _value(
        self, name: str, partition: str, context: grpc.aio.ServicerContext, result: bool = False
    ) -> struct_pb2.Value:
        try:
            managed = self._manager.get(name)
        except ProjectionError as error:
            await self._refuse(context, error)
        if managed.fault:
            # A projection whose query never compiled has no state to give: the real
            # server never answers (the client's deadline ends the call).
            await asyncio.Event().wait()
        read = self._manager.result if result else self._manager.state
        return _to_value(read(name, partition))

    async def State(
        self, request: projections_pb2.StateReq, context: grpc.aio.ServicerContext
    ) -> projections_pb2.StateResp:
        await self._authenticated(context)
        value = await self._value(request.options.name, request.options.partition, context)
        return projections_pb2.StateResp(state=value)

    async def Result(
        self, request: projections_pb2.ResultReq, context: grpc.aio.ServicerContext
    ) -> projections_pb2.ResultResp:
        await self._authenticated(context)
        options = request.options
        value = await self._value(options.name, options.partition, context, result=True)
        return projections_pb2.ResultResp(result=value)

    async def RestartSubsystem(
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> shared_pb2.Empty:
        await self._authenticated(context)
        await self._manager.restart()
        return shared_pb2.Empty()


def _to_value(state: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(state, value)
    return value
