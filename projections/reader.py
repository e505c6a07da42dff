"""The web's side of the read store: read-only connections (one per thread) to the current
generation (``projections.schema``), and whether its rows may be served at all.

A generation's rows are served only once they are known to come from the event store the web
writes to (``eventstore.identity``): the web compares the generation's recorded origin with
its store when it first meets the generation (at a worker's start, after a rebuild's swap,
and when the projector first records the origin of a new one), and honours the mismatch the
projector records when it finds one. Until then every read raises ``Untrusted`` (the HTTP
edge answers 503), and ``/readyz`` names the reason.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from eventstore.errors import StoreUnavailable
from eventstore.identity import History, Mismatch
from projections import schema
from projections.schema import BLOCK, CURRENT, POINTER_CHECK_SECONDS, TOTAL
from projections.views import VIEWS, Stored, View

log = logging.getLogger("projections")
RETRY_CHECK_SECONDS = 1.0  # after a check the event store did not answer


class Untrusted(Exception):
    """The current generation was not built from this event store: its rows are not served."""

    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(f"{mismatch.reason}: {mismatch.detail}")
        self.mismatch = mismatch


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


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: an event that moved a resource to ``version``."""

    position: int
    category: str
    id: str
    version: int
    type: str
    time: float | None


CHANGE_COLUMNS = ", ".join(f.name for f in fields(Change))
_TRUST_KEYS = (
    schema.POSITION,
    schema.MISMATCH,
    schema.FIRST_POSITION,
    schema.FIRST_ID,
    schema.ANCHOR_POSITION,
    schema.ANCHOR_ID,
)
# How often a thread with a change counter still reads SQLite's data_version (see token()).
DATA_VERSION_SECONDS = 0.25
_TRUST_SQL = f"SELECT key, value FROM meta WHERE key IN ({', '.join('?' * len(_TRUST_KEYS))})"


def _match(query: str) -> tuple[str, str]:
    """SQL matching ``query`` anywhere in the text, case-insensitively, and its parameter.

    Three characters or more use the trigram index (a quoted FTS5 phrase is a substring
    match there); shorter ones have no trigram, so they scan (as does text with a NUL).
    """
    if len(query) >= 3 and "\x00" not in query:  # FTS5 strings end at a NUL
        return "search MATCH ?", '"' + query.replace('"', '""') + '"'
    return "instr(text, ?) > 0", query.lower()  # the text is stored lower-cased by Python


