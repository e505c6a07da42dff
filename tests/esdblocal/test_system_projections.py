"""The system projections over gRPC: link streams, link data and metadata as the real server
writes them, the category rule, skipped events, deletes, and the run flags."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, RecordedEvent, StreamState
from esdbclient.exceptions import NotFound

from esdblocal import EmbeddedServer
from esdblocal.server import ProjectionOptions

MAX_LONG = 9223372036854775807


def eventually(read: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``read()`` once it returns something truthy (projections run after the commit)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
        except NotFound:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def links(client: EventStoreDBClient, stream: str, count: int = 1) -> list[RecordedEvent]:
    """The events of ``stream`` once it holds at least ``count``."""
    got = eventually(lambda: (e := list(client.get_stream(stream))) and len(e) >= count and e)
    assert got, f"{stream} never got {count} events"
    return list(got)


def meta(event: RecordedEvent) -> dict[str, Any]:
    return json.loads(event.metadata)  # type: ignore[no-any-return]


def category() -> str:
    return "cat" + uuid4().hex[:10]


def test_by_category_links_every_event_with_the_real_metadata(client: EventStoreDBClient) -> None:
    cat = category()
    stream = f"{cat}-{uuid4()}"
    first = NewEvent(type="Placed", data=b'{"n":1}', metadata=b'{"$correlationId":"c-1"}')
    second = NewEvent(type="Paid", data=b"{}")
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=[first, second])
    source = client.get_stream(stream)

    ce = links(client, f"$ce-{cat}", 2)
    assert [e.type for e in ce] == ["$>", "$>"]
    assert [e.data for e in ce] == [f"0@{stream}".encode(), f"1@{stream}".encode()]
    assert ce[0].content_type == "application/octet-stream"
    assert meta(ce[0]) == {
        "$v": "3:-1:1:4",
        "$c": source[0].commit_position,
        "$p": source[0].commit_position,
        "$o": stream,
        "$causedBy": str(first.id),
        "$correlationId": "c-1",
    }
    # Key order is the server's: tag, extra metadata, then $causedBy/$correlationId.
    assert list(meta(ce[1])) == ["$v", "$c", "$p", "$o", "$causedBy"]


def test_the_acl_is_written_before_a_new_system_streams_first_link(
    client: EventStoreDBClient,
) -> None:
    cat = category()
    client.append_to_stream(
        f"{cat}-1", current_version=StreamState.ANY, events=NewEvent(type="T", data=b"{}")
    )
    first_link = links(client, f"$ce-{cat}")[0]
    acl = client.get_stream(f"$$$ce-{cat}")
    assert len(acl) == 1
    assert acl[0].type == "$metadata"
    assert json.loads(acl[0].data) == {"$acl": {"$r": "$all", "$mr": "$all"}}
    assert (acl[0].commit_position or 0) < (first_link.commit_position or 0)
    metadata, _ = client.get_stream_metadata(f"$category-{cat}")
    assert metadata == {"$acl": {"$r": "$all", "$mr": "$all"}}


def test_by_event_type_streams_and_stream_by_category(client: EventStoreDBClient) -> None:
    cat = category()
    kind = "Type" + uuid4().hex[:8]
    a, b = f"{cat}-a", f"{cat}-b"
    client.append_to_stream(a, current_version=StreamState.ANY, events=NewEvent(kind, b"{}"))
    client.append_to_stream(
        b, current_version=StreamState.ANY, events=[NewEvent(kind, b"{}"), NewEvent(kind, b"{}")]
    )

    et = links(client, f"$et-{kind}", 3)
    assert [e.data for e in et] == [f"0@{a}".encode(), f"0@{b}".encode(), f"1@{b}".encode()]
    assert list(meta(et[0])) == ["$v", "$c", "$p", "$causedBy"]
    assert meta(et[0])["$v"] == "4:-1:1:4"

    refs = links(client, f"$category-{cat}", 2)
    assert [(e.type, e.data) for e in refs] == [("$@", a.encode()), ("$@", b.encode())]
    assert meta(refs[0])["$v"] == "2:-1:1:4"

    streams = eventually(
        lambda: [e for e in client.get_stream("$streams") if e.data in (f"0@{a}".encode(),)]
    )
    assert streams and streams[0].type == "$>"
    assert meta(streams[0])["$v"] == "1:-1:1:4"
    mentions = [e for e in client.get_stream("$streams") if e.data.endswith(f"@{b}".encode())]
    assert [e.data for e in mentions] == [f"0@{b}".encode()], "one link per stream"


def test_by_correlation_id(client: EventStoreDBClient) -> None:
    correlation = str(uuid4())
    stream = f"{category()}-1"
    event = NewEvent(
        type="Done", data=b"{}", metadata=json.dumps({"$correlationId": correlation}).encode()
    )
    client.append_to_stream(stream, current_version=StreamState.ANY, events=event)
    bc = links(client, f"$bc-{correlation}")
    assert bc[0].data == f"0@{stream}".encode()
    metadata = meta(bc[0])
    assert list(metadata) == ["$v", "$c", "$p", "$eventTimestamp", "$causedBy", "$correlationId"]
    assert metadata["$v"] == "5:-1:1:4"
    assert metadata["$correlationId"] == correlation
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", metadata["$eventTimestamp"])
    recorded = client.get_stream(stream)[0].recorded_at
    assert metadata["$eventTimestamp"].startswith(recorded.strftime("%Y-%m-%dT%H:%M:%S"))


def test_plain_events_get_the_same_link_bytes_as_the_general_handlers(
    client: EventStoreDBClient,
) -> None:
    """Most events take a shortcut (links built in one go); an event whose metadata merely
    mentions "$correlationId" takes the general handlers. Their links must be byte for byte
    alike but for the source's own position and id."""
    cat = category()
    kind = "Same" + uuid4().hex[:8]
    plain = NewEvent(kind, b"{}")
    general = NewEvent(kind, b"{}", metadata=b'{"note":"no $correlationId here"}')
    client.append_to_stream(f"{cat}-é", current_version=StreamState.ANY, events=plain)
    client.append_to_stream(f"{cat}-é", current_version=StreamState.ANY, events=general)
    client.append_to_stream(f"{cat}-new", current_version=StreamState.ANY, events=general)
    sources = client.get_stream(f"{cat}-é") + client.get_stream(f"{cat}-new")

    def shapes(stream: str, count: int) -> list[bytes]:
        found = links(client, stream, count)
        out = []
        for event, source in zip(found, sources, strict=False):
            template = event.metadata.replace(str(source.commit_position).encode(), b"P")
            template = template.replace(str(source.id).encode(), b"ID")
            out.append(event.type.encode() + b" " + event.data + b" " + template)
        return out

    ce = shapes(f"$ce-{cat}", 2)
    assert ce[0] == ce[1].replace(b"1@", b"0@"), ce
    et = shapes(f"$et-{kind}", 2)
    assert et[0] == et[1].replace(b"1@", b"0@"), et
    refs = links(client, f"$category-{cat}", 2)
    starts = [
        event.metadata.replace(str(source.commit_position).encode(), b"P").replace(
            str(source.id).encode(), b"ID"
        )
        for event, source in zip(refs, (sources[0], sources[2]), strict=True)
    ]
    assert starts[0] == starts[1] == b'{"$v":"2:-1:1:4","$c":P,"$p":P,"$causedBy":"ID"}'


