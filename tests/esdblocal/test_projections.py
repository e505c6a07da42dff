"""User projections in JavaScript over the Projections service: one projection per API
feature, faulted projections, and the management calls."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import AlreadyExists, ExceptionThrownByHandler, NotFound, OperationFailed
from esdbclient.protos.Grpc import projections_pb2, projections_pb2_grpc
from google.protobuf import json_format

from esdblocal import EmbeddedServer
from esdblocal.server import ProjectionOptions
from tests.conftest import SecureNode


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(projections=ProjectionOptions(run="All")) as node:
        yield node


@pytest.fixture(scope="module")
def js(server: EmbeddedServer) -> Iterator[EventStoreDBClient]:
    with EventStoreDBClient(server.uri) as client:
        yield client


def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (NotFound, AssertionError, KeyError):
            value = None
        if value or time.monotonic() > deadline:
            assert value, "never happened"
            return value
        time.sleep(0.05)


def append(client: EventStoreDBClient, stream: str, *types: str, data: bytes = b"{}") -> None:
    events = [NewEvent(type=t, data=data) for t in types]
    client.append_to_stream(stream, current_version=StreamState.ANY, events=events)


def state_of(server: EmbeddedServer, name: str, partition: str = "") -> Any:
    target = server.uri.removeprefix("esdb://").split("?")[0]
    with grpc.insecure_channel(target) as channel:
        stub = projections_pb2_grpc.ProjectionsStub(channel)
        options = projections_pb2.StateReq.Options(name=name, partition=partition)
        answer = stub.State(projections_pb2.StateReq(options=options), timeout=5)
    return json_format.MessageToDict(answer.state)


def result_of(server: EmbeddedServer, name: str, partition: str = "") -> Any:
    target = server.uri.removeprefix("esdb://").split("?")[0]
    with grpc.insecure_channel(target) as channel:
        stub = projections_pb2_grpc.ProjectionsStub(channel)
        options = projections_pb2.ResultReq.Options(name=name, partition=partition)
        answer = stub.Result(projections_pb2.ResultReq(options=options), timeout=5)
    return json_format.MessageToDict(answer.result)


def unique() -> str:
    return uuid4().hex[:12]


def test_from_stream_init_and_output_state(js: EventStoreDBClient) -> None:
    stream, name = f"acct-{unique()}", f"p-{unique()}"
    query = f"""fromStream('{stream}').when({{
        $init: function () {{ return {{ count: 0, list: [null, "2.10", true] }}; }},
        Happened: function (s, e) {{ s.count += e.data.n; }}
    }}).outputState()"""
    js.create_projection(name=name, query=query)
    append(js, stream, "Happened", "Ignored", data=b'{"n": 2}')
    until(lambda: js.get_projection_state(name).value.get("count") == 2)
    assert js.get_projection_state(name).value == {"count": 2, "list": [None, "2.10", True]}
    source = js.get_stream(stream)
    results = until(lambda: js.get_stream(f"$projections-{name}-result"))
    assert [(e.type, json.loads(e.data)) for e in results] == [
        ("Result", {"count": 2, "list": [None, "2.10", True]})
    ]
    assert json.loads(results[0].metadata)["$causedBy"] == str(source[0].id)
    statistics = js.get_projection_statistics(name=name)
    assert (statistics.status, statistics.mode, statistics.events_processed_after_restart) == (
        "Running",
        "Continuous",
        1,
    )


def test_from_all_with_any(js: EventStoreDBClient) -> None:
    kind, name = f"K{unique()}", f"p-{unique()}"
    query = f"""fromAll().when({{
        $init: function () {{ return {{ n: 0 }}; }},
        $any: function (s, e) {{ if (e.eventType === '{kind}') s.n += 1; return s; }}
    }})"""
    js.create_projection(name=name, query=query)
    append(js, f"a-{unique()}", kind, kind)
    append(js, f"b-{unique()}", kind)
    until(lambda: js.get_projection_state(name).value.get("n") == 3)


def test_from_streams_and_from_category(js: EventStoreDBClient) -> None:
    one, two, other = f"s1-{unique()}", f"s2-{unique()}", f"s3-{unique()}"
    cat = f"c{unique()}"
    streams, category = f"p-{unique()}", f"p-{unique()}"
    js.create_projection(
        name=streams,
        query=f"""fromStreams(['{one}', '{two}']).when({{
            $init: function () {{ return {{ seen: [] }}; }},
            E: function (s, e) {{ s.seen.push(e.streamId); }} }})""",
    )
    js.create_projection(
        name=category,
        query=f"""fromCategory('{cat}').when({{
            $init: function () {{ return {{ seen: [] }}; }},
            E: function (s, e) {{ s.seen.push(e.streamId + ':' + e.category); }} }})""",
    )
    append(js, one, "E")
    append(js, other, "E")
    append(js, two, "E")
    append(js, f"{cat}-x", "E")
    append(js, f"{cat}other-y", "E")
    until(lambda: js.get_projection_state(streams).value["seen"] == [one, two])
    until(lambda: js.get_projection_state(category).value["seen"] == [f"{cat}-x:{cat}"])


def test_partition_by(server: EmbeddedServer, js: EventStoreDBClient) -> None:
    stream, name = f"orders-{unique()}", f"p-{unique()}"
    js.create_projection(
        name=name,
        query=f"""fromStream('{stream}').partitionBy(function (e) {{ return e.body.region; }})
            .when({{ $init: function () {{ return {{ total: 0 }}; }},
                     Sold: function (s, e) {{ s.total += e.body.amount; }} }})
            .outputState()""",
    )
    for region, amount in (("north", 2), ("south", 5), ("north", 3)):
        data = json.dumps({"region": region, "amount": amount}).encode()
        append(js, stream, "Sold", data=data)
    until(lambda: state_of(server, name, "north") == {"total": 5})
    assert state_of(server, name, "south") == {"total": 5}
    assert state_of(server, name, "west") == {}
    north = f"$projections-{name}-north-result"
    results = until(lambda: len(js.get_stream(north)) == 2 and js.get_stream(north))
    assert [json.loads(e.data) for e in results] == [{"total": 2}, {"total": 5}]


def test_foreach_stream_and_deleted(server: EmbeddedServer, js: EventStoreDBClient) -> None:
    cat, name = f"f{unique()}", f"p-{unique()}"
    js.create_projection(
        name=name,
        query=f"""fromCategory('{cat}').foreachStream().when({{
            $init: function () {{ return {{ n: 0, deleted: false }}; }},
            E: function (s, e) {{ s.n += 1; }},
            $deleted: function (s, e, soft) {{ s.deleted = true; s.soft = soft; return s; }}
        }})""",
    )
    append(js, f"{cat}-a", "E", "E")
    append(js, f"{cat}-b", "E")
    until(lambda: state_of(server, name, f"{cat}-a") == {"n": 2, "deleted": False})
    until(lambda: state_of(server, name, f"{cat}-b") == {"n": 1, "deleted": False})
    js.delete_stream(f"{cat}-b", current_version=0)
    until(lambda: state_of(server, name, f"{cat}-b").get("deleted"))
    assert state_of(server, name, f"{cat}-b") == {"n": 1, "deleted": True, "soft": True}


def test_emit_and_link_to(js: EventStoreDBClient) -> None:
    stream, name = f"src-{unique()}", f"p-{unique()}"
    out, links = f"out-{unique()}", f"links-{unique()}"
    js.create_projection(
        name=name,
        emit_enabled=True,
        query=f"""fromStream('{stream}').when({{
            Placed: function (s, e) {{
                emit('{out}', 'Copied', {{ from: e.streamId, n: e.sequenceNumber }},
                     {{ why: 'test' }});
                linkTo('{links}', e);
            }} }})""",
    )
    append(js, stream, "Placed", "Placed")
    emitted = until(lambda: len(js.get_stream(out)) == 2 and js.get_stream(out))
    assert [(e.type, json.loads(e.data)) for e in emitted] == [
        ("Copied", {"from": stream, "n": 0}),
        ("Copied", {"from": stream, "n": 1}),
    ]
    metadata = json.loads(emitted[0].metadata)
    assert metadata["why"] == "test"
    assert metadata["$causedBy"] == str(js.get_stream(stream)[0].id)
    linked = until(lambda: len(js.get_stream(links)) == 2 and js.get_stream(links))
    assert [(e.type, e.data) for e in linked] == [
        ("$>", f"0@{stream}".encode()),
        ("$>", f"1@{stream}".encode()),
    ]
    resolved = js.get_stream(links, resolve_links=True)
    assert [e.stream_name for e in resolved] == [stream, stream]


def test_options_result_stream_name(js: EventStoreDBClient) -> None:
    stream, name, result = f"o-{unique()}", f"p-{unique()}", f"custom-{unique()}"
    js.create_projection(
        name=name,
        query=f"""options({{ resultStreamName: '{result}' }});
            fromStream('{stream}').when({{ $init: function () {{ return {{ n: 0 }}; }},
                E: function (s) {{ s.n += 1; }} }}).outputState()""",
    )
    append(js, stream, "E")
    results = until(lambda: js.get_stream(result))
    assert json.loads(results[0].data) == {"n": 1}


def test_emit_without_emit_enabled_faults(js: EventStoreDBClient) -> None:
    stream, name = f"ne-{unique()}", f"p-{unique()}"
    js.create_projection(
        name=name,
        query=f"""fromStream('{stream}').when({{
            E: function () {{ emit('x-{unique()}', 'T', {{}}); }} }})""",
    )
    append(js, stream, "E")
    statistics = until(
        lambda: (s := js.get_projection_statistics(name=name)).status == "Faulted" and s
    )
    assert "emit" in statistics.state_reason


def test_faulted_projections_and_the_server_carries_on(js: EventStoreDBClient) -> None:
    bad, thrower = f"p-{unique()}", f"p-{unique()}"
    js.create_projection(name=bad, query="fromAll().when({ E: function ( }")
    statistics = js.get_projection_statistics(name=bad)
    assert statistics.status == "Faulted"
    assert "SyntaxError" in statistics.state_reason
    stream = f"t-{unique()}"
    js.create_projection(
        name=thrower,
        query=f"""fromStream('{stream}').when({{
            E: function () {{ throw new Error('handler says no'); }} }})""",
    )
    append(js, stream, "E")
    statistics = until(
        lambda: (s := js.get_projection_statistics(name=thrower)).status == "Faulted" and s
    )
    assert "handler says no" in statistics.state_reason
    # The node serves on, and its other projections run.
    append(js, f"after-{unique()}", "E")
    assert js.get_projection_statistics(name="$by_category").status == "Running"


def test_state_of_a_projection_that_never_compiled_waits(js: EventStoreDBClient) -> None:
    name = f"p-{unique()}"
    js.create_projection(name=name, query="")
    from esdbclient.exceptions import DeadlineExceeded

    with pytest.raises(DeadlineExceeded):
        js.get_projection_state(name=name, timeout=0.5)


def test_management_calls(js: EventStoreDBClient) -> None:
    name, stream, out = f"p-{unique()}", f"m-{unique()}", f"emitted-{unique()}"
    for call in (
        lambda: js.get_projection_statistics(name=name),
        lambda: js.update_projection(name=name, query=""),
        lambda: js.enable_projection(name=name),
        lambda: js.disable_projection(name=name),
        lambda: js.reset_projection(name=name),
        lambda: js.get_projection_state(name=name),
        lambda: js.delete_projection(name=name),
    ):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(ExceptionThrownByHandler):
        js.create_projection(name=name, query="", track_emitted_streams=True)
    query = f"""fromStream('{stream}').when({{ $init: function () {{ return {{ count: 0 }}; }},
        E: function (s) {{ s.count += 1; emit('{out}', 'Emitted', {{}}); }} }}).outputState()"""
    js.create_projection(name=name, query=query, emit_enabled=True, track_emitted_streams=True)
    with pytest.raises(AlreadyExists):
        js.create_projection(name=name, query=query)
    append(js, stream, "E", "E")
    until(lambda: js.get_projection_state(name).value.get("count") == 2)
    tracked = until(lambda: js.get_stream(f"$projections-{name}-emittedstreams"))
    assert [(e.type, e.data) for e in tracked] == [("$StreamTracked", out.encode())]
    with pytest.raises(OperationFailed):
        js.delete_projection(name, delete_emitted_streams=True)

    js.disable_projection(name=name)
    assert js.get_projection_statistics(name=name).status == "Stopped"
    append(js, stream, "E")
    time.sleep(0.2)
    assert js.get_projection_state(name).value == {"count": 2}
    js.enable_projection(name=name)
    until(lambda: js.get_projection_state(name).value.get("count") == 3)

    js.disable_projection(name=name)
    js.reset_projection(name=name)
    statistics = js.get_projection_statistics(name=name)
    assert (statistics.status, statistics.events_processed_after_restart) == ("Stopped", 0)
    assert js.get_projection_state(name).value == {}
    js.enable_projection(name=name)
    until(lambda: js.get_projection_state(name).value.get("count") == 3)

    js.update_projection(name=name, query=query.replace("s.count += 1", "s.count += 10"))
    js.disable_projection(name=name)
    js.delete_projection(
        name, delete_emitted_streams=True, delete_state_stream=True, delete_checkpoint_stream=True
    )
    with pytest.raises(NotFound):
        js.get_projection_statistics(name=name)
    with pytest.raises(NotFound):
        js.get_stream(out)
    assert len(js.get_stream(f"$projections-{name}-result")) >= 2  # results stay


def test_abort_is_a_disable_without_checkpoint(
    server: EmbeddedServer, js: EventStoreDBClient
) -> None:
    name = f"p-{unique()}"
    js.create_projection(name=name, query="fromAll().when({ $any: function (s) { return s; } })")
    target = server.uri.removeprefix("esdb://").split("?")[0]
    with grpc.insecure_channel(target) as channel:
        stub = projections_pb2_grpc.ProjectionsStub(channel)
        options = projections_pb2.DisableReq.Options(name=name, write_checkpoint=False)
        stub.Disable(projections_pb2.DisableReq(options=options), timeout=5)
    assert js.get_projection_statistics(name=name).status == "Aborted"
    js.enable_projection(name=name)
    assert js.get_projection_statistics(name=name).status == "Running"


def test_restart_subsystem(js: EventStoreDBClient) -> None:
    js.restart_projections_subsystem()
    until(lambda: js.get_projection_statistics(name="$by_category").status == "Running")


def test_a_user_projection_survives_a_restart(tmp_path: Path) -> None:
    stream, name = f"r-{unique()}", f"p-{unique()}"
    query = f"""fromStream('{stream}').when({{ $init: function () {{ return {{ n: 0 }}; }},
        E: function (s) {{ s.n += 1; }} }}).outputState()"""
    options = ProjectionOptions(run="All")
    with (
        EmbeddedServer(data_dir=tmp_path, projections=options) as server,
        EventStoreDBClient(server.uri) as client,
    ):
        client.create_projection(name=name, query=query)
        append(client, stream, "E", "E")
        until(lambda: client.get_projection_state(name).value.get("n") == 2)
    with (
        EmbeddedServer(data_dir=tmp_path, projections=options) as server,
        EventStoreDBClient(server.uri) as client,
    ):
        assert client.get_projection_statistics(name=name).status == "Running"
        append(client, stream, "E")
        until(lambda: client.get_projection_state(name).value.get("n") == 3)
        # The state is reported as soon as it is computed; its Result commits right after.
        stream = f"$projections-{name}-result"
        results = until(lambda: len(client.get_stream(stream)) >= 3 and client.get_stream(stream))
        time.sleep(0.2)
        results = client.get_stream(stream)
        assert [json.loads(e.data)["n"] for e in results] == [1, 2, 3]


def test_user_projections_do_not_run_with_system_only(esdb_uri: str) -> None:
    name, stream = f"p-{unique()}", f"s-{unique()}"
    with EventStoreDBClient(esdb_uri) as client:  # the shared node runs System
        client.create_projection(
            name=name, query=f"fromStream('{stream}').when({{ E: function (s) {{ return s; }} }})"
        )
        append(client, stream, "E")
        time.sleep(0.2)
        statistics = client.get_projection_statistics(name=name)
        assert (statistics.status, statistics.events_processed_after_restart) == ("Stopped", 0)


@pytest.mark.slow
def test_a_secure_node_manages_projections_for_signed_in_users(secure_node: SecureNode) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=secure_node.ca.read_bytes())
    request = projections_pb2.StatisticsReq(
        options=projections_pb2.StatisticsReq.Options(name="$by_category")
    )
    with grpc.secure_channel(secure_node.target, credentials) as channel:
        stub = projections_pb2_grpc.ProjectionsStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.Statistics(request, timeout=5))
    assert (raised.value.code(), raised.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "Access Denied",
    )
    with EventStoreDBClient(
        secure_node.uri_as(), root_certificates=secure_node.ca.read_text()
    ) as client:
        assert client.get_projection_statistics(name="$by_category").status == "Running"


def test_transform_by_and_filter_by_shape_the_result(
    server: EmbeddedServer, js: EventStoreDBClient
) -> None:
    stream, name = f"tr-{unique()}", f"p-{unique()}"
    js.create_projection(
        name=name,
        query=f"""fromStream('{stream}').when({{
            $init: function () {{ return {{ n: 0 }}; }},
            E: function (s) {{ s.n += 1; }} }})
            .filterBy(function (s) {{ return s.n % 2 === 0; }})
            .transformBy(function (s) {{ return {{ doubled: s.n * 2 }}; }})""",
    )
    append(js, stream, "E", "E", "E", "E")
    stream_name = f"$projections-{name}-result"
    results = until(lambda: len(js.get_stream(stream_name)) == 2 and js.get_stream(stream_name))
    assert [json.loads(e.data) for e in results] == [{"doubled": 4}, {"doubled": 8}]
    assert js.get_projection_state(name).value == {"n": 4}
    assert result_of(server, name) == {"doubled": 8}


def test_one_time_and_transient_projections_complete(
    server: EmbeddedServer, js: EventStoreDBClient
) -> None:
    stream = f"ot-{unique()}"
    append(js, stream, "E", "E")
    target = server.uri.removeprefix("esdb://").split("?")[0]
    query = f"""fromStream('{stream}').when({{ $init: function () {{ return {{ n: 0 }}; }},
        E: function (s) {{ s.n += 1; }} }})"""
    name = f"q-{unique()}"
    with grpc.insecure_channel(target) as channel:
        stub = projections_pb2_grpc.ProjectionsStub(channel)
        transient = projections_pb2.CreateReq.Options(
            transient=projections_pb2.CreateReq.Options.Transient(name=name), query=query
        )
        stub.Create(projections_pb2.CreateReq(options=transient), timeout=5)
        from esdbclient.protos.Grpc import shared_pb2

        one_time = projections_pb2.CreateReq.Options(one_time=shared_pb2.Empty(), query=query)
        stub.Create(projections_pb2.CreateReq(options=one_time), timeout=5)
        request = projections_pb2.StatisticsReq(
            options=projections_pb2.StatisticsReq.Options(one_time=shared_pb2.Empty())
        )
        one_times = list(stub.Statistics(request, timeout=5))
    assert one_times and all(r.details.mode == "OneTime" for r in one_times)
    until(lambda: js.get_projection_statistics(name=name).status == "Completed")
    assert js.get_projection_statistics(name=name).mode == "Transient"
    assert js.get_projection_state(name).value == {"n": 2}
