"""Benchmark gunicorn's worker models for the web process: a report, never pass/fail.

Decides the default of ``deploy/gunicorn.conf.py`` (WEB_WORKERS, WEB_THREADS; threads > 1
means the gthread worker, else sync). Every configuration runs side by side in one run:

- for each configuration, the app (``gunicorn -c deploy/gunicorn.conf.py app.wsgi:app``) and
  a Falcon hello-world (``bench/hello_app.py``) under the same settings, all started at once
  and left running, so rounds interleave configurations, connection modes and apps;
- load: ``wrk`` GETs one inventory item (``GET /v1/inventory-items/{id}``), once with wrk's
  default keep-alive and once with ``Connection: close`` on every request; median req/s of
  the rounds after an unmeasured warm-up. The baseline is configuration (a) with
  ``Connection: close`` (sync workers, WEB_WORKERS=4: what ``read_bench.py`` measures);
  *app ÷ hello* compares the app with hello-world under the same configuration and mode;
- read-your-writes under load: while wrk loads GETs (keep-alive) on a configuration's app, a
  client in this process, paced, POSTs a create and at once GETs its ``Location`` with the
  202's ``Commit-Position`` (the app waits for the projector), then a plain GET of the bench
  item; it keeps its connection alive when the server lets it. p50/p99 latencies.

As production runs: an API key (read+write) in API_KEYS with REQUIRE_AUTH=true, every request
carries ``Authorization: Bearer <key>`` (hello-world ignores it), LOG_LEVEL=info (one access
line per request). esdblocal (durable) and the projector (``python -m projections``) run in a
temp dir; the item is created through the API and read back once the projector has it.
Every process started here is stopped at the end (SIGTERM, then SIGKILL).

Run: ``python bench/worker_bench.py [--seconds 5] [--rounds 3] [--quick]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    CREATE,
    HOST,
    WRK_SCRIPT,
    Bench,
    Load,
    Ryw,
    RywClient,
    Service,
    children_of,
    cpu_seconds,
    ensure_wrk,
    fmt,
    http_get,
    log,
    machine,
    ms,
    revision,
    round_orders,
    run_wrk,
    wait_http,
)

MODES = {"keep-alive": {}, "close": {"Connection": "close"}}
DEFAULT_CONFIGS = ["4x1", "2x4", "4x2"]  # (a) sync 4 (b) gthread 2 x 4 (c) gthread 4 x 2


@dataclass(frozen=True)
class Config:
    key: str
    workers: int
    threads: int

    @property
    def worker_class(self) -> str:
        return "gthread" if self.threads > 1 else "sync"

    @property
    def label(self) -> str:
        return f"({self.key}) {self.worker_class} {self.workers} x {self.threads}"


@dataclass(frozen=True)
class Server:
    config: Config
    app: str  # "app" or "hello"
    service: Service
    port: int


@dataclass
class Run:
    """One wrk run against one server, with the CPU its master and workers used."""

    load: Load
    busiest_share: float  # the busiest worker's share of the workers' CPU


# ---------------------------------------------------------------------------- processes


def children_cpu(root: int) -> dict[int, float]:
    """CPU seconds of each direct child of ``root`` (a gunicorn master's workers)."""
    return {pid: cpu_seconds(pid) for pid in children_of(root)}


def keeps_alive(port: int, path: str, headers: dict[str, str]) -> bool:
    """Whether the server leaves the connection open after a plain GET."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return not resp.will_close
    finally:
        conn.close()


def measure(
    wrk: str,
    script: Path,
    server: Server,
    path: str,
    headers: dict[str, str],
    seconds: float,
    args: Any,
) -> Run:
    server.service.check_alive()
    master = server.service.pid
    before = children_cpu(master)
    master_before = cpu_seconds(master)
    load = run_wrk(wrk, script, f"http://{HOST}:{server.port}{path}", headers, seconds, args)
    after = children_cpu(master)
    used = {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}
    total = sum(used.values())
    load.server_cpu = total + cpu_seconds(master) - master_before
    return Run(load, max(used.values(), default=0.0) / total if total else math.nan)


# ---------------------------------------------------------------------------- read-your-writes


def read_your_writes(
    wrk: str, script: Path, server: Server, path: str, auth: dict[str, str], args: Any
) -> tuple[Ryw, Run]:
    """The paced client against ``server`` while wrk loads GETs (keep-alive) on it."""
    client = RywClient(server.port, auth, keep_alive=True, check_ins=False)
    errors: list[BaseException] = []

    def paced() -> None:
        try:
            client.run(args.ryw_rate, max(1.0, args.ryw_seconds - 1.0), lambda _: path, "")
        except BaseException as error:  # reported below
            errors.append(error)

    thread = threading.Timer(0.5, paced)  # inside wrk's run, not at its edges
    thread.start()
    try:
        run = measure(wrk, script, server, path, auth, args.ryw_seconds, args)
    finally:
        thread.join(args.ryw_seconds * 10 + 60)
    if errors:
        raise RuntimeError(f"read-your-writes client failed: {errors[0]!r}")
    return client.out, run


# ---------------------------------------------------------------------------- report


def median_rate(runs: list[Run]) -> float:
    return statistics.median(run.load.rate for run in runs)


def machine_lines(args: Any, wrk: str, load_before: tuple[float, ...]) -> list[str]:
    version = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    wrk_name = (version.stdout.splitlines() or ["wrk"])[0].split("Copyright")[0].strip()
    return [
        *machine(load_before),
        f"code: {revision()}",
        f"load: {wrk_name}, {args.wrk_threads} thread(s), {args.connections} connections, the"
        " same for every configuration; its latency excludes the TCP connect",
        f"servers: gunicorn -c deploy/gunicorn.conf.py (keepalive 5 s), LOG_LEVEL={args.log_level},"
        f" READ_WAIT={args.read_wait:g}, API_KEYS with one read+write key and REQUIRE_AUTH=true;"
        " every request carries `Authorization: Bearer <key>`",
    ]


# ---------------------------------------------------------------------------- main


def parse_config(text: str) -> tuple[int, int]:
    try:
        workers, threads = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"WORKERSxTHREADS, e.g. 2x4, not {text!r}") from None
    if workers < 1 or threads < 1:
        raise argparse.ArgumentTypeError("workers and threads must be at least 1")
    return workers, threads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--config",
        action="append",
        type=parse_config,
        metavar="WxT",
        help="WEB_WORKERS x WEB_THREADS, repeatable; the first with Connection: close is the"
        f" baseline (default: {' '.join(DEFAULT_CONFIGS)})",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured run per cell first")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--ryw-rate", type=float, default=30.0, help="writes/s of the client")
    parser.add_argument("--ryw-seconds", type=float, default=15.0, help="per configuration")
    parser.add_argument("--no-ryw", dest="ryw", action="store_false", help="skip it")
    parser.add_argument("--read-wait", type=float, default=2.0, help="READ_WAIT of the app")
    parser.add_argument("--log-level", default="info", help="LOG_LEVEL of the servers")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, no warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.warmup, args.ryw_seconds = 2.0, 1, 0.0, 3.0
    pairs = args.config or [parse_config(text) for text in DEFAULT_CONFIGS]
    args.configs = [Config(chr(ord("a") + i), w, t) for i, (w, t) in enumerate(pairs)]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return Bench.main("worker-bench", lambda bench: run(args, bench))


def run(args: Any, bench: Bench) -> None:
    report, auth = bench.report, bench.auth
    wrk = ensure_wrk("wrk")
    assert wrk is not None
    script = bench.tmp / "summary.lua"
    script.write_text(WRK_SCRIPT)
    uri = bench.esdblocal()
    base_env = bench.stack_env(uri, READ_WAIT=args.read_wait, LOG_LEVEL=args.log_level)
    bench.projector(base_env)
    apps = {"app": "app.wsgi:app", "hello": "hello_app:app"}
    servers: dict[tuple[str, str], Server] = {}
    for config in args.configs:
        for app, target in apps.items():
            web = bench.gunicorn(
                f"web-{config.key}-{app}",
                base_env,
                target,
                WEB_WORKERS=config.workers,
                WEB_THREADS=config.threads,
            )
            servers[(config.key, app)] = Server(config, app, web.service, web.port)
    for server in servers.values():
        wait_http(server.service, server.port, "/healthz")

    # ------------------------------------------------ the item, through the API
    first = servers[(args.configs[0].key, "app")]
    conn = http.client.HTTPConnection(HOST, first.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/v1/inventory-items",
            body=json.dumps({"name": "Bench"}).encode(),
            headers={**auth, "Content-Type": CREATE},
        )
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    if resp.status != 202:
        raise RuntimeError(f"POST /v1/inventory-items answered {resp.status}")
    path = urlsplit(resp.headers["Location"]).path
    position = resp.headers["Commit-Position"]
    status, _, body = http_get(first.port, path, {**auth, "Commit-Position": position})
    if status != 200 or json.loads(body).get("name") != "Bench":
        raise RuntimeError(f"GET {path} with Commit-Position answered {status}: {body[:200]!r}")
    alive: dict[tuple[str, str], bool] = {}
    for (key_, app), server in servers.items():
        status, _, _ = http_get(server.port, path, auth)
        if status != 200:
            raise RuntimeError(f"{server.service.name}: GET {path} answered {status}")
        alive[(key_, app)] = keeps_alive(server.port, path, auth)
    log(f"item {path}; keep-alive honoured: {alive}")

    # ------------------------------------------------ GET item, every cell, interleaved
    cells = [(config, mode) for config in args.configs for mode in MODES]
    if args.warmup > 0:
        for config, mode in cells:
            for app in apps:
                headers = {**auth, **MODES[mode]}
                measure(wrk, script, servers[(config.key, app)], path, headers, args.warmup, args)
    runs: dict[tuple[str, str, str], list[Run]] = {}
    others_cpu, measured_wall = 0.0, 0.0
    app_orders = round_orders(list(apps), args.rounds)
    for round_, order in enumerate(round_orders(cells, args.rounds, rotate=True)):
        order_apps = next(app_orders)
        for config, mode in order:
            for app in order_apps:
                server = servers[(config.key, app)]
                idle = [s.service.pid for s in servers.values() if s is not server]
                idle_before = sum(cpu_seconds(p) + sum(children_cpu(p).values()) for p in idle)
                started = time.perf_counter()
                result = measure(
                    wrk, script, server, path, {**auth, **MODES[mode]}, args.seconds, args
                )
                measured_wall += time.perf_counter() - started
                others_cpu += (
                    sum(cpu_seconds(p) + sum(children_cpu(p).values()) for p in idle) - idle_before
                )
                runs.setdefault((config.key, mode, app), []).append(result)
                log(
                    f"round {round_ + 1} {config.label} {mode} {app}: {result.load.rate:,.0f}"
                    f" req/s, p99 {result.load.p99_ms:.2f} ms, {result.load.errors} errors"
                )

    # ------------------------------------------------ read-your-writes under load
    ryw: dict[str, tuple[Ryw, Run]] = {}
    if args.ryw:
        for config in args.configs:
            log(f"read-your-writes on {config.label}: {args.ryw_rate:g}/s under wrk keep-alive")
            ryw[config.key] = read_your_writes(
                wrk, script, servers[(config.key, "app")], path, auth, args
            )
    for server in servers.values():
        server.service.check_alive()

    # ------------------------------------------------ report
    base = args.configs[0]
    report.add("", "## gunicorn worker models, side by side", "")
    report.add(*(f"- {line}" for line in machine_lines(args, wrk, bench.load_before)))
    report.add(
        "- keep-alive honoured (a plain GET answered without `Connection: close`): "
        + ", ".join(f"{c.label} {'yes' if alive[(c.key, 'app')] else 'no'}" for c in args.configs),
        f"- the servers not under load used {100 * others_cpu / measured_wall:.1f}% of one"
        " core in all during the measured runs"
        if measured_wall
        else "",
        "",
        f"### GET one item: median of {args.rounds} round(s) of {args.seconds:g} s"
        f" (after a {args.warmup:g} s warm-up per cell)",
        "",
    )
    base_app = median_rate(runs[(base.key, "close", "app")])
    base_hello = median_rate(runs[(base.key, "close", "hello")])
    rows = []
    for config, mode in cells:
        mine = runs[(config.key, mode, "app")]
        hello = runs[(config.key, mode, "hello")]
        app_rate, hello_rate = median_rate(mine), median_rate(hello)
        rows.append(
            [
                config.label,
                mode,
                fmt(app_rate),
                f"{app_rate / base_app:.2f}",
                fmt(hello_rate),
                f"{hello_rate / base_hello:.2f}",
                f"{app_rate / hello_rate:.2f}",
                fmt(statistics.median(r.load.p50_ms for r in mine), 2),
                fmt(statistics.median(r.load.p99_ms for r in mine), 2),
                fmt(statistics.median(r.load.cpu_ms_per_request for r in mine), 3),
                fmt(statistics.median(r.busiest_share for r in mine) * 100),
                str(sum(r.load.errors for r in mine + hello)),
                " ".join(f"{r.load.rate:,.0f} ({100 * r.busiest_share:.0f}%)" for r in mine),
                " ".join(f"{r.load.rate:,.0f} ({100 * r.busiest_share:.0f}%)" for r in hello),
            ]
        )
    header = "config|connection|app req/s|app ÷ baseline|hello req/s|hello ÷ its baseline"
    header += "|app ÷ hello|app p50 ms|app p99 ms|app CPU ms/req|busiest worker % of CPU|errors"
    header += "|app req/s per round (busiest worker %)|hello req/s per round (busiest worker %)"
    report.table(header, rows, text=(1, 12, 13))
    report.add(
        f"baseline: {base.label} with `Connection: close` (app {fmt(base_app)} req/s, hello"
        f" {fmt(base_hello)} req/s). keep-alive = wrk's default (HTTP/1.1, no Connection"
        " header); sync workers close every connection anyway, so wrk reconnects there too."
        " app ÷ hello: the same configuration and mode. CPU ms/req: gunicorn master and"
        " workers ÷ requests. busiest worker: its share of the workers' CPU in the run (even:"
        " 25% of 4, 50% of 2; 100%: one worker served every connection).",
        "",
    )
    if ryw:
        report.add(
            f"### Read-your-writes under load: one client, {args.ryw_rate:g} creates/s paced,"
            f" while wrk GETs the item (keep-alive, {args.connections} connections), "
            f"{args.ryw_seconds:g} s per configuration",
            "",
        )
        rows = []
        for config in args.configs:
            result, load = ryw[config.key]
            others = {s: n for s, n in result.statuses.items() if s != 200}
            rows.append(
                [
                    config.label,
                    f"{len(result.writes):,}",
                    f"{len(result.writes) / result.seconds if result.seconds else 0:.0f}",
                    *(
                        fmt(ms(values, p), 2)
                        for values in (result.writes, result.visible, result.plain)
                        for p in (50, 99)
                    ),
                    fmt(load.load.rate),
                    fmt(100 * load.busiest_share),
                    ", ".join(f"{s}: {n}" for s, n in sorted(others.items())) or "none",
                    str(result.write_errors),
                    str(result.reconnects),
                ]
            )
        header = "config|writes|writes/s|POST→202 p50 ms|p99|202→GET 200 p50 ms|p99"
        header += "|plain GET p50 ms|p99|wrk GET req/s meanwhile|busiest worker %"
        report.table(header + "|GET after write not 200|failed writes|reconnects", rows, (11,))
        report.add(
            "202→GET 200: from reading the 202 to reading the 200 of the GET that carried its"
            " Commit-Position (the app waits up to READ_WAIT for the projector). Latencies"
            " include a TCP connect wherever the server closed the client's connection (sync).",
            "",
        )


if __name__ == "__main__":
    sys.exit(main())
