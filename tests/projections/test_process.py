"""``python -m projections`` as its own process: kill -9 while catching up, one projector per
store, and a rebuild that swaps a new generation in under a reader."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from esdbclient import EventStoreDBClient, StreamState

from domain import cars, inventory
from projections import schema
from projections.reader import Filters, ReadModels
from projections.views import CAR_VIEW, INVENTORY_VIEW

from .support import (
    Append,
    ProjectorProcess,
    ThreadedProjector,
    append_rounds,
    current,
    new_event,
    row_of,
    snapshot,
    wait_until,
)

pytestmark = pytest.mark.slow

ITEMS = 300
ROUNDS = 3  # rounds of check-ins after the one that creates the items
PER_ROUND = 6


def check_in(i: int, r: int, j: int) -> int:
    return 1 + (i + r + j) % 9


def write_stock(uri: str) -> tuple[dict[str, tuple[int, int]], int]:
    """ITEMS items, each checked in over several rounds, so an item's events spread over
    many batches; every item's (version, currentCount) and the last commit position."""
    ids = [str(uuid4()) for _ in range(ITEMS)]
    rounds: list[list[Append]] = []
    for r in range(ROUNDS + 1):
        appends = []
        for i, item in enumerate(ids):
            counts = [check_in(i, r, j) for j in range(PER_ROUND)]
            events = [new_event(inventory.ItemsCheckedInToInventory(count=n)) for n in counts]
            if r == 0:
                events.insert(0, new_event(inventory.InventoryItemCreated(name=f"Stock {i}")))
            appends.append((f"inventoryItem-{item}", events))
        rounds.append(appends)
    positions = append_rounds(uri, rounds)
    expected = {
        item: (
            (ROUNDS + 1) * PER_ROUND,
            sum(check_in(i, r, j) for r in range(ROUNDS + 1) for j in range(PER_ROUND)),
        )
        for i, item in enumerate(ids)
    }
    return expected, max(positions[-1])


def test_kill_9_while_catching_up_loses_nothing_and_doubles_nothing(
    isolated_uri: str, tmp_path: Path
) -> None:
    expected, head = write_stock(isolated_uri)
    data = tmp_path / "data"
    reads = ReadModels(data / "read")
    reached: list[int] = []
    for fraction in (0.0, 0.3, 0.6, 0.85):  # kill right after the first batch, then further on
        with ProjectorProcess(isolated_uri, data, "--batch", "50") as process:

            def beyond(process: ProjectorProcess = process, mark: float = fraction * head) -> bool:
                assert process.process.poll() is None, process.log
                return (reads.position() or 0) > mark

            wait_until(beyond, 15, f"the projector to pass {fraction:.0%}", every=0.002)
            process.kill()
        reached.append(reads.position() or 0)
    assert all(0 < position < head for position in reached), (reached, head)
    assert reached == sorted(reached), "each run resumed where the one before it died"

    with ProjectorProcess(isolated_uri, data, "--batch", "50") as process:
        process.wait_for("caught up; live")
        wait_until(lambda: (reads.position() or 0) >= head, 15, "the checkpoint to reach head")
        assert process.terminate() == 0
    assert process.wait_for("stopped")
    assert reads.position() == head

    rows = {}
    for item in expected:
        row = row_of(reads.item(INVENTORY_VIEW, item))
        assert row is not None, f"item {item} is missing"
        rows[item] = (row[1], row[4])
    assert rows == expected
    assert reads.page(INVENTORY_VIEW, Filters(state="all"), 0, 1).total == ITEMS
    assert reads.page(INVENTORY_VIEW, Filters(), 0, 1).total == ITEMS

    # The same events projected in one uninterrupted pass give the very same store.
    uninterrupted = ThreadedProjector(isolated_uri, tmp_path / "one-pass").start()
    try:
        uninterrupted.wait_for(head)
    finally:
        uninterrupted.stop()
    assert snapshot(current(data / "read")) == snapshot(current(tmp_path / "one-pass"))


