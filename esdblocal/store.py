"""The log: one SQLite database in WAL mode, written by one thread that commits groups.

Everything the server knows lives here. Appends from every client are queued to a single
writer thread, which takes whatever is waiting, checks each request's expected version
against the streams' current state, writes all of them in one transaction and fsyncs once
(group commit) before any caller hears "done". Readers use their own connections, so a
long read never blocks a write and vice versa.

The rules for expected versions, idempotent re-appends, soft deletes and tombstones follow
EventStoreDB's own (``IndexWriter.CheckCommit`` and ``StorageWriterService`` in the server's
source); the module docstrings of the functions below say where this matters.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from uuid import uuid4

# Expected-version sentinels, as EventStoreDB's ExpectedVersion numbers them.
ANY = -2
NO_STREAM = -1
STREAM_EXISTS = -4
# EventNumber.DeletedStream: the revision of a tombstone and the $tb of a soft delete.
DELETED_STREAM = 2**63 - 1

# EventStoreDB keeps only the last event of a metastream ($$name) readable.
METASTREAM_MAX_COUNT = 1
# A real log opens with an epoch record at position 0, which is not an event; events
# therefore never sit at position 0, and a subscription "after 0" sees them all.
LOG_START = 128
# What an append of no events advances the log by (the server writes an empty record).
EMPTY_RECORD_SIZE = 64
# How many recent event ids the writer remembers for idempotent appends with ANY (the
# real server also bounds this: a re-append older than its cache is written again).
IDEMPOTENCY_CACHE_SIZE = 100_000
# Upper bound on appends committed in one transaction.
MAX_GROUP = 512
# How long a projection's output waits for a client's append to share its transaction
# (and fsync) before it is committed alone (seconds).
EMIT_WAIT = 0.002

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    last_revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created INTEGER NOT NULL,
    data BLOB NOT NULL,
    metadata BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (stream_id, revision);
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
"""

_SELECT = (
    "SELECT e.position, s.name, e.revision, e.event_id, e.type, e.content_type, e.created,"
    " e.data, e.metadata FROM events e JOIN streams s ON s.id = e.stream_id"
)


class Recorded(NamedTuple):
    """One event as stored; ``position`` is both its commit and its prepare position."""

    position: int
    stream: str
    revision: int
    event_id: str
    type: str
    content_type: str
    created: int  # 100 ns ticks since the Unix epoch, as the server's "created" metadata
    data: bytes
    metadata: bytes


class Proposed(NamedTuple):
    """An event to write. (Tuples: the system projections make two or three for every
    event a client writes, and a frozen dataclass costs several times more to build.)"""

    event_id: str
    type: str
    content_type: str
    data: bytes
    metadata: bytes


class Emitted(NamedTuple):
    """An event a projection writes, with expected version any.

    ``new_stream_metadata``: written to ``$$stream`` first when the stream has no events yet
    (as a projection's EmittedStream sets a new stream's $acl before its first event).
    """

    stream: str
    event: Proposed
    new_stream_metadata: bytes | None = None
    # After a projection's reset, its first write to a stream hides what the old epoch
    # wrote: $tb moves to the end (EmittedStream's "new logical stream").
    truncate: bool = False


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What an append, delete or tombstone reports back.

    ``current_revision`` is the stream's last revision afterwards (-1: no stream);
    ``position`` is the commit position of the last event written, or None when nothing was
    written (an empty append).
    """

    current_revision: int
    position: int | None


@dataclass(frozen=True, slots=True)
class MultiWriteResult:
    """What an atomic append to several streams reports: each stream's last revision
    afterwards (in the order the streams were given) and the last event's position."""

    revisions: tuple[int, ...]
    position: int


@dataclass(frozen=True, slots=True)
class StreamStateFailure:
    """One stream whose state was not what a multi-stream append expected.

    ``actual`` is the stream's last revision, NO_STREAM, or DELETED_STREAM when tombstoned;
    ``soft_deleted`` says a stream with events has been soft deleted.
    """

    index: int
    stream: str
    expected: int
    actual: int
    soft_deleted: bool


class StoreError(Exception):
    """Base of the log's refusals; the gRPC layer maps each to the wire error."""


class WrongExpectedVersion(StoreError):
    def __init__(self, stream: str, expected: int, current: int) -> None:
        super().__init__(f"WrongExpectedVersion for {stream!r}: expected {expected}, is {current}")
        self.stream = stream
        self.expected = expected
        self.current = current  # -1 when the stream does not exist


