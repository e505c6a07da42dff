"""Append throughput with esdblocal's system projections on, against off; and how far
``$ce-`` trails ``$all`` under that load. A report, never pass/fail.

Each round starts esdblocal twice as a subprocess (durable, on disk, a fresh data
directory): ``--run-projections None`` (the baseline) and ``--run-projections System``
(the five standard projections, started), alternating which goes first. Against each:

* **appends/s**: N client processes (multiprocessing, 'spawn'), each appending single
  events through esdbclient's ``append_to_stream`` to streams ``load<k>-<i>`` (so every
  event lands in a category, and every 10th starts a new stream) for S seconds;
* **batch events/s**: one client appending 100-event batches (``BatchAppend``-free
  esdbclient ``append_to_stream`` of 100 events) for S seconds;
* **$ce- lag**, measured during the single-event appends: a probe process appends one
  event every 20 ms to ``probe-<n>`` and watches two live subscriptions in threads:
  ``$all`` (filtered to ``probe-``) and ``$ce-probe``. lag = when the link arrived on
  ``$ce-probe`` minus when its event arrived on ``$all``, both clocks in the same process.
  The probe runs against the baseline too (where ``$ce-probe`` stays empty), so that both
  servers carry the same load.

Run: ``python bench/projections_bench.py [--seconds 5] [--clients 4] [--rounds 2]``.
``--profile DIR`` runs the server under cProfile instead (its event loop and its writer
thread, each to its own file in DIR, per mode and load), to see where the time goes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    Report,
    Service,
    cpu_seconds,
    log,
    machine,
    median,
    p50_p99,
    ratios,
    revision,
    round_orders,
)

PROBE_INTERVAL_S = 0.02
# Runs ``python -m esdblocal`` with cProfile on the loop thread and on the log's writer
# thread, each timing its own thread's CPU (not wall time); argv[1] is the output prefix,
# the rest esdblocal's own arguments.
PROFILED = """
import asyncio, cProfile, sys, time
from esdblocal import __main__ as cli, store
prefix = sys.argv[1]
writer = cProfile.Profile(time.thread_time_ns, 1e-9)
write_loop = store.Store._write_loop
def profiled(self):
    writer.enable()
    try:
        write_loop(self)
    finally:
        writer.disable()
        writer.dump_stats(prefix + "-writer.prof")
store.Store._write_loop = profiled
loop = cProfile.Profile(time.thread_time_ns, 1e-9)
loop.enable()
try:
    asyncio.run(cli.main(cli.parse_args(sys.argv[2:])))
finally:
    loop.disable()
    loop.dump_stats(prefix + "-loop.prof")
