"""Catch-up subscriptions (Read with subscription options) to $all and to one stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.events import CaughtUp, Checkpoint, RecordedEvent
from esdbclient.exceptions import GrpcDeadlineExceeded, StreamIsDeleted


def new(kind: str) -> NewEvent:
    return NewEvent(type=kind, data=b"{}")


def take(subscription: Iterator[RecordedEvent], count: int) -> list[RecordedEvent]:
    return [next(subscription) for _ in range(count)]


def later(action, delay: float = 0.2) -> threading.Thread:  # type: ignore[no-untyped-def]
    """Run ``action`` on another thread after ``delay``: a writer racing a subscriber."""

    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class TestSubscribeToAll:
    def test_history_then_live_events(self, client: EventStoreDBClient, stream_name: str) -> None:
        position = client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=[new("H1"), new("H2")]
        )
        with client.subscribe_to_all(
            commit_position=position - 1,
            filter_include=[stream_name],
            filter_by_stream_name=True,
        ) as subscription:
            assert [e.type for e in take(subscription, 1)] == ["H2"]
            writer = later(
                lambda: client.append_to_stream(
                    stream_name, current_version=1, events=[new("L1"), new("L2")]
                )
            )
            assert [e.type for e in take(subscription, 2)] == ["L1", "L2"]
            writer.join()

    def test_start_position_is_exclusive(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        first = client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=new("E1")
        )
        client.append_to_stream(stream_name, current_version=0, events=[new("E2"), new("E3")])
        with client.subscribe_to_all(commit_position=first) as subscription:
            assert [e.type for e in take(subscription, 2)] == ["E2", "E3"]

    def test_from_end_sees_only_new_events(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=new("Old"))
        with client.subscribe_to_all(from_end=True) as subscription:
            writer = later(
                lambda: client.append_to_stream(
                    stream_name, current_version=0, events=[new("New1"), new("New2")]
                )
            )
            assert [e.type for e in take(subscription, 2)] == ["New1", "New2"]
            writer.join()

    def test_from_start_opens_with_a_system_event(self, client: EventStoreDBClient) -> None:
        with client.subscribe_to_all(filter_exclude=[]) as subscription:
            assert next(subscription).type.startswith("$")

    def test_caught_up_arrives_even_when_everything_is_filtered_out(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        position = client.get_commit_position()
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=new("X"))
        with client.subscribe_to_all(
            commit_position=position, filter_exclude=[".*"], include_caught_up=True, timeout=10
        ) as subscription:
            assert isinstance(next(subscription), CaughtUp)

    def test_checkpoints_never_run_ahead_of_the_log(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=[new("C") for _ in range(5)]
        )
        checkpoints: list[int] = []
        with client.subscribe_to_all(
            filter_exclude=[".*"],
            include_checkpoints=True,
            window_size=1,
            checkpoint_interval_multiplier=1,
            include_caught_up=True,
            timeout=10,
        ) as subscription:
            for item in subscription:
                if isinstance(item, CaughtUp):
                    break
                assert isinstance(item, Checkpoint)
                checkpoints.append(item.commit_position)
        # Read after: the system projections may have written links meanwhile.
        last = next(iter(client.read_all(backwards=True, limit=1, filter_exclude=[])))
        assert checkpoints, "a filtered subscription reports its progress"
        assert checkpoints == sorted(set(checkpoints))
        assert checkpoints[-1] <= (last.commit_position or 0)

    def test_live_checkpoints_every_window(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        with client.subscribe_to_all(
            from_end=True,
            filter_include=["NeverWritten"],
            include_checkpoints=True,
            window_size=2,
            checkpoint_interval_multiplier=2,
            timeout=10,
        ) as subscription:
            writer = later(
                lambda: client.append_to_stream(
                    stream_name,
                    current_version=StreamState.ANY,
                    events=[new("C") for _ in range(8)],
                )
            )
            checkpoints = [next(subscription), next(subscription)]
            writer.join()
        written = client.get_stream(stream_name)
        assert [c.commit_position for c in checkpoints] == [
            written[3].commit_position,
            written[7].commit_position,
        ]

    def test_deadline_after_first_events(self, client: EventStoreDBClient) -> None:
        subscription = client.subscribe_to_all(filter_exclude=[], timeout=0.5)
        assert next(subscription).type.startswith("$")
        with pytest.raises(GrpcDeadlineExceeded):
            for _ in subscription:
                pass

    def test_many_subscriptions_do_not_starve_appends(
        self, esdb_uri: str, client: EventStoreDBClient, stream_name: str
    ) -> None:
        subscriptions = [client.subscribe_to_all(from_end=True) for _ in range(200)]
        started = time.monotonic()
        for i in range(20):
            client.append_to_stream(
                stream_name, current_version=StreamState.ANY, events=new(f"E{i}")
            )
        appending = time.monotonic() - started
        try:
            for subscription in subscriptions[::20]:
                assert [e.type for e in take(subscription, 20)] == [f"E{i}" for i in range(20)]
        finally:
            for subscription in subscriptions:
                subscription.stop()
        print(f"20 appends with 200 live subscriptions took {appending:.3f}s")


class TestSubscribeToStream:
    @pytest.fixture
    def history(self, client: EventStoreDBClient, stream_name: str) -> str:
        client.append_to_stream(
            stream_name,
            current_version=StreamState.NO_STREAM,
            events=[new("E1"), new("E2"), new("E3")],
        )
        client.append_to_stream(
            f"test-{uuid4()}", current_version=StreamState.ANY, events=new("Other")
        )
        return stream_name

    def append_live(self, client: EventStoreDBClient, stream: str) -> threading.Thread:
        def write() -> None:
            client.append_to_stream(
                f"test-{uuid4()}", current_version=StreamState.ANY, events=new("X")
            )
            client.append_to_stream(stream, current_version=2, events=[new("L1"), new("L2")])

        return later(write)

    @pytest.mark.parametrize(
        ("kwargs", "history_types"),
        [({}, ["E1", "E2", "E3"]), ({"stream_position": 1}, ["E3"]), ({"from_end": True}, [])],
    )
    def test_history_then_live(
        self,
        client: EventStoreDBClient,
        history: str,
        kwargs: dict[str, object],
        history_types: list[str],
    ) -> None:
        with client.subscribe_to_stream(history, **kwargs) as subscription:  # type: ignore[arg-type]
            writer = self.append_live(client, history)
            received = take(subscription, len(history_types) + 2)
            writer.join()
        assert [e.type for e in received] == [*history_types, "L1", "L2"]
        assert [e.stream_position for e in received][-2:] == [3, 4]

    def test_caught_up_after_history(self, client: EventStoreDBClient, history: str) -> None:
        with client.subscribe_to_stream(
            history, include_caught_up=True, timeout=10
        ) as subscription:
            items = take(subscription, 4)
        assert [type(i) for i in items] == [RecordedEvent] * 3 + [CaughtUp]

    def test_stream_that_does_not_exist_yet(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        with client.subscribe_to_stream(stream_name, include_caught_up=True) as subscription:
            assert isinstance(next(subscription), CaughtUp)
            writer = later(
                lambda: client.append_to_stream(
                    stream_name, current_version=StreamState.NO_STREAM, events=new("First")
                )
            )
            assert next(subscription).type == "First"
            writer.join()

    def test_tombstone_ends_the_subscription(
        self, client: EventStoreDBClient, history: str
    ) -> None:
        with client.subscribe_to_stream(history) as subscription:
            assert len(take(subscription, 3)) == 3
            writer = later(lambda: client.tombstone_stream(history, current_version=2))
            assert next(subscription).type == "$streamDeleted"
            with pytest.raises(StreamIsDeleted):
                next(subscription)
            writer.join()

    def test_subscribing_to_a_tombstoned_stream_fails(
        self, client: EventStoreDBClient, history: str
    ) -> None:
        client.tombstone_stream(history, current_version=StreamState.ANY)
        with pytest.raises(StreamIsDeleted):
            subscription = client.subscribe_to_stream(history)
            next(subscription)
