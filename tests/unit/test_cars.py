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
NEXT_YEAR = 2027  # the clock says 2026


def given(*events: cars.CarEvent) -> cars.Car:
    return reduce(cars.apply, events, cars.zero())


def changed(**fields: object) -> cars.CarRepresentation:
    return msgspec.structs.replace(CAR, **fields)


def test_create_then_read_back_the_same_representation() -> None:
    assert cars.fire(cars.zero(), cars.Create(car=CAR), NEXT_YEAR) == [CREATED]
    assert given(CREATED).representation() == CAR


def test_create_twice_is_refused() -> None:
    outcome = cars.fire(given(CREATED), cars.Create(car=CAR), NEXT_YEAR)
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
    assert cars.decide(given(CREATED), proposed, NEXT_YEAR) == then


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
    outcome = cars.decide(given(CREATED), proposed, NEXT_YEAR)
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.IMMUTABLE_FIELD
    assert [f.field for f in outcome.fields] == fields


def test_odometer_does_not_roll_back() -> None:
    outcome = cars.decide(given(CREATED), changed(mileage=999, color="blue"), NEXT_YEAR)
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.MILEAGE_DECREASE


def test_delete_is_idempotent_and_final() -> None:
    assert cars.fire(given(CREATED), cars.Delete(), NEXT_YEAR) == [cars.CarDeleted()]
    deleted = given(CREATED, cars.CarDeleted())
    assert cars.fire(deleted, cars.Delete(), NEXT_YEAR) == []
    outcome = cars.decide(deleted, changed(color="blue"), NEXT_YEAR)
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.CAR_DELETED


def test_triggers_on_a_missing_car_are_not_found() -> None:
    outcome = cars.fire(cars.zero(), cars.ChangeColor(color="blue"), NEXT_YEAR)
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


@pytest.mark.parametrize(
    ("car", "fields"),
    [
        (changed(make="BMW", model="F150"), ["model"]),
        (changed(owner=UUID(int=0)), ["owner"]),
        (changed(year=NEXT_YEAR + 1), ["year"]),
        (changed(year=2099, model="M5", owner=UUID(int=0)), ["year", "model", "owner"]),
    ],
)
def test_create_decides_every_rule_of_the_car(
    car: cars.CarRepresentation, fields: list[str]
) -> None:
    outcome = cars.fire(cars.zero(), cars.Create(car=car), NEXT_YEAR)
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.INVALID_CAR
    assert [f.field for f in outcome.fields] == fields


def test_a_car_of_next_year_may_be_created() -> None:
    outcome = cars.fire(cars.zero(), cars.Create(car=changed(year=NEXT_YEAR)), NEXT_YEAR)
    assert outcome == [msgspec.structs.replace(CREATED, year=NEXT_YEAR)]


def test_a_nil_owner_is_refused_by_the_trigger_itself() -> None:
    outcome = cars.fire(given(CREATED), cars.ChangeOwner(owner=UUID(int=0)), NEXT_YEAR)
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.INVALID_CAR
    assert [f.field for f in outcome.fields] == ["owner"]


def test_a_whole_representation_is_held_to_the_rules_before_it_is_compared() -> None:
    """The rules first, all of them: a Ford M5 is invalid before it is an immutable change."""
    outcome = cars.decide(given(CREATED), changed(model="M5", owner=UUID(int=0)), NEXT_YEAR)
    assert isinstance(outcome, DomainError) and outcome.code is ErrorCode.INVALID_CAR
    assert [f.field for f in outcome.fields] == ["model", "owner"]


def test_a_revision_changes_the_named_fields_and_decides_the_whole() -> None:
    assert cars.revise(given(CREATED), {"color": "blue"}, NEXT_YEAR) == [
        cars.ColorChanged(color="blue")
    ]
    assert cars.revise(given(CREATED), {}, NEXT_YEAR) == []
    refused = cars.revise(given(CREATED), {"mileage": 10}, NEXT_YEAR)
    assert isinstance(refused, DomainError) and refused.code is ErrorCode.MILEAGE_DECREASE
    missing = cars.revise(cars.zero(), {"color": "blue"}, NEXT_YEAR)
    assert isinstance(missing, DomainError) and missing.code is ErrorCode.NOT_FOUND


def test_rules_over_a_body_that_did_not_decode_read_the_fields_that_did() -> None:
    raw = {"year": "2099", "make": "Ford", "model": "M5", "mileage": -1, "owner": "nope"}
    assert [e.field for e in cars.raw_rule_errors(raw, NEXT_YEAR)] == ["year", "model"]
    assert cars.raw_rule_errors({}, NEXT_YEAR) == ()
