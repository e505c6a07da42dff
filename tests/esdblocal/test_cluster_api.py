"""Gossip, discovery URIs, and the persistent-subscription calls a client's listing makes."""

from __future__ import annotations

from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound

from esdblocal import EmbeddedServer


def test_gossip_names_one_leader_at_the_served_port(
    client: EventStoreDBClient, esdb_server: EmbeddedServer
) -> None:
    (member,) = client.read_gossip()
    assert (member.state, member.address, member.port) == (
        "NODE_STATE_LEADER",
        "localhost",
        esdb_server.port,
    )


@pytest.mark.parametrize(
    "uri_template",
    [
        "esdb+discover://localhost:{port}?tls=false",
        "esdb://localhost:{port},localhost:{port}?tls=false",
    ],
)
def test_discovery_uris_work(esdb_server: EmbeddedServer, uri_template: str) -> None:
    uri = uri_template.format(port=esdb_server.port)
    stream = f"test-{uuid4()}"
    with EventStoreDBClient(uri) as discovered:
        assert discovered.connection_target == f"localhost:{esdb_server.port}"
        discovered.append_to_stream(
            stream, current_version=StreamState.NO_STREAM, events=NewEvent(type="D", data=b"")
        )
        assert [e.type for e in discovered.get_stream(stream)] == ["D"]


def test_follower_preference_finds_no_follower(esdb_server: EmbeddedServer) -> None:
    from esdbclient.exceptions import FollowerNotFound

    uri = f"esdb+discover://localhost:{esdb_server.port}?tls=false&NodePreference=follower"
    with pytest.raises(FollowerNotFound):
        EventStoreDBClient(uri)


def test_persistent_subscription_listing_is_empty(client: EventStoreDBClient) -> None:
    assert client.list_subscriptions() == []
    assert client.list_subscriptions_to_stream(f"test-{uuid4()}") == []


@pytest.mark.parametrize("stream", [None, "some-stream"])
def test_persistent_subscription_lookups_are_not_found(
    client: EventStoreDBClient, stream: str | None
) -> None:
    with pytest.raises(NotFound):
        client.get_subscription_info("no-such-group", stream_name=stream)
    with pytest.raises(NotFound):
        client.delete_subscription("no-such-group", stream_name=stream)
    with pytest.raises(NotFound):
        client.replay_parked_events("no-such-group", stream_name=stream)
