"""``python -m projections``: the projector process (composition root of the read side).

Reads ``ESDB_URI``/``ESDB_PORT`` and ``DATA_DIR`` like the web does; flags override them.
One projector runs per read store (a lock file enforces it). ``--rebuild`` replays every
event into a new generation while the web keeps answering from the current one, swaps it
in once caught up, and then carries on following ``$all`` as the projector.

A read store found to be from another event store (at start or after a reconnection:
``eventstore.identity``) is marked so (the web answers 503 for it, ``/readyz`` says why) and
rebuilt the same way, without being asked: its rows are never served as ready again.

Exit status: 0 after SIGTERM/SIGINT (the batch in hand is committed first; one line,
``stopped``, even while it is still starting), 2 when another projector holds the store, 3
when the event store refuses the configuration (credentials, access to ``$all``, an
untrusted certificate, a malformed ``ESDB_URI``): retrying cannot help.
"""

from __future__ import annotations

# ruff: noqa: E402 (the signal handlers come before the slow imports)
import signal
import threading
from types import FrameType

# First, before gRPC and the rest load (a second or so): a Ctrl-C or SIGTERM while starting
# is a clean stop too, never a KeyboardInterrupt traceback or a death by signal.
STOP = threading.Event()


def request_stop(signum: int, frame: FrameType | None) -> None:
    STOP.set()


signal.signal(signal.SIGTERM, request_stop)
signal.signal(signal.SIGINT, request_stop)

import argparse
import fcntl
import logging
import os
import sys
from pathlib import Path

import msgspec
from prometheus_client import REGISTRY

import jsonlogs
from eventstore.connection import esdb_uri, redact, root_certificates
from eventstore.errors import StoreRefused
from eventstore.feed import Feed
from projections import config, schema
from projections.projector import ForeignStore, Projector, report
from projections.views import VIEWS
from projections.writer import ReadStoreWriter
from telemetry import metrics, tracing


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m projections", description=__doc__)
    parser.add_argument("--esdb-uri", default=esdb_uri(), help="event store (ESDB_URI)")
    parser.add_argument(
        "--data-dir", type=Path, default=config.data_dir(), help="local state (DATA_DIR)"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="replay everything into a fresh store, swap it in"
    )
    parser.add_argument("--batch", type=int, default=2000, help="most events per transaction")
    parser.add_argument("--lag-every", type=float, default=30.0, help="seconds between lag logs")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--quarantine",
        action="store_true",
        help="list the events the read side set aside (one JSON object per line) and exit",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    jsonlogs.configure(args.log_level)
    directory = config.read_directory(args.data_dir)
    if args.quarantine:
        return list_quarantine(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = (directory / "projector.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another projector is running on {directory}; stop it first", file=sys.stderr)
        return 2

    stop = STOP
    feed = Feed(args.esdb_uri, [view.category for view in VIEWS], root_certificates())
    tracing.setup("restful-cqrs-projector")
    port = metrics.port_from_env("PROJECTOR_METRICS_PORT", metrics.DEFAULT_PROJECTOR_PORT)
    if port is not None:
        figures = metrics.ProjectorFigures(feed.head, lambda: len(schema.quarantine_of(directory)))
        REGISTRY.register(figures)
        metrics.serve(port, os.environ.get("METRICS_HOST", "127.0.0.1"))
    try:
        return project(args, feed, directory, stop)
    except StoreRefused as error:
        report("the event store refuses this configuration", logging.ERROR, error=str(error))
        return 3
    finally:
        tracing.shutdown()
        feed.reset()


def list_quarantine(directory: Path) -> int:
    """What ``--quarantine`` prints: each event on a line, then how many (on stderr)."""
    found = schema.quarantine_of(directory)
    for entry in found:
        print(msgspec.json.encode(entry).decode())
    print(f"{len(found)} quarantined event(s) in {directory}", file=sys.stderr)
    return 0


def project(args: argparse.Namespace, feed: Feed, directory: Path, stop: threading.Event) -> int:
    if args.rebuild and not rebuild(args, feed, directory, stop):
        return 0
    while not stop.is_set():
        writer = ReadStoreWriter(schema.open_current(directory))
        report("projecting", store=str(writer.path), position=writer.position())
        try:
            Projector(feed, writer, args.batch, lag_every=args.lag_every).run(stop)
        except ForeignStore as foreign:
            writer.distrust(foreign.mismatch)
            report(
                "the read store is not from this event store; rebuilding it from this one",
                logging.WARNING,
                reason=foreign.mismatch.reason,
                detail=foreign.mismatch.detail,
                store=str(writer.path),
                esdbUri=redact(args.esdb_uri),
                todo="nothing if ESDB_URI names the right store: reads answer 503 until the"
                " rebuilt store is swapped in; if it does not, stop and set ESDB_URI (or"
                " ESDB_PORT)",
            )
            if not rebuild(args, feed, directory, stop):
                return 0
            continue
        finally:
            writer.close()
    report("stopped")
    return 0


def rebuild(args: argparse.Namespace, feed: Feed, directory: Path, stop: threading.Event) -> bool:
    """Replay everything into a new generation and swap it in; False if stopped first."""
    while True:
        fresh = schema.new_generation(directory)
        report("rebuilding", into=str(fresh))
        writer = ReadStoreWriter(fresh)
        try:
            done = Projector(feed, writer, args.batch, lag_every=args.lag_every).run(
                stop, until_live=True
            )
        except ForeignStore as foreign:  # the store changed under the rebuild: again
            report(
                "the event store changed during the rebuild; starting it again",
                logging.WARNING,
                reason=foreign.mismatch.reason,
                detail=foreign.mismatch.detail,
            )
            continue
        finally:
            writer.close()
        if not done:
            report("rebuild interrupted; the current store is unchanged", left=str(fresh))
            return False
        schema.swap(directory, fresh)
        report("rebuilt store swapped in", store=str(fresh))
        return True


if __name__ == "__main__":
    status = main()
    # Leave without the interpreter's final garbage collection: it can deadlock in grpc's
    # channel finalizer against the feed's daemon reader thread (seen once, after "stopped";
    # everything is committed and closed by now).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
