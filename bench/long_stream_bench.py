"""What one command costs on a long stream: a worker that must re-read it vs one that keeps it.

Starts esdblocal (durable, subprocess), writes an inventory item with N events, then times
commands through the app's CommandHandler twice, side by side: cold (a new worker's view:
the whole stream is read and folded) and warm (the worker's cached aggregate: only the new
events are read). Prints a table; never pass/fail.

Run: ``python bench/long_stream_bench.py [--events 10000] [--commands 200]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from uuid import uuid4

import msgspec
from esdbclient import EventStoreDBClient, NewEvent, StreamState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Bench, log, median

from app.commands import CommandHandler, CommandRequest
from app.snapshots import Snapshots
from domain import inventory
from domain.aggregates import INVENTORY_ITEM
from eventstore.streams import EventStore


def fill(uri: str, stream: str, events: int) -> None:
    encode = msgspec.json.encode
    first = [
        NewEvent(
            type="InventoryItemCreated", data=encode(inventory.InventoryItemCreated(name="Long"))
        )
    ]
    checked_in = encode(inventory.ItemsCheckedInToInventory(count=1))
    with EventStoreDBClient(uri) as client:
        client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=first)
        written = 1
        while written < events:
            batch = min(500, events - written)
            client.append_to_stream(
                stream,
                current_version=StreamState.ANY,
                events=[
                    NewEvent(type="ItemsCheckedInToInventory", data=checked_in)
                    for _ in range(batch)
                ],
            )
            written += batch
            print(f"  filled {written:,}/{events:,}", end="\r", file=sys.stderr)
    print(file=sys.stderr)


def time_commands(
    uri: str,
    streams: list[str],
    commands: int,
    warm: bool,
    snapshots: Snapshots | None = None,
) -> list[float]:
    """One command after another, on the streams in turn, by one worker (``warm``) or by a
    fresh worker each time; the connection to the store is made before the first."""
    store = EventStore(uri)
    store.check()
    handler = CommandHandler(store, snapshots=snapshots)
    command = inventory.CheckInItemsToInventoryCommand(count=1)
    timings = []
    for index in range(commands):
        if not warm:
            handler = CommandHandler(store, snapshots=snapshots)  # a fresh worker's view
        request = CommandRequest(
            domain_model="CheckInItemsToInventoryCommand", request_id=str(index)
        )
        stream = streams[index % len(streams)]
        started = time.perf_counter()
        handler.execute(INVENTORY_ITEM, stream, lambda s: inventory.fire(s, command), request)
        timings.append(time.perf_counter() - started)
    store.close()
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    return Bench.main("long-stream-bench", lambda bench: run(args, bench), auth=False)


def run(args: argparse.Namespace, bench: Bench) -> None:
    uri = bench.esdblocal()
    stream = f"{inventory.CATEGORY}-{uuid4()}"
    log(f"filling {stream} with {args.events:,} events")
    fill(uri, stream, args.events)
    log("timing cold and warm commands")
    cold_runs = max(10, args.commands // 10)
    cold = time_commands(uri, [stream], cold_runs, warm=False)
    warm = time_commands(uri, [stream], args.commands, warm=True)
    shorts = [f"{inventory.CATEGORY}-{uuid4()}" for _ in range(cold_runs)]
    for short in shorts:  # created items: streams of one event
        fill(uri, short, 1)
    fresh = time_commands(uri, shorts, cold_runs, warm=False)
    snapshots = Snapshots(bench.data / "snapshots.sqlite3")
    time_commands(uri, [stream], 1, warm=False, snapshots=snapshots)  # writes one
    snapped = time_commands(uri, [stream], cold_runs, warm=False, snapshots=snapshots)
    cold_ms = median(cold) * 1000
    bench.header(f"## One command on a {args.events:,}-event stream ({os.cpu_count()} cores)")
    rows = []
    for label, timings in (
        ("cold: reads the whole stream", cold),
        ("cold, from the host's snapshot (the events after it only)", snapped),
        ("warm: cached, appends with the version it knows", warm),
        ("baseline: a cold worker on a fresh stream", fresh),
    ):
        p90 = sorted(timings)[int(len(timings) * 0.9)] * 1000
        ms = median(timings) * 1000
        rows.append([label, str(len(timings)), f"{ms:.2f}", f"{p90:.2f}", f"{ms / cold_ms:.3f}"])
    bench.report.table("worker|commands|median ms|p90 ms|vs cold", rows)
    ratio = median(snapped) / median(fresh)
    bench.report.add(f"cold from a snapshot / cold on a fresh stream: {ratio:.2f}x (target <= 3x)")


if __name__ == "__main__":
    sys.exit(main())
