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
* **$ce- lag** (projections on only), measured during the appends: a probe process appends
  one event every 20 ms to ``probe-<n>`` and watches two live subscriptions in threads:
  ``$all`` (filtered to ``probe-``) and ``$ce-probe``. lag = when the link arrived on
  ``$ce-probe`` minus when its event arrived on ``$all``, both clocks in the same process.

Run: ``python bench/projections_bench.py [--seconds 5] [--clients 4] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from importlib import metadata
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROBE_INTERVAL_S = 0.02


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start(mode: str, data: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "esdblocal",
            "--port",
            "0",
            "--data",
            str(data),
            "--run-projections",
            mode,
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    uri = process.stdout.readline().strip()
    if not uri.startswith("esdb://"):
        process.kill()
        raise RuntimeError(f"esdblocal did not start: {uri!r}")
    return process, uri


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def appender(
    uri: str, index: int, seconds: float, batch: int, barrier: Barrier, results: Queue[int]
) -> None:
    from esdbclient import EventStoreDBClient, NewEvent, StreamState

    with EventStoreDBClient(uri) as client:
        run = uuid.uuid4().hex[:8]
        barrier.wait()
        end = time.monotonic() + seconds
        count = 0
        while time.monotonic() < end:
            events = [NewEvent(type="Loaded", data=b'{"n":1}') for _ in range(batch)]
            stream = f"load{index}-{run}-{count // (10 * batch)}"
            client.append_to_stream(stream, current_version=StreamState.ANY, events=events)
            count += batch
        results.put(count)


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


def measure(
    mode: str, clients: int, seconds: float, batch: int, with_probe: bool
) -> tuple[float, list[float]]:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="projbench-") as tmp:
        process, uri = start(mode, Path(tmp) / "esdb")
        try:
            barrier = ctx.Barrier(clients + (1 if with_probe else 0))
            counts: Queue[int] = ctx.Queue()
            lags: Queue[list[float]] = ctx.Queue()
            workers = [
                ctx.Process(target=appender, args=(uri, i, seconds, batch, barrier, counts))
                for i in range(clients)
            ]
            if with_probe:
                workers.append(ctx.Process(target=probe, args=(uri, seconds, barrier, lags)))
            for worker in workers:
                worker.start()
            total = sum(counts.get(timeout=seconds + 120) for _ in range(clients))
            probe_lags = lags.get(timeout=seconds + 120) if with_probe else []
            for worker in workers:
                worker.join(timeout=30)
            return total / seconds, probe_lags
        finally:
            stop(process)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=4, help="single-event append clients")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, order alternating")
    args = parser.parse_args(argv)

    single: dict[str, list[float]] = {"None": [], "System": []}
    batched: dict[str, list[float]] = {"None": [], "System": []}
    lags: list[float] = []
    for round_ in range(args.rounds):
        order = ["None", "System"] if round_ % 2 == 0 else ["System", "None"]
        for mode in order:
            log(f"round {round_ + 1}: projections {mode}, {args.clients} single-event clients")
            rate, probe_lags = measure(mode, args.clients, args.seconds, 1, mode == "System")
            single[mode].append(rate)
            lags.extend(probe_lags)
            log(f"round {round_ + 1}: projections {mode}, 1 client of 100-event appends")
            rate, _ = measure(mode, 1, args.seconds, 100, False)
            batched[mode].append(rate)

    def median(values: list[float]) -> float:
        return percentile(values, 50)

    versions = ", ".join(f"{n} {metadata.version(n)}" for n in ("esdbclient", "grpcio"))
    print(f"CPU cores: {os.cpu_count()}; Python {platform.python_version()}, {versions}")
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.rounds} rounds of {args.seconds:g} s; medians\n")
    print(
        "| metric | projections off (baseline) | System projections on | ratio | ratio per round |"
    )
    print("|---|---:|---:|---:|---|")
    for name, table in (
        (f"appends/s, {args.clients} single-event clients", single),
        ("events/s, 1 client of 100-event appends", batched),
    ):
        off, on = median(table["None"]), median(table["System"])
        rounds = ", ".join(
            f"{b / a:.2f}" for a, b in zip(table["None"], table["System"], strict=True)
        )
        print(f"| {name} | {off:,.0f} | {on:,.0f} | {on / off:.2f} | {rounds} |")
    print()
    print(f"$ce- lag behind $all under the single-event load ({len(lags)} probes):")
    print(f"p50 {percentile(lags, 50) * 1000:.1f} ms, p99 {percentile(lags, 99) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
