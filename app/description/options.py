"""OPTIONS: ``Allow`` and the methods as a JSON array, or, when Accept asks for
``domain-model=ResourceDescription``, everything a tool needs to use the route."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import falcon
import msgspec

from app.description.operations import (
    HEADERS,
    METHODS,
    RESOURCE_DESCRIPTION,
    Operation,
    Route,
    RouteTable,
    models_of,
    operations,
    problem_statuses,
    request_type,
    response_type,
    schemas,
    scopes,
)
from app.media import JSON, content_type
from app.problems import ERRORS_PATH, NOT_FOUND, PROBLEM_JSON

# ---------------------------------------------------------------- the description's models


class Part(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    """Members every part of a ResourceDescription may have."""


class Accepted(Part, frozen=True, kw_only=True):
    """A domain-model a method accepts as its body."""

    domain_model: str
    content_type: str
    schema: dict[str, Any]


class Representation(Part, frozen=True, kw_only=True):
    domain_model: str
    content_type: str
    schema: dict[str, Any]


class HeaderDescription(Part, frozen=True, kw_only=True):
    """A header a response carries: ``required`` when it always does."""

    name: str
    required: bool
    description: str
    schema: dict[str, Any]


class ResponseDescription(Part, frozen=True, kw_only=True):
    status: int
    description: str | msgspec.UnsetType = msgspec.UNSET
    domain_model: str | msgspec.UnsetType = msgspec.UNSET
    content_type: str | msgspec.UnsetType = msgspec.UNSET
    schema: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    representations: list[Representation] | msgspec.UnsetType = msgspec.UNSET
    error_codes: list[int] | msgspec.UnsetType = msgspec.UNSET
    documentation: list[str] | msgspec.UnsetType = msgspec.UNSET
    headers: list[HeaderDescription] = []


class ParameterDescription(Part, frozen=True, kw_only=True):
    name: str
    location: str = msgspec.field(name="in")  # query | header
    required: bool
    description: str
    schema: dict[str, Any]


class MethodDescription(Part, frozen=True, kw_only=True):
    method: str
    summary: str
    accepts: list[Accepted]
    body_required: bool
    parameters: list[ParameterDescription]
    preconditions: list[str]
    responses: list[ResponseDescription]
    scopes: list[str]  # what an API key needs to call it (none: public)


class RouteLink(Part, frozen=True, kw_only=True):
    """A link to a route; a templated one also gives an example a crawler can OPTIONS."""

    rel: str
    href: str
    templated: bool | msgspec.UnsetType = msgspec.UNSET
    example: str | msgspec.UnsetType = msgspec.UNSET


class ResourceDescription(Part, frozen=True, kw_only=True):
    """Everything a tool needs to use one route, without other documentation."""

    path: str
    allow: list[str]
    methods: list[MethodDescription]
    schemas: dict[str, Any]
    links: list[RouteLink]


ALLOWED_METHODS = "AllowedMethods"
OPTIONS_MODELS: dict[str, Any] = {
    ALLOWED_METHODS: list[Literal[(*METHODS, "OPTIONS")]],  # type: ignore[valid-type]
    RESOURCE_DESCRIPTION: ResourceDescription,
}


def options_operation(route: Route) -> dict[str, Operation]:
    """OPTIONS, as every route answers it: what OpenAPI says of it (a templated route is
    404 where a value does not fit its template)."""
    return {"OPTIONS": _OPTIONS_TEMPLATED if route.variables else _OPTIONS}


_OPTIONS = Operation(
    summary="Allow and the methods as a JSON array, or, when Accept asks for"
    " domain-model=ResourceDescription, everything a tool needs to use the route.",
    returns=OPTIONS_MODELS[ALLOWED_METHODS],
    domain_model=ALLOWED_METHODS,
    alternatives=(ResourceDescription,),
    headers=("Allow",),
)
_OPTIONS_TEMPLATED = dataclasses.replace(_OPTIONS, problems=(NOT_FOUND,))


# ---------------------------------------------------------------- OPTIONS


def _headers(op: Operation, status: int, method: str) -> list[HeaderDescription]:
    return [
        HeaderDescription(
            name=name,
            required=required,
            description=HEADERS[name].description,
            schema=HEADERS[name].schema,
        )
        for name, required in op.response_headers(status, method).items()
    ]


def describe(route: Route, table: RouteTable, base: str) -> ResourceDescription:
    """The ResourceDescription of one route: enough to use it without other documentation."""
    described = operations(route.resource, route.suffix)
    refs, components = schemas(models_of(described.values()), "#/schemas/{name}")
    methods = []
    for method, op in described.items():
        accepts = [
            Accepted(
                domain_model=model.__name__,
                content_type=request_type(model.__name__)
                if op.body_media_type == JSON
                else op.body_media_type,
                schema=refs[model.__name__],
            )
            for model in op.accepts
        ]
        body: dict[str, Any] = {}
        if op.model_name is not None and method != "HEAD":
            body = {
                "domain_model": op.model_name,
                "content_type": response_type(op.model_name),
                "schema": refs[op.model_name],
            }
        elif op.media_type is not None and method != "HEAD":
            body = {"content_type": op.media_type}
        if len(op.offered) > 1 and method != "HEAD":
            body["representations"] = [
                Representation(
                    domain_model=name,
                    content_type=response_type(name, media_type),
                    schema=refs[name],
                )
                for name, media_type in op.offered
            ]
        responses = [
            ResponseDescription(status=status, headers=_headers(op, status, method), **body)
            for status in (op.success, *op.also)
        ]
        extra = {302: "Accept-Datetime: the memento of that time", 304: _NOT_MODIFIED}
        responses += [
            ResponseDescription(
                status=status, description=extra[status], headers=_headers(op, status, method)
            )
            for status in op.statuses
            if status in extra
        ]
        for status, codes in problem_statuses(op.refusals).items():
            responses.append(
                ResponseDescription(
                    status=status,
                    content_type=PROBLEM_JSON,
                    error_codes=codes,
                    schema=refs["ProblemDetails"],
                    documentation=[f"{base}{ERRORS_PATH}/{code}" for code in codes],
                    headers=_headers(op, status, method),
                )
            )
        methods.append(
            MethodDescription(
                method=method,
                summary=op.summary,
                accepts=accepts,
                body_required=bool(op.accepts) and op.body_required,
                parameters=[
                    ParameterDescription(
                        name=p.name,
                        location=p.location,
                        required=p.name in op.required,
                        description=p.description,
                        schema=p.schema,
                    )
                    for p in op.described_parameters
                ],
                preconditions=op.preconditions,
                responses=responses,
                scopes=scopes(route.path, method) or [],
            )
        )
    links = [_link("self", route, base)]
    rels = {"": "collection", "item": "item"}
    links += [_link(rels.get(r.suffix, r.suffix), r, base) for r in table.siblings(route)]
    links.append(RouteLink(rel="openapi", href=f"{base}/v1/openapi.json"))
    links.append(RouteLink(rel="errors", href=f"{base}{ERRORS_PATH}"))
    return ResourceDescription(
        path=route.path,
        allow=[*described, "OPTIONS"],
        methods=methods,
        schemas=components,
        links=links,
    )


_NOT_MODIFIED = "If-None-Match names the current ETag"


def _link(rel: str, route: Route, base: str) -> RouteLink:
    if not route.variables:
        return RouteLink(rel=rel, href=f"{base}{route.path}")
    example = route.path
    for name, converter in route.variables:
        value = "00000000-0000-0000-0000-000000000000" if converter == "uuid" else "0"
        example = example.replace(f"{{{name}}}", value)
    return RouteLink(
        rel=rel, href=f"{base}{route.path}", templated=True, example=f"{base}{example}"
    )


# ---------------------------------------------------------------- the OPTIONS responder


def wants_description(req: falcon.Request) -> bool:
    """Does Accept ask for ``application/json; domain-model=ResourceDescription``?"""
    for offered in (req.accept or "").split(","):
        media_type, params = falcon.parse_header(offered)
        if media_type == JSON and params.get("domain-model") == RESOURCE_DESCRIPTION:
            return True
    return False


class Described:
    """OPTIONS for every route of a resource: ``Allow`` plus the methods as a JSON array, or
    the whole ResourceDescription when Accept asks for it.

    ``routes`` is the app's routing table (filled as routes are mounted; OPTIONS reads it
    only when asked).
    """

    def __init__(self, routes: RouteTable) -> None:
        self.routes = routes

    def _allowed(self, suffix: str) -> list[str]:
        ending = f"_{suffix}" if suffix else ""
        methods = [m for m in METHODS if callable(getattr(self, f"on_{m.lower()}{ending}", None))]
        return [*methods, "OPTIONS"]

    def _options(self, req: falcon.Request, resp: falcon.Response, suffix: str) -> None:
        allowed = self._allowed(suffix)
        resp.set_header("Allow", ", ".join(allowed))
        resp.vary = ["Accept"]
        if wants_description(req):
            resp.content_type = content_type(RESOURCE_DESCRIPTION)
            resp.media = describe(self.routes.find(self, suffix), self.routes, req.prefix)
            return
        resp.content_type = content_type(ALLOWED_METHODS)
        resp.media = allowed

    def on_options(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._options(req, resp, "")

    def on_options_item(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        self._options(req, resp, "item")

    def on_options_one(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        self._options(req, resp, "one")

    def on_options_history(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        self._options(req, resp, "history")

    def on_options_timemap(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        self._options(req, resp, "timemap")