class StreamDeleted(StoreError):
    def __init__(self, stream: str) -> None:
        super().__init__(f"Event stream '{stream}' is deleted.")
        self.stream = stream


class ConsistencyFailed(StoreError):
    """A multi-stream append refused whole: these streams were not as expected."""

    def __init__(self, failures: Sequence[StreamStateFailure]) -> None:
        super().__init__(", ".join(f.stream for f in failures))
        self.failures = tuple(failures)


class StreamNotFound(StoreError):
    def __init__(self, stream: str) -> None:
        super().__init__(f"Stream '{stream}' not found")
        self.stream = stream


def is_metastream(name: str) -> bool:
    return name.startswith("$$")


def metastream_of(name: str) -> str:
    return "$$" + name


def now_ticks() -> int:
    return time.time_ns() // 100


def record_size(stream: str, event: Proposed | Recorded) -> int:
    """Bytes a record takes in a log like the server's; positions advance by this much."""
    return (
        88
        + _utf8_length(stream)
        + _utf8_length(event.type)
        + len(event.content_type)
        + len(event.data)
        + len(event.metadata)
    )


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


@dataclass(frozen=True, slots=True)
class StreamMetadata:
    """The parts of a stream's metadata that change what a read returns."""

    truncate_before: int | None = None  # $tb
    max_count: int | None = None  # $maxCount
    max_age: int | None = None  # $maxAge, seconds

    @classmethod
    def parse(cls, data: bytes) -> StreamMetadata:
        try:
            raw = json.loads(data)
        except ValueError:
            return cls()
        return cls.from_dict(raw) if isinstance(raw, dict) else cls()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StreamMetadata:
        def positive(key: str) -> int | None:
            value = raw.get(key)
            return value if isinstance(value, int) and value >= 0 else None

        return cls(positive("$tb"), positive("$maxCount"), positive("$maxAge"))

    @property
    def soft_deleted(self) -> bool:
        return self.truncate_before == DELETED_STREAM


@dataclass(slots=True)
class _Stream:
    """The writer's view of one stream; ``id`` is None until its first event is written."""

    name: str
    id: int | None
    last_revision: int  # -1: no events; DELETED_STREAM: tombstoned


@dataclass(slots=True)
class _Request:
    kind: str  # "append" | "delete" | "tombstone" | "emit"
    stream: str
    expected: int
    events: Sequence[Proposed]
    token: Any  # the caller's handle for the outcome, returned with it
    emitted: Sequence[Emitted] = ()
    checkpoints: dict[str, int] | None = None
    # "multi": the streams with their expected states, and the records by stream index.
    targets: Sequence[tuple[str, int]] = ()
    records: Sequence[tuple[int, Proposed]] = ()
    replicated: Sequence[Recorded] = ()


Outcome = WriteResult | MultiWriteResult | BaseException
# Called on the writer thread once per group: each request's token with its outcome, and the
# records the group committed (durable by then), in log order.
OnCommit = Callable[[list[tuple[Any, Outcome]], list[Recorded]], None]


