"""How the event store says "never with this configuration", as opposed to "not now".

A store that is down, restarting or electing a leader is *unavailable*: the web answers 503
and the projector retries. A store that refuses the credentials, denies the user access to
``$all``, or presents a certificate the client does not trust will refuse every retry the
same way: that is a configuration error, and the processes say so in one clear line at
start-up instead of retrying forever. Both the web's and the projector's adapters use this.
"""

from __future__ import annotations

import re

import grpc
from esdbclient.connection_spec import ConnectionSpec

CONNECTION_STRING_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """A message without the ``user:password@`` of any connection string in it."""
    return CONNECTION_STRING_CREDENTIALS.sub("***@", text)


def _causes(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend([current.__cause__, current.__context__])
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return seen


def refusal(error: BaseException) -> str | None:
    """Why the store will never accept this configuration, or None if retrying may help."""
    for cause in _causes(error):
        if isinstance(cause, grpc.Call):
            code, details = cause.code(), str(cause.details() or "")
            if code == grpc.StatusCode.UNAUTHENTICATED:
                return (
                    "the event store refused the credentials in ESDB_URI"
                    " (wrong user name or password)"
                )
            if code == grpc.StatusCode.PERMISSION_DENIED:
                return (
                    "the user in ESDB_URI may not read $all: use a user in the $admins group"
                    " (or grant it read access to $all)"
                )
            if "CERTIFICATE_VERIFY_FAILED" in details:
                return (
                    "the event store's TLS certificate is not trusted: point tlsCAFile= in"
                    " ESDB_URI at the CA that signed it"
                )
            if "not in peer certificate" in details:
                return (
                    "the event store's TLS certificate does not name the host in ESDB_URI: "
                    + details
                )
            if "SSL_ERROR" in details or "handshake failed" in details.lower():
                return f"the TLS handshake with the event store failed: {details}"
    return None


def invalid_uri(error: ValueError) -> str:
    """The message for a connection string esdbclient cannot parse (credentials hidden)."""
    return f"ESDB_URI is not a connection string esdbclient accepts: {redact(str(error))}"


def check_uri(uri: str) -> None:
    """Raise ValueError (with ``invalid_uri``'s message) unless esdbclient can parse ``uri``."""
    try:
        ConnectionSpec(uri)
    except ValueError as error:
        raise ValueError(invalid_uri(error)) from None
