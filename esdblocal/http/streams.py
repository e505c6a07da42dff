"""``AtomController``: streams, metastreams and ``$all`` as AtomPub JSON; writes and deletes.

Streams are matched on the raw path, so ``$all``, ``%24all`` and names with ``%2F`` all work;
status codes follow the server's ``Configure.cs``.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web

from esdblocal.http import atom
from esdblocal.http.atom import Embed, Resolved
from esdblocal.http.common import (
    ATOM_JSON,
    EVENT_JSON,
    EVENTS_JSON,
    HTML,
    JSON,
    KURRENT_ATOM_JSON,
    KURRENT_EVENT_JSON,
    KURRENT_EVENTS_JSON,
    RAW,
    TEXT,
    Controller,
    HttpError,
    Route,
    bad_request,
    json_response,
    media_type,
    preflight,
)
from esdblocal.store import (
    ANY,
    STREAM_EXISTS,
    Proposed,
    Recorded,
    StreamDeleted,
    StreamNotFound,
    WriteResult,
    WrongExpectedVersion,
    is_metastream,
    metastream_of,
)

FEED_TYPES = (ATOM_JSON, KURRENT_ATOM_JSON, JSON, HTML)
ENTRY_TYPES = (ATOM_JSON, KURRENT_ATOM_JSON, JSON, EVENT_JSON, KURRENT_EVENT_JSON, RAW, HTML)
MAX_POSSIBLE_AGE = 31_536_000  # Configure.MaxPossibleAge: a full page never changes
MAX_EVENT_SIZE = 4 * 1024 * 1024  # the Atom controller's own limit on one event
MAX_COUNT = 4096  # the server reads at most this many events per request
HEAD_OF_LOG = 2**62
FILTER_WINDOW = 10_000  # events a filtered $all page looks through for its matches
READ_BATCH = 512
FRAGMENT_SAFE = "$@:+,;=!*'()-_.~"  # left as they are in the UI's #/streams/{stream} route


class StreamsController(Controller):
    """``/streams/...``: the Atom controller."""

    def routes(self) -> list[Route]:
        return [("*", "/streams/{tail:.*}", self._streams)]

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
            return await preflight(request)
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

    def _not_modified(self, request: web.Request, etag: str) -> bool:
        given = request.headers.get("If-None-Match")
        return given is not None and given.strip('"') == etag

    # ---- reading (in the reader threads)

    def _resolve(self, record: Recorded, resolve: bool) -> Resolved:
        if resolve and record.type == atom.LINK_EVENT_TYPE:
            target = atom.link_target(record.data)
            found = self.context.store.read_event(*target) if target is not None else None
            return Resolved(found, record)
        return Resolved(record)

    def _read_backward(
        self, stream: str, start: int | None, count: int, resolve: bool
    ) -> tuple[list[Resolved], int, int, bool]:
        """A page back from ``start`` (None: the head): (events, from, last, end of stream)."""
        records = self.context.store.read_stream(stream, start, True, count)
        last = self.context.store.last_revision(stream)
        from_number = last if start is None else start
        following = from_number - count
        end = following < 0
        if not end:
            first = self.context.store.read_stream(stream, None, False, 1)
            end = not first or following < first[0].revision
        return [self._resolve(r, resolve) for r in records], from_number, last, end

    def _read_forward(
        self, stream: str, start: int, count: int, resolve: bool
    ) -> tuple[list[Resolved], int]:
        store = self.context.store
        records = store.read_stream(stream, start, False, count)
        return [self._resolve(r, resolve) for r in records], store.last_revision(stream)

    def _read_event(self, stream: str, number: int | None, resolve: bool) -> Resolved | None:
        if number is None:
            records = self.context.store.read_stream(stream, None, True, 1)
        else:
            records = self.context.store.read_stream(stream, number, False, 1)
            records = [r for r in records if r.revision == number]
        return self._resolve(records[0], resolve) if records else None

    def _read_all(
        self, position: int, backwards: bool, count: int, resolve: bool
    ) -> tuple[list[Resolved], bool]:
        """A page of $all and whether it is the last one in its direction."""
        records = self.context.store.read_all(position, backwards, count + 1)
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
        media = media_type(request, ENTRY_TYPES)
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
            return json_response(body, media, tag, cache)
        if media in (EVENT_JSON, KURRENT_EVENT_JSON):
            return json_response(atom.data_dto(event), media, tag, cache)
        if media == RAW:
            return web.Response(body=event.data, content_type=RAW)
        return json_response(atom.data_dto(event)["data"], media, tag, cache)

    async def _backward(
        self, request: web.Request, stream: str, text: str, count_text: str | None
    ) -> web.StreamResponse:
        media = media_type(request, FEED_TYPES)
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
            return json_response(feed, media, cache=MAX_POSSIBLE_AGE)
        return json_response(feed, media, tag)

    async def _forward(
        self, request: web.Request, stream: str, text: str, count_text: str
    ) -> web.StreamResponse:
        media = media_type(request, FEED_TYPES)
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
            changed = self.context.hub.changed
            events, last = await self._call_read(self._read_forward, stream, number, count, resolve)
            if events or poll is None or not await self._wait(changed, deadline):
                break
        end = number + count - 1 >= last
        feed = atom.stream_forward_feed(
            self._base(request), stream, events, number, count, last, end, embed
        )
        if last + 1 >= number + count:
            return json_response(feed, media, cache=MAX_POSSIBLE_AGE)
        return json_response(feed, media, atom.etag(last, media))

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
            batch = self.context.store.read_all(cursor, backwards, READ_BATCH)
            if not batch:
                break
            for record in batch:
                scanned += 1
                cursor = record.position if backwards else record.position + 1
                if match(record):
                    found.append(Resolved(record))
                    if len(found) == count:
                        break
        end = not self.context.store.read_all(cursor, backwards, 1)
        return found, end, cursor

    async def _all_filtered(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        """``/streams/$all/filtered[/{position}/{backward|forward}/{count}]?context&type&data``."""
        media = media_type(request, FEED_TYPES)
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
        log_head = self.context.hub.head
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
        return json_response(feed, media, atom.etag(log_head, media))

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
        log_head = self.context.hub.head
        events, end = await self._run(self._read_all, position, True, count, resolve)
        next_position = events[-1].original.position if events else 0
        previous_position = (
            events[0].original.position + 1 if events else min(position, log_head + 1)
        )
        feed = atom.all_backward_feed(
            self._base(request), events, count, end, next_position, previous_position, embed
        )
        if not head and position <= log_head:
            return json_response(feed, media, cache=MAX_POSSIBLE_AGE)
        return json_response(feed, media, atom.etag(log_head, media))

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
            changed = self.context.hub.changed
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
            return json_response(feed, media, cache=MAX_POSSIBLE_AGE)
        return json_response(feed, media, atom.etag(self.context.hub.head, media))

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
        self.context.store.submit(kind, stream, expected, events, outcome)
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
