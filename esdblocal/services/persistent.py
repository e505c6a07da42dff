"""The PersistentSubscriptions gRPC service, as the server's
``Services/Transport/Grpc/PersistentSubscriptions.*``: requests in, the engine's answers out,
with the server's status codes, texts and ``exception`` trailers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from esdbclient.protos.Grpc import persistent_pb2, persistent_pb2_grpc, shared_pb2

from esdblocal.persistent import (
    ALL,
    Consumer,
    Dropped,
    Filter,
    Group,
    GroupExists,
    GroupNotFound,
    InvalidSettings,
    Message,
    Settings,
    Start,
    Subsystem,
)
from esdblocal.security import Principal, deny, may_access
from esdblocal.services.shared import UINT64_MAX, NodeParts, recorded_event

ReadResp = persistent_pb2.ReadResp
RecordedEventPb = persistent_pb2.ReadResp.ReadEvent.RecordedEvent
NACK_ACTIONS = {
    persistent_pb2.ReadReq.Nack.Unknown: "unknown",
    persistent_pb2.ReadReq.Nack.Park: "park",
    persistent_pb2.ReadReq.Nack.Retry: "retry",
    persistent_pb2.ReadReq.Nack.Skip: "skip",
    persistent_pb2.ReadReq.Nack.Stop: "stop",
}
NAMED_STRATEGIES = {0: "DispatchToSingle", 1: "RoundRobin", 2: "Pinned"}
ALL_ONLY_OVER_GRPC = (
    "Persistent subscriptions to $all are only supported over gRPC through gRPC clients"
)


class PersistentSubscriptions(persistent_pb2_grpc.PersistentSubscriptionsServicer):  # type: ignore[misc]
    """Built inside the serving loop (it starts the subsystem there)."""

    def __init__(self, parts: NodeParts) -> None:
        self.subsystem = Subsystem(parts.store, parts.hub, parts.readers)
        self._parts = parts
        self._users = parts.users

    # ------------------------------------------------------------ management

    async def Create(
        self, request: persistent_pb2.CreateReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.CreateResp:
        user = await self._user(context)
        options = request.options
        settings_pb = options.settings
        stream, start = await _target(options, context)
        event_filter: Filter | None = None
        if stream == ALL and options.all.WhichOneof("filter_option") == "filter":
            event_filter = _filter(options.all.filter)
        strategy = settings_pb.consumer_strategy or NAMED_STRATEGIES.get(
            settings_pb.named_consumer_strategy, str(settings_pb.named_consumer_strategy)
        )
        settings = _settings(settings_pb, start, strategy)
        try:
            await self.subsystem.create(stream, options.group_name, settings, event_filter, user)
        except InvalidSettings as error:
            await _failed(context, stream, options.group_name, str(error))
        except GroupExists:
            await _abort(
                context,
                grpc.StatusCode.ALREADY_EXISTS,
                f"Subscription group {options.group_name} on stream {stream} exists.",
                "persistent-subscription-exists",
                stream,
                options.group_name,
            )
        return persistent_pb2.CreateResp()

    async def Update(
        self, request: persistent_pb2.UpdateReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.UpdateResp:
        user = await self._user(context)
        options = request.options
        settings_pb = options.settings
        stream, start = await _target(options, context)
        strategy = NAMED_STRATEGIES.get(
            settings_pb.named_consumer_strategy, str(settings_pb.named_consumer_strategy)
        )
        settings = _settings(settings_pb, start, strategy)
        try:
            await self.subsystem.update(stream, options.group_name, settings, user)
        except InvalidSettings as error:
            await _failed(context, stream, options.group_name, str(error))
        except GroupNotFound:
            await _missing(context, stream, options.group_name)
        return persistent_pb2.UpdateResp()

    async def Delete(
        self, request: persistent_pb2.DeleteReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.DeleteResp:
        user = await self._user(context)
        options = request.options
        stream = _stream_of(options)
        if stream == "":
            await _failed(context, stream, options.group_name, "Bad stream name.")
        if stream == ALL and options.WhichOneof("stream_option") != "all":
            await _failed(context, stream, options.group_name, ALL_ONLY_OVER_GRPC)
        try:
            await self.subsystem.delete(stream, request.options.group_name, user)
        except GroupNotFound:
            await _missing(context, stream, request.options.group_name)
        return persistent_pb2.DeleteResp()

    async def GetInfo(
        self, request: persistent_pb2.GetInfoReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.GetInfoResp:
        await self._user(context)
        await self.subsystem.ready()
        stream = _stream_of(request.options)
        group = self.subsystem.get(stream, request.options.group_name)
        if group is None:
            await _missing(context, stream, request.options.group_name)
        return persistent_pb2.GetInfoResp(subscription_info=_info(group))

    async def List(
        self, request: persistent_pb2.ListReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.ListResp:
        await self._user(context)
        await self.subsystem.ready()
        options = request.options
        if options.WhichOneof("list_option") == "list_for_stream":
            for_stream = options.list_for_stream
            stream = (
                ALL
                if for_stream.WhichOneof("stream_option") == "all"
                else for_stream.stream.stream_name.decode()
            )
            groups = self.subsystem.groups_of(stream)
            if groups is None:
                await _missing(context, stream, "")
        else:
            groups = list(self.subsystem.all_groups())
        return persistent_pb2.ListResp(subscriptions=[_info(group) for group in groups])

    async def ReplayParked(
        self, request: persistent_pb2.ReplayParkedReq, context: grpc.aio.ServicerContext
    ) -> persistent_pb2.ReplayParkedResp:
        await self._user(context)
        await self.subsystem.ready()
        options = request.options
        stream = _stream_of(options)
        stop_at = options.stop_at if options.WhichOneof("stop_at_option") == "stop_at" else None
        if stop_at is not None and stop_at < 0:
            await _failed(
                context,
                stream,
                options.group_name,
                "Cannot stop replaying parked message at a negative version.",
            )
        group = self.subsystem.get(stream, options.group_name)
        if group is None:
            await _missing(context, stream, options.group_name)
        group.replay_parked(stop_at)
        return persistent_pb2.ReplayParkedResp()

    async def RestartSubsystem(
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> shared_pb2.Empty:
        await self._user(context)
        await self.subsystem.restart()
        return shared_pb2.Empty()

    # ------------------------------------------------------------------ Read

    async def Read(
        self,
        request_iterator: AsyncIterator[persistent_pb2.ReadReq],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[persistent_pb2.ReadResp]:
        requests = request_iterator.__aiter__()
        first = await anext(requests, None)
        if first is None:
            return
        if not first.HasField("options"):
            await context.abort(grpc.StatusCode.UNKNOWN, "Exception was thrown by handler.")
        options = first.options
        stream = (
            ALL
            if options.WhichOneof("stream_option") == "all"
            else options.stream_identifier.stream_name.decode()
        )
        principal = await self._principal(context)
        if self._users is not None and not may_access(principal, stream):
            await deny(context)
        await self.subsystem.ready()
        group = self.subsystem.get(stream, options.group_name)
        if group is None:
            await _missing(context, stream, options.group_name)
        if group.full:
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Maximum subscriptions reached for subscription group {options.group_name}"
                f" on stream {stream}.",
                "maximum-subscribers-reached",
                stream,
                options.group_name,
            )
        headers = dict(context.invocation_metadata() or ())
        consumer = Consumer(
            max_in_flight=options.buffer_size,
            connection_name=str(headers.get("connection-name", "<unknown>")),
            username=principal.name if principal is not None else "anonymous",
            extra_statistics=group.settings.extra_statistics,
        )
        structured = options.uuid_option.WhichOneof("content") == "structured"
        group.add(consumer)
        pump = asyncio.ensure_future(_pump(requests, group))
        try:
            yield ReadResp(
                subscription_confirmation=ReadResp.SubscriptionConfirmation(
                    subscription_id=group.key
                )
            )
            while True:
                item = await consumer.outbox.get()
                if isinstance(item, Dropped):
                    await _abort(
                        context,
                        grpc.StatusCode.CANCELLED,
                        f"Subscription group {options.group_name} on stream {stream} was dropped.",
                        "persistent-subscription-dropped",
                        stream,
                        options.group_name,
                    )
                yield ReadResp(event=_read_event(item, structured))
        finally:
            pump.cancel()
            group.remove(consumer)

    # ------------------------------------------------------------- security

    async def _principal(self, context: grpc.aio.ServicerContext) -> Principal | None:
        return self._parts.principal(context)

    async def _user(self, context: grpc.aio.ServicerContext) -> str | None:
        """The caller's name; on a secure node anonymous callers are refused."""
        if self._users is None:
            return None
        principal = await self._principal(context)
        if principal is None:
            await deny(context)
            raise AssertionError("deny aborts")
        return principal.name


