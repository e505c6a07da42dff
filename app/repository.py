"""The repository: aggregates as of the last version this worker knows, without reading the
store first, and what requests with an Idempotency-Key appended (their replays).

- **Per worker.** The newest state of each stream it served, least recently used first out.
- **Per host.** The host's snapshots (``app.snapshots``): a cold worker, or one whose cache
  is behind another worker's, starts from the newest state the host knows; every append
  writes the state it reached there, as does a load that had to read a long way.
- **Replays.** What a keyed request appended is a fact of the store, whatever version its
  holder is at: each stream keeps one dict of them, added to as keys are learned (from an
  append, from the events read, from the host's file), never copied per command.

It decides nothing and refuses nothing: a retired stream is the store's ``StreamGone``, which
the command handler turns into its own refusal.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from app.snapshots import SNAPSHOT_AFTER, Snapshots
from domain.aggregates import Aggregate
from domain.errors import ImpossibleEvent
from eventstore.streams import NO_STREAM, EventStore

log = logging.getLogger("app.commands")  # the command side's log: this serves it

S = TypeVar("S")
_ENCODER = msgspec.json.Encoder()
_METADATA = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class Replay:
    """What an earlier request with an Idempotency-Key appended, to answer its retries."""

    version: int
    position: int
    appended: int
    request_hash: str


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """An aggregate as of ``version``, and the commit position of that version's event."""

    state: S
    version: int = NO_STREAM
    position: int | None = None


@dataclass(slots=True)
class _Known:
    """What this worker knows of one stream: its newest state, and the replays of its keys."""

    loaded: Loaded[Any]
    replays: dict[str, Replay] = field(default_factory=dict)


class Repository:
    """Aggregates as of their last known version, per worker, least recently used first out."""

    def __init__(
        self, store: EventStore, capacity: int = 10_000, snapshots: Snapshots | None = None
    ) -> None:
        self._store = store
        self._snapshots = snapshots
        self._capacity = capacity
        self._cache: OrderedDict[str, _Known] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, aggregate: Aggregate[S], stream: str) -> Loaded[S]:
        """The newest state of the stream this host knows, unread: this worker's cache, or
        the host's snapshot when it is newer (another worker served the stream since), else
        the empty state."""
        with self._lock:
            known = self._cache.get(stream)
            cached: Loaded[S] | None = None if known is None else known.loaded
        newer = self._from_snapshot(aggregate, stream, -2 if cached is None else cached.version)
        if newer is not None:
            self._keep(stream, newer)  # what this worker knew of the keys still holds
            return newer
        return cached if cached is not None else Loaded(aggregate.zero())

    def load(self, aggregate: Aggregate[S], stream: str) -> Loaded[S]:
        """The stream as the store holds it now: what this host knows, and the events after
        it. Raises the store's ``StreamGone`` for a retired stream."""
        loaded = self.cached(aggregate, stream)
        new = self._store.read(stream, after=loaded.version)
        if not new:
            self._keep(stream, loaded)
            return loaded
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
        loaded = Loaded(state, new[-1].version, new[-1].position)
        self._keep(stream, loaded, learned)
        if len(new) >= SNAPSHOT_AFTER or learned:
            # The keys read here reach the host (another worker may get their retries); the
            # state too when it took a long read to reach.
            self._share(aggregate, stream, loaded if len(new) >= SNAPSHOT_AFTER else None, learned)
        return loaded

    def replay(self, stream: str, key: str) -> Replay | None:
        """What the request with this key appended to ``stream``: as this worker knows it,
        else as the host does."""
        with self._lock:
            known = self._cache.get(stream)
            replay = None if known is None else known.replays.get(key)
        if replay is None and self._snapshots is not None:
            found = self._snapshots.replay(stream, key)
            if found is not None:
                replay = Replay(*found)
                with self._lock:
                    if known is not None:
                        known.replays[key] = replay
        return replay

    def appended(
        self,
        aggregate: Aggregate[S],
        stream: str,
        loaded: Loaded[S],
        replays: Mapping[str, Replay],
    ) -> None:
        """An append reached ``loaded``, made by the keyed requests in ``replays`` (if any):
        this worker's newest state, and the host's."""
        self._share(aggregate, stream, loaded, replays)
        self._keep(stream, loaded, replays)

    def forget(self, stream: str) -> None:
        with self._lock:
            self._cache.pop(stream, None)

    def _keep(
        self, stream: str, loaded: Loaded[Any], replays: Mapping[str, Replay] | None = None
    ) -> None:
        with self._lock:
            known = self._cache.get(stream)
            if known is None:
                known = self._cache[stream] = _Known(loaded)
            else:
                known.loaded = loaded
            if replays:
                known.replays.update(replays)
            self._cache.move_to_end(stream)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)

    def _share(
        self,
        aggregate: Aggregate[S],
        stream: str,
        loaded: Loaded[S] | None,
        replays: Mapping[str, Replay],
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
