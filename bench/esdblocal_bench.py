"""Benchmark esdblocal against a no-op Python gRPC server: a report, never pass/fail.

Both servers run as subprocesses (esdblocal durable, on disk); every client runs in its own
process (multiprocessing, 'spawn'), so client Python never shares a GIL with a server or
another client. On a small machine clients and server still share the CPU cores, so the
report prints the core count and the CPU each side used during every timed phase.

The no-op server (this file run with --serve-noop) is a grpc.aio server with generic
handlers and identity serializers:

* ``Call`` (unary, b"" → b""): the plain-call ceiling for a single-event append;
* ``Append`` (client-streaming, drains two raw messages, returns b""): the "Append-shaped"
  ceiling. esdbclient's sync client sends a single NewEvent as a client-streaming ``Append``
  call (an options message and one proposed message), which costs the client much more than
  a unary call does;
* ``Stream`` (server-streaming, N raw messages of the size of one ReadResp, which the client
  does not parse): a gRPC-level ceiling for ``read_all``;
* ``/event_store.client.streams.Streams/Read`` (server-streaming): the "replay" ceiling for
  ``read_all``. It sends one pre-serialized ``ReadResp`` (an event shaped like esdblocal's)
  as many times as esdblocal's ``read_all`` phase read events, and a real
  ``EventStoreDBClient.read_all()`` iterates them: the most esdbclient's sync read path can
  consume on this machine from a server that does no work;
* ``Publish``/``Subscribe``: a relay with no storage, the ceiling for subscription latency
  (writer → server → subscriber, the same two hops a live subscription makes).

esdblocal is also driven by ``AsyncEventStoreDBClient``: 1 and N concurrent appenders as
asyncio tasks in ONE client process (no ceiling is measured for those rows).

Run: ``python bench/esdblocal_bench.py [--seconds 5] [--events 50000] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing as mp
import os
import platform
import queue
import re
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    HOST,
    PROJECT_ROOT,
    STARTUP_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Report,
    Service,
    cpu_seconds,
    log,
    percentile,
)

NOOP_SERVICE = "noop.Noop"
STREAMS_SERVICE = "event_store.client.streams.Streams"
# The Append-shaped ceiling's request stream: about the sizes of esdbclient's options
# message and proposed message for one small event.
APPEND_SHAPED_MESSAGES = (b"x" * 60, b"y" * 80)
# Size of one ReadResp carrying a prefill event (measured with streams_pb2: ~257 bytes).
STREAM_MESSAGE_SIZE = 256
PREFILL_BATCH = 500
LATENCY_INTERVAL_S = 0.002
STREAMS_PER_CLIENT = 16
READ_PASSES = 2

APPEND_PAYLOAD = b'{"bench": "append"}'
PREFILL_PAYLOAD = b'{"i": 0, "pad": "' + b"x" * 64 + b'"}'


def replay_message() -> bytes:
    """One serialized ReadResp carrying an event, as esdblocal encodes one for read_all."""
    from esdbclient.protos.Grpc import shared_pb2, streams_pb2

    read_event = streams_pb2.ReadResp.ReadEvent
    position = 12_345_678
    event = read_event.RecordedEvent(
        id=shared_pb2.UUID(string=str(uuid.uuid4())),
        stream_identifier=shared_pb2.StreamIdentifier(stream_name=b"bench-replay-0"),
        stream_revision=4_321,
        prepare_position=position,
        commit_position=position,
        metadata={
            "type": "BenchReplayed",
            "content-type": "application/json",
            "created": str(time.time_ns() // 100),
        },
        data=b'{"a":1}',
    )
    read_resp = streams_pb2.ReadResp(event=read_event(event=event, commit_position=position))
    message: bytes = read_resp.SerializeToString()
    return message


async def serve_noop(replay_events: int) -> None:
    """The no-op gRPC server: print host:port, serve until SIGTERM."""
    subscribers: set[asyncio.Queue[bytes]] = set()
    replayed = replay_message()

    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b""

    async def append(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        async for _ in requests:
            pass
        return b""

    async def publish(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        for subscriber in subscribers:
            subscriber.put_nowait(request)
        return b""

    async def subscribe(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        inbox: asyncio.Queue[bytes] = asyncio.Queue()
        subscribers.add(inbox)
        try:
            yield b""  # confirmation: the subscriber is registered
            while True:
                yield await inbox.get()
        finally:
            subscribers.discard(inbox)

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        count, size = (int(part) for part in request.split())
        message = bytes(size)
        for _ in range(count):
            yield message

    async def replay(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for _ in range(replay_events):
            yield replayed

    handler = grpc.method_handlers_generic_handler(
        NOOP_SERVICE,
        {
            "Call": grpc.unary_unary_rpc_method_handler(call),
            "Append": grpc.stream_unary_rpc_method_handler(append),
            "Publish": grpc.unary_unary_rpc_method_handler(publish),
            "Subscribe": grpc.unary_stream_rpc_method_handler(subscribe),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    streams = grpc.method_handlers_generic_handler(
        STREAMS_SERVICE,
        {
            "Read": grpc.unary_stream_rpc_method_handler(
                replay, request_deserializer=None, response_serializer=None
            ),
        },
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler, streams))
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"{HOST}:{port}", flush=True)
    await stopping.wait()
    await server.stop(0.5)


# ---------------------------------------------------------------------------- clients
#
# Each client below runs in its own spawned process. ``kind`` is "esdb" (target: the esdb://
# URI), or "noop", "noop-append" or "replay" (target: the no-op server's host:port). Results
# come back as WorkerResult through a queue.


@dataclass
class WorkerResult:
    ops: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    samples: list[float] = field(default_factory=list)
    error: str | None = None


def _describe(error: BaseException) -> str:
    """One line: gRPC errors print several, and the report lists errors as bullets."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) < 500 else text[:500] + "…"


