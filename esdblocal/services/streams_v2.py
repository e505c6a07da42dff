"""KurrentDB's v2 Streams service (``kurrentdb.protocol.v2.streams.StreamsService``), as the
server's ``KurrentDB.Api.V2/Modules/Streams/StreamsService.cs``: ``AppendSession`` (several
streams, each with its expected revision) and ``AppendRecords`` (26.1: records interleaved
across streams, with consistency checks on any stream), both atomic: one stream not as
expected, and nothing is written.

Records become events as the server maps them: the schema name is the type, JSON format is
``application/json`` and anything else binary, and the properties are the event's metadata
as v1 reads show them (``EventRecord.SynthesizeMetadataFromProperties``: the properties as
JSON with ``$schema.name`` and ``$schema.format``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from esdblocal.protos.kurrentdb.protocol.v2.streams import (
    shared_pb2,
    streams_pb2,
    streams_pb2_grpc,
)
from esdblocal.security import deny
from esdblocal.services import rich_status
from esdblocal.services.rich_status import STREAMS_ERRORS, VIOLATION
from esdblocal.services.shared import CommitTimeout, NodeParts
from esdblocal.store import (
    ANY,
    DELETED_STREAM,
    NO_STREAM,
    ConsistencyFailed,
    MultiWriteResult,
    Proposed,
    StreamStateFailure,
)

JSON = "application/json"
BINARY = "application/octet-stream"
SCHEMA_FORMAT_NAMES = {
    shared_pb2.SCHEMA_FORMAT_UNSPECIFIED: "Unspecified",
    shared_pb2.SCHEMA_FORMAT_JSON: "Json",
    shared_pb2.SCHEMA_FORMAT_PROTOBUF: "Protobuf",
    shared_pb2.SCHEMA_FORMAT_AVRO: "Avro",
    shared_pb2.SCHEMA_FORMAT_BYTES: "Bytes",
}
# ActualStreamCondition: how a violation names a stream that is not there.
ACTUAL_DELETED = -5
ACTUAL_TOMBSTONED = -6
STREAMS_DOMAIN = "streams"
SERVER_DOMAIN = "server"


class StreamsV2(streams_pb2_grpc.StreamsServiceServicer):
    def __init__(self, parts: NodeParts) -> None:
        self._parts = parts

    async def AppendSession(
        self,
        request_iterator: AsyncIterator[streams_pb2.AppendRequest],
        context: grpc.aio.ServicerContext,
    ) -> streams_pb2.AppendSessionResponse:
        targets: list[tuple[str, int]] = []
        records: list[tuple[int, Proposed]] = []
        seen: set[str] = set()
        size = 0
        async for request in request_iterator:
            if not self._parts.allowed(context, request.stream):
                await deny(context)
            if request.stream.lower() in seen:  # OrdinalIgnoreCase, as the server compares
                await rich_status.abort(
                    context,
                    grpc.StatusCode.ABORTED,
                    f"Stream '{request.stream}' already has a different group of messages in"
                    " this session. Appends for the same stream must currently be grouped"
                    " together and not interleaved with appends for other streams.",
                    "STREAM_ALREADY_IN_APPEND_SESSION",
                    STREAMS_DOMAIN,
                    rich_status.message(
                        STREAMS_ERRORS + "StreamAlreadyInAppendSessionErrorDetails",
                        stream=request.stream,
                    ),
                )
            seen.add(request.stream.lower())
            expected = request.expected_revision if request.HasField("expected_revision") else ANY
            targets.append((request.stream, expected))
            for record in request.records:
                event = _event(record)
                size += _size(record)
                if size > self._parts.max_append_size:
                    await _too_big(context, len(records) + 1, size, self._parts.max_append_size)
                records.append((len(targets) - 1, event))
        if not targets:
            await rich_status.abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                "Append session started, but no append requests were sent before ending the"
                " session.",
                "APPEND_SESSION_NO_REQUESTS",
                STREAMS_DOMAIN,
            )
        try:
            result = await self._write(targets, records)
        except ConsistencyFailed as error:
            await _session_refused(context, error.failures[0])
        except CommitTimeout:
            await _timed_out(context, "AppendSession")
        return streams_pb2.AppendSessionResponse(
            output=[
                streams_pb2.AppendResponse(stream=name, stream_revision=revision)
                for (name, _), revision in zip(targets, result.revisions, strict=True)
            ],
            position=result.position,
        )

    async def AppendRecords(
        self, request: streams_pb2.AppendRecordsRequest, context: grpc.aio.ServicerContext
    ) -> streams_pb2.AppendRecordsResponse:
        targets: list[tuple[str, int]] = []
        index: dict[str, int] = {}
        for check in request.checks:
            if check.WhichOneof("type") != "stream_state":
                continue
            state = check.stream_state
            index.setdefault(state.stream.lower(), len(targets))
            targets.append((state.stream, state.expected_state))
        records: list[tuple[int, Proposed]] = []
        size = 0
        for record in request.records:
            key = record.stream.lower()
            if key not in index:
                index[key] = len(targets)
                targets.append((record.stream, ANY))
            size += _size(record)
            if size > self._parts.max_append_size:
                await _too_big(context, len(records) + 1, size, self._parts.max_append_size)
            records.append((index[key], _event(record)))
        for name, _ in targets:
            if not self._parts.allowed(context, name):
                await deny(context)
        try:
            result = await self._write(targets, records)
        except ConsistencyFailed as error:
            await _violations(context, error.failures)
        except CommitTimeout:
            await _timed_out(context, "AppendRecords")
        written = dict.fromkeys(i for i, _ in records)
        return streams_pb2.AppendRecordsResponse(
            revisions=[
                shared_pb2.StreamRevision(stream=targets[i][0], revision=result.revisions[i])
                for i in written
            ],
            position=result.position,
        )

    async def _write(
        self, targets: Sequence[tuple[str, int]], records: Sequence[tuple[int, Proposed]]
    ) -> MultiWriteResult:
        store = self._parts.store
        return await self._parts.committed(  # type: ignore[no-any-return]
            lambda outcome: store.submit_multi(targets, records, outcome)
        )


def _event(record: Any) -> Proposed:
    """``PreProcessRecord`` and ``MapToEvent``: an id if none, the format in the
    properties, the properties as v1 metadata."""
    properties = dict(json_format.MessageToDict(record)["properties"]) if record.properties else {}
    schema = record.schema
    is_json = schema.format == shared_pb2.SCHEMA_FORMAT_JSON
    if not is_json:
        properties["$schema.format"] = SCHEMA_FORMAT_NAMES.get(schema.format, str(schema.format))
    if schema.HasField("id"):
        properties["$schema.id"] = schema.id
    properties["$schema.name"] = schema.name
    if is_json:
        properties["$schema.format"] = "Json"
    record_id = record.record_id if record.HasField("record_id") else str(uuid.uuid4())
    return Proposed(
        str(uuid.UUID(record_id)),
        schema.name,
        JSON if is_json else BINARY,
        record.data,
        _dotnet_json(properties),
    )


def _dotnet_json(properties: dict[str, Any]) -> bytes:
    """Google.Protobuf's ``JsonFormatter.Default`` layout: ``{ "a": "b", "c": 1 }``."""
    if not properties:
        return b"{ }"
    inner = json.dumps(properties, ensure_ascii=False)[1:-1]
    return ("{ " + inner + " }").encode()


