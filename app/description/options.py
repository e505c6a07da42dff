"""OPTIONS: ``Allow`` and the methods as a JSON array, or, when Accept asks for
``domain-model=ResourceDescription``, everything a tool needs to use the route."""

from __future__ import annotations

from typing import Any

import falcon

from app.description.operations import (
    METHODS,
    RESOURCE_DESCRIPTION,
    Route,
    RouteTable,
    models_of,
    operations,
    problem_statuses,
    request_type,
    response_type,
    schemas,
)
from app.media import JSON, content_type
from app.problems import ERRORS_PATH, PROBLEM_JSON

# ---------------------------------------------------------------- OPTIONS


def describe(route: Route, table: RouteTable, base: str) -> dict[str, Any]:
    """The ResourceDescription of one route: enough to use it without other documentation."""
    described = operations(route.resource, route.suffix)
    refs, components = schemas(models_of(described.values()), "#/schemas/{name}")
    methods = []
    for method, op in described.items():
        accepts = [
            {
                "domainModel": model.__name__,
                "contentType": request_type(model.__name__)
                if op.body_media_type == JSON
                else op.body_media_type,
                "schema": refs[model.__name__],
            }
            for model in op.accepts
        ]
        body: dict[str, Any] = {}
        if op.model_name is not None and method != "HEAD":
            body = {
                "domainModel": op.model_name,
                "contentType": response_type(op.model_name),
                "schema": refs[op.model_name],
            }
        if len(op.offered) > 1 and method != "HEAD":
            body["representations"] = [
                {
                    "domainModel": name,
                    "contentType": response_type(name, media_type),
                    "schema": refs[name],
                }
                for name, media_type in op.offered
            ]
        responses = [{"status": status, **body} for status in (op.success, *op.also)]
        if op.conditional:
            responses.append({"status": 304, "description": "If-None-Match names the current ETag"})
        if len(op.offered) > 1:
            responses.append(
                {"status": 406, "description": "Accept names no representation on offer"}
            )
        for status, codes in problem_statuses(op.problems).items():
            responses.append(
                {
                    "status": status,
                    "contentType": PROBLEM_JSON,
                    "errorCodes": codes,
                    "schema": refs["ProblemDetails"],
                    "documentation": [f"{base}{ERRORS_PATH}/{code}" for code in codes],
                }
            )
        methods.append(
            {
                "method": method,
                "summary": op.summary,
                "accepts": accepts,
                "bodyRequired": bool(op.accepts) and op.body_required,
                "parameters": [
                    {
                        "name": p.name,
                        "in": p.location,
                        "description": p.description,
                    }
                    for p in op.described_parameters
                ],
                "preconditions": op.preconditions,
                "responses": responses,
            }
        )
    links = [_link("self", route, base)]
    rels = {"": "collection", "item": "item"}
    links += [_link(rels.get(r.suffix, r.suffix), r, base) for r in table.siblings(route)]
    links.append({"rel": "openapi", "href": f"{base}/v1/openapi.json"})
    links.append({"rel": "errors", "href": f"{base}{ERRORS_PATH}"})
    return {
        "path": route.path,
        "allow": [*described, "OPTIONS"],
        "methods": methods,
        "schemas": components,
        "links": links,
    }


def _link(rel: str, route: Route, base: str) -> dict[str, Any]:
    """A link to a route; a templated one also gives an example a crawler can OPTIONS."""
    link: dict[str, Any] = {"rel": rel, "href": f"{base}{route.path}"}
    if route.variables:
        example = route.path
        for name, converter in route.variables:
            value = "00000000-0000-0000-0000-000000000000" if converter == "uuid" else "0"
            example = example.replace(f"{{{name}}}", value)
        link.update(templated=True, example=f"{base}{example}")
    return link


# ---------------------------------------------------------------- OpenAPI


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
        if wants_description(req):
            resp.content_type = content_type(RESOURCE_DESCRIPTION)
            resp.media = describe(self.routes.find(self, suffix), self.routes, req.prefix)
            return
        resp.content_type = content_type("AllowedMethods")
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
