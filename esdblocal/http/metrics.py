"""``MetricsController``: Prometheus metrics at ``/metrics``, under the real server's names.

EventStoreDB (23.10+) exports its OpenTelemetry meters (``MetricsBootstrapper``, configured
by ``metricsconfig.json``) through the Prometheus exporter, which turns a meter such as
``eventstore-grpc-method-duration`` (seconds) into ``eventstore_grpc_method_duration_seconds``.
esdblocal serves the ones that have a counterpart here, with the same names and labels:

- ``eventstore_grpc_method_duration_seconds{activity,status}``: ``read`` (Streams.Read),
  ``append`` (Append, BatchAppend), as ``GrpcMethods`` maps them; ``status`` is
  ``successful`` or ``failed``;
- ``eventstore_current_incoming_grpc_calls`` and
  ``eventstore_incoming_grpc_calls_total{kind=total|failed|unimplemented|deadline-exceeded}``;
- ``eventstore_io_events_total{activity=read|written}`` and
  ``eventstore_io_bytes_total{activity=written}`` (data and metadata of committed events);
- ``eventstore_checkpoints{name,read}`` (writer, chaser, index: the log's head position);
- ``eventstore_statuses{name="Node",status="Leader"}`` (when the status was entered);
- ``eventstore_proc_*``, ``eventstore_disk_io_*``, ``eventstore_sys_*`` from ``/proc``;
- ``eventstore_projection_*{projection}`` and ``eventstore_persistent_sub_*``.

The gRPC figures come from :class:`GrpcMetrics`, an interceptor the node installs on its gRPC
server; the rest is read when Prometheus scrapes. Each node has its own registry, so several
nodes in one process (as in tests) do not mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from esdblocal.http.common import Context, Controller, Route

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# metricsconfig.json's GrpcMethods: which calls are timed, under which activity.
ACTIVITIES = {
    "/event_store.client.streams.Streams/Read": "read",
    "/event_store.client.streams.Streams/Append": "append",
    "/event_store.client.streams.Streams/BatchAppend": "append",
}
READS = "/event_store.client.streams.Streams/Read"
# The real server's explicit histogram buckets for durations (seconds), up to 60 s.
BUCKETS = (0.000_005, 0.000_01, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60)


class GrpcMetrics:
    """Counts and times the node's gRPC calls (an interceptor on its gRPC server)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.duration = Histogram(
            "eventstore_grpc_method_duration_seconds",
            "Time taken by gRPC methods",
            ["activity", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.current = Gauge(
            "eventstore_current_incoming_grpc_calls",
            "Number of gRPC calls in progress",
            registry=self.registry,
        )
        self.calls = Counter(
            "eventstore_incoming_grpc_calls",
            "Incoming gRPC calls by kind",
            ["kind"],
            registry=self.registry,
        )
        self.events = Counter(
            "eventstore_io_events",
            "Events read and written",
            ["activity"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "eventstore_io_bytes",
            "Bytes of events written",
            ["activity"],
            registry=self.registry,
        )
        for kind in ("total", "failed", "unimplemented", "deadline-exceeded"):
            self.calls.labels(kind)
        for activity in ("read", "written"):
            self.events.labels(activity)
        self.bytes.labels("written")
        self.interceptor = _Interceptor(self)

    def finished(self, method: str, started: float, error: BaseException | None, code: Any) -> None:
        self.current.dec()
        failed = error is not None or (code is not None and code != grpc.StatusCode.OK)
        if failed:
            self.calls.labels("failed").inc()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED or isinstance(error, asyncio.TimeoutError):
            self.calls.labels("deadline-exceeded").inc()
        activity = ACTIVITIES.get(method)
        if activity is not None:
            status = "failed" if failed else "successful"
            self.duration.labels(activity, status).observe(time.perf_counter() - started)


class _Interceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: GrpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        metrics = self._metrics
        metrics.calls.labels("total").inc()
        if handler is None:
            metrics.calls.labels("unimplemented").inc()
            return None
        method: str = details.method
        if handler.response_streaming:
            behaviour = handler.stream_stream or handler.unary_stream
            wrapped_stream = _streaming(metrics, method, behaviour)
            if handler.request_streaming:
                return grpc.stream_stream_rpc_method_handler(
                    wrapped_stream, handler.request_deserializer, handler.response_serializer
                )
            return grpc.unary_stream_rpc_method_handler(
                wrapped_stream, handler.request_deserializer, handler.response_serializer
            )
        behaviour = handler.stream_unary or handler.unary_unary
        wrapped = _unary(metrics, method, behaviour)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                wrapped, handler.request_deserializer, handler.response_serializer
            )
        return grpc.unary_unary_rpc_method_handler(
            wrapped, handler.request_deserializer, handler.response_serializer
        )


def _code(context: grpc.aio.ServicerContext) -> Any:
    with contextlib.suppress(Exception):
        return context.code()
    return None


def _unary(metrics: GrpcMetrics, method: str, behaviour: Any) -> Any:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        metrics.current.inc()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await behaviour(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            metrics.finished(method, started, error, _code(context))

    return call


def _streaming(metrics: GrpcMetrics, method: str, behaviour: Any) -> Any:
    reads = method == READS

    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        metrics.current.inc()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            result = behaviour(request, context)
            if hasattr(result, "__aiter__"):
                async for response in result:
                    if reads and response.WhichOneof("content") == "event":
                        metrics.events.labels("read").inc()
                    yield response
            else:
                await result
        except BaseException as raised:
            error = raised
            raise
        finally:
            metrics.finished(method, started, error, _code(context))

    return call


class MetricsController(Controller):
    """``GET /metrics``: the node's figures in Prometheus' text format (anyone may read)."""

    def __init__(self, context: Context, grpc_metrics: GrpcMetrics) -> None:
        super().__init__(context)
        self._grpc = grpc_metrics
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_NodeCollector(context))
        self._watcher: asyncio.Task[None] | None = None

    def routes(self) -> list[Route]:
        return [("GET", "/metrics", self._metrics)]

    def start(self) -> None:
        """Count committed events as the hub publishes them (no polling)."""
        self._watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def _watch(self) -> None:
        hub = self.context.hub
        seen = hub.head
        written = self._grpc.events.labels("written")
        written_bytes = self._grpc.bytes.labels("written")
        while True:
            changed = hub.changed
            await changed.wait()
            if not hub.covers(seen):  # fell behind the buffer: count from here on
                seen = hub.head
                continue
            while records := hub.after(seen, 10_000):
                written.inc(len(records))
                written_bytes.inc(sum(len(r.data) + len(r.metadata) for r in records))
                seen = records[-1].position

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._grpc.registry) + generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


