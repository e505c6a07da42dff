"""The read store: one SQLite file per generation, one writer (the projector), many readers.

Layout under the read directory (``$DATA_DIR/read``):

- ``read-<n>.sqlite3``: a generation (WAL mode). A rebuild fills a new one while the old one
  keeps answering, then swaps.
- ``CURRENT``: the name of the generation readers use, replaced atomically on a swap;
  readers notice the new file (its inode changes) and reopen. A reader looks at most every
  ``POINTER_CHECK_SECONDS`` (a ``stat`` per request was 6 % of a conditional GET's CPU in a
  sync worker), so a swap reaches every reader within that time; until then it reads the
  old generation, which is whole and consistent, only no longer advancing.

Each batch of events and the checkpoint it reaches are committed in one transaction, so a
crash at any instant leaves rows and checkpoint agreeing: the projector resumes after the
checkpoint and no event counts twice or goes missing.

Paging: a page at offset 100,000 should cost about what offset 0 costs. SQLite's OFFSET
reads every skipped row (bench/paging_bench.py measures what that costs). Rows are never
deleted and ordinals are dense, so a page of every state is a range of ordinals. For one
state, each view keeps how many of its rows fall in each block of ``BLOCK`` consecutive
ordinals (and, as block -1, the total): a page sums block counts up to its offset (about a
hundred small rows at 100,000), then skips fewer than ``BLOCK`` entries of the
(active, ordinal) index, never the rows themselves.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from domain.aggregates import is_id
from domain.errors import ImpossibleEvent
from domain.limits import MAX_SAFE_INTEGER
from eventstore.feed import Recorded
from projections.reporting import report
from projections.views import VIEWS, Stored, View, view_of

log = logging.getLogger("projections")
# Faults of the read store itself (locked, full, unwritable): retried, never blamed on events.
STORE_FAULTS: tuple[type[BaseException], ...] = (sqlite3.DatabaseError, OSError)
# What binding one event's values can raise if a value does not fit SQLite: blamed on the
# event once it alone reproduces it (see ``Writer.commit``).
_VALUE_FAULTS = (OverflowError, ValueError, TypeError, sqlite3.InterfaceError, sqlite3.DataError)
REASON_MAX = 500
POINTER_CHECK_SECONDS = 0.05
CURRENT = "CURRENT"
BLOCK = 1024
TOTAL = -1  # the block number under which a state's total is kept
POSITION = "position"
UPDATED = "updated"
QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An event the read side set aside: where it is, and why the model could not use it."""

    position: int
    stream: str
    revision: int
    type: str
    reason: str


@dataclass(frozen=True, slots=True)
class Filters:
    """What a list asks for: a state, equal columns, and text to find."""

    state: str = "active"  # active | deactivated | all
    equal: tuple[tuple[str, str], ...] = ()
    query: str | None = None

    @property
    def actives(self) -> tuple[int, ...]:
        return {"active": (1,), "deactivated": (0,), "all": (0, 1)}[self.state]


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    records: list[Stored[Any]] = field(default_factory=list)


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


def _search_rowid(view: View[Any], ordinal: int) -> int:
    return ordinal * len(VIEWS) + VIEWS.index(view)


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
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
    db = _connect(path)
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


# ---------------------------------------------------------------- the writer


