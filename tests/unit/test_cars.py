"""Car rules (the trigger pattern) as given events / when representation / then events."""

from __future__ import annotations

from functools import reduce
from uuid import UUID, uuid4

import msgspec
import pytest

from domain import cars
from domain.errors import DomainError, ErrorCode

OWNER = UUID("6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f")
CAR = cars.CarRepresentation(
    year=2020,
    make="Ford",
    model="Escape",
    color="red",
    mileage=1000,
    vin="1FMCU9GD5LUA12345",
    condition="good",
    owner=OWNER,
)
CREATED = cars.CarCreated(**msgspec.structs.asdict(CAR))


def given(*events: cars.CarEvent) -> cars.Car:
    return reduce(cars.apply, events, cars.zero())


def changed(**fields: object) -> cars.CarRepresentation:
    return msgspec.structs.replace(CAR, **fields)


def test_create_then_read_back_the_same_representation() -> None:
    assert cars.fire(cars.zero(), cars.Create(car=CAR)) == [CREATED]
    assert given(CREATED).representation() == CAR


def test_create_twice_is_refused() -> None:
    outcome = cars.fire(given(CREATED), cars.Create(car=CAR))
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.ALREADY_EXISTS


NEW_OWNER = uuid4()


@pytest.mark.parametrize(
    ("proposed", "then"),
    [
        (CAR, []),  # nothing differs: nothing to append
        (changed(color="blue"), [cars.ColorChanged(color="blue")]),
        (changed(mileage=1500), [cars.MileageChanged(mileage=1500)]),
        (changed(condition="poor"), [cars.ConditionChanged(condition="poor")]),
        (changed(owner=NEW_OWNER), [cars.OwnerChanged(owner=NEW_OWNER)]),
        (
            changed(color="white", mileage=2000, condition="average", owner=NEW_OWNER),
            [
                cars.ColorChanged(color="white"),
                cars.MileageChanged(mileage=2000),
                cars.ConditionChanged(condition="average"),
                cars.OwnerChanged(owner=NEW_OWNER),
            ],
        ),
    ],
)
def test_a_whole_representation_yields_exactly_the_triggers_that_differ(
    proposed: cars.CarRepresentation, then: list[cars.CarEvent]
) -> None:
    assert cars.decide(given(CREATED), proposed) == then


@pytest.mark.parametrize(
    ("proposed", "fields"),
    [
        (changed(year=2021), ["year"]),
        (changed(make="BMW", model="M3"), ["make", "model"]),
        (changed(vin="1FMCU9GD5LUA99999", color="blue"), ["vin"]),
    ],
)
def test_what_cannot_change_is_refused_naming_every_field(
    proposed: cars.CarRepresentation, fields: list[str]
) -> None:
    outcome = cars.decide(given(CREATED), proposed)
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.IMMUTABLE_FIELD
    assert [f.field for f in outcome.fields] == fields


def test_odometer_does_not_roll_back() -> None:
    outcome = cars.decide(given(CREATED), changed(mileage=999, color="blue"))
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.MILEAGE_DECREASE


def test_delete_is_idempotent_and_final() -> None:
    assert cars.fire(given(CREATED), cars.Delete()) == [cars.CarDeleted()]
    deleted = given(CREATED, cars.CarDeleted())
    assert cars.fire(deleted, cars.Delete()) == []
    outcome = cars.decide(deleted, changed(color="blue"))
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.CAR_DELETED


def test_triggers_on_a_missing_car_are_not_found() -> None:
    outcome = cars.fire(cars.zero(), cars.ChangeColor(color="blue"))
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.NOT_FOUND


def test_validation_reports_every_rule_at_once() -> None:
    bad = changed(year=2099, model="M5", owner=UUID(int=0))
    assert [e.field for e in cars.validate(bad, next_year=2027)] == ["year", "model", "owner"]
    assert cars.validate(CAR, next_year=2027) == ()
    assert cars.validate(changed(year=2027), next_year=2027) == ()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vin", "1FMCU9GD5LUA1234"),
        ("vin", "1FMCU9GD5LUA1234O"),
        ("mileage", -1),
        ("year", 1885),
        ("color", "green"),
        ("condition", "new"),
        ("make", "Tesla"),
    ],
)
def test_field_types_reject_bad_values(field: str, value: object) -> None:
    raw = msgspec.to_builtins(CAR) | {field: value}
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert(raw, cars.CarRepresentation)


def test_events_round_trip_as_tagged_json() -> None:
    decoder = msgspec.json.Decoder(cars.AnyCarEvent)
    for event in (
        CREATED,
        cars.ColorChanged(color="blue"),
        cars.OwnerChanged(owner=OWNER),
        cars.CarDeleted(),
    ):
        assert decoder.decode(msgspec.json.encode(event)) == event
