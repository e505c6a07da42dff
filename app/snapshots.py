"""Snapshots of aggregates: the latest state the host's web workers know of each stream, so
that a cold worker does not fold a long stream from its start, and a worker whose own cache
is behind (another worker of the host served the stream since) starts from the newer state.

- **Where.** One SQLite file per host, ``$DATA_DIR/snapshots.sqlite3`` (WAL, commits not
  fsync'd), shared by every web worker of the host; it is derived data (delete it at will:
  the next loads rebuild it).
- **When, and by whom.** A worker writes the state it reached, with that version, its commit
  position and the idempotency keys seen so far (so a retried request is still answered as
  the first time), after each append it made, and after a load that had to read
  ``SNAPSHOT_AFTER`` events or more. A row is only ever replaced by a newer version.
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

Any failure here (a locked or unwritable file) only costs the speed-up: it is logged and the
stream is read from the store.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("app.snapshots")
SNAPSHOT_AFTER = 100
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS snapshots (stream TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
    " version INTEGER NOT NULL, position INTEGER, state BLOB NOT NULL, replays BLOB NOT NULL)"
    " WITHOUT ROWID"
)

Row = tuple[int, int | None, bytes, bytes]  # version, position, state, replays


class Snapshots:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # derived data: no fsync per command
            db.execute("PRAGMA busy_timeout=1000")
            db.execute(SCHEMA)
            self._local.db = db
        return db

    def get(self, stream: str, fingerprint: str, newer_than: int = -2) -> Row | None:
        """The host's snapshot of ``stream``, if it is of this shape and its version is above
        ``newer_than``."""
        try:
            found: Any = (
                self._db()
                .execute(
                    "SELECT version, position, state, replays FROM snapshots"
                    " WHERE stream = ? AND fingerprint = ? AND version > ?",
                    (stream, fingerprint, newer_than),
                )
                .fetchone()
            )
        except sqlite3.Error as error:
            log.warning({"message": "snapshot unreadable; reading the store", "error": str(error)})
            return None
        return None if found is None else (found[0], found[1], found[2], found[3])

    def put(self, stream: str, fingerprint: str, row: Row) -> None:
        version, position, state, replays = row
        try:
            self._db().execute(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (stream) DO UPDATE"
                " SET fingerprint = excluded.fingerprint, version = excluded.version,"
                " position = excluded.position, state = excluded.state,"
                " replays = excluded.replays"
                " WHERE excluded.version > snapshots.version"
                " OR excluded.fingerprint != snapshots.fingerprint",
                (stream, fingerprint, version, position, state, replays),
            )
        except sqlite3.Error as error:
            log.warning({"message": "snapshot not written", "error": str(error)})
