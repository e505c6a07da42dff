"""One subscription group: reads its source, hands messages to consumers, retries, parks,
and checkpoints. It follows the server's ``PersistentSubscription`` class.

Messages flow from the source (a stream by revision, or $all by position through the
group's filter) into a buffer, to consumers chosen by the strategy, and stay *outstanding*
until acknowledged. A nack with retry, a timeout or a consumer leaving puts a message in the
retry buffer (delivered before new ones) with its retry count raised; past
``max_retry_count`` it is parked: a ``$>`` link written to the group's parked stream, from
which ReplayParked brings it back.

Checkpoints follow ``TryMarkCheckpoint``: every message pushed gets a sequence number and
remembers the position before it; the checkpoint may stand at the position just before the
lowest unacknowledged message (outstanding, waiting to be retried, or being parked), and is
written when ``max_checkpoint_count`` messages were completed since the last one, or, on the
timer, after ``checkpoint_after`` once ``min_checkpoint_count`` were. A restarted group reads
from just after its checkpoint, so nothing unacknowledged is ever skipped.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from esdblocal.persistent.consumers import (
    LINK_EVENT_TYPE,
    Consumer,
    Dropped,
    Message,
    Push,
    strategy,
)
from esdblocal.persistent.log import BINARY, PAGE, Log
from esdblocal.persistent.settings import ALL, Filter, Settings, default_all_filter
from esdblocal.store import Proposed, Recorded

log = logging.getLogger(__name__)

CHECKPOINT_EVENT_TYPE = "$SubscriptionCheckpoint"
# The ACLs the server puts on a group's checkpoint and parked streams.
CHECKPOINT_METADATA: dict[str, Any] = {
    "$maxCount": 2,
    "$acl": {"$r": "$admins", "$w": "$admins", "$d": "$admins", "$mr": "$all", "$mw": "$admins"},
}
BOOKKEEPING = "$persistentsubscription-"
PARKED_ACL = {"$r": "$admins", "$w": "$admins", "$d": "$admins", "$mr": "$admins", "$mw": "$admins"}


class Group:
    def __init__(
        self, log_: Log, stream: str, name: str, settings: Settings, event_filter: Filter | None
    ) -> None:
        self.log = log_
        self.stream = stream
        self.name = name
        self.settings = settings
        self.filter = event_filter
        self.key = f"{stream}::{name}"
        self.checkpoint_stream = f"$persistentsubscription-{self.key}-checkpoint"
        self.parked_stream = f"$persistentsubscription-{self.key}-parked"
        self.strategy = strategy(settings.consumer_strategy)
        self.consumers: list[Consumer] = []
        self.buffer: deque[Message] = deque()
        self.retry: deque[Message] = deque()
        self.outstanding: dict[str, tuple[Message, float]] = {}
        self.parking: dict[str, Message] = {}
        self.ready = False
        self.live = False
        self.replaying = False
        self.closed = False
        # sequence bookkeeping (PersistentSubscription's fields of the same names)
        self.next_seq = 0
        self.last_checkpointed_seq = -1
        self.last_known_seq = -1
        self.last_known_position: int | None = None
        self.last_checkpoint_time = float("-inf")
        self._checkpoint_writing = False
        self._checkpoint_stream_exists = False
        # statistics
        self.total_items = 0
        self.last_checkpointed: int | None = None
        self.last_known_event: int | None = None
        self.parked_first = 0  # the parked stream's $tb
        self.parked_last = -1
        self._last_stats = (time.monotonic(), 0)
        self._space = asyncio.Event()
        self._loaded = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._feeder: asyncio.Task[None] | None = None
        allowed = event_filter.compile() if event_filter is not None else None
        self._allowed: Callable[[Recorded], bool] = (
            (lambda r: default_all_filter(r) and allowed(r))
            if allowed is not None
            else default_all_filter
        )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._feeder = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        """Shut down (updated, deleted, restarted): every consumer is dropped."""
        self.closed = True
        if self._feeder is not None:
            self._feeder.cancel()
        for consumer in list(self.consumers):
            self.remove(consumer)
            consumer.outbox.put_nowait(Dropped())

    async def settled(self) -> None:
        """Wait for the writes this group started (checkpoints, parks) to finish."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def loaded(self) -> None:
        """Until the group knows where it starts (create answers only then, so that "the
        end" is the end when the client hears the group exists)."""
        await self._loaded.wait()

    async def _run(self) -> None:
        try:
            source = await self._load()
            self.ready = True
            self._loaded.set()
            await self._feed(source)
        except asyncio.CancelledError:
            raise
        except RuntimeError:  # the node is stopping: the log or its readers are closed
            pass
        except Exception:
            log.exception("persistent subscription %s failed", self.key)
        finally:
            self._loaded.set()

    async def _load(self) -> _Source:
        """Checkpoint and parked-message state, then where to read from."""
        checkpoint = await self.log.last_json(self.checkpoint_stream)
        self._checkpoint_stream_exists = await self.log.last(self.checkpoint_stream) is not None
        parked_meta = await self.log.last_json("$$" + self.parked_stream)
        if isinstance(parked_meta, dict) and isinstance(parked_meta.get("$tb"), int):
            self.parked_first = parked_meta["$tb"]
        last_parked = await self.log.last(self.parked_stream)
        self.parked_last = last_parked.revision if last_parked is not None else -1
        if isinstance(checkpoint, str):
            position = self._parse_position(checkpoint)
            self.next_seq = 1
            self.last_checkpointed_seq = 0
            self.last_known_seq = 0
            self.last_known_position = position
            self.last_checkpointed = position
            return self._source(position, inclusive=False)
        start = self.settings.start
        if not start.is_end(self.stream):
            first = start.commit if self.stream == ALL else start.revision
            return self._source(first, inclusive=True)
        # From the end: whatever is there now is behind us. The position is written as the
        # first checkpoint, so that a restart does not move "the end" past unacked events.
        if self.stream == ALL:
            end = self.log.hub.head
        else:
            last = await self.log.last(self.stream)
            end = last.revision if last is not None else -1
        if end >= 0:
            self.next_seq = 1
            self.last_checkpointed_seq = 0
            self.last_known_seq = 0
            self.last_known_position = end
            self._write_checkpoint(end)
        return self._source(end, inclusive=False)

    def _parse_position(self, checkpoint: str) -> int:
        if self.stream == ALL:
            return int(checkpoint.partition("/")[0].removeprefix("C:"))
        return int(checkpoint)

    def position_text(self, position: int | None) -> str:
        if position is None:
            return ""
        return f"C:{position}/P:{position}" if self.stream == ALL else str(position)

    def _source(self, position: int, inclusive: bool) -> _Source:
        if self.stream == ALL:
            return _AllSource(self.log, position - 1 if inclusive else position, self._allowed)
        return _StreamSource(self.log, self.stream, position if inclusive else position + 1)

    # --------------------------------------------------------------- reading

    def _capacity(self) -> int:
        size = self.settings.live_buffer_size if self.live else self.settings.history_buffer_size
        return max(size, self.settings.read_batch_size, 1) - len(self.buffer)

    async def _feed(self, source: _Source) -> None:
        batch = max(self.settings.read_batch_size, 1)
        while not self.closed:
            if self._capacity() < batch and self.buffer:
                self._space.clear()
                await self._space.wait()
                continue
            changed = self.log.hub.changed
            records, skipped, at_end = await source.read(batch)
            for record in records:
                self.buffer.append(await self._message(record, source.position_of(record)))
                self.last_known_event = source.position_of(record)
            if skipped is not None and not records and not self.buffer and not self.retry:
                self._skipped(*skipped)
            self.live = at_end
            self._push()
            if at_end and not records:
                await source.wait(changed)

    async def _message(self, record: Recorded, position: int | None) -> Message:
        if self.settings.resolve_links and record.type == LINK_EVENT_TYPE:
            return Message(record, await self.log.resolve(record), record, position)
        return Message(record, record, None, position)

    def _skipped(self, position: int, count: int) -> None:
        """Filtered-out events still move the checkpoint on (``HandleSkippedEvents``)."""
        self.last_known_position = position
        self.next_seq += count
        self.last_known_seq = self.next_seq - 1
        self._mark_checkpoint(False)

    # --------------------------------------------------------------- pushing

    def add(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.strategy.added(consumer)
        self._push()

    def remove(self, consumer: Consumer) -> None:
        """A consumer left: what it had not acknowledged is retried (by position)."""
        if consumer not in self.consumers:
            return
        self.consumers.remove(consumer)
        self.strategy.removed(consumer)
        lost = sorted(consumer.unconfirmed.values(), key=lambda m: m.position or 0)
        for message in lost:
            self._retry(message)
        self._push()

    @property
    def full(self) -> bool:
        limit = self.settings.max_subscriber_count
        return limit != 0 and len(self.consumers) >= limit

    def _push(self) -> None:
        if not self.consumers or self.closed:
            return
        if self._push_from(self.retry):
            self._push_from(self.buffer)
        if self._capacity() >= max(self.settings.read_batch_size, 1):
            self._space.set()

    def _push_from(self, queue: deque[Message]) -> bool:
        """Push in order; False when no consumer has room."""
        skipped: list[Message] = []
        room = True
        while queue:
            message = queue[0]
            new = not message.replayed and message.seq is None
            if new:
                message.seq = self.next_seq
                message.previous = self.last_known_position
            result = self.strategy.push(message)
            if result is Push.SENT:
                queue.popleft()
                if new:
                    self.next_seq += 1
                self._begin(message)
                continue
            if new:
                message.seq = None
                message.previous = None
            if result is Push.SKIPPED:
                skipped.append(queue.popleft())
                continue
            room = False
            break
        queue.extendleft(reversed(skipped))
        return room

    def _begin(self, message: Message) -> None:
        self.total_items += 1
        if message.seq is not None and message.seq > self.last_known_seq:
            self.last_known_seq = message.seq
            self.last_known_position = message.position
        if message.event_id not in self.outstanding:  # a duplicate id is delivered, not tracked
            timeout = self.settings.message_timeout_ms / 1000
            self.outstanding[message.event_id] = (message, time.monotonic() + timeout)

    # ------------------------------------------------------- acks and nacks

    def ack(self, event_ids: Iterable[str]) -> None:
        ids = list(event_ids)
        self._confirm(ids)
        for event_id in ids:
            self.outstanding.pop(event_id, None)
        self._mark_checkpoint(False)
        self._push()

    def nack(self, action: str, event_ids: Iterable[str], reason: str) -> None:
        """``action``: retry, unknown, park, skip or stop (which, as on the server, only
        forgets the message: "TODO CC Stop subscription?")."""
        ids = list(event_ids)
        for event_id in ids:
            entry = self.outstanding.get(event_id)
            if entry is None:
                continue
            message = entry[0]
            if action in ("retry", "unknown"):
                if not self._parked_for_retries(message):
                    self._retry(message)
            elif action == "park":
                self._park(message, "Client explicitly NAK'ed message.\n" + reason)
        self._confirm(ids)
        for event_id in ids:
            self.outstanding.pop(event_id, None)
        self._mark_checkpoint(False)
        self._push()

    def _confirm(self, event_ids: list[str]) -> None:
        for consumer in self.consumers:
            if consumer.unconfirmed:
                consumer.confirm(event_ids)

    def _retry(self, message: Message) -> None:
        self.outstanding.pop(message.event_id, None)
        self._confirm([message.event_id])
        message.retry_count += 1
        self.retry.append(message)

    def _parked_for_retries(self, message: Message) -> bool:
        if message.retry_count < self.settings.max_retry_count:
            return False
        self._park(message, f"Reached retry count of {self.settings.max_retry_count}")
        return True

    def tick(self, now: float) -> None:
        """The server's clock tick: time out messages, push, and checkpoint on time."""
        if not self.ready or self.closed:
            return
        expired = [m for m, deadline in self.outstanding.values() if deadline <= now]
        for message in expired:
            if not self._parked_for_retries(message):
                self._retry(message)
        self._push()
        self._mark_checkpoint(True)

    # ---------------------------------------------------------------- parking

    def _park(self, message: Message, reason: str) -> None:
        """Keep it out of reach of the checkpoint until the parked link is written."""
        self.outstanding.pop(message.event_id, None)
        self._confirm([message.event_id])
        self.parking[message.event_id] = message
        self._spawn(self._write_parked(message, reason))

    async def _write_parked(self, message: Message, reason: str) -> None:
        event = message.event
        if event is not None:
            data = f"{event.revision}@{event.stream}".encode()
        else:  # an unresolved link: keep its own data
            data = (message.link or message.record).data
        original = message.record.revision
        metadata = {
            "added": datetime.datetime.now().astimezone().isoformat(),
            "reason": reason,
            "subscriptionEventNumber": original,
        }
        body = json.dumps(metadata, separators=(",", ":")).encode()
        link = Proposed(str(uuid.uuid4()), LINK_EVENT_TYPE, BINARY, data, body)
        try:
            result = await self.log.write(self.parked_stream, [link])
            self.parked_last = result.current_revision
        finally:
            self.parking.pop(message.event_id, None)
        self._mark_checkpoint(False)
        self._push()

    @property
    def parked_count(self) -> int:
        return max(0, self.parked_last - self.parked_first + 1)

    def replay_parked(self, stop_at: int | None) -> None:
        if not self.ready or self.replaying:
            return
        self.replaying = True
        self._spawn(self._replay(stop_at))

    async def _replay(self, stop_at: int | None) -> None:
        try:
            last = await self.log.last(self.parked_stream)
            if last is None:
                return
            stop = last.revision + 1 if stop_at is None else min(stop_at, last.revision + 1)
            revision: int | None = None
            while True:
                page = await self.log.stream_page(self.parked_stream, revision, False, PAGE)
                for record in page:
                    if record.revision >= stop:
                        break
                    target = await self.log.resolve(record)
                    if target is not None:
                        self.retry.append(Message(record, target, record, None, replayed=True))
                if not page or page[-1].revision + 1 >= stop or len(page) < PAGE:
                    break
                revision = page[-1].revision + 1
            self._push()
            await self.log.set_metadata(self.parked_stream, {"$tb": stop, "$acl": PARKED_ACL})
            self.parked_first = stop
        finally:
            self.replaying = False

    # ------------------------------------------------------------ checkpoints

    def _mark_checkpoint(self, on_time: bool) -> None:
        if not self.ready:
            return
        settings = self.settings
        after = settings.checkpoint_after_ms / 1000 if settings.checkpoint_after_ms else None
        now = time.monotonic()
        too_soon = after is None or now - self.last_checkpoint_time < after
        # Cheap bounds first: the lowest sequence can only be at or below the last known.
        most = self.last_known_seq - self.last_checkpointed_seq
        if most < settings.max_checkpoint_count and (too_soon or not on_time):
            return
        lowest: Message | None = None
        pending: Iterable[Message] = (
            *(m for m, _ in self.outstanding.values()),
            *self.retry,
            *self.parking.values(),
        )
        for message in pending:
            if message.seq is not None and (lowest is None or message.seq < lowest.seq):  # type: ignore[operator]
                lowest = message
        if lowest is not None:
            assert lowest.seq is not None
            sequence = lowest.seq - 1
            position = lowest.previous
            if position is None:
                return
        else:
            sequence = self.last_known_seq
            position = self.last_known_position
        if sequence < 0 or position is None:
            return
        difference = sequence - self.last_checkpointed_seq
        if too_soon and difference < settings.max_checkpoint_count:
            return
        if (difference >= settings.min_checkpoint_count and on_time) or (
            difference >= settings.max_checkpoint_count
        ):
            # A message a pinned strategy passed over is still in the buffer, behind messages
            # pushed after it: the checkpoint stays before it (the sequence numbers alone,
            # as on the server, would let it pass).
            first = self.buffer[0].position if self.buffer else None
            if first is not None and first <= position:
                position = first - 1
            if self._checkpoint_writing or position < 0 or position == self.last_checkpointed:
                return
            self.last_checkpoint_time = now
            self.last_checkpointed_seq = sequence
            self._write_checkpoint(position)

    def _write_checkpoint(self, position: int) -> None:
        self._checkpoint_writing = True
        self._spawn(self._checkpoint(position))

    async def _checkpoint(self, position: int) -> None:
        try:
            if not self._checkpoint_stream_exists:
                await self.log.set_metadata(self.checkpoint_stream, CHECKPOINT_METADATA)
                self._checkpoint_stream_exists = True
            text = self.position_text(position)
            await self.log.append_json(self.checkpoint_stream, CHECKPOINT_EVENT_TYPE, text)
            self.last_checkpointed = position
        finally:
            self._checkpoint_writing = False

    # ------------------------------------------------------------- statistics

    @property
    def status(self) -> str:
        """PersistentSubscriptionState's flags as .NET prints them."""
        if not self.ready:
            return "NotReady"
        flags = ["Live" if self.live else "Behind"]
        if self.replaying:
            flags.insert(0 if self.live else 1, "ReplayingParkedMessages")
        return ", ".join(flags)

    def measure(self) -> tuple[float, int, int]:
        """(seconds since the last measurement, items then, items now); starts a new one."""
        now = time.monotonic()
        then, items = self._last_stats
        self._last_stats = (now, self.total_items)
        return now - then, items, self.total_items


class _Source:
    async def read(self, count: int) -> tuple[list[Recorded], tuple[int, int] | None, bool]:
        """Up to ``count`` events; (position, count) of events filtered out after the last
        one returned; True when the end of the log was reached."""
        raise NotImplementedError

    async def wait(self, changed: asyncio.Event) -> None:
        raise NotImplementedError

    def position_of(self, record: Recorded) -> int:
        raise NotImplementedError


class _StreamSource(_Source):
    """A stream, by revision, read page by page; the hub says when it has grown."""

    def __init__(self, log_: Log, stream: str, revision: int) -> None:
        self._log = log_
        self._stream = stream
        self._next = max(revision, 0)
        self._seen = log_.hub.head

    def position_of(self, record: Recorded) -> int:
        return record.revision

    async def read(self, count: int) -> tuple[list[Recorded], tuple[int, int] | None, bool]:
        self._seen = self._log.hub.head
        page = await self._log.stream_page(self._stream, self._next, False, count)
        if page:
            self._next = page[-1].revision + 1
        return page, None, len(page) < count

    async def wait(self, changed: asyncio.Event) -> None:
        hub = self._log.hub
        while True:
            if not hub.covers(self._seen):
                return
            page = hub.after(self._seen, PAGE)
            for record in page:
                if record.stream == self._stream and record.revision >= self._next:
                    return
            if page:
                self._seen = page[-1].position
                continue
            await changed.wait()
            changed = hub.changed


class _AllSource(_Source):
    """$all after a position, through the group's filter."""

    def __init__(self, log_: Log, after: int, allowed: Callable[[Recorded], bool]) -> None:
        self._log = log_
        self._last = after
        self._allowed = allowed

    def position_of(self, record: Recorded) -> int:
        return record.position

    async def read(self, count: int) -> tuple[list[Recorded], tuple[int, int] | None, bool]:
        found: list[Recorded] = []
        skipped = 0
        for _ in range(8):  # a bounded scan, so that a narrow filter still yields the loop
            page = await self._log.after(self._last, PAGE)
            for record in page:
                self._last = record.position
                if self._allowed(record):
                    found.append(record)
                    skipped = 0
                    if len(found) == count:
                        return found, None, False
                elif not record.stream.removeprefix("$$").startswith(BOOKKEEPING):
                    # (counting the groups' own checkpoints would make each one due another)
                    skipped += 1
            if len(page) < PAGE:
                return found, (self._last, skipped) if skipped else None, True
        return found, (self._last, skipped) if skipped else None, False

    async def wait(self, changed: asyncio.Event) -> None:
        if self._log.hub.head <= self._last:
            await changed.wait()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, RuntimeError):
        log.error("persistent subscription write failed", exc_info=error)