def _size(record: Any) -> int:
    """``CalculateSizeOnDisk``: data, properties and the schema name's UTF-8 bytes."""
    properties = sum(len(k.encode()) + v.ByteSize() for k, v in record.properties.items())
    return int(len(record.data) + properties + len(record.schema.name.encode()))


def _actual(failure: StreamStateFailure) -> int:
    if failure.actual == DELETED_STREAM:
        return ACTUAL_TOMBSTONED
    if failure.soft_deleted:
        return ACTUAL_DELETED
    return failure.actual


async def _session_refused(context: grpc.aio.ServicerContext, failure: StreamStateFailure) -> None:
    """AppendSession's MapToError: the first failing stream, as a revision conflict (or
    tombstoned, as the server's StreamDeleted result maps)."""
    if failure.actual == DELETED_STREAM or (failure.soft_deleted and failure.expected == -4):
        await rich_status.abort(
            context,
            grpc.StatusCode.FAILED_PRECONDITION,
            f"Stream '{failure.stream}' has been tombstoned. It has been permanently removed"
            " from the system and cannot be restored.",
            "STREAM_TOMBSTONED",
            STREAMS_DOMAIN,
            rich_status.message(
                STREAMS_ERRORS + "StreamTombstonedErrorDetails", stream=failure.stream
            ),
        )
    await rich_status.abort(
        context,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Append failed due to a revision conflict on stream '{failure.stream}'. Expected"
        f" revision: {failure.expected}. Actual revision: {failure.actual}.",
        "STREAM_REVISION_CONFLICT",
        STREAMS_DOMAIN,
        rich_status.message(
            STREAMS_ERRORS + "StreamRevisionConflictErrorDetails",
            stream=failure.stream,
            expected_revision=failure.expected,
            actual_revision=failure.actual,
        ),
    )


