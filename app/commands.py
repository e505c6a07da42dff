"""The command side: load an aggregate, check the request's preconditions, let the domain
decide, and append what it decided with the expected version.

It knows no HTTP: preconditions arrive as stream versions (the edge decodes ETags), and every
refusal is one of the exceptions below, which the edge maps to problems once
(``app.problems``).

A worker appends with the version its repository (``app.repository``) knows, without reading
first: one round trip per command. The append's expected version is what makes this safe: a
stale view loses the race at the store, and the stream's new events (a short read, however
long the stream) are read before deciding again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar
from uuid import UUID, uuid4, uuid5

import msgspec

from app.repository import Loaded, Replay, Repository
from app.snapshots import Snapshots
from domain.aggregates import Aggregate
from domain.errors import DomainError
from domain.history import event_type
from eventstore.streams import ConcurrencyConflict, EventStore, PendingEvent, StreamGone
from telemetry import metrics, tracing

# Event ids derived from an Idempotency-Key live in this namespace.
IDEMPOTENCY_NAMESPACE = UUID("8f0c6b5e-2d4a-4f1e-9a57-3c2b1d0e9f8a")


# ---------------------------------------------------------------- refusals


class CommandFailed(Exception):
    """Why a command appended nothing."""


class NotFound(CommandFailed):
    pass


class Gone(CommandFailed):
    """The stream was tombstoned: the resource will not come back."""


GONE = "This resource was retired for good."


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
        loaded = self.repository.cached(aggregate, stream)
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
            try:
                loaded = self.repository.load(aggregate, stream)
            except StreamGone:
                raise Gone(GONE) from None
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
        replay = self._replay(stream, request)
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
            raise Gone(GONE) from None
        metrics.APPENDS.inc()
        metrics.APPENDED_EVENTS.inc(len(pending))
        self._advance(aggregate, stream, loaded, decided, position, request)
        return Outcome(stream, expected + len(decided), position, len(decided))

    def _replay(self, stream: str, request: CommandRequest) -> Replay | None:
        if request.idempotency_key is None:
            return None
        replay = self.repository.replay(stream, request.idempotency_key)
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
        self.repository.appended(aggregate, stream, Loaded(state, version, position), made)