def _esdb_client(uri: str) -> Any:
    from esdbclient import EventStoreDBClient

    return EventStoreDBClient(uri)


def _noop_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address)


def _single_op(kind: str, target: str, index: int) -> Callable[[int], object]:
    """One client's unit of work: a single-event append, or a no-op unary or Append-shaped
    (client-streaming) call."""
    if kind == "esdb":
        from esdbclient import NewEvent, StreamState

        client = _esdb_client(target)
        streams = [f"bench-append-{os.getpid()}-{index}-{n}" for n in range(STREAMS_PER_CLIENT)]

        def append(n: int) -> object:
            return client.append_to_stream(
                streams[n % STREAMS_PER_CLIENT],
                current_version=StreamState.ANY,
                events=NewEvent(type="BenchAppended", data=APPEND_PAYLOAD),
            )

        return append
    channel = _noop_channel(target)
    if kind == "noop-append":
        append_shaped = channel.stream_unary(
            f"/{NOOP_SERVICE}/Append", request_serializer=None, response_deserializer=None
        )
        return lambda n: append_shaped(iter(APPEND_SHAPED_MESSAGES))
    call = channel.unary_unary(
        f"/{NOOP_SERVICE}/Call", request_serializer=None, response_deserializer=None
    )
    return lambda n: call(b"")


def throughput_worker(
    kind: str,
    target: str,
    index: int,
    seconds: float,
    barrier: Barrier,
    results: Queue[WorkerResult],
) -> None:
    result = WorkerResult()
    try:
        op = _single_op(kind, target, index)
        op(-1)  # connect and warm up outside the timed window
    except BaseException as error:
        result.error = f"setup: {_describe(error)}"
        barrier.abort()
        results.put(result)
        return
    try:
        barrier.wait(STARTUP_TIMEOUT_S)
    except threading.BrokenBarrierError:
        result.error = "another client failed to start"
        results.put(result)
        return
    cpu0, start = time.process_time(), time.monotonic()
    deadline = start + seconds
    try:
        while time.monotonic() < deadline:
            op(result.ops)
            result.ops += 1
    except BaseException as error:
        result.error = _describe(error)
    result.elapsed = time.monotonic() - start
    result.cpu = time.process_time() - cpu0
    results.put(result)


def async_throughput_worker(
    uri: str, tasks: int, seconds: float, barrier: Barrier, results: Queue[WorkerResult]
) -> None:
    """``tasks`` concurrent single-event appenders as asyncio tasks of one client process."""
    results.put(asyncio.run(_async_appends(uri, tasks, seconds, barrier)))