async def _pump(requests: AsyncIterator[persistent_pb2.ReadReq], group: Group) -> None:
    """Acks and nacks, as they come; the stream ending is not the call ending."""
    try:
        async for request in requests:
            content = request.WhichOneof("content")
            if content == "ack":
                group.ack(_ids(request.ack.ids))
            elif content == "nack":
                action = NACK_ACTIONS.get(request.nack.action, "unknown")
                group.nack(action, _ids(request.nack.ids), request.nack.reason)
    except (asyncio.CancelledError, grpc.RpcError):
        pass


def _ids(ids: Any) -> list[str]:
    result = []
    for value in ids:
        try:
            if value.WhichOneof("value") == "structured":
                most = value.structured.most_significant_bits & UINT64_MAX
                least = value.structured.least_significant_bits & UINT64_MAX
                result.append(str(uuid.UUID(int=(most << 64) | least)))
            else:
                result.append(str(uuid.UUID(value.string)))
        except ValueError:
            continue
    return result


# ----------------------------------------------------------------- requests


def _stream_of(options: Any) -> str:
    if options.WhichOneof("stream_option") == "all":
        return ALL
    return str(options.stream_identifier.stream_name.decode())


async def _target(options: Any, context: grpc.aio.ServicerContext) -> tuple[str, Start]:
    """The stream (or $all) and start of a Create or Update (their options are alike)."""
    which = options.WhichOneof("stream_option")
    if which == "all":
        return ALL, _all_start(options.all)
    if which == "stream":
        stream = options.stream.stream_identifier.stream_name.decode()
        start = _stream_start(options.stream)
    else:  # before 21.10 the stream and revision were elsewhere
        stream = options.stream_identifier.stream_name.decode()
        start = Start(_signed(options.settings.revision))
    if stream == ALL:
        await _failed(context, stream, options.group_name, ALL_ONLY_OVER_GRPC)
    return stream, start


