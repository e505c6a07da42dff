"""How each view is shown over HTTP: where it lives, its models, what its records become."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from app.representations import (
    CarList,
    CarSummary,
    InventoryItemDetails,
    InventoryItemList,
    InventoryItemSummary,
    Link,
    ListPage,
)
from domain import cars, inventory
from projections.views import CAR_VIEW, INVENTORY_VIEW, Stored, View


@dataclass(frozen=True, slots=True)
class Presentation:
    """A view as an HTTP resource: where it lives, its models, what a list may filter."""

    view: View[Any]
    path: str  # the collection under /v1
    list_type: type[ListPage[Any]]
    item_type: type[msgspec.Struct]
    summary_type: type[msgspec.Struct]
    summary: Callable[[Stored[Any], list[Link], str], msgspec.Struct]
    details: Callable[[Stored[Any], list[Link]], msgspec.Struct]

    @property
    def item_models(self) -> list[str]:
        """The representations of an item: its details (the default), then its summary."""
        return [self.item_type.__name__, self.summary_type.__name__]

    def href(self, prefix: str, row_id: str) -> str:
        return f"{prefix}/v1/{self.path}/{row_id}"

    def links(self, prefix: str, row_id: str) -> list[Link]:
        return [
            Link("self", self.href(prefix, row_id)),
            Link("collection", f"{prefix}/v1/{self.path}"),
        ]


def _item_summary(
    stored: Stored[inventory.InventoryItem], links: list[Link], etag: str
) -> InventoryItemSummary:
    return InventoryItemSummary(
        id=stored.id, name=stored.state.name, active=stored.active, etag=etag, links=links
    )


def _item_details(stored: Stored[inventory.InventoryItem], links: list[Link]) -> msgspec.Struct:
    item = stored.state
    return InventoryItemDetails(id=stored.id, name=item.name, current_count=item.count, links=links)


def _car_summary(stored: Stored[cars.Car], links: list[Link], etag: str) -> CarSummary:
    fields = msgspec.structs.asdict(stored.state.representation())
    return CarSummary(id=stored.id, active=stored.active, etag=etag, links=links, **fields)


def _car_details(stored: Stored[cars.Car], links: list[Link]) -> msgspec.Struct:
    return stored.state.representation()


INVENTORY_ITEMS = Presentation(
    view=INVENTORY_VIEW,
    path="inventory-items",
    list_type=InventoryItemList,
    item_type=InventoryItemDetails,
    summary_type=InventoryItemSummary,
    summary=_item_summary,
    details=_item_details,
)
CAR_ITEMS = Presentation(
    view=CAR_VIEW,
    path="cars",
    list_type=CarList,
    item_type=cars.CarRepresentation,
    summary_type=CarSummary,
    summary=_car_summary,
    details=_car_details,
)
PRESENTATIONS = {p.view.category: p for p in (INVENTORY_ITEMS, CAR_ITEMS)}
