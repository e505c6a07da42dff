"""KurrentDB's v2 Streams service: AppendSession and AppendRecords, atomic across streams.

These talk gRPC to a real esdblocal with the v2 messages (esdbclient has no v2 calls);
``test_kurrentdbclient.py`` repeats the main case through kurrentdbclient 1.3.5 itself.
Events written here are read back through esdbclient, as any v1 client sees them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from uuid import uuid4

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound
from google.protobuf import struct_pb2

from esdblocal import EmbeddedServer
from esdblocal.protos.kurrentdb.protocol.v2.streams import (
    shared_pb2,
    streams_pb2,
    streams_pb2_grpc,
)
from esdblocal.services.rich_status import message

NO_STREAM, ANY, EXISTS = -1, -2, -4


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: EmbeddedServer) -> Iterator[streams_pb2_grpc.StreamsServiceStub]:
    with grpc.insecure_channel(server.uri.removeprefix("esdb://").partition("?")[0]) as channel:
        yield streams_pb2_grpc.StreamsServiceStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def client(server: EmbeddedServer) -> Iterator[EventStoreDBClient]:
    with EventStoreDBClient(server.uri) as esdb:
        yield esdb


def record(kind: str, stream: str = "", **properties: str) -> streams_pb2.AppendRecord:
    return streams_pb2.AppendRecord(
        record_id=str(uuid4()),
        stream=stream,
        schema=shared_pb2.SchemaInfo(format=shared_pb2.SCHEMA_FORMAT_JSON, name=kind),
        data=b'{"n": 1}',
        properties={k: struct_pb2.Value(string_value=v) for k, v in properties.items()},
    )


def rich_details(error: grpc.RpcError) -> list[tuple[str, bytes]]:
    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    status = message("google.rpc.Status")
    status.ParseFromString(trailers["grpc-status-details-bin"])
    return [(d.type_url.rpartition("/")[2], d.value) for d in status.details]


def types(client: EventStoreDBClient, stream: str) -> list[str]:
    try:
        return [e.type for e in client.get_stream(stream)]
    except NotFound:
        return []


def test_append_session_writes_every_stream_in_one_commit(
    stub: streams_pb2_grpc.StreamsServiceStub, client: EventStoreDBClient
) -> None:
    orders, stock = f"order-{uuid4()}", f"stock-{uuid4()}"
    client.append_to_stream(stock, current_version=StreamState.NO_STREAM, events=[
        NewEvent(type="Stocked", data=b"{}")
    ])  # fmt: skip
    answer = stub.AppendSession(
        iter([
            streams_pb2.AppendRequest(
                stream=orders,
                expected_revision=NO_STREAM,
                records=[record("Placed", tenant="acme"), record("Paid")],
            ),
            streams_pb2.AppendRequest(stream=stock, expected_revision=0, records=[
                record("Reserved")
            ]),
        ])
    )  # fmt: skip
    assert [(o.stream, o.stream_revision) for o in answer.output] == [(orders, 1), (stock, 1)]
    assert types(client, orders) == ["Placed", "Paid"]
    assert types(client, stock) == ["Stocked", "Reserved"]
    placed, paid = client.get_stream(orders)
    reserved = client.get_stream(stock)[1]
    assert paid.commit_position < reserved.commit_position <= answer.position
    assert placed.content_type == "application/json"
    assert json.loads(placed.metadata) == {
        "tenant": "acme",
        "$schema.name": "Placed",
        "$schema.format": "Json",
    }


def test_a_conflict_in_one_stream_writes_nothing(
    stub: streams_pb2_grpc.StreamsServiceStub, client: EventStoreDBClient
) -> None:
    fresh, taken = f"order-{uuid4()}", f"stock-{uuid4()}"
    client.append_to_stream(taken, current_version=StreamState.NO_STREAM, events=[
        NewEvent(type="Stocked", data=b"{}")
    ])  # fmt: skip
    with pytest.raises(grpc.RpcError) as refused:
        stub.AppendSession(
            iter([
                streams_pb2.AppendRequest(
                    stream=fresh, expected_revision=NO_STREAM, records=[record("Placed")]
                ),
                streams_pb2.AppendRequest(
                    stream=taken, expected_revision=NO_STREAM, records=[record("Reserved")]
                ),
            ])
        )  # fmt: skip
    error = refused.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert error.details() == (  # type: ignore[attr-defined]
        f"Append failed due to a revision conflict on stream '{taken}'."
        " Expected revision: -1. Actual revision: 0."
    )
    details = dict(rich_details(error))
    conflict = message("kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails")
    conflict.ParseFromString(
        details["kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails"]
    )
    assert (conflict.stream, conflict.expected_revision, conflict.actual_revision) == (
        taken,
        -1,
        0,
    )
    assert "google.rpc.ErrorInfo" in details
    assert types(client, fresh) == []
    assert types(client, taken) == ["Stocked"]


def test_a_stream_twice_in_one_session_is_refused(
    stub: streams_pb2_grpc.StreamsServiceStub, client: EventStoreDBClient
) -> None:
    stream = f"order-{uuid4()}"
    with pytest.raises(grpc.RpcError) as refused:
        stub.AppendSession(
            iter([
                streams_pb2.AppendRequest(stream=stream, records=[record("A")]),
                streams_pb2.AppendRequest(stream=stream.upper(), records=[record("B")]),
            ])
        )  # fmt: skip
    assert refused.value.code() == grpc.StatusCode.ABORTED  # type: ignore[attr-defined]
    assert types(client, stream) == []


def test_append_records_interleaves_and_checks_other_streams(
    stub: streams_pb2_grpc.StreamsServiceStub, client: EventStoreDBClient
) -> None:
    first, second, guard = (f"cart-{uuid4()}" for _ in range(3))
    answer = stub.AppendRecords(
        streams_pb2.AppendRecordsRequest(
            records=[record("A1", first), record("B1", second), record("A2", first)],
            checks=[
                streams_pb2.ConsistencyCheck(
                    stream_state=streams_pb2.ConsistencyCheck.StreamStateCheck(
                        stream=guard, expected_state=NO_STREAM
                    )
                )
            ],
        )
    )
    assert sorted((r.stream, r.revision) for r in answer.revisions) == sorted(
        [(first, 1), (second, 0)]
    )
    a1, a2 = client.get_stream(first)
    (b1,) = client.get_stream(second)
    assert a1.commit_position < b1.commit_position < a2.commit_position == answer.position

    client.append_to_stream(guard, current_version=StreamState.NO_STREAM, events=[
        NewEvent(type="Closed", data=b"{}")
    ])  # fmt: skip
    with pytest.raises(grpc.RpcError) as refused:
        stub.AppendRecords(
            streams_pb2.AppendRecordsRequest(
                records=[record("A3", first)],
                checks=[
                    streams_pb2.ConsistencyCheck(
                        stream_state=streams_pb2.ConsistencyCheck.StreamStateCheck(
                            stream=guard, expected_state=NO_STREAM
                        )
                    )
                ],
            )
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    assert refused.value.details() == (  # type: ignore[attr-defined]
        "Append failed due to consistency violations.\n"
        f"\n - Stream '{guard}' already exists at revision 0."
    )
    assert types(client, first) == ["A1", "A2"]
