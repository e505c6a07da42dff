"""The Streams gRPC service, as the server's ``Services/Transport/Grpc/Streams.*``: append,
batch append, delete, tombstone, and reads and catch-up subscriptions of a stream or $all.

The messages are EventStoreDB's own (the generated modules shipped with esdbclient are
built from the server's .proto files), so any EventStoreDB gRPC client can talk to this.
Handlers are asyncio coroutines: a subscription is a suspended coroutine, not a thread, so
hundreds of them cost little and never hold up an append.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import grpc
from esdbclient.protos.Grpc import (
    shared_pb2,
    status_pb2,
    streams_pb2,
    streams_pb2_grpc,
)
from google.protobuf import any_pb2

from esdblocal.security import ACCESS_DENIED, deny
from esdblocal.services.shared import (
    UINT64_MAX,
    CommitTimeout,
    NodeParts,
    recorded_event,
)
from esdblocal.store import (
    ANY,
    DELETED_STREAM,
    NO_STREAM,
    STREAM_EXISTS,
    Proposed,
    Recorded,
    StreamDeleted,
    StreamNotFound,
    WriteResult,
    WrongExpectedVersion,
)

_DeleteResponse = TypeVar("_DeleteResponse", streams_pb2.DeleteResp, streams_pb2.TombstoneResp)
ReadResp = streams_pb2.ReadResp
ReadEvent = streams_pb2.ReadResp.ReadEvent
Options = streams_pb2.ReadReq.Options

# The server's defaults (ClusterVNodeOptions): 1 MiB per append, reads in pages.
PAGE = 512
# AllSubscriptionFiltered: without a window the server scans this many events per read.
DEFAULT_SEARCH_WINDOW = 32
LINK_EVENT_TYPE = "$>"
INDEX_PREFIX = "$idx-"  # SystemStreams.IndexStreamPrefix
JSON = "application/json"
BINARY = "application/octet-stream"


class Streams(streams_pb2_grpc.StreamsServicer):  # type: ignore[misc]
    def __init__(self, parts: NodeParts) -> None:
        self._parts = parts
        self._store = parts.store
        self._allowed = parts.allowed

    async def _write(
        self, kind: str, stream: str, expected: int, events: Sequence[Proposed] = ()
    ) -> WriteResult:
        return await self._parts.committed(  # type: ignore[no-any-return]
            lambda outcome: self._store.submit(kind, stream, expected, events, outcome)
        )

    # ------------------------------------------------------------------ Append

    async def Append(
        self,
        request_iterator: AsyncIterator[streams_pb2.AppendReq],
        context: grpc.aio.ServicerContext,
    ) -> streams_pb2.AppendResp:
        requests = request_iterator.__aiter__()
        first = await anext(requests, None)
        if first is None or not first.HasField("options"):
            # The server's handler throws here; ASP.NET reports it generically.
            await context.abort(grpc.StatusCode.UNKNOWN, "Exception was thrown by handler.")
            raise AssertionError("abort raises")
        options = first.options
        stream = options.stream_identifier.stream_name.decode()
        if not self._allowed(context, stream):
            await deny(context)
        expected = _expected(options, "expected_stream_revision", "revision")
        events: list[Proposed] = []
        try:
            async for request in requests:
                events.append(_proposed(request.proposed_message))
        except BadProposal as error:
            await _abort(context, error.code, error.message, error.exception, error.trailers)
        limit = self._parts.max_append_size
        if _size(events) > limit:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Maximum Append Size of {limit} Exceeded.",
                "maximum-append-size-exceeded",
                {"maximum-append-size": str(limit)},
            )
        try:
            result = await self._write("append", stream, expected, events)
        except WrongExpectedVersion as error:
            return streams_pb2.AppendResp(wrong_expected_version=_append_wev(error))
        except StreamDeleted:
            await _abort_deleted(context, stream)
        except CommitTimeout:
            await _abort_timeout(context)
        success = streams_pb2.AppendResp.Success()
        _fill_success(success, result)
        return streams_pb2.AppendResp(success=success)

    # ------------------------------------------------------------- BatchAppend

    async def BatchAppend(
        self,
        request_iterator: AsyncIterator[streams_pb2.BatchAppendReq],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[streams_pb2.BatchAppendResp]:
        """Batches are written concurrently; each answers under its correlation id."""
        responses: asyncio.Queue[streams_pb2.BatchAppendResp | None] = asyncio.Queue()
        pending: set[asyncio.Task[None]] = set()

        async def answer(request: streams_pb2.BatchAppendReq, messages: list[Any]) -> None:
            stream = request.options.stream_identifier.stream_name.decode()
            if self._allowed(context, stream):
                await responses.put(await self._batch(request, messages))
            else:  # refused in-band, as each batch's other errors
                await responses.put(_batch_denied(request))

        async def read_requests() -> None:
            batches: dict[str, tuple[streams_pb2.BatchAppendReq, list[Any]]] = {}
            late: dict[str, bool] = {}
            async for request in request_iterator:
                key = request.correlation_id.SerializeToString()
                first, messages = batches.setdefault(key, (request, []))
                if key not in late:  # the server checks the deadline when options arrive
                    late[key] = _expired(request.options, time.time())
                messages.extend(request.proposed_messages)
                if request.is_final:
                    del batches[key]
                    if late.pop(key):
                        await responses.put(_batch_timeout(first))
                        continue
                    task = asyncio.ensure_future(answer(first, messages))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)
            await responses.put(None)

        reader = asyncio.ensure_future(read_requests())
        try:
            while (response := await responses.get()) is not None:
                yield response
            await reader
        finally:
            reader.cancel()

    async def _batch(
        self, request: streams_pb2.BatchAppendReq, messages: list[Any]
    ) -> streams_pb2.BatchAppendResp:
        """One atomic batch; errors travel in the response as google.rpc.Status."""
        options = request.options
        stream = options.stream_identifier.stream_name.decode()
        expected = _expected(options, "expected_stream_position", "stream_position")
        response = streams_pb2.BatchAppendResp(
            correlation_id=request.correlation_id, stream_identifier=options.stream_identifier
        )
        try:
            events = [_proposed(message) for message in messages]
        except BadProposal as error:
            detail: Any = shared_pb2.BadRequest(message=error.message)
            response.error.CopyFrom(_status(grpc.StatusCode.INVALID_ARGUMENT, "BadRequest", detail))
            return response
        if _size(events) > self._parts.max_append_size:
            detail = shared_pb2.MaximumAppendSizeExceeded(maxAppendSize=self._parts.max_append_size)
            response.error.CopyFrom(
                _status(grpc.StatusCode.INVALID_ARGUMENT, "MaximumAppendSizeExceeded", detail)
            )
            return response
        try:
            result = await self._write("append", stream, expected, events)
        except WrongExpectedVersion as error:
            response.error.CopyFrom(
                _status(grpc.StatusCode.ALREADY_EXISTS, "WrongExpectedVersion", _batch_wev(error))
            )
            return response
        except StreamDeleted:
            detail = shared_pb2.StreamDeleted(stream_identifier=options.stream_identifier)
            response.error.CopyFrom(_status(grpc.StatusCode.NOT_FOUND, "StreamDeleted", detail))
            return response
        except CommitTimeout:
            return _batch_timeout(request)
        _fill_success(response.success, result)
        return response

    # ---------------------------------------------------------- Delete/Tombstone

    async def Delete(
        self, request: streams_pb2.DeleteReq, context: grpc.aio.ServicerContext
    ) -> streams_pb2.DeleteResp:
        return await self._delete("delete", request.options, context, streams_pb2.DeleteResp)

    async def Tombstone(
        self, request: streams_pb2.TombstoneReq, context: grpc.aio.ServicerContext
    ) -> streams_pb2.TombstoneResp:
        return await self._delete("tombstone", request.options, context, streams_pb2.TombstoneResp)

    async def _delete(
        self,
        kind: str,
        options: Any,
        context: grpc.aio.ServicerContext,
        response: type[_DeleteResponse],
    ) -> _DeleteResponse:
        """Soft delete or tombstone; both answer the written record's position."""
        stream = options.stream_identifier.stream_name.decode()
        if not self._allowed(context, stream):
            await deny(context)
        expected = _expected(options, "expected_stream_revision", "revision")
        try:
            result = await self._write(kind, stream, expected, ())
        except WrongExpectedVersion as error:
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Delete failed due to WrongExpectedVersion. Stream: {stream},"
                f" Expected version: {error.expected}, Actual version: {error.current}",
                "wrong-expected-version",
                {
                    "stream-name": stream,
                    "expected-version": str(error.expected),
                    "actual-version": str(error.current),
                },
            )
        except StreamDeleted:
            await _abort_deleted(context, stream)
        except CommitTimeout:
            await _abort_timeout(context)
        assert result.position is not None
        position = response.Position(
            commit_position=result.position, prepare_position=result.position
        )
        return response(position=position)

    # -------------------------------------------------------------------- Read

    async def Read(
        self, request: streams_pb2.ReadReq, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        options = request.options
        target = "$all"
        if options.WhichOneof("stream_option") == "stream":
            target = options.stream.stream_identifier.stream_name.decode()
        if not self._allowed(context, target):
            await deny(context)
        try:
            reader = _Reader(self, options, context)
        except re.error as error:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid filter expression: {error}"
            )
        except BadIndexRead as error:
            context.set_trailing_metadata(tuple(error.trailers.items()))
            await context.abort(error.code, error.message)
        subscribe = options.WhichOneof("count_option") == "subscription"
        if options.WhichOneof("stream_option") == "stream":
            source = reader.subscribe_stream() if subscribe else reader.read_stream()
        else:
            source = reader.subscribe_all() if subscribe else reader.read_all()
        async for response in source:
            yield response


