"""``create_app(settings)``: the one place the HTTP edge is wired together."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

import falcon
import falcon.media
import msgspec

from app.auth import Authentication
from app.bodies import BodyLimit
from app.coding import Compression
from app.commands import CommandFailed, CommandHandler
from app.description import Described, Route, RouteTable
from app.etags import ETagCodec
from app.health import HealthCheck, ReadinessCheck, handle_untrusted
from app.middleware import Protocol, RequestContext
from app.problems import (
    PROBLEM_JSON,
    UNAVAILABLE,
    Problem,
    handle_command_failed,
    handle_problem,
    handle_unexpected,
    serialize_http_error,
)
from app.queries import Queries
from app.queries.changes import Feed, Slots
from app.queries.timeline import Timeline
from app.resources import Cars, ErrorPages, InventoryItems, OpenAPIDocument, Root, Search, Writer
from app.resources.changes import Changes
from app.resources.client import ClientApp, Landing
from app.resources.family import Family
from app.settings import ConfigurationError, Settings
from app.snapshots import Snapshots
from eventstore.identity import History
from eventstore.streams import EventStore, StoreRefused, StoreUnavailable
from projections.reader import ReadModels, Untrusted
from telemetry import metrics

log = logging.getLogger("app")


class MsgspecJSON(falcon.media.BaseHandler):
    """JSON out with msgspec (one encoder, built once). Nothing reads ``req.media``: each
    command is decoded by its own model's decoder (``app.media.Accepts``), so no request
    handler is registered."""

    _encoder = msgspec.json.Encoder()

    def serialize(self, media: Any, content_type: str | None = None) -> bytes:
        return self._encoder.encode(media)


def handle_unavailable(
    req: falcon.Request, resp: falcon.Response, error: StoreUnavailable, params: Any
) -> None:
    if isinstance(error, StoreRefused):  # configuration, not weather: say it loudly
        log.error({"requestId": getattr(req.context, "request_id", ""), "message": str(error)})
    handle_problem(
        req,
        resp,
        Problem(UNAVAILABLE, "The event store cannot be reached.", headers={"Retry-After": "1"}),
        params,
    )


def create_app(
    settings: Settings,
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    routes: RouteTable | None = None,
    store: EventStore | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The app; ``routes``, when given, is filled with its routing table; ``store``, when
    given, is the event store adapter to use (else one for ``settings.esdb_uri``)."""
    store = store if store is not None else settings.event_store()
    etags = ETagCodec(settings.etag_key)
    history = History(lambda: store.client)  # what identifies the store (read store, snapshots)
    snapshots = Snapshots(settings.data_dir / "snapshots.sqlite3", history)
    commands = CommandHandler(store, settings.require_if_match, snapshots=snapshots)
    reads = ReadModels(settings.read_directory, history)
    queries = Queries(reads, etags, settings.read_wait, store.head, store.head_is_current)

    authentication = Authentication(settings.api_keys)
    if authentication.open and settings.require_auth:
        raise ConfigurationError(
            "REQUIRE_AUTH is set but no API keys are configured (API_KEYS or API_KEYS_FILE)"
        )
    queries.catch_up = metrics.timed_catch_up(queries.catch_up)  # type: ignore[method-assign,assignment]
    middleware: list[Any] = [
        metrics.Middleware(),
        RequestContext(),
        Protocol(),
        Compression(),
        BodyLimit(settings.max_body_bytes),
        authentication,
    ]
    app = falcon.App(middleware=middleware)
    handler = MsgspecJSON()
    for media_type in (falcon.MEDIA_JSON, PROBLEM_JSON):
        app.resp_options.media_handlers[media_type] = handler
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(StoreUnavailable, handle_unavailable)
    app.add_error_handler(Problem, handle_problem)
    app.add_error_handler(Untrusted, handle_untrusted)
    app.add_error_handler(CommandFailed, handle_command_failed)
    app.set_error_serializer(serialize_http_error)

    routes = RouteTable() if routes is None else routes

    def mount(template: str, resource: Described, suffix: str = "") -> None:
        routes.routes.append(Route(template, resource, suffix))
        app.add_route(template, resource, **({"suffix": suffix} if suffix else {}))

    def mount_family(family: type[Family], **more: Any) -> None:
        """A family's read half, writes and routes, in one call."""
        presentation = family.presentation
        writer = Writer(commands, etags, presentation.path)
        resource = family(routes, writer, queries, Timeline(store, etags, presentation), **more)
        for template, suffix in family.templates():
            mount(template, resource, suffix)

    mount("/v1", Root(routes))
    mount_family(InventoryItems)
    mount_family(Cars, clock=clock)
    mount("/v1/search", Search(routes, queries))
    slots = Slots(settings.data_dir / "longpoll", settings.long_poll_slots)
    slots.taken = metrics.counted(slots.taken)  # type: ignore[method-assign]
    mount("/v1/changes", Changes(routes, Feed(reads, etags, slots)))
    errors = ErrorPages(routes)
    mount("/v1/errors", errors)
    mount("/v1/errors/{number:int}", errors, "one")
    mount("/v1/openapi.json", OpenAPIDocument(routes))
    mount("/healthz", HealthCheck(routes))
    mount("/readyz", ReadinessCheck(routes, store, reads))
    # The browser client: static files for people, not an API resource (not in the table).
    client = ClientApp()
    app.add_route("/", Landing())
    app.add_route("/app", client)
    app.add_route("/app/", client, suffix="index")
    app.add_route("/app/{name}", client, suffix="asset")
    return app