def write_mixed(uri: str) -> int:
    """Items and cars with every kind of event, some retired: the last commit position."""
    items = [f"inventoryItem-{uuid4()}" for _ in range(120)]
    fleet = [f"car-{uuid4()}" for _ in range(40)]
    first: list[Append] = [
        (stream, [new_event(inventory.InventoryItemCreated(name=f"Part {i}"))])
        for i, stream in enumerate(items)
    ]
    first += [
        (
            stream,
            [
                new_event(
                    cars.CarCreated(
                        year=2000 + i % 25,
                        make=("Ford", "BMW")[i % 2],
                        model=("Escape", "M3", "F150", "M5")[i % 4],
                        color=("red", "white", "blue")[i % 3],
                        mileage=100 * i,
                        vin=f"1FMCU0GX{i:09d}",
                        condition="good",
                        owner=UUID(int=i + 1),
                    )
                )
            ],
        )
        for i, stream in enumerate(fleet)
    ]
    second: list[Append] = []
    for i, stream in enumerate(items):
        events = [new_event(inventory.ItemsCheckedInToInventory(count=i + 1))]
        if i % 3 == 0:
            events.append(new_event(inventory.InventoryItemRenamed(new_name=f"Renamed part {i}")))
        if i % 4 == 1:
            events.append(new_event(inventory.ItemsRemovedFromInventory(count=1)))
        if i % 5 == 2:
            events.append(new_event(inventory.InventoryItemDeactivated()))
        second.append((stream, events))
    for i, stream in enumerate(fleet):
        events = [new_event(cars.MileageChanged(mileage=100 * i + 50))]
        if i % 2:
            events.append(new_event(cars.ColorChanged(color="blue")))
        if i % 3 == 0:
            events.append(new_event(cars.OwnerChanged(owner=UUID(int=1000 + i))))
        if i % 7 == 3:
            events.append(new_event(cars.CarDeleted()))
        second.append((stream, events))
    return max(max(round_) for round_ in append_rounds(uri, [first, second]))


def test_one_projector_per_store_and_a_rebuild_swaps_in_an_identical_store(
    isolated_uri: str, tmp_path: Path
) -> None:
    head = write_mixed(isolated_uri)
    data = tmp_path / "data"
    directory = data / "read"
    reads = ReadModels(directory)
    with ProjectorProcess(isolated_uri, data) as live:
        live.wait_for("caught up; live")
        wait_until(lambda: (reads.position() or 0) >= head, 15, "the live projector")
        old = current(directory)
        assert old.name == "read-1.sqlite3"
        assert reads.page(INVENTORY_VIEW, Filters(state="all"), 0, 1).total == 120

        for args in (["--rebuild"], []):
            with ProjectorProcess(isolated_uri, data, *args) as second:
                assert second.wait() == 2, second.log
            assert second.log == f"another projector is running on {directory}; stop it first"
        assert live.process.poll() is None, "the running projector is undisturbed"
        assert live.terminate() == 0
    assert live.wait_for("stopped")
    projected = snapshot(old)
    assert len(projected["inventory_items"]) == 120 and len(projected["cars"]) == 40

    with ProjectorProcess(isolated_uri, data, "--rebuild") as rebuild:
        assert rebuild.wait_for("rebuilding")["into"] == str(directory / "read-2.sqlite3")
        swapped = rebuild.wait_for("rebuilt store swapped in")
        new = current(directory)
        assert swapped["store"] == str(new) == str(directory / "read-2.sqlite3")
        assert snapshot(new) == projected, "the rebuild replays to the very same rows"
        assert snapshot(old) == projected, "the old generation stays as it was"

        # The reader opened on the old generation now reads the new one: only the running
        # (rebuilt) projector sees what is written from now on.
        item = str(uuid4())
        with EventStoreDBClient(isolated_uri) as client:
            client.append_to_stream(
                f"inventoryItem-{item}",
                current_version=StreamState.NO_STREAM,
                events=new_event(inventory.InventoryItemCreated(name="After the swap")),
            )
        wait_until(lambda: reads.item(INVENTORY_VIEW, item) is not None, 15, "the new item")
        assert row_of(reads.item(INVENTORY_VIEW, item)) == (item, 0, 1, "After the swap", 0)
        assert reads.page(INVENTORY_VIEW, Filters(state="all"), 0, 1).total == 121
        assert rebuild.terminate() == 0
    with closing(sqlite3.connect(f"file:{old}?mode=ro", uri=True)) as db:
        found = db.execute("SELECT COUNT(*) FROM inventory_items WHERE id = ?", (item,))
        assert found.fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM inventory_items").fetchone() == (120,)
    assert sorted(p.name for p in directory.glob("read-*.sqlite3")) == [
        "read-1.sqlite3",
        "read-2.sqlite3",
    ]
    assert reads.page(CAR_VIEW, Filters(state="all"), 0, 100).total == 40


