"""Persistent subscriptions (competing consumers) over gRPC, through esdbclient.

Each setting, each ack and nack action, each consumer strategy with several consumers,
parking and replay, timeouts and retries, the server's errors, and a restart with nothing
lost. (A kill -9 is in test_persistent_recovery.py, with the process tests.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.events import RecordedEvent
from esdbclient.exceptions import (
    AlreadyExists,
    GrpcError,
    InternalError,
    MaximumSubscriptionsReached,
    NotFound,
)
from esdbclient.persistent import AbstractPersistentSubscription
from esdbclient.protos.Grpc import persistent_pb2, persistent_pb2_grpc, shared_pb2

from esdblocal import EmbeddedServer
from esdblocal.server import ProjectionOptions
from tests.conftest import SecureNode

Subscription = AbstractPersistentSubscription
# esdbclient batches acks for up to this long (0 makes its request thread spin)
ACK_DELAY = 0.02


def events(count: int, kind: str = "Tested", **metadata: str) -> list[NewEvent]:
    body = json.dumps(metadata).encode() if metadata else b""
    return [NewEvent(type=kind, data=b"{}", metadata=body) for _ in range(count)]


def group() -> str:
    return f"group-{uuid4().hex}"


def take(subscription: Subscription, count: int, ack: bool = True) -> list[RecordedEvent]:
    taken = []
    for event in subscription:
        taken.append(event)
        if ack:
            subscription.ack(event)
        if len(taken) == count:
            break
    return taken


def eventually(check: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll ``check`` (a stream not written yet counts as not yet). The bound only stops a
    test that would otherwise hang: a loaded CI machine may take seconds for a tick."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except NotFound:
            pass
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class Consumer:
    """A consumer on its own thread, acking everything it gets."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.received: list[RecordedEvent] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self.subscription:
                self.received.append(event)
                self.subscription.ack(event)
        except Exception:  # stopped
            return

    def stop(self) -> None:
        self.subscription.stop()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def esdb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A server of this module's own: its groups checkpoint in the background, and the other
    modules' tests expect a quiet log."""
    with EmbeddedServer(
        data_dir=tmp_path_factory.mktemp("persistent"),
        projections=ProjectionOptions(run="None"),  # counts of skipped events stay exact
    ) as server:
        yield server


@pytest.fixture(scope="module")
def client(esdb_server: EmbeddedServer) -> Iterator[EventStoreDBClient]:
    with EventStoreDBClient(esdb_server.uri) as esdb_client:
        yield esdb_client


@pytest.fixture(scope="module")
def stub(esdb_server: EmbeddedServer) -> Iterator[persistent_pb2_grpc.PersistentSubscriptionsStub]:
    """The raw service, for what esdbclient does not expose (stop_at, connections, restart)."""
    target = esdb_server.uri.removeprefix("esdb://").split("?")[0]
    with grpc.insecure_channel(target) as channel:
        yield persistent_pb2_grpc.PersistentSubscriptionsStub(channel)


def raw_info(
    stub: persistent_pb2_grpc.PersistentSubscriptionsStub, stream: str, name: str
) -> persistent_pb2.SubscriptionInfo:
    options = persistent_pb2.GetInfoReq.Options(
        group_name=name,
        stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
    )
    return stub.GetInfo(persistent_pb2.GetInfoReq(options=options)).subscription_info


# ------------------------------------------------------------------ targets


