"""OPTIONS for every route: ``Allow`` plus the allowed methods as a JSON array."""

from __future__ import annotations

from typing import Any

import falcon

from app.mediatypes import content_type


class Described:
    """OPTIONS for a route and its item route: ``Allow`` plus the methods as a JSON array."""

    def _allowed(self, suffix: str) -> list[str]:
        ending = f"_{suffix}" if suffix else ""
        methods = []
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            if callable(getattr(self, f"on_{method.lower()}{ending}", None)):
                methods.append(method)
        return [*methods, "OPTIONS"]

    def _options(self, resp: falcon.Response, suffix: str) -> None:
        allowed = self._allowed(suffix)
        resp.set_header("Allow", ", ".join(allowed))
        resp.content_type = content_type("AllowedMethods")
        resp.media = allowed

    def on_options(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._options(resp, "")

    def on_options_item(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        self._options(resp, "item")

    def on_options_one(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        self._options(resp, "one")
