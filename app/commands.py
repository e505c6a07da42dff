"""The command side: load an aggregate, check the request's preconditions, let the domain
decide, and append what it decided with the expected version.

A worker keeps recently used aggregates in memory and reads only a stream's new events
before each command (one short read, however long the stream), so a command on a
10,000-event stream does not re-read 10,000 events. The append's expected version is what
makes this safe: a stale view loses the race at the store, is dropped, and is reloaded.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID, uuid4, uuid5

import falcon
import msgspec

from app.etags import ETagCodec
from app.eventstore import NO_STREAM, ConcurrencyConflict, EventStore, PendingEvent, StreamGone
from app.problems import Problem
from domain.errors import DomainError, ErrorCode, ImpossibleEvent
from domain.history import event_type, evolve

log = logging.getLogger("app.commands")

# Event ids derived from an Idempotency-Key live in this namespace.
IDEMPOTENCY_NAMESPACE = UUID("8f0c6b5e-2d4a-4f1e-9a57-3c2b1d0e9f8a")


class State(Protocol):
    @property
    def exists(self) -> bool: ...


S = TypeVar("S", bound=State)
E = TypeVar("E", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True)
class Aggregate(Generic[S, E]):
    """A domain module as the command side uses it."""

    category: str
    zero: Callable[[], S]
    apply: Callable[[S, E], S]
    events: msgspec.json.Decoder[Any]


@dataclass(frozen=True, slots=True)
class Replay:
    """What an earlier request with an Idempotency-Key appended, to answer its retries."""

    version: int
    position: int
    appended: int
    request_hash: str


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    state: S
    version: int = NO_STREAM
    position: int | None = None
    replays: dict[str, Replay] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """What the HTTP edge read from the request."""

    domain_model: str
    if_match: Sequence[str | falcon.ETag] | None = None
    if_none_match: Sequence[str | falcon.ETag] | None = None
    idempotency_key: str | None = None
    body: bytes = b""
    request_id: str = ""
    correlation_id: str | None = None
    principal: str | None = None

    @property
    def body_hash(self) -> str:
        return hashlib.sha256(self.domain_model.encode() + b"\0" + self.body).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    stream: str
    version: int
    position: int | None
    appended: int
    etag: str


_ENCODER = msgspec.json.Encoder()
_METADATA = msgspec.json.Decoder(dict[str, Any])

PROBLEM_OF_DOMAIN_ERROR: dict[ErrorCode, str] = {
    ErrorCode.ALREADY_EXISTS: "already-exists",
    ErrorCode.NOT_FOUND: "not-found",
    ErrorCode.INVALID_NAME: "invalid-name",
    ErrorCode.ITEM_INACTIVE: "item-inactive",
    ErrorCode.INSUFFICIENT_STOCK: "insufficient-stock",
    ErrorCode.INVALID_CAR: "invalid-car",
    ErrorCode.IMMUTABLE_FIELD: "immutable-field",
    ErrorCode.MILEAGE_DECREASE: "mileage-decrease",
    ErrorCode.CAR_DELETED: "gone",
    ErrorCode.STOCK_LIMIT: "stock-limit",
}


def problem_of(error: DomainError) -> Problem:
    slug = PROBLEM_OF_DOMAIN_ERROR[error.code]
    if not error.fields:
        return Problem(slug, error.message)
    return Problem(slug, error.message, errors=[msgspec.to_builtins(f) for f in error.fields])


class Repository:
    """Aggregates as of their last known version, per worker, least recently used first out."""

    def __init__(self, store: EventStore, capacity: int = 10_000) -> None:
        self._store = store
        self._capacity = capacity
        self._cache: OrderedDict[str, Loaded[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, aggregate: Aggregate[S, E], stream: str) -> Loaded[S]:
        with self._lock:
            cached: Loaded[S] | None = self._cache.get(stream)
        loaded = cached if cached is not None else Loaded(aggregate.zero())
        try:
            new = self._store.read(stream, after=loaded.version)
        except StreamGone:
            raise Problem("gone", "This resource was retired for good.") from None
        if new:
            state, replays = loaded.state, dict(loaded.replays)
            for stored in new:
                try:
                    state = evolve(
                        aggregate.events, aggregate.apply, state, stored.type, stored.data
                    )
                except ImpossibleEvent as error:
                    # The same meaning as on the read side (which quarantines it): no effect.
                    log.warning(
                        {
                            "message": "event ignored: the model cannot accept it",
                            "stream": stream,
                            "revision": stored.version,
                            "type": stored.type,
                            "reason": str(error),
                        }
                    )
                _remember(replays, stored.metadata, stored.version, stored.position)
            loaded = Loaded(state, new[-1].version, new[-1].position, replays)
        self.keep(stream, loaded)
        return loaded

    def keep(self, stream: str, loaded: Loaded[Any]) -> None:
        with self._lock:
            self._cache[stream] = loaded
            self._cache.move_to_end(stream)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)

    def forget(self, stream: str) -> None:
        with self._lock:
            self._cache.pop(stream, None)


def _remember(replays: dict[str, Replay], metadata: bytes, version: int, position: int) -> None:
    """Fold one event's metadata into what retries of its request should be told."""
    if b"idempotencyKey" not in metadata:
        return
    try:
        meta = _METADATA.decode(metadata)
    except msgspec.DecodeError:
        return
    key = meta.get("idempotencyKey")
    if isinstance(key, str):
        earlier = replays.get(key)
        appended = earlier.appended + 1 if earlier else 1
        replays[key] = Replay(version, position, appended, str(meta.get("requestHash", "")))


