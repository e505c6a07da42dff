"""gunicorn settings for the web process (``gunicorn -c deploy/gunicorn.conf.py app.wsgi:app``).

- Workers and threads from the core count (``WEB_WORKERS``, ``WEB_THREADS`` override).
- The app is imported in each worker after the fork (``preload_app`` off), so every worker
  creates its own esdbclient client and gRPC channel; ``post_worker_init`` connects it and
  reads the store's head once, so a worker is warm before its first request.
- Configuration errors stop the web at start-up with one line and exit status 3, no
  traceback: ``on_starting`` runs ``python -m app.preflight`` before any worker starts
  (bad settings, credentials refused, no access to ``$all``, an untrusted certificate). A
  store that is merely down does not stop it: workers start, answer 503 with Retry-After,
  and ``/readyz`` says why, until it is back.
- SIGTERM: gunicorn stops accepting, lets requests in progress finish for up to
  ``graceful_timeout`` seconds, then exits; no request is cut half-way under that bound.
- Requests gunicorn refuses before the app sees them answer problem+json (``post_fork``).
- A body the app did not read (a 413 answers first) is drained after the answer, bounded
  in bytes and time (``post_request``), so a client that sends it whole reads the answer.
- Logs: one JSON object per line on stderr, gunicorn's and the app's; the app writes the
  access line itself (with the request id), so gunicorn's access log stays off.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import socket
import subprocess
import sys
from typing import Any

CORES = multiprocessing.cpu_count()

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_WORKERS") or 2 * CORES)
threads = int(os.environ.get("WEB_THREADS") or 2)
# gthread (threads > 1, the default) keeps connections alive, which high-throughput clients
# use, and lets a worker serve others while one waits for the projector; WEB_THREADS=1 is
# the sync worker: one request at a time, each connection closed (bench/README.md has both).
worker_class = "gthread" if threads > 1 else "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs one structured line per request itself
logger_class = "app.logs.GunicornLogger"  # ... so gunicorn builds no access line of its own
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
logconfig_dict: dict[str, Any] = {}  # filled below from app.logs (JSON lines)
preload_app = False  # import the app in each worker, after the fork
proc_name = "restful-cqrs-web"
# A method is a case-sensitive token (RFC 9110 9.1): "get" or "MKCALENDARCOLLECTIONS" reach
# the app, which answers 501 unknown-method, instead of gunicorn's own 400 for unusual ones.
permit_unconventional_http_method = True
control_socket_disable = True  # gunicorn 27's control socket: one shared path per user; unused


def _logging() -> dict[str, Any]:
    sys.path.insert(0, os.getcwd())
    from app.logs import GUNICORN_LOGGING

    return GUNICORN_LOGGING


logconfig_dict = _logging()


def _port_taken(server: Any) -> None:
    """A port another process listens on ends the start in one line naming the variable
    (gunicorn alone retries for 5 s and then says only "Can't connect")."""
    for address in server.cfg.address:
        if not isinstance(address, tuple):  # a unix socket or a file descriptor
            continue
        host, port = address[0], address[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    server.log.error(
                        "port %s on %s is in use by another process: set PORT (and HOST)"
                        " to a free one, e.g. PORT=%s make run",
                        port, host, port + 1,
                    )  # fmt: skip
                    sys.exit(3)
                raise


def on_starting(server: Any) -> None:
    """Master, before any worker: the port must be free; then ``python -m app.preflight`` in
    a process of its own (the master must not open a gRPC channel it would carry over the
    fork) loads the settings and asks the store for its head; a configuration error stops
    gunicorn here, exit status 3."""
    _port_taken(server)
    _clean_metrics()
    done = subprocess.run([sys.executable, "-m", "app.preflight"], check=False)
    if done.returncode != 0:
        sys.exit(done.returncode)


def when_ready(server: Any) -> None:
    """Master, listening: where a person goes next (the API's entry point, the browser client)."""
    for address in server.cfg.address:
        if isinstance(address, tuple):
            host = f"[{address[0]}]" if ":" in address[0] else address[0]
            base = f"http://{host}:{address[1]}"
            server.log.info("API at %s/v1 · browser client at %s/app/", base, base)
    _serve_metrics()


def post_fork(server: Any, worker: Any) -> None:
    """Worker, just after the fork: the requests gunicorn refuses itself (request line,
    header fields, chunking) are answered in problem+json, as the app answers (app.refusals)."""
    from app.refusals import install

    install()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Worker, after each answer: the rest of a body the app did not read (a 413 answers
    before reading) is drained, bounded, so the client reads the answer, not a reset."""
    from app.refusals import drain_body

    drain_body(worker, req, environ, resp)


def post_worker_init(worker: Any) -> None:
    """Worker, after the fork and the app's import: connect its own client and read the
    head once, so the first request does not pay for the connection."""
    wsgi = sys.modules.get("app.wsgi")
    if wsgi is None:  # another app under this config (the benchmarks' hello-world)
        return
    from eventstore.streams import StoreUnavailable

    try:
        wsgi.store.check()
    except StoreUnavailable as error:
        worker.log.warning("the event store is unreachable for now (503 until it is): %s", error)


# Metrics (telemetry.metrics): every worker writes its figures under PROMETHEUS_MULTIPROC_DIR
# (set by on_starting, in the master, before any worker imports prometheus_client), emptied
# at each start; the master serves their sum on METRICS_HOST:METRICS_PORT (METRICS_PORT=off).


def _clean_metrics() -> None:
    import shutil

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        os.environ.get("DATA_DIR", "var"), "prometheus"
    )
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def _serve_metrics() -> None:
    """Master, listening: serve /metrics on a port of its own (loopback by default)."""
    from telemetry import metrics

    port = metrics.port_from_env("METRICS_PORT", metrics.DEFAULT_WEB_PORT)
    if port is not None:
        metrics.serve(
            port, os.environ.get("METRICS_HOST", "127.0.0.1"), metrics.multiprocess_registry()
        )


def child_exit(server: Any, worker: Any) -> None:
    """Master, a worker gone: its live gauges (long-poll slots) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
