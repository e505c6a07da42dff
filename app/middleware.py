"""Request ids (into the response and into event metadata) and one log line per request."""

from __future__ import annotations

import secrets
import time
from typing import Any

import falcon

from jsonlogs import Lines

log = Lines("app.access")


class RequestContext:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        incoming = req.get_header("X-Request-Id")
        req.context.request_id = (
            incoming if incoming and len(incoming) <= 200 else secrets.token_hex(16)
        )
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
