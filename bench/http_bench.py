"""esdblocal's HTTP side: its cost to gRPC, and a feed page's latency. A report, never pass/fail.

1. gRPC with the HTTP side off, on (its own port), and multiplexed: one esdblocal process per
   mode (durable, a temp dir), the same client workloads against each, rounds alternating the
   order, medians compared with "off":
   - appends/s: one esdbclient process appending one event per call, sequentially;
   - read events/s: one esdbclient process reading a 10,000-event stream whole, repeatedly;
   and the esdblocal process's CPU per operation (steadier than rates on a busy machine).
   "mux" is what serving HTTP on the gRPC port would take in this process: a front asyncio
   listener on the public port that peeks at the first bytes of each connection and, for the
   HTTP/2 preface, pipes the connection to grpc.aio's own port (grpc.aio cannot be handed an
   accepted socket), anything else to the HTTP side. The decision rule (issue 16): serve HTTP
   on the gRPC port only if "mux" costs appends and reads less than 5 %.
2. Feed latency over keep-alive HTTP with the HTTP side on: a stream of 100,000 events, its
   head page (``/streams/s``), a page deep in it (``/streams/s/50000/forward/20``) and near its
   start (``/streams/s/19/backward/20``), against the head page of a one-event stream.

Run: ``python bench/http_bench.py [--seconds 2] [--rounds 9] [--events 100000] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HOST, PROJECT_ROOT, Bench, Service, cpu_seconds, median, ratios, round_orders

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MODES = ("off", "on", "mux")


# --------------------------------------------------------------------------- the server side


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _front(grpc_port: int, http_port: int) -> asyncio.base_events.Server:
    """The multiplexer: peek at the preface, then splice to gRPC's or HTTP's own port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(len(PREFACE))
        except asyncio.IncompleteReadError as partial:
            first = partial.partial
        port = grpc_port if first == PREFACE else http_port
        up_reader, up_writer = await asyncio.open_connection(HOST, port)
        up_writer.write(first)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, HOST, 0)
    return server


async def serve(mode: str, data: Path) -> None:
    sys.path.insert(0, str(PROJECT_ROOT))
    from esdblocal.server import Node

    node = Node(HOST, 0, data, http_port=None if mode == "off" else 0)
    await node.start()
    port = node.port
    front = None
    if mode == "mux":
        assert node.http is not None
        front = await _front(node.port, node.http.port)
        port = front.sockets[0].getsockname()[1]
    http_port = node.http.port if node.http is not None else 0
    print(
        json.dumps({"uri": f"esdb://{HOST}:{port}?tls=false", "http_port": http_port}), flush=True
    )
    try:
        await asyncio.Event().wait()
    finally:
        if front is not None:
            front.close()
        await node.stop()


# --------------------------------------------------------------------------- the client side


def client(kind: str, uri: str, seconds: float, stream: str) -> dict[str, float]:
    from esdbclient import EventStoreDBClient, NewEvent, StreamState

    with EventStoreDBClient(uri) as esdb:
        done, started = 0, time.perf_counter()
        deadline = started + seconds
        if kind == "appends":
            while time.perf_counter() < deadline:
                esdb.append_to_stream(
                    stream, current_version=StreamState.ANY, events=NewEvent(type="T", data=b"{}")
                )
                done += 1
        else:
            while time.perf_counter() < deadline:
                done += len(esdb.get_stream(stream))
        return {"rate": done / (time.perf_counter() - started), "done": done}


def seed(uri: str, stream: str, events: int, batch: int = 1000) -> None:
    from esdbclient import EventStoreDBClient, NewEvent, StreamState

    with EventStoreDBClient(uri) as esdb:
        for first in range(0, events, batch):
            esdb.append_to_stream(
                stream,
                current_version=StreamState.ANY,
                events=[
                    NewEvent(type="Seeded", data=json.dumps({"n": n}).encode())
                    for n in range(first, min(first + batch, events))
                ],
            )


@dataclass
class Server:
    service: Service
    uri: str
    http_port: int


def start(bench: Bench, mode: str) -> Server:
    argv = [sys.executable, __file__, "--serve", mode, str(bench.tmp / mode)]
    service = bench.start(f"esdblocal-{mode}", argv)
    line = json.loads(service.first_line())
    return Server(service, line["uri"], line["http_port"])


