"""ServerFeatures.GetSupportedMethods, and the two fidelity fixes outside clients found:
how an append's size is counted, and soft-deleting a stream that has only metadata."""

from __future__ import annotations

from uuid import uuid4

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import MaximumAppendSizeExceededError, NotFound
from esdbclient.protos.Grpc import shared_pb2

from esdblocal import EmbeddedServer
from esdblocal.server import DatabaseOptions, ProjectionOptions
from esdblocal.services.server_features import SERVER_VERSION, SupportedMethods


def supported(uri: str) -> dict[str, set[str]]:
    target = uri.removeprefix("esdb://").split("?")[0]
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/event_store.client.server_features.ServerFeatures/GetSupportedMethods",
            request_serializer=shared_pb2.Empty.SerializeToString,
            response_deserializer=SupportedMethods.FromString,
        )
        answer = call(shared_pb2.Empty(), timeout=5)
    assert answer.event_store_server_version == SERVER_VERSION
    return {f"/{m.service_name}/{m.method_name}": set(m.features) for m in answer.methods}


def test_supported_methods_name_what_is_served(esdb_uri: str) -> None:
    methods = supported(esdb_uri)
    # The paths a negotiating client looks up, lower-cased as the Node.js client does.
    assert methods["/event_store.client.streams.streams/batchappend"] == {"deadline_duration"}
    assert methods["/event_store.client.streams.streams/read"] == {"position", "events"}
    assert methods["/event_store.client.streams.streams/append"] == set()
    assert "/event_store.client.gossip.gossip/read" in methods
    assert methods["/event_store.client.projections.projections/create"] == {
        "track_emitted_streams"
    }
    assert methods["/event_store.client.persistent_subscriptions.persistentsubscriptions/read"] == {
        "stream",
        "all",
    }


def test_without_projections_the_service_is_not_listed() -> None:
    with EmbeddedServer(projections=ProjectionOptions(run="None")) as server:
        methods = supported(server.uri)
    assert not any("projections" in path for path in methods)
    assert "/event_store.client.streams.streams/batchappend" in methods


def test_append_size_counts_data_bytes(stream_name: str) -> None:
    """30,000 small JSON events (as the Node.js client's test sends) fit in one append:
    the server counts data bytes only; 40,000 do not. (A node of its own, without
    projections, so the shared one does not spend its time linking 30,000 events.)"""

    def events(count: int) -> list[NewEvent]:
        return [
            NewEvent(type="test", data=b'{"message":"test","index":%d}' % i) for i in range(count)
        ]

    small = events(30_000)
    assert sum(len(e.data) + 2 * len(e.type) for e in small) > 1_048_576  # old count refused
    with (
        # 30,000 events take a loaded machine more than the default 2 s commit timeout.
        EmbeddedServer(
            projections=ProjectionOptions(run="None"),
            database=DatabaseOptions(commit_timeout_ms=60_000),
        ) as server,
        EventStoreDBClient(server.uri) as client,
    ):
        position = client.append_to_stream(
            stream_name, current_version=StreamState.NO_STREAM, events=small
        )
        assert position > 0
        assert client.get_current_version(stream_name) == 29_999
        with pytest.raises(MaximumAppendSizeExceededError):
            client.append_to_stream(
                f"big-{uuid4()}", current_version=StreamState.ANY, events=events(40_000)
            )


def test_soft_delete_of_a_metadata_only_stream_with_no_stream(
    client: EventStoreDBClient, stream_name: str
) -> None:
    client.set_stream_metadata(stream_name, metadata={"x": 1}, current_version=StreamState.ANY)
    client.delete_stream(stream_name, current_version=StreamState.NO_STREAM)
    metadata, _ = client.get_stream_metadata(stream_name)
    assert metadata == {"$tb": 9223372036854775807}
    with pytest.raises(NotFound):
        client.get_stream(stream_name)
    # A stream with neither events nor metadata is still refused, as before.
    with pytest.raises(NotFound):
        client.delete_stream(f"never-{uuid4()}", current_version=StreamState.NO_STREAM)


def test_a_batch_past_its_deadline_is_answered_timeout(esdb_uri: str, stream_name: str) -> None:
    """BatchAppend's deadline (negotiated as ``deadline_duration``) is honoured: a batch
    whose deadline leaves no time when it arrives is answered DeadlineExceeded, unwritten."""
    from esdbclient.protos.Grpc import streams_pb2, streams_pb2_grpc
    from google.protobuf import duration_pb2, empty_pb2

    target = esdb_uri.removeprefix("esdb://").split("?")[0]

    def batch(seconds: int) -> streams_pb2.BatchAppendReq:
        options = streams_pb2.BatchAppendReq.Options(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream_name.encode()),
            any=empty_pb2.Empty(),
            deadline=duration_pb2.Duration(seconds=seconds),
        )
        message = streams_pb2.BatchAppendReq.ProposedMessage(
            id=shared_pb2.UUID(string=str(uuid4())),
            metadata={"type": "T", "content-type": "application/json"},
            data=b"{}",
        )
        return streams_pb2.BatchAppendReq(
            correlation_id=shared_pb2.UUID(string=str(uuid4())),
            options=options,
            proposed_messages=[message],
            is_final=True,
        )

    with grpc.insecure_channel(target) as channel:
        stub = streams_pb2_grpc.StreamsStub(channel)
        (late,) = list(stub.BatchAppend(iter([batch(0)]), timeout=5))
        (in_time,) = list(stub.BatchAppend(iter([batch(30)]), timeout=5))
    assert late.HasField("error")
    assert (late.error.code, late.error.message) == (
        grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
        "Timeout",
    )
    assert late.error.details.Is(shared_pb2.Timeout.DESCRIPTOR)
    assert in_time.HasField("success")
