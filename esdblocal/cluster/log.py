"""What a member reads of its own log beside the Store: batches to replicate, its epochs,
where it ends; and the offline truncation a diverged member does before it opens its log.

Each function opens its own SQLite connection (read-only unless it truncates), so it never
touches the Store's writer connection; a batch and the projection checkpoints it carries
are read in one transaction, so they belong together.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esdblocal.cluster.wire import Epoch
from esdblocal.store import LOG_START, Recorded, record_size

EPOCH_STREAM = "$epoch-information"
EPOCH_EVENT_TYPE = "$epoch-information"
TRUNCATE_FILE = "truncate.json"
STATE_FILE = "cluster.json"
BATCH = 2_000
# The last epochs a follower sends when it subscribes, as the real ReplicaService does.
EPOCHS_SENT = 20

_SELECT = (
    "SELECT e.position, s.name, e.revision, e.event_id, e.type, e.content_type, e.created,"
    " e.data, e.metadata FROM events e JOIN streams s ON s.id = e.stream_id"
)


class LogReader:
    """Read-only access to one member's log, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, isolation_level=None)
            self._local.db = db
        return db

    def batch(
        self, after: int, inclusive: bool = False
    ) -> tuple[list[Recorded], dict[str, int] | None, int]:
        """Records after ``after`` (or from it), the checkpoints when they reach the end,
        and the last position in the log."""
        db = self._db()
        db.execute("BEGIN")
        try:
            operator = ">=" if inclusive else ">"
            rows = list(
                map(
                    Recorded._make,
                    db.execute(
                        _SELECT + f" WHERE e.position {operator} ? ORDER BY e.position LIMIT ?",
                        (after, BATCH),
                    ),
                )
            )
            checkpoints: dict[str, int] | None = None
            if len(rows) < BATCH:
                checkpoints = dict(
                    db.execute("SELECT name, position FROM projection_checkpoints").fetchall()
                )
            head = db.execute("SELECT MAX(position) FROM events").fetchone()[0]
        finally:
            db.execute("COMMIT")
        return rows, checkpoints, -1 if head is None else int(head)

    def epochs(self, limit: int = EPOCHS_SENT) -> list[Epoch]:
        """The log's epochs, newest first."""
        return epochs(self._db(), limit)

    def ends(self) -> tuple[int, int]:
        """(the last record's position or -1, where the next record goes)."""
        return ends(self._db())


def epochs(db: sqlite3.Connection, limit: int) -> list[Epoch]:
    rows = db.execute(
        "SELECT e.position, e.data FROM events e JOIN streams s ON s.id = e.stream_id"
        " WHERE s.name = ? AND e.type = ? ORDER BY e.position DESC LIMIT ?",
        (EPOCH_STREAM, EPOCH_EVENT_TYPE, limit),
    ).fetchall()
    found: list[Epoch] = []
    for position, data in rows:
        try:
            body = json.loads(data)
            found.append(
                Epoch(
                    int(body["epochNumber"]),
                    int(position),
                    str(body["epochId"]),
                    int(body.get("esdblocalNode", -1)),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return found


def ends(db: sqlite3.Connection) -> tuple[int, int]:
    row = db.execute(_SELECT + " ORDER BY e.position DESC LIMIT 1").fetchone()
    if row is None:
        return -1, LOG_START
    last = Recorded._make(row)
    return last.position, last.position + record_size(last.stream, last)


def epoch_event_data(epoch: Epoch, previous: Epoch | None, leader_instance: str) -> bytes:
    """The ``$epoch-information`` event's JSON, as ``EpochRecord.EpochRecordDto`` writes it
    (plus the node's number, which esdblocal's members go by)."""
    from esdblocal.http import atom
    from esdblocal.store import now_ticks

    body: dict[str, Any] = {
        "epochPosition": epoch.position,
        "epochNumber": epoch.number,
        "epochId": epoch.id,
        "prevEpochPosition": previous.position if previous is not None else -1,
        "timeStamp": atom.timestamp(now_ticks()),
        "leaderInstanceId": leader_instance,
        "esdblocalNode": epoch.leader,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def valid_position(
    follower_writer: int,
    follower_epochs: list[Epoch],
    leader_epochs: list[Epoch],
    leader_writer: int,
) -> int:
    """Where a subscribing follower's log stops agreeing with the leader's
    (``LeaderReplicationService.GetValidLogPosition``): the start of the first epoch after
    the last one both logs share, or the follower's end; LOG_START when nothing is shared."""
    if not follower_epochs:
        return LOG_START
    mine = {(e.position, e.id) for e in leader_epochs}
    common: Epoch | None = None
    after_common: Epoch | None = None
    for i, epoch in enumerate(follower_epochs):  # newest first
        if (epoch.position, epoch.id) in mine:
            common = epoch
            after_common = follower_epochs[i - 1] if i > 0 else None
            break
    if common is None:
        return LOG_START
    replica = after_common.position if after_common is not None else follower_writer
    newer = [e for e in leader_epochs if e.number > common.number]
    if not newer:
        return min(replica, leader_writer)
    return min(replica, min(newer, key=lambda e: e.number).position)


# ------------------------------------------------------------------ offline truncation


def request_truncation(data_dir: Path, position: int) -> None:
    """Leave the truncation for the next start (the real TruncateCheckpoint): the member
    then exits, and truncates before it opens its log again."""
    _write_json(data_dir / TRUNCATE_FILE, {"position": position})


def truncate_pending(data_dir: Path, db_file: str) -> int | None:
    """Apply a truncation left by the last run; the position truncated from, or None."""
    marker = data_dir / TRUNCATE_FILE
    if not marker.exists():
        return None
    position = int(json.loads(marker.read_text())["position"])
    path = data_dir / db_file
    if path.exists():
        truncate(path, position)
    marker.unlink()
    return position


def truncate(path: Path, position: int) -> int:
    """Drop every record at or after ``position``; the streams' last revisions follow.
    Returns how many records went."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        affected = [
            row[0]
            for row in db.execute(
                "SELECT DISTINCT stream_id FROM events WHERE position >= ?", (position,)
            )
        ]
        dropped = db.execute("DELETE FROM events WHERE position >= ?", (position,)).rowcount
        db.executemany(
            "UPDATE streams SET last_revision = COALESCE("
            "(SELECT MAX(revision) FROM events WHERE stream_id = ?), -1) WHERE id = ?",
            [(stream_id, stream_id) for stream_id in affected],
        )
        # Checkpoints past the cut name output that is gone: the leader's replace them.
        db.execute("DELETE FROM projection_checkpoints WHERE position >= ?", (position,))
        db.execute("COMMIT")
        return int(dropped)
    finally:
        db.close()


# ------------------------------------------------------------------ term and vote


@dataclass
class Persisted:
    """The last election a member took part in and whom it voted for (Raft's currentTerm
    and votedFor): kept across restarts, so that no member votes twice in one term."""

    term: int = 0
    voted_for: int = -1

    @classmethod
    def load(cls, data_dir: Path) -> Persisted:
        try:
            raw = json.loads((data_dir / STATE_FILE).read_text())
            return cls(int(raw["term"]), int(raw["voted_for"]))
        except (OSError, ValueError, KeyError, TypeError):
            return cls()

    def save(self, data_dir: Path) -> None:
        _write_json(data_dir / STATE_FILE, {"term": self.term, "voted_for": self.voted_for})


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as file:
        json.dump(value, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
