"""The refusals gunicorn makes itself, before the app sees a request, as problem+json.

gunicorn answers a request it cannot parse (a bad request line, too many or too large
header fields, broken chunking) with an HTML page written by ``gunicorn.util.write_error``;
it has no setting or hook for the format. ``install`` (called from the ``post_fork`` hook in
``deploy/gunicorn.conf.py``) swaps that one function for ``write_problem``, which keeps
gunicorn's own choice of status and message and writes them as the API's problem details.
"""

from __future__ import annotations

import socket

import gunicorn.util
import msgspec

from app.problems import (
    BY_STATUS,
    EXPECTATION_FAILED,
    FORBIDDEN,
    HEADER_FIELDS_TOO_LARGE,
    INTERNAL_ERROR,
    MALFORMED_REQUEST,
    NOT_IMPLEMENTED,
    PROBLEM_JSON,
    URI_TOO_LONG,
    body,
)

# gunicorn's statuses and the kinds the API documents for them.
KIND_OF_STATUS = {
    400: MALFORMED_REQUEST,
    403: FORBIDDEN,
    414: URI_TOO_LONG,
    417: EXPECTATION_FAILED,
    431: HEADER_FIELDS_TOO_LARGE,
    501: NOT_IMPLEMENTED,
}
_encode = msgspec.json.Encoder().encode


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``'s signature and behaviour, in problem+json."""
    kind = KIND_OF_STATUS.get(status_int) or BY_STATUS.get(status_int) or INTERNAL_ERROR
    detail = f"{kind.description} ({mesg})" if mesg else kind.description
    content = body(kind, detail, "")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(content)}\r\n"
        "\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + content)


def install() -> None:
    gunicorn.util.write_error = write_problem
