"""``/v1/openapi.json``: the whole API as OpenAPI 3.1, from the same operations and models
as OPTIONS.

What a generator needs is all here: each request header as a parameter with the grammar the
server enforces, each response header with its grammar (and whether it is always there),
every representation of each GET as its own content type, the problems in JSON and XML, and
the bearer scheme with the scope each operation needs (none for the public routes)."""

from __future__ import annotations

from typing import Any

from app.description.operations import (
    BEARER,
    HEADERS,
    METHODS,
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
from app.description.options import OPTIONS_MODELS, options_operation
from app.media import JSON, VERSION
from app.problems import BY_NUMBER, PROBLEM_JSON, PROBLEM_XML

DESCRIPTIONS = {
    200: "OK",
    202: "Accepted: the events are durably in the store.",
    302: "Found: the memento of the newest version written at or before Accept-Datetime.",
    304: "Not modified: If-None-Match names the current ETag.",
    414: "URI too long: gunicorn refuses lines over 4094 bytes.",
}


def openapi(table: RouteTable, base: str = "") -> dict[str, Any]:
    """An OpenAPI 3.1 document of every route, from the same operations and models."""
    described = [
        (method, op) for route in table.routes for method, op in _operations(route).items()
    ]
    every = [op for _, op in described]
    refs, components = schemas(
        {**models_of(every), **OPTIONS_MODELS}, "#/components/schemas/{name}"
    )
    paths: dict[str, Any] = {}
    for route in table.routes:
        if not operations(route.resource, route.suffix):
            continue
        item: dict[str, Any] = {}
        path_parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"}
                if converter == "uuid"
                else {"type": "integer"},
            }
            for name, converter in route.variables
        ]
        if path_parameters:
            item["parameters"] = path_parameters
        for method, op in _operations(route).items():
            item[method.lower()] = _openapi_operation(method, op, refs, route)
        paths[route.path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Inventory and cars: a RESTful face for a CQRS, event-sourced system",
            "version": VERSION,
            "description": "Commands are chosen by the domain-model parameter of the "
            "Content-Type (five levels of media type); reads come from eventually consistent "
            "read models (send Commit-Position to read your writes). Each GET offers every "
            "representation listed in its content: ask for one with Accept.",
        },
        "servers": [{"url": base or "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "parameters": _parameter_components(every),
            "headers": _header_components(described),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: Authorization: Bearer <key>. A key's scopes "
                    "are read (GET, HEAD) and write (everything that changes something). A "
                    "server run without API keys (development) needs none.",
                }
            },
        },
    }


def _header_key(name: str, required: bool) -> str:
    return name if required else f"{name}.optional"


def _headers(op: Operation, status: int, method: str) -> dict[str, Any]:
    """The headers of one response, as references to ``components/headers``."""
    return {
        name: {"$ref": f"#/components/headers/{_header_key(name, required)}"}
        for name, required in op.response_headers(status, method).items()
    }


def _operations(route: Route) -> dict[str, Operation]:
    """The route's described methods, and OPTIONS, which every route answers."""
    return {**operations(route.resource, route.suffix), **options_operation(route)}


def _header_components(described: list[tuple[str, Operation]]) -> dict[str, Any]:
    """Each header the operations answer, once as always there and once as sometimes."""
    used = {
        (name, required)
        for method, op in described
        for status in (*op.statuses, *problem_statuses(op.refusals))
        for name, required in op.response_headers(status, method).items()
    }
    return {
        _header_key(name, required): {
            "description": HEADERS[name].description,
            "required": required,
            "schema": HEADERS[name].schema,
        }
        for name, required in sorted(used)
    }


def _parameter_components(every: list[Operation]) -> dict[str, Any]:
    """Each optional parameter once. Falcon reads a blank query value (``?query=``) as no
    value at all, so an optional query parameter may be sent empty (``allowEmptyValue``)."""
    return {
        p.name: {
            "name": p.name,
            "in": p.location,
            "description": p.description,
            "schema": p.schema,
            **({"allowEmptyValue": True} if p.location == "query" else {}),
        }
        for op in every
        for p in op.described_parameters
    }


def _openapi_operation(
    method: str, op: Operation, refs: dict[str, Any], route: Route
) -> dict[str, Any]:
    name = type(route.resource).__name__ + (f"_{route.suffix}" if route.suffix else "")
    scope = scopes(route.path, method)
    result: dict[str, Any] = {
        "operationId": f"{method.lower()}{name}",
        "summary": op.summary,
        "security": [] if scope is None else [{BEARER: scope}],
        "parameters": [
            {
                "name": p.name,
                "in": p.location,
                "required": True,
                "description": p.description,
                "schema": p.schema,
            }
            if p.name in op.required
            else {"$ref": f"#/components/parameters/{p.name}"}
            for p in op.described_parameters
        ],
    }
    if op.accepts:
        result["requestBody"] = {
            "required": op.body_required,
            "content": {
                (
                    request_type(model.__name__)
                    if op.body_media_type == JSON
                    else op.body_media_type
                ): {"schema": refs[model.__name__]}
                for model in op.accepts
            },
        }
    responses: dict[str, Any] = {}
    content: dict[str, Any] = {}
    if op.model_name is not None and method != "HEAD":
        content = {
            response_type(name, media_type): {"schema": refs[name]}
            for name, media_type in op.offered
        }
    elif op.media_type is not None and method != "HEAD":
        content = {op.media_type: {"schema": {"type": "string"}}}
    for status in op.statuses:
        entry: dict[str, Any] = {
            "description": op.summary
            if status in (op.success, *op.also)
            else DESCRIPTIONS.get(status, "")
        }
        headers = _headers(op, status, method)
        if headers:
            entry["headers"] = headers
        if status in (op.success, *op.also) and content:
            entry["content"] = content
        responses[str(status)] = entry
    if any(p.location == "query" for p in op.described_parameters):
        responses["414"] = {"description": DESCRIPTIONS[414]}
    for status, codes in problem_statuses(op.refusals).items():
        titles = "; ".join(f"{code} {BY_NUMBER[code].title}" for code in codes)
        problem: dict[str, Any] = {
            "description": f"errorCode {titles}",
            "headers": _headers(op, status, method),
        }
        if method != "HEAD":
            problem["content"] = {
                media_type: {"schema": refs["ProblemDetails"]}
                for media_type in (PROBLEM_JSON, PROBLEM_XML)
            }
        responses[str(status)] = {**responses.get(str(status), {}), **problem}
    result["responses"] = dict(sorted(responses.items()))
    return result


__all__ = ["METHODS", "openapi"]
