"""``ClusterWebUiController``: the web UI's files at ``/web/``, and the browser's helpers.

The files are esdblocal's own stream browser (``static/``) or a copy of EventStoreDB's UI
given with ``--web-ui``. ``/esdblocal/streams`` and ``/esdblocal/event-types`` exist only
here, for esdblocal's browser.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from esdblocal.http.common import Context, Controller, Route, json_response, unauthorized
from esdblocal.security import may_access

STATIC = Path(__file__).parent / "static"


class WebUiController(Controller):
    def __init__(self, context: Context, web_ui: Path | None) -> None:
        super().__init__(context)
        self.directory = web_ui if web_ui is not None else STATIC

    def routes(self) -> list[Route]:
        return [
            ("GET", "/esdblocal/streams", self._stream_names),
            ("GET", "/esdblocal/event-types", self._event_types),
            ("GET", "/sys/subsystems", self._subsystems),
            ("GET", "/", self._to_ui),
            ("GET", "/web", self._to_ui),
            ("GET", "/web/", self._index),
        ]

    def add_static(self, app: web.Application) -> None:
        app.router.add_static("/web", self.directory, show_index=False, follow_symlinks=False)

    async def _to_ui(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/web/index.html")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        """``/web/``: the UI's page itself (the URL ``python -m esdblocal`` prints)."""
        return web.FileResponse(self.directory / "index.html")

    async def _subsystems(self, request: web.Request) -> web.Response:
        """``/sys/subsystems``: the subsystems that run (the Admin page lists them)."""
        self._operator(request)
        running = []
        if self.context.node.projections():
            running.append("Projections")
        return json_response(running)

    async def _stream_names(self, request: web.Request) -> web.Response:
        """Streams by name prefix (by name, or ``order=created``: newest first)."""
        principal = self._authenticated(request)
        prefix = request.query.get("prefix", "")
        limit = min(max(int(request.query.get("limit", "50") or 50), 1), 1000)
        newest = request.query.get("order") == "created"
        rows = await self._run(self.context.store.stream_names, prefix, limit + 1, newest)
        visible = [(n, last) for n, last in rows if may_access(principal, n)]
        return json_response(
            {
                "prefix": prefix,
                "streams": [
                    {"streamId": n, "lastEventNumber": last} for n, last in visible[:limit]
                ],
                "more": len(rows) > limit,
            }
        )

    async def _event_types(self, request: web.Request) -> web.Response:
        """The event types in the log, most used first (admins)."""
        principal = self._authenticated(request)
        if not principal.is_admin:
            raise unauthorized()
        rows = await self._run(self.context.store.event_types, 200)
        return json_response(
            {"eventTypes": [{"eventType": name, "count": count} for name, count in rows]}
        )
