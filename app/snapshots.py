"""Snapshots of aggregates: the latest state the host's web workers know of each stream, so
that a cold worker does not fold a long stream from its start, and a worker whose own cache
is behind (another worker of the host served the stream since) starts from the newer state.

- **Where.** One SQLite file per host, ``$DATA_DIR/snapshots.sqlite3`` (WAL, commits not
  fsync'd), shared by every web worker of the host; it is derived data (delete it at will:
  the next loads rebuild it).
- **When, and by whom.** A worker writes the state it reached, with that version and its
  commit position, after each append it made, and after a load that had to read
  ``SNAPSHOT_AFTER`` events or more. A row is only ever replaced by a newer version.
- **Idempotency keys.** What each keyed request appended (so that its retry, on any worker
  of the host, is answered as the first time) is a row of its own in ``replays``, written in
  the same transaction as the state its append reached, and looked up by (stream, key)
  when a keyed request's worker does not know the key. A command's cost does not grow with
  the keys its stream has seen (3.2 to 4.3 ms a check-in through 6,000 keyed check-ins on one
  item; when the state's row carried them all and each command re-encoded every one, 3.4
  ms after 500 and 15 ms after 6,000).
- **Read.** A worker looks for a row newer than what its own cache holds before each
  command (one indexed lookup that usually finds nothing): with sync workers, a client's
  next request usually lands on another worker, whose cache would otherwise be behind and
  lose its append at the store (a failed append, a read, an append again).
- **Shape.** Each snapshot carries its aggregate's ``fingerprint`` (the state's schema, the
  event types and the aggregate's revision, ``domain.aggregates``); one of another shape is
  ignored, as if there were none.
- **Trust.** A snapshot is never trusted beyond the version it records: the events after it
  are read (or the append after it is checked by the store's expected version), as for any
  cached state.
- **Which store.** The file records what identifies the event store its rows came from
  (``eventstore.identity``: the first event of ``$all`` and an anchor, the store's newest
  event when it was last checked). A worker checks it at its first command and again every
  ``RECHECK_SECONDS`` (three small reads of ``$all``, never one per command); rows from
  another store, or past the store's last event (restored from an older backup), are all
  dropped, with one warning, and the record is made anew. Until a check has passed (the
  store unreachable), no row is read or written.

Any failure here (a locked or unwritable file) only costs the speed-up: it is logged and the
stream is read from the store.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eventstore.errors import StoreUnavailable
from eventstore.identity import History, Landmark, Origin

log = logging.getLogger("app.snapshots")
SNAPSHOT_AFTER = 100
RECHECK_SECONDS = 30.0  # how long a check of the store's identity holds
RETRY_SECONDS = 1.0  # after a check that could not be made
SCHEMA = (
    # The first layout kept every idempotency key in the state's row: not read any more.
    "DROP TABLE IF EXISTS snapshots;"
    "CREATE TABLE IF NOT EXISTS states (stream TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
    " version INTEGER NOT NULL, position INTEGER, state BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS replays (stream TEXT NOT NULL, key TEXT NOT NULL,"
    " version INTEGER NOT NULL, position INTEGER NOT NULL, appended INTEGER NOT NULL,"
    " request_hash TEXT NOT NULL, PRIMARY KEY (stream, key)) WITHOUT ROWID;"
    # What identifies the event store the rows came from: 'first' and 'anchor'.
    "CREATE TABLE IF NOT EXISTS origin (landmark TEXT PRIMARY KEY, position INTEGER NOT NULL,"
    " id TEXT NOT NULL) WITHOUT ROWID;"
)

Row = tuple[int, int | None, bytes]  # version, position, state
ReplayRow = tuple[int, int, int, str]  # version, position, appended, request hash


class Snapshots:
    """The host's snapshots; with ``history`` (the web's event store), trusted only once
    checked against it (without: as they are, for tools and tests of their own)."""

    def __init__(self, path: Path, history: History | None = None) -> None:
        self._path = path
        self._local = threading.local()
        self._history = history
        self._lock = threading.Lock()
        self._trusted_until = 0.0  # time.monotonic() until which the last check holds
        self._retry_at = 0.0

    def _trusted(self) -> bool:
        """Whether the rows are from the event store (checked once per ``RECHECK_SECONDS``)."""
        if self._history is None or time.monotonic() < self._trusted_until:
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._trusted_until:
                return True
            if now < self._retry_at:
                return False
            try:
                self._check(self._db(), self._history)
            except StoreUnavailable:  # the command will say so; try again shortly
                self._retry_at = now + RETRY_SECONDS
                return False
            except sqlite3.Error as error:
                log.warning(
                    {"message": "snapshots unchecked; reading the store", "error": str(error)}
                )
                self._retry_at = now + RETRY_SECONDS
                return False
            self._trusted_until = now + RECHECK_SECONDS
            return True

    def _check(self, db: sqlite3.Connection, history: History) -> None:
        """Drop every row unless the recorded store is this one; record it anew."""
        recorded = dict(
            (name, Landmark(position, id_))
            for name, position, id_ in db.execute("SELECT landmark, position, id FROM origin")
        )
        (newest,) = db.execute(
            "SELECT MAX(p) FROM (SELECT MAX(position) AS p FROM states"
            " UNION ALL SELECT MAX(position) FROM replays)"
        ).fetchone()
        mismatch = history.compare(Origin(recorded.get("first"), recorded.get("anchor")), newest)
        landmarks = {"first": history.first(), "anchor": history.last()}
        db.execute("BEGIN IMMEDIATE")
        try:
            if mismatch is not None:
                db.execute("DELETE FROM states")
                db.execute("DELETE FROM replays")
            db.execute("DELETE FROM origin")
            db.executemany(
                "INSERT INTO origin VALUES (?, ?, ?)",
                [(name, m.position, m.id) for name, m in landmarks.items() if m is not None],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if mismatch is not None:
            log.warning(
                {
                    "message": "the host's snapshots and replays were not from this event store:"
                    " dropped (they are rebuilt as commands load streams)",
                    "reason": mismatch.reason,
                    "detail": mismatch.detail,
                }
            )

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # derived data: no fsync per command
            db.execute("PRAGMA busy_timeout=1000")
            db.executescript(SCHEMA)
            self._local.db = db
        return db

    def get(self, stream: str, fingerprint: str, newer_than: int = -2) -> Row | None:
        """The host's snapshot of ``stream``, if it is of this shape and its version is above
        ``newer_than``."""
        if not self._trusted():
            return None
        try:
            found: Any = (
                self._db()
                .execute(
                    "SELECT version, position, state FROM states"
                    " WHERE stream = ? AND fingerprint = ? AND version > ?",
                    (stream, fingerprint, newer_than),
                )
                .fetchone()
            )
        except sqlite3.Error as error:
            log.warning({"message": "snapshot unreadable; reading the store", "error": str(error)})
            return None
        return None if found is None else (found[0], found[1], found[2])

    def replay(self, stream: str, key: str) -> ReplayRow | None:
        """What the request with this Idempotency-Key appended to ``stream``, if the host
        knows."""
        try:
            found: Any = (
                self._db()
                .execute(
                    "SELECT version, position, appended, request_hash FROM replays"
                    " WHERE stream = ? AND key = ?",
                    (stream, key),
                )
                .fetchone()
            )
        except sqlite3.Error as error:
            log.warning({"message": "replays unreadable; reading the store", "error": str(error)})
            return None
        return None if found is None else (found[0], found[1], found[2], found[3])

    def put(
        self,
        stream: str,
        fingerprint: str,
        row: Row | None,
        replays: Mapping[str, ReplayRow] | None = None,
    ) -> None:
        """The state ``row`` (unless a newer one is there) and ``replays``, in one transaction:
        a worker that sees the state also sees the keys that reached it."""
        if not self._trusted():
            return
        try:
            db = self._db()
            if replays:
                db.execute("BEGIN IMMEDIATE")
            try:
                if row is not None:
                    db.execute(
                        "INSERT INTO states VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream) DO UPDATE"
                        " SET fingerprint = excluded.fingerprint, version = excluded.version,"
                        " position = excluded.position, state = excluded.state"
                        " WHERE excluded.version > states.version"
                        " OR excluded.fingerprint != states.fingerprint",
                        (stream, fingerprint, *row),
                    )
                if replays:
                    db.executemany(
                        "INSERT OR REPLACE INTO replays VALUES (?, ?, ?, ?, ?, ?)",
                        [(stream, key, *replay) for key, replay in replays.items()],
                    )
                    db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            log.warning({"message": "snapshot not written", "error": str(error)})
