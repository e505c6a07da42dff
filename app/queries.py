"""The query side over HTTP: read models as representations, with paging, links and caching.

Everything here reads the projector's store (``projections.store.ReadModels``), never the
event store: reads are eventually consistent. A client that must see its own write presents
the commit position its 202 carried (``Commit-Position`` header or ``commitPosition``
parameter) and the request waits, for at most ``read_wait`` seconds, for the projector to
get there.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import falcon
import msgspec

from app.etags import ETagCodec
from app.mediatypes import content_type
from app.problems import Problem
from app.representations import (
    CarList,
    CarSummary,
    InventoryItemDetails,
    InventoryItemList,
    InventoryItemSummary,
    Link,
    ListPage,
    SearchHit,
    SearchResults,
)
from domain import cars
from projections.store import Filters, ReadModels, Row
from projections.views import CARS, INVENTORY, View

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_OFFSET = 2**53  # SQLite integers are 64-bit; no list is longer than this
CACHE_CONTROL = "private, max-age=0"
COMMIT_POSITION = "Commit-Position"
POSITION_PARAMETER = "commitPosition"
STATES = ("active", "deactivated", "all")
POLL_SECONDS = 0.002


_encode = msgspec.json.Encoder().encode


# ---------------------------------------------------------------- how each view is shown


@dataclass(frozen=True, slots=True)
class Presentation:
    """A view as an HTTP resource: where it lives, its models, what a list may filter."""

    view: View
    path: str  # the collection under /v1
    list_type: type[ListPage[Any]]
    item_type: type[msgspec.Struct]
    summary: Callable[[Row, list[Link], str], msgspec.Struct]
    details: Callable[[Row, list[Link]], msgspec.Struct]
    filters: tuple[str, ...] = ()  # equality filters (columns) besides state and query
    title: Callable[[Row], str] = lambda row: str(row[3])

    def href(self, prefix: str, row_id: str) -> str:
        return f"{prefix}/v1/{self.path}/{row_id}"

    def links(self, prefix: str, row_id: str) -> list[Link]:
        return [
            Link("self", self.href(prefix, row_id)),
            Link("collection", f"{prefix}/v1/{self.path}"),
        ]


def _car_fields(row: Row) -> dict[str, Any]:
    fields = dict(zip(CARS.columns, row[3:], strict=True))
    fields["owner"] = UUID(fields["owner"])
    return fields


INVENTORY_ITEMS = Presentation(
    view=INVENTORY,
    path="inventory-items",
    list_type=InventoryItemList,
    item_type=InventoryItemDetails,
    summary=lambda row, links, etag: InventoryItemSummary(
        id=UUID(row[0]), name=row[3], active=bool(row[2]), etag=etag, links=links
    ),
    details=lambda row, links: InventoryItemDetails(
        id=UUID(row[0]), name=row[3], current_count=row[4], links=links
    ),
)

CAR_ITEMS = Presentation(
    view=CARS,
    path="cars",
    list_type=CarList,
    item_type=cars.CarRepresentation,
    summary=lambda row, links, etag: CarSummary(
        id=UUID(row[0]), active=bool(row[2]), etag=etag, links=links, **_car_fields(row)
    ),
    details=lambda row, links: cars.CarRepresentation(**_car_fields(row)),
    filters=("make", "color", "owner"),
    title=lambda row: f"{row[3]} {row[4]} {row[5]} ({row[6]}, {row[8]})",
)

PRESENTATIONS = {p.view.category: p for p in (INVENTORY_ITEMS, CAR_ITEMS)}


# ---------------------------------------------------------------- request parsing


def _integer(req: falcon.Request, name: str, default: int, minimum: int) -> int:
    text = req.get_param(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise Problem(
            "invalid-query", f"`{name}` is an integer of at least {minimum}.", parameter=name
        )
    return value


def paging(req: falcon.Request) -> tuple[int, int]:
    """``offset`` (default 0) and ``limit`` (default 10, capped at 100)."""
    offset = min(_integer(req, "offset", 0, 0), MAX_OFFSET)  # beyond: past the end anyway
    limit = min(_integer(req, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    return offset, limit


def refuse_unknown(req: falcon.Request, known: Sequence[str]) -> None:
    """A misspelt filter would silently return everything: refuse it instead."""
    accepted = ("offset", "limit", POSITION_PARAMETER, *known)
    unknown = sorted(set(req.params) - set(accepted))
    if unknown:
        raise Problem(
            "invalid-query",
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            accepted=list(accepted),
        )


def filters(req: falcon.Request, presentation: Presentation) -> Filters:
    refuse_unknown(req, ("state", "query", *presentation.filters))
    state = req.get_param("state", default="active")
    if state not in STATES:
        raise Problem("invalid-query", f"`state` is one of {', '.join(STATES)}.", parameter="state")
    equal = []
    for name in presentation.filters:
        value = req.get_param(name)
        if value is None:
            continue
        if name == "owner":
            try:
                value = str(UUID(value))
            except ValueError:
                raise Problem("invalid-query", "`owner` is a UUID.", parameter="owner") from None
        equal.append((name, value))
    return Filters(state=state, equal=tuple(equal), query=req.get_param("query") or None)


# ---------------------------------------------------------------- responses


def _query(req: falcon.Request, **changes: int) -> str:
    """The request's own URL with some parameters changed (the order is kept)."""
    params = {k: v for k, v in req.params.items() if k != POSITION_PARAMETER}
    params.update({k: str(v) for k, v in changes.items()})
    return f"{req.prefix}{req.path}?{urlencode(params, doseq=True)}"


