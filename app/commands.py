"""The command side: load an aggregate, check the request's preconditions, let the domain
decide, and append what it decided with the expected version.

It knows no HTTP: preconditions arrive as stream versions (the edge decodes ETags), and every
refusal is one of the exceptions below, which the edge maps to problems once
(``app.errors``).

A worker keeps recently used aggregates in memory and appends with the version it knows,
without reading first: one round trip per command. The append's expected version is what
makes this safe: a stale view loses the race at the store, and the stream's new events (a
short read, however long the stream) are read before deciding again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, Protocol, TypeVar
from uuid import UUID, uuid4, uuid5

import msgspec

from app.snapshots import SNAPSHOT_AFTER, Snapshots
from domain.aggregates import Aggregate
from domain.errors import DomainError, ImpossibleEvent
from domain.history import event_type
from eventstore.streams import NO_STREAM, ConcurrencyConflict, EventStore, PendingEvent, StreamGone
from telemetry import metrics, tracing

log = logging.getLogger("app.commands")

# Event ids derived from an Idempotency-Key live in this namespace.
IDEMPOTENCY_NAMESPACE = UUID("8f0c6b5e-2d4a-4f1e-9a57-3c2b1d0e9f8a")


# ---------------------------------------------------------------- refusals


class CommandFailed(Exception):
    """Why a command appended nothing."""


class NotFound(CommandFailed):
    pass


class Gone(CommandFailed):
    """The stream was tombstoned: the resource will not come back."""


class PreconditionFailed(CommandFailed):
    pass


class PreconditionRequired(CommandFailed):
    pass


class Conflict(CommandFailed):
    """Concurrent writers kept winning the race, retries included."""


class IdempotencyKeyReused(CommandFailed):
    pass


class Refused(CommandFailed):
    """The domain said no."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.message)
        self.error = error


# ---------------------------------------------------------------- requests and outcomes


class State(Protocol):
    @property
    def exists(self) -> bool: ...


S = TypeVar("S", bound=State)
E = TypeVar("E", bound=msgspec.Struct)
ANY: Literal["*"] = "*"


