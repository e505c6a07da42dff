"""Issue 28's one table: every throughput row, each against its own baseline measured in the
same run, on ``make run``'s production settings (LOG_LEVEL=info: an access line per
request; an API key with REQUIRE_AUTH=true on every request; the projector running;
esdblocal durable, in a temp dir).

- **Commands**: POST check-ins from 8 closed-loop client processes, each on its own item
  (sync workers, a new connection per request; and gthread workers with keep-alive clients,
  the worker-class lever) ÷ raw single-event appends from 8 independent client processes,
  each with its own esdbclient and its own stream. Same store, lanes alternating by round.
- **The peer**: the same check-ins ÷ Emmett's Express sample (``bench/peer.py`` starts it on
  the same esdblocal), driven by the same client processes in the same rounds; the peer's
  row is compared with our keep-alive row when it keeps connections alive, else with the
  sync row. Skipped, saying why, when ``peer.available()`` says the sample is absent.
- **Reads** under wrk: the floor (hello-world behind the app's own middleware,
  ``floor_app.py``) ÷ the bare hello-world (``hello_app.py``) on the 304; GET item 304 and
  200, and the list page at offset 0 and deep, ÷ the floor (÷ hello-world beside). The
  three servers loaded in turn, the order rotating each round.
- **Projector catch-up** from nothing (its ``caught up; live`` line) ÷ raw filtered
  ``read_all`` over the same store; every round's ratio (each round a fresh read store).

Run: ``python bench/throughput.py [--quick]`` (``make bench`` runs it first; about 12 min,
``--quick`` about 90 s). bench/README.md explains the columns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from typing import Any

from common import (
    FLOOR,
    LIST_LIMIT,
    Bench,
    Clients,
    Load,
    LoadGenerator,
    Scenario,
    Target,
    Web,
    Window,
    caught_up,
    client_lane,
    fmt,
    http_get,
    item_id,
    log,
    median,
    paired_rounds,
    ratios,
    raw_read_all,
    seed,
)

TARGETS = {"commands": 0.5, "peer": 3.0, "floor": 0.93, "item": 0.95, "list": 0.85, "catch": 0.8}
HELLO = "hello-world"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, about 90 s")
    parser.add_argument("--clients", type=int, default=8, help="command client processes")
    parser.add_argument("--seconds", type=float, default=5.0, help="per command lane and round")
    parser.add_argument("--rounds", type=int, default=4, help="command rounds")
    parser.add_argument("--threads", type=int, nargs="*", default=[2, 4], help="gthread rows")
    parser.add_argument("--workers", type=int, default=2 * cores, help="WEB_WORKERS")
    parser.add_argument("--items", type=int, default=101_000, help="seeded items")
    parser.add_argument("--catch-up-rounds", type=int, default=3)
    parser.add_argument("--read-seconds", type=float, default=6.0, help="per wrk run")
    parser.add_argument("--read-rounds", type=int, default=4)
    parser.add_argument("--offset", type=int, default=100_000, help="the deep list page")
    parser.add_argument("--connections", type=int, default=0, help="wrk's (2 x workers)")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the peer")
    parser.add_argument(
        "--peer-threads", type=int, default=2, help="the keep-alive row the peer's is compared with"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.threads, args.items = 1.5, 2, [2], 3_000
        args.catch_up_rounds, args.read_seconds, args.read_rounds = 2, 2.0, 1
    args.connections = args.connections or 2 * args.workers
    args.offset = min(args.offset, max(0, args.items - LIST_LIMIT))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return Bench.main("throughput", lambda bench: run(args, bench))


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def lat(p50s: list[float], p99s: list[float]) -> str:
    return f"{median(p50s):.1f} / {median(p99s):.1f}"


def per_round(values: list[float], digits: int = 2) -> str:
    return " ".join(f"{v:.{digits}f}" for v in values)


# ---------------------------------------------------------------------------- catch-up


def catch_up(args: Any, bench: Bench, uri: str, env: dict[str, str]) -> list[tuple[float, float]]:
    """(projector, raw read_all) events/s per round, the order alternating; each round's
    projector builds a fresh read store and stops, but the last one's is the stack's own."""
    out = []
    for number in range(args.catch_up_rounds):
        last = number == args.catch_up_rounds - 1
        data = bench.data if last else bench.tmp / f"catch-up-{number}"
        rates: dict[str, float] = {}
        for side in ("raw", "projector") if number % 2 == 0 else ("projector", "raw"):
            if side == "raw":
                count, seconds = raw_read_all(uri)
                rates[side] = count / seconds
                continue
            projector = bench.projector({**env, "DATA_DIR": str(data)}, "--data-dir", str(data))
            line = projector.wait_for_line(projector.stderr_path, caught_up, 120 + args.items / 500)
            rates[side] = float(json.loads(line).get("eventsPerSecond") or 0)
            if not last:
                projector.stop()
                bench.services.remove(projector)
                shutil.rmtree(data, ignore_errors=True)
        log(
            f"catch-up round {number + 1}: projector {rates['projector']:,.0f}/s, raw"
            f" {rates['raw']:,.0f}/s"
        )
        out.append((rates["projector"], rates["raw"]))
    return out


# ---------------------------------------------------------------------------- commands


def peer_module(args: Any) -> tuple[Any, str]:
    """bench/peer.py when it can run, else None and why not."""
    if not args.peer:
        return None, "--no-peer"
    try:
        import peer
    except ImportError as error:
        return None, f"bench/peer.py cannot be imported ({error})"
    why = peer.available()
    return (None, why) if why else (peer, "")


def commands(
    args: Any, bench: Bench, uri: str, webs: list[tuple[str, Web, bool]], peer: Any
) -> dict[str, list[Window]]:
    """Every command lane in alternating rounds: raw appends, each server's check-ins, the
    peer's commands; all from the same ``args.clients`` client processes."""
    clients = Clients(args.clients, uri, bench.auth)
    bench.cleanups.append(clients.close)
    peer_base = ""
    if peer is not None:
        stack = contextlib.ExitStack()
        bench.cleanups.append(stack.close)
        (bench.tmp / "peer").mkdir()
        peer_base = stack.enter_context(peer.running(uri, bench.tmp / "peer"))
        log(f"peer at {peer_base}")
    clients.run(("prepare", [web.port for _, web, _ in webs], peer_base), 180)
    watch = [bench.esdb.pid, *(s.pid for s in bench.services if s.name == "projector")]
    lanes = {"raw": client_lane(clients, ("raw",), watch)}
    for key, web, keep_alive in webs:
        lanes[key] = client_lane(clients, ("api", web.port, keep_alive), [*watch, web.pid])
    if peer_base:
        lanes["peer"] = client_lane(clients, ("peer", peer_base, True), watch)
    return paired_rounds(lanes, args.rounds, args.seconds, 0.5)[0]