"""


def appender(
    uri: str,
    index: int,
    seconds: float,
    batch: int,
    barrier: Barrier,
    results: Queue[tuple[int, float]],
) -> None:
    from esdbclient import EventStoreDBClient, NewEvent, StreamState

    with EventStoreDBClient(uri) as client:
        run = uuid.uuid4().hex[:8]
        barrier.wait()
        cpu = time.process_time()
        end = time.monotonic() + seconds
        count = 0
        while time.monotonic() < end:
            events = [NewEvent(type="Loaded", data=b'{"n":1}') for _ in range(batch)]
            stream = f"load{index}-{run}-{count // (10 * batch)}"
            client.append_to_stream(stream, current_version=StreamState.ANY, events=events)
            count += batch
        results.put((count, time.process_time() - cpu))


def probe(uri: str, seconds: float, barrier: Barrier, results: Queue[list[float]]) -> None:
    from esdbclient import EventStoreDBClient, NewEvent, StreamState

    seen_all: dict[str, float] = {}
    lags: list[float] = []
    done = threading.Event()
    with EventStoreDBClient(uri) as client:
        run = uuid.uuid4().hex[:8]

        def watch_all() -> None:
            with client.subscribe_to_all(
                filter_include=["probe-.*"], filter_by_stream_name=True, from_end=True
            ) as subscription:
                for event in subscription:
                    seen_all[str(event.id)] = time.perf_counter()
                    if done.is_set():
                        return

        def watch_ce() -> None:
            with client.subscribe_to_stream("$ce-probe", resolve_links=True) as subscription:
                for event in subscription:
                    now = time.perf_counter()
                    at = seen_all.get(str(event.id))
                    if at is not None:
                        lags.append(now - at)
                    if done.is_set():
                        return

        threads = [threading.Thread(target=f, daemon=True) for f in (watch_all, watch_ce)]
        for thread in threads:
            thread.start()
        barrier.wait()
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            client.append_to_stream(
                f"probe-{run}-{n}",
                current_version=StreamState.ANY,
                events=NewEvent(type="Probe", data=b"{}"),
            )
            n += 1
            time.sleep(PROBE_INTERVAL_S)
        time.sleep(1.0)  # let the last links arrive
        done.set()
        results.put(lags)


class Measured(NamedTuple):
    rate: float  # events/s
    lags: list[float]
    server_us: float  # server CPU per event (µs), while the clients ran
    client_us: float  # the appending clients' CPU per event (µs)


def measure(
    mode: str,
    clients: int,
    seconds: float,
    batch: int,
    with_probe: bool,
    profile: str | None = None,
) -> Measured:
    ctx = mp.get_context("spawn")
    command = [sys.executable, "-m", "esdblocal"]
    if profile is not None:
        command = [sys.executable, "-c", PROFILED, profile]
    with tempfile.TemporaryDirectory(prefix="projbench-") as tmp:
        argv = [*command, "--port", "0", "--data", f"{tmp}/esdb", "--run-projections", mode]
        with Service(f"esdblocal-{mode}", argv, Path(tmp), dict(os.environ)) as process:
            uri = process.first_line()
            barrier = ctx.Barrier(clients + (1 if with_probe else 0) + 1)
            counts: Queue[tuple[int, float]] = ctx.Queue()
            lags: Queue[list[float]] = ctx.Queue()
            workers = [
                ctx.Process(target=appender, args=(uri, i, seconds, batch, barrier, counts))
                for i in range(clients)
            ]
            if with_probe:
                workers.append(ctx.Process(target=probe, args=(uri, seconds, barrier, lags)))
            for worker in workers:
                worker.start()
            barrier.wait()
            server_cpu = cpu_seconds(process.pid)
            results = [counts.get(timeout=seconds + 120) for _ in range(clients)]
            server_cpu = cpu_seconds(process.pid) - server_cpu
            total = sum(count for count, _ in results)
            probe_lags = lags.get(timeout=seconds + 120) if with_probe else []
            for worker in workers:
                worker.join(timeout=30)
            cpu = (server_cpu / total * 1e6, sum(c for _, c in results) / total * 1e6)
            return Measured(total / seconds, probe_lags, *cpu)


def profile(args: argparse.Namespace) -> int:
    """One measurement per mode and load with the server under cProfile; prints the top
    of each profile (the rates are the profiled server's, slower than the real one)."""
    import pstats

    args.profile.mkdir(parents=True, exist_ok=True)
    for mode in ("None", "System"):
        for load, clients, batch in (("single", args.clients, 1), ("batch", 1, 100)):
            prefix = str(args.profile.resolve() / f"{mode}-{load}")
            rate = measure(mode, clients, args.seconds, batch, False, prefix).rate
            print(f"## projections {mode}, {load}: {rate:,.0f} events/s under cProfile")
            for part in ("loop", "writer"):
                stats = pstats.Stats(f"{prefix}-{part}.prof")
                print(f"### {part}: {stats.total_tt:.2f} s CPU")  # type: ignore[attr-defined]
                stats.sort_stats("tottime").print_stats(25)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=4, help="single-event append clients")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, order alternating")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile the server instead (one round each way; .prof files in DIR)",
    )
    args = parser.parse_args(argv)
    if args.profile is not None:
        return profile(args)

    load_before = os.getloadavg()
    single: dict[str, list[Measured]] = {"None": [], "System": []}
    batched: dict[str, list[Measured]] = {"None": [], "System": []}
    lags: list[float] = []
    for round_, order in enumerate(round_orders(["None", "System"], args.rounds)):
        for mode in order:
            log(f"round {round_ + 1}: projections {mode}, {args.clients} single-event clients")
            measured = measure(mode, args.clients, args.seconds, 1, True)
            single[mode].append(measured)
            lags.extend(measured.lags)
            log(f"round {round_ + 1}: projections {mode}, 1 client of 100-event appends")
            batched[mode].append(measure(mode, 1, args.seconds, 100, False))

    report = Report(["## System projections on vs off", ""])
    report.add(*(f"- {line}" for line in machine(load_before)), f"- code: {revision()}")
    report.add(f"- {args.rounds} rounds of {args.seconds:g} s; medians", "")
    loads = (
        (f"appends/s, {args.clients} single-event clients", single),
        ("events/s, 1 client of 100-event appends", batched),
    )
    rows = []
    for name, table in loads:
        off = median([m.rate for m in table["None"]])
        on = median([m.rate for m in table["System"]])
        paired = ratios([m.rate for m in table["System"]], [m.rate for m in table["None"]])
        rounds = ", ".join(f"{r:.2f}" for r in paired)
        rows.append([name, f"{off:,.0f}", f"{on:,.0f}", f"{on / off:.2f}", rounds])
    header = "metric|projections off (baseline)|System projections on|ratio|ratio per round"
    report.table(header, rows, text=(4,))
    report.add(
        "CPU per event (µs, medians): the server process, and the appending clients",
        "(all share the 2 cores, so server CPU an event costs is client CPU it cannot use)",
        "",
    )
    rows = []
    for name, table in loads:
        cells = [
            median([getattr(m, part) for m in table[mode]])
            for part in ("server_us", "client_us")
            for mode in ("None", "System")
        ]
        rows.append([name.split(",")[1].strip(), *(f"{c:,.0f}" for c in cells)])
    report.table("load|server off|server on|clients off|clients on", rows)
    report.add(
        f"$ce- lag behind $all under the single-event load ({len(lags)} probes):",
        f"p50 / p99 {p50_p99(lags, 1, 1000)} ms",
    )
    print("\n".join(report.lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
