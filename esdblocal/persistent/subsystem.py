"""Every subscription group of a node, kept where the server keeps them.

The configuration is the last ``$PersistentConfig`` event of ``$persistentSubscriptionConfig``
(``$maxCount`` 2), written after every create, update and delete before the caller hears
"done"; at start-up (and on RestartSubsystem) the groups are built again from it, and each
resumes from the last event of its own checkpoint stream. A clock ticks every second, as
the server's does, to time out messages and checkpoint on time: a message is retried between
``message_timeout`` and ``message_timeout`` + 1 s after it was sent (clients count on that
second: esdbclient batches its acks for up to 0.2 s).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any

from esdblocal.hub import Hub
from esdblocal.persistent.group import Group
from esdblocal.persistent.log import Log
from esdblocal.persistent.settings import (
    Filter,
    InvalidSettings,
    Settings,
    from_entry,
    to_entry,
)
from esdblocal.store import Store

log = logging.getLogger(__name__)

CONFIG_STREAM = "$persistentSubscriptionConfig"
CONFIG_EVENT_TYPE = "$PersistentConfig"
TICK = 1.0


class GroupExists(Exception):
    pass


class GroupNotFound(Exception):
    pass


class Subsystem:
    """Must be built inside the event loop that serves it."""

    def __init__(self, store: Store, hub: Hub, readers: Executor) -> None:
        self.log = Log(store, hub, readers)
        self.groups: dict[str, Group] = {}
        # stream -> its groups in creation order; a stream stays listed once it had one
        self.topics: dict[str, list[Group]] = {}
        self._entries: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._loaded: asyncio.Task[None] = asyncio.ensure_future(self._load())
        self._clock: asyncio.Task[None] = asyncio.ensure_future(self._tick())

    async def ready(self) -> None:
        await asyncio.shield(self._loaded)

    # -------------------------------------------------------------- loading

    async def _load(self) -> None:
        try:
            config = await self.log.last_json(CONFIG_STREAM)
        except RuntimeError:  # stopped before it started
            return
        entries = config.get("entries") if isinstance(config, dict) else None
        self._entries = [e for e in entries or [] if isinstance(e, dict)]
        for entry in self._entries:
            try:
                stream, name, settings, event_filter = from_entry(entry)
            except (KeyError, TypeError, ValueError):
                log.error("unreadable persistent subscription entry %r", entry)
                continue
            self._install(Group(self.log, stream, name, settings, event_filter))
        for group in list(self.groups.values()):  # ready when every group knows its state
            await group.loaded()

    def _install(self, group: Group) -> None:
        self.groups[group.key] = group
        topic = self.topics.setdefault(group.stream, [])
        for index, existing in enumerate(topic):
            if existing.key == group.key:
                topic[index] = group
                break
        else:
            topic.append(group)
        group.start()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for group in list(self.groups.values()):
                try:
                    group.tick(now)
                except Exception:
                    log.exception("persistent subscription %s tick failed", group.key)

    # ------------------------------------------------------------ operations

    def get(self, stream: str, name: str) -> Group | None:
        return self.groups.get(f"{stream}::{name}")

    def all_groups(self) -> Iterator[Group]:
        for stream in sorted(self.topics):
            yield from self.topics[stream]

    def groups_of(self, stream: str) -> list[Group] | None:
        """None when no group was ever made for ``stream`` (the server's NotFound)."""
        return self.topics.get(stream)

    async def create(
        self,
        stream: str,
        name: str,
        settings: Settings,
        event_filter: Filter | None,
        user: str | None,
    ) -> None:
        await self.ready()
        async with self._lock:
            _check_stream(stream)
            settings.validate(stream, self.log.hub.head)
            if self.get(stream, name) is not None:
                raise GroupExists(f"Group '{name}' already exists.")
            group = Group(self.log, stream, name, settings, event_filter)
            self._install(group)
            await group.loaded()
            self._entries.append(to_entry(stream, name, settings, event_filter))
            await self._save(user)

    async def update(self, stream: str, name: str, settings: Settings, user: str | None) -> None:
        """A new group replaces the old one (its consumers are dropped) and carries on from
        the checkpoint; a $all group keeps its filter."""
        await self.ready()
        async with self._lock:
            old = self.get(stream, name)
            if old is None:
                raise GroupNotFound(f"Group '{name}' does not exist.")
            _check_stream(stream)
            settings.validate(stream, self.log.hub.head)
            old.stop()
            await old.settled()
            group = Group(self.log, stream, name, settings, old.filter)
            self._install(group)
            await group.loaded()
            self._replace_entry(stream, name, to_entry(stream, name, settings, old.filter))
            await self._save(user)

    async def delete(self, stream: str, name: str, user: str | None) -> None:
        await self.ready()
        async with self._lock:
            group = self.get(stream, name)
            if group is None:
                raise GroupNotFound(f"Group '{name}' does not exist.")
            group.stop()
            del self.groups[group.key]
            self.topics[stream].remove(group)
            self._replace_entry(stream, name, None)
            await group.settled()
            await self.log.delete(group.checkpoint_stream)
            await self.log.delete(group.parked_stream)
            await self._save(user)

    async def restart(self) -> None:
        """RestartSubsystem: drop every consumer and build the groups again from the log."""
        await self.ready()
        async with self._lock:
            for group in self.groups.values():
                group.stop()
            for group in self.groups.values():
                await group.settled()
            self.groups.clear()
            self.topics.clear()
            self._loaded = asyncio.ensure_future(self._load())
            await self._loaded

    def close(self) -> None:
        self._clock.cancel()
        for group in self.groups.values():
            group.stop()

    def _replace_entry(self, stream: str, name: str, entry: dict[str, Any] | None) -> None:
        for index in range(len(self._entries) - 1, -1, -1):
            existing = self._entries[index]
            if existing.get("stream") == stream and existing.get("group") == name:
                if entry is None:
                    del self._entries[index]
                else:
                    self._entries[index] = entry
                return

    async def _save(self, user: str | None) -> None:
        if await self.log.last(CONFIG_STREAM) is None:
            await self.log.set_metadata(CONFIG_STREAM, {"$maxCount": 2})
        config = {
            "version": "2",
            "updated": datetime.datetime.now().astimezone().isoformat(),
            "updatedBy": user,
            "entries": self._entries,
        }
        await self.log.append_json(CONFIG_STREAM, CONFIG_EVENT_TYPE, config)


def _check_stream(stream: str) -> None:
    if not stream:
        raise InvalidSettings("Bad stream name.")
