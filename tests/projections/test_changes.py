"""The read store's change token (``ReadModels.token``): the writer's change counter moves it
at once after every commit, and a commit the counter missed (a writer killed between its
commit and its count) still moves it within ``DATA_VERSION_SECONDS``."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path
from uuid import uuid4

from msgspec.json import encode

from domain import inventory
from eventstore.feed import Recorded
from projections import reader, schema
from projections.reader import ReadModels
from projections.writer import ReadStoreWriter


def created(position: int) -> Recorded:
    event = encode(inventory.InventoryItemCreated(name=f"item {position}"))
    return Recorded(f"inventoryItem-{uuid4()}", "InventoryItemCreated", event, 0, position)


def test_every_commit_moves_the_token_at_once(tmp_path: Path) -> None:
    writer = ReadStoreWriter(schema.open_current(tmp_path))
    reads = ReadModels(tmp_path)
    seen = {reads.token()}
    for position in range(1, 6):
        writer.commit([created(position)], position)
        token = reads.token()
        assert token not in seen, f"commit {position} did not move the token"
        seen.add(token)
        assert reads.token() == token  # and nothing else does
    writer.close()


def test_a_commit_the_counter_missed_moves_the_token_within_its_bound(tmp_path: Path) -> None:
    path = schema.open_current(tmp_path)
    writer = ReadStoreWriter(path)
    reads = ReadModels(tmp_path)
    before = reads.token()
    # What a writer killed between its COMMIT and its count leaves: rows, no count.
    with closing(sqlite3.connect(path)) as db:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('uncounted', '1')")
        db.commit()
    deadline = time.monotonic() + reader.DATA_VERSION_SECONDS + 5
    while reads.token() == before:
        assert time.monotonic() < deadline, "an uncounted commit never moved the token"
        time.sleep(0.01)
    writer.close()
    # The next writer to open the generation counts it too (the projector, restarted).
    again = reads.token()
    ReadStoreWriter(path).close()
    assert reads.token() != again


def test_without_a_counter_every_token_reads_data_version(tmp_path: Path) -> None:
    """A generation no writer has opened since counters exist: data_version, every time."""
    path = schema.open_current(tmp_path)
    writer = ReadStoreWriter(path)
    writer.close()
    path.with_name(path.name + ".changes").unlink()
    reads = ReadModels(tmp_path)
    before = reads.token()
    with closing(sqlite3.connect(path)) as db:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('uncounted', '1')")
        db.commit()
    assert reads.token() != before
