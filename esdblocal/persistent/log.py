"""What the groups need of the log: reads on the reader pool, writes through the writer, and
the hub's live events. Everything here is called on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar
from uuid import uuid4

from esdblocal.hub import Hub
from esdblocal.store import (
    ANY,
    Proposed,
    Recorded,
    Store,
    StoreError,
    StreamDeleted,
    StreamNotFound,
    WriteResult,
)

PAGE = 512
JSON = "application/json"
BINARY = "application/octet-stream"
T = TypeVar("T")


class Log:
    def __init__(self, store: Store, hub: Hub, readers: Executor) -> None:
        self.store = store
        self.hub = hub
        self._readers = readers

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, function, *args)

    async def write(
        self, stream: str, events: Sequence[Proposed], expected: int = ANY, kind: str = "append"
    ) -> WriteResult:
        outcome: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self.store.submit(kind, stream, expected, events, outcome)
        return await outcome

    async def append_json(self, stream: str, event_type: str, data: Any) -> WriteResult:
        body = json.dumps(data, separators=(",", ":")).encode()
        return await self.write(stream, [Proposed(str(uuid4()), event_type, JSON, body, b"")])

    async def set_metadata(self, stream: str, metadata: dict[str, Any]) -> None:
        await self.append_json("$$" + stream, "$metadata", metadata)

    async def delete(self, stream: str) -> None:
        """A soft delete with expected version any; a stream that never existed is no error."""
        with contextlib.suppress(StoreError):
            await self.write(stream, (), kind="delete")

    async def stream_page(
        self, stream: str, revision: int | None, backwards: bool, count: int
    ) -> list[Recorded]:
        """Events of a stream as a read shows them; none when it is missing or deleted."""
        try:
            return await self.run(self.store.read_stream, stream, revision, backwards, count)
        except (StreamNotFound, StreamDeleted):
            return []

    async def last(self, stream: str) -> Recorded | None:
        page = await self.stream_page(stream, None, True, 1)
        return page[0] if page else None

    async def last_json(self, stream: str) -> Any:
        """The data of a stream's last event, parsed; None when none or not JSON."""
        record = await self.last(stream)
        if record is None:
            return None
        try:
            return json.loads(record.data)
        except ValueError:
            return None

    async def after(self, position: int, count: int = PAGE) -> list[Recorded]:
        """The next events in the log after ``position``: from the hub if it still has them."""
        if self.hub.covers(position):
            return self.hub.after(position, count)
        return await self.run(self.store.read_all, position + 1, False, count)

    async def resolve(self, link: Recorded) -> Recorded | None:
        """The event a ``$>`` link (``"N@stream"``) points to; None when it is gone."""
        revision, _, stream = link.data.decode(errors="replace").partition("@")
        try:
            number = int(revision)
        except ValueError:
            return None
        return await self.run(self.store.read_event, stream, number)
