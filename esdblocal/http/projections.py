"""``ProjectionsController``: the projection subsystem over HTTP, as the real UI uses it.

Routes and shapes are ``EventStore.Projections.Core/Services/Http/ProjectionsController``'s:
lists (``/projections/{any,all-non-transient,transient,onetime,continuous}``), create
(``POST /projections/{mode}?name=&emit=&enabled=&trackemittedstreams=`` with the query as
the body), and per projection (``/projection/{name}``) its status, statistics, query,
config, state, result, the enable/disable/reset/abort commands and delete. Everything goes
through the same :class:`~esdblocal.projections.manager.ProjectionManager` the gRPC service
uses. Refusals as the server's error envelope: 404 not found, 409 conflict, 500 failed
("Failed"), as ``text/plain`` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from esdblocal.http.common import (
    Context,
    Controller,
    HttpError,
    Route,
    bad_request,
    json_response,
)
from esdblocal.projections.manager import (
    CONTINUOUS,
    ONE_TIME,
    TRANSIENT,
    Managed,
    ProjectionError,
    ProjectionManager,
)

MODES = {"transient": TRANSIENT, "onetime": ONE_TIME, "continuous": CONTINUOUS}
LISTS = {
    "any": None,
    "all-non-transient": (ONE_TIME, CONTINUOUS),
    "transient": (TRANSIENT,),
    "onetime": (ONE_TIME,),
    "continuous": (CONTINUOUS,),
}
YES, NO = ("yes", "true", "1"), ("no", "false", "0")


class ProjectionsController(Controller):
    def __init__(self, context: Context, manager: ProjectionManager) -> None:
        super().__init__(context)
        self._manager = manager

    def routes(self) -> list[Route]:
        return [
            ("GET", "/projections", self._to_ui),
            ("POST", "/projections/restart", self._restart),
            ("GET", "/projections/{list}", self._list),
            ("POST", "/projections/{mode}", self._create),
            ("GET", "/projection/{name}", self._status),
            ("DELETE", "/projection/{name}", self._delete),
            ("GET", "/projection/{name}/statistics", self._statistics),
            ("GET", "/projection/{name}/query", self._query),
            ("PUT", "/projection/{name}/query", self._update),
            ("GET", "/projection/{name}/config", self._config),
            ("GET", "/projection/{name}/state", self._state),
            ("GET", "/projection/{name}/result", self._result),
            ("POST", "/projection/{name}/command/{command}", self._command),
        ]

    # ---------------------------------------------------------------- helpers

    async def _managed(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except ProjectionError as error:
            raise _refusal(error) from error

    def _get(self, request: web.Request) -> Managed:
        self._authenticated(request)
        name = request.match_info["name"]
        try:
            return self._manager.get(name)
        except ProjectionError as error:
            raise _refusal(error) from error

    def _formatted(self, request: web.Request, managed: Managed) -> dict[str, Any]:
        """``ProjectionStatisticsHttpFormatted``: the statistics and the projection's links."""
        stats = self._manager.statistics(managed)
        base = f"{self._base(request)}/projection/{quote(managed.name, safe='')}"
        formatted = {
            "coreProcessingTime": stats["coreProcessingTime"],
            "version": stats["version"],
            "epoch": stats["epoch"],
            "effectiveName": stats["effectiveName"],
            "writesInProgress": stats["writesInProgress"],
            "readsInProgress": stats["readsInProgress"],
            "partitionsCached": stats["partitionsCached"],
            "status": stats["status"],
            "stateReason": stats["stateReason"],
            "name": stats["name"],
            "mode": stats["mode"],
            "position": stats["position"],
            "progress": stats["progress"],
            "lastCheckpoint": stats["lastCheckpoint"],
            "eventsProcessedAfterRestart": stats["eventsProcessedAfterRestart"],
            "statusUrl": base,
            "stateUrl": f"{base}/state",
            "resultUrl": f"{base}/result",
            "queryUrl": f"{base}/query?config=yes",
            "enableCommandUrl": f"{base}/command/enable",
            "disableCommandUrl": f"{base}/command/disable",
            "checkpointStatus": stats["checkpointStatus"],
            "bufferedEvents": stats["bufferedEvents"],
            "writePendingEventsBeforeCheckpoint": stats["writePendingEventsBeforeCheckpoint"],
            "writePendingEventsAfterCheckpoint": stats["writePendingEventsAfterCheckpoint"],
        }
        if managed.user is not None:
            result_stream = f"$projections-{managed.name}-result"
            formatted["resultStreamUrl"] = (
                f"{self._base(request)}/streams/{quote(result_stream, safe='')}"
            )
        return formatted

    @staticmethod
    def _updated(managed_name: str) -> web.Response:
        """``ProjectionManagementMessage.Updated`` as the JSON codec writes it."""
        return json_response({"name": managed_name})

    # ---------------------------------------------------------------- lists and create

    async def _to_ui(self, request: web.Request) -> web.Response:
        """The server sends a browser to its projections page (here the UI's)."""
        raise web.HTTPFound("/web/index.html#/projections")

    async def _list(self, request: web.Request) -> web.Response:
        self._authenticated(request)
        which = request.match_info["list"]
        if which not in LISTS:
            raise HttpError(404, "Not Found")
        modes = LISTS[which]
        selected = [
            m for m in self._manager.projections.values() if modes is None or m.mode in modes
        ]
        return json_response({"projections": [self._formatted(request, m) for m in selected]})

    async def _create(self, request: web.Request) -> web.Response:
        self._authenticated(request)
        mode = MODES.get(request.match_info["mode"])
        if mode is None:
            raise HttpError(404, "Not Found")
        query = request.query
        handler = query.get("type", "JS") or "JS"
        if handler.lower() != "js":
            raise bad_request(f"esdblocal runs JavaScript projections only, not '{handler}'")
        emit = _is_on(query.get("emit"), False)
        track = _is_on(query.get("trackemittedstreams"), False) and emit
        enabled = _is_on(query.get("enabled"), True)
        name = query.get("name") or None
        if name is None and mode == CONTINUOUS:
            raise bad_request("Projection name is required")
        source = (await request.read()).decode("utf-8", errors="replace")
        managed: Managed = await self._managed(
            self._manager.create(name, source, mode, emit, track)
        )
        if not enabled:
            await self._managed(self._manager.disable(managed.name))
        location = f"{self._base(request)}/projection/{quote(managed.name, safe='')}"
        return web.Response(
            status=201,
            reason="Created",
            text=json.dumps({"name": managed.name}),
            content_type="application/json",
            headers={"Location": location},
        )

    async def _restart(self, request: web.Request) -> web.Response:
        self._operator(request)
        await self._manager.restart()
        return json_response("Restarting")

    # ---------------------------------------------------------------- one projection

    async def _status(self, request: web.Request) -> web.Response:
        return json_response(self._formatted(request, self._get(request)))

    async def _statistics(self, request: web.Request) -> web.Response:
        managed = self._get(request)
        return json_response({"projections": [self._formatted(request, managed)]})

    async def _query(self, request: web.Request) -> web.Response:
        managed = self._get(request)
        if not _is_on(request.query.get("config"), False):
            return web.Response(
                text=managed.query, content_type="application/javascript", charset="utf-8"
            )
        return json_response(
            {
                "name": managed.name,
                "query": managed.query,
                "emitEnabled": managed.emit_enabled,
                "trackEmittedStreams": managed.track_emitted,
                "checkpointsEnabled": managed.mode != TRANSIENT,
                "enabled": managed.enabled,
                "type": "JS" if managed.system is None else "native",
                "definition": None,
                "outputConfig": None,
            }
        )

    async def _update(self, request: web.Request) -> web.Response:
        managed = self._get(request)
        emit_text = request.query.get("emit")
        emit = _is_on(emit_text, False) if emit_text else None
        source = (await request.read()).decode("utf-8", errors="replace")
        await self._managed(self._manager.update(managed.name, source, emit))
        return self._updated(managed.name)

    async def _config(self, request: web.Request) -> web.Response:
        """``ProjectionConfig``: the options a projection runs with (esdblocal's defaults)."""
        managed = self._get(request)
        return json_response(
            {
                "emitEnabled": managed.emit_enabled,
                "trackEmittedStreams": managed.track_emitted,
                "checkpointAfterMs": 0,
                "checkpointHandledThreshold": 4000,
                "checkpointUnhandledBytesThreshold": 10_000_000,
                "pendingEventsThreshold": 5000,
                "maxWriteBatchLength": 500,
                "maxAllowedWritesInFlight": 0,
                "projectionExecutionTimeout": 250,
            }
        )

    async def _state(self, request: web.Request) -> web.Response:
        managed = self._get(request)
        partition = request.query.get("partition", "")
        return _raw_json(self._manager.state(managed.name, partition))

    async def _result(self, request: web.Request) -> web.Response:
        managed = self._get(request)
        partition = request.query.get("partition", "")
        return _raw_json(self._manager.result(managed.name, partition))

    async def _command(self, request: web.Request) -> web.Response:
        managed = self._get(request)
        command = request.match_info["command"]
        if command == "enable":
            await self._managed(self._manager.enable(managed.name))
        elif command == "disable":
            await self._managed(self._manager.disable(managed.name))
        elif command == "abort":
            await self._managed(self._manager.disable(managed.name, write_checkpoint=False))
        elif command == "reset":
            await self._managed(self._manager.reset(managed.name))
        else:
            raise HttpError(404, "Not Found")
        return self._updated(managed.name)

    async def _delete(self, request: web.Request) -> web.Response:
        managed = self._get(request)
        query = request.query
        await self._managed(
            self._manager.delete(
                managed.name,
                _is_on(query.get("deleteEmittedStreams"), False),
                _is_on(query.get("deleteStateStream"), False),
                _is_on(query.get("deleteCheckpointStream"), False),
            )
        )
        return self._updated(managed.name)


def _is_on(value: str | None, default: bool) -> bool:
    """``IsOn``: yes/true/1 and no/false/0, anything else the default."""
    if not value:
        return default
    lowered = value.lower()
    if lowered in YES:
        return True
    if lowered in NO:
        return False
    return default


def _refusal(error: ProjectionError) -> HttpError:
    """The controller's error envelope: NotFound 404, Conflict 409, OperationFailed 500."""
    if error.kind == "NotFound":
        return HttpError(404, "Not Found", body=f"Projection '{error.name}' not found")
    if error.kind == "Conflict":
        return HttpError(409, "Conflict", body=f"Duplicate projection name: {error.name}")
    if error.kind == "Invalid":
        return HttpError(400, "Bad Request", body="Tracking emitted streams needs emit enabled")
    return HttpError(500, "Failed", body=f"Operation failed on projection '{error.name}'")


def _raw_json(value: Any) -> web.Response:
    """State and result as the server answers them: the JSON text, no cache."""
    return web.Response(
        text=json.dumps(value, ensure_ascii=False),
        content_type="application/json",
        charset="utf-8",
        headers={"Cache-Control": "max-age=0, no-cache, must-revalidate"},
    )


__all__ = ["ProjectionsController"]
