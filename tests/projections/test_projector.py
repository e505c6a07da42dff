"""The projector against a real esdblocal: what lands in the rows, resuming, replaying, and
the event store going away under it."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from esdbclient import EventStoreDBClient, StreamState

from domain import cars, inventory
from domain.history import event_type
from eventstore.feed import Recorded
from projections import schema
from projections.reader import Filters, ReadModels
from projections.views import CAR_VIEW, INVENTORY_VIEW
from projections.writer import ReadStoreWriter

from .support import ROOT, current, new_event, projecting, row_of, snapshot, wait_until

OWNER = UUID("6f1c1a52-3c44-4d8e-9a0e-2f7d3b1c9e01")
NEW_OWNER = UUID("0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b")


def created_car(**changes: Any) -> cars.CarCreated:
    fields: dict[str, Any] = {
        "year": 2020,
        "make": "Ford",
        "model": "Escape",
        "color": "red",
        "mileage": 1000,
        "vin": "1FMCU0GX000000001",
        "condition": "good",
        "owner": OWNER,
    }
    return cars.CarCreated(**(fields | changes))


def stream_version(client: EventStoreDBClient, stream: str) -> int:
    version: int = client.get_stream(stream)[-1].stream_position
    return version


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    """The projector's structured log lines saying ``message``."""
    lines = [r.msg for r in caplog.records if r.name == "projections"]
    return [line for line in lines if line["message"] == message]


# ---------------------------------------------------------------- 1. apply


@pytest.mark.parametrize("batch", [1, 2000], ids=["one-event-per-commit", "batched"])
def test_events_land_in_rows_with_state_and_version(
    client: EventStoreDBClient, esdb_uri: str, tmp_path: Path, batch: int
) -> None:
    alpha, beta, gamma, escape, m3 = (str(uuid4()) for _ in range(5))
    ignored = [str(uuid4()) for _ in range(3)]

    def append(stream: str, *events: inventory.InventoryEvent | cars.CarEvent) -> int:
        position: int = client.append_to_stream(
            stream, current_version=StreamState.ANY, events=[new_event(e) for e in events]
        )
        return position

    # Streams the projector must not turn into rows, even when the server's filter lets
    # them through (it searches the pattern anywhere in the name).
    append(f"test-{ignored[0]}", inventory.InventoryItemCreated(name=f"Ignored {ignored[0]}"))
    append(
        f"$inventoryItem-{ignored[1]}", inventory.InventoryItemCreated(name=f"Ignored {ignored[1]}")
    )
    append(f"xcar-{ignored[2]}", created_car(vin="1FMCU0GX000000003"))

    # Half the history is there before the projector starts (catch-up), half arrives live.
    append(f"inventoryItem-{alpha}", inventory.InventoryItemCreated(name="Alpha"))
    append(f"inventoryItem-{alpha}", inventory.ItemsCheckedInToInventory(count=5))
    append(
        f"inventoryItem-{beta}",
        inventory.InventoryItemCreated(name="Beta"),
        inventory.InventoryItemRenamed(new_name="Beta Two"),
    )
    append(f"car-{escape}", created_car(), cars.ColorChanged(color="blue"))
    append(f"car-{m3}", created_car(make="BMW", model="M3", vin="WBSBL93400PN00002"))
    client.set_stream_metadata(f"car-{escape}", metadata={"note": "a $$ stream matches too"})

    with projecting(esdb_uri, tmp_path / "read", batch=batch) as projector:
        append(f"inventoryItem-{alpha}", inventory.ItemsCheckedInToInventory(count=7))
        append(f"inventoryItem-{alpha}", inventory.ItemsRemovedFromInventory(count=3))
        append(f"inventoryItem-{beta}", inventory.ItemsCheckedInToInventory(count=2))
        append(f"inventoryItem-{beta}", inventory.InventoryItemDeactivated())
        append(f"inventoryItem-{gamma}", inventory.InventoryItemCreated(name="Gamma"))
        append(
            f"car-{escape}",
            cars.MileageChanged(mileage=2500),
            cars.ConditionChanged(condition="average"),
            cars.OwnerChanged(owner=NEW_OWNER),
        )
        last = append(f"car-{m3}", cars.CarDeleted())
        projector.wait_for(last)
        reads = projector.read_models

        assert row_of(reads.item(INVENTORY_VIEW, alpha)) == (alpha, 3, 1, "Alpha", 9)
        assert row_of(reads.item(INVENTORY_VIEW, beta)) == (beta, 3, 0, "Beta Two", 2)
        assert row_of(reads.item(INVENTORY_VIEW, gamma)) == (gamma, 0, 1, "Gamma", 0)
        assert row_of(reads.item(CAR_VIEW, escape)) == (
            escape, 4, 1, 2020, "Ford", "Escape", "blue", 2500, "1FMCU0GX000000001",
            "average", str(NEW_OWNER),
        )  # fmt: skip
        assert row_of(reads.item(CAR_VIEW, m3)) == (
            m3, 1, 0, 2020, "BMW", "M3", "red", 1000, "WBSBL93400PN00002", "good", str(OWNER),
        )  # fmt: skip
        assert reads.item(INVENTORY_VIEW, str(uuid4())) is None
        for other in ignored:
            assert row_of(reads.item(INVENTORY_VIEW, other)) is None
            assert row_of(reads.item(CAR_VIEW, other)) is None
        assert reads.search(f"Ignored {ignored[0]}", 0, 10) == (0, [])
        assert reads.search(f"Ignored {ignored[1]}", 0, 10) == (0, [])
        assert reads.page(CAR_VIEW, Filters(query="1FMCU0GX000000003"), 0, 10).total == 0
        position = reads.position()
    assert position is not None
    # Never past the head of $all (links the system projections write included, which
    # get_commit_position()'s default filter would leave out).
    head = next(iter(client.read_all(backwards=True, limit=1, filter_exclude=[])))
    assert last <= position <= (head.commit_position or 0)
    writer = ReadStoreWriter(current(tmp_path / "read"))
    assert writer.position() == position
    writer.close()


