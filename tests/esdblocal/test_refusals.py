"""Requests the server refuses before writing anything, with the real server's answers.

esdbclient never sends a malformed append, so these speak through esdbclient's own
generated stubs (EventStoreDB's protobuf messages) on the same gRPC channel kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import MaximumAppendSizeExceededError, NotFound
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc


@pytest.fixture
def stub(esdb_uri: str) -> Iterator[streams_pb2_grpc.StreamsStub]:
    target = esdb_uri.removeprefix("esdb://").split("?")[0]
    with grpc.insecure_channel(target) as channel:
        yield streams_pb2_grpc.StreamsStub(channel)


def options(stream: str) -> streams_pb2.AppendReq:
    return streams_pb2.AppendReq(
        options=streams_pb2.AppendReq.Options(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
            any=shared_pb2.Empty(),
        )
    )


def proposed(metadata: dict[str, str], event_id: str | None = None) -> streams_pb2.AppendReq:
    return streams_pb2.AppendReq(
        proposed_message=streams_pb2.AppendReq.ProposedMessage(
            id=shared_pb2.UUID(string=event_id or str(uuid4())), metadata=metadata, data=b"{}"
        )
    )


@pytest.mark.parametrize(
    ("messages", "code", "details"),
    [
        (
            lambda s: [options(s), proposed({"content-type": "application/json"})],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Required Metadata Property 'type' is missing",
        ),
        (
            lambda s: [options(s), proposed({"type": "T"})],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Required Metadata Property 'content-type' is missing",
        ),
        (
            lambda s: [proposed({"type": "T", "content-type": "application/json"})],
            grpc.StatusCode.UNKNOWN,
            "Exception was thrown by handler.",
        ),
        (
            lambda s: [options(s), proposed({"type": "T", "content-type": "x"}, "not-a-uuid")],
            grpc.StatusCode.UNKNOWN,
            "Exception was thrown by handler.",
        ),
    ],
    ids=["no-type", "no-content-type", "no-options", "bad-id"],
)
def test_malformed_append_is_refused_and_writes_nothing(
    stub: streams_pb2_grpc.StreamsStub,
    client: EventStoreDBClient,
    stream_name: str,
    messages,  # type: ignore[no-untyped-def]
    code: grpc.StatusCode,
    details: str,
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.Append(iter(messages(stream_name)))
    assert (raised.value.code(), raised.value.details()) == (code, details)
    with pytest.raises(NotFound):
        client.get_stream(stream_name)


def test_oversized_batch_is_refused(client: EventStoreDBClient, stream_name: str) -> None:
    big = [NewEvent(type="Big", data=b"x" * 600_000) for _ in range(2)]
    with pytest.raises(MaximumAppendSizeExceededError, match="1048576"):
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=big)
    with pytest.raises(NotFound):
        client.get_stream(stream_name)


def test_invalid_filter_regex_is_an_invalid_argument(client: EventStoreDBClient) -> None:
    with pytest.raises(Exception, match="Invalid filter expression"):
        list(client.read_all(filter_include=["("]))


def test_non_json_content_reads_back_as_binary(
    client: EventStoreDBClient, stream_name: str
) -> None:
    client.append_to_stream(
        stream_name,
        current_version=StreamState.ANY,
        events=NewEvent(type="Text", data=b"plain", content_type="text/plain"),
    )
    (event,) = client.get_stream(stream_name)
    assert event.content_type == "application/octet-stream"


def test_max_append_size_is_the_servers_option(stream_name: str) -> None:
    """``--max-append-size`` (the real ``MaxAppendSize``): the Node client's suite raises it to
    10,000,000 for a 2.4 MB append; a smaller one refuses what the default takes."""
    from esdblocal import EmbeddedServer
    from esdblocal.__main__ import parse_args
    from esdblocal.server import DatabaseOptions

    assert parse_args(["--memory"]).max_append_size == 1_048_576
    assert parse_args(["--memory", "--max-append-size", "10000000"]).max_append_size == 10**7
    big = [NewEvent(type="Big", data=b"x" * 600_000) for _ in range(4)]  # 2.4 MB of data
    large = EmbeddedServer(database=DatabaseOptions(max_append_size=10_000_000))
    with large, EventStoreDBClient(large.uri) as client:
        client.append_to_stream(stream_name, current_version=StreamState.NO_STREAM, events=big)
        assert len(client.get_stream(stream_name)) == 4
    small = EmbeddedServer(database=DatabaseOptions(max_append_size=1000))
    # esdbclient sends several events by BatchAppend, whose refusal names the limit
    with (
        small,
        EventStoreDBClient(small.uri) as client,
        pytest.raises(MaximumAppendSizeExceededError, match="1000"),
    ):
        client.append_to_stream(stream_name, current_version=StreamState.ANY, events=big[:2])
