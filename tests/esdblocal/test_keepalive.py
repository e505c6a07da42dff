"""gRPC keep-alive: clients' pings are accepted as the real server (Kestrel) accepts them.

The official clients ping idle connections (the Node.js client every 10 s). grpc-core's
default server policy allows one ping per 5 minutes without data and closes the connection
on the third ("too_many_pings"), which killed any quiet subscription after about 40 s. The
client here pings every second, so the same mechanism shows in a few seconds of idling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from esdblocal import EmbeddedServer
from esdblocal.__main__ import parse_args
from esdblocal.server import GrpcOptions
from tests.esdblocal.first_event import FirstEvent

PING_EVERY_MS = 1_000  # the shortest interval grpc-core's client keeps to
# Six pings with no data: grpc-core's default policy closes the connection at the fifth.
IDLE_SECONDS = 6.0


class PingingClient(EventStoreDBClient):  # type: ignore[misc]
    """esdbclient with real keep-alive pings: its own ``KeepAliveInterval`` sets
    ``grpc.keepalive_ms``, a key grpc-core does not know, so it never pings by itself."""

    def _construct_grpc_channel(self, grpc_target: str, grpc_options: Any = ()) -> grpc.Channel:
        pinging = (
            ("grpc.keepalive_time_ms", PING_EVERY_MS),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", PING_EVERY_MS),
        )
        return super()._construct_grpc_channel(grpc_target, tuple(grpc_options) + pinging)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as running:  # the real server's keep-alive defaults
        yield running


def test_an_idle_subscription_of_a_pinging_client_survives(
    server: EmbeddedServer, stream_name: str
) -> None:
    with PingingClient(server.uri) as client:
        client.append_to_stream(stream_name, current_version=StreamState.NO_STREAM, events=[])
        subscription = client.subscribe_to_stream(stream_name)
        consumer = FirstEvent(subscription)
        time.sleep(IDLE_SECONDS)  # the call stays open and silent while the client pings
        client.append_to_stream(
            stream_name, current_version=StreamState.ANY, events=NewEvent(type="Late", data=b"{}")
        )
        consumer.thread.join(timeout=10)
        subscription.stop()
        assert consumer.failure == []
        assert consumer.received == ["Late"]
        # and the connection that pinged all along still serves unary calls
        assert [e.type for e in client.get_stream(stream_name)] == ["Late"]


def test_keep_alive_flags_have_the_real_servers_defaults() -> None:
    args = parse_args(["--memory"])
    assert (args.keep_alive_interval, args.keep_alive_timeout) == (10_000, 10_000)
    args = parse_args(["--memory", "--keep-alive-interval", "2500", "--keep-alive-timeout", "0"])
    assert GrpcOptions(args.keep_alive_interval, args.keep_alive_timeout) == GrpcOptions(2500, 0)
    with pytest.raises(SystemExit):
        parse_args(["--memory", "--keep-alive-interval", "-1"])