def test_category_rule_and_skipped_events(client: EventStoreDBClient) -> None:
    cat = category()
    kind = "Skip" + uuid4().hex[:8]
    # The part before the first "-"; no category without one, none for "$" streams.
    client.append_to_stream(
        f"{cat}-x-y", current_version=StreamState.ANY, events=NewEvent(kind, b"{}")
    )
    client.append_to_stream(
        f"{cat}nodash", current_version=StreamState.ANY, events=NewEvent(kind, b"{}")
    )
    client.append_to_stream(
        f"${cat}-sys", current_version=StreamState.ANY, events=NewEvent(kind, b"{}")
    )
    # A JSON-flagged event whose data is not JSON is skipped by every projection.
    client.append_to_stream(
        f"{cat}-bad", current_version=StreamState.ANY, events=NewEvent(kind, b"not json")
    )
    # Binary data is fine.
    client.append_to_stream(
        f"{cat}-bin",
        current_version=StreamState.ANY,
        events=NewEvent(kind, b"\x00\x01", content_type="application/octet-stream"),
    )
    et = links(client, f"$et-{kind}", 3)
    time.sleep(0.3)  # anything wrongly linked would be there by now
    et = client.get_stream(f"$et-{kind}")
    assert [e.data for e in et] == [
        f"0@{cat}-x-y".encode(),
        f"0@{cat}nodash".encode(),
        f"0@{cat}-bin".encode(),
    ]
    ce = client.get_stream(f"$ce-{cat}")
    assert [meta(e)["$o"] for e in ce] == [f"{cat}-x-y", f"{cat}-bin"]
    with pytest.raises(NotFound):
        client.get_stream(f"$ce-${cat}")


