"""GET and HEAD over the read models: representations, pages, links, 304s, read-your-writes.

Everything here reads the projector's store (``projections.reader.ReadModels``), never the
event store: reads are eventually consistent. A client that must see its own write presents
the commit position its 202 carried (``Commit-Position`` header or ``commitPosition``
parameter) and the request waits, for at most ``read_wait`` seconds, for the projector to
get there.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple
from urllib.parse import urlencode
from uuid import UUID

import falcon
import msgspec

from app.etags import ETagCodec
from app.media import content_type
from app.negotiation import Choice, digest_tag, encode, negotiate, validated
from app.problems import GONE, INVALID_QUERY, NOT_FOUND, READ_MODEL_BEHIND, Problem
from app.queries.parsing import (
    POSITION_PARAMETER,
    commit_position,
    filters,
    paging,
    refuse_unknown,
)
from app.queries.presentations import PRESENTATIONS, Presentation
from app.representations import Link, SearchHit, SearchResults
from projections.reader import ReadModels
from projections.views import Stored

# An item URL is its own TimeGate (RFC 7089 4.1.1): with Accept-Datetime it answers a 302 to
# a memento instead, so whatever it answers varies on that header as well as on Accept.
ITEM_VARY = ["Accept", "Accept-Datetime"]
POLL_SECONDS = 0.002
RENDERINGS_PER_THREAD = 256


_encode = msgspec.json.Encoder().encode


# ---------------------------------------------------------------- responses


def _pager(req: falcon.Request) -> Callable[[int, int], str]:
    """The request's own URL for another offset and limit (the other parameters and their
    order kept; ``offset`` and ``limit`` where the request had them, else at the end). The
    other parameters are encoded once per request, not once per link."""
    params = {k: v for k, v in req.params.items() if k != POSITION_PARAMETER}
    params.setdefault("offset", "")
    params.setdefault("limit", "")
    parts = [
        name if name in ("offset", "limit") else urlencode({name: value}, doseq=True)
        for name, value in params.items()
    ]
    base = f"{req.prefix}{req.path}?"

    def url(offset: int, limit: int) -> str:
        values = {"offset": f"offset={offset}", "limit": f"limit={limit}"}
        return base + "&".join(values.get(part, part) for part in parts)

    return url


def _query(req: falcon.Request) -> tuple[tuple[str, Any], ...]:
    """The request's parameters as a key (the commit position aside: it only makes the
    request wait)."""
    return tuple((k, str(v)) for k, v in req.params.items() if k != POSITION_PARAMETER)


def page_links(req: falcon.Request, offset: int, limit: int, total: int) -> list[Link]:
    """self, first, prev (not on the first page), next (not on the last), last."""
    url = _pager(req)
    last = max(0, (total - 1) // limit * limit)
    links = [Link("self", url(offset, limit)), Link("first", url(0, limit))]
    if offset > 0:
        links.append(Link("prev", url(max(0, offset - limit), limit)))
    if offset + limit < total:
        links.append(Link("next", url(offset + limit, limit)))
    links.append(Link("last", url(last, limit)))
    return links


def not_modified(req: falcon.Request, resp: falcon.Response, etag: str) -> bool:
    """Validators on every answer; True (and a 304) when the client holds this version."""
    return validated(req, resp, etag)


content_etag = digest_tag


class Rendered(NamedTuple):
    """A representation built from the read store: what a GET sends, and its validator."""

    etag: str
    content_type: str
    body: bytes
    links: tuple[tuple[str, str], ...]  # (href, rel) for the Link header


def send(req: falcon.Request, resp: falcon.Response, rendered: Rendered) -> None:
    """The representation, or a 304 when the client holds it."""
    if not_modified(req, resp, rendered.etag):
        return  # a 304 carries no links and no body
    for href, rel in rendered.links:
        resp.append_link(href, rel)
    resp.content_type = rendered.content_type
    resp.data = rendered.body


def render_list(choice: Choice, model: str, links: list[Link], value: Any) -> Rendered:
    """A page in the format chosen, with its links (but ``self``) for ``Link``; its ETag is a
    digest of exactly the bytes sent, so each format has its own."""
    body = encode(choice, value)
    return Rendered(
        content_etag(body),
        content_type(model, choice.format),
        body,
        tuple((link.href, link.rel) for link in links if link.rel != "self"),
    )


def send_list(
    req: falcon.Request, resp: falcon.Response, model: str, links: list[Link], value: Any
) -> None:
    """A page built for this request only (search, history): negotiated, rendered, sent."""
    choice = negotiate(req.get_header("Accept"), [model])
    resp.vary = ["Accept"]
    send(req, resp, render_list(choice, model, links, value))


class Renderings:
    """Representations already built, per thread, while the read store has not changed.

    Each thread reads through its own SQLite connection, whose ``data_version`` moves when
    the projector commits (``ReadModels.token``); a thread's renderings are dropped the
    moment its token moves, so what is sent is always what the store holds now, never older.
    With the store idle between writes, a repeated GET skips the query and the encoding (a
    conditional one compares its ETag); each commit costs the next requests one rebuild.
    """

    def __init__(self, capacity: int = RENDERINGS_PER_THREAD) -> None:
        self._capacity = capacity
        self._local = threading.local()

    def _entries(self, token: Hashable) -> dict[Hashable, Rendered]:
        local = self._local
        if getattr(local, "token", None) != token:
            local.token = token
            local.entries = {}
        entries: dict[Hashable, Rendered] = local.entries
        return entries

    def kept(self, token: Hashable, key: Hashable, render: Callable[[], Rendered]) -> Rendered:
        """The rendering kept under ``key``, else ``render()``, kept when it was built after
        ``token`` was read (so at least that new); past the capacity, the oldest goes (every
        commit empties the lot anyway). Without a token (no store yet) nothing is kept."""
        if token is None:
            return render()
        entries = self._entries(token)
        found = entries.get(key)
        if found is None:
            found = entries[key] = render()
            if len(entries) > self._capacity:
                del entries[next(iter(entries))]
        return found


class Queries:
    """GET/HEAD for collections, items and search, over the read models."""

    def __init__(
        self,
        reads: ReadModels,
        etags: ETagCodec,
        wait: float,
        head: Callable[[], int],
        head_is_current: bool = True,
    ) -> None:
        self.reads = reads
        self._etags = etags
        self._wait = wait
        self._head = head  # the event store's newest commit position
        # False when the head is read from a follower, which may not have every write yet.
        self._head_is_current = head_is_current
        self._renderings = Renderings()

    def catch_up(self, req: falcon.Request) -> None:
        """Read-your-writes: wait (bounded) until the read models reach the given position."""
        wanted = commit_position(req)
        if wanted is None:
            return
        reached = self.reads.position()
        if reached is not None and reached >= wanted:
            return
        if self._head_is_current and wanted > self._head():
            raise self._never_written(wanted)
        deadline = time.monotonic() + self._wait
        while True:
            reached = self.reads.position()
            if reached is not None and reached >= wanted:
                return
            if time.monotonic() >= deadline:
                if not self._head_is_current and wanted > self._head():
                    raise self._never_written(wanted)  # a follower had the whole wait
                raise Problem(
                    READ_MODEL_BEHIND,
                    f"The read models have not reached position {wanted} yet.",
                    headers={"Retry-After": "1"},
                    reached=reached,
                )
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _never_written(wanted: int) -> Problem:
        return Problem(
            INVALID_QUERY,
            f"No write has reached commit position {wanted}: it is not one a 202 gave.",
            parameter=POSITION_PARAMETER,
        )

    def etag(self, presentation: Presentation, stored: Stored[Any]) -> str:
        return self._etags.encode(presentation.view.aggregate.stream(stored.id), stored.version)

    def collection(
        self, req: falcon.Request, resp: falcon.Response, presentation: Presentation
    ) -> None:
        wanted = filters(req, presentation.view)
        offset, limit = paging(req)
        model = presentation.list_type.__name__
        choice = negotiate(req.get_header("Accept"), [model])
        resp.vary = ["Accept"]
        self.catch_up(req)

        def render() -> Rendered:
            page = self.reads.page(presentation.view, wanted, offset, limit)
            items = [
                presentation.summary(
                    stored,
                    presentation.links(req.prefix, stored.id),
                    f'"{self.etag(presentation, stored)}"',
                )
                for stored in page.records
            ]
            links = page_links(req, offset, limit, page.total)
            listed = presentation.list_type(
                offset=offset, limit=limit, total=page.total, items=items, links=links
            )
            return render_list(choice, model, links, listed)

        key = ("list", req.prefix, req.path, _query(req), choice)
        send(req, resp, self._renderings.kept(self.reads.token(), key, render))

    def item(
        self, req: falcon.Request, resp: falcon.Response, presentation: Presentation, item: UUID
    ) -> None:
        resp.vary = ITEM_VARY
        refuse_unknown(req, ())
        choice = negotiate(req.get_header("Accept"), presentation.item_models)
        self.catch_up(req)
        key = ("item", req.prefix, presentation.path, item, choice)
        render = functools.partial(self._render_item, req, presentation, str(item), choice)
        send(req, resp, self._renderings.kept(self.reads.token(), key, render))

    def _render_item(
        self, req: falcon.Request, presentation: Presentation, item: str, choice: Choice
    ) -> Rendered:
        stored = self.reads.item(presentation.view, item)
        if stored is None:
            raise Problem(NOT_FOUND, f"There is no {presentation.path} resource {item}.")
        if not stored.active:
            raise Problem(GONE, f"{presentation.path} resource {item} was retired.")
        etag = self.etag(presentation, stored)
        links = presentation.links(req.prefix, stored.id)
        value = (
            presentation.details(stored, links)
            if choice.model == presentation.item_type.__name__
            else presentation.summary(stored, links, f'"{etag}"')
        )
        return Rendered(
            etag + choice.tag_suffix,
            content_type(choice.model, choice.format),
            encode(choice, value),
            tuple((link.href, link.rel) for link in links),
        )

    def search(self, req: falcon.Request, resp: falcon.Response) -> None:
        refuse_unknown(req, ("query",))
        text = (req.get_param("query") or "").strip()
        if not text:
            raise Problem(INVALID_QUERY, "`query` is the text to find.", parameter="query")
        offset, limit = paging(req)
        self.catch_up(req)
        total, found = self.reads.search(text, offset, limit)
        hits = []
        for view, stored in found:
            presentation = PRESENTATIONS[view.category]
            hits.append(
                SearchHit(
                    kind=presentation.path,
                    id=stored.id,
                    title=view.title(stored.state),
                    links=presentation.links(req.prefix, stored.id),
                )
            )
        links = page_links(req, offset, limit, total)
        result = SearchResults(
            query=text, offset=offset, limit=limit, total=total, items=hits, links=links
        )
        send_list(req, resp, "SearchResults", links, result)
