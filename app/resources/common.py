"""What every resource family shares: how its operations are described, how a request
becomes a ``CommandRequest`` (ETags decoded into stream versions here, at the edge), and the
202 that says what a command did."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4, uuid5

import falcon
import msgspec

from app import headers
from app.commands import ANY, CommandHandler, CommandRequest, Outcome, State
from app.description import PAGED, READ, operation
from app.etags import ETagCodec
from app.media import content_type
from app.negotiation import FORMATS
from app.problems import (
    CONFLICT,
    FORBIDDEN,
    GONE,
    INVALID_QUERY,
    MALFORMED_BODY,
    NOT_ACCEPTABLE,
    NOT_FOUND,
    PRECONDITION_FAILED,
    PRECONDITION_REQUIRED,
    READ_MODEL_BEHIND,
    UNAUTHORIZED,
    UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
)
from app.queries import Presentation
from app.representations import CommandAccepted, History, Link
from domain.aggregates import Aggregate
from domain.errors import DomainError

COMMIT_POSITION = "Commit-Position"
# Resources created with an Idempotency-Key get their id from it, so a retry finds them.
CREATION_NAMESPACE = UUID("0b4f3c9a-6e1d-4a2b-8c7f-5d9e0a1b2c3d")

R = TypeVar("R", bound=Callable[..., None])
S = TypeVar("S", bound=State)

# What every command may answer besides 202, and what a command on an existing resource adds.
GUARDED = (UNAUTHORIZED, FORBIDDEN)  # when API keys are configured
COMMAND = (MALFORMED_BODY, UNSUPPORTED_MEDIA_TYPE, UNAVAILABLE, *GUARDED)
ON_ITEM = (*COMMAND, NOT_FOUND, PRECONDITION_FAILED, PRECONDITION_REQUIRED, CONFLICT)
READS = (INVALID_QUERY, READ_MODEL_BEHIND, NOT_ACCEPTABLE, *GUARDED)
WRITE_ITEM = ("If-Match",)
CREATE = ("If-None-Match", "Idempotency-Key")


def accepting(summary: str, *models: type[msgspec.Struct], **details: Any) -> Callable[[R], R]:
    """A command: 202 with CommandAccepted."""
    return operation(
        summary=summary, accepts=models, returns=CommandAccepted, success=202, **details
    )


def listing(summary: str, presentation: Presentation) -> Callable[[R], R]:
    """A collection GET: pages, the view's filters, 304s, read-your-writes."""
    return operation(
        summary=summary,
        returns=presentation.list_type,
        formats=FORMATS,
        parameters=(*PAGED, "state", "query"),
        filters=presentation.view.filters,
        problems=READS,
        conditional=True,
    )


def reading(summary: str, presentation: Presentation) -> Callable[[R], R]:
    """An item GET: 404 unknown, 410 retired, 304s, read-your-writes."""
    return operation(
        summary=summary,
        returns=presentation.item_type,
        alternatives=(presentation.summary_type,),
        formats=FORMATS,
        parameters=(*READ, "version", "Accept-Datetime"),
        problems=(*READS, NOT_FOUND, GONE),
        conditional=True,
    )


def history(presentation: Presentation) -> Callable[[R], R]:
    """A resource's history: pages, immutable when full, from the event store."""
    return operation(
        summary=f"The changes of one of {presentation.path}, oldest first (the event store's).",
        returns=History,
        formats=FORMATS,
        parameters=("offset", "limit", "If-None-Match"),
        problems=(INVALID_QUERY, NOT_FOUND, NOT_ACCEPTABLE, *GUARDED),
        conditional=True,
    )


def timemap(presentation: Presentation) -> Callable[[R], R]:
    """RFC 7089: every memento of a resource, in application/link-format."""
    return operation(
        summary=f"Every version of one of {presentation.path} (RFC 7089 TimeMap).",
        returns=None,
        media_type="application/link-format",
        problems=(NOT_FOUND, *GUARDED),
        conditional=True,
    )


def if_match(
    tags: Sequence[str | falcon.ETag] | None, etags: ETagCodec, stream: str
) -> Literal["*"] | tuple[int, ...] | None:
    """``If-Match`` as the stream versions its strong ETags stand for (RFC 9110 13.1.1: a
    weak tag never matches); a tag sealed for another stream, or garbled, stands for none.
    The ETag of any representation of the resource (``<sealed>.<model>.<format>``) names
    the same version as the default's (``<sealed>``)."""
    if tags is None:
        return None
    if "*" in tags:
        return ANY
    versions = (  # any representation's ETag names its version before its first "."
        etags.decode(stream, tag.partition(".")[0])
        for tag in tags
        if isinstance(tag, falcon.ETag) and not tag.is_weak
    )
    return tuple(version for version in versions if version is not None)


def _if_match_tags(req: falcon.Request) -> Sequence[str | falcon.ETag] | None:
    """``req.if_match``, except that an If-Match of no tags at all (an empty list, which
    RFC 9110 5.6.1 allows) is present and matches no version: 412, not an absent header."""
    value = req.get_header("If-Match")
    if value is not None and not value.strip(" \t,"):
        return ()
    return req.if_match


class Writer:
    """Runs one command for a resource family and answers 202."""

    def __init__(self, commands: CommandHandler, etags: ETagCodec, collection: str) -> None:
        self._commands = commands
        self._etags = etags
        self._collection = collection

    def run(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        aggregate: Aggregate[S],
        item_id: UUID,
        decide: Callable[[S], Sequence[msgspec.Struct] | DomainError],
        domain_model: str,
        body: bytes,
        creates: bool = False,
    ) -> None:
        stream = aggregate.stream(item_id)
        request = CommandRequest(
            domain_model=domain_model,
            if_match=if_match(_if_match_tags(req), self._etags, stream),
            if_none_match_any="*" in (req.if_none_match or ()),
            idempotency_key=headers.idempotency_key(req) if req.method == "POST" else None,
            body=body,
            request_id=req.context.request_id,
            correlation_id=headers.correlation_id(req),
            principal=getattr(req.context, "principal", None),
        )
        outcome = self._commands.execute(aggregate, stream, decide, request, creates=creates)
        location = f"{req.prefix}/v1/{self._collection}/{item_id}"
        self._accepted(resp, outcome, location, tag_header=req.method != "PUT")

    def new_id(self, req: falcon.Request) -> UUID:
        key = headers.idempotency_key(req)
        return uuid5(CREATION_NAMESPACE, f"{self._collection}/{key}") if key else uuid4()

    def _accepted(
        self, resp: falcon.Response, outcome: Outcome, location: str, tag_header: bool
    ) -> None:
        """202: the events are durably in the store; where the resource is; its new ETag.

        The new version's entity-tag is always in the body (``etag``). It is an ``ETag``
        header too, except on a PUT: RFC 9110 9.3.4 lets a PUT response carry a validator
        only when the body sent was stored as it was and the validator is the new
        representation's, and a PUT here is a command (or a car's future state) that the
        server turns into events, not bytes it stores."""
        resp.status = falcon.HTTP_202
        resp.location = location
        etag = self._etags.encode(outcome.stream, outcome.version)
        if tag_header:
            resp.etag = etag
        if outcome.position is not None:
            resp.set_header(COMMIT_POSITION, str(outcome.position))
        resp.content_type = content_type("CommandAccepted")
        appended = outcome.appended
        resp.media = CommandAccepted(
            events_appended=appended,
            message=f"{appended} event(s) appended."
            if appended
            else "Nothing changed: nothing appended.",
            etag=f'"{etag}"',
            links=[Link("self", location)],
        )
