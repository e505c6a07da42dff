"""resolve_links on reads and subscriptions of streams and of $all: the event with its link,
as the real server sends them, including a link whose target is gone."""

from __future__ import annotations

import threading
from uuid import uuid4

import grpc
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from tests.esdblocal.test_system_projections import eventually, links


def setup(client: EventStoreDBClient) -> tuple[str, str, list[NewEvent]]:
    cat = "rl" + uuid4().hex[:10]
    stream = f"{cat}-1"
    events = [NewEvent(type="A", data=b'{"i":1}'), NewEvent(type="B", data=b'{"i":2}')]
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=events)
    links(client, f"$ce-{cat}", 2)
    return cat, stream, events


def test_reading_a_link_stream_resolves_each_link(client: EventStoreDBClient) -> None:
    cat, stream, events = setup(client)
    resolved = client.get_stream(f"$ce-{cat}", resolve_links=True)
    assert [e.id for e in resolved] == [e.id for e in events]
    assert [(e.stream_name, e.stream_position, e.type) for e in resolved] == [
        (stream, 0, "A"),
        (stream, 1, "B"),
    ]
    assert all(e.link is not None for e in resolved)
    assert [
        (e.link.stream_name, e.link.stream_position, e.link.type) for e in resolved if e.link
    ] == [
        (f"$ce-{cat}", 0, "$>"),
        (f"$ce-{cat}", 1, "$>"),
    ]
    # Without resolve_links the links come as they are.
    plain = client.get_stream(f"$ce-{cat}")
    assert [(e.type, e.link) for e in plain] == [("$>", None), ("$>", None)]
    # Backwards too.
    backwards = client.get_stream(f"$ce-{cat}", resolve_links=True, backwards=True)
    assert [e.id for e in backwards] == [events[1].id, events[0].id]


def test_reading_all_resolves_links(client: EventStoreDBClient) -> None:
    cat, _, events = setup(client)
    ce = client.get_stream(f"$ce-{cat}")
    start = ce[0].commit_position
    found = [
        e
        for e in client.read_all(
            commit_position=start, resolve_links=True, limit=500, filter_exclude=[]
        )
        if e.link is not None and e.link.stream_name == f"$ce-{cat}"
    ]
    assert [e.id for e in found] == [e.id for e in events]
    # The position of a resolved event in $all is the link's.
    assert found[0].link is not None and found[0].link.commit_position == start


def test_subscriptions_resolve_links_history_and_live(client: EventStoreDBClient) -> None:
    cat, stream, events = setup(client)
    more = NewEvent(type="C", data=b"{}")

    def append_later() -> None:
        client.append_to_stream(stream, current_version=1, events=more)

    with client.subscribe_to_stream(f"$ce-{cat}", resolve_links=True, timeout=10) as subscription:
        threading.Timer(0.2, append_later).start()
        received = [next(subscription) for _ in range(3)]
    assert [e.id for e in received] == [events[0].id, events[1].id, more.id]
    assert all(e.link is not None and e.link.stream_name == f"$ce-{cat}" for e in received)

    ce = client.get_stream(f"$ce-{cat}")
    with client.subscribe_to_all(
        commit_position=(ce[0].commit_position or 0) - 1,
        resolve_links=True,
        filter_exclude=[],
        timeout=10,
    ) as subscription:
        seen = []
        for event in subscription:
            if event.link is not None and event.link.stream_name == f"$ce-{cat}":
                seen.append(event.id)
            if len(seen) == 3:
                break
    assert seen == [events[0].id, events[1].id, more.id]


def test_a_link_whose_target_is_gone(esdb_uri: str, client: EventStoreDBClient) -> None:
    cat, stream, _ = setup(client)
    client.delete_stream(stream, current_version=1)
    ce = links(client, f"$ce-{cat}", 3)  # the delete is linked too
    assert ce[2].data == f"0@$${stream}".encode()

    # esdbclient leaves out an event that did not resolve; the delete's link resolves to
    # the metastream's $metadata event.
    resolved = client.get_stream(f"$ce-{cat}", resolve_links=True)
    assert [(e.stream_name, e.type) for e in resolved] == [(f"$${stream}", "$metadata")]

    # On the wire: the link alone, with no event, as the real server sends a failed resolve.
    target = esdb_uri.removeprefix("esdb://").split("?")[0]
    options = streams_pb2.ReadReq.Options(
        stream=streams_pb2.ReadReq.Options.StreamOptions(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=f"$ce-{cat}".encode()),
            start=shared_pb2.Empty(),
        ),
        read_direction=streams_pb2.ReadReq.Options.Forwards,
        resolve_links=True,
        count=10,
        no_filter=shared_pb2.Empty(),
        uuid_option=streams_pb2.ReadReq.Options.UUIDOption(string=shared_pb2.Empty()),
        control_option=streams_pb2.ReadReq.Options.ControlOption(compatibility=1),
    )
    with grpc.insecure_channel(target) as channel:
        responses = list(
            streams_pb2_grpc.StreamsStub(channel).Read(streams_pb2.ReadReq(options=options))
        )
    read = [r.event for r in responses if r.HasField("event")]
    assert len(read) == 3
    for gone in read[:2]:
        assert gone.HasField("link") and not gone.HasField("event")
        assert gone.link.stream_identifier.stream_name == f"$ce-{cat}".encode()
    assert read[2].HasField("event") and read[2].HasField("link")

    # A truncated target ($tb) is gone too.
    other = f"{cat}-2"
    client.append_to_stream(
        other,
        current_version=StreamState.NO_STREAM,
        events=[NewEvent("X", b"{}"), NewEvent("Y", b"{}")],
    )
    links(client, f"$ce-{cat}", 5)
    client.set_stream_metadata(other, metadata={"$tb": 1}, current_version=StreamState.ANY)
    after = eventually(
        lambda: [e.type for e in client.get_stream(f"$ce-{cat}", resolve_links=True)]
    )
    assert after == ["$metadata", "Y"]