async def _async_appends(uri: str, tasks: int, seconds: float, barrier: Barrier) -> WorkerResult:
    from esdbclient import AsyncEventStoreDBClient, NewEvent, StreamState

    result = WorkerResult()
    prefix = f"bench-async-{os.getpid()}"

    async def append(stream: str) -> None:
        await client.append_to_stream(
            stream,
            current_version=StreamState.ANY,
            events=NewEvent(type="BenchAppended", data=APPEND_PAYLOAD),
        )

    try:
        client = AsyncEventStoreDBClient(uri)
        await client.connect()
        await append(f"{prefix}-warmup")  # connect and warm up outside the timed window
    except BaseException as error:
        result.error = f"setup: {_describe(error)}"
        barrier.abort()
        return result
    try:
        barrier.wait(STARTUP_TIMEOUT_S)  # blocks the loop, which has nothing else to do yet
    except threading.BrokenBarrierError:
        result.error = "another client failed to start"
        return result
    counts = [0] * tasks
    cpu0, start = time.process_time(), time.monotonic()
    deadline = start + seconds

    async def appender(index: int) -> None:
        streams = [f"{prefix}-{index}-{n}" for n in range(STREAMS_PER_CLIENT)]
        while time.monotonic() < deadline:
            await append(streams[counts[index] % STREAMS_PER_CLIENT])
            counts[index] += 1

    outcomes = await asyncio.gather(
        *(appender(index) for index in range(tasks)), return_exceptions=True
    )
    result.elapsed = time.monotonic() - start
    result.cpu = time.process_time() - cpu0
    result.ops = sum(counts)
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        result.error = f"{len(errors)} task(s) failed; first: {_describe(errors[0])}"
    with contextlib.suppress(Exception):
        await client.close()
    return result


def prefill_worker(uri: str, events: int, started: MpEvent, results: Queue[WorkerResult]) -> None:
    from esdbclient import NewEvent, StreamState

    result = WorkerResult()
    try:
        client = _esdb_client(uri)
        started.set()
        cpu0, start = time.process_time(), time.monotonic()
        while result.ops < events:
            size = min(PREFILL_BATCH, events - result.ops)
            batch = [NewEvent(type="BenchPrefilled", data=PREFILL_PAYLOAD) for _ in range(size)]
            stream = f"bench-readall-{result.ops // (PREFILL_BATCH * 10)}"
            client.append_to_stream(stream, current_version=StreamState.ANY, events=batch)
            result.ops += size
        result.elapsed = time.monotonic() - start
        result.cpu = time.process_time() - cpu0
    except BaseException as error:
        result.error = _describe(error)
        started.set()  # let the parent stop waiting
    results.put(result)


def read_worker(
    kind: str, target: str, events: int, started: MpEvent, results: Queue[WorkerResult]
) -> None:
    """Read everything once: esdb ``read_all()`` (from esdblocal, or from the no-op server's
    replay when kind is "replay"), or the no-op server's raw message stream."""
    result = WorkerResult()
    try:
        messages: Callable[[], Iterator[object]]
        if kind in {"esdb", "replay"}:
            uri = target if kind == "esdb" else f"esdb://{target}?tls=false"
            client = _esdb_client(uri)
            messages = client.read_all
        else:
            stream = _noop_channel(target).unary_stream(
                f"/{NOOP_SERVICE}/Stream", request_serializer=None, response_deserializer=None
            )
            messages = functools.partial(stream, f"{events} {STREAM_MESSAGE_SIZE}".encode())
        started.set()
        cpu0, start = time.process_time(), time.monotonic()
        for _ in messages():
            result.ops += 1
        result.elapsed = time.monotonic() - start
        result.cpu = time.process_time() - cpu0
    except BaseException as error:
        result.error = _describe(error)
        started.set()  # let the parent stop waiting
    results.put(result)


def _subscription(kind: str, target: str) -> tuple[Iterator[bytes], Callable[[], object]]:
    """A live subscription from the end: (iterator of event payloads, stop function)."""
    if kind == "esdb":
        client = _esdb_client(target)
        subscription = client.subscribe_to_all(from_end=True)
        payloads = (
            event.data for event in subscription if event.stream_name.startswith("bench-latency")
        )

        def stop() -> None:  # also keeps the client alive: collecting it closes its channel
            subscription.stop()
            client.close()

        return payloads, stop
    call = _noop_channel(target).unary_stream(
        f"/{NOOP_SERVICE}/Subscribe", request_serializer=None, response_deserializer=None
    )(b"")
    next(call)  # the relay's confirmation
    return call, call.cancel


