"""Commands through the API against raw appends, side by side: a report, never pass/fail.

The command row of issue 13's table, on ``make run``'s stack with production settings
(LOG_LEVEL=info: one access line per request; an API key with REQUIRE_AUTH=true, carried by
every request; the projector running; esdblocal durable, in a temp dir):

- **POST check-in** (``domain-model=CheckInItemsToInventoryCommand``, count 1) through
  ``gunicorn -c deploy/gunicorn.conf.py app.wsgi:app`` (sync workers, WEB_WORKERS default):
  8 closed-loop clients, each on its own item (created through the API first), a new
  connection per request (sync workers close each one); commands/s, p50, p99 (the latency
  includes the TCP connect).
- **Keep-alive**: the same POSTs against the same app under gthread workers (WEB_THREADS 2
  and 4 by default), the clients keeping their ``http.client`` connection alive.
- **Baseline**: raw esdbclient single-event appends, each client to its own
  ``inventoryItem-<uuid>`` stream (created first, so the projector folds these events as it
  folds the API's), with the expected version the client tracks, the same event data and
  metadata size as the API writes, same store, same concurrency. Both shapes run: 8
  processes of one client each, and 8 threads of one client each in one process; the faster
  (median) is the baseline, the other is shown.
- **Cold worker**: one check-in on a 10,000-event stream by a fresh worker (a gunicorn with
  one sync worker, reloaded with SIGHUP before each command; its first request is a
  ``/healthz``, which loads no aggregate) against a check-in on a fresh stream (one event)
  by a fresh worker, alternating. Also shown: the same command right after, by the now warm
  worker.

Load comes from processes of this script (spawned, so no gRPC state crosses a fork), one per
client, each working in a closed loop for the same wall-clock window. Rounds alternate the
order of the paths (forward, then backward); the table gives medians of the rounds.

Run: ``python bench/command_bench.py [--quick] [--rounds 5] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import http.client
import math
import signal
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    CHECK_IN,
    CHECK_IN_BODY,
    CREATE,
    HOST,
    RAW_METADATA,
    Bench,
    Clients,
    Lane,
    RawWriter,
    Report,
    Sample,
    Service,
    Web,
    Window,
    children_of,
    client_lane,
    fmt,
    http_get,
    log,
    median,
    paired_rounds,
    ratios,
    send,
    tree_cpu_seconds,
)

COMMAND_TARGET = 0.6  # API commands/s over raw appends/s, at least
COLD_TARGET = 3.0  # cold command on a long stream over one on a fresh stream, at most


def raw_threads(clients: list[RawWriter], start: float, end: float) -> list[Sample]:
    """The same raw writers as threads of this one process."""
    out: list[Sample] = [Sample() for _ in clients]
    cpu = time.process_time()

    def one(index: int) -> None:
        out[index] = clients[index].run(start, end)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sample in out:
        sample.cpu = 0.0
    out[0].cpu = time.process_time() - cpu  # the whole process, once
    return out


@dataclass(frozen=True)
class CommandPath:
    key: str
    label: str
    kind: str  # "api" | "raw-processes" | "raw-threads"
    port: int = 0
    keep_alive: bool = False
    pid: int = 0  # the path's gunicorn


# ---------------------------------------------------------------------------- cold worker


def fresh_worker(server: Service, port: int) -> None:
    """Reload the one-worker gunicorn (SIGHUP) and wait until the new worker answers
    ``/healthz`` (no aggregate loaded): the next command meets an empty cache."""
    old = children_of(server.pid)
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server.check_alive()
        now = children_of(server.pid)
        if now and not (now & old):
            try:
                if http_get(port, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("the reloaded worker did not come up")


def timed_post(port: int, path: str, auth: dict[str, str]) -> float:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        began = time.perf_counter()
        resp = send(conn, ("POST", path, CHECK_IN_BODY, {**auth, "Content-Type": CHECK_IN}))
        elapsed = time.perf_counter() - began
    finally:
        conn.close()
    if resp.status != 202:
        raise RuntimeError(f"POST {path} answered {resp.status}")
    return elapsed


@dataclass
class Cold:
    long: list[float] = field(default_factory=list)  # new aggregate in this worker: long stream
    fresh: list[float] = field(default_factory=list)  # new aggregate in this worker: 1 event
    warm: list[float] = field(default_factory=list)  # the next command on the long stream
    first: list[float] = field(default_factory=list)  # the new worker's first command
    unsnapshotted: float = math.nan  # the host's first load of the long stream: no snapshot


def cold_worker(uri: str, server: Service, port: int, auth: dict[str, str], args: Any) -> Cold:
    """Per sample: reload the one-worker server (its cache is empty), warm its code paths
    with a command on a throwaway item, then a check-in on the long stream and one on a
    fresh stream (order alternating), then the long stream again (now cached)."""
    import msgspec
    from esdbclient import EventStoreDBClient, NewEvent, StreamState
    from long_stream_bench import fill

    from domain import inventory

    long_id = uuid.uuid4()
    log(f"cold worker: filling a stream with {args.events:,} events")
    fill(uri, f"{inventory.CATEGORY}-{long_id}", args.events)
    created = msgspec.json.encode(inventory.InventoryItemCreated(name="Fresh"))
    out = Cold()
    with EventStoreDBClient(uri) as client:

        def new_item() -> str:
            item = uuid.uuid4()
            client.append_to_stream(
                f"{inventory.CATEGORY}-{item}",
                current_version=StreamState.NO_STREAM,
                events=[NewEvent(type="InventoryItemCreated", data=created)],
            )
            return f"/v1/inventory-items/{item}"

        long_path = f"/v1/inventory-items/{long_id}"
        # The host's very first load of the long stream folds all of it and writes the
        # snapshot every later cold worker of the host starts from (reported on its own).
        fresh_worker(server, port)
        timed_post(port, new_item(), auth)
        out.unsnapshotted = timed_post(port, long_path, auth)
        log(f"cold, no snapshot yet: {out.unsnapshotted * 1000:.1f} ms")
        for sample in range(args.cold_samples):
            throwaway, fresh = new_item(), new_item()
            fresh_worker(server, port)
            out.first.append(timed_post(port, throwaway, auth))
            if sample % 2 == 0:
                out.long.append(timed_post(port, long_path, auth))
                out.fresh.append(timed_post(port, fresh, auth))
            else:
                out.fresh.append(timed_post(port, fresh, auth))
                out.long.append(timed_post(port, long_path, auth))
            out.warm.append(timed_post(port, long_path, auth))
            log(
                f"cold sample {sample + 1}: first {out.first[-1] * 1000:.1f} ms, long"
                f" {out.long[-1] * 1000:.1f} ms, fresh {out.fresh[-1] * 1000:.1f} ms, warm"
                f" {out.warm[-1] * 1000:.1f} ms"
            )
    return out


# ---------------------------------------------------------------------------- profile

# (file suffix, function, label): the parts of one command that cProfile times as a whole.
PARTS = (
    ("eventstore/streams.py", "read", "store.read: gRPC Read (only when the cache was behind)"),
    ("eventstore/streams.py", "append", "store.append: gRPC Append (fsync'd by esdblocal)"),
    ("app/snapshots.py", "get", "host state: look for a newer row (SQLite)"),
    ("app/snapshots.py", "put", "host state: write the new state (SQLite, no fsync)"),
    ("jsonlogs/__init__.py", "info", "access line: jsonlogs.Lines (JSON + write)"),
    ("app/auth.py", "process_resource", "API key check (SHA-256 + compare)"),
    ("app/etags.py", "_seal", "ETag: AES-SIV seal (cached per stream and version)"),
    ("app/media.py", "read", "body: media type, read, I-JSON check, decode (Accepts.read)"),
    ("app/api.py", "serialize", "JSON out (msgspec)"),
    ("app/commands.py", "_pending", "event + metadata encoding, uuid4 (app.commands._pending)"),
)
TOTAL = ("falcon/app.py", "__call__")


def cumulative(stats: Any, suffix: str, name: str) -> tuple[int, float]:
    """Calls and cumulative seconds of the functions ``name`` in files ending ``suffix``."""
    calls, seconds = 0, 0.0
    for (file, _, function), (_, nc, _, ct, _) in stats.stats.items():
        if function == name and file.replace("\\", "/").endswith(suffix):
            calls += nc
            seconds += ct
    return calls, seconds


class InProcess:
    """The app as a worker builds it (``app.api.create_app`` with the bench's settings), in
    this process, against the bench's esdblocal; its access log goes to a file."""

    def __init__(self, env: dict[str, str], auth: dict[str, str], tmp: Path) -> None:
        import logging

        from app import logs
        from app.api import create_app
        from app.settings import Settings

        logs.configure("info")
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        self.log_file = (tmp / "in-process-access.log").open("w")
        handler.setStream(self.log_file)
        settings = Settings.from_env(env)
        self.store = settings.event_store()
        self.app = create_app(settings, store=self.store)
        self.auth = auth
        status, headers = self.call("POST", "/v1/inventory-items", CREATE, b'{"name": "Prof"}')
        if status != "202 Accepted":
            raise RuntimeError(f"in-process create answered {status}")
        location = dict(headers)["location"]
        self.path = urlsplit(location).path
        self.stream = "inventoryItem-" + self.path.rsplit("/", 1)[1]

    def environ(self, method: str, path: str, content_type: str, body: bytes) -> dict[str, Any]:
        from falcon import testing

        headers = {**self.auth, "Content-Type": content_type}
        return testing.create_environ(
            method=method, path=path, headers=headers, body=body, host=HOST, port=8000
        )

    def call(
        self, method: str, path: str, content_type: str, body: bytes
    ) -> tuple[str, list[tuple[str, str]]]:
        out: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
            out["status"], out["headers"] = status, headers

        b"".join(self.app(self.environ(method, path, content_type, body), start_response))
        return out["status"], out["headers"]

    def check_in(self, profiler: Any = None) -> tuple[float, float]:
        """One check-in: its wall and CPU seconds (this process's CPU, gRPC threads too)."""
        out: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
            out["status"] = status

        environ = self.environ("POST", self.path, CHECK_IN, CHECK_IN_BODY)
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        b"".join(self.app(environ, start_response))
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if out["status"] != "202 Accepted":
            raise RuntimeError(f"in-process check-in answered {out['status']}")
        return wall, cpu

    def close(self) -> None:
        import logging

        self.store.close()
        logging.getLogger().handlers[:] = []  # nothing more goes to the closed file
        self.log_file.close()


def timed(function: Any, n: int, watch: list[int]) -> list[float]:
    """Median wall and CPU microseconds of ``function()`` over ``n`` calls, then the mean CPU
    microseconds per call of each process in ``watch`` (with its children)."""
    walls, cpus = [], []
    before = [tree_cpu_seconds(pid) for pid in watch]
    for _ in range(n):
        cpu, wall = time.process_time(), time.perf_counter()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    others = [(tree_cpu_seconds(pid) - b) / n * 1e6 for pid, b in zip(watch, before, strict=True)]
    return [statistics.median(walls) * 1e6, statistics.median(cpus) * 1e6, *others]


def profile(
    args: Any,
    env: dict[str, str],
    auth: dict[str, str],
    tmp: Path,
    server: tuple[Service, int],
    watch: list[int],
    report: Report,
) -> None:
    """Where one command's time goes: the app in this process with a real esdblocal, one
    client, no other load; then cProfile (wall, then CPU) over the same commands."""
    import cProfile
    import pstats

    from esdbclient import NewEvent

    n = args.profile_commands
    port = server[1]
    watch = [*watch, server[0].pid]  # esdblocal, projector, the sync gunicorn
    log(f"profile: {n} in-process commands per measure")
    app = InProcess(env, auth, tmp)
    try:
        for _ in range(20):
            app.check_in()
        command = timed(app.check_in, n, watch)
        read = timed(lambda: app.store.read(app.stream, after=10**9), n, watch)
        raw = RawWriter(env["ESDB_URI"])
        data = raw.data

        def raw_append() -> None:
            event = NewEvent(type="ItemsCheckedInToInventory", data=data, metadata=RAW_METADATA)
            raw.client.append_to_stream(raw.stream, current_version=raw.version, events=[event])
            raw.version += 1

        append = timed(raw_append, n, watch)

        def raw_append_one() -> None:  # a NewEvent, not a list: esdbclient's Append RPC
            event = NewEvent(type="ItemsCheckedInToInventory", data=data, metadata=RAW_METADATA)
            raw.client.append_to_stream(raw.stream, current_version=raw.version, events=event)
            raw.version += 1

        append_one = timed(raw_append_one, n, watch)
        raw.client.close()
        http_new = timed(lambda: timed_post(port, app.path, auth), n, watch)
        profiles = {}
        for mode, timer in (("wall", time.perf_counter), ("cpu", time.process_time)):
            profiler = cProfile.Profile(timer)
            for _ in range(n):
                app.check_in(profiler)
            profiles[mode] = pstats.Stats(profiler)
    finally:
        app.close()

    rows = []
    totals = {mode: cumulative(stats, *TOTAL)[1] / n * 1e6 for mode, stats in profiles.items()}
    parts_sum = {"wall": 0.0, "cpu": 0.0}
    for suffix, name, label in PARTS:
        cells = [label]
        for mode in ("wall", "cpu"):
            calls, seconds = cumulative(profiles[mode], suffix, name)
            us = seconds / n * 1e6
            parts_sum[mode] += us
            cells += [fmt(us), f"{100 * us / totals[mode]:.0f}%"]
        cells.append(f"{calls / n:g}")
        rows.append(cells)
    rest = ["the rest: Falcon, middleware, routing, domain, handler, headers"]
    for mode in ("wall", "cpu"):
        us = totals[mode] - parts_sum[mode]
        rest += [fmt(us), f"{100 * us / totals[mode]:.0f}%"]
    rows.append([*rest, "—"])
    whole = fmt(totals["wall"]), "100%", fmt(totals["cpu"]), "100%", "1"
    rows.append(["the WSGI call (falcon.App.__call__)", *whole])
    report.add(
        "### Where a command's time goes (in-process profile)",
        "",
        f"`create_app` as a worker builds it (API key on, access log at info to a file), in the"
        f" bench process, against the same esdblocal, one client, no other load, {n} check-ins"
        " per measure (medians; µs):",
        "",
    )
    measures = [
        ("one check-in, WSGI call in-process (no profiler)", command),
        ("raw: store.read of nothing new (the command's first round trip)", read),
        ("raw: append_to_stream(events=[one]) (BatchAppend RPC, as the app)", append),
        ("raw: append_to_stream(events=one) (Append RPC)", append_one),
        ("one check-in over HTTP to the sync gunicorn, new connection", http_new),
    ]
    report.table(
        "measure|wall µs|caller CPU µs|esdblocal CPU µs|projector CPU µs|gunicorn CPU µs",
        [[label, *(fmt(x) for x in values)] for label, values in measures],
    )
    report.add(
        "Caller CPU: this process's CPU over the call (gRPC's own threads included); for the"
        " HTTP row, the HTTP client's. esdblocal, projector, gunicorn: their CPU over the"
        " measure ÷ calls (the projector folds each appended event a moment later).",
        "",
        "cProfile of the same check-ins (cumulative time per command; cProfile's own overhead"
        " inflates the Python-heavy parts):",
        "",
    )
    report.table("part|wall µs|wall share|CPU µs|CPU share|calls per command", rows)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per path and round")
    parser.add_argument("--rounds", type=int, default=4, help="measured rounds (order alternates)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured run per path first")
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    parser.add_argument("--workers", type=int, default=0, help="WEB_WORKERS (0: the default)")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="*",
        default=None,
        help="WEB_THREADS of the keep-alive (gthread) servers (default: 2 4; --quick: 2)",
    )
    parser.add_argument("--events", type=int, default=10_000, help="the cold worker's stream")
    parser.add_argument("--cold-samples", type=int, default=5, help="cold commands of each kind")
    parser.add_argument("--log-level", default="info", help="LOG_LEVEL of the servers")
    parser.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the in-process profile of one command (cProfile)",
    )
    parser.add_argument("--profile-commands", type=int, default=500, help="per profile measure")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 rounds of 1.5 s, WEB_THREADS=2 only, 2 cold samples, 100 profiled commands",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.warmup, args.cold_samples = 1.5, 2, 0.5, 2
        args.profile_commands = 100
    if args.threads is None:
        args.threads = [2] if args.quick else [2, 4]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return Bench.main("command-bench", lambda bench: run(args, bench))


