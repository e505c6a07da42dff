"""The one registry of aggregates: what the command side and the projector both need to know
of each, and nothing else is named the same.

An ``Aggregate`` is a domain module seen from outside: the category of its streams
(``category-<uuid>``), the empty state, the fold, and the decoder of its events (a tagged
union whose tags are the EventStoreDB event types).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec

from domain import cars, inventory
from domain.history import evolve

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Aggregate(Generic[S]):
    category: str
    zero: Callable[[], S]
    apply: Callable[[S, Any], S]
    event_union: Any  # the tagged union of its events (tags: the EventStoreDB event types)
    revision: int = 1  # bump when ``apply`` changes meaning: snapshots of another are ignored
    events: msgspec.json.Decoder[Any] = field(init=False)  # built once, from the union

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", msgspec.json.Decoder(self.event_union))

    @property
    def fingerprint(self) -> str:
        """What a snapshot of this aggregate must match: its state's schema, its event
        types and its revision."""
        state: Any = type(self.zero())
        return _fingerprint(state, self.event_union, self.revision)

    def stream(self, aggregate_id: UUID | str) -> str:
        return f"{self.category}-{aggregate_id}"

    def evolve(self, state: S, recorded_type: str, data: bytes) -> S:
        """``state`` after one recorded event, or ``ImpossibleEvent`` (domain.history)."""
        return evolve(self.events, self.apply, state, recorded_type, data)  # one meaning


@functools.cache
def _fingerprint(state: type, events: Any, revision: int) -> str:
    shape = msgspec.json.encode([msgspec.json.schema(state), msgspec.json.schema(events)])
    return f"{revision}:{hashlib.sha256(shape).hexdigest()[:32]}"


INVENTORY_ITEM: Aggregate[inventory.InventoryItem] = Aggregate(
    inventory.CATEGORY,
    inventory.zero,
    inventory.apply,
    inventory.AnyInventoryEvent,
)
CAR: Aggregate[cars.Car] = Aggregate(
    cars.CATEGORY,
    cars.zero,
    cars.apply,
    cars.AnyCarEvent,
)
AGGREGATES: tuple[Aggregate[Any], ...] = (INVENTORY_ITEM, CAR)
BY_CATEGORY = {aggregate.category: aggregate for aggregate in AGGREGATES}


# What str(UUID(...)) writes: the projector asks this of every event, so a pattern, not a parse.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_id(text: str) -> bool:
    """Is ``text`` an aggregate id as the API names one: a UUID in its canonical form
    (lower-case hex and hyphens)? A stream of a category whose name goes on otherwise
    (``inventoryItem-x``, an upper-case UUID) belongs to no resource: no URL could reach it."""
    return _CANONICAL_UUID.fullmatch(text) is not None
