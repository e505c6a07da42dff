"""The controllers the real web UI reads, over real HTTP, against a real esdblocal.

Projections (``ProjectionsController``), persistent subscriptions
(``PersistentSubscriptionController``), ``/stats`` in the dashboard's shape, ``/ping``,
``/web/``, unknown paths, and Prometheus ``/metrics`` after real gRPC appends through
esdbclient. Shapes and status codes are the real server's (see each controller's module).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from prometheus_client.parser import text_string_to_metric_families

from esdblocal import EmbeddedServer
from esdblocal.server import ProjectionOptions
from tests.esdblocal.test_http_api import Http, Reply

QUERY = """fromStream('%s').when({
  $init: function () { return {count: 0}; },
  Counted: function (state, event) { state.count += 1; return state; }
});"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(
        data_dir=tmp_path_factory.mktemp("esdb-controllers"),
        http_port=0,
        projections=ProjectionOptions(run="All"),
    ) as node:
        yield node


@pytest.fixture(scope="module")
def web(server: EmbeddedServer) -> Http:
    return Http(server.http_url)


@pytest.fixture(scope="module")
def esdb(server: EmbeddedServer) -> Iterator[EventStoreDBClient]:
    with EventStoreDBClient(server.uri) as client:
        yield client


def json_of(reply: Reply) -> object:
    assert reply.status == 200, (reply.status, reply.reason, reply.body)
    return json.loads(reply.body)