def subscriber_worker(
    kind: str,
    target: str,
    expected: int,
    ready: MpEvent,
    writer_done: MpEvent,
    results: Queue[WorkerResult],
) -> None:
    """Record receive time minus the send time carried in each event (ms, same clock)."""
    result = WorkerResult()
    got_all = threading.Event()
    errors: list[str] = []
    try:
        payloads, stop = _subscription(kind, target)
    except BaseException as error:
        result.error = f"subscribe: {_describe(error)}"
        results.put(result)
        ready.set()
        return

    def receive() -> None:
        try:
            for payload in payloads:
                received = time.time_ns()
                message = json.loads(payload)
                if message["seq"] < 0:
                    continue
                result.samples.append((received - message["sent"]) / 1e6)
                if len(result.samples) >= expected:
                    got_all.set()
                    return
        except BaseException as error:
            if not got_all.is_set():
                errors.append(_describe(error))

    cpu0 = time.process_time()
    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    ready.set()
    while not got_all.wait(0.1) and receiver.is_alive():
        if writer_done.is_set():
            got_all.wait(5.0)  # grace for stragglers once the writer has finished
            break
    with contextlib.suppress(BaseException):
        stop()
    receiver.join(2.0)
    result.cpu = time.process_time() - cpu0
    result.ops = len(result.samples)
    if result.ops < expected:
        why = f" ({errors[0]})" if errors else ""
        result.error = f"received {result.ops} of {expected} events{why}"
    results.put(result)


def _sender(kind: str, target: str) -> Callable[[bytes], object]:
    """Send one latency probe: an append to "bench-latency", or a Publish to the relay."""
    if kind == "esdb":
        from esdbclient import NewEvent, StreamState

        client = _esdb_client(target)
        return lambda data: client.append_to_stream(
            "bench-latency",
            current_version=StreamState.ANY,
            events=NewEvent(type="BenchLatency", data=data),
        )
    publish: Callable[[bytes], object] = _noop_channel(target).unary_unary(
        f"/{NOOP_SERVICE}/Publish", request_serializer=None, response_deserializer=None
    )
    return publish


def latency_writer(
    kind: str,
    target: str,
    count: int,
    interval: float,
    started: MpEvent,
    writer_done: MpEvent,
    results: Queue[WorkerResult],
) -> None:
    """Send ``count`` events paced every ``interval`` s, each carrying time.time_ns()."""
    result = WorkerResult()
    try:
        send = _sender(kind, target)
        for seq in range(-3, 0):  # warm-up, ignored by the subscriber
            send(json.dumps({"seq": seq, "sent": time.time_ns()}).encode())
        started.set()
        cpu0, start = time.process_time(), time.monotonic()
        for seq in range(count):
            pause = start + seq * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            send(json.dumps({"seq": seq, "sent": time.time_ns()}).encode())
            result.ops += 1
        result.elapsed = time.monotonic() - start
        result.cpu = time.process_time() - cpu0
    except BaseException as error:
        result.error = _describe(error)
    finally:
        started.set()
        writer_done.set()
    results.put(result)


# ---------------------------------------------------------------------------- phases


@dataclass
class Phase:
    """One timed phase: its figure, and the CPU each side used while it ran."""

    name: str
    value: float | None = None
    ops: int = 0
    wall: float = 0.0
    server_cpu: float | None = None
    client_cpu: float = 0.0
    detail: str = ""
    error: str | None = None


