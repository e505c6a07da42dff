"""Inventory rules as given events / when command / then events or error. No I/O."""

from __future__ import annotations

from functools import reduce

import pytest

from domain import inventory as inv
from domain.errors import DomainError, ErrorCode


def given(*events: inv.InventoryEvent) -> inv.InventoryItem:
    return reduce(inv.apply, events, inv.zero())


CREATED = inv.InventoryItemCreated(name="Widget")
STOCKED = inv.ItemsCheckedInToInventory(count=5)
DEACTIVATED = inv.InventoryItemDeactivated()


@pytest.mark.parametrize(
    ("history", "command", "then"),
    [
        ((), inv.CreateInventoryItemCommand(name="Widget"), [CREATED]),
        ((), inv.CreateInventoryItemCommand(name="  Widget  "), [CREATED]),  # stored trimmed
        (
            (CREATED,),
            inv.RenameInventoryItemCommand(new_name="Gadget"),
            [inv.InventoryItemRenamed(new_name="Gadget")],
        ),
        ((CREATED,), inv.CheckInItemsToInventoryCommand(count=5), [STOCKED]),
        (
            (CREATED, STOCKED),
            inv.RemoveItemsFromInventoryCommand(count=5),
            [inv.ItemsRemovedFromInventory(count=5)],
        ),
        ((CREATED,), inv.DeactivateInventoryItemCommand(), [DEACTIVATED]),
        ((CREATED, DEACTIVATED), inv.DeactivateInventoryItemCommand(), []),  # idempotent
    ],
)
def test_commands_decide_events(
    history: tuple[inv.InventoryEvent, ...],
    command: inv.InventoryCommand,
    then: list[inv.InventoryEvent],
) -> None:
    assert inv.fire(given(*history), command) == then


@pytest.mark.parametrize(
    ("history", "command", "code"),
    [
        ((CREATED,), inv.CreateInventoryItemCommand(name="Again"), ErrorCode.ALREADY_EXISTS),
        ((), inv.CreateInventoryItemCommand(name="   "), ErrorCode.INVALID_NAME),
        ((CREATED,), inv.RenameInventoryItemCommand(new_name="\t"), ErrorCode.INVALID_NAME),
        ((), inv.RenameInventoryItemCommand(new_name="X"), ErrorCode.NOT_FOUND),
        ((), inv.DeactivateInventoryItemCommand(), ErrorCode.NOT_FOUND),
        (
            (CREATED, DEACTIVATED),
            inv.RenameInventoryItemCommand(new_name="X"),
            ErrorCode.ITEM_INACTIVE,
        ),
        (
            (CREATED, DEACTIVATED),
            inv.CheckInItemsToInventoryCommand(count=1),
            ErrorCode.ITEM_INACTIVE,
        ),
        (
            (CREATED, DEACTIVATED),
            inv.RemoveItemsFromInventoryCommand(count=1),
            ErrorCode.ITEM_INACTIVE,
        ),
        ((CREATED,), inv.RemoveItemsFromInventoryCommand(count=1), ErrorCode.INSUFFICIENT_STOCK),
        (
            (CREATED, STOCKED),
            inv.RemoveItemsFromInventoryCommand(count=6),
            ErrorCode.INSUFFICIENT_STOCK,
        ),
    ],
)
def test_commands_refused(
    history: tuple[inv.InventoryEvent, ...], command: inv.InventoryCommand, code: ErrorCode
) -> None:
    outcome = inv.fire(given(*history), command)
    assert isinstance(outcome, DomainError)
    assert outcome.code is code


def test_name_limit_counts_the_trimmed_name() -> None:
    outcome = inv.fire(inv.zero(), inv.CreateInventoryItemCommand(name=" " + "x" * 200 + " "))
    assert outcome == [inv.InventoryItemCreated(name="x" * 200)]


def test_state_folds_every_event() -> None:
    state = given(
        CREATED,
        inv.InventoryItemRenamed(new_name="Gadget"),
        inv.ItemsCheckedInToInventory(count=7),
        inv.ItemsRemovedFromInventory(count=2),
        DEACTIVATED,
    )
    assert state == inv.InventoryItem(exists=True, name="Gadget", active=False, count=5)


def test_events_round_trip_as_tagged_json() -> None:
    import msgspec

    decoder = msgspec.json.Decoder(inv.AnyInventoryEvent)
    for event in (CREATED, STOCKED, DEACTIVATED, inv.InventoryItemRenamed(new_name="N")):
        data = msgspec.json.encode(event)
        assert decoder.decode(data) == event
    assert msgspec.json.encode(inv.InventoryItemRenamed(new_name="N")) == (
        b'{"type":"InventoryItemRenamed","newName":"N"}'
    )
