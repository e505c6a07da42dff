"""Resources: thin responders that read the request, run one command, and say what happened.

Item routes share their collection's resource through ``suffix="item"``; every route
answers OPTIONS with ``Allow`` and the JSON array of its methods, and Falcon answers 405
(with ``Allow``) for the rest.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID, uuid4, uuid5

import falcon
import msgspec

from app.bodies import check_json, read_body
from app.commands import Aggregate, CommandHandler, CommandRequest, Outcome
from app.description import PAGED, READ, Described, RouteTable, openapi, operation
from app.media import Accepts, content_type, field_errors
from app.problems import BY_NUMBER, ERRORS_PATH, KINDS, Kind, Problem
from app.queries import CAR_ITEMS, INVENTORY_ITEMS, Queries
from app.representations import (
    CarList,
    CommandAccepted,
    EntryPoint,
    ErrorPage,
    InventoryItemDetails,
    InventoryItemList,
    Link,
    SearchResults,
)
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


R = TypeVar("R", bound=Callable[..., None])

# What every command may answer besides 202, and what a command on an existing resource adds.
GUARDED = ("unauthorized", "forbidden")  # when API keys are configured
COMMAND = ("malformed-body", "unsupported-media-type", "unavailable", *GUARDED)
ON_ITEM = (*COMMAND, "not-found", "precondition-failed", "precondition-required", "conflict")
READS = ("invalid-query", "read-model-behind", *GUARDED)
CHANGES = (*ON_ITEM, "immutable-field", "mileage-decrease", "gone")
WRITE_ITEM = ("If-Match",)
CREATE = ("If-None-Match", "Idempotency-Key")


def accepting(summary: str, *models: type[msgspec.Struct], **details: Any) -> Callable[[R], R]:
    """A command: 202 with CommandAccepted."""
    return operation(
        summary=summary, accepts=models, returns=CommandAccepted, success=202, **details
    )


def listing(summary: str, model: type[msgspec.Struct], *filters: str) -> Callable[[R], R]:
    """A collection GET: pages, filters, 304s, read-your-writes."""
    return operation(
        summary=summary,
        returns=model,
        parameters=(*PAGED, "state", "query", *filters),
        problems=READS,
        conditional=True,
    )


def reading(summary: str, model: type[msgspec.Struct]) -> Callable[[R], R]:
    """An item GET: 404 unknown, 410 retired, 304s, read-your-writes."""
    return operation(
        summary=summary,
        returns=model,
        parameters=READ,
        problems=(*READS, "not-found", "gone"),
        conditional=True,
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

    @listing("List inventory items, a page at a time.", InventoryItemList)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._queries.collection(req, resp, INVENTORY_ITEMS)

    @reading("Read an inventory item.", InventoryItemDetails)
    def on_get_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._queries.item(req, resp, INVENTORY_ITEMS, item_id)

    on_head = on_get
    on_head_item = on_get_item

    @accepting(
        "Create an inventory item.",
        *create.models,
        parameters=CREATE,
        problems=(*COMMAND, "already-exists", "invalid-name", "idempotency-key-reused"),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._run(req, resp, new_id(req, "inventory-items"), self.create, creates=True)

    @accepting(
        "Rename an inventory item.",
        *rename.models,
        parameters=WRITE_ITEM,
        problems=(*ON_ITEM, "invalid-name", "item-inactive"),
    )
    def on_put_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(req, resp, item_id, self.rename)

    @accepting(
        "Check items in to stock, or remove them (name which with domain-model).",
        *stock.models,
        parameters=(*WRITE_ITEM, "Idempotency-Key"),
        problems=(*ON_ITEM, "item-inactive", "insufficient-stock", "idempotency-key-reused"),
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


class CarMergePatch(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel"
):
    """An RFC 7396 merge patch of a car: any fields of CarRepresentation (null removes one,
    which the merged car then lacks)."""

    year: cars.Year | msgspec.UnsetType | None = msgspec.UNSET
    make: cars.Make | msgspec.UnsetType | None = msgspec.UNSET
    model: cars.Model | msgspec.UnsetType | None = msgspec.UNSET
    color: cars.Color | msgspec.UnsetType | None = msgspec.UNSET
    mileage: cars.Mileage | msgspec.UnsetType | None = msgspec.UNSET
    vin: cars.Vin | msgspec.UnsetType | None = msgspec.UNSET
    condition: cars.Condition | msgspec.UnsetType | None = msgspec.UNSET
    owner: UUID | msgspec.UnsetType | None = msgspec.UNSET


PATCH_DECODER = msgspec.json.Decoder(CarMergePatch)


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

    @listing("List cars, a page at a time.", CarList, "make", "color", "owner")
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._queries.collection(req, resp, CAR_ITEMS)

    @reading("Read a car: exactly the representation a PUT sends back.", cars.CarRepresentation)
    def on_get_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._queries.item(req, resp, CAR_ITEMS, item_id)

    on_head = on_get
    on_head_item = on_get_item

    @accepting(
        "Create a car from its whole representation (trigger Create).",
        cars.CarRepresentation,
        parameters=CREATE,
        problems=(*COMMAND, "invalid-car", "already-exists", "idempotency-key-reused"),
    )
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

    @accepting(
        "Send the car's whole future state; each difference fires its own trigger.",
        cars.CarRepresentation,
        parameters=WRITE_ITEM,
        problems=(*CHANGES, "invalid-car"),
    )
    def on_put_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        car, body = self._proposed(req)
        self._run(req, resp, item_id, body, lambda state: cars.decide(state, car))

    @accepting(
        "Merge a JSON merge patch (RFC 7396) into the car, then as PUT.",
        CarMergePatch,
        body_media_type=MERGE_PATCH,
        parameters=WRITE_ITEM,
        problems=(*CHANGES, "invalid-car"),
    )
    def on_patch_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        media_type, _ = falcon.parse_header(req.content_type or "")
        if media_type != MERGE_PATCH:
            raise Problem(
                "unsupported-media-type",
                f"PATCH takes {MERGE_PATCH} (RFC 7396).",
                accepted=[MERGE_PATCH],
            )
        body = read_body(req)
        check_json(body)
        try:
            patch = msgspec.to_builtins(PATCH_DECODER.decode(body))
        except msgspec.DecodeError:
            raise Problem(
                "malformed-body",
                "The body is not a merge patch of a car.",
                errors=field_errors(CarMergePatch, body),
            ) from None

        def decide(state: cars.Car) -> list[cars.CarEvent] | DomainError:
            merged = merge_patch(msgspec.to_builtins(state.representation()), patch)
            proposed = self._convert(merged)
            self._validate(proposed)
            return cars.decide(state, proposed)

        self._run(req, resp, item_id, body, decide, domain_model="CarMergePatch")

    @operation(
        summary="Retire the car (idempotent).",
        returns=CommandAccepted,
        success=202,
        parameters=WRITE_ITEM,
        problems=(*ON_ITEM, "gone"),
    )
    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._run(
            req,
            resp,
            item_id,
            read_body(req),
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

    @operation(
        summary="The entry point: links to everything else.", returns=EntryPoint, problems=GUARDED
    )
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
                Link("health", f"{req.prefix}/healthz"),
                Link("readiness", f"{req.prefix}/readyz"),
            ]
        )

    on_head = on_get


class Search(Described):
    """``GET /v1/search?query=``: active resources of both contexts whose text matches."""

    def __init__(self, queries: Queries) -> None:
        self._queries = queries

    @operation(
        summary="Find active resources of both contexts whose text contains `query`.",
        returns=SearchResults,
        parameters=("query", *PAGED),
        required=("query",),
        problems=READS,
        conditional=True,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._queries.search(req, resp)

    on_head = on_get


class ErrorPages(Described):
    """``GET /v1/errors`` lists every error code; ``/v1/errors/{number}`` documents one.

    Both come from the registry the error responses use (``app.problems.KINDS``).
    """

    @operation(summary="Every error code.", returns=list[ErrorPage], domain_model="ErrorPageList")
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = content_type("ErrorPageList")
        resp.media = [self._page(kind, req.prefix) for kind in KINDS]

    @operation(summary="One error code.", returns=ErrorPage, problems=("not-found",))
    def on_get_one(self, req: falcon.Request, resp: falcon.Response, number: int) -> None:
        kind = BY_NUMBER.get(number)
        if kind is None:
            raise Problem("not-found", f"There is no error code {number}.")
        resp.content_type = content_type("ErrorPage")
        resp.media = self._page(kind, req.prefix)

    on_head = on_get  # same headers, no body: Falcon sends none for HEAD
    on_head_one = on_get_one

    @staticmethod
    def _page(kind: Kind, base: str) -> ErrorPage:
        return ErrorPage(
            error_code=kind.number,
            status=kind.status,
            title=kind.title,
            description=kind.description,
            links=[Link("self", f"{base}{ERRORS_PATH}/{kind.number}")],
        )


class OpenAPIDocument(Described):
    """``GET /v1/openapi.json``: the whole API, from the same operations and models."""

    def __init__(self, routes: RouteTable) -> None:
        self._routes = routes

    @operation(summary="This API as an OpenAPI 3.1 document.")
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = content_type("OpenAPI")
        resp.data = msgspec.json.encode(openapi(self._routes, req.prefix))

    on_head = on_get