class Store:
    """The event log. Thread-safe: call from any thread; writes go through one writer."""

    def __init__(self, path: Path | None, on_commit: OnCommit, initial_events: bool = True) -> None:
        """Open (or create) the log at ``path``; None keeps everything in memory.

        ``on_commit`` hears every outcome, once per group, so that a caller on another
        thread (the event loop) is woken once per fsync rather than once per request.
        ``initial_events=False``: a fresh log stays empty (a cluster member's log starts
        as its leader's does, by replication).
        """
        self._path = path
        self._on_commit = on_commit
        # A cluster member's "may this node write?": the refusal (NotLeader, NotReady) for
        # every write submitted while it is not the leader, or None.
        self.refusal: Callable[[], BaseException | None] | None = None
        self._local = threading.local()
        self._memory_lock = threading.Lock()
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._recent_ids: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
        if path is None:
            self._writer_db = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer_db = sqlite3.connect(path, check_same_thread=False)
            self._writer_db.execute("PRAGMA journal_mode=WAL")
            self._writer_db.execute("PRAGMA synchronous=FULL")
        self._writer_db.isolation_level = None  # explicit BEGIN/COMMIT
        self._writer_db.executescript(SCHEMA)
        self._next_position = self._load_next_position()
        if self._next_position == LOG_START and initial_events:
            self._write_initial_events()
        self._warm_idempotency_cache()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="esdblocal-writer")
        self._writer.daemon = True
        self._writer.start()

    # ---------------------------------------------------------------- writing

    def submit_emitted(
        self, emitted: Sequence[Emitted], checkpoints: dict[str, int], token: Any
    ) -> None:
        """Queue a projection's output and its checkpoints: written in one transaction.

        Events to tombstoned streams are skipped; the outcome is a WriteResult whose
        position is the last event written (None if none).
        """
        request = _Request("emit", "", ANY, (), token, emitted, checkpoints)
        self._queue(request)

    def checkpoint(self, name: str) -> int | None:
        """The position a projection has durably processed up to (None: never ran)."""
        with self._reader() as db:
            row = db.execute(
                "SELECT position FROM projection_checkpoints WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else int(row[0])

    def forget_checkpoints(self, names: Sequence[str], token: Any) -> None:
        """Drop projections' checkpoints (a reset); reported like an empty emit."""
        self.submit_emitted((), {name: -1 for name in names}, token)

    def submit(
        self, kind: str, stream: str, expected: int, events: Sequence[Proposed], token: Any
    ) -> None:
        """Queue an append, delete or tombstone; ``on_commit`` reports it with ``token``."""
        self._queue(_Request(kind, stream, expected, events, token))

    def submit_replicated(
        self, records: Sequence[Recorded], checkpoints: dict[str, int] | None, token: Any
    ) -> None:
        """A cluster follower's write: its leader's records as they are (positions, ids,
        timestamps), and, when given, the leader's projection checkpoints, which replace
        this log's. Never refused; reported like an append of the last record."""
        request = _Request("replicated", "", ANY, (), token, (), checkpoints, replicated=records)
        if self._closed:
            self._on_commit([(token, RuntimeError("the log is closed"))], [])
        else:
            self._requests.put(request)

    def submit_multi(
        self,
        targets: Sequence[tuple[str, int]],
        records: Sequence[tuple[int, Proposed]],
        token: Any,
    ) -> None:
        """Queue an atomic append to several streams (KurrentDB's multi-stream WriteEvents).

        ``targets`` are (stream, expected state) pairs, checked before anything is written;
        ``records`` are (index into targets, event), written in this order. One stream not
        as expected and nothing is written: the outcome is ConsistencyFailed. A target
        that no record names is a check only (AppendRecords' consistency checks).
        """
        self._queue(_Request("multi", "", ANY, (), token, targets=targets, records=records))

    def _queue(self, request: _Request) -> None:
        refusal = self.refusal() if self.refusal is not None else None
        if self._closed or refusal is not None:
            error = refusal if refusal is not None else RuntimeError("the log is closed")
            self._on_commit([(request.token, error)], [])
        else:
            self._requests.put(request)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._requests.put(None)
        self._writer.join()
        self._writer_db.close()

    def _write_loop(self) -> None:
        while True:
            first = self._requests.get()
            if first is None:
                return
            group = [first]
            stop = False
            if first.kind == "emit" and self._path is not None:
                # A projection's output alone is a transaction of its own; under load a
                # client's append comes within moments and carries it in its group.
                try:
                    more = self._requests.get(timeout=EMIT_WAIT)
                except queue.Empty:
                    pass
                else:
                    if more is None:
                        stop = True
                    else:
                        group.append(more)
            while not stop and len(group) < MAX_GROUP:
                try:
                    more = self._requests.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            self._commit_group(group)
            if stop:
                return

    def _commit_group(self, group: list[_Request]) -> None:
        rows: list[Recorded] = []
        outcomes: list[tuple[Any, Outcome]] = []
        saved_position = self._next_position
        # A group of projections' output alone is not fsynced: it and the checkpoints it
        # goes with are lost or kept together (WAL order), and the next client commit's
        # fsync makes them durable; a projection redoes what a power cut took.
        light = self._path is not None and all(request.kind == "emit" for request in group)
        with self._memory_lock:
            db = self._writer_db
            if light:
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                for request in group:
                    try:
                        outcomes.append((request.token, self._apply(request, rows)))
                    except StoreError as error:
                        outcomes.append((request.token, error))
                if rows:
                    self._insert(rows)
                db.execute("COMMIT")
            except BaseException as error:  # disk full, I/O error: nobody is told "done"
                db.execute("ROLLBACK")
                if light:
                    db.execute("PRAGMA synchronous=FULL")
                self._streams.clear()
                self._recent_ids.clear()
                self._warm_idempotency_cache()
                self._next_position = saved_position
                self._on_commit([(request.token, error) for request in group], [])
                return
            if light:
                db.execute("PRAGMA synchronous=FULL")
        self._on_commit(outcomes, rows)

    def _apply(self, request: _Request, rows: list[Recorded]) -> WriteResult | MultiWriteResult:
        if request.kind == "emit":
            return self._emit(request, rows)
        if request.kind == "multi":
            return self._multi(request, rows)
        if request.kind == "replicated":
            return self._replicate(request, rows)
        stream = self._stream(request.stream)
        if stream.last_revision == DELETED_STREAM:
            raise StreamDeleted(request.stream)
        if request.kind == "append":
            return self._append(stream, request.expected, request.events, rows)
        if request.kind == "delete":
            return self._soft_delete(stream, request.expected, rows)
        return self._tombstone(stream, request.expected, rows)

    def _check_expected(
        self, stream: _Stream, expected: int, events: Sequence[Proposed]
    ) -> int | None:
        """The server's commit check: None means write; an int is an idempotent replay.

        The int is the revision of the replay's last event, already in the stream. Raises
        WrongExpectedVersion or StreamDeleted where ``IndexWriter.CheckCommit`` would.
        """
        current = stream.last_revision
        soft_deleted = current >= 0 and self._metadata(stream.name).soft_deleted
        if expected == STREAM_EXISTS:
            if soft_deleted:
                raise StreamDeleted(stream.name)
            if current < 0:
                raise WrongExpectedVersion(stream.name, expected, current)
        if expected in (ANY, STREAM_EXISTS):
            return self._replayed(stream, expected, events)
        if expected < current:
            return self._replayed_at(stream, expected, events, soft_deleted)
        if expected > current:
            raise WrongExpectedVersion(stream.name, expected, current)
        return None

    def _replayed(self, stream: _Stream, expected: int, events: Sequence[Proposed]) -> int | None:
        """With ANY/STREAM_EXISTS: the first id decides; a partial replay is refused.

        Like the server, this consults a bounded cache of recent event ids: an append
        older than the cache is written again.
        """
        last: int | None = None
        for index, event in enumerate(events):
            seen = self._recent_ids.get(event.event_id)
            if seen is None or seen[0] != stream.id:
                if index == 0:
                    return None
                raise WrongExpectedVersion(stream.name, expected, stream.last_revision)
            last = seen[1]
        return last

    def _replayed_at(
        self, stream: _Stream, expected: int, events: Sequence[Proposed], soft_deleted: bool
    ) -> int | None:
        """After ``expected`` the stream must already hold exactly these ids, in order.

        The one exception: NO_STREAM recreates a soft-deleted stream (returns None).
        """
        revision = expected
        for event in events:
            revision += 1
            row = self._writer_db.execute(
                "SELECT event_id FROM events WHERE stream_id = ? AND revision = ?",
                (stream.id, revision),
            ).fetchone()
            if row is not None and row[0] == event.event_id:
                continue
            if revision == expected + 1 and expected == NO_STREAM and soft_deleted:
                return None
            raise WrongExpectedVersion(stream.name, expected, stream.last_revision)
        if revision == expected:  # no events: nothing to replay, and nothing to write
            raise WrongExpectedVersion(stream.name, expected, stream.last_revision)
        return revision

    def _append(
        self, stream: _Stream, expected: int, events: Sequence[Proposed], rows: list[Recorded]
    ) -> WriteResult:
        replayed = self._check_expected(stream, expected, events)
        if replayed is not None:
            return WriteResult(replayed, self._position_of(stream, replayed))
        if not events:
            # The server still writes an (invisible) empty record and reports its position.
            position = self._next_position
            self._next_position += EMPTY_RECORD_SIZE
            return WriteResult(stream.last_revision, position)
        soft_deleted = stream.last_revision >= 0 and self._metadata(stream.name).soft_deleted
        recreated_from = stream.last_revision + 1
        position = 0
        for event in events:
            position = self._add_row(stream, event, rows)
        if soft_deleted:
            # SoftUndeleteStream: after the new events, $tb moves to the first of them.
            metadata = self._raw_metadata(stream.name)
            metadata["$tb"] = recreated_from
            self._add_row(self._stream(metastream_of(stream.name)), _metadata_event(metadata), rows)
        return WriteResult(stream.last_revision, position)

    def _multi(self, request: _Request, rows: list[Recorded]) -> MultiWriteResult:
        """Check every target first (nothing is changed by a check), then write them all."""
        streams = [self._stream(name) for name, _ in request.targets]
        written = {index for index, _ in request.records}
        failures: list[StreamStateFailure] = []
        undelete: dict[int, int] = {}  # soft-deleted targets: their first new revision
        for index, ((name, expected), stream) in enumerate(
            zip(request.targets, streams, strict=True)
        ):
            current = stream.last_revision
            soft = 0 <= current != DELETED_STREAM and self._metadata(name).soft_deleted
            if not _state_holds(expected, current, soft, index in written):
                failures.append(StreamStateFailure(index, name, expected, current, soft))
            elif soft and index in written:
                undelete[index] = current + 1
        if failures:
            raise ConsistencyFailed(failures)
        position: int | None = None
        for index, event in request.records:
            position = self._add_row(streams[index], event, rows)
        for index, first in undelete.items():
            metadata = self._raw_metadata(streams[index].name)
            metadata["$tb"] = first
            meta = self._stream(metastream_of(streams[index].name))
            self._add_row(meta, _metadata_event(metadata), rows)
        if position is None:  # nothing written: a position just past the end, as for appends
            position = self._next_position
            self._next_position += EMPTY_RECORD_SIZE
        return MultiWriteResult(tuple(stream.last_revision for stream in streams), position)

    def _emit(self, request: _Request, rows: list[Recorded]) -> WriteResult:
        position: int | None = None
        created = now_ticks()  # one clock reading for the request's events
        append = rows.append
        # The streams this request writes (links alternate between a few), each with the
        # part of a record's size its name contributes.
        known: dict[str, tuple[_Stream, int]] = {}
        for item in request.emitted:
            name = item.stream
            seen = known.get(name)
            if seen is None:
                stream = self._stream(name)
                fixed = 88 + (len(name) if name.isascii() else len(name.encode()))
                known[name] = stream, fixed
            else:
                stream, fixed = seen
            last = stream.last_revision
            if last == DELETED_STREAM:
                continue
            if last >= 0 and not item.truncate:
                # The common case (a link to a stream that has events): ``_add_row``
                # inlined, without the idempotency cache (projections' output is never
                # re-sent), the record's size as ``record_size`` counts it.
                event = item.event
                event_type = event.type
                position = self._next_position
                self._next_position = (
                    position
                    + fixed
                    + (len(event_type) if event_type.isascii() else len(event_type.encode()))
                    + len(event.content_type)
                    + len(event.data)
                    + len(event.metadata)
                )
                last += 1
                stream.last_revision = last
                append(
                    _new_recorded(
                        Recorded,
                        (
                            position,
                            name,
                            last,
                            event.event_id,
                            event_type,
                            event.content_type,
                            created,
                            event.data,
                            event.metadata,
                        ),
                    )
                )
                continue
            if item.new_stream_metadata is not None and stream.last_revision < 0:
                meta = self._stream(metastream_of(item.stream))
                if meta.last_revision < 0:
                    self._add_row(meta, _metadata_event_raw(item.new_stream_metadata), rows)
            elif item.truncate and stream.last_revision >= 0:
                metadata = self._raw_metadata(item.stream)
                metadata["$tb"] = stream.last_revision + 1
                self._add_row(
                    self._stream(metastream_of(item.stream)), _metadata_event(metadata), rows
                )
            position = self._add_row(stream, item.event, rows, remember=False)
        for name, at in (request.checkpoints or {}).items():
            if at < 0:
                self._writer_db.execute(
                    "DELETE FROM projection_checkpoints WHERE name = ?", (name,)
                )
            else:
                self._writer_db.execute(
                    "INSERT INTO projection_checkpoints VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                    (name, at),
                )
        return WriteResult(-1, position)

    def _replicate(self, request: _Request, rows: list[Recorded]) -> WriteResult:
        """Another node's records, written as they are, the writer's view kept up to date
        (streams, the next position, recent ids) so that this node can lead next."""
        position: int | None = None
        for record in request.replicated:
            stream = self._stream(record.stream)
            if stream.id is None:
                cursor = self._writer_db.execute(
                    "INSERT INTO streams (name, last_revision) VALUES (?, -1)", (record.stream,)
                )
                stream.id = cursor.lastrowid
            assert stream.id is not None
            stream.last_revision = record.revision
            rows.append(record)
            if record.type != "$>":  # as the leader, which never caches projections' links
                self._remember_id(record.event_id, stream.id, record.revision, record.position)
            position = record.position
            self._next_position = position + record_size(record.stream, record)
        if request.checkpoints is not None:
            self._writer_db.execute("DELETE FROM projection_checkpoints")
            self._writer_db.executemany(
                "INSERT INTO projection_checkpoints VALUES (?, ?)", request.checkpoints.items()
            )
        return WriteResult(-1, position)

    def _soft_delete(self, stream: _Stream, expected: int, rows: list[Recorded]) -> WriteResult:
        """A soft delete replaces the metadata with ``{"$tb": DeletedStream}``."""
        self._check_delete(stream, expected, hard=False)
        meta = self._stream(metastream_of(stream.name))
        position = self._add_row(meta, _metadata_event({"$tb": DELETED_STREAM}), rows)
        return WriteResult(stream.last_revision, position)

    def _tombstone(self, stream: _Stream, expected: int, rows: list[Recorded]) -> WriteResult:
        """A tombstone is a ``$streamDeleted`` event at revision DeletedStream: final."""
        self._check_delete(stream, expected, hard=True)
        event = Proposed(str(uuid4()), "$streamDeleted", "application/octet-stream", b"", b"")
        position = self._add_row(stream, event, rows, revision=DELETED_STREAM)
        return WriteResult(DELETED_STREAM, position)

    def _check_delete(self, stream: _Stream, expected: int, hard: bool) -> None:
        """Deletes check the version like appends, without replays.

        A soft delete of a stream that never had events is refused whatever the expected
        version (the real server answers "Actual version: -1"), except NO_STREAM when the
        stream has metadata (a real server then writes the $tb); a tombstone with ANY or
        NO_STREAM seals a stream that never existed.
        """
        current = stream.last_revision
        if current < 0 and not hard:
            if (
                expected == NO_STREAM
                and self._stream(metastream_of(stream.name)).last_revision >= 0
            ):
                return
            raise WrongExpectedVersion(stream.name, expected, current)
        if expected == STREAM_EXISTS:
            if current >= 0 and self._metadata(stream.name).soft_deleted:
                raise StreamDeleted(stream.name)
            if current < 0:
                raise WrongExpectedVersion(stream.name, expected, current)
            return
        if expected != ANY and expected != current:
            raise WrongExpectedVersion(stream.name, expected, current)

    def _add_row(
        self,
        stream: _Stream,
        event: Proposed,
        rows: list[Recorded],
        revision: int | None = None,
        remember: bool = True,
    ) -> int:
        if stream.id is None:
            cursor = self._writer_db.execute(
                "INSERT INTO streams (name, last_revision) VALUES (?, -1)", (stream.name,)
            )
            stream.id = cursor.lastrowid
        if revision is None:
            revision = stream.last_revision + 1
        position = self._next_position
        self._next_position += record_size(stream.name, event)
        rows.append(
            Recorded(
                position,
                stream.name,
                revision,
                event.event_id,
                event.type,
                event.content_type,
                now_ticks(),
                event.data,
                event.metadata,
            )
        )
        stream.last_revision = revision
        assert stream.id is not None
        if remember:  # projections' output is never re-sent: keep the cache for clients'
            self._remember_id(event.event_id, stream.id, revision, position)
        return position

    def _insert(self, rows: list[Recorded]) -> None:
        db = self._writer_db
        ids = {row.stream: self._streams[row.stream].id for row in rows}
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [  # unpacked: a NamedTuple's attributes cost more to read one by one
                (at, ids[stream], revision, event_id, type_, content, created, data, meta)
                for at, stream, revision, event_id, type_, content, created, data, meta in rows
            ],
        )
        last: dict[str, int] = {}
        for row in rows:
            last[row.stream] = row.revision
        db.executemany(
            "UPDATE streams SET last_revision = ? WHERE id = ?",
            [(revision, ids[name]) for name, revision in last.items()],
        )

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is not None:
            self._streams.move_to_end(name)
            return stream
        row = self._writer_db.execute(
            "SELECT id, last_revision FROM streams WHERE name = ?", (name,)
        ).fetchone()
        stream = _Stream(name, row[0], row[1]) if row else _Stream(name, None, -1)
        self._streams[name] = stream
        if len(self._streams) > 50_000:
            self._streams.popitem(last=False)
        return stream

    def _raw_metadata(self, name: str) -> dict[str, Any]:
        meta = self._stream(metastream_of(name))
        if meta.id is None or meta.last_revision < 0:
            return {}
        row = self._writer_db.execute(
            "SELECT data FROM events WHERE stream_id = ? AND revision = ?",
            (meta.id, meta.last_revision),
        ).fetchone()
        try:
            raw = json.loads(row[0]) if row else {}
        except ValueError:
            return {}
        return raw if isinstance(raw, dict) else {}

    def _metadata(self, name: str) -> StreamMetadata:
        if is_metastream(name):
            return StreamMetadata(max_count=METASTREAM_MAX_COUNT)
        return StreamMetadata.from_dict(self._raw_metadata(name))

    def _remember_id(self, event_id: str, stream_id: int, revision: int, position: int) -> None:
        self._recent_ids[event_id] = (stream_id, revision, position)
        if len(self._recent_ids) > IDEMPOTENCY_CACHE_SIZE:
            self._recent_ids.popitem(last=False)

    def _position_of(self, stream: _Stream, revision: int) -> int | None:
        row = self._writer_db.execute(
            "SELECT position FROM events WHERE stream_id = ? AND revision = ?",
            (stream.id, revision),
        ).fetchone()
        return row[0] if row else None

    def _warm_idempotency_cache(self) -> None:
        rows = self._writer_db.execute(
            "SELECT event_id, stream_id, revision, position FROM events"
            " ORDER BY position DESC LIMIT ?",
            (IDEMPOTENCY_CACHE_SIZE,),
        ).fetchall()
        for event_id, stream_id, revision, position in reversed(rows):
            self._recent_ids[event_id] = (stream_id, revision, position)

    def _load_next_position(self) -> int:
        row = self._writer_db.execute(_SELECT + " ORDER BY e.position DESC LIMIT 1").fetchone()
        if row is None:
            return LOG_START
        last = Recorded(*row)
        return last.position + record_size(last.stream, last)

    def _write_initial_events(self) -> None:
        """A fresh database starts with system events, as a real server's $all does."""
        rows: list[Recorded] = []
        self._writer_db.execute("BEGIN IMMEDIATE")
        for stream_name, metadata in INITIAL_METADATA:
            self._add_row(self._stream(stream_name), _metadata_event(metadata), rows)
        self._insert(rows)
        self._writer_db.execute("COMMIT")

    # ---------------------------------------------------------------- reading

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if self._path is None:
            with self._memory_lock:
                yield self._writer_db
            return
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)
            self._local.db = db
        yield db

    def head_position(self) -> int:
        """The position after which the next event will be written."""
        with self._reader() as db:
            row = db.execute("SELECT MAX(position) FROM events").fetchone()
        return row[0] if row and row[0] is not None else -1

    def is_record_position(self, position: int) -> bool:
        """A position a read of $all may start from: the log's start, an event's own
        position, or past the last event (the real log refuses any other as invalid)."""
        if position <= 0:
            return True
        with self._reader() as db:
            row = db.execute(
                "SELECT position = ? FROM events WHERE position >= ? ORDER BY position LIMIT 1",
                (position, position),
            ).fetchone()
        return row is None or bool(row[0])

    def read_all(self, position: int, backwards: bool, count: int) -> list[Recorded]:
        """Forwards: events at or after ``position``; backwards: events before it."""
        if backwards:
            sql = _SELECT + " WHERE e.position < ? ORDER BY e.position DESC LIMIT ?"
        else:
            sql = _SELECT + " WHERE e.position >= ? ORDER BY e.position LIMIT ?"
        with self._reader() as db:
            return list(map(Recorded._make, db.execute(sql, (position, count))))

    def read_stream(
        self, name: str, revision: int | None, backwards: bool, count: int
    ) -> list[Recorded]:
        """Events of one stream as the server shows them: truncated by $tb/$maxCount/$maxAge.

        ``revision`` None means from the start (forwards) or from the end (backwards).
        Raises StreamNotFound (also for soft-deleted streams) and StreamDeleted.
        """
        with self._reader() as db:
            row = db.execute(
                "SELECT id, last_revision FROM streams WHERE name = ?", (name,)
            ).fetchone()
            if row is None or row[1] < 0:
                if self._base_tombstoned(db, name):
                    raise StreamDeleted(name)
                raise StreamNotFound(name)
            stream_id, last = row
            if last == DELETED_STREAM or self._base_tombstoned(db, name):
                raise StreamDeleted(name)
            metadata = self._reader_metadata(db, name)
            if metadata.soft_deleted:
                raise StreamNotFound(name)
            first = 0
            if metadata.truncate_before is not None:
                first = max(first, metadata.truncate_before)
            if metadata.max_count is not None:
                first = max(first, last - metadata.max_count + 1)
            created_after = 0
            if metadata.max_age is not None:
                created_after = now_ticks() - metadata.max_age * 10_000_000
            if backwards:
                start = last if revision is None else min(revision, last)
                sql = (
                    _SELECT + " WHERE e.stream_id = ? AND e.revision <= ? AND e.revision >= ?"
                    " AND e.created >= ? ORDER BY e.revision DESC LIMIT ?"
                )
                params: tuple[int, ...] = (stream_id, start, first, created_after, count)
            else:
                start = max(first, revision or 0)
                sql = (
                    _SELECT + " WHERE e.stream_id = ? AND e.revision >= ? AND e.revision <= ?"
                    " AND e.created >= ? ORDER BY e.revision LIMIT ?"
                )
                params = (stream_id, start, last, created_after, count)
            return list(map(Recorded._make, db.execute(sql, params)))

    def read_event(self, name: str, revision: int) -> Recorded | None:
        """One event by stream and revision, ignoring metadata (for resolving links)."""
        with self._reader() as db:
            row = db.execute(
                _SELECT + " WHERE s.name = ? AND e.revision = ?", (name, revision)
            ).fetchone()
        return Recorded._make(row) if row else None

    def last_revision(self, name: str) -> int:
        """The stream's last revision as written (-1: none), ignoring metadata."""
        with self._reader() as db:
            row = db.execute("SELECT last_revision FROM streams WHERE name = ?", (name,)).fetchone()
        return row[0] if row else -1

    def stream_names(
        self, prefix: str, limit: int, newest_first: bool = False
    ) -> list[tuple[str, int]]:
        """Streams whose name starts with ``prefix``, with their last revision.

        By name, or ``newest_first``: the most recently created first.
        """
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._reader() as db:
            rows = db.execute(
                "SELECT name, last_revision FROM streams WHERE name LIKE ? ESCAPE '\\'"
                " AND last_revision >= 0 ORDER BY "
                + ("id DESC" if newest_first else "name")
                + " LIMIT ?",
                (pattern, limit),
            ).fetchall()
        return [(name, last) for name, last in rows]

    def event_types(self, limit: int) -> list[tuple[str, int]]:
        """Event types in the log with how many events have each, most used first."""
        with self._reader() as db:
            rows = db.execute(
                "SELECT type, COUNT(*) FROM events GROUP BY type ORDER BY COUNT(*) DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [(name, number) for name, number in rows]

    @staticmethod
    def _base_tombstoned(db: sqlite3.Connection, name: str) -> bool:
        """``$$x`` reads as deleted once ``x`` is tombstoned (writing it still works)."""
        if not is_metastream(name):
            return False
        row = db.execute("SELECT last_revision FROM streams WHERE name = ?", (name[2:],)).fetchone()
        return row is not None and row[0] == DELETED_STREAM

    def _reader_metadata(self, db: sqlite3.Connection, name: str) -> StreamMetadata:
        if is_metastream(name):
            return StreamMetadata(max_count=METASTREAM_MAX_COUNT)
        row = db.execute(
            "SELECT e.data FROM events e JOIN streams s ON s.id = e.stream_id"
            " WHERE s.name = ? ORDER BY e.revision DESC LIMIT 1",
            (metastream_of(name),),
        ).fetchone()
        return StreamMetadata.parse(row[0]) if row else StreamMetadata()


# tuple.__new__ with every field given: cheaper than a NamedTuple's own __new__.
_new_recorded = tuple.__new__


# KurrentDB's expectation-only states (StreamCondition.cs), beside ANY, NO_STREAM, STREAM_EXISTS.
EXPECT_DELETED = -5
EXPECT_TOMBSTONED = -6


def _state_holds(expected: int, current: int, soft_deleted: bool, written: bool) -> bool:
    """KurrentDB's consistency-check matrix (``ApiErrors.AppendConsistencyViolation``).

    A tombstoned stream can never be written; as a check only, ANY and NO_STREAM accept
    it (it does not exist). A soft-deleted stream can be written with ANY, NO_STREAM or
    its last revision (appending restores it), as a v1 append can.
    """
    if current == DELETED_STREAM:
        return expected == EXPECT_TOMBSTONED or (not written and expected in (ANY, NO_STREAM))
    if soft_deleted:
        return expected in (ANY, NO_STREAM, EXPECT_DELETED, current)
    if current < 0:
        return expected in (ANY, NO_STREAM)
    return expected in (ANY, STREAM_EXISTS, EXPECT_TOMBSTONED, current)


def _metadata_event(metadata: dict[str, Any]) -> Proposed:
    return _metadata_event_raw(json.dumps(metadata, separators=(",", ":")).encode())


def _metadata_event_raw(data: bytes) -> Proposed:
    return Proposed(str(uuid4()), "$metadata", "application/json", data, b"")


# What a fresh EventStoreDB writes before any client does: the metadata of its own system
# streams, so that $all opens with system ($-typed) events.
INITIAL_METADATA: tuple[tuple[str, dict[str, Any]], ...] = (
    ("$$$scavenges", {"$maxAge": 2_592_000}),
)
