"""``/v1/openapi.json``: the whole API as OpenAPI 3.1, from the same operations and models
as OPTIONS."""

from __future__ import annotations

from typing import Any

from app.description.operations import (
    Operation,
    Route,
    RouteTable,
    models_of,
    operations,
    problem_statuses,
    request_type,
    response_type,
    schemas,
)
from app.media import JSON, VERSION
from app.problems import BY_NUMBER, PROBLEM_JSON


def openapi(table: RouteTable, base: str = "") -> dict[str, Any]:
    """An OpenAPI 3.1 document of every route, from the same operations and models."""
    every = [
        op for route in table.routes for op in operations(route.resource, route.suffix).values()
    ]
    refs, components = schemas(models_of(every), "#/components/schemas/{name}")
    paths: dict[str, Any] = {}
    for route in table.routes:
        described = operations(route.resource, route.suffix)
        if not described:
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
        for method, op in described.items():
            item[method.lower()] = _openapi_operation(method, op, refs, route)
        paths[route.path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Inventory and cars: a RESTful face for a CQRS, event-sourced system",
            "version": VERSION,
            "description": "Commands are chosen by the domain-model parameter of the "
            "Content-Type (five levels of media type); reads come from eventually consistent "
            "read models (send Commit-Position to read your writes).",
        },
        "servers": [{"url": base or "/"}],
        "paths": paths,
        "components": {"schemas": components},
    }


def _openapi_operation(
    method: str, op: Operation, refs: dict[str, Any], route: Route
) -> dict[str, Any]:
    name = type(route.resource).__name__ + (f"_{route.suffix}" if route.suffix else "")
    result: dict[str, Any] = {
        "operationId": f"{method.lower()}{name}",
        "summary": op.summary,
        "parameters": [
            {
                "name": p.name,
                "in": p.location,
                "required": p.name in op.required,
                "description": p.description,
                "schema": p.schema,
            }
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
    success: dict[str, Any] = {"description": op.summary}
    if op.model_name is not None and method != "HEAD":
        success["content"] = {
            response_type(name, media_type): {"schema": refs[name]}
            for name, media_type in op.offered
        }
        if len(op.offered) > 1:
            responses["406"] = {"description": "Accept names no representation on offer."}
    for status in (op.success, *op.also):
        responses[str(status)] = success
    if op.conditional:
        responses["304"] = {"description": "Not modified: If-None-Match names the current ETag."}
    if any(p.location == "query" for p in op.described_parameters):
        responses["414"] = {"description": "URI too long: gunicorn refuses lines over 4094 bytes."}
    for status, codes in problem_statuses(op.problems).items():
        titles = "; ".join(f"{code} {BY_NUMBER[code].title}" for code in codes)
        entry: dict[str, Any] = {"description": f"errorCode {titles}"}
        if method != "HEAD":
            entry["content"] = {PROBLEM_JSON: {"schema": refs["ProblemDetails"]}}
        responses[str(status)] = entry
    result["responses"] = responses
    return result
