"""The event store adapter against a real esdblocal: the app's own errors, never esdbclient's."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from eventstore.streams import (
    NO_STREAM,
    ConcurrencyConflict,
    EventStore,
    PendingEvent,
    StoreUnavailable,
    StreamGone,
)


def pending(kind: str = "Happened") -> PendingEvent:
    return PendingEvent(id=uuid4(), type=kind, data=b"{}", metadata=b'{"$correlationId":"c"}')


@pytest.fixture
def store(esdb_uri: str) -> Iterator[EventStore]:
    adapter = EventStore(esdb_uri)
    yield adapter
    adapter.close()


def test_append_and_read_after_a_version(store: EventStore, stream_name: str) -> None:
    position = store.append(stream_name, NO_STREAM, [pending("A"), pending("B")])
    assert position > 0
    store.append(stream_name, 1, [pending("C")])
    assert [(e.type, e.version) for e in store.read(stream_name)] == [("A", 0), ("B", 1), ("C", 2)]
    assert [e.type for e in store.read(stream_name, after=1)] == ["C"]
    assert store.read(stream_name, after=2) == []


def test_missing_stream_reads_empty(store: EventStore) -> None:
    assert store.read(f"test-{uuid4()}") == []


def test_wrong_version_is_a_concurrency_conflict(store: EventStore, stream_name: str) -> None:
    store.append(stream_name, NO_STREAM, [pending()])
    with pytest.raises(ConcurrencyConflict):
        store.append(stream_name, NO_STREAM, [pending()])
    with pytest.raises(ConcurrencyConflict):
        store.append(stream_name, 5, [pending()])


@pytest.mark.parametrize("count", [1, 2], ids=["one event (Append)", "two (BatchAppend)"])
def test_same_ids_after_same_version_are_answered_as_the_first_time(
    store: EventStore, stream_name: str, count: int
) -> None:
    events = [pending("A"), pending("B")][:count]
    first = store.append(stream_name, NO_STREAM, events)
    assert store.append(stream_name, NO_STREAM, events) == first
    assert len(store.read(stream_name)) == count


@pytest.mark.parametrize("count", [1, 2], ids=["one event (Append)", "two (BatchAppend)"])
def test_tombstoned_stream_is_gone(store: EventStore, stream_name: str, count: int) -> None:
    store.append(stream_name, NO_STREAM, [pending()])
    store.client.tombstone_stream(stream_name, current_version=0)
    with pytest.raises(StreamGone):
        store.read(stream_name)
    with pytest.raises(StreamGone):
        store.append(stream_name, None, [pending() for _ in range(count)])


def test_unreachable_store_is_unavailable() -> None:
    store = EventStore("esdb://127.0.0.1:1?tls=false&MaxDiscoverAttempts=1", timeout=1)
    with pytest.raises(StoreUnavailable):
        store.read("anything-1")