def _all_start(options: Any) -> Start:
    which = options.WhichOneof("all_option")
    if which == "position":
        return Start(
            0, int(options.position.commit_position), int(options.position.prepare_position)
        )
    if which == "end":
        return Start(0, -1, -1)
    return Start(0, 0, 0)


def _stream_start(options: Any) -> Start:
    which = options.WhichOneof("revision_option")
    if which == "revision":
        return Start(_signed(options.revision))
    return Start(-1 if which == "end" else 0)


def _signed(value: int) -> int:
    """A uint64 on the wire as the server's ``ToInt64()`` reads it: the maximum is -1 (end)."""
    return value - 2**64 if value >= 2**63 else value


def _filter(options: Any) -> Filter:
    kind = options.WhichOneof("filter")
    expression = getattr(options, kind)
    context = "streamid" if kind == "stream_identifier" else "eventtype"
    if expression.regex:
        return Filter(context, "regex", expression.regex)
    return Filter(context, "prefix", ",".join(expression.prefix))


def _settings(settings: Any, start: Start, strategy: str) -> Settings:
    def milliseconds(oneof: str, ms_field: str, ticks_field: str) -> int:
        which = settings.WhichOneof(oneof)
        if which == ms_field:
            return int(getattr(settings, ms_field))
        if which == ticks_field:
            return int(getattr(settings, ticks_field)) // 10_000
        return 0

    return Settings(
        resolve_links=settings.resolve_links,
        start=start,
        extra_statistics=settings.extra_statistics,
        message_timeout_ms=milliseconds(
            "message_timeout", "message_timeout_ms", "message_timeout_ticks"
        ),
        max_retry_count=settings.max_retry_count,
        live_buffer_size=settings.live_buffer_size,
        read_batch_size=settings.read_batch_size,
        history_buffer_size=settings.history_buffer_size,
        checkpoint_after_ms=milliseconds(
            "checkpoint_after", "checkpoint_after_ms", "checkpoint_after_ticks"
        ),
        min_checkpoint_count=settings.min_checkpoint_count,
        max_checkpoint_count=settings.max_checkpoint_count,
        max_subscriber_count=settings.max_subscriber_count,
        consumer_strategy=strategy,
    )


