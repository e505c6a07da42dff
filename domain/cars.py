"""Cars: Matt Hawkins' trigger pattern as a functional aggregate.

Clients send a whole representation of the car. ``triggers`` compares the current state with
the proposed one and names each change as an explicit trigger; ``fire`` turns one trigger
into events or refuses it, and ``decide`` does so for a whole representation; ``apply`` folds
events into state. Stream: ``car-<uuid>``.

Every rule is decided here. A field's type says what it can (msgspec, when the edge decodes
a body); what depends on meaning (a Ford M5, a nil owner, a year past the next, mileage
going down) is refused by ``fire`` and ``decide`` as a ``DomainError``. Next year comes from
the caller's clock, as an argument, so the domain stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from domain.errors import DomainError, ErrorCode, FieldError, ImpossibleEvent

CATEGORY = "car"
FIRST_YEAR = 1886  # the Benz Patent-Motorwagen
LAST_YEAR = 9999  # what an event may record at all; requests are held to next year
MAX_MILEAGE = 9_999_999  # seven digits, as odometers have
MODELS: dict[str, tuple[str, ...]] = {"Ford": ("Escape", "F150"), "BMW": ("M3", "M5")}

Make = Literal["Ford", "BMW"]
Model = Literal["Escape", "F150", "M3", "M5"]
Color = Literal["red", "white", "blue"]
Condition = Literal["excellent", "good", "average", "poor"]
Year = Annotated[
    int, msgspec.Meta(ge=FIRST_YEAR, le=LAST_YEAR, description="model year, up to next year")
]
Mileage = Annotated[
    int,
    msgspec.Meta(ge=0, le=MAX_MILEAGE, description="odometer reading; never goes down"),
]
Vin = Annotated[
    str,
    msgspec.Meta(
        pattern="^[A-HJ-NPR-Z0-9]{17}$",
        description="17 characters of the VIN alphabet (no I, O or Q)",
    ),
]


class CarRepresentation(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"
):
    """The full state a client sends (POST, PUT) and reads; domain-model ``Car``."""

    year: Year
    make: Make
    model: Model
    color: Color
    mileage: Mileage
    vin: Vin
    condition: Condition
    owner: UUID


IMMUTABLE = ("year", "make", "model", "vin")
INVALID = "The car breaks rules."
# The fields a rule reads, and the type each must have for the rule to read it.
RULED: tuple[tuple[str, type], ...] = (
    ("year", int),
    ("make", str),
    ("model", str),
    ("owner", UUID),
)


def validate(car: CarRepresentation, next_year: int) -> tuple[FieldError, ...]:
    """The rules a single field's type cannot say: all of them, reported together."""
    return rule_errors(next_year, year=car.year, make=car.make, model=car.model, owner=car.owner)


def raw_rule_errors(raw: Mapping[str, Any], next_year: int) -> tuple[FieldError, ...]:
    """The same rules over a body that did not decode as a whole: over each field a rule
    reads that has the type it needs, so a body with type errors hears of every rule too."""
    known: dict[str, Any] = {}
    for name, kind in RULED:
        try:
            known[name] = msgspec.convert(raw.get(name), kind, strict=False)
        except msgspec.ValidationError:
            continue
    return rule_errors(next_year, **known)


def rule_errors(
    next_year: int,
    *,
    year: int | None = None,
    make: str | None = None,
    model: str | None = None,
    owner: UUID | None = None,
) -> tuple[FieldError, ...]:
    """The same rules over whichever fields are known (None: the field did not decode), so a
    body with type errors still hears about every rule it breaks."""
    errors = []
    if year is not None and year > next_year:
        errors.append(FieldError(field="year", message=f"must be at most {next_year}"))
    if make in MODELS and model is not None and model not in MODELS[make]:
        models = " or ".join(MODELS[make])
        errors.append(FieldError(field="model", message=f"{make} makes {models}"))
    if owner is not None and owner.int == 0:
        errors.append(FieldError(field="owner", message="must not be the nil UUID"))
    return tuple(errors)


# ---------------------------------------------------------------- triggers


class Trigger(msgspec.Struct, frozen=True, kw_only=True):
    """An explicit intent derived from a representation."""


class Create(Trigger, frozen=True):
    car: CarRepresentation


class ChangeColor(Trigger, frozen=True):
    color: Color


class UpdateMileage(Trigger, frozen=True):
    mileage: Mileage


class UpdateCondition(Trigger, frozen=True):
    condition: Condition


class ChangeOwner(Trigger, frozen=True):
    owner: UUID


class Delete(Trigger, frozen=True):
    pass


# ---------------------------------------------------------------- events


class CarEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", rename="camel"):
    """The tag of each event is its EventStoreDB event type."""


class CarCreated(CarEvent, frozen=True, tag="CarCreated"):
    year: Year
    make: Make
    model: Model
    color: Color
    mileage: Mileage
    vin: Vin
    condition: Condition
    owner: UUID


class ColorChanged(CarEvent, frozen=True, tag="ColorChanged"):
    color: Color


class MileageChanged(CarEvent, frozen=True, tag="MileageChanged"):
    mileage: Mileage


class ConditionChanged(CarEvent, frozen=True, tag="ConditionChanged"):
    condition: Condition


class OwnerChanged(CarEvent, frozen=True, tag="OwnerChanged"):
    owner: UUID


class CarDeleted(CarEvent, frozen=True, tag="CarDeleted"):
    pass


AnyCarEvent = (
    CarCreated | ColorChanged | MileageChanged | ConditionChanged | OwnerChanged | CarDeleted
)


# ---------------------------------------------------------------- the aggregate


