"""What identifies an event store's history, so that data derived from one store (the read
store, the host's snapshots and replays) is never trusted against another.

Two events pin a history down: the first event of ``$all`` (every store opens with one of its
own, a real server's with its system events, esdblocal's with a ``$metadata`` event; its id is
a fresh uuid per store) and an event the derived data has seen, its *anchor* (the newest one
it kept). A derived store records both with its checkpoint; before trusting its rows, a
process reads the store's first event, the event at the anchor's commit position and the
store's last event, and compares:

- another first event: another store (another checkout's on the same port, a new cluster);
- a checkpoint past the store's last event: the store was restored from an older backup;
- another event at the anchor: the history differs (restored, then written to).

These are three small reads of ``$all`` (system events included: a checkpoint may sit on
one), made when a process starts, reconnects or meets a new generation, never per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from esdbclient import EventStoreDBClient
from esdbclient.exceptions import EventStoreDBClientException

from eventstore.connection import unavailable


@dataclass(frozen=True, slots=True)
class Landmark:
    """One event of a store: its commit position and its id."""

    position: int
    id: str


@dataclass(frozen=True, slots=True)
class Origin:
    """What derived data records of the store it was built from."""

    first: Landmark | None = None  # the first event of $all
    anchor: Landmark | None = None  # an event it has seen: the newest it kept


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Why derived data is not from this store: a stable ``reason`` and a sentence."""

    reason: str  # other-store | past-head | other-history | unrecorded
    detail: str


class History:
    """Reads what identifies the store behind ``client`` (a callable: the client is made
    lazily, after a fork). Each read raises StoreUnavailable/StoreRefused like every call."""

    def __init__(self, client: Callable[[], EventStoreDBClient], timeout: float = 5.0) -> None:
        self._client = client
        self._timeout = timeout

    def _one(self, position: int | None, backwards: bool) -> Landmark | None:
        try:
            events = self._client().read_all(
                commit_position=position,
                backwards=backwards,
                filter_exclude=(),
                limit=1,
                timeout=self._timeout,
            )
            for event in events:
                return Landmark(event.commit_position or 0, str(event.id))
        except EventStoreDBClientException as error:
            raise unavailable(error) from error
        return None

    def first(self) -> Landmark | None:
        """The first event of ``$all`` (None: the store is empty)."""
        return self._one(None, backwards=False)

    def last(self) -> Landmark | None:
        """The newest event of ``$all``, system events included."""
        return self._one(None, backwards=True)

    def at(self, position: int) -> Landmark | None:
        """The event at exactly commit position ``position`` (None: there is none)."""
        found = self._one(position, backwards=False)
        return found if found is not None and found.position == position else None

    def compare(self, origin: Origin, checkpoint: int | None) -> Mismatch | None:
        """None when data with this ``origin`` and ``checkpoint`` was built from this store."""
        if origin.first is None and origin.anchor is None:
            if checkpoint is None:
                return None  # nothing built yet: nothing to distrust
            return Mismatch(
                "unrecorded",
                "it does not record which event store it was built from"
                " (it was made before that was recorded)",
            )
        first = self.first()
        if origin.first is not None and first != origin.first:
            return Mismatch(
                "other-store",
                "it was built from another event store: the first event of $all is"
                f" {_name(first)}, it was built after {_name(origin.first)}",
            )
        last = self.last()
        anchor = None if origin.anchor is None else origin.anchor.position
        newest = max((p for p in (checkpoint, anchor) if p is not None), default=None)
        if newest is not None and (last is None or newest > last.position):
            return Mismatch(
                "past-head",
                f"its checkpoint ({newest}) is past the event store's last event"
                f" ({last.position if last else 'none'}): was the store restored from an"
                " older backup?",
            )
        if origin.anchor is not None and self.at(origin.anchor.position) != origin.anchor:
            return Mismatch(
                "other-history",
                f"the event at position {origin.anchor.position} is not the one it folded"
                f" ({origin.anchor.id}): the store's history differs from the one it was"
                " built from (restored from a backup, then written to?)",
            )
        return None


def _name(landmark: Landmark | None) -> str:
    return "none (the store is empty)" if landmark is None else f"{landmark.id}"
