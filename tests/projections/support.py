"""What the read-side tests share: events as the command side writes them, a projector on a
thread (as ``python -m projections`` runs it) or in its own process, and waiting for it."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from domain import cars, inventory
from domain.history import event_type
from eventstore.feed import Feed
from projections import schema
from projections.projector import Projector
from projections.reader import Page, ReadModels
from projections.views import VIEWS, Stored
from projections.writer import ReadStoreWriter

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = [view.category for view in VIEWS]


def new_event(event: inventory.InventoryEvent | cars.CarEvent) -> NewEvent:
    """The event as the command side appends it: the struct's tag is the event type."""
    return NewEvent(type=event_type(event), data=msgspec.json.encode(event))


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, every: float = 0.01
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


Append = tuple[str, list[NewEvent]]


def append_rounds(uri: str, rounds: list[list[Append]], clients: int = 4) -> list[list[int]]:
    """Append each round's streams from ``clients`` connections at once (fast), a round
    only after the one before it is acknowledged; the commit position of every append."""
    connections = [EventStoreDBClient(uri) for _ in range(clients)]

    def run(appends: list[Append], k: int) -> list[int]:
        return [
            connections[k].append_to_stream(stream, current_version=StreamState.ANY, events=events)
            for stream, events in appends[k::clients]
        ]

    positions: list[list[int]] = []
    try:
        with ThreadPoolExecutor(clients) as pool:
            for appends in rounds:
                done: list[int] = [0] * len(appends)
                for k, part in enumerate(pool.map(partial(run, appends), range(clients))):
                    done[k::clients] = part
                positions.append(done)
    finally:
        for connection in connections:
            connection.close()
    return positions


class ThreadedProjector:
    """``Projector.run`` on a thread with its own writer and feed; its failure fails the test."""

    def __init__(self, uri: str, directory: Path, batch: int = 2000) -> None:
        self.directory = directory
        self.writer = ReadStoreWriter(schema.open_current(directory))
        self.feed = Feed(uri, CATEGORIES)
        self.projector = Projector(self.feed, self.writer, batch)
        self.read_models = ReadModels(directory)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="projector", daemon=True)

    def _run(self) -> None:
        try:
            self.projector.run(self._stop)
        except BaseException as error:
            self.error = error

    def start(self) -> ThreadedProjector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the projector did not stop within 10 s"
        self.writer.close()
        self.feed.reset()
        assert self.error is None, f"the projector failed: {self.error!r}"

    def wait_for(self, position: int, timeout: float = 15) -> None:
        """Until the read store's checkpoint is at ``position`` or beyond."""

        def reached() -> bool:
            if not self._thread.is_alive():
                raise AssertionError(f"the projector ended: {self.error!r}")
            return (self.read_models.position() or 0) >= position

        wait_until(reached, timeout, f"the read store to reach position {position}")


@contextmanager
def projecting(uri: str, directory: Path, batch: int = 2000) -> Iterator[ThreadedProjector]:
    projector = ThreadedProjector(uri, directory, batch).start()
    try:
        yield projector
    finally:
        projector.stop()


class ProjectorProcess:
    """``python -m projections`` as its own process; its JSON log lines are collected."""

    def __init__(self, uri: str, data_dir: Path, *args: str) -> None:
        command = [sys.executable, "-m", "projections", "--esdb-uri", uri]
        self.process = subprocess.Popen(
            [*command, "--data-dir", str(data_dir), *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def messages(self) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                found.append(parsed)
        return found

    def wait_for(self, message: str, timeout: float = 15) -> dict[str, Any]:
        """The first log line saying ``message`` (fails if the process ends first)."""
        deadline = time.monotonic() + timeout
        while True:
            for logged in self.messages():
                if logged.get("message") == message:
                    return logged
            if self.process.poll() is not None:
                self._drain.join(timeout=5)
                raise AssertionError(
                    f"exit {self.process.returncode} before {message!r}; log:\n{self.log}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {message!r} within {timeout} s; log:\n{self.log}")
            time.sleep(0.01)

    def wait(self, timeout: float = 15) -> int:
        code = self.process.wait(timeout=timeout)
        self._drain.join(timeout=5)
        return code

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        self.process.kill()
        self.wait()

    def __enter__(self) -> ProjectorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


TABLES = ("inventory_items", "cars")


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a generation holds (the write time aside), to compare two of them."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            for table in TABLES
        }
        # A count that went up and back down in different batches may stay as a zero row.
        tables["blocks"] = db.execute(
            "SELECT tbl, active, block, n FROM blocks WHERE n != 0 ORDER BY 1, 2, 3"
        ).fetchall()
        tables["search"] = db.execute(
            "SELECT rowid, text, kind, active FROM search ORDER BY rowid"
        ).fetchall()
        tables["meta"] = db.execute(
            "SELECT key, value FROM meta WHERE key != ? ORDER BY key", (schema.UPDATED,)
        ).fetchall()
    return tables


def current(directory: Path) -> Path:
    """The generation readers use (the test fails if there is none)."""
    path = schema.current_generation(directory)
    assert path is not None, f"no CURRENT in {directory}"
    return path


def row_of(stored: Stored[Any] | None) -> tuple[Any, ...] | None:
    """A record as the tuple these tests compare: id, version, active (0/1), its columns."""
    if stored is None:
        return None
    view = next(v for v in VIEWS if isinstance(stored.state, type(v.aggregate.zero())))
    return (stored.id, stored.version, int(stored.active), *view.to_columns(stored.state))


def rows_of(page: Page) -> list[tuple[Any, ...] | None]:
    return [row_of(stored) for stored in page.records]