class TestTargets:
    def test_stream_from_start_history_then_live(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(3))
        name = group()
        client.create_subscription_to_stream(name, stream_name)
        subscription = client.read_subscription_to_stream(name, stream_name)
        assert [e.stream_position for e in take(subscription, 3)] == [0, 1, 2]
        client.append_to_stream(stream_name, current_version=2, events=events(2))
        assert [e.stream_position for e in take(subscription, 2)] == [3, 4]
        subscription.stop()

    def test_stream_from_revision_is_inclusive_and_from_end_skips_history(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(3))
        at_one, at_end = group(), group()
        client.create_subscription_to_stream(at_one, stream_name, stream_position=1)
        client.create_subscription_to_stream(at_end, stream_name, from_end=True)
        client.append_to_stream(stream_name, current_version=2, events=events(1))
        first = client.read_subscription_to_stream(at_one, stream_name)
        assert [e.stream_position for e in take(first, 3)] == [1, 2, 3]
        last = client.read_subscription_to_stream(at_end, stream_name)
        assert [e.stream_position for e in take(last, 1)] == [3]
        first.stop()
        last.stop()

    def test_all_from_position_is_inclusive_and_filtered(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        position = client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=events(1, "Wanted")
        )
        client.append_to_stream(
            stream_name, current_version=0, events=[*events(1, "Unwanted"), *events(1, "Wanted")]
        )
        name = group()
        client.create_subscription_to_all(
            name, commit_position=position, filter_include=[stream_name], filter_by_stream_name=True
        )
        subscription = client.read_subscription_to_all(name)
        taken = take(subscription, 3)
        assert [e.stream_position for e in taken] == [0, 1, 2]
        assert taken[0].commit_position == position
        subscription.stop()
        by_type = group()
        client.create_subscription_to_all(
            by_type, commit_position=position, filter_include=["Wanted"]
        )
        subscription = client.read_subscription_to_all(by_type)
        assert {e.type for e in take(subscription, 2)} == {"Wanted"}
        subscription.stop()

    def test_all_from_end_gets_only_new_events(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(2))
        name = group()
        client.create_subscription_to_all(name, from_end=True)
        client.append_to_stream(stream_name, current_version=1, events=events(1, "New"))
        subscription = client.read_subscription_to_all(name)
        taken = take(subscription, 1)
        assert (taken[0].stream_name, taken[0].type) == (stream_name, "New")
        subscription.stop()

    def test_all_group_never_sees_its_own_checkpoints(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        """No filter: system events come through, but not the group's own bookkeeping."""
        name = group()
        client.create_subscription_to_all(
            name, from_end=True, filter_exclude=[], min_checkpoint_count=1, max_checkpoint_count=1
        )
        subscription = client.read_subscription_to_all(name)
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(3))
        seen = take(subscription, 3)
        time.sleep(0.5)  # checkpoints written meanwhile
        client.append_to_stream(stream_name, current_version=2, events=events(1, "Last"))
        for event in subscription:
            subscription.ack(event)
            seen.append(event)
            if event.type == "Last":
                break
        assert not [e for e in seen if e.stream_name.startswith("$persistentsubscription-$all")]
        subscription.stop()

    def test_an_idle_filtered_group_checkpoints_past_skipped_events_then_rests(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        """Skipped events move the checkpoint; its own checkpoints do not count as skipped
        (otherwise every checkpoint would make the next one due, for ever)."""
        name = group()
        client.create_subscription_to_all(
            name,
            from_end=True,
            filter_include=["nothing-matches-.*"],
            filter_by_stream_name=True,
            min_checkpoint_count=1,
            max_checkpoint_count=1,
            checkpoint_after=0.1,
        )
        position = client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=events(1)
        )
        checkpoints = f"$persistentsubscription-$all::{name}-checkpoint"

        def last() -> tuple[int, str]:
            event = client.get_stream(checkpoints, backwards=True, limit=1)[0]
            return event.stream_position, json.loads(event.data)

        eventually(lambda: last()[1] == f"C:{position}/P:{position}")
        settled = last()
        time.sleep(2.2)  # two ticks of the clock
        assert last() == settled


# ----------------------------------------------------------------- settings


