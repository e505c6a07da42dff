"""gzip or not: bytes on the wire and requests/s for the same URLs, side by side.

The stack (esdblocal, the projector, gunicorn with ``deploy/gunicorn.conf.py``) is started on
this machine and seeded with ``--items`` inventory items through the API. Each URL is then
loaded twice, back to back for ``--rounds`` rounds (the order alternates): without
``Accept-Encoding`` (identity) and with ``Accept-Encoding: gzip``. The report gives the
bytes of each representation, and the medians of requests/s and of the web's CPU per
request (master and workers). The load generator is processes of http.client (as in
``read_bench.py``); it runs on the same cores as the server, so the figures compare the two
codings with each other, not with other machines.

Run: ``python bench/compression_bench.py [--items 300] [--seconds 4] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    CREATE,
    HOST,
    STOP_TIMEOUT_S,
    Report,
    Service,
    bench_env,
    fmt,
    free_port,
    http_get,
    log,
    machine,
    run_python_load,
    start_esdblocal,
    tree_cpu_seconds,
    wait_http,
)

URLS = [
    ("/v1/openapi.json", "the OpenAPI document"),
    ("/v1/inventory-items?limit=100", "a list page of 100"),
    ("/v1/inventory-items", "a list page of 10 (the default)"),
    ("{item}", "one item"),
]


def seed(port: int, items: int, auth: dict[str, str]) -> tuple[str, str]:
    """``items`` items through the API; the path of the last and its commit position."""
    path, position = "", "0"
    for number in range(items):
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        body = json.dumps({"name": f"Compressible widget number {number}"})
        connection.request(
            "POST", "/v1/inventory-items", body=body, headers={"Content-Type": CREATE, **auth}
        )
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 202, response.status
        path = "/" + (response.getheader("Location") or "").split("/", 3)[3]
        position = response.getheader("Commit-Position") or position
    return path, position


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-auth", dest="auth", action="store_false")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    services: list[Service] = []
    report = Report()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="compression-bench-") as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "data"
        try:
            env, auth = bench_env(args.auth)
            uri = start_esdblocal(data, tmp, env, services)
            port = free_port()
            web_env = {
                **env,
                "ESDB_URI": uri,
                "DATA_DIR": str(data),
                "WEB_WORKERS": str(args.workers),
                "HOST": HOST,
                "PORT": str(port),
            }
            services.append(
                Service("projector", [sys.executable, "-m", "projections"], tmp, web_env)
            )
            web = Service(
                "web",
                [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "app.wsgi:app"],
                tmp,
                web_env,
            )
            services.append(web)
            wait_http(web, port, "/healthz")
            log(f"seeding {args.items} items")
            item, position = seed(port, args.items, auth)
            assert http_get(port, item, {**auth, "Commit-Position": position})[0] == 200
            run(args, port, web, item, auth, report)
        finally:
            for service in reversed(services):
                service.stop()
            for child in mp.active_children():
                child.terminate()
                child.join(STOP_TIMEOUT_S)
    print("\n".join([*machine(load_before), "", *report.lines]), flush=True)
    return 0


def run(
    args: Any, port: int, web: Service, item: str, auth: dict[str, str], report: Report
) -> None:
    rows = []
    for template, what in URLS:
        path = template.format(item=item)
        _, _, identity = http_get(port, path, auth)
        _, headers, coded = http_get(port, path, {**auth, "Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(coded) == identity
        rates: dict[str, list[float]] = {"identity": [], "gzip": []}
        cpu: dict[str, list[float]] = {"identity": [], "gzip": []}
        for round_ in range(args.rounds):
            order = ["identity", "gzip"] if round_ % 2 == 0 else ["gzip", "identity"]
            for coding in order:
                extra = {"Accept-Encoding": "gzip"} if coding == "gzip" else {}
                before = tree_cpu_seconds(web.pid)
                load = run_python_load(port, path, {**auth, **extra}, args.seconds, args)
                used = tree_cpu_seconds(web.pid) - before
                assert load.errors == 0, f"{load.errors} errors on {path}"
                rates[coding].append(load.rate)
                cpu[coding].append(1000 * used / load.requests)
                log(f"{path} {coding}: {load.rate:.0f} req/s")
                time.sleep(0.5)
        identity_rate = statistics.median(rates["identity"])
        gzip_rate = statistics.median(rates["gzip"])
        rows.append(
            [
                f"{what} (`{template}`)",
                fmt(len(identity)),
                fmt(len(coded)),
                f"{len(coded) / len(identity):.0%}",
                fmt(identity_rate),
                fmt(gzip_rate),
                f"{gzip_rate / identity_rate:.2f}",
                f"{statistics.median(cpu['identity']):.2f} / {statistics.median(cpu['gzip']):.2f}",
            ]
        )
    report.add(
        f"{args.connections} client processes, {args.seconds:g} s a run, {args.rounds} rounds"
        f" (medians), WEB_WORKERS={args.workers}, {args.items} items",
        "",
    )
    report.table(
        [
            "URL",
            "identity bytes",
            "gzip bytes",
            "gzip / identity",
            "identity req/s",
            "gzip req/s",
            "ratio",
            "web CPU ms/req identity / gzip",
        ],
        rows,
        text=(7,),
    )


if __name__ == "__main__":
    sys.exit(main())