class Car(msgspec.Struct, frozen=True, kw_only=True):
    exists: bool = False
    deleted: bool = False
    year: int = 0
    make: str = ""
    model: str = ""
    color: str = ""
    mileage: int = 0
    vin: str = ""
    condition: str = ""
    owner: UUID | None = None

    def representation(self) -> CarRepresentation:
        """The car as clients read it (and send it back changed)."""
        return msgspec.convert(self, CarRepresentation, from_attributes=True)


def zero() -> Car:
    return Car()


def apply(state: Car, event: CarEvent) -> Car:
    """Fold one event; ``ImpossibleEvent`` for one ``fire`` could not have decided here."""
    replace = msgspec.structs.replace
    if isinstance(event, CarCreated):
        if state.exists:
            raise ImpossibleEvent("the car was created already")
        if event.model not in MODELS[event.make] or event.owner.int == 0:
            raise ImpossibleEvent("the car breaks a rule (make and model, or a nil owner)")
        return Car(exists=True, **msgspec.structs.asdict(event))
    if not state.exists:
        raise ImpossibleEvent("the car has not been created")
    if state.deleted:
        raise ImpossibleEvent("the car is retired")
    match event:
        case MileageChanged(mileage=mileage) if mileage < state.mileage:
            raise ImpossibleEvent(f"the mileage would go down from {state.mileage}")
        case ColorChanged(color=color):
            return replace(state, color=color)
        case MileageChanged(mileage=mileage):
            return replace(state, mileage=mileage)
        case ConditionChanged(condition=condition):
            return replace(state, condition=condition)
        case OwnerChanged(owner=owner):
            if owner.int == 0:
                raise ImpossibleEvent("the owner would be the nil UUID")
            return replace(state, owner=owner)
        case CarDeleted():
            return replace(state, deleted=True)
    raise TypeError(f"not a car event: {event!r}")


def triggers(state: Car, proposed: CarRepresentation) -> list[Trigger] | DomainError:
    """What differs between the car and the whole proposed car, as explicit triggers.

    Nothing differs: no triggers. A field that can never change: refused, naming them all.
    """
    changed = [f for f in IMMUTABLE if getattr(state, f) != getattr(proposed, f)]
    if changed:
        return DomainError(
            code=ErrorCode.IMMUTABLE_FIELD,
            message="Year, make, model and VIN of a car never change.",
            fields=tuple(FieldError(field=f, message="cannot change") for f in changed),
        )
    found: list[Trigger] = []
    if proposed.color != state.color:
        found.append(ChangeColor(color=proposed.color))
    if proposed.mileage != state.mileage:
        found.append(UpdateMileage(mileage=proposed.mileage))
    if proposed.condition != state.condition:
        found.append(UpdateCondition(condition=proposed.condition))
    if proposed.owner != state.owner:
        found.append(ChangeOwner(owner=proposed.owner))
    return found


def invalid(errors: tuple[FieldError, ...]) -> DomainError:
    return DomainError(code=ErrorCode.INVALID_CAR, message=INVALID, fields=errors)


def fire(state: Car, trigger: Trigger, next_year: int) -> list[CarEvent] | DomainError:
    """The events one trigger decides on ``state``, or why not; ``next_year``, from the
    caller's clock, bounds a new car's year."""
    if isinstance(trigger, Create):
        if state.exists:
            return DomainError(code=ErrorCode.ALREADY_EXISTS, message="The car already exists.")
        errors = validate(trigger.car, next_year)
        if errors:
            return invalid(errors)
        return [CarCreated(**msgspec.structs.asdict(trigger.car))]
    if not state.exists:
        return DomainError(code=ErrorCode.NOT_FOUND, message="There is no such car.")
    if isinstance(trigger, Delete):
        return [] if state.deleted else [CarDeleted()]
    if state.deleted:
        return DomainError(code=ErrorCode.CAR_DELETED, message="The car has been retired.")
    match trigger:
        case ChangeColor(color=color):
            return [ColorChanged(color=color)]
        case UpdateMileage(mileage=mileage):
            if mileage < state.mileage:
                return DomainError(
                    code=ErrorCode.MILEAGE_DECREASE,
                    message=f"Mileage cannot go down from {state.mileage} to {mileage}.",
                    fields=(FieldError(field="mileage", message="an odometer does not roll back"),),
                )
            return [MileageChanged(mileage=mileage)]
        case UpdateCondition(condition=condition):
            return [ConditionChanged(condition=condition)]
        case ChangeOwner(owner=owner):
            errors = rule_errors(next_year, owner=owner)
            if errors:
                return invalid(errors)
            return [OwnerChanged(owner=owner)]
    raise TypeError(f"not a car trigger: {trigger!r}")


def decide(state: Car, proposed: CarRepresentation, next_year: int) -> list[CarEvent] | DomainError:
    """A whole-representation update: every rule of the proposed car first (all of them
    reported together), then the triggers that differ, each fired in turn."""
    if not state.exists:
        return DomainError(code=ErrorCode.NOT_FOUND, message="There is no such car.")
    errors = validate(proposed, next_year)
    if errors:
        return invalid(errors)
    found = triggers(state, proposed)
    if isinstance(found, DomainError):
        return found
    events: list[CarEvent] = []
    for trigger in found:
        fired = fire(state, trigger, next_year)
        if isinstance(fired, DomainError):
            return fired
        events.extend(fired)
        for event in fired:
            state = apply(state, event)
    return events


def revise(state: Car, changes: Mapping[str, Any], next_year: int) -> list[CarEvent] | DomainError:
    """Some fields of the car changed (a merge patch's), the others as they are: decided as
    the whole representation they make. ``changes`` maps field names to decoded values."""
    if not state.exists:
        return DomainError(code=ErrorCode.NOT_FOUND, message="There is no such car.")
    proposed = msgspec.structs.replace(state.representation(), **changes)
    return decide(state, proposed, next_year)
