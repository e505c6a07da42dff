"""The projection subsystem: which projections exist, run, and what they say about themselves.

``--run-projections`` decides what runs: ``None`` (no subsystem: the Projections service
answers UNIMPLEMENTED, as a node without the subsystem), ``System`` (the five system
projections; user projections can be created but do not run) or ``All``. The system
projections start enabled with ``--start-standard-projections``; enabling or disabling one
over gRPC is remembered in ``$projections-<name>`` as the real server remembers it.

User projections are registered in ``$projections-$all`` (``$ProjectionCreated`` /
``$ProjectionDeleted``) and keep their definition in ``$projections-<name>``
(``$ProjectionUpdated``); their state, emitted streams and position in
``$projections-<name>-checkpoint``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from esdblocal.hub import Hub
from esdblocal.projections import system
from esdblocal.projections.engine import (
    Faulted,
    Runner,
    checkpoint_event,
    make_submit,
)
from esdblocal.store import (
    ANY,
    Emitted,
    Proposed,
    Recorded,
    Store,
    StreamDeleted,
    StreamNotFound,
    WriteResult,
)

LINK, BINARY, STREAM_REFERENCE = system.LINK, system.BINARY, system.STREAM_REFERENCE
JSON, SYSTEM_STREAM_ACL = system.JSON, system.SYSTEM_STREAM_ACL
_TAG_1, _TAG_2, _TAG_3, _TAG_4 = (system.tag_start(i) for i in (1, 2, 3, 4))
# tuple.__new__ with every field given: a NamedTuple's own __new__ costs more per call.
_new_emitted = _new_proposed = tuple.__new__

RUN_NONE, RUN_SYSTEM, RUN_ALL = "None", "System", "All"
RUN_MODES = (RUN_NONE, RUN_SYSTEM, RUN_ALL)
REGISTRATION_STREAM = "$projections-$all"
CONTINUOUS, ONE_TIME, TRANSIENT = "Continuous", "OneTime", "Transient"
# User projection ids follow the system projections' 1-5 ($ProjectionsInitialized is 0).
FIRST_USER_ID = 6


class ProjectionError(Exception):
    """A refused management call; ``kind`` is what the real server's envelope reports."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind}: {name}")
        self.kind = kind  # "NotFound" | "Conflict" | "OperationFailed" | "Invalid"
        self.name = name


