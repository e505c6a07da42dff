"""The event store adapter: the only module of the app that knows esdbclient.

It turns esdbclient's exceptions into the app's own at this boundary (a wrong expected
version becomes a ConcurrencyConflict here and nowhere else knows WrongCurrentVersion), and
creates its gRPC client lazily, so that each gunicorn worker gets its own after the fork.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.connection_spec import ConnectionSpec
from esdbclient.exceptions import (
    DeadlineExceeded,
    DiscoveryFailed,
    GrpcError,
    NotFound,
    ServiceUnavailable,
    StreamIsDeleted,
    WrongCurrentVersion,
)

from projections.connection import invalid_uri, redact, refusal

NO_STREAM = -1  # the version of a stream with no events


class ConcurrencyConflict(Exception):
    """The stream is not at the expected version: someone else wrote first."""


class StreamGone(Exception):
    """The stream was tombstoned: nothing can be read from or written to it again."""


class StoreUnavailable(Exception):
    """The event store cannot be reached (or answered too late)."""


class StoreRefused(StoreUnavailable):
    """The store refuses this configuration (credentials, access, certificate, URI).

    Still a 503 to HTTP clients (it is the server's fault, not theirs), but at start-up it
    stops the web with one clear line: no retry will mend it.
    """


FAILURES = (DiscoveryFailed, ServiceUnavailable, DeadlineExceeded, GrpcError)


def unavailable(error: Exception) -> StoreUnavailable:
    """esdbclient's failure as the app's: refused for good, or unavailable for now."""
    reason = refusal(error)
    if reason is not None:
        return StoreRefused(reason)
    return StoreUnavailable(redact(str(error)))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    type: str
    data: bytes
    metadata: bytes
    version: int  # the event's position in its stream
    position: int  # its commit position in the whole store


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: UUID
    type: str
    data: bytes
    metadata: bytes


class EventStore:
    """``uri`` is any esdbclient connection string; its ``defaultDeadline`` (when given)
    bounds every call, else ``timeout`` seconds do. ``root_certificates`` (PEM) are the CAs
    to trust when the URI names no ``tlsCAFile``."""

    def __init__(
        self, uri: str, timeout: float = 10.0, root_certificates: str | None = None
    ) -> None:
        self._uri = uri
        self._root_certificates = root_certificates
        try:
            options = ConnectionSpec(uri).options
        except ValueError as error:
            raise StoreRefused(invalid_uri(error)) from error
        self._timeout: float | None = None if options.DefaultDeadline is not None else timeout
        # Read from the leader (the default), the head includes every acknowledged write;
        # from a follower or replica it may trail the leader's by a moment.
        self.head_is_current: bool = options.NodePreference == "leader"
        self._client: EventStoreDBClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> EventStoreDBClient:
        """Connected on first use: in a gunicorn worker, that is after the fork.

        esdbclient reconnects by itself when a call finds the node gone or no longer the
        leader (rediscovering the cluster from the URI's hosts), so a node failure costs the
        calls in flight a 503, not the worker.
        """
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = EventStoreDBClient(
                            self._uri, root_certificates=self._root_certificates
                        )
                    except FAILURES as error:
                        raise unavailable(error) from error
        return self._client

    def check(self) -> None:
        """Connect now and read the head once (a worker does this as it boots).

        Raises StoreRefused when the store refuses this configuration; StoreUnavailable when
        it cannot be reached now (the worker starts anyway and answers 503 until it can).
        """
        self.head(timeout=self._timeout or 10.0)

    def read(self, stream: str, after: int = NO_STREAM) -> list[StoredEvent]:
        """The stream's events after version ``after`` (all of them by default)."""
        try:
            recorded = self.client.get_stream(
                stream, stream_position=after + 1, timeout=self._timeout
            )
        except NotFound:
            return []
        except StreamIsDeleted as error:
            raise StreamGone(stream) from error
        except FAILURES as error:
            raise unavailable(error) from error
        return [
            StoredEvent(e.type, e.data, e.metadata, e.stream_position, e.commit_position or 0)
            for e in recorded
        ]

    def append(self, stream: str, expected: int | None, events: Sequence[PendingEvent]) -> int:
        """Append atomically after version ``expected`` (None: any); the commit position.

        Re-appending the same event ids after the same version is answered as the first
        time (the store's idempotent append), which is what makes retries safe.
        """
        current: int | StreamState
        if expected is None:
            current = StreamState.ANY
        elif expected == NO_STREAM:
            current = StreamState.NO_STREAM
        else:
            current = expected
        new = [NewEvent(type=e.type, data=e.data, metadata=e.metadata, id=e.id) for e in events]
        try:
            position: int = self.client.append_to_stream(
                stream, current_version=current, events=new, timeout=self._timeout
            )
        except WrongCurrentVersion as error:
            raise ConcurrencyConflict(str(error)) from error
        except StreamIsDeleted as error:
            raise StreamGone(stream) from error
        except FAILURES as error:
            raise unavailable(error) from error
        return position

    def head(self, timeout: float = 1.0) -> int:
        """The commit position of the newest event outside system streams (0: none yet)."""
        try:
            position: int = self.client.get_commit_position(timeout=timeout)
        except FAILURES as error:
            raise unavailable(error) from error
        return position

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
