"""KurrentDB's secondary indexes, as kurrentdbclient 1.3's ``read_index`` reads them: a read
of $all filtered on one stream-name *prefix* ``$idx-all``, ``$idx-ce-<category>`` or
``$idx-et-<type>`` reads the index (events of streams not starting with ``$``).

esdbclient sends only regex filters, so these reads go through the v1 Streams stub that
esdbclient ships, over gRPC to a real esdblocal.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from esdblocal import EmbeddedServer

Options = streams_pb2.ReadReq.Options


@pytest.fixture(scope="module")
def stub(esdb_server: EmbeddedServer) -> Iterator[streams_pb2_grpc.StreamsStub]:
    target = esdb_server.uri.removeprefix("esdb://").partition("?")[0]
    with grpc.insecure_channel(target) as channel:
        yield streams_pb2_grpc.StreamsStub(channel)


def read_index(stub: streams_pb2_grpc.StreamsStub, *prefixes: str) -> list[tuple[str, str]]:
    options = Options(
        read_direction=Options.Forwards,
        all=Options.AllOptions(start=shared_pb2.Empty()),
        count=10**6,
        filter=Options.FilterOptions(
            stream_identifier=Options.FilterOptions.Expression(prefix=list(prefixes)),
            max=32,
            checkpointIntervalMultiplier=1,
        ),
        uuid_option=Options.UUIDOption(string=shared_pb2.Empty()),
    )
    answers = stub.Read(streams_pb2.ReadReq(options=options))
    return [
        (a.event.event.stream_identifier.stream_name.decode(), a.event.event.metadata["type"])
        for a in answers
        if a.HasField("event")
    ]


def test_reads_of_the_default_category_and_event_type_indexes(
    client: EventStoreDBClient, stub: streams_pb2_grpc.StreamsStub
) -> None:
    category = f"idx{uuid4().hex[:12]}"
    first, second = f"{category}-1", f"{category}-2"
    kind = f"Kind{uuid4().hex[:8]}"
    for stream, types in ((first, ["A", kind]), (second, [kind])):
        client.append_to_stream(
            stream,
            current_version=StreamState.NO_STREAM,
            events=[NewEvent(type=t, data=b"{}") for t in types],
        )
    assert read_index(stub, f"$idx-ce-{category}") == [(first, "A"), (first, kind), (second, kind)]
    assert read_index(stub, f"$idx-et-{kind}") == [(first, kind), (second, kind)]
    everything = read_index(stub, "$idx-all")
    assert [e for e in everything if e[0].startswith(category)] == [
        (first, "A"),
        (first, kind),
        (second, kind),
    ]
    assert everything and all(not stream.startswith("$") for stream, _ in everything)


def test_an_unknown_index_is_not_found_and_indexes_do_not_combine(
    stub: streams_pb2_grpc.StreamsStub,
) -> None:
    with pytest.raises(grpc.RpcError) as unknown:
        read_index(stub, "$idx-nonesuch")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert unknown.value.details() == "Index '$idx-nonesuch' not found."  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as combined:
        read_index(stub, "$idx-all", "order-")
    assert combined.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
