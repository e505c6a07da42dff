"""Resources through time, read from the event store (not the read models): a resource's
history, its state at a past version, and RFC 7089 (Memento) over both.

- ``/history``: the stream's events, oldest first, paged like every list. A full page never
  changes (events are never rewritten), so it says so with ``immutable``.
- ``?version=N``: the state just after version N, folded with the domain's own function
  (``Aggregate.evolve``: an event the model cannot accept has no effect, as everywhere), with
  the ETag of version N. It is a Memento: ``Memento-Datetime`` is when version N was written.
- ``Accept-Datetime`` on the item URL makes it a TimeGate: 302 to the memento of the newest
  version written at or before that time.
- ``/timemap``: every memento, in ``application/link-format``.

Out of range: a version the stream does not have yet (beyond the head) is 404 with the newest
version named, as is a time before the resource was created; a version before creation
(negative) is 400. A time after the newest version selects the newest version (its state
is the state at that time).
"""

from __future__ import annotations

import datetime
import email.utils
from typing import Any
from uuid import UUID

import falcon
import msgspec

from app import headers
from app.etags import ETagCodec
from app.media import content_type
from app.negotiation import digest_tag, encode, negotiate, validated
from app.problems import GONE, INVALID_QUERY, NOT_FOUND, Problem
from app.queries.parsing import commit_position, paging, refuse_unknown
from app.queries.presentations import Presentation
from app.queries.responder import ITEM_VARY, not_modified, page_links, send_list
from app.representations import Change, History, Link
from domain.errors import ImpossibleEvent
from eventstore.streams import EventStore, StoredEvent
from projections.views import Stored

IMMUTABLE = "private, max-age=31536000, immutable"
LINK_FORMAT = "application/link-format"
_metadata = msgspec.json.Decoder(dict[str, Any])
_any = msgspec.json.Decoder()


def wants_the_past(req: falcon.Request) -> bool:
    """Does this item GET ask for a version, or a time?"""
    return req.get_param("version") is not None or req.get_header("Accept-Datetime") is not None


