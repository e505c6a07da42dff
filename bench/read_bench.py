"""Benchmark the read side against baselines measured in the same run: a report, never pass/fail.

1. Projector catch-up. esdblocal (durable, a temp dir) is seeded with N inventory items, one
   ``InventoryItemCreated`` per ``inventoryItem-<uuid>`` stream, written through multiplexed
   ``BatchAppend`` calls (one gRPC call per seeding process, one request per stream). The
   projector (``python -m projections``) then catches up from nothing; its events/s (from
   its own "caught up; live" log line) is compared with esdbclient's raw ``read_all()`` over
   the same store with the projector's filter (``(inventoryItem|car)-.*`` on stream names),
   and with a raw ``subscribe_to_all()`` to caught-up (what the projector's feed does).
2. HTTP reads. The app (``gunicorn -c deploy/gunicorn.conf.py app.wsgi:app``) and a Falcon
   hello-world (``bench/hello_app.py``, same config, same WEB_WORKERS) run side by side;
   each scenario is loaded against hello-world and the app back to back, for several rounds
   (the order alternates), and the medians are compared: GET item (200), conditional GET
   item with the matching ``If-None-Match`` (304), list pages at offset 0 and 100,000.
   The load generator is ``wrk`` when present (as root it is installed with apt-get when
   missing), else processes of http.client in this file. gunicorn's sync workers answer
   ``Connection: close``, so every request pays a TCP connect, in both apps alike. As in
   production the app has an API key and REQUIRE_AUTH=true, and every request carries
   the key (``--no-auth``: the API runs open); LOG_LEVEL=info keeps its access log on.
3. Read-your-writes. Paced writes (create, or check-in to the item just created), each
   followed at once by a GET of its Location with the 202's ``Commit-Position``: how long
   from the 202 to the GET's 200, against a plain GET of a seeded item in the same loop.
4. In-process cost. Both WSGI callables are called directly (no server, no TCP), the same
   requests, to show what the app itself costs per request; ``--profile`` adds a cProfile
   of the app's GET item.

Everything runs on this machine: servers, projector and load generator share its cores (the
report says how many, and the CPU the web workers used per request).

Run: ``python bench/read_bench.py [--items 101000] [--seconds 8] [--rounds 5] [--quick]``.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import json
import logging
import math
import multiprocessing as mp
import os
import pstats
import statistics
import sys
import time
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    FLOOR,
    FLOOR_SCENARIOS,
    HOST,
    LIST_LIMIT,
    PROJECT_ROOT,
    STOP_TIMEOUT_S,
    Bench,
    Load,
    LoadGenerator,
    Report,
    Ryw,
    RywClient,
    Scenario,
    Target,
    caught_up,
    cpu_seconds,
    fmt,
    http_get,
    item_id,
    log,
    machine_lines,
    ms,
    raw_read_all,
    raw_subscription,
    seed,
    wait_until,
)

sys.path.insert(0, str(PROJECT_ROOT))

READ_PASSES = 2
TARGETS = {  # issue 13's
    "projector": ("≥ 0.7 of raw read_all", 0.70),
    "get-item": ("≥ 0.75 of hello-world", 0.75),
    "get-304": ("≥ 0.9 of hello-world", 0.90),
    "list-0": ("≥ 0.6 of hello-world", 0.60),
    "list-deep": ("≥ 0.6 of hello-world", 0.60),
}
RYW_TARGET_P99_MS = 50.0


# ---------------------------------------------------------------------------- read-your-writes


def ryw_worker(
    port: int,
    rate: float,
    seconds: float,
    start_at: float,
    client: int,
    seeded: int,
    auth: dict[str, str],
    results: Queue[Ryw],
) -> None:
    """Paced writes (creates and check-ins), a new connection per request; the plain GET is
    of a seeded item."""
    wait_until(start_at)

    def plain(tick: int) -> str:
        return f"/v1/inventory-items/{item_id((client * 7919 + tick) % seeded)}"

    results.put(RywClient(port, auth, False, True).run(rate, seconds, plain, str(client)))


def read_your_writes(port: int, args: Any, auth: dict[str, str]) -> Ryw:
    ctx = mp.get_context("spawn")
    results: Queue[Ryw] = ctx.Queue()
    start_at = time.time() + 1.0
    rate = args.ryw_rate / args.ryw_clients
    workers = [
        ctx.Process(
            target=ryw_worker,
            args=(port, rate, args.ryw_seconds, start_at, client, args.items, auth, results),
        )
        for client in range(args.ryw_clients)
    ]
    for worker in workers:
        worker.start()
    total = Ryw()
    for _ in workers:
        total.add(results.get(timeout=args.ryw_seconds * 10 + 120))
    for worker in workers:
        worker.join(STOP_TIMEOUT_S)
    return total


# ---------------------------------------------------------------------------- in-process


def wsgi_apps(env: dict[str, str], tmp: Path, args: Any) -> dict[str, Any]:
    """Both WSGI callables in this process: the app as a worker builds it, and hello-world."""
    handler = logging.FileHandler(tmp / "in-process-access.log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]  # the access log line per request stays in the measurement
    root.setLevel(args.log_level.upper())
    from app.api import create_app
    from app.settings import Settings

    def module(name: str) -> Any:
        spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / f"bench/{name}.py")
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded

    return {
        "hello-world": module("hello_app").app,
        FLOOR: module("floor_app").create(env),
        "app": create_app(Settings.from_env(env)),
    }


def wsgi_call(app: Any, environ: dict[str, Any]) -> int:
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(line)

    body = app(dict(environ), start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return int(status[0].split()[0])


def environ_for(scenario: Scenario, port: int) -> dict[str, Any]:
    from falcon import testing

    path, _, query = scenario.path.partition("?")
    return testing.create_environ(
        path=path, query_string=query, headers=scenario.headers, host=HOST, port=str(port)
    )


def in_process_costs(
    apps: dict[str, Any], scenarios: list[Scenario], calls: int, port: int
) -> dict[str, dict[str, float]]:
    """Microseconds per WSGI call, best of three batches, per scenario and app."""
    costs: dict[str, dict[str, float]] = {}
    for scenario in scenarios:
        environ = environ_for(scenario, port)
        costs[scenario.key] = {}
        for label, app in apps.items():
            for _ in range(min(200, calls)):  # warm: connections, caches
                wsgi_call(app, environ)
            best = math.inf
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(calls):
                    wsgi_call(app, environ)
                best = min(best, (time.perf_counter() - started) / calls)
            costs[scenario.key][label] = best * 1e6
    return costs


def profile_item(app: Any, scenario: Scenario, calls: int, port: int) -> str:
    environ = environ_for(scenario, port)
    for _ in range(min(200, calls)):
        wsgi_call(app, environ)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        wsgi_call(app, environ)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(18)
    stats.sort_stats("cumulative").print_stats(30)
    return out.getvalue()


# ---------------------------------------------------------------------------- report


def floor_report(
    report: Report, scenarios: list[Scenario], loads: dict[tuple[str, str], list[Load]]
) -> None:
    """What the production settings cost with no store at all: the floor (hello-world behind
    the app's middleware, answering the item's validators and 304) against hello-world, and
    the app against the floor (the share its read path costs)."""
    report.add(
        "### The production settings alone: hello-world behind the app's middleware",
        "",
        "`floor_app.py`: the app's `RequestContext` (request id, access line) and"
        " `Authentication` (API key) in front of a hello-world that answers the item with the"
        " app's validators (`ETag`, `Cache-Control`, `Vary`) and a 304 for the same"
        " `If-None-Match`; no store, no negotiation, no links. Loaded in the same rounds as"
        " the other two, order alternating.",
        "",
    )
    rows = []
    for scenario in scenarios:
        if scenario.key not in FLOOR_SCENARIOS:
            continue
        hello, floor, mine = (
            statistics.median(load.rate for load in loads[(scenario.key, label)])
            for label in ("hello-world", FLOOR, "app")
        )
        floor_cpu, app_cpu = (
            statistics.median(load.cpu_ms_per_request for load in loads[(scenario.key, label)])
            for label in (FLOOR, "app")
        )
        rows.append(
            [
                scenario.label,
                fmt(hello),
                fmt(floor),
                fmt(mine),
                f"{floor / hello:.2f}",
                f"{mine / floor:.2f}",
                fmt(floor_cpu, 3),
                fmt(app_cpu, 3),
            ]
        )
    report.table(
        "scenario|hello req/s|floor req/s|app req/s|"
        "floor ÷ hello|app ÷ floor|floor CPU ms/req|app CPU ms/req",
        rows,
    )


def verdict(ratio: float, key: str) -> str:
    target = TARGETS.get(key)
    if target is None or math.isnan(ratio):
        return "—"
    return f"{target[0]}: {met(ratio, key)}"


def met(ratio: float, key: str) -> str:
    return "met" if ratio >= TARGETS[key][1] else "not met"


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--items", type=int, default=101_000, help="inventory items to seed")
    parser.add_argument("--seed-processes", type=int, default=2, help="seeding processes")
    parser.add_argument("--seconds", type=float, default=8.0, help="per load run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured run first")
    parser.add_argument("--rounds", type=int, default=5, help="hello/app pairs per scenario")
    parser.add_argument("--workers", type=int, default=2 * cores, help="WEB_WORKERS (both)")
    parser.add_argument("--connections", type=int, default=0, help="default 2 x workers")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--offset", type=int, default=100_000, help="the deep list page")
    parser.add_argument("--ryw-rate", type=float, default=100.0, help="writes/s, all clients")
    parser.add_argument("--ryw-seconds", type=float, default=10.0)
    parser.add_argument("--ryw-clients", type=int, default=2, help="paced client processes")
    parser.add_argument("--read-wait", type=float, default=2.0, help="READ_WAIT of the app")
    parser.add_argument(
        "--log-level", default="info", help="LOG_LEVEL of both web servers (info: access log on)"
    )
    parser.add_argument(
        "--auth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="an API key, REQUIRE_AUTH=true, and the key on every request (both apps)",
    )
    parser.add_argument("--calls", type=int, default=5000, help="in-process WSGI calls")
    parser.add_argument("--profile", action="store_true", help="cProfile the app's GET item")
    parser.add_argument("--quick", action="store_true", help="tiny numbers: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.seconds, args.warmup, args.rounds = 3_000, 2.0, 0.5, 1
        args.ryw_seconds, args.calls = 3.0, 500
    args.connections = args.connections or 2 * args.workers
    args.offset = min(args.offset, max(0, args.items - LIST_LIMIT))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body(bench: Bench) -> None:
        bench.cleanups.append(stop_children)
        run(args, bench)

    return Bench.main("read-bench", body, auth=args.auth)


def stop_children() -> None:
    for child in mp.active_children():
        child.terminate()
        child.join(STOP_TIMEOUT_S)


def run(args: Any, bench: Bench) -> None:
    report, auth, tmp = bench.report, bench.auth, bench.tmp
    uri = bench.esdblocal()

    # ------------------------------------------------ 1. seed, then catch up three ways
    log(f"seeding {args.items:,} items with {args.seed_processes} process(es)")
    seeded = seed(uri, args.items, args.seed_processes)
    log(f"seeded {seeded['items']:,} in {seeded['seconds']:.1f} s ({seeded['failures']} failed)")
    reads = []
    for attempt in range(READ_PASSES):
        count, elapsed = raw_read_all(uri)
        reads.append((count / elapsed, count, elapsed))
        log(f"raw read_all pass {attempt + 1}: {count:,} events in {elapsed:.2f} s")
    read_rate, read_count, read_seconds = max(reads)
    sub_count, sub_seconds = raw_subscription(uri)
    log(f"raw subscribe_to_all: {sub_count:,} events in {sub_seconds:.2f} s")

    base_env = bench.stack_env(
        uri, READ_WAIT=args.read_wait, LOG_LEVEL=args.log_level, WEB_WORKERS=args.workers
    )
    projector = bench.projector(base_env, "--esdb-uri", uri, "--data-dir", str(bench.data))
    timeout = 120 + args.items / 500
    line = projector.wait_for_line(projector.stderr_path, caught_up, timeout)
    wall = time.perf_counter() - projector.started
    live = json.loads(line)
    projector_rate = float(live.get("eventsPerSecond") or 0)
    projector_cpu = cpu_seconds(projector.pid)
    log(f"projector caught up: {line}")

    # ------------------------------------------------ 2. two web servers
    app_web = bench.gunicorn("web-app", base_env)
    hello_web = bench.gunicorn("web-hello", base_env, "hello_app:app")
    bench.wait(app_web, hello_web)
    app_port, app_service = app_web.port, app_web.service
    targets = [
        Target("hello-world", hello_web.service, hello_web.port),
        Target("app", app_service, app_port),
    ]

    item = item_id(args.items // 2)
    item_path = f"/v1/inventory-items/{item}"
    status, headers, _ = http_get(app_port, item_path, auth)
    if status != 200:
        raise RuntimeError(f"GET {item_path} answered {status}")
    etag = headers["ETag"]
    floor_web = bench.gunicorn(
        "web-floor", base_env, "floor_app:create()", FLOOR_ETAG=etag.strip('"')
    )
    bench.wait(floor_web)
    floor_port = floor_web.port
    floor = Target(FLOOR, floor_web.service, floor_port)
    list_path = "/v1/inventory-items?offset={}&limit=" + str(LIST_LIMIT)
    scenarios = [
        Scenario("get-item", "GET item (200)", item_path, auth, 200),
        Scenario(
            "get-304",
            "GET item, If-None-Match (304)",
            item_path,
            {**auth, "If-None-Match": etag},
            304,
        ),
        Scenario("list-0", "list offset 0", list_path.format(0), auth, 200),
        Scenario(
            "list-deep", f"list offset {args.offset:,}", list_path.format(args.offset), auth, 200
        ),
    ]
    for scenario in scenarios:
        status, _, body = http_get(app_port, scenario.path, scenario.headers)
        if status != scenario.status:
            raise RuntimeError(
                f"{scenario.label}: the app answered {status}, not {scenario.status}"
            )
        if scenario.key in FLOOR_SCENARIOS:
            status, _, _ = http_get(floor_port, scenario.path, scenario.headers)
            if status != scenario.status:
                raise RuntimeError(f"{scenario.label}: the floor answered {status}")
        if scenario.key.startswith("list"):
            page = json.loads(body)
            if len(page["items"]) != LIST_LIMIT or page["offset"] != int(
                scenario.path.split("offset=")[1].split("&")[0]
            ):
                raise RuntimeError(f"{scenario.label}: unexpected page {page}")

    generator = LoadGenerator(args, tmp)
    log(f"load generator: {generator.describe()}")
    loads: dict[tuple[str, str], list[Load]] = {}
    for scenario in scenarios:
        loaded = [*targets, floor] if scenario.key in FLOOR_SCENARIOS else targets
        for label, got in generator.rounds(loaded, scenario, args).items():
            loads[(scenario.key, label)] = got

    # ------------------------------------------------ 3. read-your-writes
    log(f"read-your-writes: {args.ryw_rate:g} writes/s for {args.ryw_seconds:g} s")
    ryw = read_your_writes(app_port, args, auth)
    app_service.check_alive()

    # ------------------------------------------------ 4. in-process
    log("in-process WSGI calls")
    apps = wsgi_apps({**base_env, "PORT": str(app_port), "FLOOR_ETAG": etag.strip('"')}, tmp, args)
    costs = in_process_costs(apps, scenarios, args.calls, app_port)
    profile = (
        profile_item(apps["app"], scenarios[0], args.calls * 2, app_port) if args.profile else ""
    )

    # ------------------------------------------------ report
    report.add("", "## Read side vs baselines measured in the same run", "")
    report.add(
        *(f"- {line}" for line in machine_lines(args, generator.describe(), bench.load_before))
    )
    report.add(
        f"- seeded: {seeded['items']:,} items (one InventoryItemCreated per stream) in"
        f" {seeded['seconds']:.1f} s = {seeded['rate']:,.0f} streams/s ({seeded['how']},"
        f" {seeded['processes']} process(es), {seeded['failures']} failed)",
        "",
        "### Projector catch-up",
        "",
    )

    def reader(label: str, events: int, seconds: float, note: str) -> list[str]:
        rate = events / seconds if seconds else math.nan
        return [label, f"{events:,}", f"{seconds:.2f}", fmt(rate), f"{rate / read_rate:.2f}", note]

    caught, ratio = live.get("events", 0), projector_rate / read_rate
    projector = reader("projector (its `caught up; live` line)", caught, live.get("seconds", 0), "")
    projector[3:] = [fmt(projector_rate), f"{ratio:.2f}", verdict(ratio, "projector")]
    raw, sub = "raw `read_all()`, filtered (faster of 2 passes)", "what the projector's feed reads"
    cpu = f"projector CPU {projector_cpu:.1f} s"
    rows = [
        reader(raw, read_count, read_seconds, "baseline"),
        reader("raw `subscribe_to_all()` to caught-up, filtered", sub_count, sub_seconds, sub),
        projector,
        reader("projector, wall from process start", caught, wall, cpu),
    ]
    report.table("reader|events|seconds|events/s|ratio|note", rows, text=(5,))

    report.add(
        f"### HTTP reads: median of {args.rounds} round(s) of {args.seconds:g} s each,"
        " hello-world and the app back to back",
        "",
    )
    rows = []
    for scenario in scenarios:
        hello = loads[(scenario.key, "hello-world")]
        mine = loads[(scenario.key, "app")]
        hello_rate = statistics.median(load.rate for load in hello)
        app_rate = statistics.median(load.rate for load in mine)
        ratio = app_rate / hello_rate if hello_rate else math.nan
        hello_cpu = statistics.median(load.cpu_ms_per_request for load in hello)
        app_cpu = statistics.median(load.cpu_ms_per_request for load in mine)
        per_round = " ".join(f"{a.rate / h.rate:.2f}" for h, a in zip(hello, mine, strict=True))
        med = statistics.median
        cells = [fmt(hello_rate), fmt(app_rate), f"{ratio:.2f}", verdict(ratio, scenario.key)]
        cells += [fmt(med(x.p99_ms for x in hello), 2), fmt(med(x.p99_ms for x in mine), 2)]
        cells += [fmt(hello_cpu, 3), fmt(app_cpu, 3), f"{hello_cpu / app_cpu:.2f}"]
        rows.append([scenario.label, *cells, str(sum(x.errors for x in hello + mine)), per_round])
    header = "scenario|hello req/s|app req/s|ratio|target|hello p99 ms|app p99 ms"
    header += "|hello CPU ms/req|app CPU ms/req|CPU ratio|errors|ratio per round"
    report.table(header, rows, text=(4, 11))
    report.add(
        "ratio = app req/s ÷ hello-world req/s (hello-world answers every scenario with its"
        " small 200). CPU ms/req = CPU of the gunicorn master and workers during the run ÷"
        " requests; CPU ratio = hello CPU/req ÷ app CPU/req, the rate ratio the servers would"
        " show if the load generator did not share the cores.",
        "",
    )
    floor_report(report, scenarios, loads)
    report.add(
        f"### In-process: one WSGI call, no server, no TCP (best of 3 x {args.calls:,} calls)",
        "",
    )
    rows = []
    for scenario in scenarios:
        hello_us, app_us = costs[scenario.key]["hello-world"], costs[scenario.key]["app"]
        floor_us = costs[scenario.key][FLOOR]
        figures = [fmt(us, 1) for us in (hello_us, floor_us, app_us)]
        rows.append([scenario.label, *figures, f"{hello_us / app_us:.2f}"])
        rows[-1].append(f"{floor_us / app_us:.2f}")
    header = "scenario|hello µs/call|floor µs/call|app µs/call|hello ÷ app (a rate ratio)"
    report.table(header + "|floor ÷ app", rows)
    report.add(
        "floor: hello-world behind the app's middleware (API key, request id, access line),"
        " answering the item's validators and 304 (`floor_app.py`); no store."
    )

    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(ryw.statuses.items()))
    writes = len(ryw.writes)
    report.add(
        f"### Read-your-writes: {writes:,} writes in {ryw.seconds:.1f} s"
        f" ({writes / ryw.seconds if ryw.seconds else 0:,.0f}/s achieved, {args.ryw_clients}"
        f" paced client(s), creates and check-ins alternating)",
        "",
    )
    rows = []
    plain50, plain99 = ms(ryw.plain, 50), ms(ryw.plain, 99)
    for label, values, note in (
        ("write: POST → 202", ryw.writes, "—"),
        ("202 arrived → GET with Commit-Position answered 200", ryw.visible, "target p99 < 50 ms"),
        ("that GET's own latency", ryw.gets, "—"),
        ("plain GET of a seeded item (baseline)", ryw.plain, "baseline"),
    ):
        p50, p99 = ms(values, 50), ms(values, 99)
        if values is ryw.visible:
            note = f"{note}: {'met' if p99 < RYW_TARGET_P99_MS else 'not met'}"
        rows.append(
            [
                label,
                f"{len(values):,}",
                fmt(p50, 2),
                fmt(p99, 2),
                fmt(max(values, default=math.nan) * 1000, 2),
                f"{p50 / plain50:.2f}" if values is not ryw.plain else "1.00",
                f"{p99 / plain99:.2f}" if values is not ryw.plain else "1.00",
                note,
            ]
        )
    report.table(
        "measure|n|p50 ms|p99 ms|max ms|p50 ÷ plain|p99 ÷ plain|note",
        rows,
        text=(7,),
    )
    report.add(
        f"GET statuses after a write: {statuses or 'none'}; 503 (read model behind after"
        f" READ_WAIT): {ryw.statuses.get(503, 0)}; stale 200s (count not yet showing the"
        f" write): {ryw.stale}; failed writes: {ryw.write_errors}.",
    )
    if profile:
        report.add(
            "",
            f"### cProfile: the app's GET item, in-process, {args.calls * 2:,} calls",
            "",
            "```",
            profile.strip(),
            "```",
        )
    for service in bench.services:
        if service.name.startswith("web") or service.proc.poll() not in (None, 0, -15):
            tail = [
                line
                for line in service.stderr_tail().splitlines()
                if not line.startswith('{"requestId"')
            ]
            if any("Traceback" in line or "ERROR" in line for line in tail):
                report.add("", f"{service.name} stderr tail:", "```", *tail, "```")


if __name__ == "__main__":
    sys.exit(main())