class Runner:
    """Runs client processes against one server and measures the server's CPU meanwhile."""

    def __init__(self, ctx: SpawnContext, server: Service) -> None:
        self._ctx = ctx
        self.server = server

    def _spawn(self, target: Callable[..., None], *args: object) -> SpawnProcess:
        self.server.check_alive()  # a dead server fails the phase at once
        process = self._ctx.Process(target=target, args=args, daemon=True)
        process.start()
        return process

    @staticmethod
    def _reap(processes: list[SpawnProcess]) -> None:
        for process in processes:
            process.join(STOP_TIMEOUT_S)
            if process.is_alive():
                process.terminate()
                process.join(STOP_TIMEOUT_S)

    def _get(self, results: Queue[WorkerResult], timeout: float) -> WorkerResult:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return results.get(timeout=1.0)
            except queue.Empty:
                self.server.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no result from a client within {timeout:.0f} s") from None

    def _cpu(self) -> float | None:
        return cpu_seconds(self.server.pid)

    def _finish(self, phase: Phase, wall0: float, cpu0: float | None) -> None:
        phase.wall = time.monotonic() - wall0
        cpu1 = self._cpu()
        if cpu0 is not None and cpu1 is not None:
            phase.server_cpu = cpu1 - cpu0

    def throughput(self, name: str, kind: str, clients: int, seconds: float) -> Phase:
        """``clients`` client processes; for kind "esdb-async", ONE client process running
        ``clients`` asyncio tasks."""
        phase = Phase(name)
        results: Queue[WorkerResult] = self._ctx.Queue()
        target = self.server.address
        workers: list[tuple[Callable[..., None], tuple[object, ...]]]
        if kind == "esdb-async":
            log(f"phase: {name} — {clients} asyncio task(s) in one client process, {seconds:g} s")
            workers = [(async_throughput_worker, (target, clients, seconds))]
        else:
            log(f"phase: {name} — {clients} client process(es), {seconds:g} s")
            workers = [(throughput_worker, (kind, target, i, seconds)) for i in range(clients)]
        barrier = self._ctx.Barrier(len(workers) + 1)
        processes = [self._spawn(worker, *args, barrier, results) for worker, args in workers]
        try:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(STARTUP_TIMEOUT_S)
            cpu0, wall0 = self._cpu(), time.monotonic()
            outcomes = [self._get(results, seconds + STARTUP_TIMEOUT_S) for _ in processes]
            self._finish(phase, wall0, cpu0)
        finally:
            self._reap(processes)
        errors = [outcome.error for outcome in outcomes if outcome.error]
        ops = sum(outcome.ops for outcome in outcomes)
        elapsed = max(outcome.elapsed for outcome in outcomes)
        phase.client_cpu = sum(outcome.cpu for outcome in outcomes)
        phase.ops = ops
        phase.detail = f"{ops:,} ops in {elapsed:.2f} s"
        if errors:
            phase.error = f"{len(errors)} client(s) failed; first: {errors[0]}"
        if ops and elapsed > 0:
            phase.value = ops / elapsed
        return phase

    def _started(self, started: MpEvent) -> None:
        while not started.wait(1.0):
            self.server.check_alive()

    def prefill(self, name: str, events: int) -> Phase:
        log(f"phase: {name} — {events:,} events in batch appends of {PREFILL_BATCH}")
        phase = Phase(name)
        results: Queue[WorkerResult] = self._ctx.Queue()
        started = self._ctx.Event()
        process = self._spawn(prefill_worker, self.server.address, events, started, results)
        try:
            self._started(started)
            cpu0, wall0 = self._cpu(), time.monotonic()
            outcome = self._get(results, 600.0)
            self._finish(phase, wall0, cpu0)
        finally:
            self._reap([process])
        phase.client_cpu = outcome.cpu
        phase.error = outcome.error
        phase.detail = f"{outcome.ops:,} events in {outcome.elapsed:.2f} s"
        if outcome.ops and outcome.elapsed > 0:
            phase.value = outcome.ops / outcome.elapsed
        return phase

    def read(self, name: str, kind: str, events: int) -> Phase:
        """Best of READ_PASSES full reads, each by a fresh client process."""
        log(f"phase: {name} — {READ_PASSES} passes")
        phase = Phase(name)
        passes: list[str] = []
        for _ in range(READ_PASSES):
            results: Queue[WorkerResult] = self._ctx.Queue()
            started = self._ctx.Event()
            process = self._spawn(read_worker, kind, self.server.address, events, started, results)
            try:
                self._started(started)
                cpu0, wall0 = self._cpu(), time.monotonic()
                outcome = self._get(results, 600.0)
                attempt = Phase(name)
                self._finish(attempt, wall0, cpu0)
            finally:
                self._reap([process])
            if outcome.error:
                phase.error = outcome.error
                break
            passes.append(f"{outcome.ops:,} in {outcome.elapsed:.2f} s")
            if not outcome.ops or outcome.elapsed <= 0:
                phase.error = f"read {outcome.ops} events (expected {events:,})"
                break
            rate = outcome.ops / outcome.elapsed
            if phase.value is None or rate > phase.value:
                phase.value, phase.ops, phase.wall = rate, outcome.ops, attempt.wall
                phase.server_cpu, phase.client_cpu = attempt.server_cpu, outcome.cpu
        phase.detail = "; ".join(passes) + " (best shown)"
        return phase

    def latency(self, name: str, kind: str, count: int) -> tuple[Phase, Phase]:
        log(f"phase: {name} — {count:,} events, one every {LATENCY_INTERVAL_S * 1e3:g} ms")
        p50, p99 = Phase(f"{name} p50"), Phase(f"{name} p99")
        results: Queue[WorkerResult] = self._ctx.Queue()
        writer_results: Queue[WorkerResult] = self._ctx.Queue()
        ready, writer_done = self._ctx.Event(), self._ctx.Event()
        target = self.server.address
        processes = [
            self._spawn(subscriber_worker, kind, target, count, ready, writer_done, results)
        ]
        try:
            if not ready.wait(STARTUP_TIMEOUT_S):
                self.server.check_alive()
            started = self._ctx.Event()
            processes.append(
                self._spawn(
                    latency_writer,
                    kind,
                    target,
                    count,
                    LATENCY_INTERVAL_S,
                    started,
                    writer_done,
                    writer_results,
                )
            )
            self._started(started)
            cpu0, wall0 = self._cpu(), time.monotonic()
            budget = count * LATENCY_INTERVAL_S * 20 + STARTUP_TIMEOUT_S
            written = self._get(writer_results, budget)
            received = self._get(results, STARTUP_TIMEOUT_S)
            self._finish(p50, wall0, cpu0)
        finally:
            self._reap(processes)
        samples = sorted(received.samples)
        send_rate = written.ops / written.elapsed if written.elapsed > 0 else 0.0
        p50.detail = (
            f"{written.ops:,} sent at {send_rate:,.0f}/s, {len(samples):,} received;"
            f" max {samples[-1]:.2f} ms"
            if samples
            else f"{written.ops:,} sent, none received"
        )
        p50.client_cpu = written.cpu + received.cpu
        p50.error = written.error or received.error
        if samples:
            p50.value, p99.value = percentile(samples, 50), percentile(samples, 99)
        return p50, p99


