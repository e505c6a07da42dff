"""Resources: thin responders that read the request, run one command, and say what happened.

Item routes share their collection's resource through ``suffix="item"``; every route
answers OPTIONS with ``Allow`` and the JSON array of its methods, and Falcon answers 405
(with ``Allow``) for the rest.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4, uuid5

import falcon
import msgspec

from app.commands import Aggregate, CommandHandler, CommandRequest, Outcome
from app.media import Accepts, content_type, field_errors
from app.options import Described
from app.problems import Problem
from app.queries import CAR_ITEMS, INVENTORY_ITEMS, Queries
from app.representations import CommandAccepted, EntryPoint, Link
from domain import cars, inventory
from domain.errors import DomainError

MERGE_PATCH = "application/merge-patch+json"
COMMIT_POSITION = "Commit-Position"
# Resources created with an Idempotency-Key get their id from it, so a retry finds them.
CREATION_NAMESPACE = UUID("0b4f3c9a-6e1d-4a2b-8c7f-5d9e0a1b2c3d")

INVENTORY: Aggregate[Any, Any] = Aggregate(
    inventory.CATEGORY,
    inventory.zero,
    inventory.apply,
    msgspec.json.Decoder(inventory.AnyInventoryEvent),
)
CARS: Aggregate[Any, Any] = Aggregate(
    cars.CATEGORY, cars.zero, cars.apply, msgspec.json.Decoder(cars.AnyCarEvent)
)


def command_request(req: falcon.Request, domain_model: str, body: bytes) -> CommandRequest:
    return CommandRequest(
        domain_model=domain_model,
        if_match=req.if_match,
        if_none_match=req.if_none_match,
        idempotency_key=req.get_header("Idempotency-Key") if req.method == "POST" else None,
        body=body,
        request_id=req.context.request_id,
        correlation_id=req.get_header("X-Correlation-Id"),
        principal=getattr(req.context, "principal", None),
    )


def accepted(resp: falcon.Response, outcome: Outcome, location: str) -> None:
    """202: the events are durably in the store; where the resource is; its new ETag."""
    resp.status = falcon.HTTP_202
    resp.location = location
    resp.etag = outcome.etag
    if outcome.position is not None:
        resp.set_header(COMMIT_POSITION, str(outcome.position))
    resp.content_type = content_type("CommandAccepted")
    appended = outcome.appended
    resp.media = CommandAccepted(
        events_appended=appended,
        message=f"{appended} event(s) appended."
        if appended
        else "Nothing changed: nothing appended.",
        links=[Link("self", location)],
    )


def new_id(req: falcon.Request, collection: str) -> UUID:
    key = req.get_header("Idempotency-Key")
    return uuid5(CREATION_NAMESPACE, f"{collection}/{key}") if key else uuid4()


class InventoryItems(Described):
    create = Accepts(inventory.CreateInventoryItemCommand)
    rename = Accepts(inventory.RenameInventoryItemCommand)
    stock = Accepts(
        inventory.CheckInItemsToInventoryCommand, inventory.RemoveItemsFromInventoryCommand
    )
    deactivate = Accepts(inventory.DeactivateInventoryItemCommand)

    def __init__(self, commands: CommandHandler, queries: Queries) -> None:
        self._commands = commands
        self._queries = queries

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._queries.collection(req, resp, INVENTORY_ITEMS)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._queries.item(req, resp, INVENTORY_ITEMS, item_id)

    on_head = on_get
    on_head_item = on_get_item

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._run(req, resp, new_id(req, "inventory-items"), self.create, creates=True)

    def on_put_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(req, resp, item_id, self.rename)

    def on_post_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(req, resp, item_id, self.stock)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(req, resp, item_id, self.deactivate)

    def _run(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        item_id: UUID,
        accepts: Accepts,
        creates: bool = False,
    ) -> None:
        command, body = accepts.read(req)
        outcome = self._commands.execute(
            INVENTORY,
            f"{inventory.CATEGORY}-{item_id}",
            lambda state: inventory.fire(state, command),  # type: ignore[arg-type]
            command_request(req, type(command).__name__, body),
            creates=creates,
        )
        accepted(resp, outcome, f"{req.prefix}/v1/inventory-items/{item_id}")


class Cars(Described):
    """The trigger pattern over HTTP: whole representations in, explicit events out."""

    representation = Accepts(cars.CarRepresentation)

    def __init__(
        self,
        commands: CommandHandler,
        queries: Queries,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self._commands = commands
        self._queries = queries
        self._clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._queries.collection(req, resp, CAR_ITEMS)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._queries.item(req, resp, CAR_ITEMS, item_id)

    on_head = on_get
    on_head_item = on_get_item

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        car, body = self._proposed(req)
        self._run(
            req,
            resp,
            new_id(req, "cars"),
            body,
            lambda state: cars.fire(state, cars.Create(car=car)),
            creates=True,
        )

    def on_put_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        car, body = self._proposed(req)
        self._run(req, resp, item_id, body, lambda state: cars.decide(state, car))

    def on_patch_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        media_type, _ = falcon.parse_header(req.content_type or "")
        if media_type != MERGE_PATCH:
            raise Problem(
                "unsupported-media-type",
                f"PATCH takes {MERGE_PATCH} (RFC 7396).",
                accepted=[MERGE_PATCH],
            )
        body = req.bounded_stream.read()
        try:
            patch = msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            raise Problem("malformed-body", f"The patch is not JSON: {error}.") from None
        if not isinstance(patch, dict):
            raise Problem("malformed-body", "A merge patch of a car is a JSON object.")

        def decide(state: cars.Car) -> list[cars.CarEvent] | DomainError:
            merged = merge_patch(msgspec.to_builtins(state.representation()), patch)
            proposed = self._convert(merged)
            self._validate(proposed)
            return cars.decide(state, proposed)

        self._run(req, resp, item_id, body, decide, domain_model="CarMergePatch")

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(
            req,
            resp,
            item_id,
            req.bounded_stream.read(),
            lambda state: cars.fire(state, cars.Delete()),
            domain_model="RetireCar",
        )

    def _run(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        car_id: UUID,
        body: bytes,
        decide: Callable[[cars.Car], list[cars.CarEvent] | DomainError],
        creates: bool = False,
        domain_model: str = "CarRepresentation",
    ) -> None:
        request = command_request(req, domain_model, body)
        outcome = self._commands.execute(
            CARS, f"{cars.CATEGORY}-{car_id}", decide, request, creates=creates
        )
        accepted(resp, outcome, f"{req.prefix}/v1/cars/{car_id}")

    def _proposed(self, req: falcon.Request) -> tuple[cars.CarRepresentation, bytes]:
        """The whole car in the body, checked field by field and then rule by rule."""
        car, body = self.representation.read(req)
        assert isinstance(car, cars.CarRepresentation)
        self._validate(car)
        return car, body

    def _validate(self, car: cars.CarRepresentation) -> None:
        errors = cars.validate(car, next_year=self._clock().year + 1)
        if errors:
            raise Problem(
                "invalid-car",
                "The car breaks rules.",
                errors=[msgspec.to_builtins(e) for e in errors],
            )

    @staticmethod
    def _convert(merged: Any) -> cars.CarRepresentation:
        try:
            return msgspec.convert(merged, cars.CarRepresentation)
        except msgspec.ValidationError:
            raise Problem(
                "malformed-body",
                "The patched car does not fit CarRepresentation.",
                errors=field_errors(cars.CarRepresentation, msgspec.json.encode(merged)),
            ) from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge member by member, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


class Root(Described):
    """``GET /v1``: the entry point, with a link to every collection."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = content_type("EntryPoint")
        base = f"{req.prefix}/v1"
        resp.media = EntryPoint(
            links=[
                Link("inventory-items", f"{base}/inventory-items"),
                Link("cars", f"{base}/cars"),
                Link("search", f"{base}/search"),
                Link("errors", f"{base}/errors"),
                Link("openapi", f"{base}/openapi.json"),
            ]
        )

    on_head = on_get


class Search(Described):
    """``GET /v1/search?query=``: active resources of both contexts whose text matches."""

    def __init__(self, queries: Queries) -> None:
        self._queries = queries

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._queries.search(req, resp)

    on_head = on_get