def test_status_reports_the_checkpoint_and_when_it_was_written(
    client: EventStoreDBClient, esdb_uri: str, tmp_path: Path
) -> None:
    item = str(uuid4())
    reads = ReadModels(tmp_path / "read")
    assert (reads.position(), reads.status(), row_of(reads.item(INVENTORY_VIEW, item))) == (
        None,
        {},
        None,
    )
    last = client.append_to_stream(
        f"inventoryItem-{item}",
        current_version=StreamState.NO_STREAM,
        events=new_event(inventory.InventoryItemCreated(name="Status")),
    )
    with projecting(esdb_uri, tmp_path / "read") as projector:
        projector.wait_for(last)
        status = reads.status()
    assert status[schema.POSITION] == reads.position() >= last
    assert isinstance(status[schema.UPDATED], float)


# ---------------------------------------------------------------- 2. resume after a restart


def test_resumes_after_its_checkpoint_without_counting_twice(
    client: EventStoreDBClient, esdb_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="projections")
    directory = tmp_path / "read"
    first, second = str(uuid4()), str(uuid4())

    def append(item: str, *events: inventory.InventoryEvent) -> int:
        position: int = client.append_to_stream(
            f"inventoryItem-{item}",
            current_version=StreamState.ANY,
            events=[new_event(e) for e in events],
        )
        return position

    def check_in(item: str, *counts: int) -> int:
        return append(item, *(inventory.ItemsCheckedInToInventory(count=n) for n in counts))

    append(first, inventory.InventoryItemCreated(name="Resumed"))
    last = check_in(first, 3, 4)
    with projecting(esdb_uri, directory) as projector:
        projector.wait_for(last)
    stopped_at = ReadModels(directory).position()
    assert stopped_at is not None and stopped_at >= last

    check_in(first, 5, 6)
    append(second, inventory.InventoryItemCreated(name="Second"))
    check_in(second, 10)
    last = check_in(first, 1)
    with projecting(esdb_uri, directory) as projector:
        projector.wait_for(last)
        reads = projector.read_models
        first_version = stream_version(client, f"inventoryItem-{first}")
        second_version = stream_version(client, f"inventoryItem-{second}")
        assert (first_version, second_version) == (5, 1)
        assert row_of(reads.item(INVENTORY_VIEW, first)) == (
            first,
            5,
            1,
            "Resumed",
            3 + 4 + 5 + 6 + 1,
        )
        assert row_of(reads.item(INVENTORY_VIEW, second)) == (second, 1, 1, "Second", 10)
    stopped_again = reads.position()

    # A third start with nothing new resumes where the second stopped and changes nothing.
    before = snapshot(current(directory))
    with projecting(esdb_uri, directory) as projector:
        projector.wait_for(last)
    assert snapshot(current(directory)) == before
    followed = [line["after"] for line in logged(caplog, "following $all")]
    assert followed == [None, stopped_at, stopped_again]