def test_deletes_are_linked_as_the_server_records_them(client: EventStoreDBClient) -> None:
    cat = category()
    soft, hard = f"{cat}-soft", f"{cat}-hard"
    for stream in (soft, hard):
        client.append_to_stream(
            stream, current_version=StreamState.ANY, events=NewEvent("T", b"{}")
        )
    client.delete_stream(soft, current_version=0)
    client.tombstone_stream(hard, current_version=0)

    ce = links(client, f"$ce-{cat}", 4)
    deleted = [meta(e) for e in ce if "$deleted" in meta(e)]
    assert [(m["$o"], m["$deleted"]) for m in deleted] == [(soft, -1), (hard, -1)]
    assert ce[2].data == f"0@$${soft}".encode()  # the metastream event that deleted it
    assert ce[3].data == f"{MAX_LONG}@{hard}".encode()

    et = [
        e
        for e in client.get_stream("$et-$deleted")
        if e.data.endswith(f"@{soft}".encode()) or e.data.endswith(f"@{hard}".encode())
    ]
    assert [e.data for e in et] == [f"0@{soft}".encode(), f"{MAX_LONG}@{hard}".encode()]
    assert all(meta(e)["$deleted"] == -1 for e in et)


def test_projection_statistics_of_system_projections(client: EventStoreDBClient) -> None:
    for name in ("$streams", "$stream_by_category", "$by_category", "$by_event_type"):
        statistics = client.get_projection_statistics(name=name)
        assert statistics.name == name
        assert statistics.status == "Running"
        assert statistics.mode == "Continuous"


def test_run_projections_none_has_no_links_and_no_service() -> None:
    with (
        EmbeddedServer(projections=ProjectionOptions(run="None")) as server,
        EventStoreDBClient(server.uri) as client,
    ):
        cat = category()
        client.append_to_stream(
            f"{cat}-1", current_version=StreamState.ANY, events=NewEvent("T", b"{}")
        )
        time.sleep(0.3)
        with pytest.raises(NotFound):
            client.get_stream(f"$ce-{cat}")
        channel = grpc.insecure_channel(server.uri.removeprefix("esdb://").split("?")[0])
        from esdbclient.protos.Grpc import projections_pb2, projections_pb2_grpc

        stub = projections_pb2_grpc.ProjectionsStub(channel)
        request = projections_pb2.StatisticsReq(
            options=projections_pb2.StatisticsReq.Options(name="$by_category")
        )
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.Statistics(request, timeout=5))
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        channel.close()


