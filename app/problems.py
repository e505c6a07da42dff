"""Errors as RFC 9457 problem details, each kind with a stable number and a page of its own.

Every refusal the API makes is a ``Problem``: Falcon's error handler turns it into
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``, and the
``message``, ``errorCode`` and ``additionalInformation`` the SPEC asks for. Falcon's own
errors (405, 404 for an unknown route, ...) go through the same serializer, and anything
unexpected becomes a 500 that says nothing of its insides.
"""

from __future__ import annotations

import http
import logging
from dataclasses import dataclass
from typing import Any

import falcon
import msgspec

from app import xmldocs
from app.accept import prefers_xml
from app.commands import (
    CommandFailed,
    Conflict,
    Gone,
    IdempotencyKeyReused,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Refused,
)
from app.representations import ProblemDetails
from domain.errors import ErrorCode, FieldError

PROBLEM_JSON = "application/problem+json"
PROBLEM_XML = "application/problem+xml"
ERRORS_PATH = "/v1/errors"
NO_STORE = "no-store"

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Kind:
    number: int
    status: int
    slug: str
    title: str
    description: str
    domain: ErrorCode | None = None


# The registry: numbers never change meaning once published. ``domain`` names the domain
# error each kind answers, so the command side's refusals map here and nowhere else. Each
# kind is written once, here, in the order of its number; ``KINDS`` is what they make.
_REGISTERED: list[Kind] = []


def _kind(
    number: int,
    status: int,
    slug: str,
    title: str,
    description: str,
    domain: ErrorCode | None = None,
) -> Kind:
    kind = Kind(number, status, slug, title, description, domain)
    _REGISTERED.append(kind)
    return kind