class Writer:
    """The projector's side: apply batches, each with its checkpoint, atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = _connect(path)
        self._db.execute(QUARANTINE)  # generations made before the quarantine existed
        self._db.executescript(CHANGES)  # ... or the change feed (rebuild to fill it)
        self._quarantined: list[Quarantined] = []

    def position(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (POSITION,)).fetchone()
        return None if row is None else int(row[0])

    def commit(self, events: Sequence[Recorded], position: int) -> int:
        """Fold ``events`` into their rows and record ``position``: all or nothing.

        Returns how many events changed a row (an event at or below a row's version was
        applied before and is skipped, so replaying a batch is harmless). An event the model
        cannot use goes into the quarantine table in the same transaction. Should binding a
        row still fail on a value (a safety net behind ``_fits``), the batch is rolled back
        and committed again one event per transaction, so the event that alone fails is
        quarantined and the others are kept.
        """
        try:
            applied = self._transaction(events, position)
        except _VALUE_FAULTS:
            applied = 0
            for event in events:
                try:
                    applied += self._transaction([event], event.position)
                except _VALUE_FAULTS as error:
                    reason = f"the read store cannot keep it: {error!r}"
                    self._transaction([], event.position, set_aside=[(event, reason)])
            applied += self._transaction([], position)
        return applied

    def _transaction(
        self,
        events: Sequence[Recorded],
        position: int,
        set_aside: Sequence[tuple[Recorded, str]] = (),
    ) -> int:
        db = self._db
        self._quarantined.clear()
        for event, reason in set_aside:
            self._quarantine(event, reason)
        db.execute("BEGIN IMMEDIATE")
        try:
            applied = self._fold(events)
            db.executemany(
                "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?)",
                ((*astuple(q), time.time()) for q in self._quarantined),
            )
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                ((POSITION, position), (UPDATED, time.time())),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._quarantined.clear()
            raise
        for q in self._quarantined:  # logged once, after the commit that records it
            report(
                "event quarantined",
                logging.WARNING,
                position=q.position,
                stream=q.stream,
                revision=q.revision,
                type=q.type,
                reason=q.reason,
            )
        self._quarantined.clear()
        return applied

    def _quarantine(self, event: Recorded, reason: str) -> None:
        self._quarantined.append(
            Quarantined(
                event.position,
                _text(event.stream),
                event.version,
                _text(event.type),
                _text(reason)[:REASON_MAX],
            )
        )

    def quarantine(self) -> list[Quarantined]:
        return quarantined(self._db)

    def _fold(self, events: Iterable[Recorded]) -> int:
        db = self._db
        streams: dict[tuple[View[Any], str], list[Recorded]] = defaultdict(list)
        for event in events:
            target = view_of(event.stream)
            if target is None:
                continue
            if not is_id(target[1]):
                # Anyone may write such a stream; a row for it would have an id no URL reaches
                # and that no representation can carry.
                self._quarantine(event, f"the stream is not named {target[0].category}-<uuid>")
                continue
            streams[target].append(event)
        blocks: dict[tuple[str, int, int], int] = defaultdict(int)
        next_ordinal: dict[str, int] = {}
        changes: list[tuple[Any, ...]] = []  # the change feed's entries, written at once
        applied = 0
        for (view, row_id), recorded in streams.items():
            row = db.execute(
                f"SELECT ordinal, version, active, {', '.join(view.columns)}"
                f" FROM {view.table} WHERE id = ?",
                (row_id,),
            ).fetchone()
            state = (
                view.aggregate.zero() if row is None else view.from_columns(bool(row[2]), row[3:])
            )
            row_text = None if row is None else view.search_text(state).lower()
            version = -1 if row is None else row[1]
            moved = []  # the events that move the row's version, for the change feed
            for event in recorded:
                if event.version <= version:
                    continue
                version = event.version
                moved.append(event)
                try:
                    after = view.aggregate.evolve(state, event.type, event.data)
                    _fits(view.to_columns(after))
                except ImpossibleEvent as error:
                    self._quarantine(event, str(error))
                    continue
                except Exception as error:  # the model's own failure on this one event
                    self._quarantine(event, f"the model failed on it: {error!r}")
                    continue
                state = after
                applied += 1
            if not state.exists or (row is not None and version == row[1]):
                continue
            active = int(view.is_active(state))
            values = (version, active, *view.to_columns(state))
            if row is None:
                if view.table not in next_ordinal:
                    (top,) = db.execute(f"SELECT MAX(ordinal) FROM {view.table}").fetchone()
                    next_ordinal[view.table] = -1 if top is None else top
                ordinal = next_ordinal[view.table] = next_ordinal[view.table] + 1
                db.execute(
                    f"INSERT INTO {view.table} VALUES (?, ?, {', '.join('?' * len(values))})",
                    (row_id, ordinal, *values),
                )
                blocks[(view.table, active, ordinal // BLOCK)] += 1
            else:
                ordinal = row[0]
                assignments = ", ".join(f"{c} = ?" for c in ("version", "active", *view.columns))
                db.execute(f"UPDATE {view.table} SET {assignments} WHERE id = ?", (*values, row_id))
                if active != row[2]:
                    blocks[(view.table, row[2], ordinal // BLOCK)] -= 1
                    blocks[(view.table, active, ordinal // BLOCK)] += 1
            changes += [
                (e.position, view.category, row_id, e.version, e.type, e.time) for e in moved
            ]
            text = view.search_text(state).lower()  # SQLite's lower() knows only ASCII
            if row is not None and (text, active) == (row_text, row[2]):
                continue  # a stock change: what search matches is unchanged
            rowid = _search_rowid(view, ordinal)
            if row is not None:  # a new row's ordinal is new: no search row has its rowid
                db.execute("DELETE FROM search WHERE rowid = ?", (rowid,))
            db.execute(
                "INSERT INTO search (rowid, text, kind, active) VALUES (?, ?, ?, ?)",
                (rowid, text, view.category, active),
            )
        db.executemany("INSERT OR IGNORE INTO changes VALUES (?, ?, ?, ?, ?, ?)", changes)
        for (table, active, _), n in list(blocks.items()):
            blocks[(table, active, TOTAL)] += n
        db.executemany(
            "INSERT INTO blocks VALUES (?, ?, ?, ?)"
            " ON CONFLICT (tbl, active, block) DO UPDATE SET n = n + excluded.n",
            ((*key, n) for key, n in blocks.items() if n),
        )
        return applied

    def close(self) -> None:
        self._db.close()


def quarantined(db: sqlite3.Connection) -> list[Quarantined]:
    """Every quarantined event, in the order of the store."""
    rows = db.execute(
        "SELECT position, stream, revision, type, reason FROM quarantine"
        " ORDER BY position, stream, revision"
    ).fetchall()
    return [Quarantined(*row) for row in rows]


def quarantine_of(directory: Path) -> list[Quarantined]:
    """The quarantine of the current generation, read-only (the projector may be running)."""
    path = current_generation(directory)
    if path is None or not path.exists():
        return []
    db = _connect(path, readonly=True)
    try:
        return quarantined(db)
    except sqlite3.OperationalError:  # a generation from before the quarantine
        return []
    finally:
        db.close()


def _fits(values: Iterable[Any]) -> None:
    """Every integer within what JSON clients hold exactly (what SQLite cannot bind, such as
    a lone surrogate, fails the batch and is isolated by ``Writer.commit``)."""
    for value in values:
        if type(value) is int and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ImpossibleEvent(f"{value} is beyond what JSON clients hold exactly")


def _text(value: str) -> str:
    """Any string as valid UTF-8 text (lone surrogates escaped)."""
    return value.encode("utf-8", "backslashreplace").decode()


# ---------------------------------------------------------------- the readers


def _match(query: str) -> tuple[str, str]:
    """SQL matching ``query`` anywhere in the text, case-insensitively, and its parameter.

    Three characters or more use the trigram index (a quoted FTS5 phrase is a substring
    match there); shorter ones have no trigram, so they scan (as does text with a NUL).
    """
    if len(query) >= 3 and "\x00" not in query:  # FTS5 strings end at a NUL
        return "search MATCH ?", '"' + query.replace('"', '""') + '"'
    return "instr(text, ?) > 0", query.lower()  # the text is stored lower-cased by Python


class ReadModels:
    """The web's side: read-only connections (one per thread) to the current generation."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._pointer = directory / CURRENT  # stat-ed often: built once
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection | None:
        """The connection to the current generation; reopened when a rebuild swapped it
        (looked for at most every ``POINTER_CHECK_SECONDS``)."""
        local = self._local
        now = time.monotonic()
        if now < getattr(local, "checked_until", 0.0):
            db: sqlite3.Connection = local.db
            return db
        try:
            marker = os.stat(self._pointer).st_ino
        except FileNotFoundError:
            return None  # the projector has not started yet: nothing to read
        if getattr(local, "marker", None) != marker:
            path = current_generation(self._directory)
            if path is None:
                return None
            old = getattr(local, "db", None)
            if old is not None:
                old.close()
            local.db = _connect(path, readonly=True)
            local.marker = marker
        local.checked_until = now + POINTER_CHECK_SECONDS
        db = local.db
        return db

    def token(self) -> tuple[int, int] | None:
        """What changes whenever the store this thread reads changes: its generation and
        SQLite's ``data_version`` (which moves when another connection, the projector,
        commits). Comparable only with tokens from the same thread. None: no store yet."""
        db = self._db()
        if db is None:
            return None
        (changes,) = db.execute("PRAGMA data_version").fetchone()
        marker: int = self._local.marker
        return marker, changes

    def position(self) -> int | None:
        """The commit position the projector has reached (None before its first batch)."""
        db = self._db()
        if db is None:
            return None
        row = db.execute("SELECT value FROM meta WHERE key = ?", (POSITION,)).fetchone()
        return None if row is None else int(row[0])

    def status(self) -> dict[str, Any]:
        """The projector's bookkeeping (position, last commit), and how many it quarantined."""
        db = self._db()
        if db is None:
            return {}
        status = dict(db.execute("SELECT key, value FROM meta").fetchall())
        try:
            (status[QUARANTINED],) = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()
        except sqlite3.OperationalError:  # a generation the projector has not opened since
            status[QUARANTINED] = 0
        return status

    def item(self, view: View[Any], row_id: str) -> Stored[Any] | None:
        db = self._db()
        if db is None:
            return None
        found = db.execute(_ITEM_SQL[view.table], (row_id,)).fetchone()
        return None if found is None else view.record(found)

    def page(self, view: View[Any], filters: Filters, offset: int, limit: int) -> Page:
        db = self._db()
        if db is None:
            return Page(0)
        if filters.equal or filters.query:
            return self._filtered(db, view, filters, offset, limit)
        return self._by_blocks(db, view, filters.actives, offset, limit)

    def _by_blocks(
        self,
        db: sqlite3.Connection,
        view: View[Any],
        actives: tuple[int, ...],
        offset: int,
        limit: int,
    ) -> Page:
        columns = _selected(view)
        marks = ", ".join("?" * len(actives))
        (total,) = db.execute(
            f"SELECT COALESCE(SUM(n), 0) FROM blocks WHERE tbl = ? AND active IN ({marks})"
            " AND block = ?",
            (view.table, *actives, TOTAL),
        ).fetchone()
        if offset >= total:
            return Page(total)
        if len(actives) > 1:  # every state: ordinals are dense, the offset is an ordinal
            rows = db.execute(
                f"SELECT {columns} FROM {view.table} WHERE ordinal >= ? ORDER BY ordinal LIMIT ?",
                (offset, limit),
            ).fetchall()
            return Page(total, [view.record(row) for row in rows])
        (active,) = actives
        if offset == 0:  # the first page, the common one: no block to look for
            rows = db.execute(
                f"SELECT {columns} FROM {view.table} WHERE active = ? ORDER BY ordinal LIMIT ?",
                (active, limit),
            ).fetchall()
            return Page(total, [view.record(row) for row in rows])
        before = 0
        counts = db.execute(
            "SELECT block, n FROM blocks WHERE tbl = ? AND active = ? AND block >= 0"
            " ORDER BY block",
            (view.table, active),
        )
        start = 0
        for number, n in counts:
            if before + n > offset:
                start = number
                break
            before += n
        (first,) = db.execute(
            f"SELECT ordinal FROM {view.table} WHERE active = ? AND ordinal >= ?"
            " ORDER BY ordinal LIMIT 1 OFFSET ?",
            (active, start * BLOCK, offset - before),
        ).fetchone()
        rows = db.execute(
            f"SELECT {columns} FROM {view.table} WHERE active = ? AND ordinal >= ?"
            " ORDER BY ordinal LIMIT ?",
            (active, first, limit),
        ).fetchall()
        return Page(total, [view.record(row) for row in rows])

    def _filtered(
        self, db: sqlite3.Connection, view: View[Any], filters: Filters, offset: int, limit: int
    ) -> Page:
        """Equality and text filters: an index per filterable column, then OFFSET."""
        conditions = [f"active IN ({', '.join('?' * len(filters.actives))})"]
        parameters: list[Any] = list(filters.actives)
        for column, value in filters.equal:
            conditions.append(f"{column} = ?")
            parameters.append(value)
        if filters.query:
            matching, text = _match(filters.query)
            conditions.append(
                f"ordinal * {len(VIEWS)} + {VIEWS.index(view)} IN"
                f" (SELECT rowid FROM search WHERE {matching} AND kind = ?)"
            )
            parameters += [text, view.category]
        where = " AND ".join(conditions)
        (total,) = db.execute(
            f"SELECT COUNT(*) FROM {view.table} WHERE {where}", parameters
        ).fetchone()
        rows = db.execute(
            f"SELECT {_selected(view)} FROM {view.table}"
            f" WHERE {where} ORDER BY ordinal LIMIT ? OFFSET ?",
            (*parameters, limit, offset),
        ).fetchall()
        return Page(total, [view.record(row) for row in rows])

    def changes(self, after: int, limit: int, categories: Sequence[str]) -> list[Change]:
        """The feed after commit position ``after``, in commit order, at most ``limit``
        entries of these categories."""
        db = self._db()
        if db is None:
            return []
        marks = ", ".join("?" * len(categories))
        try:
            rows = db.execute(
                "SELECT position, category, id, version, type, time FROM changes"
                f" WHERE position > ? AND category IN ({marks})"
                " ORDER BY position LIMIT ?",
                (after, *categories, limit),
            ).fetchall()
        except sqlite3.OperationalError:  # a generation from before the feed
            return []
        return [Change(*row) for row in rows]

    def search(
        self, query: str, offset: int, limit: int
    ) -> tuple[int, list[tuple[View[Any], Stored[Any]]]]:
        """Active resources of every view whose text contains ``query``: (total, page)."""
        db = self._db()
        if db is None:
            return 0, []
        matching, text = _match(query)
        where = f"{matching} AND active = 1"
        (total,) = db.execute(f"SELECT COUNT(*) FROM search WHERE {where}", (text,)).fetchone()
        hits = db.execute(
            f"SELECT rowid FROM search WHERE {where} ORDER BY rowid LIMIT ? OFFSET ?",
            (text, limit, offset),
        ).fetchall()
        found = []
        for (rowid,) in hits:
            view = VIEWS[rowid % len(VIEWS)]
            row = db.execute(
                f"SELECT {_selected(view)} FROM {view.table} WHERE ordinal = ?",
                (rowid // len(VIEWS),),
            ).fetchone()
            found.append((view, view.record(row)))
        return total, found


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: an event that moved a resource to ``version``."""

    position: int
    category: str
    id: str
    version: int
    type: str
    time: float | None


def _selected(view: View[Any]) -> str:
    """The one shape a row leaves the store in: what ``View.record`` reads."""
    return f"id, version, active, {', '.join(view.columns)}"


# One row by id, the hot query of GET and its 304: built once per view.
_ITEM_SQL = {
    view.table: f"SELECT {_selected(view)} FROM {view.table} WHERE id = ?" for view in VIEWS
}
