"""The read models: how each category's stream folds into one row of its view.

The fold is the domain's own ``apply`` (the same code the command side uses to rebuild an
aggregate), so a view cannot drift from the model: a row is an aggregate's state as of
``version``, flattened into columns. What the views add is only what queries need: a
creation ``ordinal`` for stable paging, an ``active`` flag, and the text that search
matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from domain import cars, inventory


@dataclass(frozen=True, slots=True)
class View:
    """One category of streams and the table that holds one row per stream."""

    category: str
    table: str
    columns: tuple[str, ...]  # the state's columns, after id, ordinal, version and active
    indexes: tuple[str, ...]  # columns a list can filter on with equality
    events: msgspec.json.Decoder[Any]
    zero: Callable[[], Any]
    apply: Callable[[Any, Any], Any]
    from_row: Callable[[tuple[Any, ...]], Any]  # the state columns back into the state
    to_row: Callable[[Any], tuple[Any, ...]]
    is_active: Callable[[Any], bool]
    search_text: Callable[[Any], str]

    def state_of(self, row: tuple[Any, ...] | None) -> Any:
        return self.zero() if row is None else self.from_row(row)


INVENTORY = View(
    category=inventory.CATEGORY,
    table="inventory_items",
    columns=("name", "current_count"),
    indexes=(),
    events=msgspec.json.Decoder(inventory.AnyInventoryEvent),
    zero=inventory.zero,
    apply=inventory.apply,
    from_row=lambda row: inventory.InventoryItem(
        exists=True, active=bool(row[0]), name=row[1], count=row[2]
    ),
    to_row=lambda item: (item.name, item.count),
    is_active=lambda item: bool(item.active),
    search_text=lambda item: str(item.name),
)


def _car_from_row(row: tuple[Any, ...]) -> cars.Car:
    active, year, make, model, color, mileage, vin, condition, owner = row
    return cars.Car(
        exists=True,
        deleted=not active,
        year=year,
        make=make,
        model=model,
        color=color,
        mileage=mileage,
        vin=vin,
        condition=condition,
        owner=UUID(owner),
    )


CARS = View(
    category=cars.CATEGORY,
    table="cars",
    columns=("year", "make", "model", "color", "mileage", "vin", "condition", "owner"),
    indexes=("make", "color", "owner"),
    events=msgspec.json.Decoder(cars.AnyCarEvent),
    zero=cars.zero,
    apply=cars.apply,
    from_row=_car_from_row,
    to_row=lambda car: (
        car.year,
        car.make,
        car.model,
        car.color,
        car.mileage,
        car.vin,
        car.condition,
        str(car.owner),
    ),
    is_active=lambda car: not car.deleted,
    search_text=lambda car: f"{car.year} {car.make} {car.model} {car.color} {car.vin}",
)

VIEWS: tuple[View, ...] = (INVENTORY, CARS)
BY_CATEGORY = {view.category: view for view in VIEWS}


def view_of(stream: str) -> tuple[View, str] | None:
    """The view a stream feeds and the id of its row (``category-<uuid>``), if any."""
    category, _, rest = stream.partition("-")
    view = BY_CATEGORY.get(category)
    return (view, rest) if view is not None and rest else None