def page_links(req: falcon.Request, offset: int, limit: int, total: int) -> list[Link]:
    """self, first, prev (not on the first page), next (not on the last), last."""
    last = max(0, (total - 1) // limit * limit)
    links = [
        Link("self", _query(req, offset=offset, limit=limit)),
        Link("first", _query(req, offset=0, limit=limit)),
    ]
    if offset > 0:
        links.append(Link("prev", _query(req, offset=max(0, offset - limit), limit=limit)))
    if offset + limit < total:
        links.append(Link("next", _query(req, offset=offset + limit, limit=limit)))
    links.append(Link("last", _query(req, offset=last, limit=limit)))
    return links


def _fresh(req: falcon.Request, etag: str) -> bool:
    """Does If-None-Match name this representation? (weak comparison, RFC 9110 13.1.2)"""
    tags = req.if_none_match
    if not tags:
        return False
    return any(tag == "*" or str(tag) == etag for tag in tags)


def represent(
    req: falcon.Request, resp: falcon.Response, model: str, etag: str, body: Callable[[], bytes]
) -> None:
    """200 with the body, or 304 when the client holds this version already (the body is
    then never encoded)."""
    resp.etag = etag
    resp.cache_control = [CACHE_CONTROL]
    if _fresh(req, etag):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = content_type(model)
    resp.data = body()


def content_etag(body: bytes) -> str:
    """A strong validator for a list: a digest of exactly what would be sent."""
    digest = hashlib.blake2b(body, digest_size=18).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


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

    def catch_up(self, req: falcon.Request) -> None:
        """Read-your-writes: wait (bounded) until the read models reach the given position."""
        text = req.get_header(COMMIT_POSITION) or req.get_param(POSITION_PARAMETER)
        if text is None:
            return
        try:
            wanted = int(text)
        except ValueError:
            raise Problem(
                "invalid-query",
                "A commit position is the integer a 202 answered in Commit-Position.",
                parameter=POSITION_PARAMETER,
            ) from None
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
                    "read-model-behind",
                    f"The read models have not reached position {wanted} yet.",
                    headers={"Retry-After": "1"},
                    reached=reached,
                )
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _never_written(wanted: int) -> Problem:
        return Problem(
            "invalid-query",
            f"No write has reached commit position {wanted}: it is not one a 202 gave.",
            parameter=POSITION_PARAMETER,
        )

    def etag(self, presentation: Presentation, row: Row) -> str:
        return self._etags.encode(f"{presentation.view.category}-{row[0]}", row[1])

    def collection(
        self, req: falcon.Request, resp: falcon.Response, presentation: Presentation
    ) -> None:
        wanted = filters(req, presentation)
        offset, limit = paging(req)
        self.catch_up(req)
        page = self.reads.page(presentation.view, wanted, offset, limit)
        items = [
            presentation.summary(
                row, presentation.links(req.prefix, row[0]), f'"{self.etag(presentation, row)}"'
            )
            for row in page.rows
        ]
        links = page_links(req, offset, limit, page.total)
        listed = presentation.list_type(
            offset=offset, limit=limit, total=page.total, items=items, links=links
        )
        self._send_list(req, resp, presentation.list_type.__name__, links, _encode(listed))

    def item(
        self, req: falcon.Request, resp: falcon.Response, presentation: Presentation, item: UUID
    ) -> None:
        refuse_unknown(req, ())
        self.catch_up(req)
        row = self.reads.item(presentation.view, str(item))
        if row is None:
            raise Problem("not-found", f"There is no {presentation.path} resource {item}.")
        if not row[2]:
            raise Problem("gone", f"{presentation.path} resource {item} was retired.")
        links = presentation.links(req.prefix, row[0])
        for link in links:
            resp.append_link(link.href, link.rel)
        model = presentation.item_type.__name__
        details = presentation.details(row, links)
        represent(req, resp, model, self.etag(presentation, row), lambda: _encode(details))

    def search(self, req: falcon.Request, resp: falcon.Response) -> None:
        refuse_unknown(req, ("query",))
        text = (req.get_param("query") or "").strip()
        if not text:
            raise Problem("invalid-query", "`query` is the text to find.", parameter="query")
        offset, limit = paging(req)
        self.catch_up(req)
        total, found = self.reads.search(text, offset, limit)
        hits = []
        for view, row in found:
            presentation = PRESENTATIONS[view.category]
            hits.append(
                SearchHit(
                    kind=presentation.path,
                    id=UUID(row[0]),
                    title=presentation.title(row),
                    links=presentation.links(req.prefix, row[0]),
                )
            )
        links = page_links(req, offset, limit, total)
        result = SearchResults(
            query=text, offset=offset, limit=limit, total=total, items=hits, links=links
        )
        self._send_list(req, resp, "SearchResults", links, _encode(result))

    @staticmethod
    def _send_list(
        req: falcon.Request, resp: falcon.Response, model: str, links: list[Link], body: bytes
    ) -> None:
        for link in links:
            if link.rel != "self":
                resp.append_link(link.href, link.rel)
        represent(req, resp, model, content_etag(body), lambda: body)
