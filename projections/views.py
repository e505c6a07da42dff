"""The read models: how each aggregate's streams fold into one row of a table.

The fold is the domain's own (``domain.aggregates``: the same code the command side uses to
rebuild an aggregate), so a view cannot drift from the model: a row is an aggregate's state
as of ``version``, flattened into columns. What a view adds is what queries need: a creation
``ordinal`` for stable paging, an ``active`` flag, the text that search matches, and the
filters a list may apply (declared here once; query parsing, OPTIONS and OpenAPI derive
from them). Rows leave the read store as ``Stored`` records built by their view, never as
tuples indexed by position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec

from domain import cars, inventory
from domain.aggregates import CAR, INVENTORY_ITEM, Aggregate

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Stored(Generic[S]):
    """One row of a view: the aggregate's id, its stream version, whether it is active (listed
    by default), and its state."""

    id: str
    version: int
    active: bool
    state: S


@dataclass(frozen=True, slots=True)
class Filter:
    """A list filter: equality on one column, a query parameter of the same name."""

    name: str
    type: Any  # what the parameter decodes to (its JSON Schema comes from this)
    description: str

    def value(self, text: str) -> str:
        """The column value to compare (ValueError when ``text`` is not one)."""
        try:
            return str(msgspec.convert(text, self.type, strict=False))
        except msgspec.ValidationError as error:
            raise ValueError(str(error)) from None


@dataclass(frozen=True, slots=True, eq=False)
class View(Generic[S]):
    """One aggregate's table: its columns after (id, ordinal, version, active).

    Compared and hashed by identity (there is one per aggregate): the projector keys its
    batch by view, and hashing every field per event was 5 % of its fold."""

    aggregate: Aggregate[S]
    table: str
    columns: tuple[str, ...]
    to_columns: Callable[[S], tuple[Any, ...]]
    from_columns: Callable[[bool, tuple[Any, ...]], S]  # active, the columns -> the state
    is_active: Callable[[S], bool]
    search_text: Callable[[S], str]
    title: Callable[[S], str]  # how a search hit names it
    filters: tuple[Filter, ...] = ()

    @property
    def category(self) -> str:
        return self.aggregate.category

    def record(self, row: tuple[Any, ...]) -> Stored[S]:
        """A row selected as ``id, version, active, *columns`` (the store's one shape)."""
        row_id, version, active, *columns = row
        return Stored(
            row_id, version, bool(active), self.from_columns(bool(active), tuple(columns))
        )


INVENTORY_VIEW: View[inventory.InventoryItem] = View(
    aggregate=INVENTORY_ITEM,
    table="inventory_items",
    columns=("name", "current_count"),
    to_columns=lambda item: (item.name, item.count),
    from_columns=lambda active, columns: inventory.InventoryItem(
        exists=True, active=active, name=columns[0], count=columns[1]
    ),
    is_active=lambda item: item.active,
    search_text=lambda item: item.name,
    title=lambda item: item.name,
)

CAR_COLUMNS = ("year", "make", "model", "color", "mileage", "vin", "condition", "owner")


def _car(active: bool, columns: tuple[Any, ...]) -> cars.Car:
    fields = dict(zip(CAR_COLUMNS, columns, strict=True))
    return cars.Car(exists=True, deleted=not active, **{**fields, "owner": UUID(fields["owner"])})


CAR_VIEW: View[cars.Car] = View(
    aggregate=CAR,
    table="cars",
    columns=CAR_COLUMNS,
    to_columns=lambda car: (
        car.year,
        car.make,
        car.model,
        car.color,
        car.mileage,
        car.vin,
        car.condition,
        str(car.owner),
    ),
    from_columns=_car,
    is_active=lambda car: not car.deleted,
    search_text=lambda car: f"{car.year} {car.make} {car.model} {car.color} {car.vin}",
    title=lambda car: f"{car.year} {car.make} {car.model} ({car.color}, {car.vin})",
    filters=(
        Filter("make", cars.Make, "Only cars of this make."),
        Filter("color", cars.Color, "Only cars of this color."),
        Filter("owner", UUID, "Only cars of this owner."),
    ),
)

VIEWS: tuple[View[Any], ...] = (INVENTORY_VIEW, CAR_VIEW)
BY_CATEGORY = {view.category: view for view in VIEWS}


def view_of(stream: str) -> tuple[View[Any], str] | None:
    """The view a stream feeds and the id of its row (``category-<uuid>``), if any."""
    category, _, rest = stream.partition("-")
    view = BY_CATEGORY.get(category)
    return (view, rest) if view is not None and rest else None
