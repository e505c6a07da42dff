"""The HTTP side: EventStoreDB's HTTP API (AtomPub JSON) and a stream browser, on aiohttp.

It runs in the same event loop as the gRPC server and uses the same log, hub, reader threads
and users. ``HttpSide`` only wires the controllers, one module each as the server's
``Transport/Http/Controllers``, and authenticates callers:

- :mod:`~esdblocal.http.streams` (``AtomController``): ``/streams``, metastreams, ``$all``;
- :mod:`~esdblocal.http.info` (``InfoController``, ``PingController``): ``/info``, options;
- :mod:`~esdblocal.http.gossip` (``GossipController``), :mod:`~esdblocal.http.stats`
  (``StatController``);
- :mod:`~esdblocal.http.projections` (``ProjectionsController``), when projections run;
- :mod:`~esdblocal.http.subscriptions` (``PersistentSubscriptionController``);
- :mod:`~esdblocal.http.metrics` (``MetricsController``): Prometheus ``/metrics``;
- :mod:`~esdblocal.http.browser` (``ClusterWebUiController``): ``/web/`` and its helpers.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from concurrent.futures import Executor
from pathlib import Path

from aiohttp import web

from esdblocal.certificates import TlsFiles
from esdblocal.http.browser import STATIC, WebUiController
from esdblocal.http.common import (
    VERSION,
    Context,
    Controller,
    HttpError,
    NodeInfo,
    Route,
    answering,
    preflight,
    unauthorized,
)
from esdblocal.http.gossip import GossipController
from esdblocal.http.info import InfoController
from esdblocal.http.metrics import GrpcMetrics, MetricsController
from esdblocal.http.projections import ProjectionsController
from esdblocal.http.stats import StatController
from esdblocal.http.streams import StreamsController
from esdblocal.http.subscriptions import SubscriptionsController
from esdblocal.hub import Hub
from esdblocal.security import BadCredentials, Principal, Users
from esdblocal.store import Store

__all__ = ["STATIC", "VERSION", "HttpError", "HttpSide", "NodeInfo"]


class HttpSide:
    """An aiohttp server over the node's log: start() in the node's loop, stop() with it."""

    def __init__(
        self,
        store: Store,
        hub: Hub,
        readers: Executor,
        host: str,
        port: int,
        node: NodeInfo,
        users: Users | None = None,
        tls: TlsFiles | None = None,
        web_ui: Path | None = None,
        grpc_metrics: GrpcMetrics | None = None,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._users = users
        self._tls = tls
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.context = Context(
            store=store,
            hub=hub,
            readers=readers,
            node=node,
            users=users,
            principal=self._principal,
            http_port=lambda: self.port,
            instance=str(uuid.uuid4()),
            started=time.time(),
        )
        self.metrics = MetricsController(self.context, grpc_metrics or GrpcMetrics())
        self.app = self._build(web_ui)

    # ------------------------------------------------------------------ wiring

    def _build(self, web_ui: Path | None) -> web.Application:
        # Handlers are wrapped one by one rather than through an aiohttp middleware: aiohttp
        # caches middleware chains per handler in a module-level cache, which would keep this
        # object, and through the log the whole node, alive until the interpreter's exit.
        app = web.Application(client_max_size=16 * 1024 * 1024)
        browser = WebUiController(self.context, web_ui)
        controllers: list[Controller] = [
            StreamsController(self.context),
            InfoController(self.context),
            GossipController(self.context),
            StatController(self.context),
            self.metrics,
            browser,
        ]
        node = self.context.node
        if node.projection_manager is not None and node.projection_manager.enabled:
            controllers.append(ProjectionsController(self.context, node.projection_manager))
        if node.persistent is not None:
            controllers.append(SubscriptionsController(self.context, node.persistent))
        routes: list[Route] = [r for c in controllers for r in c.routes()]
        # A CORS preflight on every path served (not a catch-all: an unknown path stays 404
        # for every method, and a known one answers 405 to a method it does not take).
        paths = dict.fromkeys(path for method, path, _ in routes if method != "*")
        for method, path, handler in routes:
            app.router.add_route(method, path, answering(handler))
        for path in paths:
            app.router.add_route("OPTIONS", path, answering(preflight))
        app.router.add_route("OPTIONS", "/web/{tail:.*}", answering(preflight))
        browser.add_static(app)
        return app

    @property
    def scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    @property
    def url(self) -> str:
        host = "localhost" if self._host in ("127.0.0.1", "::1") else self._host
        return f"{self.scheme}://{host}:{self.port}"

    async def start(self) -> None:
        context = None
        if self._tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self._tls.certificate, self._tls.private_key)
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self._host, self._requested_port, ssl_context=context, reuse_port=False
        )
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        self.metrics.start()

    async def stop(self) -> None:
        await self.metrics.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ authentication

    def _principal(self, request: web.Request) -> Principal | None:
        """The caller; insecure nodes treat everyone as an admin (as ``--insecure`` does)."""
        if self._users is None:
            return Principal("admin", frozenset({"$admins"}))
        header = request.headers.get("Authorization")
        if header is None:
            return None
        try:
            return self._users.principal([("authorization", header)])
        except BadCredentials as error:
            raise unauthorized() from error
