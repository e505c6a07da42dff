"""Calls in flight when the node stops end as KurrentDB's do: streaming calls at once with
UNAVAILABLE "The server is shutting down. Please retry after 5 seconds." (ErrorInfo
SERVER_SHUTTING_DOWN and RetryInfo in the rich trailer); unary calls drain."""

from __future__ import annotations

import threading
import time

import grpc
from esdbclient import EventStoreDBClient
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from esdblocal import EmbeddedServer
from esdblocal.services.rich_status import message
from esdblocal.services.shutdown import MESSAGE

Options = streams_pb2.ReadReq.Options


def test_an_open_subscription_ends_unavailable_with_the_servers_reason() -> None:
    server = EmbeddedServer().start()
    errors: list[grpc.RpcError] = []
    confirmed = threading.Event()
    target = server.uri.removeprefix("esdb://").partition("?")[0]
    with grpc.insecure_channel(target) as channel:
        stub = streams_pb2_grpc.StreamsStub(channel)
        options = Options(
            read_direction=Options.Forwards,
            stream=Options.StreamOptions(
                stream_identifier=shared_pb2.StreamIdentifier(stream_name=b"quiet-1"),
                start=shared_pb2.Empty(),
            ),
            subscription=Options.SubscriptionOptions(),
            no_filter=shared_pb2.Empty(),
            uuid_option=Options.UUIDOption(string=shared_pb2.Empty()),
        )

        def subscribe() -> None:
            try:
                for answer in stub.Read(streams_pb2.ReadReq(options=options)):
                    if answer.HasField("confirmation"):
                        confirmed.set()
            except grpc.RpcError as error:
                errors.append(error)

        subscriber = threading.Thread(target=subscribe)
        subscriber.start()
        assert confirmed.wait(10)
        started = time.monotonic()
        server.stop()
        subscriber.join(10)
        assert time.monotonic() - started < 5
    (error,) = errors
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert error.details() == MESSAGE  # type: ignore[attr-defined]
    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    status = message("google.rpc.Status")
    status.ParseFromString(trailers["grpc-status-details-bin"])
    info = message("google.rpc.ErrorInfo")
    info.ParseFromString(status.details[0].value)
    assert (info.reason, info.domain) == ("SERVER_SHUTTING_DOWN", "server")


def test_esdbclient_sees_service_unavailable() -> None:
    server = EmbeddedServer().start()
    failures: list[Exception] = []
    with EventStoreDBClient(server.uri) as client:
        subscription = client.subscribe_to_all(from_end=True)

        def consume() -> None:
            try:
                for _ in subscription:
                    pass
            except Exception as error:
                failures.append(error)

        consumer = threading.Thread(target=consume)
        consumer.start()
        time.sleep(0.2)
        server.stop()
        consumer.join(10)
    assert [type(f).__name__ for f in failures] == ["ServiceUnavailable"]
    assert MESSAGE in str(failures[0])
