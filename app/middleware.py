"""What every request goes through: HTTP's own rules before any resource (methods, codings,
the grammar of the conditional headers), the caching every GET/HEAD answer states, request
ids (into the response and into event metadata) and one log line per request."""

from __future__ import annotations

import secrets
import time
from typing import Any

import falcon

from app import headers
from app.negotiation import CACHE_CONTROL
from app.problems import (
    NO_STORE,
    NOT_IMPLEMENTED,
    UNKNOWN_METHOD,
    UNSUPPORTED_CONTENT_CODING,
    Problem,
)
from jsonlogs import Lines

log = Lines("app.access")
# The methods HTTP itself defines (RFC 9110 9.3, PATCH from RFC 5789, QUERY from the httpbis
# safe-method-with-body draft, which tools such as schemathesis probe): one a route lacks is
# 405 with Allow (TRACE and CONNECT on every route). Any other method (FOO, SEARCH, get) is
# unknown to the whole server: 501 (RFC 9110 15.6.2).
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY")
)
READS = ("GET", "HEAD")


def _codings(value: str) -> list[str]:
    return [c.strip(" \t").lower() for c in value.split(",") if c.strip(" \t")]


class Protocol:
    """HTTP's rules that hold for every resource, checked before any of them runs."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method not in KNOWN_METHODS:
            raise Problem(
                UNKNOWN_METHOD,
                f"No resource here answers {req.method}: HTTP's methods are"
                f" {', '.join(sorted(KNOWN_METHODS))}; OPTIONS says which a route answers.",
            )
        # gunicorn reads chunked framing itself and hands on the rest: a body under another
        # transfer coding (gzip, chunked) would reach us still coded (RFC 9112 6.1: 501).
        coded = req.get_header("Transfer-Encoding")
        if coded is not None and _codings(coded) != ["chunked"]:
            raise Problem(
                NOT_IMPLEMENTED,
                f"Transfer-Encoding {coded}: only chunked is implemented (RFC 9112 6.1).",
            )
        coding = req.get_header("Content-Encoding")
        if coding is not None and set(_codings(coding)) - {"identity"}:
            raise Problem(
                UNSUPPORTED_CONTENT_CODING,
                f"Content-Encoding {coding}: bodies are read as sent, without a coding.",
                headers={"Accept-Encoding": "identity"},
            )
        headers.entity_tags(req, "If-Match")
        headers.entity_tags(req, "If-None-Match")

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        """Every GET/HEAD answer says how it may be cached: what sets nothing itself (a
        redirect, a TimeGate's 302) is revalidated as a representation is; an error is
        never stored (the problem handlers say so themselves)."""
        if req.method in READS and resp.get_header("Cache-Control") is None:
            resp.cache_control = [NO_STORE if resp.status_code >= 400 else CACHE_CONTROL]


class RequestContext:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        incoming = req.get_header("X-Request-Id")
        # One we can pass on (1 to 200 visible ASCII characters), else one of our own: it is
        # a trace, not an instruction, so a strange one is replaced rather than refused.
        req.context.request_id = incoming if headers.identifier(incoming) else secrets.token_hex(16)
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        request_id = getattr(req.context, "request_id", "")
        resp.set_header("X-Request-Id", request_id)
        elapsed = time.perf_counter() - getattr(req.context, "started", time.perf_counter())
        # The line's fields, as jsonlogs.JsonFormatter writes a dict message (one encode).
        log.info(
            {
                "requestId": request_id,
                "method": req.method,
                "path": req.path,
                "status": resp.status_code,
                "ms": round(elapsed * 1000, 2),
            }
        )