def run_client(kind: str, server: Server, seconds: float, stream: str) -> tuple[float, float]:
    """(operations/s, server CPU µs per operation) of one client run."""
    before = cpu_seconds(server.service.pid)
    out = subprocess.run(
        [sys.executable, __file__, "--client", kind, server.uri, str(seconds), stream],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )
    result = json.loads(out.stdout)
    used = cpu_seconds(server.service.pid) - before
    return float(result["rate"]), used * 1e6 / max(1, result["done"])


def latency(port: int, path: str, requests: int) -> tuple[float, float]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    samples = []
    headers = {"Accept": "application/vnd.eventstore.atom+json"}
    for _ in range(5):  # warm-up
        connection.request("GET", path, headers=headers)
        connection.getresponse().read()
    for _ in range(requests):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, (path, response.status)
    connection.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per workload per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--events", type=int, default=100_000, help="the long stream's length")
    parser.add_argument("--requests", type=int, default=300, help="per latency figure")
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s, 10,000 events")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.events, args.requests = 1.0, 1, 10_000, 50
    return Bench.main("http-bench", lambda bench: run(args, bench), auth=False)


def run(args: argparse.Namespace, bench: Bench) -> None:
    servers = {mode: start(bench, mode) for mode in MODES}
    for server in servers.values():
        seed(server.uri, "read-10k", 10_000)
    rates: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for order in round_orders(MODES, args.rounds, rotate=True):
        for kind in ("appends", "reads"):
            for mode in order:
                stream = "append-1" if kind == "appends" else "read-10k"
                rate, per_op = run_client(kind, servers[mode], args.seconds, stream)
                rates.setdefault((kind, mode), []).append(rate)
                cpu.setdefault((kind, mode), []).append(per_op)
    report = bench.report
    bench.header("## gRPC with the HTTP side off / on / multiplexed on one port")
    report.add(
        "Each round runs the three modes back to back; *ratio* is the median of the"
        " per-round ratios to off (paired, so load from elsewhere on the machine"
        " cancels out). *server CPU* is the esdblocal process's CPU per operation.",
        "",
    )
    rows = []
    for kind, unit in (("appends", "appends/s"), ("reads", "events/s")):
        for mode in MODES:
            values, costs = rates[(kind, mode)], cpu[(kind, mode)]
            paired = median(ratios(values, rates[(kind, "off")]))
            cost_ratio = median(ratios(costs, cpu[(kind, "off")]))
            rounds = ", ".join(f"{v:,.0f}" for v in values)
            rows.append([f"{kind} ({unit})", mode, f"{median(values):,.0f}", f"{paired:.3f}"])
            rows[-1] += [f"{median(costs):.1f}", f"{cost_ratio:.3f}", rounds]
    header = "workload|mode|median rate|rate ratio to off|server CPU µs/op|CPU ratio to off"
    report.table(header + "|rates per round", rows, text=(1, 6))
    on = servers["on"]
    seed(on.uri, "long-stream", args.events, batch=2000)
    seed(on.uri, "short-stream", 1)
    deep = args.events // 2
    figures = [
        ("head of a 1-event stream (baseline)", "/streams/short-stream"),
        (f"head of a {args.events:,}-event stream", "/streams/long-stream"),
        (f"{deep}/forward/20", f"/streams/long-stream/{deep}/forward/20"),
        ("19/backward/20 (the oldest page)", "/streams/long-stream/19/backward/20"),
        ("head, embed=body", "/streams/long-stream?embed=body"),
    ]
    report.add(f"## Feed page latency ({args.requests} keep-alive GETs each, ms)", "")
    rows = []
    base_p50 = 0.0
    for label, path in figures:
        p50, p99 = latency(on.http_port, path, args.requests)
        base_p50 = base_p50 or p50
        rows.append([label, f"{p50:.2f}", f"{p99:.2f}", f"{p50 / base_p50:.2f}"])
    report.table("page|p50|p99|p50 ratio to baseline", rows)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        with contextlib.suppress(KeyboardInterrupt):
            import signal

            loop = asyncio.new_event_loop()
            task = loop.create_task(serve(sys.argv[2], Path(sys.argv[3])))
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
    elif len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, kind, uri, seconds, stream = sys.argv
        print(json.dumps(client(kind, uri, float(seconds), stream)))
    else:
        sys.exit(main())
