"""The read store's layout, shared by its two sides: the projector's writer
(``projections.writer``) and the web's reader (``projections.reader``).

One SQLite file per generation, one writer (the projector), many readers. Under the read
directory (``$DATA_DIR/read``):

- ``read-<n>.sqlite3``: a generation (WAL mode). A rebuild fills a new one while the old one
  keeps answering, then swaps.
- ``read-<n>.sqlite3.changes``: the generation's change counter (``Changes``), 8 bytes that
  the writer and every reader map into memory.
- ``CURRENT``: the name of the generation readers use, replaced atomically on a swap;
  readers notice the new file (its inode changes) and reopen. A reader looks at most every
  ``POINTER_CHECK_SECONDS`` (a ``stat`` per request was 6 % of a conditional GET's CPU in a
  sync worker), so a swap reaches every reader within that time; until then it reads the
  old generation, which is whole and consistent, only no longer advancing.

Each batch of events, the checkpoint it reaches and what identifies the event store it came
from (``eventstore.identity``: the first event of ``$all`` and the newest event folded) are
committed in one transaction, so a crash at any instant leaves rows and checkpoint agreeing:
the projector resumes after the checkpoint and no event counts twice or goes missing.

Paging: a page at offset 100,000 should cost about what offset 0 costs. SQLite's OFFSET
reads every skipped row (bench/paging_bench.py measures what that costs). Rows are never
deleted and ordinals are dense, so a page of every state is a range of ordinals. For one
state, each view keeps how many of its rows fall in each block of ``BLOCK`` consecutive
ordinals (and, as block -1, the total): a page sums block counts up to its offset (about a
hundred small rows at 100,000), then skips fewer than ``BLOCK`` entries of the
(active, ordinal) index, never the rows themselves.
"""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from eventstore.identity import Landmark, Mismatch, Origin
from projections.views import VIEWS, View

POINTER_CHECK_SECONDS = 0.05
CURRENT = "CURRENT"
BLOCK = 1024
TOTAL = -1  # the block number under which a state's total is kept
# Keys of the meta table.
POSITION = "position"  # the checkpoint: the commit position every row is folded up to
UPDATED = "updated"  # when the projector last committed (seconds since the epoch)
QUARANTINED = "quarantined"  # not a key: how many are quarantined, in ReadModels.status()
FIRST_POSITION, FIRST_ID = "first_position", "first_id"  # the first event of $all
ANCHOR_POSITION, ANCHOR_ID = "anchor_position", "anchor_id"  # the newest event folded
# Set by the projector on a generation it found was built from another store (a JSON
# ``Mismatch``): never served as ready again; a rebuilt generation replaces it.
MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An event the read side set aside: where it is, and why the model could not use it."""

    position: int
    stream: str
    revision: int
    type: str
    reason: str


QUARANTINED_COLUMNS = ", ".join(f.name for f in fields(Quarantined))


def _schema(view: View[Any]) -> str:
    columns = ", ".join(view.columns)
    indexes = "".join(
        f"CREATE INDEX {view.table}_{c} ON {view.table} ({c}, active, ordinal);"
        for c in (f.name for f in view.filters)
    )
    return f"""
        CREATE TABLE {view.table} (
            id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL UNIQUE,
            version INTEGER NOT NULL, active INTEGER NOT NULL, {columns}
        ) WITHOUT ROWID;
        CREATE INDEX {view.table}_active ON {view.table} (active, ordinal);
        {indexes}
    """


QUARANTINE = (
    "CREATE TABLE IF NOT EXISTS quarantine (position INTEGER NOT NULL, stream TEXT NOT NULL,"
    " revision INTEGER NOT NULL, type TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL,"
    " PRIMARY KEY (stream, revision));"
)
# The change feed: one entry per event that moved a row's version, committed with the rows.
CHANGES = (
    "CREATE TABLE IF NOT EXISTS changes (position INTEGER PRIMARY KEY, category TEXT NOT NULL,"
    " id TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, time REAL);"
)
SCHEMA = (
    QUARANTINE + CHANGES + "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE blocks (tbl TEXT, active INTEGER, block INTEGER, n INTEGER NOT NULL,"
    " PRIMARY KEY (tbl, active, block)) WITHOUT ROWID;"
    # rowid = ordinal * len(VIEWS) + the view's index: one search row per resource.
    "CREATE VIRTUAL TABLE search USING fts5(text, kind UNINDEXED, active UNINDEXED,"
    " tokenize='trigram');" + "".join(_schema(view) for view in VIEWS)
)


def search_rowid(view: View[Any], ordinal: int) -> int:
    return ordinal * len(VIEWS) + VIEWS.index(view)


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
    else:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


# ---------------------------------------------------------------- what it was built from


def meta(db: sqlite3.Connection) -> dict[str, Any]:
    """The meta table as a dict (checkpoint, last commit, origin, mismatch)."""
    return dict(db.execute("SELECT key, value FROM meta").fetchall())


def checkpoint_of(values: dict[str, Any]) -> int | None:
    found = values.get(POSITION)
    return None if found is None else int(found)


def origin_of(values: dict[str, Any]) -> Origin:
    """The event store a generation records it was built from."""

    def landmark(position: str, id_: str) -> Landmark | None:
        if values.get(position) is None or values.get(id_) is None:
            return None
        return Landmark(int(values[position]), str(values[id_]))

    return Origin(landmark(FIRST_POSITION, FIRST_ID), landmark(ANCHOR_POSITION, ANCHOR_ID))


def mismatch_of(values: dict[str, Any]) -> Mismatch | None:
    """What the projector found wrong with this generation's store, if anything."""
    found = values.get(MISMATCH)
    if found is None:
        return None
    parsed = json.loads(found)
    return Mismatch(str(parsed["reason"]), str(parsed["detail"]))


