"""Consumers of a group and the strategies that choose which one gets the next message.

As the server's ``ConsumerStrategy`` classes: a consumer takes at most ``max_in_flight``
unacknowledged messages; RoundRobin rotates after every push, DispatchToSingle keeps
filling the first consumer until it is full, and the pinned strategies hash a message's
source stream (or its ``$correlationId``) into one of 1024 buckets, each bucket owned by one
consumer, the buckets balanced as consumers come and go.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from esdblocal.store import Recorded

LINK_EVENT_TYPE = "$>"
BUCKETS = 1024


@dataclass(slots=True, eq=False)
class Message:
    """One event on its way through a group.

    ``record`` is what the source holds (a link, when links are resolved); ``event`` is what a
    consumer sees as the event (the link's target, or None when the target is gone);
    ``position`` is the checkpoint key (a revision, or a log position for $all), None for a
    replayed parked message. ``seq`` numbers a message when first pushed; ``previous`` is the
    position of the last message pushed before it, where a checkpoint may stand while it is
    unacknowledged.
    """

    record: Recorded
    event: Recorded | None
    link: Recorded | None
    position: int | None
    retry_count: int = 0
    seq: int | None = None
    previous: int | None = None
    replayed: bool = False

    @property
    def event_id(self) -> str:
        return self.record.event_id


@dataclass(frozen=True, slots=True)
class Dropped:
    """Put in a consumer's outbox when the group drops it (updated, deleted, restarted)."""

    reason: str = "unsubscribed"


class Push(Enum):
    SENT = 1
    SKIPPED = 2
    NO_CAPACITY = 3


@dataclass(eq=False)
class Consumer:
    """One connected Read call."""

    max_in_flight: int
    connection_name: str = "<unknown>"
    username: str = "anonymous"
    source: str = ""
    extra_statistics: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    unconfirmed: dict[str, Message] = field(default_factory=dict)
    outbox: asyncio.Queue[Message | Dropped] = field(default_factory=asyncio.Queue)
    total_items: int = 0
    last_total_items: int = 0
    on_confirmed: Callable[[Consumer, Message], None] | None = None
    # extra statistics: when each in-flight message was sent, and recent round trips (ms)
    sent_at: dict[str, float] = field(default_factory=dict)
    round_trips: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    @property
    def available(self) -> int:
        return self.max_in_flight - len(self.unconfirmed)

    def push(self, message: Message) -> bool:
        if self.available <= 0:
            return False
        self.total_items += 1
        if self.extra_statistics:
            self.sent_at[message.event_id] = time.monotonic()
        self.unconfirmed.setdefault(message.event_id, message)
        self.outbox.put_nowait(message)
        return True

    def confirm(self, event_ids: Iterable[str]) -> None:
        """Acked, nacked, timed out or retried: the message no longer takes a slot."""
        for event_id in event_ids:
            message = self.unconfirmed.pop(event_id, None)
            if message is None:
                continue
            started = self.sent_at.pop(event_id, None)
            if started is not None:
                self.round_trips.append((time.monotonic() - started) * 1000)
            if self.on_confirmed is not None:
                self.on_confirmed(self, message)

    def measurements(self) -> list[tuple[str, int]]:
        """RequestStatistics' figures over recent round trips, in ms (extra statistics)."""
        if not self.extra_statistics:
            return []
        values = sorted(self.round_trips)
        if not values:
            return []

        def at(fraction: float) -> int:
            return int(values[min(len(values) - 1, int(len(values) * fraction))])

        figures = [("Mean", int(sum(values) / len(values))), ("Median", at(0.5))]
        figures += [("Fastest", int(values[0]))]
        figures += [(f"Quintile {n}", at(n / 5 - 0.2)) for n in range(1, 6)]
        figures += [(f"{p}%", at(p / 100)) for p in (90, 95, 99, 99.5, 99.9, 99.99)]
        figures += [("Highest", int(values[-1]))]
        return figures


class Strategy:
    name = ""

    def added(self, consumer: Consumer) -> None:
        raise NotImplementedError

    def removed(self, consumer: Consumer) -> None:
        raise NotImplementedError

    def push(self, message: Message) -> Push:
        raise NotImplementedError


class RoundRobin(Strategy):
    name = "RoundRobin"

    def __init__(self) -> None:
        self.consumers: deque[Consumer] = deque()

    def added(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)

    def removed(self, consumer: Consumer) -> None:
        self.consumers.remove(consumer)

    def push(self, message: Message) -> Push:
        for _ in range(len(self.consumers)):
            consumer = self.consumers.popleft()
            self.consumers.append(consumer)
            if consumer.push(message):
                return Push.SENT
        return Push.NO_CAPACITY


class DispatchToSingle(RoundRobin):
    """Fill the first consumer; move on only when it is full."""

    name = "DispatchToSingle"

    def push(self, message: Message) -> Push:
        for _ in range(len(self.consumers)):
            if self.consumers[0].push(message):
                return Push.SENT
            self.consumers.rotate(-1)
        return Push.NO_CAPACITY


@dataclass(eq=False)
class _Node:
    consumer: Consumer
    assignments: int = 0


class Pinned(Strategy):
    """Buckets of source streams pinned to consumers (``PinnedConsumerState``)."""

    name = "Pinned"

    def __init__(self) -> None:
        self.nodes: list[_Node] = []
        self.owner: list[_Node | None] = [None] * BUCKETS
        self.in_flight = [0] * BUCKETS

    def added(self, consumer: Consumer) -> None:
        node = _Node(consumer)
        self.nodes.append(node)
        consumer.on_confirmed = self._confirmed
        assigned = sum(n.assignments for n in self.nodes)
        balanced = math.ceil(assigned / len(self.nodes))
        for other in self.nodes:
            if other is node or other.assignments <= balanced:
                continue
            buckets = [b for b in range(BUCKETS) if self.owner[b] is other]
            buckets.sort(key=lambda b: self.in_flight[b])  # idle buckets move first
            for bucket in buckets[: other.assignments - balanced]:
                self._assign(bucket, node)

    def removed(self, consumer: Consumer) -> None:
        node = next(n for n in self.nodes if n.consumer is consumer)
        self.nodes.remove(node)
        consumer.on_confirmed = None
        for bucket in range(BUCKETS):
            if self.owner[bucket] is node:
                self.owner[bucket] = None
                self.in_flight[bucket] = 0

    def _assign(self, bucket: int, node: _Node) -> None:
        previous = self.owner[bucket]
        if previous is not None:
            previous.assignments -= 1
        self.owner[bucket] = node
        node.assignments += 1

    def push(self, message: Message) -> Push:
        if not any(n.consumer.available > 0 for n in self.nodes):
            return Push.NO_CAPACITY
        bucket = self._bucket(message)
        node = self.owner[bucket]
        if node is None:
            node = min(self.nodes, key=lambda n: n.assignments)
            self._assign(bucket, node)
        if not node.consumer.push(message):
            return Push.SKIPPED
        self.in_flight[bucket] += 1
        return Push.SENT

    def _confirmed(self, consumer: Consumer, message: Message) -> None:
        bucket = self._bucket(message)
        node = self.owner[bucket]
        if node is not None and node.consumer is consumer:
            self.in_flight[bucket] -= 1

    def _bucket(self, message: Message) -> int:
        return zlib.crc32(self.source_of(message).encode()) % BUCKETS

    @staticmethod
    def source_of(message: Message) -> str:
        """The source stream; an unresolved link's is the one its data names."""
        record = message.event or message.link or message.record
        if record.type == LINK_EVENT_TYPE:
            return record.data.decode(errors="replace").partition("@")[2]
        return record.stream


class PinnedByCorrelation(Pinned):
    """Pinned by the ``$correlationId`` in an event's metadata, else by its source stream."""

    name = "PinnedByCorrelation"

    @staticmethod
    def source_of(message: Message) -> str:
        record = message.event or message.link or message.record
        try:
            metadata = json.loads(record.metadata) if record.metadata else None
        except ValueError:
            metadata = None
        if isinstance(metadata, dict):
            correlation = metadata.get("$correlationId")
            if isinstance(correlation, str):
                return correlation
        return Pinned.source_of(message)


def strategy(name: str) -> Strategy:
    kinds: dict[str, type[Strategy]] = {
        "RoundRobin": RoundRobin,
        "DispatchToSingle": DispatchToSingle,
        "Pinned": Pinned,
        "PinnedByCorrelation": PinnedByCorrelation,
    }
    return kinds[name]()
