"""The five standard (system) projections, written as the real server writes them.

Each is a pure function of one event in ``$all`` to the events it emits, following
``EventStore.Projections.Core/Standard``: ``IndexStreams`` ($streams),
``CategorizeStreamByPath`` ($stream_by_category), ``CategorizeEventsByStreamPath``
($by_category), ``IndexEventsByEventType`` ($by_event_type) and ``ByCorrelationId``
($by_correlation_id). The link metadata is the projection's checkpoint tag (``$v``, ``$c``,
``$p``), the handler's extra metadata (``$o``, ``$deleted``, ``$eventTimestamp``), then
``$causedBy`` and ``$correlationId``, as ``EmittedStream`` writes it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import uuid4

import msgspec

from esdblocal.store import DELETED_STREAM, Emitted, Proposed, Recorded, StreamMetadata

LINK = "$>"
STREAM_REFERENCE = "$@"
JSON = "application/json"
BINARY = "application/octet-stream"
# ProjectionsSubsystem.VERSION: the last part of every "$v".
SUBSYSTEM_VERSION = 4
# What EmittedStream writes to a new "$…" stream's metadata before its first event:
# StreamAcl(read: $all, metaRead: $all).
SYSTEM_STREAM_ACL = b'{"$acl":{"$r":"$all","$mr":"$all"}}'
USER_STREAM_ACL = b'{"$acl":{}}'

# Names in the order the server creates them; a projection's id is its place in
# $projections-$all, after $ProjectionsInitialized at 0.
STREAMS = "$streams"
STREAM_BY_CATEGORY = "$stream_by_category"
BY_CATEGORY = "$by_category"
BY_EVENT_TYPE = "$by_event_type"
BY_CORRELATION_ID = "$by_correlation_id"
NAMES = (STREAMS, STREAM_BY_CATEGORY, BY_CATEGORY, BY_EVENT_TYPE, BY_CORRELATION_ID)


def version_tag(projection_id: int) -> str:
    """``$v``: projection id, epoch, version, subsystem version."""
    return f"{projection_id}:-1:1:{SUBSYSTEM_VERSION}"


def category(stream: str) -> str | None:
    """StreamCategoryExtractorByFirstSeparator('-'): the part before the first '-'."""
    if stream.startswith("$"):
        return None
    index = stream.find("-")
    return stream[:index] if index > 0 else None


def passes_source(record: Recorded) -> bool:
    """TransactionFileEventFilter: user streams and the metastreams of user streams."""
    stream = record.stream
    if not stream.startswith("$"):
        return True
    return stream.startswith("$$") and not stream[2:].startswith("$")


def valid_content(record: Recorded) -> bool:
    """Content-type validation: an event flagged JSON must hold valid JSON."""
    return record.content_type != JSON or valid_json(record.data)


@lru_cache(maxsize=4096)
def valid_json(data: bytes) -> bool:
    """Cached: the five projections see the same event objects (bytes cache their hash)."""
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return True


def _json_object(data: bytes) -> dict[str, Any] | None:
    """``data`` parsed when it is a JSON object, else None (empty metadata is common)."""
    if not data or data[:1] not in (b"{", b" ", b"\n", b"\t", b"\r"):
        return None
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def deleted_stream(record: Recorded) -> str | None:
    """StreamDeletedHelper.IsStreamDeletedEvent: the stream a tombstone or a soft delete
    ($tb = DeletedStream in the metastream) deletes, else None."""
    if record.stream.startswith("$$"):
        if record.type == "$metadata" and StreamMetadata.parse(record.data).soft_deleted:
            return record.stream[2:]
        return None
    return record.stream if record.type == "$streamDeleted" else None


def correlation_id(record: Recorded) -> str | None:
    """ParseCheckpointTagCorrelationId: ``$correlationId`` of a JSON event's metadata."""
    if record.content_type != JSON or b"$correlationId" not in record.metadata:
        return None
    parsed = _json_object(record.metadata)
    value = parsed.get("$correlationId") if parsed is not None else None
    return value if isinstance(value, str) else None


