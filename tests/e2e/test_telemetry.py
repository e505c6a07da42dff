"""Telemetry end to end: the stack with tracing on (the file exporter) and Debian's
Prometheus scraping the web's and the projector's /metrics; real processes, real HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esdbclient import EventStoreDBClient

from tests.e2e.conftest import call, free_port, whole_stack

pytestmark = pytest.mark.slow
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CREATE = "application/json; domain-model=CreateInventoryItemCommand"
REMOVE = "application/json; domain-model=RemoveItemsFromInventoryCommand"
CHECK_IN = "application/json; domain-model=CheckInItemsToInventoryCommand"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("telemetry")
    web_metrics, projector_metrics, prometheus_port = free_port(), free_port(), free_port()
    traces = data / "traces.jsonl"
    extra = {
        "OTEL_TRACES_EXPORTER": "file",
        "OTEL_EXPORTER_FILE_PATH": str(traces),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "METRICS_PORT": str(web_metrics),
        "PROJECTOR_METRICS_PORT": str(projector_metrics),
    }
    config = data / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: web\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{web_metrics}']}}]\n"
        "  - job_name: projector\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{projector_metrics}']}}]\n"
    )
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={data / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with whole_stack(data, **extra) as (port, uri, _):
            yield {"port": port, "uri": uri, "traces": traces, "prometheus": prometheus_port}
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=20)


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as reply:
        answer = json.load(reply)
    assert answer["status"] == "success"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def until(found: Any, what: str, seconds: float = 30) -> Any:
    """Poll ``found()`` until it is truthy (scrapes and exports are asynchronous)."""
    deadline = time.monotonic() + seconds
    while True:
        value = found()
        if value:
            return value
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.25)


def test_prometheus_counts_commands_by_outcome(observed: dict[str, Any]) -> None:
    port = observed["port"]
    locations = []
    for name in ("a", "b", "c"):
        status, headers, _ = call(
            port, "POST", "/v1/inventory-items", {"name": name}, Content_Type=CREATE
        )
        assert status == 202
        locations.append(("/" + headers["location"].split("/", 3)[3], headers))
    item, created = locations[0]
    status, _, _ = call(port, "POST", item, {"count": 5}, Content_Type=REMOVE)
    assert status == 409
    status, headers, _ = call(port, "POST", item, {"count": 1}, Content_Type=CHECK_IN)
    assert status == 202
    stale = created["etag"]
    status, _, _ = call(port, "POST", item, {"count": 1}, Content_Type=CHECK_IN, If_Match=stale)
    assert status == 412
    status, _, _ = call(port, "GET", item, Commit_Position=headers["commit-position"])
    assert status == 200

    def by_outcome() -> dict[str, float] | None:
        rows = query(observed["prometheus"], "sum by (outcome) (commands_total)")
        counts = {row["metric"]["outcome"]: float(row["value"][1]) for row in rows}
        return counts if counts.get("202", 0) >= 4 and "412" in counts else None

    counts = until(by_outcome, "the commands in Prometheus")
    assert counts == {"202": 4.0, "409": 1.0, "412": 1.0}
    requests = query(
        observed["prometheus"],
        'sum(http_requests_total{route="/v1/inventory-items/{item_id:uuid}",method="POST"})',
    )
    assert float(requests[0]["value"][1]) == 3.0
    folded = until(
        lambda: query(observed["prometheus"], "projector_events_total >= 4"), "the projector"
    )
    assert folded[0]["metric"]["job"] == "projector"
    assert until(lambda: query(observed["prometheus"], "projector_lag"), "the lag")


def spans(traces: Path) -> list[dict[str, Any]]:
    if not traces.exists():
        return []
    return [json.loads(line) for line in traces.read_text().splitlines() if line.strip()]


def test_a_traceparent_reaches_event_metadata_and_the_projector(
    observed: dict[str, Any],
) -> None:
    port = observed["port"]
    status, headers, _ = call(
        port,
        "POST",
        "/v1/inventory-items",
        {"name": "traced"},
        Content_Type=CREATE,
        traceparent=f"00-{TRACE}-{PARENT}-01",
    )
    assert status == 202
    stream = "inventoryItem-" + headers["location"].rsplit("/", 1)[1]
    with EventStoreDBClient(observed["uri"]) as client:
        (event,) = client.get_stream(stream)
    metadata = json.loads(event.metadata)
    assert metadata["$traceId"] == TRACE
    assert len(metadata["$spanId"]) == 16 and metadata["$spanId"] != PARENT
    assert metadata["domainModel"] == "CreateInventoryItemCommand"

    def traced() -> list[dict[str, Any]] | None:
        found = [s for s in spans(observed["traces"]) if s["context"]["trace_id"] == f"0x{TRACE}"]
        names = {s["name"] for s in found}
        return found if "projections.fold" in names and "streams.append" in names else None

    found = until(traced, "the projector's span in the request's trace")
    by_id = {s["context"]["span_id"]: s for s in found}
    (fold,) = [s for s in found if s["name"] == "projections.fold"]
    assert fold["attributes"]["db.kdb.stream"] == stream
    append = by_id[fold["parent_id"]]  # the fold is a child of the append that wrote it
    assert append["name"] == "streams.append"
    assert append["context"]["span_id"] == "0x" + metadata["$spanId"]
    chain = []
    span = append
    while span["parent_id"] in by_id:
        span = by_id[span["parent_id"]]
        chain.append(span["name"])
    assert span["kind"] == "SpanKind.SERVER"  # Falcon's request span, under the caller's
    assert span["parent_id"] == f"0x{PARENT}"
    assert {s["name"] for s in found} >= {"decide", "streams.append", "projections.fold"}


def test_events_from_other_clients_continue_their_traces(observed: dict[str, Any]) -> None:
    """An event written with another client's ``$traceId``/``$spanId`` is folded in that
    trace."""
    from uuid import uuid4

    from esdbclient import NewEvent, StreamState

    other_trace, other_span = uuid4().hex, uuid4().hex[:16]
    item = uuid4()
    data = json.dumps({"type": "InventoryItemCreated", "id": str(item), "name": "foreign"})
    meta = json.dumps({"$traceId": other_trace, "$spanId": other_span})
    with EventStoreDBClient(observed["uri"]) as client:
        client.append_to_stream(
            f"inventoryItem-{item}",
            current_version=StreamState.NO_STREAM,
            events=[
                NewEvent(type="InventoryItemCreated", data=data.encode(), metadata=meta.encode())
            ],
        )
    fold = until(
        lambda: [
            s for s in spans(observed["traces"]) if s["context"]["trace_id"] == f"0x{other_trace}"
        ],
        "the fold of another client's event",
    )
    assert [(s["name"], s["parent_id"]) for s in fold] == [("projections.fold", f"0x{other_span}")]
