"""The refusals gunicorn makes itself, before the app sees a request, as problem+json; and
the bounded lingering close that lets a client read a refusal while it is still sending.

gunicorn answers a request it cannot parse (a bad request line, too many or too large
header fields, broken chunking) with an HTML page written by ``gunicorn.util.write_error``;
it has no setting or hook for the format. ``install`` (called from the ``post_fork`` hook in
``deploy/gunicorn.conf.py``) swaps that one function for ``write_problem``, which keeps
gunicorn's own choice of status and message and writes them as the API's problem details,
with the ``Date`` every origin server with a clock sends (RFC 9110 6.6.1) and the status's
own reason phrase (gunicorn passes "Bad Request" along with its 501 and 500).

``drain_body`` (the ``post_request`` hook) is nginx's lingering close: a 413 is answered
before the body is read, and closing a socket with unread bytes makes the kernel send a
reset, which destroys the answer before a client that writes its whole body first (Python's
http.client, requests) reads it. So the rest of the body is read and thrown away, at most
``LINGER_BYTES`` of it and for at most ``LINGER_SECONDS``; past either bound the connection
is closed anyway, as nginx's ``lingering_time`` does.
"""

from __future__ import annotations

import email.utils
import socket
import time
from typing import Any

import gunicorn.util
import msgspec

from app.problems import (
    BY_STATUS,
    EXPECTATION_FAILED,
    FORBIDDEN,
    HEADER_FIELDS_TOO_LARGE,
    INTERNAL_ERROR,
    MALFORMED_REQUEST,
    NO_STORE,
    NOT_IMPLEMENTED,
    PROBLEM_JSON,
    URI_TOO_LONG,
    body,
    phrase,
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
        f"HTTP/1.1 {status_int} {phrase(status_int, reason)}\r\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
        "Connection: close\r\n"
        f"Cache-Control: {NO_STORE}\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(content)}\r\n"
        "\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + content)


LINGER_BYTES = 64 * 1024 * 1024
LINGER_SECONDS = 5.0
_LINGER_READ = 1024 * 1024


def drain_body(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """After the answer is sent: read what is left of the request body, bounded, so the
    close that follows sends a FIN the client reads past, not a reset."""
    reader = getattr(req, "body", None)
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    if reader is None or sock is None or getattr(reader, "failed", False):
        return
    deadline = time.monotonic() + LINGER_SECONDS
    drained = 0
    timeout = sock.gettimeout()
    try:
        while drained < LINGER_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            chunk = reader.read(_LINGER_READ)
            if not chunk:
                return  # the body is read to its end: the connection is clean
            drained += len(chunk)
    except Exception:  # a client gone, a timeout, broken framing: nothing left to save
        pass
    finally:
        sock.settimeout(timeout)
    reader.failed = True  # where the next request starts is unknown: never reuse it


def install() -> None:
    gunicorn.util.write_error = write_problem