def timestamp(ticks: int) -> str:
    """The event's created time as ``yyyy-MM-ddTHH:mm:ss.ffffffZ``."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ticks // 10)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def link_metadata(
    projection_id: int, record: Recorded, extra: list[tuple[str, str]] | None = None
) -> bytes:
    """The checkpoint tag of ``record`` with extra (raw JSON) values, $causedBy and
    $correlationId, serialized compactly as Json.NET writes it."""
    position = record.position
    text = f'{_TAG_START[projection_id]}{position},"$p":{position}'
    found = False
    for key, raw in extra or ():
        found = found or key == "$correlationId"
        text += f",{_string(key)}:{raw}"
    text += f',"$causedBy":{_string(record.event_id)}'
    cid = correlation_id(record)
    if not found and cid:
        text += f',"$correlationId":{_string(cid)}'
    return (text + "}").encode()


class _TagStart(dict[int, str]):
    """``{"$v":"<version tag>","$c":`` for each projection id, made once."""

    def __missing__(self, projection_id: int) -> str:
        start = self[projection_id] = f'{{"$v":{_string(version_tag(projection_id))},"$c":'
        return start


_TAG_START = _TagStart()


def tag_start(projection_id: int) -> str:
    """What a link's metadata starts with, up to the value of ``$c``."""
    return _TAG_START[projection_id]


def plain(record: Recorded) -> bool:
    """An event the handlers treat the simple way: in a user stream, not a link or a
    delete, no ``$correlationId`` in its metadata, and a stream name, type and id that
    JSON writes as they are. (Most events: the group builds their links directly.)"""
    return (
        record.stream[:1] != "$"
        and record.type != LINK
        and record.type != "$streamDeleted"
        and b"$correlationId" not in record.metadata
        and as_is(record.stream)
        and as_is(record.event_id)
        and as_is(record.type)
    )


def as_is(value: str) -> bool:
    """Json.NET writes this string between quotes, unescaped."""
    return value.isprintable() and '"' not in value and "\\" not in value


def _string(value: str) -> str:
    """A JSON string literal (Json.NET leaves non-ASCII as it is)."""
    if as_is(value):
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


class _Ids:
    """Event ids for emitted events: random version-4 UUIDs whose last 48 bits count up
    from a random start, several times cheaper than ``uuid4()`` for every link."""

    def __init__(self) -> None:
        self._prefix = ""
        self._next = 0
        self._end = 0

    def __call__(self) -> str:
        value = self._next
        if value == self._end:
            self._renew()
            value = self._next
        self._next = value + 1
        return f"{self._prefix}{value:012x}"

    def _renew(self) -> None:
        """A new random UUID: its text up to the last group, and a run of 2**20 values
        for the last group that does not wrap around (the counting part stays 48 bits)."""
        text = f"{uuid4().int:032x}"
        self._prefix = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-"
        self._next = int(text[20:], 16) % ((1 << 48) - (1 << 20))
        self._end = self._next + (1 << 20)


_ids = threading.local()  # one sequence per thread (each node's loop has its own)


def id_source() -> Callable[[], str]:
    """This thread's sequence of ids: call it for the next (``new_id`` without the look-up,
    for a caller that makes many)."""
    try:
        ids: _Ids = _ids.ids
    except AttributeError:
        ids = _ids.ids = _Ids()
    return ids


def new_id() -> str:
    return id_source()()


def _emit(
    stream: str, event_type: str, data: str, metadata: bytes, content_type: str = BINARY
) -> Emitted:
    proposed = Proposed(new_id(), event_type, content_type, data.encode(), metadata)
    acl = SYSTEM_STREAM_ACL if stream[:1] == "$" else USER_STREAM_ACL
    return Emitted(stream, proposed, acl)


# ------------------------------------------------------------------ the handlers


def index_streams(record: Recorded) -> list[Emitted]:
    """$streams: a link to the first event of every stream (links included)."""
    if record.revision != 0:
        return []
    meta = link_metadata(1, record)
    return [_emit("$streams", LINK, f"0@{record.stream}", meta)]


def stream_by_category(record: Recorded) -> list[Emitted]:
    """$stream_by_category: a ``$@`` event naming each new stream in $category-<c>."""
    if record.revision != 0:
        return []
    name = category(record.stream)
    if name is None:
        return []
    meta = link_metadata(2, record)
    return [_emit(f"$category-{name}", STREAM_REFERENCE, record.stream, meta)]


def by_category(record: Recorded) -> list[Emitted]:
    """$by_category: every event (and link) of stream <c>-… linked into $ce-<c>."""
    deleted = deleted_stream(record)
    original = deleted or record.stream
    name = category(original)
    if name is None:
        return []
    if record.type == LINK:
        target = record.data.decode(errors="replace")
    else:
        target = f"{record.revision}@{record.stream}"
    extra = [("$o", _string(original))]
    if deleted is not None:
        extra.append(("$deleted", "-1"))
    return [_emit(f"$ce-{name}", LINK, target, link_metadata(3, record, extra))]


def by_event_type(record: Recorded) -> list[Emitted]:
    """$by_event_type: every event (not links) linked into $et-<type>; deletes to
    $et-$deleted."""
    if record.type == LINK:
        return []
    deleted = deleted_stream(record)
    event_type = "$deleted" if deleted is not None else record.type
    target = f"{record.revision}@{deleted or record.stream}"
    extra = [("$deleted", "-1")] if deleted is not None else None
    return [_emit(f"$et-{event_type}", LINK, target, link_metadata(4, record, extra))]


def by_correlation_id(record: Recorded) -> list[Emitted]:
    """$by_correlation_id: events whose metadata has a ``$correlationId`` into $bc-<id>."""
    if record.type == LINK or b"$correlationId" not in record.metadata:
        return []
    metadata = _json_object(record.metadata)
    if metadata is None:
        return []
    value = metadata.get("$correlationId")
    if value is None or isinstance(value, dict | list):
        return []
    cid = value if isinstance(value, str) else json.dumps(value)
    extra = [("$eventTimestamp", _string(timestamp(record.created)))]
    target = f"{record.revision}@{record.stream}"
    return [_emit(f"$bc-{cid}", LINK, target, link_metadata(5, record, extra))]


@dataclass(frozen=True, slots=True)
class SystemProjection:
    name: str
    projection_id: int
    handle: Callable[[Recorded], list[Emitted]]
    include_links: bool

    def process(self, record: Recorded) -> list[Emitted]:
        """What the projection emits for ``record`` (nothing when its reader skips it)."""
        if not passes_source(record) or not valid_content(record):
            return []
        if record.type == LINK and not self.include_links:
            return []
        return self.handle(record)


SYSTEM_PROJECTIONS = (
    SystemProjection(STREAMS, 1, index_streams, True),
    SystemProjection(STREAM_BY_CATEGORY, 2, stream_by_category, True),
    SystemProjection(BY_CATEGORY, 3, by_category, True),
    SystemProjection(BY_EVENT_TYPE, 4, by_event_type, False),
    SystemProjection(BY_CORRELATION_ID, 5, by_correlation_id, False),
)

__all__ = ["DELETED_STREAM", "NAMES", "SYSTEM_PROJECTIONS", "SystemProjection"]