class SystemGroup:
    """The enabled system projections in one pass over each page: the shared checks once
    per event, each handler only for events after its own checkpoint, one write for all."""

    def __init__(self, members: dict[str, tuple[system.SystemProjection, int]]) -> None:
        self.members = members  # name -> (projection, position it has durably processed)
        self.handled: dict[str, int] = dict.fromkeys(members, 0)
        # (name, projection id, position it has processed) for the fast path.
        self._plain = [(name, p.projection_id, after) for name, (p, after) in members.items()]
        # process_page's fast path: events after every member's checkpoint, members in order.
        self._fast_after = max((after for _, _, after in self._plain), default=-1)
        self._order = [projection_id for _, projection_id, _ in self._plain]
        self._as_is: dict[str, bool] = {}
        self._categories: dict[str, tuple[int, str, str]] = {}

    def process(self, record: Recorded) -> list[Emitted]:
        stream = record.stream
        if stream[:1] == "$" and stream[:2] != "$$":
            return []  # the common case under load: the projections' own links
        if not system.passes_source(record) or not system.valid_content(record):
            return []
        if system.plain(record):
            return self._process_plain(record)
        out: list[Emitted] = []
        link = record.type == system.LINK
        for name, (projection, after) in self.members.items():
            if record.position <= after or (link and not projection.include_links):
                continue
            emitted = projection.handle(record)
            if emitted:
                self.handled[name] += 1
                out.extend(emitted)
        return out

    def process_page(
        self, page: list[Recorded]
    ) -> tuple[list[Emitted], int, int, tuple[Exception, Recorded] | None]:
        """``Runner._process`` for the group: what the page emits, the position reached,
        how many events emitted, and a failure. Plain events past every member's
        checkpoint (nearly all of them under load) are linked inline, the same bytes in
        the same order as ``process``; every other event goes through ``process``."""
        emitted: list[Emitted] = []
        handled = 0
        last = 0
        fast_after = self._fast_after
        order = self._order
        counts = dict.fromkeys(order, 0)
        ids = system.id_source()
        as_is = self._as_is
        categories = self._categories
        valid_json = system.valid_json
        link, binary, reference, acl = LINK, BINARY, STREAM_REFERENCE, SYSTEM_STREAM_ACL
        new_emitted, new_proposed = _new_emitted, _new_proposed
        for record in page:
            stream = record.stream
            position = record.position
            if stream[:1] == "$" and stream[:2] != "$$":
                last = position  # the projections' own links and system streams
                continue
            event_type = record.type
            event_id = record.event_id
            if (
                position <= fast_after
                or stream[:1] == "$"
                or event_type == link
                or event_type == "$streamDeleted"
                or b"$correlationId" in record.metadata
                or not (as_is.get(stream) or self._check(stream))
                or not (as_is.get(event_type) or self._check(event_type))
                or not system.as_is(event_id)
            ):
                try:
                    out = self.process(record)
                except Exception as error:  # the projection's own code failed
                    self._count(counts)
                    return emitted, last, handled, (error, record)
                if out:
                    emitted.extend(out)
                    handled += 1
                last = position
                continue
            last = position
            if record.content_type == JSON and not valid_json(record.data):
                continue
            revision = record.revision
            names = categories.get(stream)
            if names is None:
                names = self._names_of(stream)
            index, ce_stream, origin = names
            target = f"{revision}@{stream}".encode()
            tag = f'{position},"$p":{position}'
            tail = f',"$causedBy":"{event_id}"}}'
            before = len(emitted)
            for projection_id in order:
                if projection_id == 3:  # $by_category
                    if index <= 0:
                        continue
                    meta = f"{_TAG_3}{tag}{origin}{tail}".encode()
                    event = new_proposed(Proposed, (ids(), link, binary, target, meta))
                    emitted.append(new_emitted(Emitted, (ce_stream, event, acl, False)))
                elif projection_id == 4:  # $by_event_type
                    meta = f"{_TAG_4}{tag}{tail}".encode()
                    event = new_proposed(Proposed, (ids(), link, binary, target, meta))
                    emitted.append(new_emitted(Emitted, (f"$et-{event_type}", event, acl, False)))
                elif revision != 0:  # $streams and $stream_by_category: first events only
                    continue
                elif projection_id == 1:  # $streams
                    meta = f"{_TAG_1}{tag}{tail}".encode()
                    event = new_proposed(Proposed, (ids(), link, binary, target, meta))
                    emitted.append(new_emitted(Emitted, (system.STREAMS, event, acl, False)))
                elif projection_id == 2 and index > 0:  # $stream_by_category
                    meta = f"{_TAG_2}{tag}{tail}".encode()
                    data = stream.encode()
                    event = new_proposed(Proposed, (ids(), reference, binary, data, meta))
                    category = f"$category-{stream[:index]}"
                    emitted.append(new_emitted(Emitted, (category, event, acl, False)))
                else:  # $by_correlation_id: a plain event has no $correlationId
                    continue
                counts[projection_id] += 1
            if len(emitted) > before:
                handled += 1
        self._count(counts)
        return emitted, last, handled, None

    def _names_of(self, stream: str) -> tuple[int, str, str]:
        """The category separator's index, the ``$ce-`` stream and the ``$o`` entry of the
        metadata, for a stream whose name JSON writes as it is (remembered)."""
        index = stream.find("-")
        names = (index, f"$ce-{stream[:index]}", f',"$o":"{stream}"')
        if len(self._categories) > 10_000:
            self._categories.clear()
        self._categories[stream] = names
        return names

    def _check(self, text: str) -> bool:
        """Whether JSON writes ``text`` as it is (remembered for stream names and types)."""
        ok = system.as_is(text)
        if ok:
            if len(self._as_is) > 10_000:
                self._as_is.clear()
            self._as_is[text] = True
        return ok

    def _count(self, counts: dict[int, int]) -> None:
        for name, projection_id, _ in self._plain:
            self.handled[name] += counts.get(projection_id, 0)

    def _process_plain(self, record: Recorded) -> list[Emitted]:
        """What the handlers emit for a plain event (see ``system.plain``), built here in
        one go: the same bytes as the handlers' (a test holds them to it), at a fraction
        of the cost, since every event a client writes takes this path."""
        out: list[Emitted] = []
        stream, revision, position = record.stream, record.revision, record.position
        index = stream.find("-")
        category = stream[:index] if index > 0 else None
        tail = f',"$causedBy":"{record.event_id}"}}'
        target = f"{revision}@{stream}".encode()
        new_id = system.new_id
        for name, projection_id, after in self._plain:
            if position <= after:
                continue
            tag = f'{system.tag_start(projection_id)}{position},"$p":{position}'
            if projection_id == 3:  # $by_category
                if category is None:
                    continue
                event = Proposed(
                    new_id(),
                    system.LINK,
                    system.BINARY,
                    target,
                    f'{tag},"$o":"{stream}"{tail}'.encode(),
                )
                out.append(Emitted(f"$ce-{category}", event, system.SYSTEM_STREAM_ACL))
            elif projection_id == 4:  # $by_event_type
                meta = f"{tag}{tail}".encode()
                event = Proposed(new_id(), system.LINK, system.BINARY, target, meta)
                out.append(Emitted(f"$et-{record.type}", event, system.SYSTEM_STREAM_ACL))
            elif projection_id == 1 and revision == 0:  # $streams
                meta = f"{tag}{tail}".encode()
                event = Proposed(new_id(), system.LINK, system.BINARY, target, meta)
                out.append(Emitted(system.STREAMS, event, system.SYSTEM_STREAM_ACL))
            elif projection_id == 2 and revision == 0 and category is not None:
                meta = f"{tag}{tail}".encode()
                event = Proposed(
                    new_id(), system.STREAM_REFERENCE, system.BINARY, stream.encode(), meta
                )
                out.append(Emitted(f"$category-{category}", event, system.SYSTEM_STREAM_ACL))
            else:  # $by_correlation_id: a plain event has no $correlationId
                continue
            self.handled[name] += 1
        return out

    def checkpoint_events(self, position: int) -> list[Emitted]:
        return [
            checkpoint_event(name, system.version_tag(projection.projection_id), position)
            for name, (projection, _) in self.members.items()
        ]