MALFORMED_BODY = _kind(
    1000,
    400,
    "malformed-body",
    "Malformed body",
    "The body is not JSON or does not fit the domain-model; every field error is listed.",
)
UNSUPPORTED_MEDIA_TYPE = _kind(
    1001,
    415,
    "unsupported-media-type",
    "Unsupported media type",
    "The Content-Type does not name a domain-model this method accepts.",
)
NOT_FOUND = _kind(
    1002,
    404,
    "not-found",
    "Not found",
    "No resource lives at this URL.",
    domain=ErrorCode.NOT_FOUND,
)
METHOD_NOT_ALLOWED = _kind(
    1003,
    405,
    "method-not-allowed",
    "Method not allowed",
    "The resource does not answer this method; Allow lists those it does.",
)
PRECONDITION_FAILED = _kind(
    1004,
    412,
    "precondition-failed",
    "Precondition failed",
    "If-Match does not name the resource's current version (or is not one of its ETags).",
)
PRECONDITION_REQUIRED = _kind(
    1005,
    428,
    "precondition-required",
    "Precondition required",
    "This deployment requires If-Match on every write.",
)
ALREADY_EXISTS = _kind(
    1006,
    409,
    "already-exists",
    "Already exists",
    "The resource exists already.",
    domain=ErrorCode.ALREADY_EXISTS,
)
CONFLICT = _kind(
    1007,
    409,
    "conflict",
    "Conflict",
    "Concurrent writers kept changing the resource; retry with its current ETag.",
)
IDEMPOTENCY_KEY_REUSED = _kind(
    1008,
    422,
    "idempotency-key-reused",
    "Idempotency key reused",
    "The Idempotency-Key was used before with a different request.",
)
INVALID_NAME = _kind(
    1009,
    422,
    "invalid-name",
    "Invalid name",
    "A name is 1 to 200 characters once trimmed.",
    domain=ErrorCode.INVALID_NAME,
)
ITEM_INACTIVE = _kind(
    1010,
    409,
    "item-inactive",
    "Item deactivated",
    "A deactivated item can no longer be renamed or stocked.",
    domain=ErrorCode.ITEM_INACTIVE,
)
INSUFFICIENT_STOCK = _kind(
    1011,
    409,
    "insufficient-stock",
    "Insufficient stock",
    "Removing this many items would take the stock below zero.",
    domain=ErrorCode.INSUFFICIENT_STOCK,
)
INVALID_CAR = _kind(
    1012,
    400,
    "invalid-car",
    "Invalid car",
    "The car breaks a rule; every field is listed.",
    domain=ErrorCode.INVALID_CAR,
)
IMMUTABLE_FIELD = _kind(
    1013,
    422,
    "immutable-field",
    "Immutable field",
    "Year, make, model and VIN of a car never change.",
    domain=ErrorCode.IMMUTABLE_FIELD,
)
MILEAGE_DECREASE = _kind(
    1014,
    422,
    "mileage-decrease",
    "Mileage decrease",
    "An odometer does not roll back.",
    domain=ErrorCode.MILEAGE_DECREASE,
)
GONE = _kind(
    1015,
    410,
    "gone",
    "Gone",
    "The resource was retired; it will not come back.",
    domain=ErrorCode.CAR_DELETED,
)
UNAVAILABLE = _kind(
    1016,
    503,
    "unavailable",
    "Service unavailable",
    "The event store cannot be reached right now; retry later. A write answered 503 may"
    " have been applied as the store went away: retry it with the same Idempotency-Key or"
    " If-Match, never blindly.",
)
INTERNAL_ERROR = _kind(
    1017,
    500,
    "internal-error",
    "Internal server error",
    "Something failed on our side; the request id in X-Request-Id helps us find it.",
)
INVALID_QUERY = _kind(
    1018,
    400,
    "invalid-query",
    "Invalid query",
    "A query parameter is unknown or out of range (offset >= 0, 1 <= limit, state ...).",
)
READ_MODEL_BEHIND = _kind(
    1019,
    503,
    "read-model-behind",
    "Read model behind",
    "The read models have not reached the commit position presented; retry shortly.",
)
UNAUTHORIZED = _kind(
    1020,
    401,
    "unauthorized",
    "Unauthorized",
    "No API key, or not one of ours: send Authorization: Bearer <key>.",
)
FORBIDDEN = _kind(
    1021,
    403,
    "forbidden",
    "Forbidden",
    "The API key is valid; its scopes do not allow this (read: GET/HEAD; write: the rest).",
)
BODY_TOO_LARGE = _kind(
    1022,
    413,
    "body-too-large",
    "Content too large",
    "The body is larger than this deployment accepts (MAX_BODY_BYTES); nothing was read.",
)
MALFORMED_REQUEST = _kind(
    1023,
    400,
    "malformed-request",
    "Malformed request",
    "The HTTP request itself could not be parsed (request line, headers or chunking).",
)
URI_TOO_LONG = _kind(
    1024,
    414,
    "uri-too-long",
    "URI too long",
    "The request line is longer than the server reads (4094 bytes).",
)
HEADER_FIELDS_TOO_LARGE = _kind(
    1025,
    431,
    "header-fields-too-large",
    "Request header fields too large",
    "Too many header fields (more than 100), or one longer than 8190 bytes.",
)
STOCK_LIMIT = _kind(
    1026,
    409,
    "stock-limit",
    "Stock limit",
    "Checking in this many items would take the stock beyond 2^53 - 1.",
    domain=ErrorCode.STOCK_LIMIT,
)
NOT_IMPLEMENTED = _kind(
    1027,
    501,
    "not-implemented",
    "Not implemented",
    "The request uses an HTTP feature the server does not implement (a transfer coding).",
)
EXPECTATION_FAILED = _kind(
    1028,
    417,
    "expectation-failed",
    "Expectation failed",
    "The Expect header asks for something other than 100-continue.",
)
NOT_ACCEPTABLE = _kind(
    1029,
    406,
    "not-acceptable",
    "Not acceptable",
    "No representation on offer matches Accept; the problem lists those available.",
)
TOO_MANY_WAITING = _kind(
    1030,
    503,
    "too-many-waiting",
    "Too many waiting",
    "Every long-poll slot is taken (Prefer: wait); retry, or ask without waiting.",
)
INVALID_HEADER = _kind(
    1031,
    400,
    "invalid-header",
    "Invalid header field",
    "A request header field breaks its grammar (RFC 9110, or the API's own for"
    " Idempotency-Key and Commit-Position); `header` names it.",
)
UNKNOWN_METHOD = _kind(
    1032,
    501,
    "unknown-method",
    "Method not implemented",
    "No resource of this API answers this method (RFC 9110 15.6.2); OPTIONS lists those a"
    " route answers.",
)
UNSUPPORTED_CONTENT_CODING = _kind(
    1033,
    415,
    "unsupported-content-coding",
    "Unsupported content coding",
    "The body is sent with a Content-Encoding the API does not decode; send it as is"
    " (Accept-Encoding: identity, RFC 9110 15.5.16).",
)
KINDS: tuple[Kind, ...] = tuple(_REGISTERED)
BY_STATUS = {kind.status: kind for kind in reversed(KINDS)}
BY_NUMBER = {kind.number: kind for kind in KINDS}
BY_DOMAIN_ERROR = {kind.domain: kind for kind in KINDS if kind.domain is not None}