class _NodeCollector(Collector):
    """What is read at scrape time: checkpoints, statuses, process, system, subsystems."""

    def __init__(self, context: Context) -> None:
        self._context = context

    def collect(self) -> Iterator[Any]:
        context = self._context
        head = context.hub.head
        checkpoints = GaugeMetricFamily(
            "eventstore_checkpoints", "Checkpoints (log positions)", labels=["name", "read"]
        )
        for name in ("chaser", "writer", "index"):
            checkpoints.add_metric([name, "non-flushed"], head)
        yield checkpoints
        statuses = GaugeMetricFamily(
            "eventstore_statuses",
            "When each component entered its status (seconds since the epoch)",
            labels=["name", "status"],
        )
        statuses.add_metric(["Node", "Leader"], context.started)
        statuses.add_metric(["Index", "Idle"], context.started)
        yield statuses
        yield from _process(context.started)
        yield from _system(context)
        yield from _projections(context)
        yield from _persistent(context)


def _process(started: float) -> Iterator[Any]:
    times = os.times()
    pid = str(os.getpid())
    up = CounterMetricFamily(
        "eventstore_proc_up_time_seconds", "Time the process has run", labels=["pid"]
    )
    up.add_metric([pid], time.time() - started)
    yield up
    cpu = GaugeMetricFamily("eventstore_proc_cpu", "Process CPU time (user + system), seconds")
    cpu.add_metric([], times.user + times.system)
    yield cpu
    threads = GaugeMetricFamily("eventstore_proc_thread_count", "Threads in the process")
    with contextlib.suppress(OSError):
        threads.add_metric([], len(os.listdir("/proc/self/task")))
    yield threads
    memory = GaugeMetricFamily("eventstore_proc_mem_bytes", "Process memory", labels=["kind"])
    memory.add_metric(["working-set"], _resident_bytes())
    yield memory
    io = _proc_io()
    disk_bytes = CounterMetricFamily(
        "eventstore_disk_io_bytes", "Bytes read and written by the process", labels=["activity"]
    )
    disk_ops = CounterMetricFamily(
        "eventstore_disk_io_operations",
        "Read and write operations of the process",
        labels=["activity"],
    )
    if io:
        disk_bytes.add_metric(["read"], io.get("read_bytes", 0))
        disk_bytes.add_metric(["written"], io.get("write_bytes", 0))
        disk_ops.add_metric(["read"], io.get("syscr", 0))
        disk_ops.add_metric(["written"], io.get("syscw", 0))
    yield disk_bytes
    yield disk_ops