def test_standard_projections_not_started_until_enabled() -> None:
    with (
        EmbeddedServer(projections=ProjectionOptions(start_standard=False)) as server,
        EventStoreDBClient(server.uri) as client,
    ):
        cat = category()
        client.append_to_stream(
            f"{cat}-1", current_version=StreamState.ANY, events=NewEvent("T", b"{}")
        )
        time.sleep(0.3)
        with pytest.raises(NotFound):
            client.get_stream(f"$ce-{cat}")
        assert client.get_projection_statistics(name="$by_category").status == "Stopped"
        client.enable_projection(name="$by_category")
        assert [e.data for e in links(client, f"$ce-{cat}")] == [f"0@{cat}-1".encode()]
        assert client.get_projection_statistics(name="$by_category").status == "Running"
        client.disable_projection(name="$by_category")
        client.append_to_stream(
            f"{cat}-2", current_version=StreamState.ANY, events=NewEvent("T", b"{}")
        )
        time.sleep(0.3)
        assert len(client.get_stream(f"$ce-{cat}")) == 1
        assert client.get_projection_statistics(name="$by_category").status == "Stopped"
        client.enable_projection(name="$by_category")
        assert len(links(client, f"$ce-{cat}", 2)) == 2


def test_a_restart_resumes_without_doubling(tmp_path: Any) -> None:
    cat = category()
    with EmbeddedServer(data_dir=tmp_path) as server, EventStoreDBClient(server.uri) as client:
        for i in range(5):
            client.append_to_stream(
                f"{cat}-{i}", current_version=StreamState.ANY, events=NewEvent("T", b"{}")
            )
        links(client, f"$ce-{cat}", 5)
    with EmbeddedServer(data_dir=tmp_path) as server, EventStoreDBClient(server.uri) as client:
        client.append_to_stream(
            f"{cat}-9", current_version=StreamState.ANY, events=NewEvent("T", b"{}")
        )
        ce = links(client, f"$ce-{cat}", 6)
        time.sleep(0.3)
        ce = client.get_stream(f"$ce-{cat}")
        assert [meta(e)["$o"] for e in ce] == [f"{cat}-{i}" for i in (0, 1, 2, 3, 4, 9)]
        assert len(client.get_stream(f"$$$ce-{cat}")) == 1


@pytest.mark.slow
def test_kill_9_mid_projection_then_restart_misses_and_doubles_nothing(tmp_path: Any) -> None:
    """Appends keep coming while the projections write; kill -9; restart: every event of
    the category is linked exactly once, in order, and the $ce- links follow on."""
    from tests.esdblocal.test_process import esdblocal

    cat = category()
    data = str(tmp_path / "esdb")
    appended: list[str] = []
    with esdblocal("--data", data) as (process, uri), EventStoreDBClient(uri) as client:
        for batch, size in enumerate([500] * 10 + [8000]):
            events = [NewEvent("T", b"{}") for _ in range(size)]
            stream = f"{cat}-{batch}"
            client.append_to_stream(stream, current_version=StreamState.ANY, events=events)
            appended.extend(f"{i}@{stream}" for i in range(size))
        process.kill()  # straight after the last acknowledgement: the projections trail
        process.wait(timeout=10)
    with sqlite3.connect(tmp_path / "esdb" / "log.sqlite3") as db:
        (seen_before,) = db.execute(
            "SELECT COUNT(*) FROM events e JOIN streams s ON s.id = e.stream_id WHERE s.name = ?",
            (f"$ce-{cat}",),
        ).fetchone()
    with esdblocal("--data", data) as (_, uri), EventStoreDBClient(uri) as client:
        client.append_to_stream(
            f"{cat}-after", current_version=StreamState.ANY, events=NewEvent("T", b"{}")
        )
        appended.append(f"0@{cat}-after")
        ce = links(client, f"$ce-{cat}", len(appended))
        time.sleep(0.5)
        ce = client.get_stream(f"$ce-{cat}")
        assert [e.data.decode() for e in ce] == appended
        assert [e.stream_position for e in ce] == list(range(len(appended)))
        assert len(client.get_stream(f"$$$ce-{cat}")) == 1
        streams = [e.data.decode() for e in client.get_stream("$streams")]
        assert len(streams) == len(set(streams))
    print(f"$ce- held {seen_before} of {len(appended) - 1} links at the kill")
