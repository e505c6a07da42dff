"""Prometheus figures of the web and the projector, and the server that shows them.

gunicorn's workers are processes: under gunicorn, ``deploy/gunicorn.conf.py`` points
``PROMETHEUS_MULTIPROC_DIR`` at ``$DATA_DIR/prometheus`` (emptied as the master starts)
before any worker imports prometheus_client, every worker writes its figures there, and the
master serves their sum (``MultiProcessCollector``) on ``METRICS_HOST:METRICS_PORT``. The
projector is one process and serves its own registry on ``PROJECTOR_METRICS_PORT``.

Metrics are served on a port of their own, on loopback by default, not on the API's port:
they are not a resource of the API (no API key scope, not behind the API's proxy), they say
things about every client at once (rates, errors by route), and a scraper must reach them
even when the API refuses everyone. Whoever can reach the port may read them: bind it to
another interface (``METRICS_HOST``) only where the network lets the scraper alone in.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import falcon
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger("telemetry")

DEFAULT_WEB_PORT = 9464
DEFAULT_PROJECTOR_PORT = 9465
OFF = ("", "off", "none")

# ---------------------------------------------------------------- the web

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request (the app's part)",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COMMANDS = Counter(
    "commands_total", "Commands by domain model and HTTP outcome", ["domain_model", "outcome"]
)
APPENDS = Counter("event_appends_total", "Appends to the event store that succeeded")
APPENDED_EVENTS = Counter("events_appended_total", "Events appended to the event store")
CONFLICT_RETRIES = Counter(
    "command_conflict_retries_total", "Commands decided again after a concurrent writer won"
)
REPLAYS = Counter(
    "idempotent_replays_total", "Commands answered from an earlier request's Idempotency-Key"
)
READ_WAITS = Counter(
    "read_your_writes_waits_total",
    "Reads that waited for the projector to reach their Commit-Position, by outcome",
    ["outcome"],
)
READ_WAIT_SECONDS = Histogram(
    "read_your_writes_wait_seconds",
    "How long a read waited on its Commit-Position",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LONG_POLL_SLOTS = Gauge(
    "long_poll_slots_in_use", "Long-polls holding a slot now", multiprocess_mode="livesum"
)

# ---------------------------------------------------------------- the projector

FOLDED = Counter("projector_events_total", "Events folded into the read store")
BATCH_SECONDS = Histogram(
    "projector_batch_commit_seconds",
    "Time to fold one batch and commit it with its checkpoint",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
POSITION = Gauge("projector_position", "Commit position of the read store's checkpoint")

_command = threading.local()  # the domain model of the command this thread runs


def command_model(domain_model: str) -> None:
    """The command handler says which domain model this request's command is."""
    _command.model = domain_model


# HTTP's own methods are labels as they are; any other (a 501) is "other", so that a client
# cannot grow the series without bound.
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY")
)
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _request_children(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter's and the latency histogram's series for one answer, looked up
    once each (``labels()`` per request was 6 of the 16 µs these figures cost a request)."""
    method = method if method in _METHODS else "other"
    key = (route, method, status)
    found = _children.get(key)
    if found is None:
        found = _children[key] = (
            REQUESTS.labels(route, method, str(status)),
            LATENCY.labels(route, method),
        )
    return found


class Middleware:
    """Counts and times every request by route template, method and status, and each
    command by domain model and outcome (its status)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()
        _command.model = None

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "metrics_started", None)
        if started is None:
            return
        requests, latency = _request_children(
            req.uri_template or "unmatched", req.method, resp.status_code
        )
        requests.inc()
        latency.observe(time.perf_counter() - started)
        model = getattr(_command, "model", None)
        if model is not None:
            COMMANDS.labels(model, str(resp.status_code)).inc()
            _command.model = None


def timed_catch_up(
    catch_up: Callable[[falcon.Request], None],
) -> Callable[[falcon.Request], None]:
    """``Queries.catch_up`` that records each wait on a Commit-Position (and its 503s)."""
    from opentelemetry import trace

    def waiting(req: falcon.Request) -> None:
        started = time.perf_counter()
        outcome = "reached"
        try:
            catch_up(req)
        except falcon.HTTPError:
            raise
        except Exception as error:
            status = getattr(getattr(error, "kind", None), "status", None)
            outcome = "behind" if status == 503 else "refused"
            raise
        finally:
            waited = time.perf_counter() - started
            if waited > 0.0005 or outcome != "reached":  # a read that did wait
                READ_WAITS.labels(outcome).inc()
                READ_WAIT_SECONDS.observe(waited)
                span = trace.get_current_span()
                span.set_attribute("read.commit_position.waited_seconds", round(waited, 6))
                span.add_event("read-your-writes wait", {"outcome": outcome})

    return waiting


# ---------------------------------------------------------------- serving


def port_from_env(name: str, default: int) -> int | None:
    """The port ``name`` says (None: metrics are off)."""
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in OFF:
        return None
    return int(value)


def serve(port: int, host: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; a taken port is a warning
    (the figures are not worth stopping the service for)."""
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        log.warning("metrics not served on %s:%s (%s)", host, port, error)
        return
    log.info("metrics at http://%s:%s/metrics", host, port)


def multiprocess_registry() -> CollectorRegistry:
    """The sum of every worker's figures, read from ``PROMETHEUS_MULTIPROC_DIR``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class ProjectorFigures(Collector):
    """Read at each scrape: the store's head (newest event the projector follows), the lag
    behind it, and how many events sit in the read store's quarantine."""

    def __init__(
        self,
        head: Callable[[], int | None],
        quarantined: Callable[[], int],
    ) -> None:
        self._head = head
        self._quarantined = quarantined

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "projector_quarantined_events",
            "Events set aside in the read store's quarantine",
            value=self._quarantined(),
        )
        try:
            head = self._head()
        except Exception:  # the store is away: no head figure this scrape
            return
        position = POSITION._value.get()
        yield GaugeMetricFamily(
            "projector_head", "Commit position of the newest event followed", value=head or 0
        )
        yield GaugeMetricFamily(
            "projector_lag",
            "Commit positions between the store's head and the read store's checkpoint",
            value=max(0, (head or 0) - position),
        )


def counted(taken: Callable[[], Any]) -> Callable[[], Any]:
    """``Slots.taken`` that keeps ``long_poll_slots_in_use`` while a slot is held."""
    import contextlib

    @contextlib.contextmanager
    def holding() -> Iterator[bool]:
        with taken() as got:
            if not got:
                yield got
                return
            LONG_POLL_SLOTS.inc()
            try:
                yield got
            finally:
                LONG_POLL_SLOTS.dec()

    return holding
