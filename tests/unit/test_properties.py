"""Properties a table of examples cannot cover, with Hypothesis.

- Any sequence of commands, valid or not, keeps the inventory's invariants: stock within
  0..2^53-1 and equal to what was checked in minus what was removed, a refused command
  appends nothing, every decided event fits the event types (it decodes back unchanged),
  and a fresh fold of the stream (version = its events - 1) reaches the same state.
- The domain decides every rule: for any sequence of car triggers (and whole or patched
  representations), or of inventory commands, ``fire`` never decides an event that
  ``apply`` calls impossible, and every event it decides fits the event types.
- Any sequence of recorded events, possible or not, readable or not, folded by the
  projector into a real read store equals the domain's own fold (``domain.history``).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import cars
from domain import inventory as inv
from domain.aggregates import CAR, INVENTORY_ITEM, Aggregate, is_id
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


# Under a loaded machine generation is slow: no property here fails on time.
UNHURRIED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@UNHURRIED
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


# ---------------------------------------------------------------- fire decides only the possible

Step = Callable[[Any], Sequence[msgspec.Struct] | DomainError]


def follow(aggregate: Aggregate[Any], steps: list[Step]) -> None:
    """Run each step on the state the previous ones reached: whatever a step decides must be
    an event ``apply`` accepts there, and one that fits the event types; the stream they make
    folds, fresh, to the same state."""
    state, appended = aggregate.zero(), list[msgspec.Struct]()
    for step in steps:
        decided = step(state)
        if isinstance(decided, DomainError):
            continue  # refused: nothing appended
        for event in decided:
            assert aggregate.events.decode(ENCODE(event)) == event  # fits the event types
            try:
                state = aggregate.apply(state, event)
            except ImpossibleEvent as error:
                raise AssertionError(f"decided {event!r}, which apply refuses: {error}") from None
            appended.append(event)
    fresh = aggregate.zero()
    for event in appended:
        fresh = aggregate.evolve(fresh, event_type(event), ENCODE(event))
    assert fresh == state


def decoded(model: type[msgspec.Struct], raw: dict[str, Any]) -> msgspec.Struct | None:
    """``raw`` as the edge decodes it (None: refused at the door)."""
    try:
        return msgspec.convert(raw, model)
    except msgspec.ValidationError:
        return None


@UNHURRIED
@given(st.lists(raw_commands, max_size=40))
def test_inventory_fire_never_decides_what_apply_refuses(
    sequence: list[tuple[str, dict[str, Any]]],
) -> None:
    commands = [decoded(COMMANDS[kind][0], body) for kind, body in sequence]
    follow(
        INVENTORY_ITEM,
        [lambda s, c=c: inv.fire(s, c) for c in commands if c is not None],  # type: ignore[misc]
    )


NIL = "00000000-0000-0000-0000-000000000000"
# Values of every kind a rule tells apart (a Ford M5, a nil owner, next year and the one
# after, mileage going down), and a few of a wrong type, which the door refuses.
CAR_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "year": st.sampled_from([1886, 2019, 2026, 2027, 2028, 9999, 1885]),
    "make": st.sampled_from(["Ford", "BMW", "Tesla"]),
    "model": st.sampled_from(["Escape", "F150", "M3", "M5"]),
    "color": st.sampled_from(["red", "white", "blue"]),
    "mileage": st.one_of(
        st.integers(min_value=0, max_value=3000),
        st.sampled_from([cars.MAX_MILEAGE, cars.MAX_MILEAGE + 1, -1]),
    ),
    "vin": st.sampled_from(["1FMCU9GD5LUA12345", "WBS8M9C50J5K98765"]),
    "condition": st.sampled_from(["excellent", "good", "average", "poor"]),
    "owner": st.sampled_from(
        [
            "00000000-0000-4000-8000-0000000000aa",
            "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f",
            NIL,
            "nope",
        ]
    ),
}
FIELD_TYPES = {f.name: f.type for f in msgspec.structs.fields(cars.CarRepresentation)}
TRIGGERS: dict[str, tuple[type[cars.Trigger], tuple[str, ...]]] = {
    "create": (cars.Create, tuple(CAR_VALUES)),
    "color": (cars.ChangeColor, ("color",)),
    "mileage": (cars.UpdateMileage, ("mileage",)),
    "condition": (cars.UpdateCondition, ("condition",)),
    "owner": (cars.ChangeOwner, ("owner",)),
    "delete": (cars.Delete, ()),
}
car_steps = st.tuples(
    st.sampled_from([*TRIGGERS, "create", "put", "put", "patch", "patch"]),
    st.fixed_dictionaries(CAR_VALUES),
    st.sets(st.sampled_from(sorted(CAR_VALUES))),
)


def car_step(kind: str, raw: dict[str, Any], patched: set[str], next_year: int) -> Step | None:
    """One step of a client, decoded as the edge decodes it: a trigger, a whole
    representation (PUT), or some of its fields (PATCH)."""
    if kind == "put":
        car = decoded(cars.CarRepresentation, raw)
        return None if car is None else lambda s: cars.decide(s, car, next_year)  # type: ignore[arg-type]
    if kind == "patch":
        try:
            changes = {name: msgspec.convert(raw[name], FIELD_TYPES[name]) for name in patched}
        except msgspec.ValidationError:
            return None
        return lambda s: cars.revise(s, changes, next_year)
    model, names = TRIGGERS[kind]
    fields = {name: raw[name] for name in names}
    trigger = decoded(model, {"car": fields} if model is cars.Create else fields)
    return None if trigger is None else lambda s: cars.fire(s, trigger, next_year)  # type: ignore[arg-type]


@UNHURRIED
@given(st.lists(car_steps, max_size=25), st.sampled_from([1886, 2019, 2026, 2027, 9999]))
def test_car_fire_never_decides_what_apply_refuses(
    sequence: list[tuple[str, dict[str, Any], set[str]]], next_year: int
) -> None:
    steps = [car_step(kind, raw, patched, next_year) for kind, raw, patched in sequence]
    follow(CAR, [step for step in steps if step is not None])


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