# ---------------------------------------------------------------- 3. replay safety


def recorded(
    stream: str, version: int, event: inventory.InventoryEvent | cars.CarEvent
) -> Recorded:
    return Recorded(stream, event_type(event), msgspec.json.encode(event), version, 0)


def history() -> list[Recorded]:
    """Three items and a car, interleaved as ``$all`` would deliver them, positions rising."""
    a, b, c, car = (f"{prefix}-{uuid4()}" for prefix in ("inventoryItem",) * 3 + ("car",))
    events = [
        recorded(a, 0, inventory.InventoryItemCreated(name="A")),
        recorded(b, 0, inventory.InventoryItemCreated(name="B")),
        recorded(a, 1, inventory.ItemsCheckedInToInventory(count=10)),
        recorded(car, 0, created_car()),
        recorded(b, 1, inventory.ItemsCheckedInToInventory(count=4)),
        recorded(a, 2, inventory.ItemsRemovedFromInventory(count=3)),
        recorded(c, 0, inventory.InventoryItemCreated(name="C")),
        recorded(b, 2, inventory.InventoryItemDeactivated()),
        recorded(car, 1, cars.MileageChanged(mileage=1500)),
        recorded(a, 3, inventory.InventoryItemRenamed(new_name="A2")),
        recorded(car, 2, cars.CarDeleted()),
        recorded(c, 1, inventory.ItemsCheckedInToInventory(count=1)),
    ]
    return [
        Recorded(e.stream, e.type, e.data, e.version, 1000 + 100 * n) for n, e in enumerate(events)
    ]


def fresh_writer(directory: Path) -> ReadStoreWriter:
    return ReadStoreWriter(schema.open_current(directory))


def test_committing_a_batch_twice_changes_nothing(tmp_path: Path) -> None:
    events = history()
    writer = fresh_writer(tmp_path)
    assert writer.commit(events, events[-1].position) == len(events)
    once = snapshot(writer.path)
    assert writer.commit(events, events[-1].position) == 0
    assert snapshot(writer.path) == once
    assert writer.position() == events[-1].position
    reads = ReadModels(tmp_path)
    a = events[0].stream.partition("-")[2]
    assert row_of(reads.item(INVENTORY_VIEW, a)) == (a, 3, 1, "A2", 7)
    assert reads.page(INVENTORY_VIEW, Filters(state="all"), 0, 10).total == 3
    writer.close()


@pytest.mark.parametrize(("first_end", "second_start"), [(1, 0), (5, 2), (9, 3), (12, 11), (7, 0)])
def test_replaying_an_overlap_equals_one_pass(
    tmp_path: Path, first_end: int, second_start: int
) -> None:
    """After a crash the projector may see again what it had committed: no effect."""
    events = history()
    one_pass = fresh_writer(tmp_path / "one")
    one_pass.commit(events, events[-1].position)
    replayed = fresh_writer(tmp_path / "replayed")
    replayed.commit(events[:first_end], events[first_end - 1].position)
    replayed.commit(events[second_start:], events[-1].position)
    assert snapshot(replayed.path) == snapshot(one_pass.path)


def test_a_failing_batch_leaves_rows_and_checkpoint_as_they_were(tmp_path: Path) -> None:
    """A batch that fails halfway (here: the store refuses new cars) leaves no trace."""
    events = history()
    writer = fresh_writer(tmp_path)
    writer.commit(events[:2], events[1].position)
    before = snapshot(writer.path)
    with closing(sqlite3.connect(writer.path)) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON cars BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
        db.commit()
    with pytest.raises(sqlite3.IntegrityError, match="full"):
        writer.commit(events[2:], events[-1].position)  # items first, then the car
    assert snapshot(writer.path) == before
    assert writer.position() == events[1].position
    writer.close()


