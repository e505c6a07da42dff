"""The projector's feed: a catch-up subscription to ``$all``.

It narrows ``$all`` to the
project's categories on the server (a stream-name filter, so the server also reports its
progress through the events it skipped), and turns esdbclient's failures into
``StoreUnavailable``, which the projector answers by reconnecting, or ``StoreRefused`` when
the store refuses this configuration (credentials, access, certificate, connection string),
which no reconnection can mend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from esdbclient.events import CaughtUp, Checkpoint
from esdbclient.exceptions import EventStoreDBClientException

from eventstore.connection import LazyClient, unavailable
from eventstore.identity import History


@dataclass(frozen=True, slots=True)
class Recorded:
    """One event as the projector sees it."""

    stream: str
    type: str
    data: bytes
    version: int
    position: int
    time: float | None = None  # when the store wrote it (seconds since the epoch)
    id: str | None = None  # its event id (what identifies the store, ``eventstore.identity``)
    metadata: bytes = b""  # its metadata (a trace to continue: ``telemetry.tracing``)


@dataclass(frozen=True, slots=True)
class Progress:
    """The server looked at everything up to ``position`` (matching or not)."""

    position: int


@dataclass(frozen=True, slots=True)
class Live:
    """History is behind us: what follows arrives as it is written."""


Item = Recorded | Progress | Live


class Feed:
    def __init__(
        self, uri: str, categories: Iterable[str], root_certificates: str | None = None
    ) -> None:
        self._client = LazyClient(uri, root_certificates)
        self._pattern = "(" + "|".join(categories) + ")-.*"
        self._subscription: object | None = None
        self._lock = threading.Lock()

    def follow(self, after: int | None) -> Iterator[Item]:
        """Every matching event after commit position ``after`` (from the start: None)."""
        try:
            subscription = self._client.get().subscribe_to_all(
                commit_position=after,
                filter_include=[self._pattern],
                filter_by_stream_name=True,
                include_checkpoints=True,
                include_caught_up=True,
            )
            with self._lock:
                self._subscription = subscription
            for event in subscription:
                if isinstance(event, Checkpoint):
                    yield Progress(event.commit_position or 0)
                elif isinstance(event, CaughtUp):
                    yield Live()
                else:
                    yield Recorded(
                        event.stream_name,
                        event.type,
                        event.data,
                        event.stream_position,
                        event.commit_position or 0,
                        event.recorded_at.timestamp() if event.recorded_at else None,
                        str(event.id),
                        event.metadata,
                    )
        except EventStoreDBClientException as error:
            self.reset()
            raise unavailable(error) from error

    def head(self) -> int | None:
        """The commit position of the newest matching event (None: there is none)."""
        try:
            position: int = self._client.get().get_commit_position(
                filter_include=[self._pattern], filter_by_stream_name=True, timeout=5
            )
        except EventStoreDBClientException as error:
            raise unavailable(error) from error
        return position or None

    def history(self) -> History:
        """What identifies the store this feed follows (over the same connection)."""
        return History(self._client.get)

    def stop(self) -> None:
        """End the current subscription (from any thread): ``follow`` returns."""
        with self._lock:
            subscription, self._subscription = self._subscription, None
        stop = getattr(subscription, "stop", None)
        if stop is not None:
            stop()

    def reset(self) -> None:
        """Drop the connection; the next call makes a new one."""
        self.stop()
        self._client.reset()
