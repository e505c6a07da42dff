"""``/v1/cars``: the trigger pattern over HTTP. Whole representations in (POST, PUT, or a
merge patch of one), explicit events out."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import falcon
import msgspec

from app import headers
from app.bodies import check_json, read_body
from app.description import RouteTable
from app.media import Accepts, field_errors
from app.problems import (
    ALREADY_EXISTS,
    GONE,
    IDEMPOTENCY_KEY_REUSED,
    IMMUTABLE_FIELD,
    INVALID_CAR,
    MALFORMED_BODY,
    MILEAGE_DECREASE,
    UNSUPPORTED_MEDIA_TYPE,
    Problem,
)
from app.queries import CAR_ITEMS, Queries
from app.queries.timeline import Timeline
from app.resources.common import COMMAND, CREATE, ON_ITEM, WRITE_ITEM, Writer, accepting
from app.resources.family import Family
from domain import cars
from domain.aggregates import CAR
from domain.errors import DomainError

MERGE_PATCH = "application/merge-patch+json"
CHANGES = (*ON_ITEM, IMMUTABLE_FIELD, MILEAGE_DECREASE, GONE)


class CarMergePatch(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"
):
    """An RFC 7396 merge patch of a car: any fields of CarRepresentation (null removes one,
    which the merged car then lacks)."""

    # The docstring is the schema's description. A car's fields are flat: merging replaces.

    year: cars.Year | msgspec.UnsetType | None = msgspec.UNSET
    make: cars.Make | msgspec.UnsetType | None = msgspec.UNSET
    model: cars.Model | msgspec.UnsetType | None = msgspec.UNSET
    color: cars.Color | msgspec.UnsetType | None = msgspec.UNSET
    mileage: cars.Mileage | msgspec.UnsetType | None = msgspec.UNSET
    vin: cars.Vin | msgspec.UnsetType | None = msgspec.UNSET
    condition: cars.Condition | msgspec.UnsetType | None = msgspec.UNSET
    owner: UUID | msgspec.UnsetType | None = msgspec.UNSET


PATCH_DECODER = msgspec.json.Decoder(CarMergePatch)


Decide = Callable[[cars.Car], Sequence[msgspec.Struct] | DomainError]


class Cars(
    Family,
    presentation=CAR_ITEMS,
    lists="List cars, a page at a time.",
    reads="Read a car: exactly the representation a PUT sends back.",
):
    """Cars: the body decoded (every field checked at once), then decided by the domain."""

    representation = Accepts(cars.CarRepresentation)

    def __init__(
        self,
        routes: RouteTable,
        writer: Writer,
        queries: Queries,
        timeline: Timeline,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        super().__init__(routes, writer, queries, timeline)
        self._clock = clock

    @accepting(
        "Create a car from its whole representation (trigger Create).",
        cars.CarRepresentation,
        parameters=CREATE,
        problems=(*COMMAND, INVALID_CAR, ALREADY_EXISTS, IDEMPOTENCY_KEY_REUSED),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        car, body = self._proposed(req)
        next_year = self._next_year()
        decide: Decide = lambda state: cars.fire(state, cars.Create(car=car), next_year)  # noqa: E731
        self._run(req, resp, self._writer.new_id(req), body, decide, creates=True)

    @accepting(
        "Send the car's whole future state; each difference fires its own trigger.",
        cars.CarRepresentation,
        parameters=WRITE_ITEM,
        problems=(*CHANGES, INVALID_CAR),
    )
    def on_put_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        car, body = self._proposed(req)
        next_year = self._next_year()
        self._run(req, resp, item_id, body, lambda state: cars.decide(state, car, next_year))

    @accepting(
        "Merge a JSON merge patch (RFC 7396) into the car, then as PUT.",
        CarMergePatch,
        body_media_type=MERGE_PATCH,
        parameters=WRITE_ITEM,
        problems=(*CHANGES, INVALID_CAR),
    )
    def on_patch_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        changes, body = self._patch(req)
        next_year = self._next_year()
        decide: Decide = lambda state: cars.revise(state, changes, next_year)  # noqa: E731
        self._run(req, resp, item_id, body, decide, domain_model="CarMergePatch")

    @accepting(
        "Retire the car (idempotent).",
        parameters=WRITE_ITEM,
        problems=(*ON_ITEM, GONE),
    )
    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        next_year = self._next_year()
        decide: Decide = lambda state: cars.fire(state, cars.Delete(), next_year)  # noqa: E731
        self._run(req, resp, item_id, read_body(req), decide, domain_model="RetireCar")

    def _run(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        car_id: UUID,
        body: bytes,
        decide: Decide,
        creates: bool = False,
        domain_model: str = "CarRepresentation",
    ) -> None:
        self._writer.run(req, resp, CAR, car_id, decide, domain_model, body, creates=creates)

    def _proposed(self, req: falcon.Request) -> tuple[cars.CarRepresentation, bytes]:
        """The whole car in the body, decoded field by field (the domain's rules listed too
        when a field does not decode, so that every error comes at once)."""
        return self.representation.read(req, rules=self._rules)

    def _patch(self, req: falcon.Request) -> tuple[dict[str, Any], bytes]:
        """The fields a merge patch changes, decoded by their types. A null removes a field,
        and every field of a car is required: such a patch can never make a car, whatever
        the car is, so it is a malformed body, as a PUT that leaves the field out is."""
        media_type, _ = headers.media_type(req.content_type) if req.content_type else ("", {})
        if media_type != MERGE_PATCH:
            raise Problem(
                UNSUPPORTED_MEDIA_TYPE,
                f"PATCH takes {MERGE_PATCH} (RFC 7396).",
                accepted=[MERGE_PATCH],
            )
        body = check_json(read_body(req))
        try:
            patch = PATCH_DECODER.decode(body)
        except msgspec.DecodeError:
            raise Problem(
                MALFORMED_BODY,
                "The body is not a merge patch of a car.",
                errors=field_errors(CarMergePatch, body),
            ) from None
        fields = msgspec.structs.fields(CarMergePatch)
        removed = [f.encode_name for f in fields if getattr(patch, f.name) is None]
        if removed:
            raise Problem(
                MALFORMED_BODY,
                "The patched car does not fit CarRepresentation.",
                errors=[{"field": name, "message": "required"} for name in removed],
            )
        changes = {f.name: getattr(patch, f.name) for f in fields}
        return {name: value for name, value in changes.items() if value is not msgspec.UNSET}, body

    def _next_year(self) -> int:
        return self._clock().year + 1

    def _rules(self, raw: dict[str, Any]) -> list[dict[str, str]]:
        """The car's rules over the fields of a body that did not decode as a whole."""
        return [msgspec.to_builtins(e) for e in cars.raw_rule_errors(raw, self._next_year())]
