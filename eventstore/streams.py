"""Streams for the command side: read a stream's new events, append with an expected
version, and the store's head.

esdbclient's exceptions become ours at this boundary (a wrong expected version becomes a
``ConcurrencyConflict`` here, and nothing else knows ``WrongCurrentVersion``).
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from esdbclient import EventStoreDBClient, NewEvent, RecordedEvent, StreamState
from esdbclient.connection_spec import ConnectionSpec
from esdbclient.exceptions import (
    DeadlineExceeded,
    DiscoveryFailed,
    FailedPrecondition,
    GrpcError,
    NodeIsNotLeader,
    NotFound,
    ServiceUnavailable,
    StreamIsDeleted,
    WrongCurrentVersion,
)
from opentelemetry.trace import SpanKind

from eventstore.connection import LazyClient, invalid_uri, unavailable
from eventstore.errors import (
    ConcurrencyConflict,
    StoreRefused,
    StoreUnavailable,
    StreamGone,
)
from telemetry import tracing

__all__ = [
    "NO_STREAM",
    "ConcurrencyConflict",
    "EventStore",
    "PendingEvent",
    "StoreRefused",
    "StoreUnavailable",
    "StoredEvent",
    "StreamGone",
]

NO_STREAM = -1  # the version of a stream with no events
# NodeIsNotLeader: esdbclient reconnects to the leader a follower names and retries once; a
# second refusal (the named leader died, or lost an election meanwhile) is an election's
# "not now", like the node being unreachable.
FAILURES = (DiscoveryFailed, ServiceUnavailable, DeadlineExceeded, GrpcError, NodeIsNotLeader)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    type: str
    data: bytes
    metadata: bytes
    version: int  # the event's position in its stream
    position: int  # its commit position in the whole store
    recorded_at: datetime.datetime | None = None  # when the store wrote it (UTC)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    id: UUID
    type: str
    data: bytes
    metadata: bytes


def _stored(event: RecordedEvent) -> StoredEvent:
    when = event.recorded_at
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return StoredEvent(
        event.type,
        event.data,
        event.metadata,
        event.stream_position,
        event.commit_position or 0,
        when,
    )


class EventStore:
    """``uri`` is any esdbclient connection string; its ``defaultDeadline`` (when given)
    bounds every call, else ``timeout`` seconds do. ``root_certificates`` (PEM) are the CAs
    to trust when the URI names no ``tlsCAFile``."""

    def __init__(
        self, uri: str, timeout: float = 10.0, root_certificates: str | None = None
    ) -> None:
        try:
            options = ConnectionSpec(uri).options
        except ValueError as error:
            raise StoreRefused(invalid_uri(error)) from error
        self._timeout: float | None = None if options.DefaultDeadline is not None else timeout
        # Read from the leader (the default), the head includes every acknowledged write;
        # from a follower or replica it may trail the leader's by a moment.
        self.head_is_current: bool = options.NodePreference == "leader"
        self._client = LazyClient(uri, root_certificates)

    @property
    def client(self) -> EventStoreDBClient:
        """Connected on first use: in a gunicorn worker, that is after the fork.

        esdbclient reconnects by itself when a call finds the node gone or no longer the
        leader (rediscovering the cluster from the URI's hosts), so a node failure costs the
        calls in flight a 503, not the worker.
        """
        return self._client.get()

    def check(self) -> None:
        """Connect now and read the head once (a worker does this as it boots).

        Raises StoreRefused when the store refuses this configuration; StoreUnavailable when
        it cannot be reached now (the worker starts anyway and answers 503 until it can).
        """
        self.head(timeout=self._timeout or 10.0)

    def read(
        self, stream: str, after: int = NO_STREAM, limit: int | None = None
    ) -> list[StoredEvent]:
        """The stream's events after version ``after`` (all of them by default), at most
        ``limit`` of them."""
        try:
            recorded = self.client.get_stream(
                stream, stream_position=after + 1, limit=limit or sys.maxsize, timeout=self._timeout
            )
        except NotFound:
            return []
        except StreamIsDeleted as error:
            raise StreamGone(stream) from error
        except FAILURES as error:
            raise unavailable(error) from error
        return [_stored(e) for e in recorded]

    def last(self, stream: str) -> StoredEvent | None:
        """The stream's newest event (None: no stream)."""
        try:
            recorded = self.client.get_stream(
                stream, backwards=True, limit=1, timeout=self._timeout
            )
        except NotFound:
            return None
        except StreamIsDeleted as error:
            raise StreamGone(stream) from error
        except FAILURES as error:
            raise unavailable(error) from error
        return _stored(recorded[0]) if recorded else None

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
        with tracing.span(
            "streams.append", {"db.system": "kurrentdb", "db.kdb.stream": stream}, SpanKind.CLIENT
        ):
            # The trace, in each event's metadata, as the official clients' plugins put it.
            fields = tracing.metadata_fields()
            new = [
                NewEvent(
                    type=e.type,
                    data=e.data,
                    metadata=tracing.with_trace(e.metadata, fields),
                    id=e.id,
                )
                for e in events
            ]
            return self._append(stream, current, new)

    def _append(self, stream: str, current: int | StreamState, new: list[NewEvent]) -> int:
        # One event goes as esdbclient sends a lone NewEvent: the Append RPC, a call with its
        # own completion queue. A list goes through BatchAppend, whose streaming call starts
        # the channel's spin thread per call in a worker that makes one call at a time: a
        # third more of the client's CPU per append (bench/README.md, Throughput).
        events: NewEvent | list[NewEvent] = new[0] if len(new) == 1 else new
        try:
            position: int = self.client.append_to_stream(
                stream, current_version=current, events=events, timeout=self._timeout
            )
        except WrongCurrentVersion as error:
            raise ConcurrencyConflict(str(error)) from error
        except (StreamIsDeleted, FailedPrecondition) as error:
            # Append answers a deleted stream with FAILED_PRECONDITION (StreamDeleted), which
            # esdbclient raises as FailedPrecondition; BatchAppend's is StreamIsDeleted.
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
        self._client.reset()