@dataclass
class Managed:
    name: str
    projection_id: int
    mode: str
    query: str = ""
    emit_enabled: bool = False
    track_emitted: bool = False
    enabled: bool = True
    system: system.SystemProjection | None = None
    user: Any = None  # UserProjection, when compiled
    runner: Runner | None = None
    fault: str = ""  # why the query did not compile
    worker: Executor | None = None  # the thread its JavaScript runs on
    aborted: bool = False

    @property
    def status(self) -> str:
        if self.fault:
            return "Faulted"
        if self.system is not None and not self.enabled and self.aborted:
            return "Aborted"
        if self.runner is None:
            return "Stopped"
        if self.runner.status == "Stopped" and self.runner.completed:
            return "Completed"
        return self.runner.status


class ProjectionManager:
    def __init__(
        self,
        store: Store,
        hub: Hub,
        readers: Executor,
        run_projections: str = RUN_SYSTEM,
        start_standard: bool = True,
    ) -> None:
        if run_projections not in RUN_MODES:
            raise ValueError(f"run_projections must be one of {RUN_MODES}")
        self.run_projections = run_projections
        self.start_standard = start_standard
        self._store = store
        self._hub = hub
        self._readers = readers
        self._submit = make_submit(store)
        self.projections: dict[str, Managed] = {}
        self._lock = asyncio.Lock()
        self._system: Runner | None = None  # one runner for the enabled system projections
        self._group: SystemGroup | None = None

    @property
    def enabled(self) -> bool:
        return self.run_projections != RUN_NONE

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if not self.enabled:
            return
        for projection in system.SYSTEM_PROJECTIONS:
            settings = await self._last_json(f"$projections-{projection.name}")
            enabled = settings.get("enabled", self.start_standard) if settings else None
            managed = Managed(
                projection.name,
                projection.projection_id,
                CONTINUOUS,
                enabled=self.start_standard if enabled is None else bool(enabled),
                system=projection,
            )
            self.projections[projection.name] = managed
        for name, revision in await self._registered():
            settings = await self._last_json(f"$projections-{name}")
            if not settings:
                continue
            self.projections[name] = Managed(
                name,
                FIRST_USER_ID + revision,
                settings.get("mode", CONTINUOUS),
                query=settings.get("query", ""),
                emit_enabled=bool(settings.get("emitEnabled", False)),
                track_emitted=bool(settings.get("trackEmittedStreams", False)),
                enabled=bool(settings.get("enabled", True)),
            )
        for managed in self.projections.values():
            await self._start(managed)

    async def stop(self) -> None:
        await self._stop_system()
        for managed in self.projections.values():
            await self._halt(managed)
            self._close(managed)

    async def restart(self) -> None:
        await self.stop()
        self.projections.clear()
        await self.start()

    def may_run(self, managed: Managed) -> bool:
        if self.run_projections == RUN_ALL:
            return True
        return self.run_projections == RUN_SYSTEM and managed.name.startswith("$")

    async def _stop_system(self) -> None:
        if self._system is not None:
            await self._system.stop()
        self._system = self._group = None
        for managed in self.projections.values():
            if managed.system is not None:
                managed.runner = None

    async def _restart_system(self) -> None:
        """(Re)start the one pass that runs every enabled system projection."""
        await self._stop_system()
        members: dict[str, tuple[system.SystemProjection, int]] = {}
        loop = asyncio.get_running_loop()
        for managed in self.projections.values():
            if managed.system is not None and managed.enabled and self.may_run(managed):
                done = await loop.run_in_executor(
                    self._readers, self._store.checkpoint, managed.name
                )
                members[managed.name] = (managed.system, -1 if done is None else done)
        if not members:
            return
        self._group = SystemGroup(members)
        self._system = Runner(
            "$system",
            self._store,
            self._hub,
            self._readers,
            self._group,
            self._submit,
            checkpoint_names=list(members),
        )
        for name in members:
            self.projections[name].runner = self._system
        self._system.start()

    async def _start(self, managed: Managed) -> None:
        if managed.system is not None:
            if managed.enabled and self.may_run(managed) and managed.runner is None:
                await self._restart_system()
            return
        if not managed.enabled or not self.may_run(managed) or managed.runner is not None:
            return
        if managed.user is None and not managed.fault:
            await self._compile(managed)
        if managed.fault:
            return
        processor: Any = managed.user
        await self._load_state(managed)
        managed.runner = Runner(
            managed.name,
            self._store,
            self._hub,
            self._readers,
            processor,
            self._submit,
            stop_when_caught_up=managed.mode != CONTINUOUS,
            worker=managed.worker,
        )
        managed.runner.start()

    async def _compile(self, managed: Managed) -> None:
        from esdblocal.projections.user import UserProjection, js_thread

        managed.worker = js_thread()
        loop = asyncio.get_running_loop()
        try:
            managed.user = await loop.run_in_executor(
                managed.worker,
                UserProjection,
                managed.name,
                managed.projection_id,
                managed.query,
                managed.emit_enabled,
                self._store,
                managed.track_emitted,
            )
        except Faulted as error:
            managed.fault = str(error)
            return
        managed.fault = ""

    async def _load_state(self, managed: Managed) -> None:
        """The state as last committed with the checkpoint (on the projection's own thread,
        after anything still running there)."""
        # Written with every change of state and with the position, in one transaction (a
        # reset writes an empty one of the next epoch).
        checkpoint = await self._last_json(f"$projections-{managed.name}-checkpoint") or {}
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(managed.worker, managed.user.load, checkpoint)

    def _close(self, managed: Managed) -> None:
        if managed.user is not None and managed.worker is not None:
            managed.worker.submit(managed.user.close)  # after anything it still runs
        managed.user = None

    async def _halt(self, managed: Managed) -> None:
        if managed.runner is not None:
            await managed.runner.stop()
            if managed.runner.status != "Faulted":
                managed.runner = None

    # ---------------------------------------------------------------- management

    def get(self, name: str) -> Managed:
        managed = self.projections.get(name)
        if managed is None:
            raise ProjectionError("NotFound", name)
        return managed

    async def create(
        self,
        name: str | None,
        query: str,
        mode: str,
        emit_enabled: bool = False,
        track_emitted: bool = False,
    ) -> Managed:
        async with self._lock:
            if track_emitted and not emit_enabled:
                raise ProjectionError("Invalid", name or "")
            name = name or str(uuid4())
            if name in self.projections:
                raise ProjectionError("Conflict", name)
            revision = -1
            if mode != TRANSIENT:
                result = await self._append(
                    REGISTRATION_STREAM, "$ProjectionCreated", name.encode(), json_data=False
                )
                revision = result.current_revision
            managed = Managed(
                name,
                FIRST_USER_ID + max(revision, 0),
                mode,
                query=query,
                emit_enabled=emit_enabled,
                track_emitted=track_emitted,
            )
            self.projections[name] = managed
            await self._persist(managed)
            await self._compile(managed)
            await self._start(managed)
            return managed

    async def update(self, name: str, query: str, emit_enabled: bool | None) -> None:
        async with self._lock:
            managed = self.get(name)
            if managed.system is not None:
                raise ProjectionError("OperationFailed", name)
            was_running = managed.runner is not None and managed.runner.running
            await self._halt(managed)
            managed.runner = None
            managed.query = query
            if emit_enabled is not None:
                managed.emit_enabled = emit_enabled
            self._close(managed)
            managed.fault = ""
            await self._persist(managed)
            await self._compile(managed)
            if was_running:
                await self._start(managed)

    async def enable(self, name: str) -> None:
        async with self._lock:
            managed = self.get(name)
            managed.enabled = True
            managed.aborted = False
            await self._persist(managed)
            if managed.system is not None:
                await self._restart_system()
                return
            if managed.runner is not None and not managed.runner.running:
                managed.runner = None
            await self._start(managed)

    async def disable(self, name: str, write_checkpoint: bool = True) -> None:
        async with self._lock:
            managed = self.get(name)
            managed.enabled = False
            if managed.system is not None:
                managed.aborted = not write_checkpoint
                await self._persist(managed)
                await self._restart_system()
                return
            if managed.runner is not None:
                await managed.runner.stop()
                # Without a checkpoint it is an abort (the Node.js client's abortProjection).
                managed.runner.status = "Stopped" if write_checkpoint else "Aborted"
            await self._persist(managed)

    async def reset(self, name: str) -> None:
        """Forget position and state and start again from the beginning of $all."""
        async with self._lock:
            managed = self.get(name)
            if managed.system is not None:
                await self._stop_system()
                await self._submit([], {managed.name: -1})
                await self._restart_system()
                return
            running = managed.runner is not None and managed.runner.running
            if managed.runner is not None:
                await managed.runner.stop()
            managed.runner = None
            if managed.user is not None:
                managed.user.reset()
                cleared = managed.user.checkpoint_event(-1)
                await self._submit([cleared], {managed.name: -1})
            else:
                await self._submit([], {managed.name: -1})
            if running:
                await self._start(managed)

    async def delete(
        self, name: str, emitted_streams: bool, state_stream: bool, checkpoint_stream: bool
    ) -> None:
        async with self._lock:
            managed = self.get(name)
            if managed.system is not None or (
                managed.runner is not None and managed.runner.running
            ):
                raise ProjectionError("OperationFailed", name)
            del self.projections[name]
            streams: list[str] = []
            if emitted_streams and managed.user is not None and managed.track_emitted:
                streams.extend(sorted(managed.user.emitted_streams))
                streams.append(f"$projections-{name}-emittedstreams")
            if checkpoint_stream:
                streams.append(f"$projections-{name}-checkpoint")
            if state_stream:
                streams.append(f"$projections-{name}-state")
            for stream in streams:
                await self._soft_delete(stream)
            await self._submit([], {name: -1})
            if managed.mode != TRANSIENT:
                await self._append(
                    REGISTRATION_STREAM, "$ProjectionDeleted", name.encode(), json_data=False
                )
                await self._soft_delete(f"$projections-{name}")
            self._close(managed)

    def state(self, name: str, partition: str) -> Any:
        managed = self.get(name)
        if managed.user is None:
            return {}
        return managed.user.state(partition)

    def result(self, name: str, partition: str) -> Any:
        managed = self.get(name)
        if managed.user is None:
            return {}
        return managed.user.result(partition)

    # ---------------------------------------------------------------- statistics

    def statistics(self, managed: Managed) -> dict[str, Any]:
        runner = managed.runner
        processed = runner.events_processed_after_restart if runner is not None else 0
        if managed.system is not None:
            group = self._group
            processed = group.handled.get(managed.name, 0) if group and runner else 0
        position = runner.position if runner is not None else -1
        reason = managed.fault or (runner.reason if runner is not None else "")
        return {
            "name": managed.name,
            "effectiveName": managed.name,
            "mode": managed.mode,
            "status": managed.status,
            "stateReason": reason,
            "position": f"C:{position}/P:{position}" if position >= 0 else "",
            "lastCheckpoint": (
                f"C:{runner.last_checkpoint}/P:{runner.last_checkpoint}"
                if runner is not None and runner.last_checkpoint >= 0
                else ""
            ),
            "progress": 100.0 if runner is not None and runner.caught_up else 0.0,
            "eventsProcessedAfterRestart": processed,
            "epoch": -1,
            "version": 1,
            "checkpointStatus": "",
            "bufferedEvents": 0,
            "writesInProgress": 0,
            "readsInProgress": 0,
            "partitionsCached": (len(managed.user.states) if managed.user is not None else 1),
            "writePendingEventsBeforeCheckpoint": 0,
            "writePendingEventsAfterCheckpoint": 0,
            "coreProcessingTime": 0,
        }

    # ---------------------------------------------------------------- storage helpers

    async def _append(
        self, stream: str, event_type: str, data: bytes, json_data: bool = True
    ) -> WriteResult:
        content_type = "application/json" if json_data else "application/octet-stream"
        event = Proposed(str(uuid4()), event_type, content_type, data, b"")
        outcome: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._store.submit("append", stream, ANY, [event], outcome)
        return await outcome

    async def _soft_delete(self, stream: str) -> None:
        outcome: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._store.submit("delete", stream, ANY, (), outcome)
        with contextlib.suppress(Exception):
            await outcome

    async def _persist(self, managed: Managed) -> None:
        settings: dict[str, Any] = {"enabled": managed.enabled}
        if managed.system is None:
            settings.update(
                handlerType="JS",
                query=managed.query,
                mode=managed.mode,
                emitEnabled=managed.emit_enabled,
                trackEmittedStreams=managed.track_emitted,
            )
        if managed.mode == TRANSIENT:
            return
        await self._append(
            f"$projections-{managed.name}", "$ProjectionUpdated", json.dumps(settings).encode()
        )

    async def _read(self, stream: str, backwards: bool, count: int) -> Sequence[Recorded]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._readers, self._store.read_stream, stream, None, backwards, count
            )
        except (StreamNotFound, StreamDeleted):
            return []

    async def _last_json(self, stream: str) -> dict[str, Any] | None:
        events = await self._read(stream, True, 1)
        if not events:
            return None
        try:
            value = json.loads(events[0].data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def _registered(self) -> list[tuple[str, int]]:
        names: dict[str, int] = {}
        for record in await self._read(REGISTRATION_STREAM, False, 1_000_000):
            name = record.data.decode(errors="replace")
            if record.type == "$ProjectionCreated":
                names[name] = record.revision
            elif record.type == "$ProjectionDeleted":
                names.pop(name, None)
        return list(names.items())