def mismatch_text(mismatch: Mismatch) -> str:
    return json.dumps({"reason": mismatch.reason, "detail": mismatch.detail})


# ---------------------------------------------------------------- generations


def current_generation(directory: Path) -> Path | None:
    try:
        name = (directory / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    return directory / name


def new_generation(directory: Path) -> Path:
    """A fresh, empty store beside the current one."""
    directory.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.stem.split("-")[1]) for p in directory.glob("read-*.sqlite3")]
    path = directory / f"read-{max(numbers, default=0) + 1}.sqlite3"
    db = connect(path)
    db.executescript(f"BEGIN; {SCHEMA} COMMIT;")
    db.close()
    return path


def swap(directory: Path, path: Path) -> None:
    """Make ``path`` the generation readers use; keep the one before it, drop the older."""
    previous = current_generation(directory)
    pointer = directory / f"{CURRENT}.new"
    pointer.write_text(path.name + "\n")
    os.replace(pointer, directory / CURRENT)
    keep = {path.name, previous.name if previous else ""}
    for old in directory.glob("read-*.sqlite3*"):
        if old.name.split(".sqlite3")[0] + ".sqlite3" not in keep:
            old.unlink(missing_ok=True)


def open_current(directory: Path) -> Path:
    """The current generation, created on first use."""
    path = current_generation(directory)
    if path is None or not path.exists():
        path = new_generation(directory)
        swap(directory, path)
    return path


# ---------------------------------------------------------------- the quarantine


def quarantined(db: sqlite3.Connection) -> list[Quarantined]:
    """Every quarantined event, in the order of the store."""
    rows = db.execute(
        f"SELECT {QUARANTINED_COLUMNS} FROM quarantine ORDER BY position, stream, revision"
    ).fetchall()
    return [Quarantined(*row) for row in rows]


def quarantine_of(directory: Path) -> list[Quarantined]:
    """The quarantine of the current generation, read-only (the projector may be running)."""
    path = current_generation(directory)
    if path is None or not path.exists():
        return []
    db = connect(path, readonly=True)
    try:
        return quarantined(db)
    except sqlite3.OperationalError:  # a generation from before the quarantine
        return []
    finally:
        db.close()


# ---------------------------------------------------------------- change counter


class Changes:
    """A generation's change counter, shared through memory: the writer adds one after each
    commit (and once when it opens the generation, for a commit that a crash left uncounted);
    a reader compares it with what it saw to know whether its renderings still hold.

    Reading it costs a memory read (0.3 µs), where SQLite's ``PRAGMA data_version`` costs a
    statement (7.9 µs, and a release of the GIL) per request: bench/README.md, Throughput.
    One writer per generation (the projector holds its lock), so a plain add is enough.
    """

    SIZE = 8

    def __init__(self, generation: Path, writable: bool = False) -> None:
        path = generation.with_name(generation.name + ".changes")
        flags = os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY
        fd = os.open(path, flags, 0o644)
        try:
            if writable and os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            self._map = mmap.mmap(fd, self.SIZE, access=access)
        finally:
            os.close(fd)

    @classmethod
    def of(cls, generation: Path) -> Changes | None:
        """A reader's view of the counter; None when the generation has none (yet)."""
        try:
            return cls(generation)
        except (FileNotFoundError, ValueError):  # not there, or not yet sized by its writer
            return None

    def value(self) -> int:
        return int.from_bytes(self._map[: self.SIZE], "little")

    def bump(self) -> None:
        self._map[: self.SIZE] = ((self.value() + 1) % 2**64).to_bytes(self.SIZE, "little")

    def close(self) -> None:
        self._map.close()