def http_date(when: datetime.datetime | None) -> str:
    return email.utils.format_datetime(when or _EPOCH, usegmt=True)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class Timeline:
    """The past of one collection's resources."""

    def __init__(self, store: EventStore, etags: ETagCodec, presentation: Presentation) -> None:
        self._store = store
        self._etags = etags
        self._presentation = presentation

    def _stream(self, item: UUID) -> str:
        return self._presentation.view.aggregate.stream(item)

    def _urls(self, req: falcon.Request, item: UUID) -> tuple[str, str]:
        original = self._presentation.href(req.prefix, str(item))
        return original, f"{original}/timemap"

    # ------------------------------------------------------------ history

    def history(self, req: falcon.Request, resp: falcon.Response, item: UUID) -> None:
        refuse_unknown(req, ())
        offset, limit = paging(req)
        stream = self._stream(item)
        last = self._store.last(stream)
        if last is None:
            raise Problem(NOT_FOUND, f"There is no {self._presentation.path} resource {item}.")
        total = last.version + 1
        events = self._store.read(stream, after=offset - 1, limit=limit) if offset < total else []
        original, _ = self._urls(req, item)
        changes = [self._change(event, original) for event in events]
        links = page_links(req, offset, limit, total)
        page = History(offset=offset, limit=limit, total=total, items=changes, links=links)
        send_list(req, resp, "History", links, page)
        if len(events) == limit:
            resp.cache_control = [IMMUTABLE]  # a full page of history never changes

    @staticmethod
    def _change(event: StoredEvent, original: str) -> Change:
        try:
            meta = _metadata.decode(event.metadata) if event.metadata else {}
        except (msgspec.DecodeError, ValueError):
            meta = {}
        try:
            data = _any.decode(event.data)
        except (msgspec.DecodeError, ValueError, RecursionError):
            data = None

        def text(name: str) -> str | None:
            value = meta.get(name)
            return value if isinstance(value, str) else None

        return Change(
            version=event.version,
            type=event.type,
            time=event.recorded_at,
            data=data,
            principal=text("principal"),
            correlation_id=text("$correlationId"),
            causation_id=text("$causationId"),
            request_id=text("requestId"),
            links=[Link("memento", f"{original}?version={event.version}")],
        )

    # ------------------------------------------------------------ mementos

    def item(self, req: falcon.Request, resp: falcon.Response, item: UUID) -> None:
        """``?version=N`` (a memento), or ``Accept-Datetime`` (the TimeGate)."""
        if req.get_param("version") is None:
            self._timegate(req, resp, item)
            return
        refuse_unknown(req, ("version",))
        commit_position(req)  # not waited for (the event store has it), but held to its grammar
        if req.get_header("Accept-Datetime") is not None:  # moot beside ?version=, but checked
            headers.http_date(req.get_header("Accept-Datetime") or "", "Accept-Datetime")
        resp.vary = ["Accept"]  # ?version= names the memento: Accept-Datetime plays no part
        version = _version(req)
        choice = negotiate(req.get_header("Accept"), self._presentation.item_models)
        stream = self._stream(item)
        events = self._store.read(stream, limit=version + 1)
        if len(events) <= version:
            newest = f"the newest is {len(events) - 1}" if events else "it has none"
            raise Problem(NOT_FOUND, f"No version {version} of {item} exists ({newest}).")
        view = self._presentation.view
        state = view.aggregate.zero()
        for event in events:
            try:
                state = view.aggregate.evolve(state, event.type, event.data)
            except ImpossibleEvent:
                continue  # no effect, as on both sides
        if not state.exists:
            raise Problem(NOT_FOUND, f"{item} did not exist at version {version}.")
        original, timemap = self._urls(req, item)
        resp.set_header("Memento-Datetime", http_date(events[version].recorded_at))
        for href, rel in ((original, "original"), (original, "timegate"), (timemap, "timemap")):
            resp.append_link(href, rel)
        if not view.is_active(state):
            raise Problem(GONE, f"{item} was retired at version {version}.")
        stored = Stored(str(item), version, True, state)
        etag = self._etags.encode(stream, version)
        fresh = not_modified(req, resp, etag + choice.tag_suffix)
        resp.cache_control = [IMMUTABLE]  # the state at a version never changes
        if fresh:
            return
        links = self._presentation.links(req.prefix, str(item))
        if choice.model == self._presentation.item_type.__name__:
            value = self._presentation.details(stored, links)
        else:
            value = self._presentation.summary(stored, links, f'"{etag}"')
        resp.content_type = content_type(choice.model, choice.format)
        resp.data = encode(choice, value)

    def _timegate(self, req: falcon.Request, resp: falcon.Response, item: UUID) -> None:
        resp.vary = ITEM_VARY
        refuse_unknown(req, ())
        commit_position(req)
        wanted = headers.http_date(req.get_header("Accept-Datetime") or "", "Accept-Datetime")
        events = self._store.read(self._stream(item))
        chosen = [e for e in events if e.recorded_at is not None and e.recorded_at <= wanted]
        if not chosen:
            raise Problem(NOT_FOUND, f"{item} did not exist at {http_date(wanted)}.")
        memento = chosen[-1]
        original, timemap = self._urls(req, item)
        resp.status = falcon.HTTP_302
        resp.location = f"{original}?version={memento.version}"
        resp.append_link(original, "original")
        resp.append_link(original, "timegate")
        resp.append_link(timemap, "timemap")
        resp.append_link(resp.location, "memento")

    def timemap(self, req: falcon.Request, resp: falcon.Response, item: UUID) -> None:
        refuse_unknown(req, ())
        events = self._store.read(self._stream(item))
        if not events:
            raise Problem(NOT_FOUND, f"There is no {self._presentation.path} resource {item}.")
        original, timemap = self._urls(req, item)
        first, last = events[0].recorded_at, events[-1].recorded_at
        lines = [
            f'<{original}>;rel="original"',
            f'<{original}>;rel="timegate"',
            f'<{timemap}>;rel="self";type="{LINK_FORMAT}"'
            f';from="{http_date(first)}";until="{http_date(last)}"',
        ]
        for event in events:
            rel = "memento"
            if event is events[0]:
                rel = "first memento"
            if event is events[-1]:
                rel = "last memento" if len(events) > 1 else "first last memento"
            lines.append(
                f'<{original}?version={event.version}>;rel="{rel}"'
                f';datetime="{http_date(event.recorded_at)}"'
            )
        body = (",\n".join(lines) + "\n").encode()
        # It changes with every write: a digest of its bytes validates it, as a list's does.
        if validated(req, resp, digest_tag(body)):
            return
        resp.content_type = LINK_FORMAT
        resp.data = body


def _version(req: falcon.Request) -> int:
    text = req.get_param("version") or ""
    if not text.isdigit() or len(text) > 18:
        raise Problem(
            INVALID_QUERY, "`version` is a stream version: an integer >= 0.", parameter="version"
        )
    return int(text)
