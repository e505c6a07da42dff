"""Connection strings, TLS and credentials; the one client per process; and how the event
store says "never with this configuration", as opposed to "not now".

A store that is down, restarting or electing a leader is *unavailable*: the web answers 503
and the projector retries. A store that refuses the credentials, denies the user access to
``$all``, or presents a certificate the client does not trust will refuse every retry the
same way: that is a configuration error, and the processes say so in one clear line at
start-up instead of retrying forever. Both the web's and the projector's adapters use this.

The client is created on first use (``LazyClient``): in a gunicorn worker that is after the
fork, since gRPC channels do not survive one.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping

import grpc
from esdbclient import EventStoreDBClient
from esdbclient.connection_spec import ConnectionSpec
from esdbclient.exceptions import EventStoreDBClientException

from eventstore.errors import StoreRefused, StoreUnavailable


def esdb_uri(env: Mapping[str, str] = os.environ) -> str:
    """``ESDB_URI``, else the embedded esdblocal on ``ESDB_PORT`` (2113) of this host."""
    return env.get("ESDB_URI") or f"esdb://127.0.0.1:{int(env.get('ESDB_PORT', '2113'))}?tls=false"


def root_certificates(env: Mapping[str, str] = os.environ) -> str | None:
    """``ESDB_ROOT_CERTIFICATES``: PEM text of the CA(s) to trust, for platforms that hand
    secrets over as variables rather than files (``tlsCAFile=`` in the URI is the file form)."""
    return env.get("ESDB_ROOT_CERTIFICATES") or None


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


def unavailable(error: BaseException) -> StoreUnavailable:
    """esdbclient's failure as ours: refused for good, or unavailable for now."""
    reason = refusal(error)
    if reason is not None:
        return StoreRefused(reason)
    return StoreUnavailable(redact(f"{type(error).__name__}: {error}"))


class LazyClient:
    """One esdbclient client, made on first use and remade after ``reset``."""

    def __init__(self, uri: str, root_certificates: str | None = None) -> None:
        self._uri = uri
        self._root_certificates = root_certificates
        self._client: EventStoreDBClient | None = None
        self._lock = threading.Lock()

    def get(self) -> EventStoreDBClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = EventStoreDBClient(
                            self._uri, root_certificates=self._root_certificates
                        )
                    except ValueError as error:
                        raise StoreRefused(invalid_uri(error)) from error
                    except EventStoreDBClientException as error:
                        raise unavailable(error) from error
        return self._client

    def reset(self) -> None:
        """Drop the client; the next ``get`` makes a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
