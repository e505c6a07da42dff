"""The projector checks its read store's event store at every (re)connection, and waits
quietly for a store that is still starting."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from esdbclient import EventStoreDBClient, StreamState

from domain import inventory
from eventstore.feed import Feed
from projections import schema
from projections.projector import ForeignStore, Projector
from projections.reader import Filters, ReadModels, Untrusted
from projections.views import INVENTORY_VIEW
from projections.writer import ReadStoreWriter

from .support import CATEGORIES, new_event, wait_until
from .test_projector import esdblocal, logged

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def create_item(uri: str, name: str) -> tuple[str, int]:
    item = str(uuid4())
    with EventStoreDBClient(uri) as client:
        position: int = client.append_to_stream(
            f"inventoryItem-{item}",
            current_version=StreamState.NO_STREAM,
            events=new_event(inventory.InventoryItemCreated(name=name)),
        )
    return item, position


class Running:
    """``Projector.run`` on a thread; what it raised, if anything."""

    def __init__(self, projector: Projector) -> None:
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(projector,), daemon=True)

    def _run(self, projector: Projector) -> None:
        try:
            projector.run(self.stop)
        except BaseException as error:
            self.error = error


@contextmanager
def running(uri: str, directory: Path, quiet_seconds: float = 5.0) -> Iterator[Running]:
    writer = ReadStoreWriter(schema.open_current(directory))
    feed = Feed(uri, CATEGORIES)
    run = Running(Projector(feed, writer, quiet_seconds=quiet_seconds))
    run.thread.start()
    try:
        yield run
    finally:
        run.stop.set()
        run.thread.join(timeout=10)
        writer.close()
        feed.reset()


def test_another_store_behind_the_same_uri_is_caught_at_the_reconnection(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "read"
    reads = ReadModels(directory)
    with esdblocal(tmp_path / "a") as (first, uri):
        port = int(uri.split(":")[2].split("?")[0])
        item, position = create_item(uri, "From A")
        with running(uri, directory) as run:
            wait_until(lambda: (reads.position() or 0) >= position, 15, "the first store")
            first.kill()
            first.wait(timeout=10)
            with esdblocal(tmp_path / "b", port) as (_, again):
                assert again == uri
                create_item(again, "From B")
                run.thread.join(timeout=30)
                assert not run.thread.is_alive(), "the projector went on with the other store"
                assert isinstance(run.error, ForeignStore), run.error
                assert run.error.mismatch.reason == "other-store"
                # Nothing of B was folded into A's rows; the web's reader, told of B, refuses.
                assert reads.item(INVENTORY_VIEW, item) is not None
                assert reads.page(INVENTORY_VIEW, Filters(state="all"), 0, 10).total == 1
                feed = Feed(again, CATEGORIES)
                try:
                    checked = ReadModels(directory, feed.history())
                    mismatch = checked.mismatch()
                    assert mismatch is not None and mismatch.reason == "other-store"
                    with pytest.raises(Untrusted):
                        checked.item(INVENTORY_VIEW, item)
                finally:
                    feed.reset()


def test_a_store_still_starting_is_waited_for_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="projections")
    port = free_port()
    uri = f"esdb://127.0.0.1:{port}?tls=false"
    directory = tmp_path / "read"
    with running(uri, directory, quiet_seconds=120) as run:
        wait_until(
            lambda: len(logged(caplog, "waiting for the event store")) >= 3, 30, "three retries"
        )
        assert not logged(caplog, "event store unreachable; retrying")
        with esdblocal(tmp_path / "esdb", port):
            wait_until(lambda: bool(logged(caplog, "following $all")), 30, "the projector")
            assert not logged(caplog, "event store unreachable; retrying")
            assert run.error is None
