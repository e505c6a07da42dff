"""``/app/``: the browser client, static files shipped inside the package.

The seed's prototype came with a browser client; this is ours: plain HTML, CSS and ES modules
in ``app/static/client``, no build step and no CDN. The files are read once, when the app is
built, and served from memory with a strong ETag (a digest of the bytes), so a browser
revalidates them cheaply. A Content-Security-Policy of ``'self'`` keeps the page from making
any request to another origin.

The client is not an API resource: it has no domain-model, answers no OPTIONS description and
is left out of the routing table that OPTIONS and OpenAPI are built from. It is public (the
page itself holds no data; it asks for an API key when the API answers 401).
"""

from __future__ import annotations

import hashlib
from importlib import resources

import falcon

from app.problems import NOT_FOUND, Problem

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Asset:
    __slots__ = ("body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type
        self.etag = hashlib.sha256(body).hexdigest()[:32]


def load_assets() -> dict[str, Asset]:
    """Every servable file of the client, by name (no directories, no other extensions)."""
    assets = {}
    for entry in (resources.files("app") / "static" / "client").iterdir():
        suffix = entry.name[entry.name.rfind(".") :] if "." in entry.name else ""
        if entry.is_file() and suffix in TYPES:
            assets[entry.name] = Asset(entry.read_bytes(), TYPES[suffix])
    return assets


class Landing:
    """``/``: where a person who opens the server's root URL lands. A browser (one that ranks
    ``text/html`` above JSON, as every browser's ``Accept`` does) is sent to the browser
    client; an API client to the entry point, ``/v1``. Both are 302 with ``Vary: Accept``,
    since the header chose the target; nothing here is secret, so it needs no key."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        person = req.client_prefers(["application/json", "text/html"]) == "text/html"
        resp.vary = ["Accept"]
        resp.cache_control = ["no-cache"]
        raise falcon.HTTPFound(
            f"{req.prefix}/app/" if person else f"{req.prefix}/v1",
            headers={"Vary": "Accept", "Cache-Control": "no-cache"},
        )

    on_head = on_get


class ClientApp:
    """``/app`` redirects to ``/app/``; ``/app/`` is index.html; ``/app/{name}`` an asset."""

    def __init__(self) -> None:
        self._assets = load_assets()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPPermanentRedirect(f"{req.prefix}/app/")

    on_head = on_get

    def on_get_index(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._serve(req, resp, "index.html")

    on_head_index = on_get_index

    def on_get_asset(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self._serve(req, resp, name)

    on_head_asset = on_get_asset

    def _serve(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        asset = self._assets.get(name)
        if asset is None:
            raise Problem(NOT_FOUND, f"The browser client has no file {name!r}.")
        resp.etag = asset.etag
        resp.cache_control = ["no-cache"]
        resp.set_header("Content-Security-Policy", POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        tags = req.if_none_match
        if tags and any(tag == "*" or str(tag) == asset.etag for tag in tags):
            resp.status = falcon.HTTP_304  # no body, so no Content-Type either
            return
        resp.content_type = asset.content_type
        resp.data = asset.body