def guarded(
    phases: list[Phase], run: Callable[..., Phase | tuple[Phase, ...]], name: str, *args: object
) -> None:
    """Run a phase; on failure record the error and carry on (this is a report)."""
    try:
        outcome = run(name, *args)
    except Exception as error:
        log(f"{name} failed: {_describe(error)}")
        phases.append(Phase(name, error=_describe(error)))
        return
    for phase in outcome if isinstance(outcome, tuple) else (outcome,):
        phases.append(phase)
        if phase.error:
            log(f"{phase.name}: {phase.error}")


# ---------------------------------------------------------------------------- report


def durability(db_file: Path) -> str:
    """journal_mode read from the data file itself; synchronous from esdblocal's source."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)) as db:
            journal = str(db.execute("PRAGMA journal_mode").fetchone()[0]).upper()
    except sqlite3.Error as error:
        journal = f"unknown ({error})"
    try:
        source = (PROJECT_ROOT / "esdblocal" / "store.py").read_text()
    except OSError:
        source = ""
    match = re.search(r"PRAGMA synchronous\s*=\s*(\w+)", source)
    synchronous = match.group(1).upper() if match else "not set (SQLite default)"
    durable = journal == "WAL" and synchronous in {"FULL", "EXTRA"}
    return (
        f"{'yes' if durable else 'NO'}: journal_mode={journal} (read from {db_file.name}),"
        f" synchronous={synchronous} (per esdblocal/store.py)"
    )


def fmt(value: float | None, digits: int) -> str:
    return "failed" if value is None else f"{value:,.{digits}f}"


def ratio(ours: Phase | None, ceiling: Phase | None) -> str:
    if ours is None or ceiling is None or ours.value is None or not ceiling.value:
        return "—"
    return f"{ours.value / ceiling.value:.2f}"


def cpu_percent(seconds: float | None, wall: float) -> str:
    return "n/a" if seconds is None or wall <= 0 else f"{100 * seconds / wall:.0f} %"


@dataclass
class Row:
    """One line of the summary table: an esdblocal figure against one ceiling (or none)."""

    label: str
    ours: str
    ceiling: str | None
    kind: str
    digits: int = 0


def report(
    phases: dict[str, Phase], rows: list[Row], header: list[str], servers: list[Service]
) -> None:
    out = Report(["", "## esdblocal vs no-op Python gRPC", "", *(f"- {h}" for h in header), ""])
    table = []
    for row in rows:
        mine = phases.get(row.ours)
        theirs = phases.get(row.ceiling) if row.ceiling else None
        ceiling = fmt(theirs.value, row.digits) if theirs else "—"
        ours = fmt(mine.value if mine else None, row.digits)
        table.append([row.label, ours, ceiling, row.kind, ratio(mine, theirs)])
    out.table("metric|esdblocal|ceiling|ceiling kind|ratio", table, text=(3,))
    out.add(
        "ratio = esdblocal ÷ ceiling. For rates a ratio below 1 means esdblocal is slower than"
        " the ceiling; for latency a ratio above 1 means esdblocal is slower.",
        "",
        "### CPU during each timed phase (100 % = one core)",
        "",
    )
    table = []
    for key, phase in phases.items():
        if phase.wall <= 0 or phase.value is None:
            continue
        which = "no-op" if key.startswith("noop") else "esdblocal"
        server_cpu = cpu_percent(phase.server_cpu, phase.wall)
        client_cpu = cpu_percent(phase.client_cpu, phase.wall)
        table.append([phase.name, which, f"{phase.wall:.2f}", server_cpu, client_cpu])
        table[-1].append(phase.detail)
    header = "phase|server|wall s|server CPU|client processes CPU|detail"
    out.table(header, table, text=(1, 5))
    out.lines.pop()
    errors = [(phase.name, phase.error) for phase in phases.values() if phase.error]
    if errors:
        out.add("", "### Errors", "", *(f"- {name}: {error}" for name, error in errors))
    for server in servers:
        tail = server.stderr_tail()
        status = "not started" if server.returncode is None else f"exit {server.returncode}"
        out.add("", f"{server.name}: {status}; stderr {'(empty)' if not tail else 'tail:'}")
        if tail:
            out.add("```", tail, "```")
    print("\n".join(out.lines), flush=True)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="per append phase")
    parser.add_argument("--events", type=int, default=50_000, help="pre-fill for read_all")
    parser.add_argument("--latency-events", type=int, default=2_000, help="paced events")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--quick", action="store_true", help="tiny numbers: a smoke run")
    parser.add_argument("--serve-noop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--replay-events", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.events, args.latency_events = 1.0, 2_000, 200
    return args


@dataclass
class Run:
    phases: list[Phase] = field(default_factory=list)
    servers: list[Service] = field(default_factory=list)
    durability: str = "unknown (esdblocal did not run)"
    replay_events: int = 0

    def phase(self, name: str) -> Phase | None:
        return next((phase for phase in self.phases if phase.name == name), None)


def run_esdblocal(args: argparse.Namespace, ctx: SpawnContext, tmp: Path, run: Run) -> None:
    data = tmp / "esdb"
    argv = [sys.executable, "-m", "esdblocal", "--host", HOST, "--port", "0", "--data", str(data)]
    server = Service("esdblocal", argv, tmp, dict(os.environ))
    run.servers.append(server)
    with server:
        server.first_line()
        esdb, n, phases = Runner(ctx, server), args.clients, run.phases
        guarded(phases, esdb.prefill, "esdb-prefill", args.events)
        guarded(phases, esdb.read, "esdb-read", "esdb", args.events)
        guarded(phases, esdb.throughput, "esdb-append-1", "esdb", 1, args.seconds)
        guarded(phases, esdb.throughput, f"esdb-append-{n}", "esdb", n, args.seconds)
        guarded(phases, esdb.throughput, "esdb-async-1", "esdb-async", 1, args.seconds)
        guarded(phases, esdb.throughput, f"esdb-async-{n}", "esdb-async", n, args.seconds)
        guarded(phases, esdb.latency, "esdb-latency", "esdb", args.latency_events)
        run.durability = durability(data / "log.sqlite3")


def run_noop(args: argparse.Namespace, ctx: SpawnContext, tmp: Path, run: Run) -> None:
    read = run.phase("esdb-read")
    # The replay sends as many events as esdblocal's read_all read (--events if that failed).
    run.replay_events = read.ops if read is not None and read.ops else args.events
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-noop"]
    argv += ["--replay-events", str(run.replay_events)]
    server = Service("no-op gRPC server", argv, tmp, dict(os.environ))
    run.servers.append(server)
    with server:
        server.first_line()
        noop, n, phases = Runner(ctx, server), args.clients, run.phases
        guarded(phases, noop.throughput, "noop-call-1", "noop", 1, args.seconds)
        guarded(phases, noop.throughput, f"noop-call-{n}", "noop", n, args.seconds)
        guarded(phases, noop.throughput, "noop-append-1", "noop-append", 1, args.seconds)
        guarded(phases, noop.throughput, f"noop-append-{n}", "noop-append", n, args.seconds)
        guarded(phases, noop.read, "noop-stream", "noop", args.events)
        guarded(phases, noop.read, "noop-replay", "replay", run.replay_events)
        guarded(phases, noop.latency, "noop-relay", "noop", args.latency_events)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_noop:
        asyncio.run(serve_noop(args.replay_events))
        return 0
    ctx = mp.get_context("spawn")
    n = args.clients
    log(f"{os.cpu_count()} CPU core(s); durations: {args.seconds:g} s per append phase")
    run = Run()
    with tempfile.TemporaryDirectory(prefix="esdblocal-bench-") as tmp:
        try:
            for group in (run_esdblocal, run_noop):
                try:
                    group(args, ctx, Path(tmp), run)
                except Exception as error:  # a server that would not start, or died
                    log(f"{group.__name__} failed: {_describe(error)}")
                    run.phases.append(Phase(group.__name__, error=_describe(error)))
        finally:
            for child in mp.active_children():
                child.terminate()
                child.join(STOP_TIMEOUT_S)
        by_key = {phase.name: phase for phase in run.phases}
        header = [
            f"CPU cores: {os.cpu_count()} — server and client processes share them, see the"
            " CPU table",
            f"Python {platform.python_version()}, grpcio {grpc.__version__},"
            f" esdbclient {metadata.version('esdbclient')}, {platform.system()}",
            f"durable: {run.durability}",
            "clients: one process each (multiprocessing 'spawn'), one EventStoreDBClient or"
            " grpc channel per process, except the asyncio rows; servers: subprocesses, one at"
            " a time",
            f"appends: single NewEvent, StreamState.ANY, {STREAMS_PER_CLIENT} own streams per"
            f" client, {args.seconds:g} s. The sync esdbclient sends a single event as a"
            " client-streaming Append call (options message + one proposed message), so each"
            ' append row has two ceilings: a unary no-op call (b"" → b""), and an'
            " Append-shaped no-op (client-streaming call of"
            f" {' + '.join(str(len(m)) for m in APPEND_SHAPED_MESSAGES)} raw bytes, drained,"
            ' b"" back), same client structure',
            f"asyncio client, one process: AsyncEventStoreDBClient (connect() first) with 1 or"
            f" {n} appender tasks in ONE process; its single-event append_to_stream is a"
            " BatchAppend call (bidirectional stream: one request, first response, cancel),"
            " not Append; no ceiling measured",
            f"read_all: {args.events:,} events pre-filled in batches of {PREFILL_BATCH}."
            f" Ceilings: raw = the same count of {STREAM_MESSAGE_SIZE}-byte messages to a grpc"
            " client that does not parse them; replay = the no-op server answers Streams/Read"
            f" with one pre-serialized ReadResp {run.replay_events:,} times (the count"
            " esdblocal's read_all read) and a real EventStoreDBClient.read_all() iterates"
            " them, the most esdbclient's sync read path can consume here from a server doing"
            " no work",
            f"latency: {args.latency_events:,} events, one every"
            f" {LATENCY_INTERVAL_S * 1e3:g} ms (or as fast as the writer's appends return);"
            " ceiling relays them writer → no-op server → subscriber",
        ]
        unary, shaped = "unary no-op call", "Append-shaped no-op (client-streaming)"
        raw, replay = "raw messages, not parsed", "replay into esdbclient read_all()"
        sync_1, sync_n = "appends/s, 1 sync client", f"appends/s, {n} sync client processes"
        async_1 = "appends/s, asyncio client, one process, 1 task"
        async_n = f"appends/s, asyncio client, one process, {n} tasks"
        rows = [
            Row(sync_1, "esdb-append-1", "noop-call-1", unary),
            Row(sync_1, "esdb-append-1", "noop-append-1", shaped),
            Row(sync_n, f"esdb-append-{n}", f"noop-call-{n}", unary),
            Row(sync_n, f"esdb-append-{n}", f"noop-append-{n}", shaped),
            Row(async_1, "esdb-async-1", None, "none measured"),
            Row(async_n, f"esdb-async-{n}", None, "none measured"),
            Row("read_all events/s", "esdb-read", "noop-stream", raw),
            Row("read_all events/s", "esdb-read", "noop-replay", replay),
            Row("subscription latency p50 ms", "esdb-latency p50", "noop-relay p50", "relay", 2),
            Row("subscription latency p99 ms", "esdb-latency p99", "noop-relay p99", "relay", 2),
            Row(
                f"batch-append events/s ({PREFILL_BATCH}/append)",
                "esdb-prefill",
                None,
                "none measured",
            ),
        ]
        report(by_key, rows, header, run.servers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