class _Reader:
    """One Read call: a read of a stream or of $all, or a catch-up subscription to either."""

    def __init__(self, service: Streams, options: Any, context: grpc.aio.ServicerContext) -> None:
        self._run = service._parts.run
        self._store = service._parts.store
        self._hub = service._parts.hub
        self._options = options
        self._context = context
        self._backwards = options.read_direction == Options.Backwards
        self._resolve_links = options.resolve_links
        self._structured_ids = options.uuid_option.WhichOneof("content") == "structured"
        self._count = options.count if options.WhichOneof("count_option") == "count" else 0
        self._filter = _Filter.from_options(options)

    # ---- encoding

    async def _event(self, record: Recorded) -> streams_pb2.ReadResp:
        """An event as the server sends it; a resolved link carries the link's position."""
        read_event = ReadEvent(commit_position=record.position)
        if self._resolve_links and record.type == LINK_EVENT_TYPE:
            target = await self._run(self._resolve, record)
            read_event.link.CopyFrom(self._recorded(record))
            if target is not None:  # a link to a deleted event is sent with no event
                read_event.event.CopyFrom(self._recorded(target))
        else:
            read_event.event.CopyFrom(self._recorded(record))
        return ReadResp(event=read_event)

    def _resolve(self, link: Recorded) -> Recorded | None:
        """The link's target as a read of its stream sees it: None when deleted, truncated
        ($tb, $maxCount, $maxAge) or never written (the link then comes alone)."""
        revision_text, _, stream = link.data.decode(errors="replace").partition("@")
        try:
            revision = int(revision_text)
            page = self._store.read_stream(stream, revision, False, 1)
        except (ValueError, StreamNotFound, StreamDeleted):
            return None
        return page[0] if page and page[0].revision == revision else None

    def _recorded(self, record: Recorded) -> Any:
        return recorded_event(record, self._structured_ids)

    def _deleted(self) -> Any:
        return _abort_deleted(self._context, self._stream_name())

    # ---- reads

    def _stream_name(self) -> str:
        return str(self._options.stream.stream_identifier.stream_name.decode())

    async def read_stream(self) -> AsyncIterator[streams_pb2.ReadResp]:
        """Inclusive of the starting revision in both directions, in pages."""
        name = self._stream_name()
        stream_options = self._options.stream
        which = stream_options.WhichOneof("revision_option")
        revision: int | None = None
        if which == "revision":
            revision = int(stream_options.revision)
        elif which == "end" and not self._backwards:
            revision = DELETED_STREAM  # forwards from the end: nothing yet
        remaining = self._count
        while remaining > 0:
            try:
                page = await self._run(
                    self._store.read_stream, name, revision, self._backwards, min(remaining, PAGE)
                )
            except StreamNotFound:
                yield ReadResp(
                    stream_not_found=ReadResp.StreamNotFound(
                        stream_identifier=stream_options.stream_identifier
                    )
                )
                return
            except StreamDeleted:
                await self._deleted()
            for record in page:
                yield await self._event(record)
            remaining -= len(page)
            if len(page) < PAGE:
                return
            last = page[-1].revision
            revision = last - 1 if self._backwards else last + 1
            if revision < 0:
                return

    async def read_all(self) -> AsyncIterator[streams_pb2.ReadResp]:
        """Forwards inclusive of the position, backwards exclusive; never checkpoints."""
        all_options = self._options.all
        which = all_options.WhichOneof("all_option")
        if which == "position":
            position = int(all_options.position.commit_position)
            if not await self._run(self._store.is_record_position, position):
                # 24.x's answer (newer servers: INVALID_ARGUMENT "Trying to read from an
                # invalid position."); esdbclient raises UnknownError.
                kind = "ReadAllResult" if self._filter is None else "FilteredReadAllResult"
                await self._context.abort(
                    grpc.StatusCode.UNKNOWN, f"Unexpected {kind}: InvalidPosition"
                )
        else:
            position = DELETED_STREAM if which == "end" else 0
        remaining = self._count
        while remaining > 0:
            page = await self._run(self._store.read_all, position, self._backwards, PAGE)
            for record in page:
                if self._filter is None or self._filter(record):
                    yield await self._event(record)
                    remaining -= 1
                    if remaining == 0:
                        return
            if len(page) < PAGE:
                return
            position = page[-1].position if self._backwards else page[-1].position + 1

    # ---- subscriptions

    def _confirmation(self) -> streams_pb2.ReadResp:
        return ReadResp(
            confirmation=ReadResp.SubscriptionConfirmation(subscription_id=str(uuid.uuid4()))
        )

    async def _committed_after(self, position: int) -> list[Recorded]:
        """The next events after ``position``: from the hub if it still has them."""
        if self._hub.covers(position):
            return self._hub.after(position, PAGE)
        return await self._run(self._store.read_all, position + 1, False, PAGE)  # type: ignore[no-any-return]

    async def subscribe_all(self) -> AsyncIterator[streams_pb2.ReadResp]:
        """Confirmation, history after the (exclusive) start, caught_up, then live events.

        A filtered subscription also reports how far it has looked: a checkpoint every
        window x multiplier events considered, and one at the end of the catch-up, never
        beyond the last event in the log.
        """
        all_options = self._options.all
        which = all_options.WhichOneof("all_option")
        if which == "end":
            last = self._hub.head
        elif which == "position":
            last = int(all_options.position.commit_position)
        else:
            last = -1
        yield self._confirmation()
        checkpoints = _Checkpoints(self._filter, start=last)
        caught_up = False
        while True:
            changed = self._hub.changed
            page = await self._committed_after(last)
            for record in page:
                last = record.position
                if self._filter is None or self._filter(record):
                    yield await self._event(record)
                if checkpoints.considered(last):
                    yield checkpoints.emit()
            if page:
                continue
            if not caught_up:
                caught_up = True
                if checkpoints.enabled:
                    checkpoints.at(max(last, 0))
                    if checkpoints.due():
                        yield checkpoints.emit()
                yield ReadResp(caught_up=ReadResp.CaughtUp())
            await changed.wait()

    async def subscribe_stream(self) -> AsyncIterator[streams_pb2.ReadResp]:
        """Confirmation, history after the (exclusive) revision, caught_up, then live.

        A missing or soft-deleted stream is simply caught up at once; a tombstoned one
        fails with the server's "is deleted" error, after the tombstone if seen live.
        """
        name = self._stream_name()
        stream_options = self._options.stream
        which = stream_options.WhichOneof("revision_option")
        live_from = self._hub.head  # taken first: nothing committed later can be missed
        yield self._confirmation()
        revision = int(stream_options.revision) if which == "revision" else -1
        while True:
            try:
                page = await self._run(
                    self._store.read_stream,
                    name,
                    None if which == "end" else revision + 1,
                    which == "end",
                    1 if which == "end" else PAGE,
                )
            except StreamNotFound:
                break
            except StreamDeleted:
                await self._deleted()
            if which == "end":
                revision = page[0].revision if page else -1
                break
            for record in page:
                yield await self._event(record)
                revision = record.revision
            if len(page) < PAGE:
                break
        yield ReadResp(caught_up=ReadResp.CaughtUp())
        last = live_from
        while True:
            changed = self._hub.changed
            page = await self._committed_after(last)
            for record in page:
                last = record.position
                if record.stream != name or record.revision <= revision:
                    continue
                yield await self._event(record)
                if record.revision == DELETED_STREAM:
                    await self._deleted()
                revision = record.revision
            if not page:
                await changed.wait()


