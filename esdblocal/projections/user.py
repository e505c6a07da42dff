"""User projections: JavaScript run in an embedded V8 (mini-racer), one isolate each.

The query runs once to learn its sources and handlers; then each event in ``$all`` that
the sources select is handed to its handler with the partition's state. State, results
(``Result`` events in ``$projections-<name>-result``, or ``-<partition>-result``), emitted
events and links are returned to the runner, which writes them with the projection's
checkpoint in one transaction. The state of every partition travels in a
``$ProjectionCheckpoint`` event of ``$projections-<name>-checkpoint``, written with each
change, so a restarted projection carries on from exactly what it wrote last.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

from py_mini_racer import MiniRacer

from esdblocal.projections import system
from esdblocal.projections.engine import Faulted, checkpoint_event
from esdblocal.store import Emitted, Proposed, Recorded, Store

PRELUDE = Path(__file__).with_name("prelude.js").read_text()
_js_thread: ThreadPoolExecutor | None = None
_js_thread_lock = threading.Lock()


def js_thread() -> ThreadPoolExecutor:
    """The one thread every user projection's JavaScript runs on, process-wide.

    mini-racer crashes the process when V8 contexts are created on two different threads
    while both live; one thread for all of them (and for every call into them) avoids it,
    and keeps JavaScript off the event loop.
    """
    global _js_thread
    with _js_thread_lock:
        if _js_thread is None:
            _js_thread = ThreadPoolExecutor(1, thread_name_prefix="esdblocal-js")
        return _js_thread


# ProjectionExecutionTimeout's default (ms): a handler running longer faults the projection.
EXECUTION_TIMEOUT_MS = 250
JSON = "application/json"


@dataclass
class Definition:
    """What the query declared."""

    all: bool = False
    streams: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    include_links: bool = False
    by_stream: bool = False
    partitioned: bool = False
    output_state: bool = False
    result_stream: str | None = None
    handled: list[str] = field(default_factory=list)

    def selects(self, record: Recorded, stream: str) -> bool:
        """Whether the sources take ``record``; ``stream`` is the stream it belongs to (the
        deleted stream for a soft delete in its metastream)."""
        if self.streams:
            return stream in self.streams
        if self.categories:
            return system.category(stream) in self.categories
        return self.all and system.passes_source(record)


class UserProjection:
    """A compiled projection: raises Faulted at construction when the JavaScript is bad."""

    def __init__(
        self,
        name: str,
        projection_id: int,
        query: str,
        emit_enabled: bool,
        store: Store,
        track_emitted: bool = False,
    ) -> None:
        self.name = name
        self.track_emitted = track_emitted
        self.version = f"{projection_id}:-1:1:{system.SUBSYSTEM_VERSION}"
        self.emit_enabled = emit_enabled
        self._store = store
        self._js = MiniRacer()
        try:
            self._js.eval(PRELUDE)
            self._js.eval(query, timeout=EXECUTION_TIMEOUT_MS * 4)
            raw = json.loads(str(self._js.eval("__esdb.definition()")))
        except Exception as error:
            raise Faulted(_reason(error)) from None
        sources = raw["sources"]
        options = raw["options"]
        self.definition = Definition(
            all=sources["all"],
            streams=list(sources["streams"]),
            categories=list(sources["categories"]),
            include_links=bool(sources["includeLinks"]),
            by_stream=raw["byStream"],
            partitioned=raw["partitioned"],
            output_state=raw["outputState"],
            result_stream=options.get("resultStreamName"),
            handled=list(raw["handled"]),
        )
        self.states: dict[str, str] = {}
        self.results: dict[str, str] = {}  # the state through transformBy/filterBy
        self.emitted_streams: set[str] = set()
        # Epochs: a reset starts a new one; the first write of the new epoch to each
        # stream truncates what earlier epochs wrote there.
        self.epoch = 0
        self.written_in_epoch: set[str] = set()
        self._dirty = False

    # ---- state

    def load(self, checkpoint: dict[str, Any]) -> None:
        self._dirty = False
        self.states = {k: json.dumps(v) for k, v in checkpoint.get("states", {}).items()}
        self.results = {}  # recomputed as events come; until then the state stands in
        self.emitted_streams = set(checkpoint.get("emittedStreams", []))
        self.epoch = int(checkpoint.get("epoch", 0))
        self.written_in_epoch = set(checkpoint.get("epochStreams", []))

    def state(self, partition: str) -> Any:
        """A partition's state; ``{}`` before its first event (the real server's "")."""
        text = self.states.get(partition)
        return {} if text is None else json.loads(text)

    def result(self, partition: str) -> Any:
        """A partition's result: its state through transformBy/filterBy (``{}`` before any
        event; None when filtered out)."""
        text = self.results.get(partition)
        if text is None:
            return self.state(partition)
        return json.loads(text)

    def reset(self) -> None:
        self.states = {}
        self.results = {}
        self.epoch += 1
        self.written_in_epoch = set()
        self._dirty = True

    def _emitted_to(self, stream: str, event: Proposed) -> Emitted:
        acl = system.SYSTEM_STREAM_ACL if stream.startswith("$") else system.USER_STREAM_ACL
        truncate = self.epoch > 0 and stream not in self.written_in_epoch
        if self.epoch > 0 and truncate:
            self.written_in_epoch.add(stream)
            self._dirty = True
        return Emitted(stream, event, acl, truncate)

    # ---- processing

    def process(self, record: Recorded) -> list[Emitted]:
        deleted = system.deleted_stream(record)
        if not self.definition.selects(record, deleted or record.stream):
            return []
        if not system.valid_content(record):
            return []
        event = record
        link: Recorded | None = None
        if record.type == system.LINK and not self.definition.include_links:
            link = record
            resolved = self._resolve(record)
            if resolved is None:
                return []
            event = resolved
        handled = self.definition.handled
        if deleted is None and event.type not in handled and "$any" not in handled:
            return []  # the reader only asks for the event types the handlers name
        if deleted is not None and not (self.definition.by_stream or self.definition.partitioned):
            return []
        if deleted is None and record.stream.startswith("$$"):
            return []
        partition = self._partition(event, record, deleted)
        if partition is None:
            return []
        previous = self.states.get(partition)
        payload = _event_json(event, link, partition)
        if deleted is not None:
            soft = "true" if record.stream.startswith("$$") else "false"
            out = self._call(f"__esdb.deleted({_literal(previous)}, {_literal(payload)}, {soft})")
        else:
            out = self._call(f"__esdb.process({_literal(previous)}, {_literal(payload)})")
        answer = json.loads(str(out))
        emitted = self._emitted(answer["emitted"], record)
        state = answer["state"]
        if state != previous:
            self.states[partition] = state
            self.results[partition] = answer["result"]
            self._dirty = True
            if self.definition.output_state and answer["result"] != "null":
                emitted.append(self._result(partition, answer["result"], record))
        if self._dirty:
            emitted.append(self.checkpoint_event(record.position))
        return emitted

    def checkpoint_events(self, position: int) -> list[Emitted]:
        return [self.checkpoint_event(position)]

    def checkpoint_event(self, position: int) -> Emitted:
        self._dirty = False
        data = {
            "states": {k: json.loads(v) for k, v in self.states.items()},
            "emittedStreams": sorted(self.emitted_streams),
            "epoch": self.epoch,
            "epochStreams": sorted(self.written_in_epoch),
        }
        return checkpoint_event(self.name, self.version, position, json.dumps(data).encode())

    def _partition(self, event: Recorded, record: Recorded, deleted: str | None) -> str | None:
        if self.definition.by_stream:
            # The stream the projection read it from (a category's stream, even when the
            # event there is a link to another stream's event).
            return deleted or record.stream
        if self.definition.partitioned:
            if deleted is not None:
                return deleted
            key = self._call(f"__esdb.partition({_literal(_event_json(event, None, ''))})")
            return None if key is None else str(key)
        return ""

    def _call(self, expression: str) -> Any:
        """Evaluate in the projection's V8 context; any failure faults the projection."""
        try:
            return self._js.eval(expression, timeout=EXECUTION_TIMEOUT_MS)
        except Exception as error:
            raise Faulted(_reason(error)) from None

    def _resolve(self, link: Recorded) -> Recorded | None:
        revision, _, stream = link.data.decode(errors="replace").partition("@")
        try:
            return self._store.read_event(stream, int(revision))
        except ValueError:
            return None

    def _result(self, partition: str, result: str, record: Recorded) -> Emitted:
        if self.definition.result_stream:
            stream = self.definition.result_stream
        elif partition:
            stream = f"$projections-{self.name}-{partition}-result"
        else:
            stream = f"$projections-{self.name}-result"
        metadata = self._metadata(record, None)
        event = Proposed(str(uuid4()), "Result", JSON, result.encode(), metadata)
        return self._emitted_to(stream, event)

    def _metadata(self, record: Recorded, extra: str | None) -> bytes:
        pairs: list[tuple[str, str]] = []
        if extra:
            try:
                given = json.loads(extra)
            except ValueError:
                given = None
            if isinstance(given, dict):
                pairs = [(k, json.dumps(v)) for k, v in given.items() if k != "$causedBy"]
        tagged = system.link_metadata(0, record, pairs)
        # link_metadata numbers system projections; a user projection has its own version.
        return tagged.replace(
            b'"$v":"0:-1:1:' + str(system.SUBSYSTEM_VERSION).encode() + b'"',
            b'"$v":"' + self.version.encode() + b'"',
            1,
        )

    def _emitted(self, items: list[dict[str, Any]], record: Recorded) -> list[Emitted]:
        if items and not self.emit_enabled:
            raise Faulted("'emit' is not allowed by the projection/configuration/mode")
        out: list[Emitted] = []
        for item in items:
            stream = item["stream"]
            metadata = self._metadata(record, item.get("metadata"))
            if item["kind"] == "link":
                event = Proposed(
                    str(uuid4()),
                    system.LINK,
                    "application/octet-stream",
                    item["target"].encode(),
                    metadata,
                )
            else:
                event = Proposed(str(uuid4()), item["type"], JSON, item["data"].encode(), metadata)
            out.append(self._emitted_to(stream, event))
            if stream not in self.emitted_streams:
                self.emitted_streams.add(stream)
                self._dirty = True
                if self.track_emitted:  # EmittedStreamsTracker: one $StreamTracked per stream
                    tracked = Proposed(
                        str(uuid4()),
                        "$StreamTracked",
                        "application/octet-stream",
                        stream.encode(),
                        b"",
                    )
                    out.append(
                        Emitted(
                            f"$projections-{self.name}-emittedstreams",
                            tracked,
                            system.SYSTEM_STREAM_ACL,
                        )
                    )
        return out

    def close(self) -> None:
        self._js.close()


def _literal(text: str | None) -> str:
    return "null" if text is None else json.dumps(text)


def _event_json(event: Recorded, link: Recorded | None, partition: str) -> str:
    """The event object a handler receives."""
    is_json = event.content_type == JSON
    body: Any = None
    if is_json:
        try:
            body = json.loads(event.data)
        except ValueError:
            body = None
    metadata: Any = None
    try:
        metadata = json.loads(event.metadata) if event.metadata else None
    except ValueError:
        metadata = None
    link_metadata: Any = None
    if link is not None and link.metadata:
        try:
            link_metadata = json.loads(link.metadata)
        except ValueError:
            link_metadata = None
    return json.dumps(
        {
            "isJson": is_json,
            "data": body,
            "body": body,
            "bodyRaw": event.data.decode(errors="replace"),
            "sequenceNumber": event.revision,
            "streamId": event.stream,
            "eventType": event.type,
            "eventId": event.event_id,
            "metadata": metadata,
            "metadataRaw": event.metadata.decode(errors="replace"),
            "linkMetadata": link_metadata,
            "partition": partition,
            "category": system.category(event.stream),
        }
    )


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line and not line.lstrip().startswith("at "):
            return line.strip()
    return lines[-1] if lines else type(error).__name__
