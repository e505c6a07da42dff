"""Benchmark esdblocal's persistent subscriptions against baselines on the same store: a report.

1. Delivery with acks. One stream of N events (durable esdblocal, a temp dir). Baseline: one
   catch-up subscription (``subscribe_to_stream``) reading the N events. Then a persistent
   subscription group on the same stream, read and acknowledged by 1 consumer, then by 4
   consumers (RoundRobin), each consumer its own process with esdbclient's defaults
   (150 in flight, acks batched by 50 or 0.2 s). events/s = N ÷ (first read to last event).
2. Redelivery after nack(retry). One consumer over raw gRPC with 1 message in flight: each
   event is nacked with retry on first sight and acked when it comes back; the latency is
   nack sent → the same event received again. Baseline, measured in the same call: ack
   sent → the next event received (the same path through the server, without a retry).

Run: ``python bench/persistent_bench.py [--events 20000] [--latency-events 2000]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.protos.Grpc import persistent_pb2, persistent_pb2_grpc, shared_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Bench, percentile

BATCH = 500


def seed(client: EventStoreDBClient, stream: str, count: int) -> None:
    written = 0
    while written < count:
        size = min(BATCH, count - written)
        events = [NewEvent(type="Job", data=b'{"n":1}') for _ in range(size)]
        client.append_to_stream(stream, current_version=StreamState.ANY, events=events)
        written += size


def catch_up(uri: str, stream: str, count: int) -> float:
    with EventStoreDBClient(uri) as client:
        started = time.perf_counter()
        seen = 0
        with client.subscribe_to_stream(stream) as subscription:
            for _ in subscription:
                seen += 1
                if seen == count:
                    break
        return time.perf_counter() - started


def consume(uri: str, stream: str, group: str, counter: object, done: object) -> None:
    """One consumer process: read and ack until the run is over."""
    with EventStoreDBClient(uri) as client:
        subscription = client.read_subscription_to_stream(group, stream)
        for event in subscription:
            subscription.ack(event)
            with counter.get_lock():  # type: ignore[attr-defined]
                counter.value += 1  # type: ignore[attr-defined]
            if done.is_set():  # type: ignore[attr-defined]
                break
        subscription.stop()


def persistent(uri: str, stream: str, count: int, consumers: int) -> float:
    group = f"bench-{uuid.uuid4().hex}"
    with EventStoreDBClient(uri) as client:
        client.create_subscription_to_stream(
            group, stream, consumer_strategy="RoundRobin", max_subscriber_count=0
        )
    counter = mp.Value("i", 0)
    done = mp.Event()
    started = time.perf_counter()
    workers = [
        mp.Process(target=consume, args=(uri, stream, group, counter, done))
        for _ in range(consumers)
    ]
    for worker in workers:
        worker.start()
    while counter.value < count:
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    done.set()
    for worker in workers:
        worker.join(timeout=5)
        if worker.is_alive():
            worker.terminate()
    return elapsed


def redelivery(uri: str, stream: str, count: int) -> tuple[list[float], list[float]]:
    """(nack → redelivery, ack → next event) latencies in ms, over raw gRPC."""
    group = f"latency-{uuid.uuid4().hex}"
    with EventStoreDBClient(uri) as client:
        client.create_subscription_to_stream(group, stream)
    target = uri.removeprefix("esdb://").split("?")[0]
    requests: queue.Queue[persistent_pb2.ReadReq | None] = queue.Queue()

    def outgoing() -> Iterator[persistent_pb2.ReadReq]:
        while (request := requests.get()) is not None:
            yield request

    options = persistent_pb2.ReadReq.Options(
        stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream.encode()),
        group_name=group,
        buffer_size=1,
        uuid_option=persistent_pb2.ReadReq.Options.UUIDOption(string=shared_pb2.Empty()),
    )
    requests.put(persistent_pb2.ReadReq(options=options))
    retried: list[float] = []
    following: list[float] = []
    sent_at = 0.0
    with grpc.insecure_channel(target) as channel:
        stub = persistent_pb2_grpc.PersistentSubscriptionsStub(channel)
        responses = stub.Read(outgoing())
        done = 0
        for response in responses:
            now = time.perf_counter()
            if response.WhichOneof("content") != "event":
                continue
            event = response.event
            ids = [shared_pb2.UUID(string=event.event.id.string)]
            if event.retry_count == 0:
                if sent_at:
                    following.append((now - sent_at) * 1000)
                sent_at = time.perf_counter()
                nack = persistent_pb2.ReadReq.Nack(
                    ids=ids, action=persistent_pb2.ReadReq.Nack.Retry
                )
                requests.put(persistent_pb2.ReadReq(nack=nack))
            else:
                retried.append((now - sent_at) * 1000)
                done += 1
                if done == count:
                    break
                sent_at = time.perf_counter()
                requests.put(persistent_pb2.ReadReq(ack=persistent_pb2.ReadReq.Ack(ids=ids)))
        requests.put(None)
        responses.cancel()
    return retried, following


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the stream")
    parser.add_argument(
        "--latency-events", type=int, default=2_000, help="events nacked then acked"
    )
    args = parser.parse_args()
    return Bench.main("persistent-bench", lambda bench: run(args, bench), auth=False)


def run(args: argparse.Namespace, bench: Bench) -> None:
    uri = bench.esdblocal()
    stream = f"jobs-{uuid.uuid4()}"
    with EventStoreDBClient(uri) as client:
        seed(client, stream, args.events)
        latency_stream = f"latency-{uuid.uuid4()}"
        seed(client, latency_stream, args.latency_events)
    rows = []
    base = catch_up(uri, stream, args.events)
    rows.append(("catch-up subscription, 1 reader", base))
    for consumers in (1, 4):
        elapsed = persistent(uri, stream, args.events, consumers)
        label = f"persistent, {consumers} consumer{'s' if consumers > 1 else ''}, acked"
        rows.append((label, elapsed))
    retried, following = redelivery(uri, latency_stream, args.latency_events)
    report = bench.report
    bench.header("## Persistent subscriptions (durable esdblocal)")
    report.add(f"### Delivery: {args.events:,} events of one stream", "")
    table = [
        [label, f"{elapsed:.2f}", f"{args.events / elapsed:,.0f}", f"{base / elapsed:.2f}"]
        for label, elapsed in rows
    ]
    report.table("reader|seconds|events/s|ratio", table)
    report.add("ratio = events/s ÷ the catch-up subscription's.", "")
    report.add(f"### Redelivery after nack(retry): {len(retried):,} events, 1 in flight", "")
    ordered = sorted(following)
    base50, base99 = percentile(ordered, 50), percentile(ordered, 99)
    table = []
    for label, values in (
        ("ack sent → next event (baseline)", following),
        ("nack(retry) sent → same event again", retried),
    ):
        ordered = sorted(values)
        p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
        table.append([label, f"{p50:.2f}", f"{p99:.2f}", f"{p50 / base50:.2f}"])
        table[-1].append(f"{p99 / base99:.2f}")
    report.table("measure|p50 ms|p99 ms|p50 ratio|p99 ratio", table)
    report.add(f"mean redelivery {statistics.mean(retried):.2f} ms; ratio = ÷ the baseline's.")


if __name__ == "__main__":
    sys.exit(main())
