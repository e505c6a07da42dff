"""``PersistentSubscriptionController``: the groups as the UI's Competing Consumers page reads.

Served: ``GET /subscriptions`` (every group's summary; ``?offset=&count=`` the 24.x paged
form), ``GET /subscriptions/{stream}``, ``GET /subscriptions/{stream}/{group}/info``,
``POST /subscriptions/{stream}/{group}/replayParked[?stopAt=]``, ``DELETE
/subscriptions/{stream}/{group}`` and ``POST /subscriptions/restart``, in the server's shapes
(``ToSummaryDto`` and ``ToDto``), from the same subsystem and the same figures as gRPC's
``GetInfo``. Creating and updating groups and reading messages over HTTP are not served.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from esdblocal.http.common import (
    Context,
    Controller,
    HttpError,
    Route,
    bad_request,
    json_response,
)
from esdblocal.persistent.group import Group
from esdblocal.persistent.subsystem import Subsystem
from esdblocal.services.persistent import _info as group_info

DEFAULT_MESSAGES = 1  # DefaultNumberOfMessagesToGet


class SubscriptionsController(Controller):
    def __init__(self, context: Context, subsystem: Subsystem) -> None:
        super().__init__(context)
        self._subsystem = subsystem

    def routes(self) -> list[Route]:
        return [
            ("GET", "/subscriptions", self._all),
            ("POST", "/subscriptions/restart", self._restart),
            ("GET", "/subscriptions/{stream}", self._of_stream),
            ("DELETE", "/subscriptions/{stream}/{group}", self._delete),
            ("GET", "/subscriptions/{stream}/{group}/info", self._detail),
            ("POST", "/subscriptions/{stream}/{group}/replayParked", self._replay_parked),
        ]

    def _group(self, request: web.Request) -> Group:
        stream, name = request.match_info["stream"], request.match_info["group"]
        group = self._subsystem.get(stream, name)
        if group is None:
            raise HttpError(404, "Not Found")
        return group

    async def _all(self, request: web.Request) -> web.Response:
        self._authenticated(request)
        await self._subsystem.ready()
        groups = sorted(self._subsystem.all_groups(), key=lambda g: (g.stream, g.name))
        count_text = request.query.get("count")
        offset_text = request.query.get("offset")
        if count_text is None and offset_text is None:
            return json_response([self._summary(request, g) for g in groups])
        offset = _integer(offset_text or "0")
        if offset is None or offset < 0:
            raise bad_request(f'Offset "{offset_text}" must be a non-negative integer')
        count = _integer(count_text or "")
        if count is None or count < 1:
            raise bad_request(f'Count "{count_text}" must be a positive integer')
        base = f"{self._base(request)}/subscriptions"
        links = [
            {"href": f"{base}?offset={offset}&count={count}", "rel": "self"},
            {"href": f"{base}?offset=0&count={count}", "rel": "first"},
        ]
        if offset > 0:
            previous = max(0, offset - count)
            links.append({"href": f"{base}?offset={previous}&count={count}", "rel": "previous"})
        if offset + count < len(groups):
            links.append({"href": f"{base}?offset={offset + count}&count={count}", "rel": "next"})
        page = groups[offset : offset + count]
        return json_response(
            {
                "links": links,
                "offset": offset,
                "count": count,
                "total": len(groups),
                "subscriptions": [self._summary(request, g) for g in page],
            }
        )

    async def _of_stream(self, request: web.Request) -> web.Response:
        self._authenticated(request)
        await self._subsystem.ready()
        groups = self._subsystem.groups_of(request.match_info["stream"])
        if groups is None:
            raise HttpError(404, "Not Found")
        return json_response([self._summary(request, g) for g in groups])

    async def _detail(self, request: web.Request) -> web.Response:
        self._authenticated(request)
        await self._subsystem.ready()
        return json_response(self._detailed(request, self._group(request)))

    async def _replay_parked(self, request: web.Request) -> web.Response:
        self._authenticated(request)
        await self._subsystem.ready()
        group = self._group(request)
        stop_text = request.query.get("stopAt")
        stop_at = _integer(stop_text) if stop_text else None
        if stop_text and (stop_at is None or stop_at < 0):
            raise bad_request("Cannot stop replaying parked message at a negative version.")
        group.replay_parked(stop_at)
        return json_response(_operation("Success", "ReplayingParkedMessages"))

    async def _delete(self, request: web.Request) -> web.Response:
        principal = self._authenticated(request)
        await self._subsystem.ready()
        group = self._group(request)
        await self._subsystem.delete(group.stream, group.name, principal.name)
        return json_response(_operation("Success", "Deleted"))

    async def _restart(self, request: web.Request) -> web.Response:
        self._operator(request)
        await self._subsystem.restart()
        return json_response("Restarting")

    # ---------------------------------------------------------------- shapes

    def _links(self, request: web.Request, group: Group) -> tuple[str, str, str]:
        stream, name = quote(group.stream, safe=""), quote(group.name, safe="")
        base = self._base(request)
        parked = f"{base}/streams/%24persistentsubscription-{stream}::{name}-parked"
        messages = f"{base}/subscriptions/{stream}/{name}/{DEFAULT_MESSAGES}"
        return f"{base}/subscriptions/{stream}/{name}", parked, messages

    def _summary(self, request: web.Request, group: Group) -> dict[str, Any]:
        """``SubscriptionSummary``."""
        info = group_info(group)
        url, parked, messages = self._links(request, group)
        return {
            "links": [{"href": f"{url}/info", "rel": "detail"}],
            "eventStreamId": info.event_source,
            "groupName": info.group_name,
            "parkedMessageUri": parked,
            "getMessagesUri": messages,
            "status": info.status,
            "averageItemsPerSecond": float(info.average_per_second),
            "totalItemsProcessed": info.total_items,
            "lastProcessedEventNumber": _number(info.last_checkpointed_event_position),
            "lastKnownEventNumber": _number(info.last_known_event_position),
            "lastCheckpointedEventPosition": info.last_checkpointed_event_position,
            "lastKnownEventPosition": info.last_known_event_position,
            "connectionCount": len(info.connections),
            "totalInFlightMessages": info.total_in_flight_messages,
        }

    def _detailed(self, request: web.Request, group: Group) -> dict[str, Any]:
        """``SubscriptionInfo``: the summary's figures, the config and the connections."""
        info = group_info(group)
        url, parked, messages = self._links(request, group)
        return {
            "links": [
                {"href": f"{url}/info", "rel": "detail"},
                {"href": f"{url}/replayParked", "rel": "replayParked"},
            ],
            "config": {
                "resolveLinktos": info.resolve_link_tos,
                "startFrom": _number(info.start_from),
                "startPosition": info.start_from,
                "messageTimeoutMilliseconds": info.message_timeout_milliseconds,
                "extraStatistics": info.extra_statistics,
                "maxRetryCount": info.max_retry_count,
                "liveBufferSize": info.live_buffer_size,
                "bufferSize": info.buffer_size,
                "readBatchSize": info.read_batch_size,
                "preferRoundRobin": info.named_consumer_strategy == "RoundRobin",
                "checkPointAfterMilliseconds": info.check_point_after_milliseconds,
                "minCheckPointCount": info.min_check_point_count,
                "maxCheckPointCount": info.max_check_point_count,
                "maxSubscriberCount": info.max_subscriber_count,
                "namedConsumerStrategy": info.named_consumer_strategy,
            },
            "eventStreamId": info.event_source,
            "groupName": info.group_name,
            "status": info.status,
            "averageItemsPerSecond": float(info.average_per_second),
            "parkedMessageUri": parked,
            "getMessagesUri": messages,
            "totalItemsProcessed": info.total_items,
            "countSinceLastMeasurement": info.count_since_last_measurement,
            "lastProcessedEventNumber": _number(info.last_checkpointed_event_position),
            "lastKnownEventNumber": _number(info.last_known_event_position),
            "lastCheckpointedEventPosition": info.last_checkpointed_event_position,
            "lastKnownEventPosition": info.last_known_event_position,
            "readBufferCount": info.read_buffer_count,
            "liveBufferCount": info.live_buffer_count,
            "retryBufferCount": info.retry_buffer_count,
            "totalInFlightMessages": info.total_in_flight_messages,
            "outstandingMessagesCount": info.outstanding_messages_count,
            "parkedMessageCount": info.parked_message_count,
            "connections": [
                {
                    "from": getattr(c, "from"),
                    "username": c.username,
                    "averageItemsPerSecond": float(c.average_items_per_second),
                    "totalItemsProcessed": c.total_items,
                    "countSinceLastMeasurement": c.count_since_last_measurement,
                    "extraStatistics": [
                        {"key": m.key, "value": m.value} for m in c.observed_measurements
                    ],
                    "availableSlots": c.available_slots,
                    "inFlightMessages": c.in_flight_messages,
                    "connectionName": c.connection_name,
                }
                for c in info.connections
            ],
        }


def _integer(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _number(text: str) -> int:
    """The obsolete ``…EventNumber`` fields: the position as a number, else 0."""
    value = _integer(text)
    return value if value is not None else 0


def _operation(result: str, reason: str) -> dict[str, str]:
    return {
        "correlationId": "00000000-0000-0000-0000-000000000000",
        "reason": reason,
        "result": result,
    }
