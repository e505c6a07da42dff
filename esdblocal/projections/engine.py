"""Running projections: each one a task reading ``$all`` after its checkpoint.

A runner takes the events committed after its position (from the hub while it still holds
them, else from the log), asks its processor what they emit, and hands the emitted events
and its new position to the writer as one request: they commit in one transaction, so after
a crash (``kill -9`` included) a projection resumes exactly where its output ends, with
nothing missing and nothing written twice. The runner waits for that write before it looks
at the next page, and its request joins the group commit of whatever clients are appending
at the time.

The real server also writes a ``$ProjectionCheckpoint`` event to
``$projections-<name>-checkpoint`` every so many handled events; so does this, for the people
and tools that read it, but resuming relies on the transactional checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Protocol
from uuid import uuid4

from esdblocal.hub import Hub
from esdblocal.store import Emitted, Proposed, Recorded, Store, WriteResult

log = logging.getLogger("esdblocal.projections")

PAGE = 2048
# ProjectionConfig's defaults: a checkpoint after 4000 handled events.
CHECKPOINT_HANDLED_THRESHOLD = 4000
# Rewrite the (invisible) position after this many events that emitted nothing, so a
# restart does not rescan far.
UNHANDLED_THRESHOLD = 10_000
CHECKPOINT_TYPE = "$ProjectionCheckpoint"


class Faulted(Exception):
    """A processor's failure: the projection stops with this reason."""


class Processor(Protocol):
    def process(self, record: Recorded) -> list[Emitted]:
        """What ``record`` emits (raise to fault the projection)."""

    def checkpoint_events(self, position: int) -> list[Emitted]:
        """The visible checkpoints written every so often."""


Submit = Callable[[Sequence[Emitted], dict[str, int]], Awaitable[WriteResult]]


class Runner:
    """One projection in motion: Running, Stopped or Faulted."""

    def __init__(
        self,
        name: str,
        store: Store,
        hub: Hub,
        readers: Executor,
        processor: Processor,
        submit: Submit,
        on_fault: Callable[[str], None] | None = None,
        stop_when_caught_up: bool = False,
        worker: Executor | None = None,
        checkpoint_names: Sequence[str] | None = None,
    ) -> None:
        """``worker``: a thread to run the processor on (JavaScript must not hold up the
        loop); None runs it on the loop (the system projections are quick)."""
        self.name = name
        self._store = store
        self._hub = hub
        self._readers = readers
        self.processor = processor
        self._submit = submit
        self._on_fault = on_fault
        self._stop_when_caught_up = stop_when_caught_up
        self._worker = worker
        # The checkpoints this runner keeps (several when one pass serves several
        # projections); it starts after the earliest.
        self._names = list(checkpoint_names or [name])
        self._inflight: asyncio.Future[WriteResult] | None = None
        self.completed = False
        self._task: asyncio.Task[None] | None = None
        self.status = "Stopped"
        self.reason = ""
        self.position = -1
        self.events_processed_after_restart = 0
        self.last_checkpoint = -1
        self._handled_since_checkpoint = 0
        self._caught_up = asyncio.Event()
        self.started_at = time.monotonic()

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self.status = "Running"
        self.reason = ""
        self.events_processed_after_restart = 0
        self._caught_up = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            with contextlib.suppress(Exception):
                await inflight
        if self.status == "Running":
            self.status = "Stopped"

    async def wait_caught_up(self) -> None:
        await self._caught_up.wait()

    async def _read_after(self, position: int) -> list[Recorded]:
        if self._hub.covers(position):
            return self._hub.after(position, PAGE)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._readers, self._store.read_all, position + 1, False, PAGE
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        starts = [
            await loop.run_in_executor(self._readers, self._store.checkpoint, name)
            for name in self._names
        ]
        last = min(-1 if start is None else start for start in starts)
        self.position = last
        unhandled = 0
        try:
            while True:
                changed = self._hub.changed
                page = await self._read_after(last)
                if not page:
                    self._caught_up.set()
                    if self._stop_when_caught_up:
                        self.completed = True
                        self.status = "Stopped"
                        return
                    await changed.wait()
                    continue
                if self._worker is not None:
                    outcome = await loop.run_in_executor(self._worker, self._process, page)
                else:
                    outcome = self._process(page)
                emitted, processed, handled, failure = outcome
                self._handled_since_checkpoint += handled
                self.events_processed_after_restart += handled
                if processed:
                    last = processed
                if failure is not None:
                    if emitted:
                        await self._write(emitted, last)
                    self.position = last
                    await self._fault(*failure)
                    return
                if self._handled_since_checkpoint >= CHECKPOINT_HANDLED_THRESHOLD:
                    emitted.extend(self.processor.checkpoint_events(last))
                    self._handled_since_checkpoint = 0
                    self.last_checkpoint = last
                unhandled += len(page)
                if emitted or unhandled >= UNHANDLED_THRESHOLD:
                    await self._write(emitted, last)
                    unhandled = 0
                self.position = last
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the log failed under us: stop, say why
            await self._fault(error, None)

    async def _write(self, emitted: list[Emitted], last: int) -> None:
        """Submit output and checkpoints; a stop waits for a write in flight to land, so
        whoever starts the projection again reads the checkpoint that goes with it."""
        self._inflight = asyncio.ensure_future(
            self._submit(emitted, dict.fromkeys(self._names, last))
        )
        await asyncio.shield(self._inflight)

    def _process(
        self, page: list[Recorded]
    ) -> tuple[list[Emitted], int, int, tuple[Exception, Recorded] | None]:
        """Emitted events, the position reached, how many events emitted, and a failure."""
        process_page = getattr(self.processor, "process_page", None)
        if process_page is not None:  # the system group: the whole page in one pass
            result: tuple[list[Emitted], int, int, tuple[Exception, Recorded] | None]
            result = process_page(page)
            return result
        emitted: list[Emitted] = []
        handled = 0
        last = 0
        for record in page:
            try:
                out = self.processor.process(record)
            except Exception as error:  # the projection's own code failed
                return emitted, last, handled, (error, record)
            if out:
                emitted.extend(out)
                handled += 1
            last = record.position
        return emitted, last, handled, None

    async def _fault(self, error: BaseException, record: Recorded | None) -> None:
        where = f" at {record.revision}@{record.stream}" if record is not None else ""
        self.status = "Faulted"
        self.reason = f"{error}{where}"
        log.warning("projection %s faulted: %s", self.name, self.reason)
        self._caught_up.set()
        if self._on_fault is not None:
            self._on_fault(self.reason)


def checkpoint_event(name: str, version: str, position: int, data: bytes | None = None) -> Emitted:
    """``$ProjectionCheckpoint`` in ``$projections-<name>-checkpoint``."""
    tag = f'"$c":{position},"$p":{position}'
    body = data if data is not None else ("{" + tag + "}").encode()
    metadata = ('{"$v":"' + version + '",' + tag + "}").encode()
    event = Proposed(str(uuid4()), CHECKPOINT_TYPE, "application/json", body, metadata)
    return Emitted(f"$projections-{name}-checkpoint", event, b'{"$acl":{"$r":"$all","$mr":"$all"}}')


def make_submit(store: Store) -> Submit:
    """A coroutine writing emitted events with checkpoints through the log's writer."""

    async def submit(emitted: Sequence[Emitted], checkpoints: dict[str, int]) -> WriteResult:
        outcome: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        store.submit_emitted(emitted, checkpoints, outcome)
        return await outcome

    return submit


__all__ = ["Faulted", "Processor", "Runner", "checkpoint_event", "make_submit"]
