"""What every HTTP controller shares: the node's parts, errors, media types and answers.

A controller (one module each, as the server's ``Transport/Http/Controllers``) is built from
one :class:`Context` and lists its routes; ``HttpSide`` wires them and authenticates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from esdblocal.cluster.errors import CommitTimeout, NotLeader, NotReady
from esdblocal.hub import Hub
from esdblocal.security import Principal, Users, may_access
from esdblocal.store import Store

if TYPE_CHECKING:
    from esdblocal.cluster.hooks import ClusterHooks
    from esdblocal.persistent.subsystem import Subsystem
    from esdblocal.projections.manager import ProjectionManager

VERSION = "24.10.0"  # the server version esdblocal answers as (its gRPC side follows 24.x)

ATOM_JSON = "application/vnd.eventstore.atom+json"
KURRENT_ATOM_JSON = "application/vnd.kurrent.atom+json"
JSON = "application/json"
HTML = "text/html"
EVENT_JSON = "application/vnd.eventstore.event+json"
KURRENT_EVENT_JSON = "application/vnd.kurrent.event+json"
EVENTS_JSON = "application/vnd.eventstore.events+json"
KURRENT_EVENTS_JSON = "application/vnd.kurrent.events+json"
RAW = "application/octet-stream"
TEXT = "text/plain"
REALM = 'Basic realm="esdblocal"'


class HttpError(Exception):
    """An answer other than 200: status, reason phrase, headers."""

    def __init__(
        self, status: int, reason: str, headers: dict[str, str] | None = None, body: str = ""
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.body = body


def bad_request(reason: str) -> HttpError:
    return HttpError(400, reason)


def unauthorized() -> HttpError:
    return HttpError(401, "Unauthorized", {"WWW-Authenticate": REALM})


@dataclass(frozen=True)
class NodeInfo:
    """What /info and /gossip tell about the node, and the subsystems the API reaches."""

    advertise_host: str
    grpc_port: Callable[[], int]
    projections: Callable[[], bool] = lambda: False
    projection_manager: ProjectionManager | None = None
    persistent: Subsystem | None = None
    cluster: ClusterHooks | None = None  # a member of a local cluster


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]


@dataclass(frozen=True)
class Context:
    """The node's parts every controller reads, and the caller's identity (``HttpSide``'s)."""

    store: Store
    hub: Hub
    readers: Executor
    node: NodeInfo
    users: Users | None
    principal: Callable[[web.Request], Principal | None]
    http_port: Callable[[], int]
    instance: str
    started: float


class Controller:
    """A group of routes over the node's parts (``CommunicationController``)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def _authorize(self, request: web.Request, stream: str) -> None:
        if not may_access(self.context.principal(request), stream):
            raise unauthorized()

    def _authenticated(self, request: web.Request) -> Principal:
        principal = self.context.principal(request)
        if principal is None:
            raise unauthorized()
        return principal

    def _operator(self, request: web.Request) -> Principal:
        """``$admins`` or ``$ops`` (the server's policy for node and subsystem operations)."""
        principal = self._authenticated(request)
        if not (principal.is_admin or "$ops" in principal.groups):
            raise unauthorized()
        return principal

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.context.readers, function, *args)

    @staticmethod
    def _base(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"


def media_type(request: web.Request, supported: Sequence[str]) -> str:
    """The first supported media type the Accept header names (by q, then order)."""
    accept = request.headers.get("Accept", "")
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            ranked.append((-quality, index, media.lower()))
    if not ranked:
        return supported[0]
    for _, _, media in sorted(ranked):
        if media in supported:
            return media
        if media in ("*/*", "application/*"):
            return supported[0]
        if media == "text/*" and HTML in supported:
            return HTML
    raise HttpError(406, "Not Acceptable")


def json_response(
    value: Any,
    media: str = JSON,
    etag: str | None = None,
    cache: int | None = None,
    status: int = 200,
) -> web.Response:
    """``Configure.Ok``: the body, Cache-Control, Vary and (at the head) ETag."""
    headers = {
        "Cache-Control": f"max-age={cache}, public"
        if cache is not None
        else "max-age=0, no-cache, must-revalidate",
        "Vary": "Accept",
    }
    if etag is not None:
        headers["ETag"] = f'"{etag}"'
    return web.Response(
        status=status,
        text=json.dumps(value, indent=2, ensure_ascii=False),
        content_type=media,
        charset="utf-8",
        headers=headers,
    )


async def preflight(request: web.Request) -> web.StreamResponse:
    return web.Response(status=200)


def answering(handler: Handler) -> Handler:
    """HttpError → its status; the server's CORS headers on every answer."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            try:
                response = await handler(request)
            except (NotLeader, NotReady, CommitTimeout) as refusal:
                raise _refused(request, refusal) from refusal
        except HttpError as error:
            response = web.Response(
                status=error.status,
                reason=error.reason,
                text=error.body,
                content_type=TEXT,
                headers=error.headers,
            )
        # The server's CORS answer (ClusterVNode's http pipeline): any origin may read.
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "POST, DELETE, GET, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = (
            "Content-Type, X-Requested-With, X-Forwarded-Host, X-Forwarded-Prefix, "
            "X-PINGOTHER, Authorization, ES-LongPoll, ES-ExpectedVersion, ES-EventId, "
            "ES-EventType, ES-RequireMaster, ES-RequireLeader, ES-HardDelete, "
            "ES-ResolveLinkTos, Kurrent-ExpectedVersion, Kurrent-EventId, Kurrent-EventType, "
            "Kurrent-LongPoll, Kurrent-ResolveLinkTos, Kurrent-HardDelete"
        )
        response.headers["Access-Control-Expose-Headers"] = (
            "Location, ES-Position, ES-CurrentVersion, Kurrent-CurrentVersion"
        )
        return response

    return answer


def _refused(request: web.Request, refusal: Exception) -> HttpError:
    """A cluster member's refusal as the server's HTTP answer (``HandleNotHandled``)."""
    if isinstance(refusal, NotLeader) and refusal.http_port is not None:
        location = request.url.with_host(refusal.host).with_port(refusal.http_port)
        return HttpError(307, "Temporary Redirect", {"Location": str(location)})
    if isinstance(refusal, CommitTimeout):
        return HttpError(500, "Write timeout")
    return HttpError(503, "Server Is Not Ready")