def row(
    label: str,
    ours: list[str],
    base: list[str],
    rounds: list[float],
    target: float | None,
    bare: str = "—",
    unit: str = "",
    every: bool = False,
) -> list[str]:
    """A row of the table: ours (rate, p50 / p99) against the baseline (its name, rate,
    p50 / p99), the median of the per-round ratios, each round's ratio, the target."""
    goal, ok = "—", "—"
    if target is not None:
        goal = f"≥ {target:g}{unit}{' every round' if every else ''}"
        ok = met((min(rounds) if every else median(rounds)) >= target)
    ratio = [f"{median(rounds):.2f}{unit}", per_round(rounds), bare]
    return [label, *ours, f"{base[1]} ({base[0]})", base[2], *ratio, goal, ok]


def command_rows(
    args: Any, windows: dict[str, list[Window]], webs: list[tuple[str, Web, bool]], why: str
) -> list[list[str]]:
    def cell(ws: list[Window], unit: str) -> list[str]:
        rate = median([w.rate for w in ws])
        return [f"{fmt(rate)} {unit}", lat([w.p(50) for w in ws], [w.p(99) for w in ws])]

    def paired(ours: str, base: str) -> list[float]:
        return ratios([w.rate for w in windows[ours]], [w.rate for w in windows[base]])

    raw = [f"raw appends, {args.clients} independent processes", *cell(windows["raw"], "appends/s")]
    label = f"baseline: raw single-event appends, {args.clients} independent client processes"
    baseline = [f"{label} (own esdbclient, own stream)", *raw[1:], "—", "—", "1.00", "—", "—"]
    rows, labels = [[*baseline, "—", "baseline"]], {}
    for key, _, keep_alive in webs:
        labels[key] = "POST check-in, sync workers, new connection per request"
        if keep_alive:
            labels[key] = f"POST check-in, gthread WEB_THREADS={key.rsplit('-', 1)[1]}, keep-alive"
        ours = cell(windows[key], "cmd/s")
        rows.append(row(labels[key], ours, raw, paired(key, "raw"), TARGETS["commands"]))
    if "peer" not in windows:
        log(f"peer row skipped: {why}")
        return [*rows, ["the same ÷ Emmett's Express sample", f"skipped: {why}", *["—"] * 8]]
    peer = windows["peer"]
    keeps = sum(w.connects for w in peer) < sum(w.done for w in peer) / 2
    key = f"web-gthread-{args.peer_threads}" if keeps else "web-sync"
    key = key if key in windows else next((k for k, _, ka in webs if ka == keeps), "web-sync")
    how = "keep-alive" if keeps else "a new connection per request"
    label = f"the same ({labels[key]}) ÷ Emmett's Express sample"
    base = [f"peer, {how}", *cell(peer, "cmd/s")]
    rows.append(row(label, cell(windows[key], "cmd/s"), base, paired(key, "peer"), 3.0, unit="x"))
    return rows