def _system(context: Context) -> Iterator[Any]:
    load = GaugeMetricFamily("eventstore_sys_load_avg", "System load average", labels=["period"])
    for period, value in zip(("1m", "5m", "15m"), os.getloadavg(), strict=True):
        load.add_metric([period], value)
    yield load
    memory = GaugeMetricFamily("eventstore_sys_mem_bytes", "System memory", labels=["kind"])
    with contextlib.suppress(OSError, ValueError):
        info = _meminfo()
        memory.add_metric(["free"], info.get("MemAvailable", 0))
        memory.add_metric(["total"], info.get("MemTotal", 0))
    yield memory
    disk = GaugeMetricFamily(
        "eventstore_sys_disk_bytes", "The database's disk", labels=["disk", "kind"]
    )
    with contextlib.suppress(OSError):
        usage = shutil.disk_usage(os.getcwd())
        disk.add_metric(["/", "used"], usage.used)
        disk.add_metric(["/", "total"], usage.total)
    yield disk


def _projections(context: Context) -> Iterator[Any]:
    manager = context.node.projection_manager
    if manager is None or not manager.enabled:
        return
    processed = CounterMetricFamily(
        "eventstore_projection_events_processed_after_restart",
        "Events processed by each projection since it started",
        labels=["projection"],
    )
    progress = GaugeMetricFamily(
        "eventstore_projection_progress", "Projection progress (0 to 1)", labels=["projection"]
    )
    running = GaugeMetricFamily(
        "eventstore_projection_running", "1 if the projection runs", labels=["projection"]
    )
    status = GaugeMetricFamily(
        "eventstore_projection_status",
        "1 for the projection's status",
        labels=["projection", "status"],
    )
    for managed in list(manager.projections.values()):
        stats = manager.statistics(managed)
        name = managed.name
        processed.add_metric([name], stats["eventsProcessedAfterRestart"])
        progress.add_metric([name], stats["progress"] / 100)
        running.add_metric([name], 1 if stats["status"] == "Running" else 0)
        for each in ("Running", "Faulted", "Stopped"):
            status.add_metric([name, each], 1 if stats["status"].startswith(each) else 0)
    yield processed
    yield progress
    yield running
    yield status


def _persistent(context: Context) -> Iterator[Any]:
    subsystem = context.node.persistent
    if subsystem is None:
        return
    labels = ["event_stream_id", "group_name"]
    connections = GaugeMetricFamily(
        "eventstore_persistent_sub_connections", "Consumers of each group", labels=labels
    )
    parked = GaugeMetricFamily(
        "eventstore_persistent_sub_parked_messages", "Parked messages", labels=labels
    )
    in_flight = GaugeMetricFamily(
        "eventstore_persistent_sub_in_flight_messages", "Messages in flight", labels=labels
    )
    processed = CounterMetricFamily(
        "eventstore_persistent_sub_items_processed", "Messages processed", labels=labels
    )
    for group in list(subsystem.all_groups()):
        key = [group.stream, group.name]
        connections.add_metric(key, len(group.consumers))
        parked.add_metric(key, group.parked_count)
        in_flight.add_metric(key, sum(len(c.unconfirmed) for c in group.consumers))
        processed.add_metric(key, group.total_items)
    yield connections
    yield parked
    yield in_flight
    yield processed


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _proc_io() -> dict[str, int]:
    try:
        with open("/proc/self/io") as io:
            return {k: int(v) for k, _, v in (line.partition(":") for line in io) if v.strip()}
    except (OSError, ValueError):
        return {}


def _meminfo() -> dict[str, int]:
    with open("/proc/meminfo") as meminfo:
        values = {}
        for line in meminfo:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
        return values
