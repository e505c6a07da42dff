"""``/v1/inventory-items``: the m-r sample's commands, each named by its domain-model."""

from __future__ import annotations

from uuid import UUID

import falcon

from app.media import Accepts
from app.problems import (
    ALREADY_EXISTS,
    IDEMPOTENCY_KEY_REUSED,
    INSUFFICIENT_STOCK,
    INVALID_NAME,
    ITEM_INACTIVE,
    STOCK_LIMIT,
)
from app.queries import INVENTORY_ITEMS
from app.resources.common import COMMAND, CREATE, ON_ITEM, WRITE_ITEM, accepting
from app.resources.family import Family
from domain import inventory
from domain.aggregates import INVENTORY_ITEM


class InventoryItems(
    Family,
    presentation=INVENTORY_ITEMS,
    lists="List inventory items, a page at a time.",
    reads="Read an inventory item.",
):
    create = Accepts(inventory.CreateInventoryItemCommand)
    rename = Accepts(inventory.RenameInventoryItemCommand)
    stock: Accepts[
        inventory.CheckInItemsToInventoryCommand | inventory.RemoveItemsFromInventoryCommand
    ] = Accepts(inventory.CheckInItemsToInventoryCommand, inventory.RemoveItemsFromInventoryCommand)
    deactivate = Accepts(inventory.DeactivateInventoryItemCommand)

    @accepting(
        "Create an inventory item.",
        *create.models,
        parameters=CREATE,
        problems=(*COMMAND, ALREADY_EXISTS, INVALID_NAME, IDEMPOTENCY_KEY_REUSED),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._run(req, resp, self._writer.new_id(req), self.create, creates=True)

    @accepting(
        "Rename an inventory item.",
        *rename.models,
        parameters=WRITE_ITEM,
        problems=(*ON_ITEM, INVALID_NAME, ITEM_INACTIVE),
    )
    def on_put_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(req, resp, item_id, self.rename)

    @accepting(
        "Check items in to stock, or remove them (name which with domain-model).",
        *stock.models,
        parameters=(*WRITE_ITEM, "Idempotency-Key"),
        problems=(*ON_ITEM, ITEM_INACTIVE, INSUFFICIENT_STOCK, STOCK_LIMIT, IDEMPOTENCY_KEY_REUSED),
    )
    def on_post_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(req, resp, item_id, self.stock)

    @accepting(
        "Deactivate an inventory item (idempotent; the body may be left out).",
        *deactivate.models,
        body_required=False,
        parameters=WRITE_ITEM,
        problems=ON_ITEM,
    )
    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(req, resp, item_id, self.deactivate)

    def _run(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        item_id: UUID,
        accepts: Accepts[inventory.InventoryCommand],
        creates: bool = False,
    ) -> None:
        command, body = accepts.read(req)
        self._writer.run(
            req,
            resp,
            INVENTORY_ITEM,
            item_id,
            lambda state: inventory.fire(state, command),
            type(command).__name__,
            body,
            creates=creates,
        )