# ---------------------------------------------------------------------------- reads


def read_rows(
    args: Any, bench: Bench, env: dict[str, str], app: Web
) -> tuple[list[list[str]], list[list[str]], str]:
    """The 304, GET item and list pages against the app, the floor and hello-world."""
    auth = bench.auth
    path = f"/v1/inventory-items/{item_id(args.items // 2)}"
    status, headers, _ = http_get(app.port, path, auth)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    etag = headers["ETag"]
    hello = bench.gunicorn("web-hello", env, "hello_app:app", WEB_THREADS=1)
    floor = bench.gunicorn(
        "web-floor", env, "floor_app:create()", FLOOR_ETAG=etag.strip('"'), WEB_THREADS=1
    )
    bench.wait(hello, floor)
    lists = "/v1/inventory-items?offset={}&limit=" + str(LIST_LIMIT)
    scenarios = [
        Scenario(
            "get-304", "GET item, If-None-Match (304)", path, {**auth, "If-None-Match": etag}, 304
        ),
        Scenario("get-item", "GET item (200)", path, auth, 200),
        Scenario("list-0", "list offset 0", lists.format(0), auth, 200),
        Scenario("list-deep", f"list offset {args.offset:,}", lists.format(args.offset), auth, 200),
    ]
    targets = [
        Target(HELLO, hello.service, hello.port),
        Target(FLOOR, floor.service, floor.port),
        Target("app", app.service, app.port),
    ]
    for scenario in scenarios:
        for target in targets[1:]:
            got = http_get(target.port, scenario.path, scenario.headers)[0]
            if got != scenario.status:
                raise RuntimeError(f"{scenario.label}: {target.label} answered {got}")
    labels = {scenario.key: scenario.label for scenario in scenarios}
    generator = LoadGenerator(args, bench.tmp)
    loads: dict[tuple[str, str], list[Load]] = {}
    plan = argparse.Namespace(warmup=1.0, rounds=args.read_rounds, seconds=args.read_seconds)
    for scenario in scenarios:
        for label, got in generator.rounds(targets, scenario, plan, rotate=True).items():
            loads[(scenario.key, label)] = got

    def cell(key: str, label: str) -> list[str]:
        got = loads[(key, label)]
        rate = median([load.rate for load in got])
        return [f"{fmt(rate)} req/s", lat([x.p50_ms for x in got], [x.p99_ms for x in got])]

    def paired(key: str, ours: str, base: str) -> list[float]:
        return ratios([x.rate for x in loads[(key, ours)]], [x.rate for x in loads[(key, base)]])

    rows = []
    for key, target in (("get-304", TARGETS["floor"]), ("get-item", None)):
        label = f"floor (hello-world behind the app's middleware), {labels[key]}"
        base = ["bare hello-world", *cell(key, HELLO)]
        rows.append(row(label, cell(key, FLOOR), base, paired(key, FLOOR, HELLO), target))
    for key, label in labels.items():
        goal = TARGETS["list" if key.startswith("list") else "item"]
        bare = f"{median(paired(key, 'app', HELLO)):.2f}"
        base = ["floor", *cell(key, FLOOR)]
        rows.append(row(label, cell(key, "app"), base, paired(key, "app", FLOOR), goal, bare))
    cpu_rows = [
        [f"{labels[key]} / {label}", fmt(median([x.cpu_ms_per_request for x in got]), 3)]
        for (key, label), got in loads.items()
    ]
    return rows, cpu_rows, generator.describe()


