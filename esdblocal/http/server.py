"""The HTTP side: EventStoreDB's HTTP API (AtomPub JSON) and a stream browser, on aiohttp.

It runs in the same event loop as the gRPC server and uses the same log, hub, reader threads
and users. Routes follow the server's ``AtomController`` (streams, metastreams, ``$all``),
``InfoController``, ``GossipController``, ``StatController`` and ``ClusterWebUiController``;
status codes follow its ``Configure.cs``. Streams are matched on the raw path, so ``$all``,
``%24all`` and names with ``%2F`` all work.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web

from esdblocal.certificates import TlsFiles
from esdblocal.cluster.errors import CommitTimeout, NotLeader, NotReady
from esdblocal.http import atom
from esdblocal.http.atom import Embed, Resolved
from esdblocal.hub import Hub
from esdblocal.security import BadCredentials, Principal, Users, may_access
from esdblocal.store import (
    ANY,
    STREAM_EXISTS,
    Proposed,
    Recorded,
    Store,
    StreamDeleted,
    StreamNotFound,
    WriteResult,
    WrongExpectedVersion,
    is_metastream,
    metastream_of,
)

if TYPE_CHECKING:
    from esdblocal.cluster.hooks import ClusterHooks

STATIC = Path(__file__).parent / "static"
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

FEED_TYPES = (ATOM_JSON, KURRENT_ATOM_JSON, JSON, HTML)
ENTRY_TYPES = (ATOM_JSON, KURRENT_ATOM_JSON, JSON, EVENT_JSON, KURRENT_EVENT_JSON, RAW, HTML)
MAX_POSSIBLE_AGE = 31_536_000  # Configure.MaxPossibleAge: a full page never changes
MAX_EVENT_SIZE = 4 * 1024 * 1024  # the Atom controller's own limit on one event
MAX_COUNT = 4096  # the server reads at most this many events per request
HEAD_OF_LOG = 2**62
FILTER_WINDOW = 10_000  # events a filtered $all page looks through for its matches
READ_BATCH = 512
FRAGMENT_SAFE = "$@:+,;=!*'()-_.~"  # left as they are in the UI's #/streams/{stream} route
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


@dataclass(frozen=True)
class NodeInfo:
    """What /info and /gossip tell about the node."""

    advertise_host: str
    grpc_port: Callable[[], int]
    projections: Callable[[], bool] = lambda: False
    cluster: ClusterHooks | None = None  # a member of a local cluster


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
    ) -> None:
        self._store = store
        self._hub = hub
        self._readers = readers
        self._host = host
        self._requested_port = port
        self._node = node
        self._users = users
        self._tls = tls
        self._web = web_ui if web_ui is not None else STATIC
        self._started = time.time()
        self._instance = str(uuid.uuid4())
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.app = self._build()

    # ------------------------------------------------------------------ lifecycle

    def _build(self) -> web.Application:
        # Handlers are wrapped one by one rather than through an aiohttp middleware: aiohttp
        # caches middleware chains per handler in a module-level cache, which would keep this
        # object, and through the log the whole node, alive until the interpreter's exit.
        app = web.Application(client_max_size=16 * 1024 * 1024)
        routes: list[tuple[str, str, Handler]] = [
            ("*", "/streams/{tail:.*}", self._streams),
            ("GET", "/info", self._info),
            ("GET", "/info/options", self._options),
            ("GET", "/gossip", self._gossip),
            ("GET", "/stats", self._stats),
            ("GET", "/stats/{tail:.*}", self._stats),
            ("GET", "/ping", self._ping),
            ("GET", "/license", self._license),
            ("GET", "/esdblocal/streams", self._stream_names),
            ("GET", "/esdblocal/event-types", self._event_types),
            ("GET", "/", self._to_ui),
            ("GET", "/web", self._to_ui),
            ("OPTIONS", "/{tail:.*}", _preflight),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, _answering(handler))
        app.router.add_static("/web", self._web, show_index=False, follow_symlinks=False)
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

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ plumbing

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
            raise HttpError(401, "Unauthorized", {"WWW-Authenticate": REALM}) from error

    def _authorize(self, request: web.Request, stream: str) -> None:
        if not may_access(self._principal(request), stream):
            raise HttpError(401, "Unauthorized", {"WWW-Authenticate": REALM})

    def _authenticated(self, request: web.Request) -> Principal:
        principal = self._principal(request)
        if principal is None:
            raise HttpError(401, "Unauthorized", {"WWW-Authenticate": REALM})
        return principal

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._readers, function, *args)

    def _base(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    # ------------------------------------------------------------------ /streams

    async def _streams(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        parts = [unquote(p) for p in raw[len("/streams/") :].split("/")]
        stream, rest = parts[0], parts[1:]
        if not stream:
            raise bad_request("Invalid request. Stream must be non-empty string")
        if rest and rest[-1] == "":  # RedirectKeepVerb: the same request without the slash
            location = str(request.url).split("?", 1)[0][:-1]
            if request.query_string:
                location += f"?{request.query_string}"
            raise HttpError(
                307,
                "Temporary Redirect",
                {"Location": location, "Cache-Control": "max-age=31536000, public"},
                "Moved Permanently",
            )
        if request.method == "OPTIONS":
            return await _preflight(request)
        if request.method == "POST":
            return await self._post(request, stream, rest)
        if request.method == "DELETE":
            if rest:
                raise HttpError(404, "Not Found")
            return await self._delete(request, stream)
        if request.method != "GET":
            raise HttpError(405, "Method Not Allowed")
        metadata = bool(rest) and rest[0] == "metadata"
        if metadata:
            if is_metastream(stream):
                raise bad_request("Stream must be non-empty string and should not be metastream")
            stream, rest = metastream_of(stream), rest[1:]
        return await self._get(request, stream, rest, metadata)

    async def _get(
        self, request: web.Request, stream: str, rest: list[str], metadata: bool
    ) -> web.StreamResponse:
        self._authorize(request, "$all" if stream == "$all" else stream)
        if stream == "$all" and rest and rest[0] == "filtered" and not metadata:
            return await self._all_filtered(request, rest[1:])
        if not rest:
            if metadata:
                return await self._event(request, stream, "head")
            return await self._backward(request, stream, "head", None)
        if len(rest) == 1:
            return await self._event(request, stream, rest[0])
        if len(rest) == 2:
            return await self._backward(request, stream, rest[0], rest[1])
        if len(rest) == 3 and rest[1] == "backward":
            return await self._backward(request, stream, rest[0], rest[2])
        if len(rest) == 3 and rest[1] == "forward":
            return await self._forward(request, stream, rest[0], rest[2])
        raise HttpError(404, "Not Found")

    def _media_type(self, request: web.Request, supported: Sequence[str]) -> str:
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

    @staticmethod
    def _resolve_links(request: web.Request, default: bool) -> bool:
        value = request.headers.get("ES-ResolveLinkTos") or request.headers.get(
            "Kurrent-ResolveLinkTos"
        )
        if value is None or value == "":
            return default
        if value.lower() == "true":
            return True
        if value.lower() == "false":
            return False
        raise bad_request("ES-ResolveLinkTos header in wrong format.")

    @staticmethod
    def _long_poll(request: web.Request) -> float | None:
        value = request.headers.get("ES-LongPoll") or request.headers.get("Kurrent-LongPoll")
        if not value:
            return None
        try:
            seconds = int(value)
        except ValueError:
            seconds = 0
        if seconds <= 0:
            raise bad_request("ES-LongPoll header in wrong format.")
        return float(seconds)

    @staticmethod
    def _count(text: str | None) -> int:
        if text is None:
            return atom.FEED_PAGE_SIZE
        try:
            count = int(text)
        except ValueError:
            count = 0
        if count <= 0:
            raise bad_request(f"'{text}' is not valid count. Should be positive integer")
        return min(count, MAX_COUNT)

    @staticmethod
    def _embed(request: web.Request, media: str, html_level: Embed = Embed.PRETTY) -> Embed:
        if media == HTML:
            return html_level
        return Embed.parse(request.query.get("embed"))

    def _html_redirect(self, stream: str, number: int | None) -> web.Response:
        """``HtmlFeedCodec``: a page that sends a browser to the UI's view of the stream."""
        # The stream id as the server puts it there (``$`` and all), escaping only what would
        # end or split the fragment's route ("/", "?", "#", "%", spaces...).
        target = "/web/index.html#/streams/" + quote(stream, safe=FRAGMENT_SAFE)
        if number is not None:
            target += f"/{number}"
        body = (
            "<!DOCTYPE html><html><head></head><body><script>"
            f"window.location.replace({json.dumps(target)});"
            "</script></body></html>"
        )
        return web.Response(text=body, content_type=HTML)

    def _json(
        self,
        value: Any,
        media: str,
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

    def _not_modified(self, request: web.Request, etag: str) -> bool:
        given = request.headers.get("If-None-Match")
        return given is not None and given.strip('"') == etag

    # ---- reading (in the reader threads)

    def _resolve(self, record: Recorded, resolve: bool) -> Resolved:
        if resolve and record.type == atom.LINK_EVENT_TYPE:
            target = atom.link_target(record.data)
            found = self._store.read_event(*target) if target is not None else None
            return Resolved(found, record)
        return Resolved(record)

    def _read_backward(
        self, stream: str, start: int | None, count: int, resolve: bool
    ) -> tuple[list[Resolved], int, int, bool]:
        """A page back from ``start`` (None: the head): (events, from, last, end of stream)."""
        records = self._store.read_stream(stream, start, True, count)
        last = self._store.last_revision(stream)
        from_number = last if start is None else start
        following = from_number - count
        end = following < 0
        if not end:
            first = self._store.read_stream(stream, None, False, 1)
            end = not first or following < first[0].revision
        return [self._resolve(r, resolve) for r in records], from_number, last, end

    def _read_forward(
        self, stream: str, start: int, count: int, resolve: bool
    ) -> tuple[list[Resolved], int]:
        records = self._store.read_stream(stream, start, False, count)
        return [self._resolve(r, resolve) for r in records], self._store.last_revision(stream)

    def _read_event(self, stream: str, number: int | None, resolve: bool) -> Resolved | None:
        if number is None:
            records = self._store.read_stream(stream, None, True, 1)
        else:
            records = self._store.read_stream(stream, number, False, 1)
            records = [r for r in records if r.revision == number]
        return self._resolve(records[0], resolve) if records else None

    def _read_all(
        self, position: int, backwards: bool, count: int, resolve: bool
    ) -> tuple[list[Resolved], bool]:
        """A page of $all and whether it is the last one in its direction."""
        records = self._store.read_all(position, backwards, count + 1)
        end = len(records) <= count
        return [self._resolve(r, resolve) for r in records[:count]], end

    # ---- GET handlers

    @staticmethod
    def _number(text: str) -> int | None:
        """ "head" → None; a revision ≥ 0; anything else is a 400."""
        if text == "head":
            return None
        try:
            number = int(text)
        except ValueError:
            number = -1
        if number < 0:
            raise bad_request(f"'{text}' is not valid event number")
        return number

    async def _call_read(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self._run(function, *args)
        except StreamNotFound as error:
            raise HttpError(404, "Not Found") from error
        except StreamDeleted as error:
            raise HttpError(410, "Deleted") from error

    async def _event(self, request: web.Request, stream: str, text: str) -> web.StreamResponse:
        if stream == "$all":
            raise HttpError(404, "Not Found")
        media = self._media_type(request, ENTRY_TYPES)
        number = self._number(text)
        embed = self._embed(request, media, Embed.TRYHARDER)
        resolve = self._resolve_links(request, default=True)
        if media == HTML:
            return self._html_redirect(stream, number)
        found: Resolved | None = await self._call_read(self._read_event, stream, number, resolve)
        if found is None or found.event is None:
            raise HttpError(404, "Not Found")
        event = found.event
        tag = None
        cache: int | None = MAX_POSSIBLE_AGE
        if number is None:
            tag, cache = atom.etag(found.original.revision, media), None
        if media in (ATOM_JSON, KURRENT_ATOM_JSON):
            body = atom.entry(found, self._base(request), embed, single_entry=True)
            return self._json(body, media, tag, cache)
        if media in (EVENT_JSON, KURRENT_EVENT_JSON):
            return self._json(atom.data_dto(event), media, tag, cache)
        if media == RAW:
            return web.Response(body=event.data, content_type=RAW)
        return self._json(atom.data_dto(event)["data"], media, tag, cache)

    async def _backward(
        self, request: web.Request, stream: str, text: str, count_text: str | None
    ) -> web.StreamResponse:
        media = self._media_type(request, FEED_TYPES)
        count = self._count(count_text)
        embed = self._embed(request, media)
        if stream == "$all":
            return await self._all_backward(request, text, count, media, embed)
        number = self._number(text)
        resolve = self._resolve_links(request, default=True)
        if media == HTML:
            return self._html_redirect(stream, None)
        head = number is None
        events, from_number, last, end = await self._call_read(
            self._read_backward, stream, number, count, resolve
        )
        tag = atom.etag(last, media)
        if head and self._not_modified(request, tag):
            raise HttpError(304, "Not Modified")
        feed = atom.stream_backward_feed(
            self._base(request), stream, events, from_number, count, last, end, head, media, embed
        )
        if last >= from_number and not head:
            return self._json(feed, media, cache=MAX_POSSIBLE_AGE)
        return self._json(feed, media, tag)

    async def _forward(
        self, request: web.Request, stream: str, text: str, count_text: str
    ) -> web.StreamResponse:
        media = self._media_type(request, FEED_TYPES)
        count = self._count(count_text)
        embed = self._embed(request, media)
        poll = self._long_poll(request)
        if stream == "$all":
            return await self._all_forward(request, text, count, media, embed, poll)
        number = self._number(text)
        if number is None:
            raise bad_request(f"'{text}' is not valid event number")
        resolve = self._resolve_links(request, default=True)
        if media == HTML:
            return self._html_redirect(stream, None)
        deadline = asyncio.get_running_loop().time() + (poll or 0)
        while True:
            changed = self._hub.changed
            events, last = await self._call_read(self._read_forward, stream, number, count, resolve)
            if events or poll is None or not await self._wait(changed, deadline):
                break
        end = number + count - 1 >= last
        feed = atom.stream_forward_feed(
            self._base(request), stream, events, number, count, last, end, embed
        )
        if last + 1 >= number + count:
            return self._json(feed, media, cache=MAX_POSSIBLE_AGE)
        return self._json(feed, media, atom.etag(last, media))

    @staticmethod
    async def _wait(changed: asyncio.Event, deadline: float) -> bool:
        """Wait for the next commit until ``deadline``; False once it has passed."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _filter(request: web.Request) -> tuple[Callable[[Recorded], bool], str]:
        """``GetFilterFromQueryString``: the predicate, and the query the feed's links keep."""
        query = request.query
        if "exclude-system-events" in query:
            if query["exclude-system-events"].lower() != "true":
                raise bad_request("exclude-sytem-events should have a value of true.")
            return (lambda r: not r.type.startswith("$")), "exclude-system-events=true"
        context, kind, data = query.get("context"), query.get("type"), query.get("data")
        if context not in ("streamid", "eventtype"):
            raise bad_request(
                "Invalid context please provide one of the following: StreamId, EventType."
            )
        if kind not in ("prefix", "regex"):
            raise bad_request("Invalid type please provide one of the following: Prefix, Regex.")
        if not data:
            raise bad_request(
                "Please provide a comma delimited list of data with at least one item."
            )
        by_stream = context == "streamid"
        if kind == "regex":
            try:
                pattern = re.compile(data)
            except re.error as error:
                raise bad_request(f"Invalid regex: {error}") from error

            def match(record: Recorded) -> bool:
                return pattern.search(record.stream if by_stream else record.type) is not None

        else:
            prefixes = tuple(p for p in data.split(",") if p)

            def match(record: Recorded) -> bool:
                return (record.stream if by_stream else record.type).startswith(prefixes)

        return match, urlencode({"context": context, "type": kind, "data": data})

    def _read_all_filtered(
        self, position: int, backwards: bool, count: int, match: Callable[[Recorded], bool]
    ) -> tuple[list[Resolved], bool, int]:
        """Up to ``count`` matches, looking through at most FILTER_WINDOW events.

        Returns the matches, whether the log ends there, and where the next page starts.
        """
        found: list[Resolved] = []
        cursor, scanned = position, 0
        while len(found) < count and scanned < FILTER_WINDOW:
            batch = self._store.read_all(cursor, backwards, READ_BATCH)
            if not batch:
                break
            for record in batch:
                scanned += 1
                cursor = record.position if backwards else record.position + 1
                if match(record):
                    found.append(Resolved(record))
                    if len(found) == count:
                        break
        end = not self._store.read_all(cursor, backwards, 1)
        return found, end, cursor

    async def _all_filtered(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        """``/streams/$all/filtered[/{position}/{backward|forward}/{count}]?context&type&data``."""
        media = self._media_type(request, FEED_TYPES)
        embed = self._embed(request, media)
        match, query = self._filter(request)
        if media == HTML:
            return self._html_redirect("$all", None)
        if not rest:
            rest = ["head", "backward", str(atom.FEED_PAGE_SIZE)]
        elif len(rest) == 2:
            rest = [rest[0], "backward", rest[1]]
        if len(rest) != 3 or rest[1] not in ("backward", "forward"):
            raise HttpError(404, "Not Found")
        count = self._count(rest[2])
        log_head = self._hub.head
        backwards = rest[1] == "backward"
        head = backwards and rest[0] == "head"
        position = HEAD_OF_LOG if head else self._position(rest[0])
        events, end, cursor = await self._run(
            self._read_all_filtered, position, backwards, count, match
        )
        base = self._base(request)
        if backwards:
            newer = log_head + 1 if head else position
            feed = atom.all_backward_feed(base, events, count, end, cursor, newer, embed, query)
        else:
            feed = atom.all_forward_feed(
                base, events, count, position, end, position, cursor, embed, query
            )
        return self._json(feed, media, atom.etag(log_head, media))

    def _position(self, text: str) -> int:
        position = atom.parse_tf_pos(text)
        if position is None:
            raise bad_request(f"Invalid position argument: {text}")
        return position

    async def _all_backward(
        self, request: web.Request, text: str, count: int, media: str, embed: Embed
    ) -> web.StreamResponse:
        head = text == "head"
        position = HEAD_OF_LOG if head else self._position(text)
        resolve = self._resolve_links(request, default=False)
        if media == HTML:
            return self._html_redirect("$all", None)
        log_head = self._hub.head
        events, end = await self._run(self._read_all, position, True, count, resolve)
        next_position = events[-1].original.position if events else 0
        previous_position = (
            events[0].original.position + 1 if events else min(position, log_head + 1)
        )
        feed = atom.all_backward_feed(
            self._base(request), events, count, end, next_position, previous_position, embed
        )
        if not head and position <= log_head:
            return self._json(feed, media, cache=MAX_POSSIBLE_AGE)
        return self._json(feed, media, atom.etag(log_head, media))

    async def _all_forward(
        self,
        request: web.Request,
        text: str,
        count: int,
        media: str,
        embed: Embed,
        poll: float | None,
    ) -> web.StreamResponse:
        position = self._position(text)
        resolve = self._resolve_links(request, default=False)
        if media == HTML:
            return self._html_redirect("$all", None)
        deadline = asyncio.get_running_loop().time() + (poll or 0)
        while True:
            changed = self._hub.changed
            events, end = await self._run(self._read_all, position, False, count, resolve)
            if events or poll is None or not await self._wait(changed, deadline):
                break
        next_position = events[0].original.position if events else position
        previous_position = events[-1].original.position + 1 if events else position
        feed = atom.all_forward_feed(
            self._base(request),
            events,
            count,
            position,
            end,
            next_position,
            previous_position,
            embed,
        )
        if len(events) == count:
            return self._json(feed, media, cache=MAX_POSSIBLE_AGE)
        return self._json(feed, media, atom.etag(self._hub.head, media))

    # ---- writing

    @staticmethod
    def _expected(request: web.Request) -> int:
        value = request.headers.get("ES-ExpectedVersion") or request.headers.get(
            "Kurrent-ExpectedVersion"
        )
        if not value:
            return ANY
        try:
            expected = int(value)
        except ValueError:
            expected = STREAM_EXISTS - 1
        if expected < STREAM_EXISTS:
            raise bad_request("ES-ExpectedVersion header in wrong format.")
        return expected

    async def _write(
        self, kind: str, stream: str, expected: int, events: Sequence[Proposed]
    ) -> WriteResult:
        outcome: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._store.submit(kind, stream, expected, events, outcome)
        try:
            return await outcome
        except WrongExpectedVersion as error:
            current = str(error.current)
            raise HttpError(
                400,
                "Wrong expected EventNumber",
                {"ES-CurrentVersion": current, "Kurrent-CurrentVersion": current},
            ) from error
        except StreamDeleted as error:
            raise HttpError(410, "Stream deleted") from error

    async def _post(self, request: web.Request, stream: str, rest: list[str]) -> web.StreamResponse:
        included_id = request.headers.get("ES-EventId") or request.headers.get("Kurrent-EventId")
        included_type = request.headers.get("ES-EventType") or request.headers.get(
            "Kurrent-EventType"
        )
        if rest == ["metadata"]:
            if is_metastream(stream):
                raise bad_request(
                    "Invalid request. Stream must be non-empty string and should not be metastream"
                )
            if included_type not in (None, "$metadata"):
                raise bad_request("Bad Request. You should not include an event type for metadata.")
            target, included_type = metastream_of(stream), "$metadata"
        elif len(rest) == 2 and rest[0] == "incoming":
            included_id, target = rest[1], stream
        elif not rest:
            target = stream
        else:
            raise HttpError(404, "Not Found")
        self._authorize(request, target)
        expected = self._expected(request)
        content_type = request.content_type.lower()
        body = await request.read()
        if content_type in (EVENTS_JSON, KURRENT_EVENTS_JSON):
            events = _parse_events(body)
        elif content_type in (JSON, RAW, "text/plain", "application/xml", "text/xml"):
            if included_type is None:
                raise bad_request(
                    "Must include an event type with the request either in body or as"
                    " ES-EventType header."
                )
            if included_id is None:
                location = f"{str(request.url).split('?', 1)[0]}/incoming/{uuid.uuid4()}"
                raise HttpError(
                    307,
                    "Temporary Redirect",
                    {"Location": location},
                    "Forwarding to idempotent URI",
                )
            events = [_single_event(included_id, included_type, body, content_type == JSON)]
        else:
            raise HttpError(415, "Unsupported Media Type")
        if any(len(e.data) + len(e.metadata) > MAX_EVENT_SIZE for e in events):
            raise HttpError(413, "Events are too large")
        result = await self._write("append", target, expected, events)
        first = result.current_revision - len(events) + 1
        location = f"{self._base(request)}/streams/{atom.escape(target)}/{max(first, 0)}"
        headers = {"Location": location}
        if result.position is not None:
            headers["ES-Position"] = atom.tf_pos(result.position)
        return web.Response(status=201, reason="Created", content_type=TEXT, headers=headers)

    async def _delete(self, request: web.Request, stream: str) -> web.StreamResponse:
        self._authorize(request, stream)
        expected = self._expected(request)
        hard = (request.headers.get("ES-HardDelete") or "").lower()
        if hard not in ("", "true", "false"):
            raise bad_request("ES-HardDelete header in wrong format.")
        await self._write("tombstone" if hard == "true" else "delete", stream, expected, ())
        return web.Response(status=204, reason="Stream deleted")

    # ------------------------------------------------------------------ the node

    async def _info(self, request: web.Request) -> web.Response:
        authentication = (
            {"type": "internal", "properties": {}}
            if self._users is not None
            else {"type": "insecure", "properties": {}}
        )
        info = {
            "dbVersion": VERSION,
            "esVersion": VERSION,
            "state": self._node.cluster.state.lower() if self._node.cluster else "leader",
            "features": {
                "projections": self._node.projections(),
                "userManagement": False,
                "atomPub": True,
            },
            "authentication": authentication,
        }
        return self._json(info, JSON)

    async def _options(self, request: web.Request) -> web.Response:
        principal = self._authenticated(request)
        if not (principal.is_admin or "$ops" in principal.groups):
            raise HttpError(401, "Unauthorized")
        projections = "All" if self._node.projections() else "None"
        options = [
            ("EnableAtomPubOverHttp", "Enable AtomPub over HTTP.", "Interface", "true"),
            ("Insecure", "Disable TLS and users.", "Application", str(self._users is None)),
            ("RunProjections", "Which projections run.", "Projections", projections),
            ("NodePort", "The gRPC port.", "Interface", str(self._node.grpc_port())),
            ("HttpPort", "The HTTP port (esdblocal: its own).", "Interface", str(self.port)),
        ]
        return self._json(
            [
                {
                    "name": name,
                    "description": description,
                    "group": group,
                    "value": value,
                    "configurationSource": "esdblocal",
                    "deprecationMessage": None,
                    "schema": None,
                }
                for name, description, group, value in options
            ],
            JSON,
        )

    async def _gossip(self, request: web.Request) -> web.Response:
        host = self._node.advertise_host
        if self._node.cluster is not None:
            members = [_member(view) for view in self._node.cluster.members()]
            return self._json(
                {"members": members, "serverIp": host, "serverPort": self._node.grpc_port()}, JSON
            )
        head = self._hub.head
        member = {
            "instanceId": self._instance,
            "timeStamp": atom.timestamp(int(time.time() * 10_000_000)),
            "state": "Leader",
            "isAlive": True,
            "internalTcpIp": host,
            "internalTcpPort": 0,
            "internalSecureTcpPort": 0,
            "externalTcpIp": host,
            "externalTcpPort": 0,
            "externalSecureTcpPort": 0,
            "httpEndPointIp": host,
            "httpEndPointPort": self._node.grpc_port(),
            "lastCommitPosition": head,
            "writerCheckpoint": head,
            "chaserCheckpoint": head,
            "epochPosition": 0,
            "epochNumber": 0,
            "epochId": "00000000-0000-0000-0000-000000000000",
            "nodePriority": 0,
            "isReadOnlyReplica": False,
        }
        return self._json(
            {"members": [member], "serverIp": host, "serverPort": self._node.grpc_port()}, JSON
        )

    async def _stats(self, request: web.Request) -> web.Response:
        self._authenticated(request)
        times = os.times()
        head = self._hub.head
        stats = {
            "proc": {
                "startTime": atom.timestamp(int(self._started * 10_000_000)),
                "id": os.getpid(),
                "mem": _resident_bytes(),
                "cpu": 0.0,
                "threadsCount": len(os.listdir("/proc/self/task")) if Path("/proc").exists() else 0,
                "contentionsRate": 0.0,
                "thrownExceptionsRate": 0.0,
                "userTime": times.user,
                "systemTime": times.system,
            },
            "sys": {"loadavg": dict(zip(("1m", "5m", "15m"), os.getloadavg(), strict=True))},
            "es": {
                "checksum": head,
                "checksumNonFlushed": head,
                "queue": {},
                "writer": {},
                "readIndex": {},
            },
        }
        return self._json(stats, JSON)

    async def _ping(self, request: web.Request) -> web.Response:
        return self._json({"text": "Ping request successfully handled"}, JSON)

    async def _license(self, request: web.Request) -> web.Response:
        """What the 24.10+ UI's License page reads: no licence (a development server)."""
        no = "False"
        licence = {
            "company": "",
            "startDate": "0",
            "daysRemaining": "0",
            "isExpired": no,
            "isValid": no,
            "isTrial": no,
            "isFloating": no,
            "notes": "esdblocal: a development server; no licence applies.",
        }
        return self._json(licence, JSON)

    async def _to_ui(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/web/index.html")

    # ------------------------------------------------------------------ browser helpers

    async def _stream_names(self, request: web.Request) -> web.Response:
        """esdblocal's own: streams by name prefix (by name, or ``order=created``: newest first)."""
        principal = self._authenticated(request)
        prefix = request.query.get("prefix", "")
        limit = min(max(int(request.query.get("limit", "50") or 50), 1), 1000)
        newest = request.query.get("order") == "created"
        rows = await self._run(self._store.stream_names, prefix, limit + 1, newest)
        visible = [(n, last) for n, last in rows if may_access(principal, n)]
        return self._json(
            {
                "prefix": prefix,
                "streams": [
                    {"streamId": n, "lastEventNumber": last} for n, last in visible[:limit]
                ],
                "more": len(rows) > limit,
            },
            JSON,
        )

    async def _event_types(self, request: web.Request) -> web.Response:
        """esdblocal's own: the event types in the log, most used first."""
        principal = self._authenticated(request)
        if not principal.is_admin:
            raise HttpError(401, "Unauthorized", {"WWW-Authenticate": REALM})
        rows = await self._run(self._store.event_types, 200)
        return self._json(
            {"eventTypes": [{"eventType": name, "count": count} for name, count in rows]}, JSON
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _preflight(request: web.Request) -> web.StreamResponse:
    return web.Response(status=200)


def _answering(handler: Handler) -> Handler:
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


def _member(view: Any) -> dict[str, Any]:
    """A member of a local cluster as /gossip shows one (the server's MemberInfoDto)."""
    return {
        "instanceId": view.instance_id,
        "timeStamp": atom.timestamp(view.time_stamp),
        "state": view.state,
        "isAlive": view.alive,
        "internalTcpIp": view.host,
        "internalTcpPort": 0,
        "internalSecureTcpPort": 0,
        "externalTcpIp": view.host,
        "externalTcpPort": 0,
        "externalSecureTcpPort": 0,
        "httpEndPointIp": view.host,
        "httpEndPointPort": view.port,
        "lastCommitPosition": view.committed,
        "writerCheckpoint": view.writer,
        "chaserCheckpoint": view.chaser,
        "epochPosition": view.epoch_position,
        "epochNumber": view.epoch_number,
        "epochId": view.epoch_id,
        "nodePriority": 0,
        "isReadOnlyReplica": False,
    }


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _as_bytes(value: Any) -> tuple[bytes, bool]:
    """``AutoEventConverter.AsBytes``: objects and arrays (or strings of them) are JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False).encode(), True
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value.encode(), False
        if isinstance(parsed, dict | list):
            return json.dumps(parsed, indent=2, ensure_ascii=False).encode(), True
        return value.encode(), False
    return b"", False


def _event_id(text: Any) -> str:
    try:
        parsed = uuid.UUID(str(text))
    except ValueError as error:
        raise bad_request("Write request body invalid.") from error
    if parsed.int == 0:
        raise bad_request("Write request body invalid.")
    return str(parsed)


def _parse_events(body: bytes) -> list[Proposed]:
    """``application/vnd.eventstore.events+json``: ``[{eventId, eventType, data, metadata}]``."""
    try:
        raw = json.loads(body or b"null")
    except ValueError as error:
        raise bad_request("Write request body invalid.") from error
    if not isinstance(raw, list) or not raw:
        raise bad_request("Write request body invalid.")
    events = []
    for item in raw:
        if not isinstance(item, dict):
            raise bad_request("Write request body invalid.")
        fields = {k.lower(): v for k, v in item.items()}
        event_type = fields.get("eventtype")
        if not isinstance(event_type, str) or not event_type:
            raise bad_request("Write request body invalid.")
        data, data_json = _as_bytes(fields.get("data"))
        metadata, metadata_json = _as_bytes(fields.get("metadata"))
        content_type = "application/json" if data_json or metadata_json else RAW
        events.append(
            Proposed(_event_id(fields.get("eventid")), event_type, content_type, data, metadata)
        )
    return events


def _single_event(event_id: str, event_type: str, body: bytes, is_json: bool) -> Proposed:
    return Proposed(_event_id(event_id), event_type, JSON if is_json else RAW, body, b"")
