"""Errors as RFC 9457 problem details, each kind with a stable number and a page of its own.

Every refusal the API makes is a ``Problem``: Falcon's error handler turns it into
``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``, and the
``message``, ``errorCode`` and ``additionalInformation`` the SPEC asks for. Falcon's own
errors (405, 404 for an unknown route, ...) go through the same serializer, and anything
unexpected becomes a 500 that says nothing of its insides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import falcon

PROBLEM_JSON = "application/problem+json"
ERRORS_PATH = "/v1/errors"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Kind:
    number: int
    status: int
    slug: str
    title: str
    description: str


# The registry: numbers never change meaning once published.
KINDS: tuple[Kind, ...] = (
    Kind(1000, 400, "malformed-body", "Malformed body",
         "The body is not JSON or does not fit the domain-model; every field error is listed."),
    Kind(1001, 415, "unsupported-media-type", "Unsupported media type",
         "The Content-Type does not name a domain-model this method accepts."),
    Kind(1002, 404, "not-found", "Not found", "No resource lives at this URL."),
    Kind(1003, 405, "method-not-allowed", "Method not allowed",
         "The resource does not answer this method; Allow lists those it does."),
    Kind(1004, 412, "precondition-failed", "Precondition failed",
         "If-Match does not name the resource's current version (or is not one of its ETags)."),
    Kind(1005, 428, "precondition-required", "Precondition required",
         "This deployment requires If-Match on every write."),
    Kind(1006, 409, "already-exists", "Already exists", "The resource exists already."),
    Kind(1007, 409, "conflict", "Conflict",
         "Concurrent writers kept changing the resource; retry with its current ETag."),
    Kind(1008, 422, "idempotency-key-reused", "Idempotency key reused",
         "The Idempotency-Key was used before with a different request."),
    Kind(1009, 422, "invalid-name", "Invalid name", "A name is 1 to 200 characters once trimmed."),
    Kind(1010, 409, "item-inactive", "Item deactivated",
         "A deactivated item can no longer be renamed or stocked."),
    Kind(1011, 409, "insufficient-stock", "Insufficient stock",
         "Removing this many items would take the stock below zero."),
    Kind(1012, 400, "invalid-car", "Invalid car", "The car breaks a rule; every field is listed."),
    Kind(1013, 422, "immutable-field", "Immutable field",
         "Year, make, model and VIN of a car never change."),
    Kind(1014, 422, "mileage-decrease", "Mileage decrease", "An odometer does not roll back."),
    Kind(1015, 410, "gone", "Gone", "The resource was retired; it will not come back."),
    Kind(1016, 503, "unavailable", "Service unavailable",
         "The event store cannot be reached right now; retry later."),
    Kind(1017, 500, "internal-error", "Internal server error",
         "Something failed on our side; the request id in X-Request-Id helps us find it."),
    Kind(1018, 400, "invalid-query", "Invalid query",
         "A query parameter is unknown or out of range (offset >= 0, 1 <= limit, state ...)."),
    Kind(1019, 503, "read-model-behind", "Read model behind",
         "The read models have not reached the commit position presented; retry shortly."),
    Kind(1020, 401, "unauthorized", "Unauthorized",
         "No API key, or not one of ours: send Authorization: Bearer <key>."),
    Kind(1021, 403, "forbidden", "Forbidden",
         "The API key is valid; its scopes do not allow this (read: GET/HEAD; write: the rest)."),
    Kind(1022, 413, "body-too-large", "Content too large",
         "The body is larger than this deployment accepts (MAX_BODY_BYTES); nothing was read."),
    Kind(1023, 400, "malformed-request", "Malformed request",
         "The HTTP request itself could not be parsed (request line, headers or chunking)."),
    Kind(1024, 414, "uri-too-long", "URI too long",
         "The request line is longer than the server reads (4094 bytes)."),
    Kind(1025, 431, "header-fields-too-large", "Request header fields too large",
         "Too many header fields (more than 100), or one longer than 8190 bytes."),
    Kind(1026, 409, "stock-limit", "Stock limit",
         "Checking in this many items would take the stock beyond 2^53 - 1."),
    Kind(1027, 501, "not-implemented", "Not implemented",
         "The request uses an HTTP feature the server does not implement (a transfer coding)."),
    Kind(1028, 417, "expectation-failed", "Expectation failed",
         "The Expect header asks for something other than 100-continue."),
)  # fmt: skip
BY_SLUG = {kind.slug: kind for kind in KINDS}
BY_STATUS = {kind.status: kind for kind in reversed(KINDS)}
BY_NUMBER = {kind.number: kind for kind in KINDS}


class Problem(Exception):
    """A refusal with a registered kind, a sentence for people, and optional extra members."""

    def __init__(
        self,
        slug: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.kind = BY_SLUG[slug]
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def body(kind: Kind, detail: str, base: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    page = f"{base}{ERRORS_PATH}/{kind.number}"
    return {
        "type": page,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "message": detail,
        "errorCode": kind.number,
        "additionalInformation": page,
        **(extra or {}),
    }


def handle_problem(
    req: falcon.Request, resp: falcon.Response, problem: Problem, params: Any
) -> None:
    resp.status = problem.kind.status
    resp.content_type = PROBLEM_JSON
    resp.media = body(problem.kind, problem.detail, req.prefix, problem.extra)
    for name, value in problem.headers.items():
        resp.set_header(name, value)


def serialize_http_error(
    req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError
) -> None:
    """Falcon's own errors (405, unknown route, ...) in the same problem shape."""
    kind = BY_STATUS.get(error.status_code, BY_SLUG["internal-error"])
    detail = error.description or error.title or kind.title
    resp.content_type = PROBLEM_JSON
    resp.media = body(kind, detail, req.prefix)


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: Any
) -> None:
    """A 500 that leaks nothing: the traceback goes to the log with the request id."""
    if isinstance(error, falcon.HTTPError):
        raise error
    log.exception("unhandled error in %s %s", req.method, req.path)
    kind = BY_SLUG["internal-error"]
    resp.status = kind.status
    resp.content_type = PROBLEM_JSON
    resp.media = body(kind, kind.description, req.prefix)
