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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import msgspec
from esdbclient import EventStoreDBClient, NewEvent, StreamState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            [sys.executable, "-m", "esdblocal", "--port", "0", "--data", data],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            uri = server.stdout.readline().strip()
            stream = f"{inventory.CATEGORY}-{uuid4()}"
            print(f"filling {stream} with {args.events:,} events", file=sys.stderr)
            fill(uri, stream, args.events)
            print("timing cold and warm commands", file=sys.stderr)
            cold_runs = max(10, args.commands // 10)
            cold = time_commands(uri, [stream], cold_runs, warm=False)
            warm = time_commands(uri, [stream], args.commands, warm=True)
            shorts = [f"{inventory.CATEGORY}-{uuid4()}" for _ in range(cold_runs)]
            for short in shorts:  # created items: streams of one event
                fill(uri, short, 1)
            fresh = time_commands(uri, shorts, cold_runs, warm=False)
            snapshots = Snapshots(Path(data) / "snapshots.sqlite3")
            time_commands(uri, [stream], 1, warm=False, snapshots=snapshots)  # writes one
            snapped = time_commands(uri, [stream], cold_runs, warm=False, snapshots=snapshots)
        finally:
            server.terminate()
            server.wait(timeout=10)
    cold_ms = statistics.median(cold) * 1000
    warm_ms = statistics.median(warm) * 1000
    print(f"\n## One command on a {args.events:,}-event stream ({os.cpu_count()} cores)\n")
    print("| worker | commands | median ms | p90 ms | vs cold |")
    print("|---|---:|---:|---:|---:|")
    rows = (
        ("cold: reads the whole stream", cold, cold_ms),
        ("cold, from the host's snapshot (the events after it only)", snapped, cold_ms),
        ("warm: cached, appends with the version it knows", warm, warm_ms),
        ("baseline: a cold worker on a fresh stream", fresh, cold_ms),
    )
    for label, timings, _ in rows:
        p90 = sorted(timings)[int(len(timings) * 0.9)] * 1000
        median = statistics.median(timings) * 1000
        print(f"| {label} | {len(timings)} | {median:.2f} | {p90:.2f} | {median / cold_ms:.3f} |")
    ratio = statistics.median(snapped) / statistics.median(fresh)
    print(f"\ncold from a snapshot / cold on a fresh stream: {ratio:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
