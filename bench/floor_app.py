"""A second floor for bench/read_bench.py: the hello-world with the app's production settings
and nothing else.

The issue measures GETs with an API key and the access log on. This app runs the app's own
middleware, as ``app.api.create_app`` lists it (``RequestContext``: the request id and the
access line; ``BodyLimit``; ``Authentication``: the API key from ``API_KEYS``), in front of a
hello-world that answers an item with the validators the app's item carries (``ETag``,
``Cache-Control``, ``Vary``) and a 304 when ``If-None-Match`` names its ETag (``FLOOR_ETAG``,
unquoted). No store, no negotiation, no links: what any implementation pays for the
production settings and a correct 304 before it reads anything. The app's ratio to this
floor is the share its read path costs.

Run: ``gunicorn -c deploy/gunicorn.conf.py --pythonpath bench 'floor_app:create()'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import falcon

from app.auth import Authentication
from app.bodies import BodyLimit
from app.middleware import RequestContext
from app.queries.responder import not_modified
from app.settings import Settings


class Floor:
    def __init__(self, etag: str) -> None:
        self._etag = etag

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"message": "hello", "offset": 0, "items": []}

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        resp.vary = ["Accept"]
        if not_modified(req, resp, self._etag):
            return
        resp.media = {"id": str(item_id), "name": "hello", "currentCount": 0}


def create(env: Mapping[str, str] | None = None) -> falcon.App[falcon.Request, falcon.Response]:
    """The floor, configured as the app is (from the environment by default);
    ``FLOOR_ETAG`` is the item's ETag (read_bench.py gives it the app's, so the same
    If-None-Match is a 304 here too)."""
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    middleware: list[Any] = [  # the app's, as app.api.create_app lists them
        RequestContext(),
        BodyLimit(settings.max_body_bytes),
        Authentication(settings.api_keys),
    ]
    app = falcon.App(middleware=middleware)
    floor = Floor(env.get("FLOOR_ETAG", "0123456789abcdefghijklmnopqrstuv"))
    app.add_route("/healthz", floor)
    app.add_route("/v1/inventory-items", floor)
    app.add_route("/v1/inventory-items/{item_id:uuid}", floor, suffix="item")
    return app