class Problem(Exception):
    """A refusal with a registered kind, a sentence for people, and optional extra members."""

    def __init__(
        self,
        kind: Kind,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


# RFC 9110 15 renamed a few (Python's http module keeps RFC 7231's names).
RFC_9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def phrase(status: int, fallback: str) -> str:
    """The reason phrase RFC 9110 registers for ``status`` (gunicorn's own when unknown)."""
    if status in RFC_9110_PHRASES:
        return RFC_9110_PHRASES[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return fallback


def details(
    kind: Kind, detail: str, base: str, extra: dict[str, Any] | None = None
) -> ProblemDetails:
    page = f"{base}{ERRORS_PATH}/{kind.number}"
    return ProblemDetails(
        type=page,
        title=kind.title,
        status=kind.status,
        detail=detail,
        message=detail,
        error_code=kind.number,
        additional_information=page,
        **(extra or {}),
    )


def body(kind: Kind, detail: str, base: str, extra: dict[str, Any] | None = None) -> bytes:
    """The problem details as JSON, encoded through the Struct that documents them."""
    return _encode(details(kind, detail, base, extra))


def _send(
    req: falcon.Request, resp: falcon.Response, kind: Kind, detail: str, **extra: Any
) -> None:
    """problem+json, or problem+xml for a client that accepts XML and not JSON."""
    resp.status = f"{kind.status} {phrase(kind.status, kind.title)}"
    vary = resp.get_header("Vary")  # what had selected the response before it failed
    named = [v.strip() for v in vary.split(",")] if vary else []
    resp.vary = [*named, *(["Accept"] if "Accept" not in named else [])]
    # An error is stored by no cache: the next request may well succeed (a 404 for a
    # resource the read side has not caught up with yet, a 503), so none is reused.
    resp.cache_control = [NO_STORE]
    found = details(kind, detail, req.prefix, extra)
    if prefers_xml(req.get_header("Accept")):
        resp.content_type = PROBLEM_XML
        resp.data = xmldocs.problem(found)
    else:
        resp.content_type = PROBLEM_JSON
        resp.data = _encode(found)


def handle_problem(
    req: falcon.Request, resp: falcon.Response, problem: Problem, params: Any
) -> None:
    _send(req, resp, problem.kind, problem.detail, **problem.extra)
    for name, value in problem.headers.items():
        resp.set_header(name, value)


KIND_OF_FAILURE: dict[type[CommandFailed], Kind] = {
    NotFound: NOT_FOUND,
    Gone: GONE,
    PreconditionFailed: PRECONDITION_FAILED,
    PreconditionRequired: PRECONDITION_REQUIRED,
    Conflict: CONFLICT,
    IdempotencyKeyReused: IDEMPOTENCY_KEY_REUSED,
}


def handle_command_failed(
    req: falcon.Request, resp: falcon.Response, failure: CommandFailed, params: Any
) -> None:
    """The command side's refusals, mapped to problems here and nowhere else."""
    if isinstance(failure, Refused):
        error = failure.error
        fields = [FieldError(field=f.field, message=f.message) for f in error.fields]
        extra: dict[str, Any] = {"errors": fields} if fields else {}
        _send(req, resp, BY_DOMAIN_ERROR[error.code], error.message, **extra)
        return
    _send(req, resp, KIND_OF_FAILURE[type(failure)], str(failure))


def serialize_http_error(
    req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError
) -> None:
    """Falcon's own errors (405, unknown route, ...) in the same problem shape."""
    kind = BY_STATUS.get(error.status_code, INTERNAL_ERROR)
    _send(req, resp, kind, error.description or error.title or kind.title)


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: Any
) -> None:
    """A 500 that leaks nothing: the traceback goes to the log with the request id."""
    if isinstance(error, falcon.HTTPError):
        raise error
    log.exception("unhandled error in %s %s", req.method, req.path)
    _send(req, resp, INTERNAL_ERROR, INTERNAL_ERROR.description)
