"""Streams.Append (one event) and Streams.BatchAppend (a list), through esdbclient."""

from __future__ import annotations

import threading
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import (
    FailedPrecondition,
    NotFound,
    StreamIsDeleted,
    WrongCurrentVersion,
)


def event(kind: str = "Happened", data: bytes = b"{}") -> NewEvent:
    return NewEvent(type=kind, data=data)


# Both RPCs: esdbclient sends a single NewEvent with Append and a list with BatchAppend.
RPCS = {
    "append": lambda e: e,
    "batch_append": lambda e: [e],
}


@pytest.fixture(params=sorted(RPCS))
def wrap(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return RPCS[request.param]


@pytest.mark.parametrize(
    ("prior_events", "expected", "succeeds"),
    [
        (0, StreamState.NO_STREAM, True),
        (0, StreamState.ANY, True),
        (0, StreamState.EXISTS, False),
        (0, 0, False),
        (1, StreamState.NO_STREAM, False),
        (1, StreamState.ANY, True),
        (1, StreamState.EXISTS, True),
        (1, 0, True),
        (1, 1, False),
        (3, 2, True),
        (3, 1, False),
        (3, 5, False),
    ],
)
def test_expected_version_matrix(
    client: EventStoreDBClient,
    stream_name: str,
    wrap,  # type: ignore[no-untyped-def]
    prior_events: int,
    expected: int | StreamState,
    succeeds: bool,
) -> None:
    if prior_events:
        client.append_to_stream(
            stream_name,
            current_version=StreamState.NO_STREAM,
            events=[event() for _ in range(prior_events)],
        )
    new = event("Next")
    if succeeds:
        position = client.append_to_stream(stream_name, current_version=expected, events=wrap(new))
        last = client.get_stream(stream_name)[-1]
        assert (last.id, last.type, last.stream_position) == (new.id, "Next", prior_events)
        assert position == last.commit_position
    else:
        with pytest.raises(WrongCurrentVersion):
            client.append_to_stream(stream_name, current_version=expected, events=wrap(new))
        if prior_events:
            assert len(client.get_stream(stream_name)) == prior_events
        else:
            with pytest.raises(NotFound):
                client.get_stream(stream_name)


def test_wrong_version_message_names_current_revision(
    client: EventStoreDBClient,
    stream_name: str,
    wrap,  # type: ignore[no-untyped-def]
) -> None:
    client.append_to_stream(stream_name, current_version=StreamState.NO_STREAM, events=[event()])
    with pytest.raises(WrongCurrentVersion, match="is 0 not 5"):
        client.append_to_stream(stream_name, current_version=5, events=wrap(event()))
    other = f"test-{uuid4()}"
    with pytest.raises(WrongCurrentVersion, match="does not exist"):
        client.append_to_stream(other, current_version=3, events=wrap(event()))


def test_batch_is_atomic_and_ordered(client: EventStoreDBClient, stream_name: str) -> None:
    events = [event(f"E{i}", str(i).encode()) for i in range(50)]
    position = client.append_to_stream(
        stream_name, current_version=StreamState.NO_STREAM, events=events
    )
    recorded = client.get_stream(stream_name)
    assert [e.id for e in recorded] == [e.id for e in events]
    assert [e.stream_position for e in recorded] == list(range(50))
    assert recorded[-1].commit_position == position
    positions = [e.commit_position for e in recorded]
    assert positions == sorted(set(positions))


def test_data_metadata_content_type_and_created_round_trip(
    client: EventStoreDBClient, stream_name: str
) -> None:
    new = NewEvent(
        type="Binary",
        data=b"\x00\xffraw",
        metadata=b'{"$correlationId":"x"}',
        content_type="application/octet-stream",
    )
    client.append_to_stream(stream_name, current_version=StreamState.ANY, events=new)
    (recorded,) = client.get_stream(stream_name)
    assert recorded.data == b"\x00\xffraw"
    assert recorded.metadata == b'{"$correlationId":"x"}'
    assert recorded.content_type == "application/octet-stream"
    assert recorded.recorded_at is not None
    assert recorded.recorded_at.year >= 2024


class TestIdempotentAppends:
    """Re-sending the same event ids is answered as the first write was."""

    def test_same_ids_after_same_expected_version_return_original_position(
        self,
        client: EventStoreDBClient,
        stream_name: str,
        wrap,  # type: ignore[no-untyped-def]
    ) -> None:
        first = event()
        position = client.append_to_stream(
            stream_name, current_version=StreamState.NO_STREAM, events=wrap(first)
        )
        again = client.append_to_stream(
            stream_name, current_version=StreamState.NO_STREAM, events=wrap(first)
        )
        assert again == position
        assert len(client.get_stream(stream_name)) == 1

    def test_same_ids_after_exact_revision(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(
            stream_name, current_version=StreamState.NO_STREAM, events=[event()]
        )
        batch = [event("B"), event("C")]
        position = client.append_to_stream(stream_name, current_version=0, events=batch)
        assert client.append_to_stream(stream_name, current_version=0, events=batch) == position
        assert len(client.get_stream(stream_name)) == 3

    def test_same_ids_with_any(self, client: EventStoreDBClient, stream_name: str) -> None:
        batch = [event("B"), event("C")]
        position = client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=batch
        )
        assert (
            client.append_to_stream(stream_name, current_version=StreamState.ANY, events=batch)
            == position
        )
        assert len(client.get_stream(stream_name)) == 2

    def test_partial_overlap_is_wrong_expected_version(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        a, b = event("A"), event("B")
        client.append_to_stream(stream_name, current_version=StreamState.NO_STREAM, events=[a, b])
        with pytest.raises(WrongCurrentVersion):
            client.append_to_stream(
                stream_name, current_version=StreamState.NO_STREAM, events=[a, event("New")]
            )
        assert len(client.get_stream(stream_name)) == 2


def test_concurrent_writers_race_exactly_one_wins_each_version(
    esdb_uri: str, stream_name: str
) -> None:
    writers, rounds = 8, 10
    clients = [EventStoreDBClient(esdb_uri) for _ in range(writers)]
    wins: list[list[int]] = [[] for _ in range(writers)]
    barrier = threading.Barrier(writers)

    def race(index: int) -> None:
        for version in range(rounds):
            barrier.wait()
            expected = StreamState.NO_STREAM if version == 0 else version - 1
            try:
                clients[index].append_to_stream(
                    stream_name, current_version=expected, events=event(f"W{index}")
                )
            except WrongCurrentVersion:
                continue
            wins[index].append(version)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for esdb_client in clients:
        esdb_client.close()
    won = sorted(v for per_writer in wins for v in per_writer)
    assert won == list(range(rounds)), "exactly one writer wins each version"
    recorded = EventStoreDBClient(esdb_uri).get_stream(stream_name)
    assert [e.stream_position for e in recorded] == list(range(rounds))
    winner_of = {v: w for w, per_writer in enumerate(wins) for v in per_writer}
    assert [e.type for e in recorded] == [f"W{winner_of[v]}" for v in range(rounds)]


@pytest.mark.parametrize(
    ("events", "error"),
    [
        # BatchAppend carries StreamDeleted in-band; esdbclient maps it to StreamIsDeleted.
        ([event()], StreamIsDeleted),
        # Append fails with FAILED_PRECONDITION "... is deleted.", which esdbclient's
        # single-event path surfaces as FailedPrecondition, as against a real server.
        (event(), FailedPrecondition),
    ],
)
def test_append_to_tombstoned_stream_is_refused(
    client: EventStoreDBClient,
    stream_name: str,
    events: NewEvent | list[NewEvent],
    error: type[Exception],
) -> None:
    client.append_to_stream(stream_name, current_version=StreamState.NO_STREAM, events=[event()])
    client.tombstone_stream(stream_name, current_version=0)
    with pytest.raises(error, match="is deleted"):
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events)