def test_an_unreadable_event_is_quarantined_and_the_stream_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="projections")
    item = str(uuid4())
    stream = f"inventoryItem-{item}"
    events = [
        recorded(stream, 0, inventory.InventoryItemCreated(name="Tolerant")),
        recorded(stream, 1, inventory.ItemsCheckedInToInventory(count=2)),
        Recorded(stream, "ItemsShipped", b'{"type":"ItemsShipped","count":1}', 2, 0),
        Recorded(stream, "ItemsCheckedInToInventory", b"not json", 3, 0),
        recorded(stream, 4, inventory.ItemsCheckedInToInventory(count=5)),
    ]
    writer = fresh_writer(tmp_path)
    for n, event in enumerate(events):  # one event per batch, as the projector does when live
        writer.commit([event], 100 + n)
    assert row_of(ReadModels(tmp_path).item(INVENTORY_VIEW, item)) == (
        item,
        4,
        1,
        "Tolerant",
        7,
    )
    assert writer.position() == 104
    quarantined = writer.quarantine()
    assert [(q.revision, q.type) for q in quarantined] == [
        (2, "ItemsShipped"),
        (3, "ItemsCheckedInToInventory"),
    ]
    assert "cannot be read" in quarantined[1].reason
    logged = [r.getMessage() for r in caplog.records if "event quarantined" in r.getMessage()]
    assert len(logged) == 2 and "ItemsShipped" in logged[0], logged
    assert ReadModels(tmp_path).status()[schema.QUARANTINED] == 2
    writer.close()


# ---------------------------------------------------------------- 6. the event store restarts


@contextmanager
def esdblocal(data: Path, port: int = 0) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m esdblocal`` on ``port`` (0: a free one); yields the process and its URI."""
    process = subprocess.Popen(
        [sys.executable, "-m", "esdblocal", "--port", str(port), "--data", str(data)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        uri = process.stdout.readline().strip()
        assert uri.startswith("esdb://127.0.0.1:"), uri
        yield process, uri
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.mark.slow
def test_follows_the_event_store_through_a_crash_and_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="projections")
    data = tmp_path / "esdb"
    item = str(uuid4())
    stream = f"inventoryItem-{item}"

    def created(uri: str) -> int:
        with EventStoreDBClient(uri) as writer:
            position: int = writer.append_to_stream(
                stream,
                current_version=StreamState.NO_STREAM,
                events=[
                    new_event(inventory.InventoryItemCreated(name="Survivor")),
                    new_event(inventory.ItemsCheckedInToInventory(count=1)),
                ],
            )
        return position

    with esdblocal(data) as (server, uri), projecting(uri, tmp_path / "read") as projector:
        port = int(uri.split(":")[2].split("?")[0])
        before = created(uri)
        projector.wait_for(before)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        wait_until(
            lambda: len(logged(caplog, "event store unreachable; retrying")) >= 3,
            15,
            "the projector to notice and retry",
        )
        with esdblocal(data, port) as (_, again), EventStoreDBClient(again) as writer:
            assert again == uri
            writer.append_to_stream(
                stream,
                current_version=1,
                events=new_event(inventory.ItemsCheckedInToInventory(count=41)),
            )
            other = str(uuid4())
            after = writer.append_to_stream(
                f"inventoryItem-{other}",
                current_version=StreamState.NO_STREAM,
                events=new_event(inventory.InventoryItemCreated(name="Newcomer")),
            )
            projector.wait_for(after, timeout=20)
            reads = projector.read_models
            assert row_of(reads.item(INVENTORY_VIEW, item)) == (item, 2, 1, "Survivor", 42)
            assert row_of(reads.item(INVENTORY_VIEW, other)) == (other, 0, 1, "Newcomer", 0)
    waits = [line["inSeconds"] for line in logged(caplog, "event store unreachable; retrying")]
    assert waits[:3] == [0.1, 0.2, 0.4], "the projector backs off, doubling"
    followed = [line["after"] for line in logged(caplog, "following $all")]
    assert followed[0] is None and len(followed) >= 2
    assert all(after >= before for after in followed[1:]), "resumed from its checkpoint"