def eventually(check: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait for a projection to catch up (bounded, so a broken one fails rather than hangs)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def append(esdb: EventStoreDBClient, stream: str, count: int, kind: str = "Counted") -> None:
    events = [NewEvent(type=kind, data=b'{"n":1}') for _ in range(count)]
    esdb.append_to_stream(stream, current_version=StreamState.ANY, events=events)


# ------------------------------------------------------------------ projections


def test_projection_lifecycle_as_the_ui_drives_it(web: Http, esdb: EventStoreDBClient) -> None:
    stream, name = f"counted-{uuid4().hex}", f"count-{uuid4().hex[:8]}"
    append(esdb, stream, 3)
    created = web.request(
        "POST",
        f"/projections/continuous?name={name}&emit=no&checkpoints=yes&enabled=yes"
        "&trackemittedstreams=no",
        {"Content-Type": "application/json"},
        (QUERY % stream).encode(),
    )
    assert created.status == 201, created.body
    location = created.headers["location"]
    assert location == f"{web.base}/projection/{name}"

    listed = json_of(web.get("/projections/all-non-transient", "application/json"))
    assert isinstance(listed, dict)
    mine = [p for p in listed["projections"] if p["name"] == name]
    assert len(mine) == 1
    assert mine[0]["mode"] == "Continuous"
    assert mine[0]["statusUrl"] == location
    assert mine[0]["stateUrl"] == f"{location}/state"
    assert mine[0]["queryUrl"] == f"{location}/query?config=yes"
    assert {p["name"] for p in listed["projections"]} >= {"$by_category", "$streams"}

    path = web.path(location)
    eventually(
        lambda: json.loads(web.get(f"{path}/state", "application/json").body) == {"count": 3}
    )
    assert json_of(web.get(f"{path}/result", "application/json")) == {"count": 3}
    status = json_of(web.get(path, "application/json"))
    assert isinstance(status, dict) and status["status"] == "Running"
    stats = json_of(web.get(f"{path}/statistics", "application/json"))
    assert isinstance(stats, dict) and stats["projections"][0]["name"] == name
    query = json_of(web.get(f"{path}/query?config=yes", "application/json"))
    assert isinstance(query, dict) and query["query"] == QUERY % stream
    plain = web.get(f"{path}/query?config=no", "*/*")
    assert plain.status == 200 and plain.body.decode() == QUERY % stream
    assert plain.headers["content-type"].startswith("application/javascript")
    config = json_of(web.get(f"{path}/config", "application/json"))
    assert isinstance(config, dict) and config["emitEnabled"] is False

    # A running projection cannot be deleted (the server's OperationFailed).
    refused = web.request("DELETE", f"{path}?deleteStateStream=yes")
    assert refused.status == 500 and refused.reason == "Failed"

    disabled = web.request("POST", f"{path}/command/disable")
    assert json_of(disabled) == {"name": name}
    eventually(lambda: json.loads(web.get(path, "application/json").body)["status"] == "Stopped")
    assert web.request("POST", f"{path}/command/reset").status == 200
    assert web.request("POST", f"{path}/command/enable").status == 200
    append(esdb, stream, 1)
    eventually(
        lambda: json.loads(web.get(f"{path}/state", "application/json").body) == {"count": 4}
    )

    assert web.request("POST", f"{path}/command/disable").status == 200
    deleted = web.request(
        "DELETE", f"{path}?deleteStateStream=yes&deleteCheckpointStream=yes&deleteEmittedStreams=no"
    )
    assert json_of(deleted) == {"name": name}
    assert web.get(path, "application/json").status == 404


def test_projection_refusals(web: Http) -> None:
    missing = web.get("/projection/no-such-projection/state", "application/json")
    assert missing.status == 404 and b"not found" in missing.body
    name = f"dup-{uuid4().hex[:8]}"
    body = b"fromAll().when({$init: function () { return {}; }});"
    assert web.request("POST", f"/projections/continuous?name={name}", body=body).status == 201
    again = web.request("POST", f"/projections/continuous?name={name}", body=body)
    assert again.status == 409
    native = web.request(
        "POST", "/projections/continuous?name=x&type=native:Some.Type", body=b"", headers={}
    )
    assert native.status == 400
    assert web.request("POST", "/projections/sometimes", body=body).status == 404
    one_time = web.request("POST", "/projections/onetime?enabled=no", body=body)
    assert one_time.status == 201
    transient = json_of(web.get("/projections/onetime", "application/json"))
    assert isinstance(transient, dict)
    assert web.path(one_time.headers["location"]).split("/")[-1] in {
        p["name"] for p in transient["projections"]
    }


# ------------------------------------------------------------------ subscriptions


def test_competing_consumers_pages_read_the_groups(web: Http, esdb: EventStoreDBClient) -> None:
    stream, group = f"orders-{uuid4().hex}", "workers"
    append(esdb, stream, 2, "OrderPlaced")
    esdb.create_subscription_to_stream(group, stream)
    esdb.create_subscription_to_all("everything", from_end=True)

    listed = json_of(web.get("/subscriptions", "application/json"))
    assert isinstance(listed, list)
    mine = [s for s in listed if s["eventStreamId"] == stream]
    assert len(mine) == 1 and mine[0]["groupName"] == group
    assert mine[0]["links"][0]["href"] == f"{web.base}/subscriptions/{stream}/{group}/info"
    assert mine[0]["parkedMessageUri"] == (
        f"{web.base}/streams/%24persistentsubscription-{stream}::{group}-parked"
    )
    assert "$all" in {s["eventStreamId"] for s in listed}

    detail = json_of(web.get(f"/subscriptions/{stream}/{group}/info", "application/json"))
    assert isinstance(detail, dict)
    assert detail["config"]["namedConsumerStrategy"] == "DispatchToSingle"  # esdbclient's
    assert detail["config"]["startPosition"] == "0"
    assert detail["connections"] == []

    of_stream = json_of(web.get(f"/subscriptions/{stream}", "application/json"))
    assert isinstance(of_stream, list) and [s["groupName"] for s in of_stream] == [group]
    paged = json_of(web.get("/subscriptions?offset=0&count=1", "application/json"))
    assert isinstance(paged, dict) and paged["count"] == 1 and len(paged["subscriptions"]) == 1
    assert {link["rel"] for link in paged["links"]} == {"self", "first", "next"}
    assert web.get("/subscriptions?count=0", "application/json").status == 400

    replay = web.request("POST", f"/subscriptions/{stream}/{group}/replayParked")
    assert replay.status == 200
    assert web.get(f"/subscriptions/{stream}/nobody/info", "application/json").status == 404
    assert web.request("DELETE", f"/subscriptions/{stream}/{group}").status == 200
    assert web.get(f"/subscriptions/{stream}/{group}/info", "application/json").status == 404


# ------------------------------------------------------------------ the node


def test_stats_in_the_dashboards_shape(web: Http) -> None:
    stats = json_of(web.get("/stats", "application/json"))
    assert isinstance(stats, dict)
    queues = stats["es"]["queue"]
    assert queues, "the dashboard shows an empty table for no queues"
    for queue in queues.values():
        assert isinstance(queue["avgProcessingTime"], float)  # it calls toFixed on it
        assert {"queueName", "lengthCurrentTryPeak", "totalItemsProcessed"} <= set(queue)
    assert json_of(web.get("/stats/tcp", "application/json")) == []  # it calls slice on it
    assert json_of(web.get("/stats/replication", "application/json")) == []


def test_ping_web_and_unknown_paths(web: Http) -> None:
    ping = json_of(web.get("/ping", "application/json"))
    assert isinstance(ping, dict)
    assert ping["text"] == "Ping request successfully handled"
    assert isinstance(ping["msgTypeId"], int)
    page = web.get("/web/", "text/html")
    assert page.status == 200 and b"<html" in page.body.lower()
    assert web.request("POST", "/no/such/path", body=b"{}").status == 404
    assert web.request("GET", "/no/such/path").status == 404
    assert web.request("POST", "/info", body=b"{}").status == 405  # a known path, another verb
    preflight = web.request("OPTIONS", "/info")
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert json_of(web.get("/sys/subsystems", "application/json")) == ["Projections"]


# ------------------------------------------------------------------ metrics


def scrape(web: Http) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = web.get("/metrics", "text/plain")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_real_grpc_calls_under_the_servers_names(
    web: Http, esdb: EventStoreDBClient
) -> None:
    before = scrape(web)
    stream = f"metered-{uuid4().hex}"
    for _ in range(3):
        append(esdb, stream, 2, "Metered")
    assert len(list(esdb.get_stream(stream))) == 6

    def appended(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
        key = (
            "eventstore_grpc_method_duration_seconds_count",
            (("activity", "append"), ("status", "successful")),
        )
        return samples.get(key, 0.0)

    def counted(
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str, **labels: str
    ) -> float:
        return samples.get((metric, tuple(sorted(labels.items()))), 0.0)

    events = "eventstore_io_events_total"
    was_written = counted(before, events, activity="written")
    eventually(lambda: counted(scrape(web), events, activity="written") >= was_written + 6)
    # A call's duration is recorded as its interceptor finishes, which may be just after the
    # client has its answer: wait for the third append's too.
    eventually(lambda: appended(scrape(web)) >= appended(before) + 3)
    after = scrape(web)
    assert appended(after) >= appended(before) + 3
    total = "eventstore_incoming_grpc_calls_total"
    assert counted(after, total, kind="total") >= counted(before, total, kind="total") + 4
    read = counted(after, "eventstore_io_events_total", activity="read")
    assert read >= counted(before, "eventstore_io_events_total", activity="read") + 6
    written_bytes = counted(after, "eventstore_io_bytes_total", activity="written")
    assert written_bytes >= counted(before, "eventstore_io_bytes_total", activity="written") + 42
    head = counted(after, "eventstore_checkpoints", name="writer", read="non-flushed")
    assert head > counted(before, "eventstore_checkpoints", name="writer", read="non-flushed")
    assert counted(after, "eventstore_statuses", name="Node", status="Leader") > 0
    assert counted(after, "eventstore_proc_thread_count") >= 1
    assert counted(after, "eventstore_projection_running", projection="$by_category") == 1
    assert counted(after, "eventstore_current_incoming_grpc_calls") >= 0