class TestSettings:
    def test_every_setting_is_kept_and_reported(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        client.create_subscription_to_stream(
            name,
            stream_name,
            stream_position=4,
            resolve_links=True,
            consumer_strategy="RoundRobin",
            message_timeout=12.5,
            max_retry_count=3,
            min_checkpoint_count=4,
            max_checkpoint_count=40,
            checkpoint_after=3.0,
            max_subscriber_count=7,
            live_buffer_size=60,
            read_batch_size=15,
            history_buffer_size=70,
            extra_statistics=True,
        )
        info = client.get_subscription_info(name, stream_name)
        assert (info.event_source, info.group_name, info.start_from) == (stream_name, name, "4")
        assert info.resolve_links and info.extra_statistics
        assert info.consumer_strategy == "RoundRobin"
        assert (info.message_timeout, info.checkpoint_after) == (12.5, 3.0)
        assert (info.max_retry_count, info.max_subscriber_count) == (3, 7)
        assert (info.min_checkpoint_count, info.max_checkpoint_count) == (4, 40)
        assert (info.live_buffer_size, info.read_batch_size, info.history_buffer_size) == (
            60,
            15,
            70,
        )
        client.update_subscription_to_stream(name, stream_name, from_end=True, max_retry_count=9)
        info = client.get_subscription_info(name, stream_name)
        assert (info.start_from, info.max_retry_count, info.live_buffer_size) == ("-1", 9, 60)

    def test_all_start_positions_read_as_the_server_writes_them(
        self, client: EventStoreDBClient
    ) -> None:
        start, end, at = group(), group(), group()
        position = client.get_commit_position()
        client.create_subscription_to_all(start)
        client.create_subscription_to_all(end, from_end=True)
        client.create_subscription_to_all(at, commit_position=position)
        assert client.get_subscription_info(start).start_from == "C:0/P:0"
        assert client.get_subscription_info(end).start_from == "C:-1/P:-1"
        assert client.get_subscription_info(at).start_from == f"C:{position}/P:{position}"

    def test_resolve_links_sends_the_target_with_its_link(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        target = f"target-{uuid4()}"
        client.append_to_stream(target, current_version=StreamState.ANY, events=events(2, "Real"))
        links = f"links-{uuid4()}"
        link = NewEvent(
            type="$>", data=f"1@{target}".encode(), content_type="application/octet-stream"
        )
        client.append_to_stream(links, current_version=StreamState.ANY, events=[link])
        resolving, raw = group(), group()
        client.create_subscription_to_stream(resolving, links, resolve_links=True)
        client.create_subscription_to_stream(raw, links)
        subscription = client.read_subscription_to_stream(resolving, links)
        event = take(subscription, 1)[0]
        assert (event.type, event.stream_name, event.stream_position) == ("Real", target, 1)
        assert event.link is not None and event.link.id == link.id
        assert event.ack_id == link.id
        subscription.stop()
        subscription = client.read_subscription_to_stream(raw, links)
        event = take(subscription, 1)[0]
        assert (event.type, event.stream_name) == ("$>", links)
        subscription.stop()

    def test_extra_statistics_measure_round_trips(
        self,
        client: EventStoreDBClient,
        stream_name: str,
        stub: persistent_pb2_grpc.PersistentSubscriptionsStub,
    ) -> None:
        measured, plain = group(), group()
        client.create_subscription_to_stream(measured, stream_name, extra_statistics=True)
        client.create_subscription_to_stream(plain, stream_name)
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(3))
        for name, expected in ((measured, True), (plain, False)):
            subscription = client.read_subscription_to_stream(
                name, stream_name, max_ack_delay=ACK_DELAY
            )
            take(subscription, 3)
            eventually(
                lambda n=name: raw_info(stub, stream_name, n).outstanding_messages_count == 0
            )
            (connection,) = raw_info(stub, stream_name, name).connections
            keys = {m.key for m in connection.observed_measurements}
            assert ("Mean" in keys) is expected
            assert connection.total_items == 3
            subscription.stop()

    def test_read_batch_must_be_below_history_buffer(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        with pytest.raises(InternalError):
            client.create_subscription_to_stream(
                name, stream_name, read_batch_size=50, history_buffer_size=50
            )
        client.create_subscription_to_stream(name, stream_name)
        with pytest.raises(InternalError):
            client.update_subscription_to_stream(name, stream_name, history_buffer_size=100)

    def test_history_buffer_bounds_what_is_read_ahead(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(100))
        name = group()
        client.create_subscription_to_stream(
            name, stream_name, read_batch_size=10, history_buffer_size=30
        )
        eventually(lambda: client.get_subscription_info(name, stream_name).read_buffer_count > 0)
        time.sleep(0.2)
        info = client.get_subscription_info(name, stream_name)
        assert 0 < info.read_buffer_count <= 30
        assert info.status == "Behind"
        subscription = client.read_subscription_to_stream(name, stream_name)
        assert [e.stream_position for e in take(subscription, 100)] == list(range(100))
        eventually(lambda: client.get_subscription_info(name, stream_name).status == "Live")
        subscription.stop()

    def test_live_buffer_lets_a_slow_group_fall_behind_and_catch_up(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        client.create_subscription_to_stream(
            name, stream_name, live_buffer_size=5, read_batch_size=2, history_buffer_size=10
        )
        for _ in range(40):
            client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(1))
        info = client.get_subscription_info(name, stream_name)
        assert info.live_buffer_count + info.read_buffer_count <= 10
        subscription = client.read_subscription_to_stream(
            name, stream_name, event_buffer_size=3, max_ack_delay=ACK_DELAY
        )
        assert [e.stream_position for e in take(subscription, 40)] == list(range(40))
        subscription.stop()

    def test_max_subscriber_count(self, client: EventStoreDBClient, stream_name: str) -> None:
        name = group()
        client.create_subscription_to_stream(name, stream_name, max_subscriber_count=2)
        first = client.read_subscription_to_stream(name, stream_name)
        second = client.read_subscription_to_stream(name, stream_name)
        with pytest.raises(MaximumSubscriptionsReached):
            client.read_subscription_to_stream(name, stream_name)
        first.stop()
        eventually(lambda: len(raw_connections(client, stream_name, name)) == 1)
        third = client.read_subscription_to_stream(name, stream_name)
        second.stop()
        third.stop()

    def test_max_checkpoint_count_writes_the_checkpoint_stream(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        client.create_subscription_to_stream(
            name, stream_name, min_checkpoint_count=1, max_checkpoint_count=5, checkpoint_after=60
        )
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(7))
        subscription = client.read_subscription_to_stream(
            name, stream_name, max_ack_delay=ACK_DELAY
        )
        for event in take(subscription, 7, ack=False)[:5]:  # 5 and 6 stay unacknowledged
            subscription.ack(event)
        checkpoints = f"$persistentsubscription-{stream_name}::{name}-checkpoint"
        eventually(lambda: len(client.get_stream(checkpoints)) == 1)
        (checkpoint,) = client.get_stream(checkpoints)
        assert checkpoint.type == "$SubscriptionCheckpoint"
        assert json.loads(checkpoint.data) == "4"  # five completed: 0..4
        assert (
            client.get_subscription_info(name, stream_name).last_checkpointed_event_position == "4"
        )
        subscription.stop()

    def test_checkpoint_after_writes_once_min_count_is_reached(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        client.create_subscription_to_stream(
            name,
            stream_name,
            min_checkpoint_count=3,
            max_checkpoint_count=100,
            checkpoint_after=0.1,
        )
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(2))
        subscription = client.read_subscription_to_stream(
            name, stream_name, max_ack_delay=ACK_DELAY
        )
        take(subscription, 2)
        time.sleep(1.3)  # a tick passes: two completed is below min_checkpoint_count
        info = client.get_subscription_info(name, stream_name)
        assert info.last_checkpointed_event_position == ""
        client.append_to_stream(stream_name, current_version=1, events=events(2))
        take(subscription, 2)
        # esdbclient batches acks: if the third arrives alone, the checkpoint is written at
        # revision 2 (three completed), and the fourth alone stays below the minimum.
        eventually(
            lambda: (
                client.get_subscription_info(name, stream_name).last_checkpointed_event_position
                in ("2", "3")
            )
        )
        subscription.stop()


def raw_connections(client: EventStoreDBClient, stream: str, name: str) -> list[object]:
    info = client._connection.persistent_subscriptions._stub.GetInfo(
        persistent_pb2.GetInfoReq(
            options=persistent_pb2.GetInfoReq.Options(
                group_name=name,
                stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
            )
        )
    )
    return list(info.subscription_info.connections)


# --------------------------------------------------------------- ack / nack


class TestAckAndNack:
    def start(self, client: EventStoreDBClient, stream: str, **settings: object) -> Subscription:
        name = group()
        client.create_subscription_to_stream(name, stream, **settings)  # type: ignore[arg-type]
        client.append_to_stream(stream, current_version=StreamState.ANY, events=events(3))
        subscription = client.read_subscription_to_stream(name, stream, max_ack_delay=ACK_DELAY)
        subscription.group = name  # type: ignore[attr-defined]
        return subscription

    def test_acked_events_are_not_redelivered(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        subscription = self.start(client, stream_name, message_timeout=0.1)
        take(subscription, 3)
        time.sleep(1.3)
        info = client.get_subscription_info(subscription.group, stream_name)  # type: ignore[attr-defined]
        assert (info.outstanding_messages_count, info.retry_buffer_count) == (0, 0)
        subscription.stop()

    @pytest.mark.parametrize("action", ["retry", "unknown"])
    def test_nack_retry_redelivers_with_a_retry_count(
        self, client: EventStoreDBClient, stream_name: str, action: str
    ) -> None:
        subscription = self.start(client, stream_name)
        first = next(subscription)
        subscription.nack(first, action)  # type: ignore[arg-type]
        rest = take(subscription, 3)
        assert [(e.stream_position, e.retry_count) for e in rest] == [(1, 0), (2, 0), (0, 1)]
        subscription.stop()

    @pytest.mark.parametrize("action", ["skip", "stop"])
    def test_nack_skip_and_stop_forget_the_event(
        self, client: EventStoreDBClient, stream_name: str, action: str
    ) -> None:
        """As on the server, stop does what skip does (its handler is a TODO there)."""
        subscription = self.start(client, stream_name, message_timeout=0.1)
        first = next(subscription)
        subscription.nack(first, action)  # type: ignore[arg-type]
        assert [e.stream_position for e in take(subscription, 2)] == [1, 2]
        time.sleep(1.3)
        info = client.get_subscription_info(subscription.group, stream_name)  # type: ignore[attr-defined]
        assert (info.outstanding_messages_count, info.retry_buffer_count) == (0, 0)
        assert info.parked_message_count == 0
        subscription.stop()

    def test_park_then_replay(self, client: EventStoreDBClient, stream_name: str) -> None:
        subscription = self.start(client, stream_name)
        name = subscription.group  # type: ignore[attr-defined]
        for event in take(subscription, 3, ack=False):
            subscription.nack(event, "park")
        parked = f"$persistentsubscription-{stream_name}::{name}-parked"
        eventually(
            lambda: client.get_subscription_info(name, stream_name).parked_message_count == 3
        )
        links = client.get_stream(parked)
        assert [e.data for e in links] == [f"{n}@{stream_name}".encode() for n in range(3)]
        assert json.loads(links[0].metadata)["reason"].startswith("Client explicitly NAK'ed")
        client.replay_parked_events(name, stream_name)
        replayed = take(subscription, 3)
        assert [e.stream_position for e in replayed] == [0, 1, 2]
        assert [e.link.id for e in replayed if e.link] == [e.id for e in links]
        eventually(
            lambda: client.get_subscription_info(name, stream_name).parked_message_count == 0
        )
        subscription.stop()

    def test_replay_parked_stops_at(
        self,
        client: EventStoreDBClient,
        stream_name: str,
        stub: persistent_pb2_grpc.PersistentSubscriptionsStub,
    ) -> None:
        subscription = self.start(client, stream_name)
        name = subscription.group  # type: ignore[attr-defined]
        for event in take(subscription, 3, ack=False):
            subscription.nack(event, "park")
        eventually(
            lambda: client.get_subscription_info(name, stream_name).parked_message_count == 3
        )
        options = persistent_pb2.ReplayParkedReq.Options(
            group_name=name,
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream_name.encode()),
            stop_at=2,
        )
        stub.ReplayParked(persistent_pb2.ReplayParkedReq(options=options))
        assert [e.stream_position for e in take(subscription, 2)] == [0, 1]
        eventually(
            lambda: client.get_subscription_info(name, stream_name).parked_message_count == 1
        )
        client.replay_parked_events(name, stream_name)
        assert [e.stream_position for e in take(subscription, 1)] == [2]
        subscription.stop()

    def test_message_timeout_retries_then_max_retry_count_parks(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        subscription = self.start(client, stream_name, message_timeout=0.1, max_retry_count=1)
        name = subscription.group  # type: ignore[attr-defined]
        seen = []
        for event in subscription:
            seen.append((event.stream_position, event.retry_count))
            if event.stream_position != 0:
                subscription.ack(event)
            if len(seen) == 4:
                break
        assert seen == [(0, 0), (1, 0), (2, 0), (0, 1)]
        eventually(
            lambda: client.get_subscription_info(name, stream_name).parked_message_count == 1
        )
        (link,) = client.get_stream(f"$persistentsubscription-{stream_name}::{name}-parked")
        assert json.loads(link.metadata)["reason"] == "Reached retry count of 1"
        subscription.stop()

    def test_a_consumer_leaving_hands_its_events_to_another(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        subscription = self.start(client, stream_name)
        name = subscription.group  # type: ignore[attr-defined]
        take(subscription, 3, ack=False)
        other = client.read_subscription_to_stream(name, stream_name)
        subscription.stop()
        taken = take(other, 3)
        assert sorted((e.stream_position, e.retry_count) for e in taken) == [(0, 1), (1, 1), (2, 1)]
        other.stop()


# --------------------------------------------------------------- strategies


class TestStrategies:
    def consumers(
        self,
        client: EventStoreDBClient,
        stream: str,
        strategy: str,
        count: int = 2,
        buffer: int = 10,
    ) -> tuple[str, list[Consumer]]:
        name = group()
        client.create_subscription_to_all(
            name,
            from_end=True,
            consumer_strategy=strategy,  # type: ignore[arg-type]
            filter_include=[f"{stream}.*"],
            filter_by_stream_name=True,
        )
        return name, [
            Consumer(
                client.read_subscription_to_all(
                    name, event_buffer_size=buffer, max_ack_delay=ACK_DELAY
                )
            )
            for _ in range(count)
        ]

    def test_dispatch_to_single_fills_one_consumer_first(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        _, (first, second) = self.consumers(client, stream_name, "DispatchToSingle")
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(6))
        eventually(lambda: len(first.received) + len(second.received) == 6)
        assert (len(first.received), len(second.received)) == (6, 0)
        for consumer in (first, second):
            consumer.stop()

    def test_dispatch_to_single_overflows_when_the_first_is_full(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        client.create_subscription_to_stream(
            name, stream_name, consumer_strategy="DispatchToSingle"
        )
        full = client.read_subscription_to_stream(name, stream_name, event_buffer_size=2)
        other = Consumer(client.read_subscription_to_stream(name, stream_name))
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(5))
        eventually(lambda: len(other.received) == 3)
        assert [e.stream_position for e in take(full, 2, ack=False)] == [0, 1]
        assert [e.stream_position for e in other.received] == [2, 3, 4]
        full.stop()
        other.stop()

    def test_round_robin_alternates(self, client: EventStoreDBClient, stream_name: str) -> None:
        _, (first, second) = self.consumers(client, stream_name, "RoundRobin")
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(6))
        eventually(lambda: len(first.received) + len(second.received) == 6)
        assert [e.stream_position for e in first.received] == [0, 2, 4]
        assert [e.stream_position for e in second.received] == [1, 3, 5]
        for consumer in (first, second):
            consumer.stop()

    def test_pinned_keeps_each_stream_with_one_consumer(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        _, consumers = self.consumers(client, stream_name, "Pinned", count=3)
        streams = [f"{stream_name}-{n}" for n in range(9)]
        for _ in range(3):
            for stream in streams:
                client.append_to_stream(stream, current_version=StreamState.ANY, events=events(1))
        eventually(lambda: sum(len(c.received) for c in consumers) == 27)
        owners = {
            stream: {
                i for i, c in enumerate(consumers) for e in c.received if e.stream_name == stream
            }
            for stream in streams
        }
        assert all(len(owner) == 1 for owner in owners.values()), owners
        assert len(set().union(*owners.values())) == 3  # the buckets are shared out
        for consumer in consumers:
            consumer.stop()

    def test_pinned_by_correlation_keeps_a_correlation_with_one_consumer(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        client.create_subscription_to_stream(
            name,
            stream_name,
            consumer_strategy="PinnedByCorrelation",  # type: ignore[arg-type]
        )
        consumers = [
            Consumer(client.read_subscription_to_stream(name, stream_name, max_ack_delay=ACK_DELAY))
            for _ in range(2)
        ]
        correlations = [str(uuid4()) for _ in range(6)]
        batch = [e for c in correlations for e in events(1, **{"$correlationId": c})] * 1
        batch += [e for c in correlations for e in events(1, **{"$correlationId": c})]
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=batch)
        eventually(lambda: sum(len(c.received) for c in consumers) == 12)
        owners: dict[str, set[int]] = {}
        for index, consumer in enumerate(consumers):
            for event in consumer.received:
                owners.setdefault(json.loads(event.metadata)["$correlationId"], set()).add(index)
        assert all(len(owner) == 1 for owner in owners.values()), owners
        assert set().union(*owners.values()) == {0, 1}
        info = client.get_subscription_info(name, stream_name)
        assert info.consumer_strategy == "PinnedByCorrelation"
        for consumer in consumers:
            consumer.stop()


# ------------------------------------------------------------------- errors


class TestErrors:
    def test_already_exists(self, client: EventStoreDBClient, stream_name: str) -> None:
        name = group()
        client.create_subscription_to_stream(name, stream_name)
        with pytest.raises(AlreadyExists):
            client.create_subscription_to_stream(name, stream_name)
        client.create_subscription_to_all(name)
        with pytest.raises(AlreadyExists):
            client.create_subscription_to_all(name)

    def test_not_found_everywhere(self, client: EventStoreDBClient, stream_name: str) -> None:
        name = group()
        with pytest.raises(NotFound):
            client.get_subscription_info(name, stream_name)
        with pytest.raises(NotFound):
            client.delete_subscription(name, stream_name)
        with pytest.raises(NotFound):
            client.replay_parked_events(name, stream_name)
        with pytest.raises(NotFound):
            client.read_subscription_to_stream(name, stream_name)
        with pytest.raises(NotFound):
            client.update_subscription_to_all(name)
        assert client.list_subscriptions_to_stream(stream_name) == []

    def test_the_server_texts_and_trailers(
        self, stub: persistent_pb2_grpc.PersistentSubscriptionsStub, stream_name: str
    ) -> None:
        options = persistent_pb2.GetInfoReq.Options(
            group_name="nope",
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream_name.encode()),
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetInfo(persistent_pb2.GetInfoReq(options=options))
        error = caught.value
        assert error.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        assert error.details() == (  # type: ignore[attr-defined]
            f"Subscription group nope on stream {stream_name} does not exist."
        )
        trailers = dict(error.trailing_metadata())  # type: ignore[attr-defined]
        assert trailers["exception"] == "persistent-subscription-does-not-exist"
        settings = persistent_pb2.CreateReq.Settings(
            consumer_strategy="Nope", read_batch_size=10, history_buffer_size=20
        )
        create = persistent_pb2.CreateReq.Options(
            group_name="g",
            settings=settings,
            stream=persistent_pb2.CreateReq.StreamOptions(
                stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream_name.encode()),
                start=shared_pb2.Empty(),
            ),
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.Create(persistent_pb2.CreateReq(options=create))
        error = caught.value
        assert error.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
        assert error.details() == (  # type: ignore[attr-defined]
            f"Subscription group g on stream {stream_name} failed:"
            " 'Consumer strategy Nope does not exist.'"
        )

    def test_a_uint64_maximum_start_is_the_end(
        self, stub: persistent_pb2_grpc.PersistentSubscriptionsStub, stream_name: str
    ) -> None:
        """The server reads wire revisions and positions with ToInt64(): 2^64-1 is -1."""
        settings = persistent_pb2.CreateReq.Settings(
            consumer_strategy="RoundRobin", read_batch_size=10, history_buffer_size=20
        )
        create = persistent_pb2.CreateReq.Options(
            group_name="ends",
            settings=settings,
            stream=persistent_pb2.CreateReq.StreamOptions(
                stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream_name.encode()),
                revision=2**64 - 1,
            ),
        )
        stub.Create(persistent_pb2.CreateReq(options=create))
        assert raw_info(stub, stream_name, "ends").start_from == "-1"

    def test_maximum_subscribers_text(self, client: EventStoreDBClient, stream_name: str) -> None:
        name = group()
        client.create_subscription_to_stream(name, stream_name, max_subscriber_count=1)
        first = client.read_subscription_to_stream(name, stream_name)
        with pytest.raises(MaximumSubscriptionsReached) as caught:
            client.read_subscription_to_stream(name, stream_name)
        assert "Maximum subscriptions reached for subscription group" in str(caught.value)
        first.stop()


# ----------------------------------------------------------- list and delete


class TestManagement:
    def test_list_and_delete(self, client: EventStoreDBClient, stream_name: str) -> None:
        first, second = group(), group()
        client.create_subscription_to_stream(first, stream_name)
        client.create_subscription_to_stream(second, stream_name)
        listed = client.list_subscriptions_to_stream(stream_name)
        assert [s.group_name for s in listed] == [first, second]
        assert {first, second} <= {s.group_name for s in client.list_subscriptions()}
        client.delete_subscription(first, stream_name)
        assert [s.group_name for s in client.list_subscriptions_to_stream(stream_name)] == [second]
        client.delete_subscription(second, stream_name)
        assert client.list_subscriptions_to_stream(stream_name) == []

    def test_update_and_delete_drop_the_consumers(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        client.create_subscription_to_stream(name, stream_name)
        subscription = client.read_subscription_to_stream(name, stream_name)
        client.update_subscription_to_stream(name, stream_name, max_retry_count=4)
        with pytest.raises(Exception, match="was dropped"):
            next(subscription)
        subscription = client.read_subscription_to_stream(name, stream_name)
        client.delete_subscription(name, stream_name)
        with pytest.raises(Exception, match="was dropped"):
            next(subscription)

    def test_configuration_is_kept_in_the_config_stream(
        self, client: EventStoreDBClient, stream_name: str
    ) -> None:
        name = group()
        client.create_subscription_to_stream(name, stream_name, max_retry_count=6)
        config = client.get_stream("$persistentSubscriptionConfig", backwards=True, limit=1)[0]
        assert config.type == "$PersistentConfig"
        entries = json.loads(config.data)["entries"]
        (entry,) = [e for e in entries if e["group"] == name]
        assert (entry["stream"], entry["maxRetryCount"]) == (stream_name, 6)
        assert entry["namedConsumerStrategy"] == "DispatchToSingle"

    def test_restart_subsystem_drops_consumers_and_keeps_groups(
        self,
        client: EventStoreDBClient,
        stream_name: str,
        stub: persistent_pb2_grpc.PersistentSubscriptionsStub,
    ) -> None:
        name = group()
        client.create_subscription_to_stream(name, stream_name)
        subscription = client.read_subscription_to_stream(name, stream_name)
        stub.RestartSubsystem(shared_pb2.Empty())
        with pytest.raises(Exception, match="was dropped"):
            next(subscription)
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=events(1))
        subscription = client.read_subscription_to_stream(name, stream_name)
        assert [e.stream_position for e in take(subscription, 1)] == [0]
        subscription.stop()


# ----------------------------------------------------------------- recovery


def test_restart_redelivers_everything_not_checkpointed(tmp_path: Path) -> None:
    """Acked and checkpointed events stay done; the rest come again, nothing is skipped."""
    stream = f"orders-{uuid4()}"
    with EmbeddedServer(data_dir=tmp_path) as server, EventStoreDBClient(server.uri) as client:
        client.create_subscription_to_stream(
            "workers", stream, min_checkpoint_count=1, max_checkpoint_count=1
        )
        client.append_to_stream(stream, current_version=StreamState.ANY, events=events(10))
        subscription = client.read_subscription_to_stream(
            "workers", stream, max_ack_delay=ACK_DELAY
        )
        taken = take(subscription, 10, ack=False)
        for event in taken[:4]:
            subscription.ack(event)
        subscription.nack(taken[6], "park")
        eventually(
            lambda: (
                client.get_subscription_info("workers", stream).last_checkpointed_event_position
                == "3"
            )
        )
        eventually(
            lambda: client.get_subscription_info("workers", stream).parked_message_count == 1
        )
        subscription.stop()
    with EmbeddedServer(data_dir=tmp_path) as server, EventStoreDBClient(server.uri) as client:
        info = client.get_subscription_info("workers", stream)
        assert (info.max_checkpoint_count, info.parked_message_count) == (1, 1)
        subscription = client.read_subscription_to_stream("workers", stream)
        again = take(subscription, 6)
        assert [e.stream_position for e in again] == [4, 5, 6, 7, 8, 9]
        client.replay_parked_events("workers", stream)
        assert [e.stream_position for e in take(subscription, 1)] == [6]
        subscription.stop()


def test_from_end_group_keeps_its_end_across_a_restart(tmp_path: Path) -> None:
    """The end is fixed when the group starts: events after it are not lost to a restart."""
    stream = f"orders-{uuid4()}"
    with EmbeddedServer(data_dir=tmp_path) as server, EventStoreDBClient(server.uri) as client:
        client.append_to_stream(stream, current_version=StreamState.ANY, events=events(2))
        client.create_subscription_to_stream("late", stream, from_end=True)
        client.create_subscription_to_all("late-all", from_end=True)
        client.append_to_stream(stream, current_version=1, events=events(1, "AfterCreate"))
    with EmbeddedServer(data_dir=tmp_path) as server, EventStoreDBClient(server.uri) as client:
        subscription = client.read_subscription_to_stream("late", stream)
        assert [e.stream_position for e in take(subscription, 1)] == [2]
        subscription.stop()
        subscription = client.read_subscription_to_all("late-all")
        event = take(subscription, 1)[0]
        assert (event.stream_name, event.type) == (stream, "AfterCreate")
        subscription.stop()


# ------------------------------------------------------------------- secure


class TestSecureNode:
    def test_users_run_groups_on_the_streams_they_may_read(self, secure_node: SecureNode) -> None:
        stream, system = f"app-{uuid4()}", f"$system-{uuid4()}"
        with EventStoreDBClient(secure_node.uri_as("app", "app-secret")) as app:
            app.create_subscription_to_stream("workers", stream)
            app.append_to_stream(stream, current_version=StreamState.ANY, events=events(2))
            subscription = app.read_subscription_to_stream("workers", stream)
            assert [e.stream_position for e in take(subscription, 2)] == [0, 1]
            subscription.stop()
            app.create_subscription_to_stream("workers", system)
            with pytest.raises(GrpcError, match="Access Denied"):
                app.read_subscription_to_stream("workers", system)
        with EventStoreDBClient(secure_node.uri_as()) as admin:
            subscription = admin.read_subscription_to_stream("workers", system)
            subscription.stop()

    def test_anonymous_callers_are_denied(self, secure_node: SecureNode) -> None:
        credentials = grpc.ssl_channel_credentials(root_certificates=secure_node.ca.read_bytes())
        with grpc.secure_channel(secure_node.target, credentials) as channel:
            stub = persistent_pb2_grpc.PersistentSubscriptionsStub(channel)
            request = persistent_pb2.ListReq(
                options=persistent_pb2.ListReq.Options(list_all_subscriptions=shared_pb2.Empty())
            )
            with pytest.raises(grpc.RpcError) as raised:
                stub.List(request)
        error = raised.value
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        assert error.details() == "Access Denied"  # type: ignore[attr-defined]
