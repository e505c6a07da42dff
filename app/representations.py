"""What responses carry, as msgspec Structs: encoded with prebuilt encoders, and the source of
every response schema in OPTIONS and OpenAPI (``msgspec.json.schema_components``)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from domain import cars
from domain.errors import FieldError

T = TypeVar("T")

# A resource's id: a UUID in canonical form, carried as the text it is stored and sent as
# (the read store holds only canonical ids: ``domain.aggregates.is_id``), so that a page does
# not parse ten UUIDs to print them again. Its schema is a UUID's.
ResourceId = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]


class Link(msgspec.Struct, frozen=True):
    """An RFC 8288 link as JSON; ``templated`` hrefs hold ``{placeholders}`` (RFC 6570)."""

    rel: str
    href: str
    templated: bool | msgspec.UnsetType = msgspec.UNSET


class Links(msgspec.Struct, frozen=True):
    links: list[Link]


class EntryPoint(Links, frozen=True):
    """``GET /v1``: where everything is."""


class CommandAccepted(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A 202: the events are durably in the store (none, if nothing changed).

    ``etag`` is the resource's entity-tag at the version the command left it (quoted, as in
    a header): send it back as ``If-Match`` to chain the next write. A PUT's 202 carries it
    only here, not as an ``ETag`` header (RFC 9110 9.3.4)."""

    events_appended: int
    message: str
    etag: str
    links: list[Link]


class InventoryItemSummary(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: ResourceId
    name: str
    active: bool
    etag: str
    links: list[Link]


class InventoryItemDetails(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: ResourceId
    name: str
    current_count: int
    links: list[Link]


class CarSummary(cars.CarRepresentation, frozen=True, kw_only=True, rename="camel"):
    id: ResourceId
    active: bool
    etag: str
    links: list[Link]


class ListPage(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    offset: int
    limit: int
    total: int
    items: list[T]
    links: list[Link]


class InventoryItemList(ListPage[InventoryItemSummary], frozen=True, kw_only=True):
    pass


class CarList(ListPage[CarSummary], frozen=True, kw_only=True):
    pass


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    id: ResourceId
    title: str
    links: list[Link]


class SearchResults(ListPage[SearchHit], frozen=True, kw_only=True):
    query: str


class ProblemDetails(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """RFC 9457, with the members this API adds; the optional ones appear where they apply."""

    type: str
    title: str
    status: int
    detail: str
    message: str
    error_code: int
    additional_information: str
    errors: list[FieldError] | msgspec.UnsetType = msgspec.UNSET
    accepted: list[str] | msgspec.UnsetType = msgspec.UNSET
    domain_model: str | msgspec.UnsetType = msgspec.UNSET
    parameter: str | msgspec.UnsetType = msgspec.UNSET
    header: str | msgspec.UnsetType = msgspec.UNSET
    reached: int | msgspec.UnsetType | None = msgspec.UNSET
    max_body_bytes: int | msgspec.UnsetType = msgspec.UNSET
    available: list[str] | msgspec.UnsetType = msgspec.UNSET


class ErrorPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    error_code: int
    status: int
    title: str
    description: str
    links: list[Link]


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    status: str
    event_store: dict[str, Any]
    projector: dict[str, Any]


class Change(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One event of a resource's history, in the API's vocabulary."""

    version: int
    type: str
    time: datetime.datetime | None
    data: Any  # the event's data as recorded (camelCase JSON); null if it is not JSON
    principal: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    request_id: str | None = None
    links: list[Link]


class History(ListPage[Change], frozen=True, kw_only=True):
    """``/history``: a resource's changes, oldest first."""


class FeedEntry(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One change of the change feed: which resource, its new version and ETag, the event."""

    resource: str
    collection: str
    version: int
    etag: str
    type: str
    position: int
    time: datetime.datetime | None


class ChangeFeed(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """``/v1/changes``: every change after a cursor, in commit order."""

    after: int
    limit: int
    items: list[FeedEntry]
    links: list[Link]
