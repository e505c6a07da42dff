"""The cost of telemetry: GET item and commands, with metrics and tracing off, then on.

Starts the whole stack (esdblocal, projector, gunicorn with 2 workers) three times: metrics
and tracing off; metrics on; metrics and tracing on (file exporter, every span sampled). One
keep-alive client times ``--requests`` GETs of one item and as many check-in commands, and
prints each configuration's median and its ratio to the first, side by side.

    .venv/bin/python bench/telemetry_bench.py --requests 300
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.conftest import free_port, whole_stack

CREATE = "application/json; domain-model=CreateInventoryItemCommand"
CHECK_IN = "application/json; domain-model=CheckInItemsToInventoryCommand"


def timed(port: int, n: int) -> tuple[float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(
        method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, str]]:
        conn.request(method, path, body=body, headers=headers)
        reply = conn.getresponse()
        reply.read()
        if reply.getheader("Connection", "").lower() == "close":
            conn.close()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}

    status, headers = call(
        "POST", "/v1/inventory-items", b'{"name":"bench"}', **{"Content-Type": CREATE}
    )
    item = "/" + headers["location"].split("/", 3)[3]
    call("GET", item, **{"Commit-Position": headers["commit-position"]})
    gets, commands = [], []
    for _ in range(n):
        started = time.perf_counter()
        call("GET", item)
        gets.append(time.perf_counter() - started)
        started = time.perf_counter()
        status, _ = call("POST", item, b'{"count":1}', **{"Content-Type": CHECK_IN})
        commands.append(time.perf_counter() - started)
        assert status == 202, status
    return statistics.median(gets) * 1000, statistics.median(commands) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    configurations = {
        "off": {"METRICS_PORT": "off", "PROJECTOR_METRICS_PORT": "off"},
        "metrics": {"METRICS_PORT": str(free_port()), "PROJECTOR_METRICS_PORT": "off"},
        "metrics+traces": {
            "METRICS_PORT": str(free_port()),
            "PROJECTOR_METRICS_PORT": "off",
            "OTEL_TRACES_EXPORTER": "file",
        },
    }
    results = {}
    for name, extra in configurations.items():
        with tempfile.TemporaryDirectory() as tmp:
            if "OTEL_TRACES_EXPORTER" in extra:
                extra["OTEL_EXPORTER_FILE_PATH"] = str(Path(tmp) / "traces.jsonl")
            with whole_stack(Path(tmp), WEB_THREADS="2", **extra) as (port, _, _p):
                timed(port, 20)  # warm
                results[name] = timed(port, args.requests)
    base_get, base_cmd = results["off"]
    print(json.dumps({"requests": args.requests}))
    print(f"{'configuration':16} {'GET item ms':>12} {'ratio':>6} {'command ms':>11} {'ratio':>6}")
    for name, (get, cmd) in results.items():
        print(f"{name:16} {get:12.3f} {get / base_get:6.2f} {cmd:11.3f} {cmd / base_cmd:6.2f}")


if __name__ == "__main__":
    main()