def run(args: Any, bench: Bench) -> None:
    esdb_uri = bench.esdblocal()
    esdb = bench.esdb
    workers = args.workers or None
    base_env = bench.stack_env(
        esdb_uri, LOG_LEVEL=args.log_level, WEB_WORKERS=workers, WEB_THREADS=None
    )
    projector = bench.projector(base_env)
    servers: list[tuple[str, Web, bool]] = []
    for threads in [1, *args.threads]:
        name = "web-sync" if threads == 1 else f"web-gthread-{threads}"
        web = bench.gunicorn(name, base_env, WEB_THREADS=threads)
        if threads == 1:
            label = "POST check-in, sync workers, new connection per request"
        else:
            label = f"POST check-in, gthread WEB_THREADS={threads}, keep-alive clients"
        servers.append((label, web, threads > 1))
    cold = bench.gunicorn("web-cold", base_env, WEB_WORKERS=1, WEB_THREADS=1)
    log(f"starting {args.clients} client processes (while the servers boot)")
    clients = Clients(args.clients, esdb_uri, bench.auth)
    bench.cleanups.append(clients.close)
    bench.wait(*(web for _, web, _ in servers), cold)
    clients.run(("prepare", [web.port for _, web, _ in servers], ""), 120)
    threaded = [RawWriter(esdb_uri) for _ in range(args.clients)]
    paths = [
        CommandPath("raw-p", f"raw appends, {args.clients} processes x 1 client", "raw-processes"),
        CommandPath("raw-t", f"raw appends, 1 process x {args.clients} threads", "raw-threads"),
        *(
            CommandPath(web.service.name, label, "api", web.port, keep_alive, web.pid)
            for label, web, keep_alive in servers
        ),
    ]
    watch = [esdb.pid, projector.pid]
    lanes: dict[str, Lane] = {}
    for path in paths:
        if path.kind == "raw-threads":
            lanes[path.key] = (lambda start, end: raw_threads(threaded, start, end)), watch
        elif path.kind == "raw-processes":
            lanes[path.key] = client_lane(clients, ("raw",), watch)
        else:
            job = ("api", path.port, path.keep_alive)
            lanes[path.key] = client_lane(clients, job, [*watch, path.pid])
    windows, orders = paired_rounds(lanes, args.rounds, args.seconds, args.warmup)
    profile_report = Report()
    if args.profile:
        watch = [esdb.pid, projector.pid]
        sync = servers[0][1]
        profile(
            args, base_env, bench.auth, bench.tmp, (sync.service, sync.port), watch, profile_report
        )
    for raw in threaded:
        raw.client.close()
    samples = cold_worker(esdb_uri, cold.service, cold.port, bench.auth, args)
    report_run(args, bench, paths, windows, orders, samples, profile_report)