# ---------------------------------------------------------------- responses


def _info(group: Group) -> persistent_pb2.SubscriptionInfo:
    """GetInfo's statistics (``PersistentSubscriptionStats.GetStatistics``)."""
    settings = group.settings
    elapsed, items_then, items_now = group.measure()

    def per_second(count: int) -> int:
        return int(count / elapsed) if elapsed > 0 else 0

    connections = []
    for consumer in group.consumers:
        since = consumer.total_items - consumer.last_total_items
        consumer.last_total_items = consumer.total_items
        connections.append(
            persistent_pb2.SubscriptionInfo.ConnectionInfo(
                **{"from": consumer.source},
                username=consumer.username,
                average_items_per_second=per_second(since),
                total_items=consumer.total_items,
                count_since_last_measurement=since,
                observed_measurements=[
                    persistent_pb2.SubscriptionInfo.Measurement(key=key, value=value)
                    for key, value in consumer.measurements()
                ],
                available_slots=consumer.available,
                in_flight_messages=len(consumer.unconfirmed),
                connection_name=consumer.connection_name,
            )
        )
    return persistent_pb2.SubscriptionInfo(
        event_source=group.stream,
        group_name=group.name,
        status=group.status,
        connections=connections,
        average_per_second=per_second(items_now - items_then),
        total_items=items_now,
        count_since_last_measurement=items_now - items_then,
        last_checkpointed_event_position=group.position_text(group.last_checkpointed),
        last_known_event_position=group.position_text(group.last_known_event),
        resolve_link_tos=settings.resolve_links,
        start_from=settings.start.text(group.stream),
        message_timeout_milliseconds=settings.message_timeout_ms,
        extra_statistics=settings.extra_statistics,
        max_retry_count=settings.max_retry_count,
        live_buffer_size=settings.live_buffer_size,
        buffer_size=settings.history_buffer_size,
        read_batch_size=settings.read_batch_size,
        check_point_after_milliseconds=settings.checkpoint_after_ms,
        min_check_point_count=settings.min_checkpoint_count,
        max_check_point_count=settings.max_checkpoint_count,
        read_buffer_count=0 if group.live else len(group.buffer),
        live_buffer_count=len(group.buffer) if group.live else 0,
        retry_buffer_count=len(group.retry),
        total_in_flight_messages=sum(len(c.unconfirmed) for c in group.consumers),
        outstanding_messages_count=len(group.outstanding),
        named_consumer_strategy=settings.consumer_strategy,
        max_subscriber_count=settings.max_subscriber_count,
        parked_message_count=group.parked_count,
    )


def _read_event(message: Message, structured: bool) -> ReadResp.ReadEvent:
    """The event (a resolved link's target) and the link; the position is the original's."""
    read_event = ReadResp.ReadEvent(
        commit_position=message.record.position, retry_count=message.retry_count
    )
    if message.event is not None:
        read_event.event.CopyFrom(recorded_event(message.event, structured, RecordedEventPb))
    if message.link is not None:
        read_event.link.CopyFrom(recorded_event(message.link, structured, RecordedEventPb))
    return read_event


# ------------------------------------------------------------------- errors


async def _abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    exception: str,
    stream: str,
    group: str,
    **extra: str,
) -> NoReturn:
    context.set_trailing_metadata(
        (("exception", exception), ("stream-name", stream), ("group-name", group), *extra.items())
    )
    await context.abort(code, message)
    raise AssertionError("abort raises")


async def _missing(context: grpc.aio.ServicerContext, stream: str, group: str) -> NoReturn:
    await _abort(
        context,
        grpc.StatusCode.NOT_FOUND,
        f"Subscription group {group} on stream {stream} does not exist.",
        "persistent-subscription-does-not-exist",
        stream,
        group,
    )


async def _failed(
    context: grpc.aio.ServicerContext, stream: str, group: str, reason: str
) -> NoReturn:
    await _abort(
        context,
        grpc.StatusCode.INTERNAL,
        f"Subscription group {group} on stream {stream} failed: '{reason}'",
        "persistent-subscription-failed",
        stream,
        group,
        reason=reason,
    )