def checkpoint_of(path: Path) -> int:
    """A generation's checkpoint, read the way the web reads (0 before its first batch)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (schema.POSITION,)).fetchone()
    return 0 if row is None else int(row[0])


def test_an_interrupted_rebuild_leaves_the_current_store_alone(
    isolated_uri: str, tmp_path: Path
) -> None:
    head = write_mixed(isolated_uri)
    data = tmp_path / "data"
    directory = data / "read"
    first = ThreadedProjector(isolated_uri, directory).start()
    try:
        first.wait_for(head)
    finally:
        first.stop()
    old = current(directory)
    projected = snapshot(old)

    with ProjectorProcess(isolated_uri, data, "--rebuild", "--batch", "1") as rebuild:
        fresh = Path(rebuild.wait_for("rebuilding")["into"])
        wait_until(lambda: checkpoint_of(fresh) > 0, 15, "the rebuild to start", every=0.002)
        assert rebuild.terminate() == 0
    interrupted = rebuild.wait_for("rebuild interrupted; the current store is unchanged")
    assert interrupted["left"] == str(fresh)
    assert 0 < checkpoint_of(fresh) < head, "stopped halfway"
    assert not [m for m in rebuild.messages() if m["message"] == "rebuilt store swapped in"]
    assert current(directory) == old
    assert snapshot(old) == projected

    with ProjectorProcess(isolated_uri, data, "--rebuild") as again:
        swapped = Path(again.wait_for("rebuilt store swapped in")["store"])
        assert again.terminate() == 0
    assert (old.name, fresh.name, swapped.name) == (
        "read-1.sqlite3",
        "read-2.sqlite3",
        "read-3.sqlite3",
    )
    assert current(directory) == swapped
    assert snapshot(swapped) == projected
    names = sorted(p.name for p in directory.glob("read-*"))
    assert [name for name in names if name.endswith(".sqlite3")] == [old.name, swapped.name]
    assert not [name for name in names if name.startswith(fresh.name)], (
        f"the half-built generation is dropped at the next swap: {names}"
    )


def test_sigterm_while_catching_up_stops_promptly(isolated_uri: str, tmp_path: Path) -> None:
    head = write_mixed(isolated_uri)
    data = tmp_path / "data"
    with ProjectorProcess(isolated_uri, data, "--batch", "1") as process:
        process.wait_for("following $all")
        path = data / "read" / "read-1.sqlite3"
        wait_until(lambda: checkpoint_of(path) > 0, 15, "the first batch", every=0.002)
        started = time.monotonic()
        assert process.terminate() == 0
        stopping = time.monotonic() - started
    assert checkpoint_of(path) < head, "it was still catching up"
    assert process.wait_for("stopped")
    assert stopping < 2.5, f"took {stopping:.1f} s to stop"