async def _violations(
    context: grpc.aio.ServicerContext, failures: Sequence[StreamStateFailure]
) -> None:
    """AppendRecords' refusal: every failing check, with the server's message."""
    lines = "".join(f"\n - {_violation_text(f)}" for f in failures)
    await rich_status.abort(
        context,
        grpc.StatusCode.FAILED_PRECONDITION,
        "Append failed due to consistency violations.\n" + lines,
        "APPEND_CONSISTENCY_VIOLATION",
        STREAMS_DOMAIN,
        rich_status.message(
            STREAMS_ERRORS + "AppendConsistencyViolationErrorDetails",
            violations=[
                rich_status.message(
                    VIOLATION,
                    check_index=f.index,
                    stream_state=rich_status.message(
                        STREAMS_ERRORS + "StreamStateViolation",
                        stream=f.stream,
                        expected_state=f.expected,
                        actual_state=_actual(f),
                    ),
                )
                for f in failures
            ],
        ),
    )


def _violation_text(failure: StreamStateFailure) -> str:
    """``FormatViolation``, case by case."""
    stream, expected, actual = failure.stream, failure.expected, _actual(failure)
    states = {NO_STREAM: "does not exist", ACTUAL_DELETED: "is deleted"}
    states[ACTUAL_TOMBSTONED] = "is tombstoned"
    if expected >= 0:
        if actual >= 0:
            return f"Stream '{stream}' is at revision {actual}, expected revision {expected}."
        return f"Stream '{stream}' {states[actual]}, expected revision {expected}."
    if expected == NO_STREAM and actual >= 0:
        return f"Stream '{stream}' already exists at revision {actual}."
    if expected in (NO_STREAM, ANY, -4) and actual < 0:
        return f"Stream '{stream}' {states[actual]}."
    if expected == -5:
        if actual >= 0:
            return f"Stream '{stream}' is at revision {actual}, explicitly expected deleted."
        return f"Stream '{stream}' {states[actual]}, explicitly expected deleted."
    if expected == -6 and actual < 0:
        return f"Stream '{stream}' {states[actual]}, explicitly expected tombstoned."
    return f"Stream '{stream}': expected state {expected}, actual state {actual}."


async def _too_big(context: grpc.aio.ServicerContext, records: int, size: int, limit: int) -> None:
    await rich_status.abort(
        context,
        grpc.StatusCode.ABORTED,
        f"Transaction size ({size} bytes) exceeded the maximum allowed size of"
        f" {limit} bytes by {size - limit} bytes, after {records}"
        " record(s).",
        "APPEND_TRANSACTION_SIZE_EXCEEDED",
        STREAMS_DOMAIN,
        rich_status.message(
            STREAMS_ERRORS + "AppendTransactionSizeExceededErrorDetails",
            size=size,
            max_size=limit,
        ),
    )


async def _timed_out(context: grpc.aio.ServicerContext, call: str) -> None:
    await rich_status.abort(
        context,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"Operation timed out: {call} timed out while waiting for commit Please try again"
        " after 5 seconds.",
        "OPERATION_TIMEOUT",
        SERVER_DOMAIN,
        retry_after_seconds=5,
    )