class _Filter:
    """An event-type or stream-name filter: a regex (searched, as .NET's Regex.IsMatch) or a
    list of prefixes, with the search window the client asked for; or a KurrentDB
    secondary index (one ``$idx-…`` stream-name prefix)."""

    def __init__(self, match: Callable[[Recorded], bool], window: int, multiplier: int) -> None:
        self._match = match
        self.window = window
        self.multiplier = multiplier

    @classmethod
    def from_options(cls, options: Any) -> _Filter | None:
        if options.WhichOneof("filter_option") != "filter":
            return None
        filter_options = options.filter
        kind = filter_options.WhichOneof("filter")
        expression = getattr(filter_options, kind)
        by_stream = kind == "stream_identifier"
        match: Callable[[Recorded], bool]
        if expression.regex:
            search = re.compile(expression.regex).search

            def match(record: Recorded) -> bool:
                return search(record.stream if by_stream else record.type) is not None
        elif by_stream and any(p.startswith(INDEX_PREFIX) for p in expression.prefix):
            match = _index(list(expression.prefix))
        else:
            prefixes = tuple(expression.prefix)

            def match(record: Recorded) -> bool:
                return (record.stream if by_stream else record.type).startswith(prefixes)

        window = (
            filter_options.max
            if filter_options.WhichOneof("window") == "max"
            else DEFAULT_SEARCH_WINDOW
        )
        multiplier = filter_options.checkpointIntervalMultiplier or 1
        return cls(match, window, multiplier)

    def __call__(self, record: Recorded) -> bool:
        return self._match(record)


