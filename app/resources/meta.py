"""The routes around the resources: the entry point, search across both contexts, the error
pages, and the OpenAPI document."""

from __future__ import annotations

import falcon
import msgspec

from app.description import PAGED, Described, RouteTable, openapi, operation
from app.media import content_type
from app.negotiation import FORMATS, digest_tag, respond, validated
from app.problems import BY_NUMBER, ERRORS_PATH, KINDS, NOT_ACCEPTABLE, NOT_FOUND, Kind, Problem
from app.queries import PRESENTATIONS, Queries
from app.representations import EntryPoint, ErrorPage, Link, SearchResults
from app.resources.common import GUARDED, READS


class Root(Described):
    """``GET /v1``: the entry point, with a link to every collection."""

    @operation(
        summary="The entry point: links to everything else.",
        returns=EntryPoint,
        formats=FORMATS,
        problems=(*GUARDED, NOT_ACCEPTABLE),
        conditional=True,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        base = f"{req.prefix}/v1"
        entry = EntryPoint(
            links=[
                *(Link(p.path, f"{base}/{p.path}") for p in PRESENTATIONS.values()),
                Link("search", f"{base}/search"),
                Link("changes", f"{base}/changes"),
                Link("errors", f"{base}/errors"),
                Link("openapi", f"{base}/openapi.json"),
                Link("health", f"{req.prefix}/healthz"),
                Link("readiness", f"{req.prefix}/readyz"),
            ]
        )
        respond(req, resp, "EntryPoint", entry)

    on_head = on_get


class Search(Described):
    """``GET /v1/search?query=``: active resources of both contexts whose text matches."""

    def __init__(self, routes: RouteTable, queries: Queries) -> None:
        super().__init__(routes)
        self._queries = queries

    @operation(
        summary="Find active resources of both contexts whose text contains `query`.",
        returns=SearchResults,
        formats=FORMATS,
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

    @operation(
        summary="Every error code.",
        returns=list[ErrorPage],
        domain_model="ErrorPageList",
        formats=FORMATS,
        problems=(NOT_ACCEPTABLE,),
        conditional=True,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        respond(req, resp, "ErrorPageList", [self._page(kind, req.prefix) for kind in KINDS])

    @operation(
        summary="One error code.",
        returns=ErrorPage,
        formats=FORMATS,
        problems=(NOT_FOUND, NOT_ACCEPTABLE),
        conditional=True,
    )
    def on_get_one(self, req: falcon.Request, resp: falcon.Response, number: int) -> None:
        kind = BY_NUMBER.get(number)
        if kind is None:
            raise Problem(NOT_FOUND, f"There is no error code {number}.")
        respond(req, resp, "ErrorPage", self._page(kind, req.prefix))

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
        super().__init__(routes)
        self._documents: dict[str, bytes] = {}  # by base URL: the routes never change

    @operation(summary="This API as an OpenAPI 3.1 document.", conditional=True)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._documents.get(req.prefix)
        if body is None:  # built once per base URL (a few, behind proxies) and kept
            body = msgspec.json.encode(openapi(self.routes, req.prefix))
            if len(self._documents) < 16:
                self._documents[req.prefix] = body
        if validated(req, resp, digest_tag(body)):
            return
        resp.content_type = content_type("OpenAPI")
        resp.data = body

    on_head = on_get
