"""The gRPC services a client sees: Streams, Gossip, and an empty PersistentSubscriptions.

The messages are EventStoreDB's own (the generated modules shipped with esdbclient are
built from the server's .proto files), so any EventStoreDB gRPC client can talk to this.
Handlers are asyncio coroutines: a subscription is a suspended coroutine, not a thread, so
hundreds of them cost little and never hold up an append.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import grpc
from esdbclient.protos.Grpc import (
    gossip_pb2,
    gossip_pb2_grpc,
    persistent_pb2,
    persistent_pb2_grpc,
    shared_pb2,
    status_pb2,
    streams_pb2,
    streams_pb2_grpc,
)
from google.protobuf import any_pb2, empty_pb2

from esdblocal.hub import Hub
from esdblocal.store import (
    ANY,
    DELETED_STREAM,
    NO_STREAM,
    STREAM_EXISTS,
    Proposed,
    Recorded,
    Store,
    StreamDeleted,
    StreamNotFound,
    WriteResult,
    WrongExpectedVersion,
    now_ticks,
)

ReadResp = streams_pb2.ReadResp
ReadEvent = streams_pb2.ReadResp.ReadEvent
RecordedEventPb = streams_pb2.ReadResp.ReadEvent.RecordedEvent
Options = streams_pb2.ReadReq.Options

# The server's defaults (ClusterVNodeOptions): 1 MiB per append, reads in pages.
MAX_APPEND_SIZE = 1_048_576
PAGE = 512
# AllSubscriptionFiltered: without a window the server scans this many events per read.
DEFAULT_SEARCH_WINDOW = 32
LINK_EVENT_TYPE = "$>"


class Streams(streams_pb2_grpc.StreamsServicer):  # type: ignore[misc]
    def __init__(self, store: Store, hub: Hub, readers: Executor) -> None:
        self._store = store
        self._hub = hub
        self._readers = readers

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._readers, function, *args)

    async def _write(
        self, kind: str, stream: str, expected: int, events: Sequence[Proposed] = ()
    ) -> WriteResult:
        return await asyncio.wrap_future(self._store.submit(kind, stream, expected, events))

    # ------------------------------------------------------------------ Append

    async def Append(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[streams_pb2.AppendReq], context: grpc.aio.ServicerContext
    ) -> streams_pb2.AppendResp:
        options: Any = None
        events: list[Proposed] = []
        size = 0
        async for request in request_iterator:
            if request.HasField("options"):
                options = request.options
                continue
            message = request.proposed_message
            event = await _proposed(message, context)
            size += len(event.data) + len(event.metadata)
            events.append(event)
        if options is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Options were not provided.")
        stream = options.stream_identifier.stream_name.decode()
        expected = _expected(options, "expected_stream_revision", "revision")
        if size > MAX_APPEND_SIZE:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Maximum Append Size of {MAX_APPEND_SIZE} Exceeded.",
                "maximum-append-size-exceeded",
                {"maximum-append-size": str(MAX_APPEND_SIZE)},
            )
        try:
            result = await self._write("append", stream, expected, events)
        except WrongExpectedVersion as error:
            return streams_pb2.AppendResp(wrong_expected_version=_append_wev(error))
        except StreamDeleted:
            await _abort_deleted(context, stream)
        success = streams_pb2.AppendResp.Success()
        if result.current_revision < 0:
            success.no_stream.SetInParent()
        else:
            success.current_revision = result.current_revision
        if result.position is None:
            success.no_position.SetInParent()
        else:
            success.position.commit_position = result.position
            success.position.prepare_position = result.position
        return streams_pb2.AppendResp(success=success)

    # ------------------------------------------------------------- BatchAppend

    async def BatchAppend(  # noqa: N802
        self,
        request_iterator: AsyncIterator[streams_pb2.BatchAppendReq],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[streams_pb2.BatchAppendResp]:
        """Batches are written concurrently; each answers under its correlation id."""
        responses: asyncio.Queue[streams_pb2.BatchAppendResp | None] = asyncio.Queue()
        pending: set[asyncio.Task[None]] = set()

        async def answer(request: streams_pb2.BatchAppendReq, events: list[Proposed]) -> None:
            await responses.put(await self._batch(request, events))

        async def read_requests() -> None:
            batches: dict[str, tuple[streams_pb2.BatchAppendReq, list[Proposed]]] = {}
            async for request in request_iterator:
                key = request.correlation_id.string or str(request.correlation_id.structured)
                if key not in batches:
                    batches[key] = (request, [])
                first, events = batches[key]
                for message in request.proposed_messages:
                    events.append(await _proposed(message, context))
                if request.is_final:
                    del batches[key]
                    task = asyncio.ensure_future(answer(first, events))
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
        self, request: streams_pb2.BatchAppendReq, events: list[Proposed]
    ) -> streams_pb2.BatchAppendResp:
        options = request.options
        stream = options.stream_identifier.stream_name.decode()
        expected = _expected(options, "expected_stream_position", "stream_position")
        response = streams_pb2.BatchAppendResp(
            correlation_id=request.correlation_id, stream_identifier=options.stream_identifier
        )
        if expected >= 0:
            response.stream_position = expected
        else:
            getattr(response, _STATE_FIELD[expected]).SetInParent()
        size = sum(len(e.data) + len(e.metadata) for e in events)
        if size > MAX_APPEND_SIZE:
            detail = shared_pb2.MaximumAppendSizeExceeded(maxAppendSize=MAX_APPEND_SIZE)
            response.error.CopyFrom(_status(grpc.StatusCode.INVALID_ARGUMENT, "", detail))
            return response
        try:
            result = await self._write("append", stream, expected, events)
        except WrongExpectedVersion as error:
            wev = shared_pb2.WrongExpectedVersion()
            if error.current < 0:
                wev.current_no_stream.SetInParent()
            else:
                wev.current_stream_revision = error.current
            if error.expected >= 0:
                wev.expected_stream_position = error.expected
            else:
                getattr(wev, "expected_" + _STATE_FIELD[error.expected]).SetInParent()
            response.error.CopyFrom(
                _status(grpc.StatusCode.FAILED_PRECONDITION, "WrongExpectedVersion", wev)
            )
            return response
        except StreamDeleted:
            detail = shared_pb2.StreamDeleted(stream_identifier=options.stream_identifier)
            response.error.CopyFrom(
                _status(grpc.StatusCode.FAILED_PRECONDITION, "StreamDeleted", detail)
            )
            return response
        if result.current_revision < 0:
            response.success.no_stream.SetInParent()
        else:
            response.success.current_revision = result.current_revision
        if result.position is None:
            response.success.no_position.SetInParent()
        else:
            response.success.position.commit_position = result.position
            response.success.position.prepare_position = result.position
        return response

    # ---------------------------------------------------------- Delete/Tombstone

    async def Delete(  # noqa: N802
        self, request: streams_pb2.DeleteReq, context: grpc.aio.ServicerContext
    ) -> streams_pb2.DeleteResp:
        position = await self._delete("delete", request.options, context)
        return streams_pb2.DeleteResp(
            position=streams_pb2.DeleteResp.Position(
                commit_position=position, prepare_position=position
            )
        )

    async def Tombstone(  # noqa: N802
        self, request: streams_pb2.TombstoneReq, context: grpc.aio.ServicerContext
    ) -> streams_pb2.TombstoneResp:
        position = await self._delete("tombstone", request.options, context)
        return streams_pb2.TombstoneResp(
            position=streams_pb2.TombstoneResp.Position(
                commit_position=position, prepare_position=position
            )
        )

    async def _delete(self, kind: str, options: Any, context: grpc.aio.ServicerContext) -> int:
        stream = options.stream_identifier.stream_name.decode()
        expected = _expected(options, "expected_stream_revision", "revision")
        try:
            result = await self._write(kind, stream, expected, ())
        except WrongExpectedVersion as error:
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Append failed due to WrongExpectedVersion. Stream: {stream},"
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
        assert result.position is not None
        return result.position

    # -------------------------------------------------------------------- Read

    async def Read(  # noqa: N802
        self, request: streams_pb2.ReadReq, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        options = request.options
        reader = _Reader(self, options, context)
        subscribe = options.WhichOneof("count_option") == "subscription"
        if options.WhichOneof("stream_option") == "stream":
            source = reader.subscribe_stream() if subscribe else reader.read_stream()
        else:
            source = reader.subscribe_all() if subscribe else reader.read_all()
        async for response in source:
            yield response


class _Reader:
    """One Read call: a read of a stream or of $all, or a catch-up subscription to either."""

    def __init__(
        self, service: Streams, options: Any, context: grpc.aio.ServicerContext
    ) -> None:
        self._service = service
        self._store = service._store
        self._hub = service._hub
        self._options = options
        self._context = context
        self._backwards = options.read_direction == Options.Backwards
        self._resolve_links = options.resolve_links
        self._structured_ids = options.uuid_option.WhichOneof("content") == "structured"
        self._count = options.count if options.WhichOneof("count_option") == "count" else 0
        self._filter = _Filter.from_options(options)

    # ---- encoding

    async def _event(self, record: Recorded, in_all: bool) -> streams_pb2.ReadResp:
        link: Recorded | None = None
        if self._resolve_links and record.type == LINK_EVENT_TYPE:
            target = await self._service._run(self._resolve, record)
            if target is not None:
                link, record = record, target
        read_event = ReadEvent(event=self._recorded(record))
        if link is not None:
            read_event.link.CopyFrom(self._recorded(link))
        position = (link or record).position
        if in_all or True:
            read_event.commit_position = position
        return ReadResp(event=read_event)

    def _resolve(self, link: Recorded) -> Recorded | None:
        revision, _, stream = link.data.decode(errors="replace").partition("@")
        try:
            return self._store.read_event(stream, int(revision))
        except ValueError:
            return None

    def _recorded(self, record: Recorded) -> Any:
        if self._structured_ids:
            value = uuid.UUID(record.event_id).int
            most, least = value >> 64, value & (2**64 - 1)
            event_id = shared_pb2.UUID(
                structured=shared_pb2.UUID.Structured(
                    most_significant_bits=most - (1 << 64) if most >= 1 << 63 else most,
                    least_significant_bits=least - (1 << 64) if least >= 1 << 63 else least,
                )
            )
        else:
            event_id = shared_pb2.UUID(string=record.event_id)
        return RecordedEventPb(
            id=event_id,
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=record.stream.encode()),
            stream_revision=record.revision,
            prepare_position=record.position,
            commit_position=record.position,
            metadata={
                "type": record.type,
                "content-type": record.content_type,
                "created": str(record.created),
            },
            custom_metadata=record.metadata,
            data=record.data,
        )

    # ---- reads

    def _stream_name(self) -> str:
        return str(self._options.stream.stream_identifier.stream_name.decode())

    def _stream_start(self) -> int | None:
        stream_options = self._options.stream
        which = stream_options.WhichOneof("revision_option")
        if which == "revision":
            return int(stream_options.revision)
        return None

    async def read_stream(self) -> AsyncIterator[streams_pb2.ReadResp]:
        name = self._stream_name()
        stream_options = self._options.stream
        revision = self._stream_start()
        if revision is None and stream_options.WhichOneof("revision_option") == "end":
            if not self._backwards:
                revision = DELETED_STREAM  # forwards from the end: nothing to read
        remaining = self._count
        while remaining > 0:
            try:
                page = await self._service._run(
                    self._store.read_stream, name, revision, self._backwards, min(remaining, PAGE)
                )
            except StreamNotFound:
                yield ReadResp(
                    stream_not_found=ReadResp.StreamNotFound(
                        stream_identifier=self._options.stream.stream_identifier
                    )
                )
                return
            except StreamDeleted:
                await _abort_deleted(self._context, name)
            for record in page:
                yield await self._event(record, in_all=False)
            remaining -= len(page)
            if len(page) < PAGE:
                return
            last = page[-1].revision
            revision = last - 1 if self._backwards else last + 1
            if revision < 0:
                return

    def _all_start(self) -> int:
        all_options = self._options.all
        which = all_options.WhichOneof("all_option")
        if which == "position":
            return int(all_options.position.commit_position)
        if which == "end":
            return DELETED_STREAM
        return 0

    async def read_all(self) -> AsyncIterator[streams_pb2.ReadResp]:
        position = self._all_start()
        if self._backwards and position > self._hub.head:
            position = self._hub.head + 1
        remaining = self._count
        while remaining > 0:
            page = await self._service._run(
                self._store.read_all, position, self._backwards, PAGE
            )
            for record in page:
                if self._filter is None or self._filter(record):
                    yield await self._event(record, in_all=True)
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

    async def subscribe_all(self) -> AsyncIterator[streams_pb2.ReadResp]:
        """History after the start position, caught_up, then live events as committed."""
        all_options = self._options.all
        which = all_options.WhichOneof("all_option")
        if which == "end":
            last = self._hub.head
        elif which == "position":
            last = int(all_options.position.commit_position)  # exclusive
        else:
            last = -1
        yield self._confirmation()
        checkpoints = _Checkpoints(self._filter)
        caught_up = False
        while True:
            changed = self._hub.changed
            if self._hub.covers(last):
                page = self._hub.after(last, PAGE)
            else:
                page = await self._service._run(self._store.read_all, last + 1, False, PAGE)
            for record in page:
                if self._filter is None or self._filter(record):
                    yield await self._event(record, in_all=True)
                    checkpoints.delivered()
                elif checkpoints.skipped():
                    yield checkpoints.at(record.position)
                last = record.position
            if page:
                continue
            if not caught_up:
                caught_up = True
                if checkpoints.pending():
                    yield checkpoints.at(last if last >= 0 else 0)
                yield ReadResp(caught_up=ReadResp.CaughtUp())
            await changed.wait()

    async def subscribe_stream(self) -> AsyncIterator[streams_pb2.ReadResp]:
        name = self._stream_name()
        stream_options = self._options.stream
        which = stream_options.WhichOneof("revision_option")
        head = self._hub.head
        if which == "end":
            revision = await self._last_revision(name)
        elif which == "revision":
            revision = int(stream_options.revision)  # exclusive
        else:
            revision = -1
        yield self._confirmation()
        # History from the stream's own index, then live events from the hub.
        while which != "end":
            try:
                page = await self._service._run(
                    self._store.read_stream, name, revision + 1, False, PAGE
                )
            except (StreamNotFound, StreamDeleted):
                break
            for record in page:
                yield await self._event(record, in_all=False)
                revision = record.revision
            if len(page) < PAGE:
                break
        yield ReadResp(caught_up=ReadResp.CaughtUp())
        last = head
        while True:
            changed = self._hub.changed
            if self._hub.covers(last):
                page = self._hub.after(last, PAGE)
            else:
                page = await self._service._run(self._store.read_all, last + 1, False, PAGE)
            for record in page:
                last = record.position
                if record.stream == name and revision < record.revision != DELETED_STREAM:
                    yield await self._event(record, in_all=False)
                    revision = record.revision
            if not page:
                await changed.wait()

    async def _last_revision(self, name: str) -> int:
        try:
            page = await self._service._run(self._store.read_stream, name, None, True, 1)
        except (StreamNotFound, StreamDeleted):
            return -1
        return page[0].revision if page else -1


class _Filter:
    """An event-type or stream-name filter: a regex (searched) or a list of prefixes."""

    def __init__(self, by_stream: bool, match: Callable[[str], bool], window: int, multiplier: int):
        self.by_stream = by_stream
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
        if expression.regex:
            pattern = re.compile(expression.regex)

            def match(value: str) -> bool:
                return pattern.search(value) is not None
        else:
            prefixes = tuple(expression.prefix)

            def match(value: str) -> bool:
                return value.startswith(prefixes)

        window = (
            filter_options.max
            if filter_options.WhichOneof("window") == "max"
            else DEFAULT_SEARCH_WINDOW
        )
        multiplier = filter_options.checkpointIntervalMultiplier or 1
        return cls(kind == "stream_identifier", match, window, multiplier)

    def __call__(self, record: Recorded) -> bool:
        return self._match(record.stream if self.by_stream else record.type)


class _Checkpoints:
    """When a filtered $all subscription reports how far it has looked."""

    def __init__(self, event_filter: _Filter | None) -> None:
        self._interval = (
            event_filter.window * event_filter.multiplier if event_filter is not None else 0
        )
        self._considered = 0

    def delivered(self) -> None:
        if self._interval:
            self._considered += 1

    def skipped(self) -> bool:
        if not self._interval:
            return False
        self._considered += 1
        return self._considered >= self._interval

    def pending(self) -> bool:
        return self._interval > 0 and self._considered > 0

    def at(self, position: int) -> streams_pb2.ReadResp:
        self._considered = 0
        return ReadResp(
            checkpoint=ReadResp.Checkpoint(commit_position=position, prepare_position=position)
        )


class Gossip(gossip_pb2_grpc.GossipServicer):  # type: ignore[misc]
    """A cluster of one: this node, the leader, at the address clients dialled."""

    def __init__(self, host: str, port: Callable[[], int]) -> None:
        self._host = host
        self._port = port
        self._instance_id = str(uuid.uuid4())

    async def Read(  # noqa: N802
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> gossip_pb2.ClusterInfo:
        member = gossip_pb2.MemberInfo(
            instance_id=shared_pb2.UUID(string=self._instance_id),
            time_stamp=now_ticks(),
            state=gossip_pb2.MemberInfo.VNodeState.Leader,
            is_alive=True,
            http_end_point=gossip_pb2.EndPoint(address=self._host, port=self._port()),
        )
        return gossip_pb2.ClusterInfo(members=[member])


class PersistentSubscriptions(persistent_pb2_grpc.PersistentSubscriptionsServicer):  # type: ignore[misc]
    """Not supported yet: listing answers an empty list, everything else says so plainly."""

    async def List(  # noqa: N802
        self, request: persistent_pb2.ListReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.ListResp:
        return persistent_pb2.ListResp()


# ---------------------------------------------------------------------- helpers

_STATE_FIELD = {ANY: "any", NO_STREAM: "no_stream", STREAM_EXISTS: "stream_exists"}


def _expected(options: Any, oneof: str, revision_field: str) -> int:
    which = options.WhichOneof(oneof)
    if which == revision_field:
        return int(getattr(options, revision_field))
    return {"no_stream": NO_STREAM, "stream_exists": STREAM_EXISTS}.get(which, ANY)


async def _proposed(message: Any, context: grpc.aio.ServicerContext) -> Proposed:
    metadata = message.metadata
    for key in ("type", "content-type"):
        if key not in metadata:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Required Metadata Property '{key}' is missing"
            )
    which = message.id.WhichOneof("value")
    try:
        if which == "structured":
            most = message.id.structured.most_significant_bits & (2**64 - 1)
            least = message.id.structured.least_significant_bits & (2**64 - 1)
            event_id = str(uuid.UUID(int=(most << 64) | least))
        else:
            event_id = str(uuid.UUID(message.id.string))
    except ValueError:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid event id")
    return Proposed(
        event_id, metadata["type"], metadata["content-type"], message.data, message.custom_metadata
    )


def _append_wev(error: WrongExpectedVersion) -> Any:
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
    return wev


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
    trailers = [("exception", exception), *(extra or {}).items()]
    context.set_trailing_metadata(tuple(trailers))
    await context.abort(code, message)


async def _abort_deleted(context: grpc.aio.ServicerContext, stream: str) -> None:
    await _abort(
        context,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Event stream '{stream}' is deleted.",
        "stream-deleted",
        {"stream-name": stream},
    )


_ = empty_pb2  # google.protobuf.Empty is what BatchAppend's oneofs carry