# ---------------------------------------------------------------------------- run


def run(args: Any, bench: Bench) -> None:
    uri = bench.esdblocal()
    log(f"seeding {args.items:,} items")
    seeded = seed(uri, args.items, 2)
    env = bench.stack_env(uri, LOG_LEVEL="info", WEB_WORKERS=args.workers, WEB_THREADS=None)
    catch = catch_up(args, bench, uri, env)
    webs = [("web-sync", bench.gunicorn("web-sync", env, WEB_THREADS=1), False)]
    for threads in args.threads:
        name = f"web-gthread-{threads}"
        webs.append((name, bench.gunicorn(name, env, WEB_THREADS=threads), True))
    bench.wait(*(web for _, web, _ in webs))
    peer, why = peer_module(args)
    windows = commands(args, bench, uri, webs, peer)
    rows = command_rows(args, windows, webs, why)
    reads, cpu_rows, load_text = read_rows(args, bench, env, webs[0][1])
    rates = {side: [r[i] for r in catch] for i, side in enumerate(("projector", "raw"))}
    ours = [f"{fmt(median(rates['projector']))} events/s", "—"]
    base = ["raw filtered `read_all`", f"{fmt(median(rates['raw']))} events/s", "—"]
    rounds = ratios(rates["projector"], rates["raw"])
    label = f"projector catch-up ({seeded['items']:,} events)"
    rows += [*reads, row(label, ours, base, rounds, TARGETS["catch"], every=True)]
    report(args, bench, rows, windows, cpu_rows, load_text)


def report(
    args: Any,
    bench: Bench,
    rows: list[list[str]],
    windows: dict[str, list[Window]],
    cpu_rows: list[list[str]],
    load_text: str,
) -> None:
    mode = "--quick" if args.quick else "full run"
    bench.header(
        "## Throughput: every row of issue 28, measured side by side",
        f"{mode}; {bench.wall:.0f} s in all; command rounds: {args.rounds} x {args.seconds:g} s"
        f" per lane ({args.clients} client processes, lanes alternating); read rounds:"
        f" {args.read_rounds} x {args.read_seconds:g} s per server (order rotating)",
        f"stack as `make run`: esdblocal (durable), the projector, gunicorn -c"
        f" deploy/gunicorn.conf.py, WEB_WORKERS={args.workers}, LOG_LEVEL=info (access log"
        " on), API_KEYS + REQUIRE_AUTH=true (every request carries the key)",
        f"reads: {load_text}",
    )
    header = "path|ours|ours p50 / p99 ms|baseline|baseline p50 / p99 ms|ratio|ratio per round"
    bench.report.table(f"{header}|÷ bare hello-world|target|met?", rows, text=(1, 3, 6, 8, 9))
    bench.report.add(
        "ratio = ours ÷ baseline, the median of the per-round ratios (each round measures both"
        " side by side); for the peer, ours ÷ the peer's. p50 / p99: medians over the rounds,"
        " from the client (with a new connection per request they include the TCP connect).",
        "",
    )
    cpu = []
    for key, ws in windows.items():
        per_op = [1000 * w.server_cpu / w.done for w in ws if w.done]
        cpu.append([f"commands / {key}", fmt(median(per_op), 2)])
    lanes = "lane|server CPU ms per operation (median; esdblocal + projector + the lane's gunicorn)"
    bench.report.table(lanes, cpu + cpu_rows)


if __name__ == "__main__":
    sys.exit(main())
