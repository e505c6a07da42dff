"""Inventory: Greg Young's m-r sample as a functional aggregate.

``zero()`` is the state before any event, ``apply`` folds one event into a state, and
``fire`` decides what a command means for a state: the events to append, or why not.
Stream: ``inventoryItem-<uuid>``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from domain.errors import DomainError, ErrorCode, FieldError, ImpossibleEvent
from domain.limits import MAX_SAFE_INTEGER, NAME_MAX, Count, Name

CATEGORY = "inventoryItem"
MAX_STOCK = MAX_SAFE_INTEGER


# ---------------------------------------------------------------- commands


class Command(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"
):
    """A request with explicit intent; the class name is its domain-model."""


class CreateInventoryItemCommand(Command, frozen=True):
    name: Name


class RenameInventoryItemCommand(Command, frozen=True):
    new_name: Name


class CheckInItemsToInventoryCommand(Command, frozen=True):
    count: Count


class RemoveItemsFromInventoryCommand(Command, frozen=True):
    count: Count


class DeactivateInventoryItemCommand(Command, frozen=True):
    pass


InventoryCommand = (
    CreateInventoryItemCommand
    | RenameInventoryItemCommand
    | CheckInItemsToInventoryCommand
    | RemoveItemsFromInventoryCommand
    | DeactivateInventoryItemCommand
)


# ---------------------------------------------------------------- events


class InventoryEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", rename="camel"):
    """The tag of each event is its EventStoreDB event type."""


class InventoryItemCreated(InventoryEvent, frozen=True, tag="InventoryItemCreated"):
    name: Name


class InventoryItemRenamed(InventoryEvent, frozen=True, tag="InventoryItemRenamed"):
    new_name: Name


class ItemsCheckedInToInventory(InventoryEvent, frozen=True, tag="ItemsCheckedInToInventory"):
    count: Count


class ItemsRemovedFromInventory(InventoryEvent, frozen=True, tag="ItemsRemovedFromInventory"):
    count: Count


class InventoryItemDeactivated(InventoryEvent, frozen=True, tag="InventoryItemDeactivated"):
    pass


AnyInventoryEvent = (
    InventoryItemCreated
    | InventoryItemRenamed
    | ItemsCheckedInToInventory
    | ItemsRemovedFromInventory
    | InventoryItemDeactivated
)


# ---------------------------------------------------------------- the aggregate


class InventoryItem(msgspec.Struct, frozen=True, kw_only=True):
    exists: bool = False
    name: str = ""
    active: bool = False
    count: int = 0


def zero() -> InventoryItem:
    return InventoryItem()


def apply(state: InventoryItem, event: InventoryEvent) -> InventoryItem:
    """Fold one event; ``ImpossibleEvent`` for one ``fire`` could not have decided here."""
    if isinstance(event, InventoryItemCreated):
        if state.exists:
            raise ImpossibleEvent("the item was created already")
        return InventoryItem(exists=True, name=event.name, active=True)
    if not state.exists:
        raise ImpossibleEvent("the item has not been created")
    if not state.active:
        raise ImpossibleEvent("the item is deactivated")
    match event:
        case InventoryItemRenamed(new_name=name):
            return msgspec.structs.replace(state, name=name)
        case ItemsCheckedInToInventory(count=count):
            if count > MAX_STOCK - state.count:
                raise ImpossibleEvent(f"the stock would exceed {MAX_STOCK}")
            return msgspec.structs.replace(state, count=state.count + count)
        case ItemsRemovedFromInventory(count=count):
            if count > state.count:
                raise ImpossibleEvent(f"the stock would go below zero ({state.count} in stock)")
            return msgspec.structs.replace(state, count=state.count - count)
        case InventoryItemDeactivated():
            return msgspec.structs.replace(state, active=False)
    raise TypeError(f"not an inventory event: {event!r}")


def fire(state: InventoryItem, command: InventoryCommand) -> list[InventoryEvent] | DomainError:
    if isinstance(command, CreateInventoryItemCommand):
        if state.exists:
            return DomainError(code=ErrorCode.ALREADY_EXISTS, message="The item already exists.")
        return _named(command.name, "name", lambda name: InventoryItemCreated(name=name))
    if not state.exists:
        return DomainError(code=ErrorCode.NOT_FOUND, message="There is no such item.")
    if isinstance(command, DeactivateInventoryItemCommand):
        return [InventoryItemDeactivated()] if state.active else []
    if not state.active:
        return DomainError(code=ErrorCode.ITEM_INACTIVE, message="The item is deactivated.")
    match command:
        case RenameInventoryItemCommand(new_name=new_name):
            return _named(new_name, "newName", lambda name: InventoryItemRenamed(new_name=name))
        case CheckInItemsToInventoryCommand(count=count):
            if count > MAX_STOCK - state.count:
                return DomainError(
                    code=ErrorCode.STOCK_LIMIT,
                    message=f"Cannot check in {count} items: {state.count} in stock, and stock"
                    f" stays at most {MAX_STOCK}.",
                    fields=(
                        FieldError(field="count", message=f"at most {MAX_STOCK - state.count}"),
                    ),
                )
            return [ItemsCheckedInToInventory(count=count)]
        case RemoveItemsFromInventoryCommand(count=count):
            if count > state.count:
                return DomainError(
                    code=ErrorCode.INSUFFICIENT_STOCK,
                    message=f"Cannot remove {count} items: {state.count} in stock.",
                )
            return [ItemsRemovedFromInventory(count=count)]
    raise TypeError(f"not an inventory command: {command!r}")


def _named(
    name: str, field: str, event: Callable[[str], InventoryEvent]
) -> list[InventoryEvent] | DomainError:
    """Names are stored trimmed and must say something once trimmed."""
    trimmed = name.strip()
    if not trimmed or len(trimmed) > NAME_MAX:
        return DomainError(
            code=ErrorCode.INVALID_NAME,
            message=f"A name is 1 to {NAME_MAX} characters once trimmed.",
            fields=(FieldError(field=field, message="empty after trimming"),),
        )
    return [event(trimmed)]