def report_run(
    args: Any,
    bench: Bench,
    paths: list[CommandPath],
    windows: dict[str, list[Window]],
    orders: list[str],
    cold: Cold,
    profile_report: Report,
) -> None:
    report = bench.report

    def med(key: str, attr: str) -> float:
        rows = windows[key]
        if attr == "rate":
            return median([w.rate for w in rows])
        if attr.startswith("cpu"):
            index = {"cpu": -1, "cpu-esdb": 0, "cpu-projector": 1, "cpu-web": 2}[attr]
            return median(
                [
                    1000 * (w.server_cpu if index < 0 else [*w.parts, 0.0][index]) / w.done
                    if w.done
                    else math.nan
                    for w in rows
                ]
            )
        return median([w.p(50 if attr == "p50" else 99) for w in rows])

    def lat(key: str) -> str:
        return f"{med(key, 'p50'):.1f} / {med(key, 'p99'):.1f}"

    raw_key = "raw-p" if med("raw-p", "rate") >= med("raw-t", "rate") else "raw-t"
    other_raw = "raw-t" if raw_key == "raw-p" else "raw-p"
    base_rate = med(raw_key, "rate")
    bench.header(
        f"## Commands vs raw appends ({args.clients} closed-loop clients, median of"
        f" {args.rounds} round(s) of {args.seconds:g} s)",
        "stack: esdblocal (durable, temp dir), the projector (`python -m projections`), and"
        " `gunicorn -c deploy/gunicorn.conf.py app.wsgi:app` per row, LOG_LEVEL="
        f"{args.log_level}, API_KEYS with one read+write key and REQUIRE_AUTH=true,"
        f" WEB_WORKERS={args.workers or 'default (2 x cores)'}",
        f"clients: {args.clients} spawned processes of `http.client` (API) / esdbclient"
        " (raw), one item or stream each; the raw baseline also as 8 threads in one process",
        f"wall time {bench.wall:.0f} s; round orders: {'; '.join(orders)}",
    )
    report.lines.pop(0)  # the report opens with its title

    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    base = [f"{fmt(base_rate)} appends/s", lat(raw_key)]
    rows: list[list[str]] = []
    for path in paths:
        if path.kind == "api":
            ratio = med(path.key, "rate") / base_rate
            rate = f"{fmt(med(path.key, 'rate'))} cmd/s"
            target = [f"≥ {COMMAND_TARGET}", met(ratio >= COMMAND_TARGET)]
            rows.append([path.label, rate, lat(path.key), *base, f"{ratio:.3f}", *target])
    other = next(p for p in paths if p.key == other_raw)
    chosen = next(p for p in paths if p.key == raw_key)
    rows.append([f"baseline: {chosen.label}", *base, "—", "—", "1.00", "—", "baseline"])
    other_rate = f"{fmt(med(other_raw, 'rate'))} appends/s"
    other_ratio = f"{med(other_raw, 'rate') / base_rate:.2f}"
    rows.append([f"(not the baseline: {other.label})", other_rate, lat(other_raw), *base])
    rows[-1] += [other_ratio, "—", "—"]
    fresh_ms = median(cold.fresh) * 1000
    fresh = [f"{fresh_ms:.1f} ms", f"{max(cold.fresh) * 1000:.1f} (max)"]
    for label, values, digits, target in (
        (
            f"cold worker: one check-in on a {args.events:,}-event stream, from the host's"
            " snapshot (baseline: the same on a fresh stream)",
            cold.long,
            1,
            COLD_TARGET,
        ),
        ("(cached worker, the next check-in on that stream)", cold.warm, 2, None),
        ("(the host's first load of that stream, before any snapshot of it)", [], 1, None),
        ("(a new worker's first command, a throwaway item)", cold.first, 2, None),
    ):
        ours = median(values) * 1000 if values else cold.unsnapshotted * 1000
        worst = f"{max(values) * 1000:.1f} (max)" if values else "—"
        ratio = ours / fresh_ms
        verdict = [f"≤ {target:g}x", met(ratio <= target)] if target else ["—", "—"]
        rows.append([label, f"{ours:.1f} ms", worst, *fresh, f"{ratio:.{digits}f}x", *verdict])
    header = "path|ours|ours p50 / p99 ms|baseline|baseline p50 / p99 ms|ratio|target|met?"
    report.table(header, rows, text=(1, 3, 7))
    report.add(
        "ratio = ours ÷ baseline (rates; for the cold worker, median latencies of"
        f" {len(cold.long)} samples). Latencies are from the client: with a new connection per"
        " request they include the TCP connect. Cold worker: a gunicorn with one sync worker,"
        " reloaded (SIGHUP) before each sample; after one command on a throwaway item (so the"
        " new worker's first-request costs are paid), one check-in on the long stream and one"
        " on a fresh stream (order alternating), both aggregates new to the worker's cache;"
        " then the long stream again (cached).",
        "",
        "Per path: rate per round and its ratio to the baseline's rate in the same round"
        " (adjacent windows); CPU per operation (medians of the rounds) of esdblocal, the"
        " projector, that path's gunicorn (master + workers), the clients, and all of them;"
        " CPU ratio = the baseline's CPU per operation ÷ this path's, the rate ratio the two"
        " would show on saturated cores that nothing else used:",
        "",
    )

    def per_op(ws: list[Window], clients: bool, servers: bool) -> float:
        """CPU ms per operation (median of the rounds) of the servers and / or the clients."""
        return median(
            [
                1000 * (servers * w.server_cpu + clients * w.client_cpu) / w.done
                if w.done
                else math.nan
                for w in ws
            ]
        )

    detail = []
    for path in paths:
        ws = windows[path.key]
        per_round = ratios([w.rate for w in ws], [b.rate for b in windows[raw_key]])
        everything = per_op(ws, True, True)
        detail.append(
            [
                path.label,
                " ".join(fmt(w.rate) for w in ws),
                " ".join(f"{r:.2f}" for r in per_round) + f" (median {median(per_round):.2f})",
                fmt(med(path.key, "cpu-esdb"), 2),
                fmt(med(path.key, "cpu-projector"), 2),
                fmt(med(path.key, "cpu-web"), 2) if path.kind == "api" else "—",
                fmt(med(path.key, "cpu"), 2),
                fmt(per_op(ws, True, False), 2),
                fmt(everything, 2),
                f"{per_op(windows[raw_key], True, True) / everything:.2f}",
                str(sum(w.errors for w in ws)),
            ]
        )
    header = "path|per round /s|÷ baseline, per round|esdblocal CPU ms/op|projector|gunicorn"
    header += "|all three|clients|everything|CPU ratio|errors"
    report.table(header.split("|"), detail, text=(1, 2))
    report.add(
        "Cold samples, ms (first / long / fresh / warm): "
        + "; ".join(
            f"{a * 1000:.1f} / {b * 1000:.1f} / {c * 1000:.1f} / {d * 1000:.1f}"
            for a, b, c, d in zip(cold.first, cold.long, cold.fresh, cold.warm, strict=False)
        ),
        "",
        *profile_report.lines,
    )


if __name__ == "__main__":
    sys.exit(main())
