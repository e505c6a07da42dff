"""Properties a table of examples cannot cover, with Hypothesis.

- Any sequence of commands, valid or not, keeps the inventory's invariants: stock within
  0..2^53-1 and equal to what was checked in minus what was removed, a refused command
  appends nothing, every decided event fits the event types (it decodes back unchanged),
  and a fresh fold of the stream (version = its events - 1) reaches the same state.
- Any sequence of recorded events, possible or not, readable or not, folded by the
  projector into a real read store equals the domain's own fold (``domain.history``).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import cars
from domain import inventory as inv
from domain.aggregates import is_id
from domain.errors import DomainError, ImpossibleEvent
from domain.history import event_type, evolve
from domain.limits import MAX_SAFE_INTEGER
from eventstore.feed import Recorded
from projections import schema
from projections.reader import ReadModels
from projections.views import CAR_VIEW, INVENTORY_VIEW, Stored, View
from projections.writer import ReadStoreWriter

ENCODE = msgspec.json.Encoder().encode
INVENTORY_EVENTS = msgspec.json.Decoder(inv.AnyInventoryEvent)
CAR_EVENTS = msgspec.json.Decoder(cars.AnyCarEvent)

counts = st.one_of(
    st.integers(min_value=-3, max_value=50),
    st.sampled_from([MAX_SAFE_INTEGER, MAX_SAFE_INTEGER - 1, MAX_SAFE_INTEGER + 1, 2**63]),
    st.integers(min_value=-(2**70), max_value=2**70),
)
names = st.one_of(st.text(max_size=205), st.sampled_from(["Widget", "  padded  ", " ", ""]))
COMMANDS: dict[str, tuple[type[inv.Command], dict[str, Any]]] = {
    "create": (inv.CreateInventoryItemCommand, {"name": names}),
    "rename": (inv.RenameInventoryItemCommand, {"newName": names}),
    "check-in": (inv.CheckInItemsToInventoryCommand, {"count": counts}),
    "remove": (inv.RemoveItemsFromInventoryCommand, {"count": counts}),
    "deactivate": (inv.DeactivateInventoryItemCommand, {}),
}
raw_commands = st.sampled_from(sorted(COMMANDS)).flatmap(
    lambda kind: st.fixed_dictionaries(COMMANDS[kind][1]).map(lambda body: (kind, body))
)


@given(st.lists(raw_commands, max_size=40))
def test_any_command_sequence_keeps_the_inventory_invariants(
    sequence: list[tuple[str, dict[str, Any]]],
) -> None:
    state, appended = inv.zero(), list[inv.InventoryEvent]()
    for kind, body in sequence:
        try:  # the HTTP edge decodes bodies with these same types
            command = msgspec.json.decode(ENCODE(body), type=COMMANDS[kind][0])
        except msgspec.ValidationError:
            continue  # refused at the door: nothing decided, nothing appended
        decided = inv.fire(state, command)  # type: ignore[arg-type]
        if isinstance(decided, DomainError):
            continue  # refused by the domain: nothing appended
        for event in decided:
            assert INVENTORY_EVENTS.decode(ENCODE(event)) == event  # fits the event types
            state = evolve(INVENTORY_EVENTS, inv.apply, state, event_type(event), ENCODE(event))
            appended.append(event)
        assert 0 <= state.count <= MAX_SAFE_INTEGER
    # The stream holds exactly what was appended: a fresh fold of it (what a cold worker and
    # the projector do) accepts every event and reaches the same state; stock is the sum.
    fresh = inv.zero()
    for event in appended:
        fresh = evolve(INVENTORY_EVENTS, inv.apply, fresh, event_type(event), ENCODE(event))
    assert fresh == state
    assert state.exists == any(isinstance(e, inv.InventoryItemCreated) for e in appended)
    checked_in = sum(e.count for e in appended if isinstance(e, inv.ItemsCheckedInToInventory))
    removed = sum(e.count for e in appended if isinstance(e, inv.ItemsRemovedFromInventory))
    assert state.count == checked_in - removed


# ---------------------------------------------------------------- projector fold = domain fold

ITEM = UUID("00000000-0000-4000-8000-000000000001")
OWNER = "00000000-0000-4000-8000-0000000000aa"


def recorded(type_: str, **fields: Any) -> tuple[str, bytes]:
    return type_, ENCODE({"type": type_, **fields})


inventory_events = st.one_of(
    names.map(lambda n: recorded("InventoryItemCreated", name=n)),
    names.map(lambda n: recorded("InventoryItemRenamed", newName=n)),
    counts.map(lambda c: recorded("ItemsCheckedInToInventory", count=c)),
    counts.map(lambda c: recorded("ItemsRemovedFromInventory", count=c)),
    st.just(recorded("InventoryItemDeactivated")),
    st.just(("InventoryItemRenamed", ENCODE({"type": "InventoryItemCreated", "name": "x"}))),
    st.tuples(st.sampled_from(["ItemsShipped", "ItemsCheckedInToInventory"]), st.binary()),
)
car_events = st.one_of(
    st.builds(
        lambda year, make, model, mileage, owner: recorded(
            "CarCreated",
            year=year,
            make=make,
            model=model,
            color="red",
            mileage=mileage,
            vin="1FTFW1ET5DFC10312",
            condition="good",
            owner=owner,
        ),
        st.sampled_from([1885, 1886, 2020, 9999, 10_000]),
        st.sampled_from(["Ford", "BMW", "Tesla"]),
        st.sampled_from(["Escape", "M3", "S"]),
        st.sampled_from([-1, 0, 50, cars.MAX_MILEAGE, cars.MAX_MILEAGE + 1]),
        st.sampled_from([OWNER, "00000000-0000-0000-0000-000000000000", "nope"]),
    ),
    st.sampled_from(["red", "blue", "mauve"]).map(lambda c: recorded("ColorChanged", color=c)),
    st.integers(-5, 10**8).map(lambda m: recorded("MileageChanged", mileage=m)),
    st.sampled_from([OWNER, "00000000-0000-0000-0000-000000000000"]).map(
        lambda o: recorded("OwnerChanged", owner=o)
    ),
    st.just(recorded("CarDeleted")),
    st.tuples(st.just("CarCreated"), st.binary(max_size=20)),
)


def domain_fold(view: View[Any], history: list[tuple[str, bytes]]) -> Any:
    state = view.aggregate.zero()
    for type_, data in history:
        with contextlib.suppress(ImpossibleEvent):
            state = view.aggregate.evolve(state, type_, data)
    return state


def projector_fold(
    view: View[Any], history: list[tuple[str, bytes]], batch: int
) -> Stored[Any] | None:
    stream = f"{view.category}-{ITEM}"
    with tempfile.TemporaryDirectory() as directory:
        writer = ReadStoreWriter(schema.open_current(Path(directory)))
        events = [
            Recorded(stream, type_, data, version, 100 + version)
            for version, (type_, data) in enumerate(history)
        ]
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            writer.commit(chunk, chunk[-1].position)
        writer.close()
        return ReadModels(Path(directory)).item(view, str(ITEM))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.tuples(st.just(INVENTORY_VIEW), st.lists(inventory_events, max_size=15)),
        st.tuples(st.just(CAR_VIEW), st.lists(car_events, max_size=15)),
    ),
    st.integers(min_value=1, max_value=5),
)
def test_the_projector_folds_any_history_as_the_domain_does(
    view_and_history: tuple[View[Any], list[tuple[str, bytes]]], batch: int
) -> None:
    view, history = view_and_history
    expected = domain_fold(view, history)
    row = projector_fold(view, history, batch)
    if not expected.exists:
        assert row is None
        return
    assert row is not None
    assert row.version == len(history) - 1  # the version counts every event, set aside or not
    assert row.active == view.is_active(expected)
    assert row.state == expected


def _canonical(text: str) -> bool:
    try:
        return str(UUID(text)) == text
    except ValueError:
        return False


uuid_like = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: str(u) + "\n"),
    st.uuids().map(lambda u: "urn:uuid:" + str(u)),
    st.text(alphabet="0123456789abcdefABCDEF-{}\n ", max_size=40),
    st.text(),
)


@given(uuid_like)
def test_is_id_is_exactly_the_canonical_uuid_text(text: str) -> None:
    """The projector's quick pattern accepts what ``str(UUID(...))`` writes, and only that."""
    assert is_id(text) == _canonical(text)


def test_is_id_refuses_every_one_character_change() -> None:
    """Each position of a canonical UUID, each kind of character put there."""
    text = "0123abcd-ef01-4a5b-8c9d-ba9876543210"
    assert is_id(text)
    for at in range(len(text)):
        for c in "0aAfFgG-_ \n\u0660":
            changed = text[:at] + c + text[at + 1 :]
            assert is_id(changed) == _canonical(changed), changed
