"""The projector's side of the read store: fold batches of events into rows, each batch with
its checkpoint and its origin (``projections.schema``), atomically.

A batch folds in named steps: group the events by the row they feed (``_by_row``), read each
row (``_row``), evolve its state through the events (``_evolve``), write the row, its
change-feed entries and its search text (``_write``), then the block counts and the feed of
the whole batch (``_finish``).
"""

from __future__ import annotations

import logging
import sqlite3
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
from eventstore.identity import Landmark, Mismatch, Origin
from projections import schema
from projections.reporting import report
from projections.schema import BLOCK, TOTAL, Quarantined, search_rowid
from projections.views import View, view_of

# Faults of the read store itself (locked, full, unwritable): retried, never blamed on events.
STORE_FAULTS: tuple[type[BaseException], ...] = (sqlite3.DatabaseError, OSError)
# What binding one event's values can raise if a value does not fit SQLite: blamed on the
# event once it alone reproduces it (see ``ReadStoreWriter.commit``).
_VALUE_FAULTS = (OverflowError, ValueError, TypeError, sqlite3.InterfaceError, sqlite3.DataError)
REASON_MAX = 500


@dataclass(frozen=True, slots=True)
class _Row:
    """A row as stored: where it sits, its version and activity, and its state."""

    ordinal: int
    version: int
    active: int
    state: Any


@dataclass(slots=True)
class _Folded:
    """A row's state after a batch's events, and which of them moved its version."""

    state: Any
    version: int
    moved: list[Recorded] = field(default_factory=list)
    applied: int = 0


@dataclass(slots=True)
class _Batch:
    """What a batch adds besides rows: block counts, ordinals handed out, feed entries."""

    blocks: defaultdict[tuple[str, int, int], int] = field(default_factory=lambda: defaultdict(int))
    next_ordinal: dict[str, int] = field(default_factory=dict)
    changes: list[tuple[Any, ...]] = field(default_factory=list)