class CommandHandler:
    def __init__(
        self,
        store: EventStore,
        etags: ETagCodec,
        require_if_match: bool = False,
        retries: int = 3,
    ) -> None:
        self._store = store
        self._etags = etags
        self._require_if_match = require_if_match
        self._retries = retries
        self.repository = Repository(store)

    def execute(
        self,
        aggregate: Aggregate[S, E],
        stream: str,
        decide: Callable[[S], list[E] | DomainError],
        request: CommandRequest,
        creates: bool = False,
    ) -> Outcome:
        """Run one command: 404 before any precondition, then 428/412, then the domain.

        Without If-Match a conflict with a concurrent writer is reloaded and retried a few
        times; with If-Match it is the client's precondition that failed (412).
        """
        for _ in range(self._retries + 1):
            loaded = self.repository.load(aggregate, stream)
            replay = self._replay(loaded, request)
            if replay is not None:
                return self._outcome(stream, replay.version, replay.position, replay.appended)
            if not creates and not loaded.state.exists:
                raise Problem("not-found", "There is nothing at this URL.")
            expected = self._expected(stream, loaded, request, creates)
            decided = decide(loaded.state)
            if isinstance(decided, DomainError):
                raise problem_of(decided)
            if not decided:
                return self._outcome(stream, loaded.version, loaded.position, 0)
            pending = self._pending(stream, decided, request)
            try:
                position = self._store.append(stream, expected, pending)
            except ConcurrencyConflict:
                self.repository.forget(stream)
                if request.if_match is not None or request.if_none_match is not None:
                    raise Problem(
                        "precondition-failed", "The resource changed since that ETag."
                    ) from None
                continue
            except StreamGone:
                raise Problem("gone", "This resource was retired for good.") from None
            self._advance(aggregate, stream, loaded, decided, position, request)
            return self._outcome(stream, expected + len(decided), position, len(decided))
        raise Problem("conflict", "Concurrent writers kept changing the resource; retry.")

    def _replay(self, loaded: Loaded[Any], request: CommandRequest) -> Replay | None:
        if request.idempotency_key is None:
            return None
        replay: Replay | None = loaded.replays.get(request.idempotency_key)
        if replay is not None and replay.request_hash != request.body_hash:
            raise Problem(
                "idempotency-key-reused",
                "This Idempotency-Key was used with a different request.",
            )
        return replay

    def _expected(
        self, stream: str, loaded: Loaded[Any], request: CommandRequest, creates: bool
    ) -> int:
        exists = loaded.state.exists
        if request.if_none_match is not None and "*" in request.if_none_match and exists:
            raise Problem("precondition-failed", "The resource exists already (If-None-Match: *).")
        if request.if_match is None:
            if self._require_if_match and not creates:
                raise Problem("precondition-required", "Send If-Match with the ETag you last saw.")
            return loaded.version
        if "*" in request.if_match:
            if not exists:
                raise Problem("precondition-failed", "There is no resource to match (If-Match: *).")
            return loaded.version
        for tag in request.if_match:
            if isinstance(tag, falcon.ETag) and not tag.is_weak:
                version = self._etags.decode(stream, tag)
                if version is not None and version == loaded.version:
                    return version
        raise Problem("precondition-failed", "If-Match does not name the current version.")

    def _pending(
        self, stream: str, events: Sequence[msgspec.Struct], request: CommandRequest
    ) -> list[PendingEvent]:
        metadata: dict[str, str] = {
            "$correlationId": request.correlation_id or request.request_id,
            "$causationId": request.request_id,
            "domainModel": request.domain_model,
            "requestId": request.request_id,
        }
        if request.principal is not None:
            metadata["principal"] = request.principal
        key = request.idempotency_key
        if key is not None:
            metadata["idempotencyKey"] = key
            metadata["requestHash"] = request.body_hash
        encoded = _ENCODER.encode(metadata)
        return [
            PendingEvent(
                id=uuid5(IDEMPOTENCY_NAMESPACE, f"{stream}/{key}/{index}") if key else uuid4(),
                type=event_type(event),
                data=_ENCODER.encode(event),
                metadata=encoded,
            )
            for index, event in enumerate(events)
        ]

    def _advance(
        self,
        aggregate: Aggregate[S, E],
        stream: str,
        loaded: Loaded[S],
        events: Sequence[E],
        position: int,
        request: CommandRequest,
    ) -> None:
        state = loaded.state
        for event in events:
            state = aggregate.apply(state, event)
        version = loaded.version + len(events)
        replays = loaded.replays
        if request.idempotency_key is not None:
            replays = dict(replays)
            replays[request.idempotency_key] = Replay(
                version, position, len(events), request.body_hash
            )
        self.repository.keep(
            stream,
            replace(loaded, state=state, version=version, position=position, replays=replays),
        )

    def _outcome(self, stream: str, version: int, position: int | None, appended: int) -> Outcome:
        return Outcome(stream, version, position, appended, self._etags.encode(stream, version))