@dataclass(frozen=True, slots=True)
class Replay:
    """What an earlier request with an Idempotency-Key appended, to answer its retries."""

    version: int
    position: int
    appended: int
    request_hash: str


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """An aggregate as of ``version``. ``replays``: what keyed requests appended, as far as
    this worker knows (the host's file knows the rest). Each next state of the stream takes
    the same dict on and adds to it in place: a replay is a fact of the store, whatever
    version its holder is at, and copying it per command made each command pay for every
    key."""

    state: S
    version: int = NO_STREAM
    position: int | None = None
    replays: dict[str, Replay] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """What the edge read from the request, in the command side's terms.

    ``if_match``: None when absent, ``"*"``, or the stream versions the client's ETags stand
    for (those that do not decode for this stream are left out, so an empty tuple never
    matches). ``if_none_match_any``: ``If-None-Match: *``, create only once.
    """

    domain_model: str
    if_match: Literal["*"] | tuple[int, ...] | None = None
    if_none_match_any: bool = False
    idempotency_key: str | None = None
    body: bytes = b""
    request_id: str = ""
    correlation_id: str | None = None
    principal: str | None = None

    @property
    def body_hash(self) -> str:
        return hashlib.sha256(self.domain_model.encode() + b"\0" + self.body).hexdigest()

    @property
    def has_precondition(self) -> bool:
        return self.if_match is not None or self.if_none_match_any


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did: the stream's version after it, the commit position of its last
    event (None when nothing was ever appended), and how many events it appended."""

    stream: str
    version: int
    position: int | None
    appended: int


_ENCODER = msgspec.json.Encoder()
_METADATA = msgspec.json.Decoder(dict[str, Any])


# ---------------------------------------------------------------- the repository


class Repository:
    """Aggregates as of their last known version, per worker, least recently used first out."""

    def __init__(
        self, store: EventStore, capacity: int = 10_000, snapshots: Snapshots | None = None
    ) -> None:
        self._store = store
        self._snapshots = snapshots
        self._capacity = capacity
        self._cache: OrderedDict[str, Loaded[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, aggregate: Aggregate[S], stream: str) -> Loaded[S]:
        loaded = self.cached(stream, aggregate)
        try:
            new = self._store.read(stream, after=loaded.version)
        except StreamGone:
            raise Gone("This resource was retired for good.") from None
        if new:
            state, learned = loaded.state, dict[str, Replay]()
            for stored in new:
                try:
                    state = aggregate.evolve(state, stored.type, stored.data)
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
                _remember(learned, stored.metadata, stored.version, stored.position)
            # A replay is a fact of the store, whoever holds it: the dict is added to in place.
            loaded.replays.update(learned)
            loaded = Loaded(state, new[-1].version, new[-1].position, loaded.replays)
            if len(new) >= SNAPSHOT_AFTER or learned:
                # The keys read here reach the host (another worker may get their retries);
                # the state too when it took a long read to reach.
                shared = loaded if len(new) >= SNAPSHOT_AFTER else None
                self._share(aggregate, stream, shared, learned)
        self.keep(stream, loaded)
        return loaded

    def _share(
        self,
        aggregate: Aggregate[S],
        stream: str,
        loaded: Loaded[S] | None,
        replays: Mapping[str, Replay] | None = None,
    ) -> None:
        """The state ``loaded`` reached and the ``replays`` that reached it, as the host's."""
        if self._snapshots is None:
            return
        row = None
        if loaded is not None:
            row = (loaded.version, loaded.position, _ENCODER.encode(loaded.state))
        rows = None
        if replays:
            rows = {
                key: (r.version, r.position, r.appended, r.request_hash)
                for key, r in replays.items()
            }
        self._snapshots.put(stream, aggregate.fingerprint, row, rows)

    def replay(self, stream: str, loaded: Loaded[Any], key: str) -> Replay | None:
        """What the request with this key appended to ``stream``: as this worker knows it,
        else as the host does."""
        replay: Replay | None = loaded.replays.get(key)
        if replay is None and self._snapshots is not None:
            found = self._snapshots.replay(stream, key)
            if found is not None:
                replay = loaded.replays[key] = Replay(*found)
        return replay

    def _from_snapshot(
        self, aggregate: Aggregate[S], stream: str, newer_than: int = -2
    ) -> Loaded[S] | None:
        if self._snapshots is None:
            return None
        found = self._snapshots.get(stream, aggregate.fingerprint, newer_than)
        if found is None:
            return None
        version, position, state = found
        try:
            decoded = msgspec.json.decode(state, type=type(aggregate.zero()))
            return Loaded(decoded, version, position)
        except msgspec.DecodeError:
            return None  # written by another shape the fingerprint did not tell: ignore it

    def cached(self, stream: str, aggregate: Aggregate[S]) -> Loaded[S]:
        """The newest state of the stream this host knows, unread: this worker's cache, or
        the host's snapshot when it is newer (another worker served the stream since), else
        the empty state."""
        with self._lock:
            cached: Loaded[S] | None = self._cache.get(stream)
        newer = self._from_snapshot(aggregate, stream, -2 if cached is None else cached.version)
        if newer is not None:
            if cached is not None:  # what this worker knew of the keys still holds
                newer = replace(newer, replays=cached.replays)
            self.keep(stream, newer)
            return newer
        return cached if cached is not None else Loaded(aggregate.zero())

    def keep(
        self,
        stream: str,
        loaded: Loaded[Any],
        share: Aggregate[Any] | None = None,
        replays: Mapping[str, Replay] | None = None,
    ) -> None:
        """Cache ``loaded``; with ``share`` (after an append), also as the host's snapshot,
        with the ``replays`` the append made."""
        if share is not None:
            self._share(share, stream, loaded, replays)
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


# ---------------------------------------------------------------- the handler