class ReadModels:
    """The web's side: read-only connections (one per thread) to the current generation.

    With ``history`` (the web's event store), a generation's rows are served only once its
    origin matches that store (checked once per generation and origin, per process); without
    it (tests and tools reading a store they built), they are served as they are.
    """

    def __init__(self, directory: Path, history: History | None = None) -> None:
        self._directory = directory
        self._pointer = directory / CURRENT  # stat-ed often: built once
        self._local = threading.local()
        self._history = history
        self._verdicts: dict[tuple[int, str | None], Mismatch | None] = {}
        self._lock = threading.Lock()
        self._failed: tuple[float, StoreUnavailable] | None = None

    def _db(self) -> sqlite3.Connection | None:
        """The connection to the current generation, if its rows may be served (else
        ``Untrusted``, or StoreUnavailable while the check cannot reach the store)."""
        db = self._connection()
        mismatch: Mismatch | None = getattr(self._local, "mismatch", None)
        if mismatch is not None:
            raise Untrusted(mismatch)
        return db

    def _connection(self) -> sqlite3.Connection | None:
        """The connection to the current generation; reopened when a rebuild swapped it
        (looked for at most every ``POINTER_CHECK_SECONDS``, when the trust is looked at
        again too)."""
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
            path = schema.current_generation(self._directory)
            if path is None:
                return None
            old = getattr(local, "db", None)
            if old is not None:
                old.close()
            if getattr(local, "changes", None) is not None:
                local.changes.close()
            local.db = schema.connect(path, readonly=True)
            local.marker = marker
            local.path = path
            local.changes = None
            local.sampled_until = 0.0
            local.checked_until = 0.0
        if local.changes is None:  # its writer may have made it since
            local.changes = schema.Changes.of(local.path)
        local.mismatch = self._trust(local.db, marker)
        local.checked_until = now + POINTER_CHECK_SECONDS
        db = local.db
        return db

    def _trust(self, db: sqlite3.Connection, marker: int) -> Mismatch | None:
        """Why this generation's rows may not be served (None: they may)."""
        values = dict(db.execute(_TRUST_SQL, _TRUST_KEYS).fetchall())
        flagged = schema.mismatch_of(values)
        if flagged is not None or self._history is None:
            return flagged
        key = (marker, values.get(schema.FIRST_ID))
        if key in self._verdicts:
            return self._verdicts[key]
        with self._lock:
            if key in self._verdicts:
                return self._verdicts[key]
            if self._failed is not None and time.monotonic() < self._failed[0]:
                raise self._failed[1]
            try:
                verdict = self._history.compare(
                    schema.origin_of(values), schema.checkpoint_of(values)
                )
            except StoreUnavailable as error:
                self._failed = (time.monotonic() + RETRY_CHECK_SECONDS, error)
                raise
            self._failed = None
            self._verdicts[key] = verdict
        if verdict is not None:
            log.warning(
                {
                    "message": "the read store is not from this event store: reads answer 503"
                    " until the projector has rebuilt it from this one",
                    "reason": verdict.reason,
                    "detail": verdict.detail,
                }
            )
        return verdict

    def mismatch(self) -> Mismatch | None:
        """Why the current generation's rows are not served (None: they are, or there is no
        generation yet). Raises StoreUnavailable when the check cannot reach the store."""
        self._connection()
        return getattr(self._local, "mismatch", None)

    def token(self) -> tuple[int, int, int] | None:
        """What changes whenever the store this thread reads changes: its generation, the
        generation's change counter (``schema.Changes``, which its writer moves after every
        commit) and SQLite's ``data_version`` (which moves when another connection commits).
        Comparable only with tokens from the same thread. None: no store yet.

        With a counter, ``data_version`` (a statement) is read again only every
        ``DATA_VERSION_SECONDS``: it covers the one case the counter misses, a writer killed
        between a commit and its count, whose renderings are then at most that old. Without
        one (a generation no writer has opened since counters exist), it is read each time.
        """
        db = self._db()
        if db is None:
            return None
        local = self._local
        marker: int = local.marker
        changes: schema.Changes | None = local.changes
        if changes is None:
            (version,) = db.execute("PRAGMA data_version").fetchone()
            return marker, -1, version
        now = time.monotonic()
        if now >= local.sampled_until:
            (local.sampled,) = db.execute("PRAGMA data_version").fetchone()
            local.sampled_until = now + DATA_VERSION_SECONDS
        sampled: int = local.sampled
        return marker, changes.value(), sampled

    def position(self) -> int | None:
        """The commit position the projector has reached (None before its first batch)."""
        db = self._db()
        if db is None:
            return None
        found = db.execute("SELECT value FROM meta WHERE key = ?", (schema.POSITION,))
        row = found.fetchone()
        return None if row is None else int(row[0])

    def status(self) -> dict[str, Any]:
        """The projector's bookkeeping (position, last commit, what it was built from, a
        mismatch it found), and how many it quarantined; served whatever the trust."""
        try:
            db = self._connection()
        except StoreUnavailable:  # the rows are not served; the bookkeeping is
            db = getattr(self._local, "db", None)
        if db is None:
            return {}
        status = schema.meta(db)
        try:
            (status[schema.QUARANTINED],) = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()
        except sqlite3.OperationalError:  # a generation the projector has not opened since
            status[schema.QUARANTINED] = 0
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
                f"SELECT {CHANGE_COLUMNS} FROM changes"
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


def _selected(view: View[Any]) -> str:
    """The one shape a row leaves the store in: what ``View.record`` reads."""
    return f"id, version, active, {', '.join(view.columns)}"


# One row by id, the hot query of GET and its 304: built once per view.
_ITEM_SQL = {
    view.table: f"SELECT {_selected(view)} FROM {view.table} WHERE id = ?" for view in VIEWS
}