class ReadStoreWriter:
    """The projector's side: apply batches, each with its checkpoint, atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = schema.connect(path)
        self._db.row_factory = sqlite3.Row
        self._db.execute(schema.QUARANTINE)  # generations made before the quarantine existed
        self._db.executescript(schema.CHANGES)  # ... or the change feed (rebuild to fill it)
        self._quarantined: list[Quarantined] = []
        self._changes = schema.Changes(path, writable=True)
        self._changes.bump()  # a commit before a crash may not have been counted

    def position(self) -> int | None:
        return schema.checkpoint_of(schema.meta(self._db))

    def origin(self) -> Origin:
        """The event store this generation records it was built from."""
        return schema.origin_of(schema.meta(self._db))

    def distrust(self, mismatch: Mismatch) -> None:
        """Mark this generation as built from another store: never served as ready again."""
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (schema.MISMATCH, schema.mismatch_text(mismatch)),
        )
        self._changes.bump()

    def commit(
        self, events: Sequence[Recorded], position: int, first: Landmark | None = None
    ) -> int:
        """Fold ``events`` into their rows and record ``position`` (and ``first``, the store's
        first event, with the newest event as the anchor): all or nothing.

        Returns how many events changed a row (an event at or below a row's version was
        applied before and is skipped, so replaying a batch is harmless). An event the model
        cannot use goes into the quarantine table in the same transaction. Should binding a
        row still fail on a value (a safety net behind ``_fits``), the batch is rolled back
        and committed again one event per transaction, so the event that alone fails is
        quarantined and the others are kept.
        """
        try:
            applied = self._transaction(events, position, first)
        except _VALUE_FAULTS:
            applied = 0
            for event in events:
                try:
                    applied += self._transaction([event], event.position, first)
                except _VALUE_FAULTS as error:
                    reason = f"the read store cannot keep it: {error!r}"
                    self._transaction([], event.position, first, set_aside=[(event, reason)])
            applied += self._transaction([], position, first)
        return applied

    def _transaction(
        self,
        events: Sequence[Recorded],
        position: int,
        first: Landmark | None,
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
                _checkpoint(events, position, first),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._quarantined.clear()
            raise
        self._changes.bump()  # after the commit: a reader that sees it sees the rows
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
        return schema.quarantined(self._db)

    # ------------------------------------------------------------ the fold, step by step

    def _fold(self, events: Iterable[Recorded]) -> int:
        batch = _Batch()
        applied = 0
        for (view, row_id), recorded in self._by_row(events).items():
            row = self._row(view, row_id)
            folded = self._evolve(view, row, recorded)
            applied += folded.applied
            if not folded.state.exists or (row is not None and folded.version == row.version):
                continue  # nothing to show yet, or every event was applied before
            self._write(view, row_id, row, folded, batch)
        self._finish(batch)
        return applied

    def _by_row(self, events: Iterable[Recorded]) -> dict[tuple[View[Any], str], list[Recorded]]:
        """The batch's events by the row they feed, in order; other streams are skipped."""
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
        return streams

    def _row(self, view: View[Any], row_id: str) -> _Row | None:
        found = self._db.execute(
            f"SELECT ordinal, version, active, {', '.join(view.columns)}"
            f" FROM {view.table} WHERE id = ?",
            (row_id,),
        ).fetchone()
        if found is None:
            return None
        active = bool(found["active"])
        state = view.from_columns(active, tuple(found[column] for column in view.columns))
        return _Row(found["ordinal"], found["version"], found["active"], state)

    def _evolve(self, view: View[Any], row: _Row | None, events: list[Recorded]) -> _Folded:
        """The row's state through ``events``, skipping those at or below its version and
        quarantining those the model cannot use (they still move the version)."""
        if row is None:
            folded = _Folded(view.aggregate.zero(), -1)
        else:
            folded = _Folded(row.state, row.version)
        for event in events:
            if event.version <= folded.version:
                continue
            folded.version = event.version
            folded.moved.append(event)
            try:
                after = view.aggregate.evolve(folded.state, event.type, event.data)
                _fits(view.to_columns(after))
            except ImpossibleEvent as error:
                self._quarantine(event, str(error))
                continue
            except Exception as error:  # the model's own failure on this one event
                self._quarantine(event, f"the model failed on it: {error!r}")
                continue
            folded.state = after
            folded.applied += 1
        return folded

    def _write(
        self, view: View[Any], row_id: str, row: _Row | None, folded: _Folded, batch: _Batch
    ) -> None:
        """The row, its change-feed entries and its search text."""
        active = int(view.is_active(folded.state))
        values = (folded.version, active, *view.to_columns(folded.state))
        if row is None:
            ordinal = self._insert(view, row_id, values, batch)
            batch.blocks[(view.table, active, ordinal // BLOCK)] += 1
        else:
            ordinal = row.ordinal
            assignments = ", ".join(f"{c} = ?" for c in ("version", "active", *view.columns))
            self._db.execute(
                f"UPDATE {view.table} SET {assignments} WHERE id = ?", (*values, row_id)
            )
            if active != row.active:
                batch.blocks[(view.table, row.active, ordinal // BLOCK)] -= 1
                batch.blocks[(view.table, active, ordinal // BLOCK)] += 1
        batch.changes += [
            (e.position, view.category, row_id, e.version, e.type, e.time) for e in folded.moved
        ]
        self._index(view, ordinal, row, folded.state, active)

    def _insert(self, view: View[Any], row_id: str, values: tuple[Any, ...], batch: _Batch) -> int:
        """A new row at the next ordinal of its view; that ordinal."""
        if view.table not in batch.next_ordinal:
            (top,) = self._db.execute(f"SELECT MAX(ordinal) FROM {view.table}").fetchone()
            batch.next_ordinal[view.table] = -1 if top is None else top
        ordinal = batch.next_ordinal[view.table] = batch.next_ordinal[view.table] + 1
        self._db.execute(
            f"INSERT INTO {view.table} VALUES (?, ?, {', '.join('?' * len(values))})",
            (row_id, ordinal, *values),
        )
        return ordinal

    def _index(
        self, view: View[Any], ordinal: int, row: _Row | None, state: Any, active: int
    ) -> None:
        """The row's search entry, rewritten only when what search matches changed."""
        text = view.search_text(state).lower()  # SQLite's lower() knows only ASCII
        if row is not None and (text, active) == (view.search_text(row.state).lower(), row.active):
            return  # a stock change: what search matches is unchanged
        rowid = search_rowid(view, ordinal)
        if row is not None:  # a new row's ordinal is new: no search row has its rowid
            self._db.execute("DELETE FROM search WHERE rowid = ?", (rowid,))
        self._db.execute(
            "INSERT INTO search (rowid, text, kind, active) VALUES (?, ?, ?, ?)",
            (rowid, text, view.category, active),
        )

    def _finish(self, batch: _Batch) -> None:
        """The batch's change feed and its block counts (with each state's total)."""
        db = self._db
        db.executemany("INSERT OR IGNORE INTO changes VALUES (?, ?, ?, ?, ?, ?)", batch.changes)
        blocks = batch.blocks
        for (table, active, _), n in list(blocks.items()):
            blocks[(table, active, TOTAL)] += n
        db.executemany(
            "INSERT INTO blocks VALUES (?, ?, ?, ?)"
            " ON CONFLICT (tbl, active, block) DO UPDATE SET n = n + excluded.n",
            ((*key, n) for key, n in blocks.items() if n),
        )

    def close(self) -> None:
        self._db.close()
        self._changes.close()


def _checkpoint(
    events: Sequence[Recorded], position: int, first: Landmark | None
) -> list[tuple[str, Any]]:
    """The meta rows a batch writes: its checkpoint, the time, and what it came from."""
    values: list[tuple[str, Any]] = [(schema.POSITION, position), (schema.UPDATED, time.time())]
    if first is not None:
        values += [(schema.FIRST_POSITION, first.position), (schema.FIRST_ID, first.id)]
    anchor = next((e for e in reversed(events) if e.id is not None), None)
    if anchor is not None:
        values += [(schema.ANCHOR_POSITION, anchor.position), (schema.ANCHOR_ID, anchor.id)]
    return values


def _fits(values: Iterable[Any]) -> None:
    """Every integer within what JSON clients hold exactly (what SQLite cannot bind, such as
    a lone surrogate, fails the batch and is isolated by ``ReadStoreWriter.commit``)."""
    for value in values:
        if type(value) is int and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ImpossibleEvent(f"{value} is beyond what JSON clients hold exactly")


def _text(value: str) -> str:
    """Any string as valid UTF-8 text (lone surrogates escaped)."""
    return value.encode("utf-8", "backslashreplace").decode()