class CommandHandler:
    def __init__(
        self,
        store: EventStore,
        require_if_match: bool = False,
        retries: int = 3,
        snapshots: Snapshots | None = None,
    ) -> None:
        self._store = store
        self._require_if_match = require_if_match
        self._retries = retries
        self.repository = Repository(store, snapshots=snapshots)

    def execute(
        self,
        aggregate: Aggregate[S],
        stream: str,
        decide: Callable[[S], Sequence[msgspec.Struct] | DomainError],
        request: CommandRequest,
        creates: bool = False,
    ) -> Outcome:
        """Run one command: NotFound before any precondition, then the preconditions, then
        the domain, then the append with the expected version.

        The first attempt decides on what this worker last knew of the stream, without
        reading it (a stream it never saw is taken as empty). Only an append is trusted on
        that basis, since the store checks its expected version: a conflict, a refusal or a
        "nothing to do" decided on an unread state is decided again after reading the
        stream's new events. Once read, a conflict is a concurrent writer: without a
        precondition it is retried a few times; with one it is the client's precondition
        that failed.
        """
        metrics.command_model(request.domain_model)
        loaded = self.repository.cached(stream, aggregate)
        verified = False  # is ``loaded`` what the store held a moment ago?
        retries = 0
        while True:
            try:
                outcome = self._attempt(aggregate, stream, loaded, decide, request, creates)
            except ConcurrencyConflict:
                self.repository.forget(stream)
                if verified:
                    if request.has_precondition:
                        raise PreconditionFailed("The resource changed since that ETag.") from None
                    retries += 1
                    metrics.CONFLICT_RETRIES.inc()
                    if retries > self._retries:
                        raise Conflict(
                            "Concurrent writers kept changing the resource; retry."
                        ) from None
            except CommandFailed:
                if verified:
                    raise
            else:
                if verified or outcome.appended:
                    return outcome
            loaded = self.repository.load(aggregate, stream)
            verified = True

    def _attempt(
        self,
        aggregate: Aggregate[S],
        stream: str,
        loaded: Loaded[S],
        decide: Callable[[S], Sequence[msgspec.Struct] | DomainError],
        request: CommandRequest,
        creates: bool,
    ) -> Outcome:
        replay = self._replay(stream, loaded, request)
        if replay is not None:
            metrics.REPLAYS.inc()
            return Outcome(stream, replay.version, replay.position, replay.appended)
        if not creates and not loaded.state.exists:
            raise NotFound("There is nothing at this URL.")
        expected = self._expected(loaded, request, creates)
        with tracing.span("decide", {"domain.model": request.domain_model}):
            decided = decide(loaded.state)
        if isinstance(decided, DomainError):
            raise Refused(decided)
        if not decided:
            return Outcome(stream, loaded.version, loaded.position, 0)
        pending = self._pending(stream, decided, request)
        try:
            position = self._store.append(stream, expected, pending)
        except StreamGone:
            raise Gone("This resource was retired for good.") from None
        metrics.APPENDS.inc()
        metrics.APPENDED_EVENTS.inc(len(pending))
        self._advance(aggregate, stream, loaded, decided, position, request)
        return Outcome(stream, expected + len(decided), position, len(decided))

    def _replay(self, stream: str, loaded: Loaded[Any], request: CommandRequest) -> Replay | None:
        if request.idempotency_key is None:
            return None
        replay = self.repository.replay(stream, loaded, request.idempotency_key)
        if replay is not None and replay.request_hash != request.body_hash:
            raise IdempotencyKeyReused("This Idempotency-Key was used with a different request.")
        return replay

    def _expected(self, loaded: Loaded[Any], request: CommandRequest, creates: bool) -> int:
        exists = loaded.state.exists
        if request.if_none_match_any and exists:
            raise PreconditionFailed("The resource exists already (If-None-Match: *).")
        if request.if_match is None:
            if self._require_if_match and not creates:
                raise PreconditionRequired("Send If-Match with the ETag you last saw.")
            return loaded.version
        if request.if_match == ANY:
            if not exists:
                raise PreconditionFailed("There is no resource to match (If-Match: *).")
            return loaded.version
        if loaded.version in request.if_match:
            return loaded.version
        raise PreconditionFailed("If-Match does not name the current version.")

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
        aggregate: Aggregate[S],
        stream: str,
        loaded: Loaded[S],
        events: Sequence[msgspec.Struct],
        position: int,
        request: CommandRequest,
    ) -> None:
        state = loaded.state
        for event in events:
            state = aggregate.apply(state, event)
        version = loaded.version + len(events)
        made: dict[str, Replay] = {}
        if request.idempotency_key is not None:
            made[request.idempotency_key] = Replay(
                version, position, len(events), request.body_hash
            )
            loaded.replays.update(made)  # in place: no copy of every key per command
        self.repository.keep(
            stream,
            replace(loaded, state=state, version=version, position=position),
            share=aggregate,
            replays=made,
        )