class BadIndexRead(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, trailers: dict[str, str]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailers = trailers


def _index(prefixes: list[str]) -> Callable[[Recorded], bool]:
    """KurrentDB's secondary indexes (``SecondaryIndexing/Indexes``): ``$idx-all`` holds
    every event of a stream not starting with ``$``; ``$idx-ce-<c>`` those whose stream's
    category (before the first ``-``, else the whole name) is ``c``; ``$idx-et-<t>`` those of
    type ``t``. A read or subscription filtered on one of them reads it."""
    if len(prefixes) > 1:
        raise BadIndexRead(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Index reads only work with one index name and cannot be combined with stream"
            " prefixes or other indexes",
            {},
        )
    name = prefixes[0]
    if name == INDEX_PREFIX + "all":
        return lambda record: not record.stream.startswith("$")
    if name.startswith(INDEX_PREFIX + "ce-"):
        category = name.removeprefix(INDEX_PREFIX + "ce-")
        return lambda record: (
            not record.stream.startswith("$") and record.stream.split("-", 1)[0] == category
        )
    if name.startswith(INDEX_PREFIX + "et-"):
        event_type = name.removeprefix(INDEX_PREFIX + "et-")
        return lambda record: not record.stream.startswith("$") and record.type == event_type
    raise BadIndexRead(
        grpc.StatusCode.NOT_FOUND,
        f"Index '{name}' not found.",
        {"exception": "index-not-found", "index-name": name},
    )


class _Checkpoints:
    """A filtered subscription's progress reports: every ``window * multiplier`` events
    considered (matching or not), at the position of the last one considered."""

    def __init__(self, event_filter: _Filter | None, start: int) -> None:
        """``start`` is where the subscription began: nothing at or before it is reported."""
        self.enabled = event_filter is not None
        self._interval = (
            max(1, event_filter.window * event_filter.multiplier) if event_filter else 0
        )
        self._counter = 0
        self._position = start
        self._sent = start

    def considered(self, position: int) -> bool:
        """Count one event; True when a checkpoint is due."""
        if not self.enabled:
            return False
        self._position = position
        self._counter += 1
        if self._counter < self._interval:
            return False
        self._counter = 0
        return self.due()

    def at(self, position: int) -> None:
        self._position = position
        self._counter = 0

    def due(self) -> bool:
        return self._position > self._sent

    def emit(self) -> streams_pb2.ReadResp:
        self._sent = self._position
        return ReadResp(
            checkpoint=ReadResp.Checkpoint(
                commit_position=self._position, prepare_position=self._position
            )
        )


# ---------------------------------------------------------------------- helpers

_STATE_FIELD = {ANY: "any", NO_STREAM: "no_stream", STREAM_EXISTS: "stream_exists"}


class BadProposal(Exception):
    """A proposed event the server refuses before any write."""

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
        exception: str = "missing-required-metadata-property",
        trailers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exception = exception
        self.trailers = trailers


def _expected(options: Any, oneof: str, revision_field: str) -> int:
    which = options.WhichOneof(oneof)
    if which == revision_field:
        return int(getattr(options, revision_field))
    return {"no_stream": NO_STREAM, "stream_exists": STREAM_EXISTS}.get(which, ANY)


def _proposed(message: Any) -> Proposed:
    """A proposed message as the log stores it (non-JSON content reads back as binary)."""
    metadata = message.metadata
    for key in ("type", "content-type"):
        if key not in metadata:
            raise BadProposal(
                f"Required Metadata Property '{key}' is missing",
                trailers={"required-metadata-properties": "type,content-type"},
            )
    try:
        if message.id.WhichOneof("value") == "structured":
            most = message.id.structured.most_significant_bits & UINT64_MAX
            least = message.id.structured.least_significant_bits & UINT64_MAX
            event_id = str(uuid.UUID(int=(most << 64) | least))
        else:
            event_id = str(uuid.UUID(message.id.string))
    except ValueError:
        raise BadProposal(
            "Exception was thrown by handler.", grpc.StatusCode.UNKNOWN, "unknown"
        ) from None
    content_type = metadata["content-type"]
    if content_type != JSON:
        content_type = BINARY
    return Proposed(event_id, metadata["type"], content_type, message.data, message.custom_metadata)


def _size(events: Sequence[Proposed]) -> int:
    """An append's size as the server counts it toward the limit: the data bytes.

    ``Event.SizeOnDisk`` reads ``data?.Length ?? 0 + metadata?.Length ?? 0 + type.Length * 2``,
    which C# parses as ``data?.Length ?? (…)``: with data present, only its length counts
    (23.x and 24.x; so 30,000 small JSON events fit in one append).
    """
    return sum(len(e.data) for e in events)


def _fill_success(success: Any, result: WriteResult) -> None:
    if result.current_revision < 0:
        success.no_stream.SetInParent()
    else:
        success.current_revision = result.current_revision
    if result.position is None:
        success.no_position.SetInParent()
    else:
        success.position.commit_position = result.position
        success.position.prepare_position = result.position


def _append_wev(error: WrongExpectedVersion) -> Any:
    """Append's in-band answer, with the pre-20.6 fields the server still fills."""
    wev = streams_pb2.AppendResp.WrongExpectedVersion()
    if error.current < 0:
        wev.current_no_stream.SetInParent()
        wev.no_stream_20_6_0.SetInParent()
    else:
        wev.current_revision = error.current
        wev.current_revision_20_6_0 = error.current
    if error.expected >= 0:
        wev.expected_revision = error.expected
        wev.expected_revision_20_6_0 = error.expected
    elif error.expected == ANY:
        wev.expected_any.SetInParent()
        wev.any_20_6_0.SetInParent()
    elif error.expected == STREAM_EXISTS:
        wev.expected_stream_exists.SetInParent()
        wev.stream_exists_20_6_0.SetInParent()
    else:
        wev.expected_no_stream.SetInParent()
        wev.expected_revision_20_6_0 = UINT64_MAX
    return wev


def _batch_wev(error: WrongExpectedVersion) -> shared_pb2.WrongExpectedVersion:
    wev = shared_pb2.WrongExpectedVersion()
    if error.current < 0:
        wev.current_no_stream.SetInParent()
    else:
        wev.current_stream_revision = error.current
    if error.expected >= 0:
        wev.expected_stream_position = error.expected
    else:
        getattr(wev, "expected_" + _STATE_FIELD[error.expected]).SetInParent()
    return wev


def _expired(options: Any, now: float) -> bool:
    """The batch's deadline (a duration, or a 21.10 timestamp) leaves no time when its
    options arrive: the server then answers Timeout and writes nothing."""
    which = options.WhichOneof("deadline_option")
    if which == "deadline":
        return bool(options.deadline.ToTimedelta().total_seconds() <= 0)
    if which == "deadline_21_10_0":
        return bool(options.deadline_21_10_0.ToNanoseconds() / 1e9 <= now)
    return False


def _batch_timeout(request: streams_pb2.BatchAppendReq) -> streams_pb2.BatchAppendResp:
    return _batch_error(request, grpc.StatusCode.DEADLINE_EXCEEDED, "Timeout", shared_pb2.Timeout())


def _batch_denied(request: streams_pb2.BatchAppendReq) -> streams_pb2.BatchAppendResp:
    return _batch_error(
        request, grpc.StatusCode.PERMISSION_DENIED, ACCESS_DENIED, shared_pb2.AccessDenied()
    )


def _batch_error(
    request: streams_pb2.BatchAppendReq, code: grpc.StatusCode, message: str, detail: Any
) -> streams_pb2.BatchAppendResp:
    response = streams_pb2.BatchAppendResp(
        correlation_id=request.correlation_id,
        stream_identifier=request.options.stream_identifier,
    )
    response.error.CopyFrom(_status(code, message, detail))
    return response


def _status(code: grpc.StatusCode, message: str, detail: Any) -> status_pb2.Status:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)


async def _abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    exception: str,
    extra: dict[str, str] | None = None,
) -> None:
    """Fail the call as the server does: status, text, and an ``exception`` trailer."""
    context.set_trailing_metadata((("exception", exception), *(extra or {}).items()))
    await context.abort(code, message)


async def _abort_timeout(context: grpc.aio.ServicerContext) -> None:
    """A write not committed in time: ``RpcExceptions.Timeout`` of the request manager's
    "Commit phase timeout." (esdbclient raises AbortedByServer)."""
    await context.abort(grpc.StatusCode.ABORTED, "Operation timed out: Commit phase timeout.")


async def _abort_deleted(context: grpc.aio.ServicerContext, stream: str) -> None:
    await _abort(
        context,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Event stream '{stream}' is deleted.",
        "stream-deleted",
        {"stream-name": stream},
    )
