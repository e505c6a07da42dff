"""``python -m tools.redbot_check http://127.0.0.1:8000``: REDbot, the HTTP linter, over every
kind of URL of a running server, with and without conditional headers.

It makes what it needs first (an inventory item, one deactivated for a 410, a car), waits for
the read side with ``Commit-Position``, then has REDbot check each URL headless (its Python
API, as its own CLI drives it) and reads the notes it leaves. Any note REDbot rates "bad" or
"warning" fails the run, unless it is in ``QUIRKS``: the notes we judge to be REDbot's own,
each with the RFC text that says why. Exit 0: nothing to fix; 1: the notes to fix, listed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import uuid
from collections.abc import Iterable, Sequence
from configparser import ConfigParser
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ACCEPT_XML = "application/xml"
CREATE = "application/json; domain-model=CreateInventoryItemCommand"
DEACTIVATE = "application/json; domain-model=DeactivateInventoryItemCommand"
CAR = {
    "year": 2020,
    "make": "BMW",
    "model": "M3",
    "color": "blue",
    "mileage": 10,
    "vin": "WBA3A5C51DF000002",
    "condition": "good",
    "owner": "7f0c6b5e-2d4a-4f1e-9a57-3c2b1d0e9f8a",
}
CAR_TYPE = "application/json; domain-model=CarRepresentation"


@dataclass(frozen=True)
class Quirk:
    """A note REDbot gives that RFC 9110/9111 does not support, and why."""

    note: str  # the note's class name in REDbot (or httplint)
    kinds: tuple[str, ...]  # the URL kinds it is judged a quirk for (empty: every kind)
    why: str


# Each entry is also in the README ("What outside HTTP tools say"), with its RFC text.
QUIRKS: tuple[Quirk, ...] = (
    Quirk(
        "STATUS_BAD_REQUEST",
        ("400",),
        "REDbot warns on every 400 that the server did not understand the request, with no"
        " further text. The request was malformed on purpose (limit=0), and RFC 9110 15.5.1"
        ' says a 400 is how a server "cannot or will not process the request due to'
        ' something that is perceived to be a client error": the answer is the right one.',
    ),
    Quirk(
        "VARY_STATUS_MISMATCH",
        tuple(
            f"{kind}, If-None-Match"
            for kind in ("item", "item as XML", "list", "memento", "history")
        ),
        "REDbot repeats a conditional request with Accept-Encoding: gzip and the same"
        " If-None-Match, and expects the same 304. The tag it holds is the identity"
        " representation's. RFC 9110 8.8.3.3: \"a strong entity tag for a content-encoded"
        " representation has to be distinct from the entity tag of an unencoded"
        ' representation", so If-None-Match does not name the gzip one: its 200 is right.',
    ),
)


@dataclass(frozen=True)
class Target:
    """One URL REDbot checks: its kind, the URL and the request headers."""

    kind: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    anonymous: bool = False  # without the API key


@dataclass(frozen=True)
class Finding:
    kind: str
    url: str
    status: str
    level: str
    note: str
    summary: str

    def __str__(self) -> str:
        return f"{self.level:7} {self.kind:22} {self.status} {self.note}: {self.summary}"


class Server:
    """Plain HTTP/1.1 calls to the server under test, to make what REDbot then reads."""

    def __init__(self, base: str, key: str | None) -> None:
        parts = urlsplit(base)
        self.base = base.rstrip("/")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self.auth = (("Authorization", f"Bearer {key}"),) if key else ()

    def call(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            sent = {**dict(self.auth), **{k.replace("_", "-"): v for k, v in headers.items()}}
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def command(self, method: str, path: str, body: Any, content_type: str, **headers: str) -> str:
        """Run a command; once the read side has it, the resource's URL path."""
        status, answered, raw = self.call(method, path, body, Content_Type=content_type, **headers)
        if status != 202:
            raise RuntimeError(f"{method} {path} answered {status}: {raw[:300]!r}")
        where = urlsplit(answered["location"]).path
        position = answered.get("commit-position")
        if position is not None:  # read your write: the GETs below see it
            self.call("GET", where, Commit_Position=position)
        return where


def targets(server: Server) -> list[Target]:
    """Every kind of URL the API has, made real, with and without conditional headers."""
    item = server.command("POST", "/v1/inventory-items", {"name": "Widget"}, CREATE)
    gone = server.command("POST", "/v1/inventory-items", {"name": "Retired"}, CREATE)
    server.command("DELETE", gone, {}, DEACTIVATE)
    car = server.command("POST", "/v1/cars", CAR, CAR_TYPE)
    base = server.base

    def etag(path: str, *headers: tuple[str, str]) -> str:
        status, answered, _ = server.call("GET", path, **{k: v for k, v in headers})
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        return answered["etag"]

    xml = ("Accept", ACCEPT_XML)
    found = [
        Target("entry point", f"{base}/v1"),
        Target("list", f"{base}/v1/inventory-items"),
        Target("list as XML", f"{base}/v1/inventory-items", (xml,)),
        Target("item", f"{base}{item}"),
        Target("item as XML", f"{base}{item}", (xml,)),
        Target("item summary", f"{base}{item}", (("Accept", _summary("InventoryItem")),)),
        Target("car", f"{base}{car}"),
        Target("car list", f"{base}/v1/cars"),
        Target("history", f"{base}{item}/history"),
        Target("memento", f"{base}{item}?version=0"),
        Target(
            "timegate",
            f"{base}{item}",
            (("Accept-Datetime", "Sat, 01 Jan 2050 00:00:00 GMT"),),
        ),
        Target("timemap", f"{base}{item}/timemap"),
        Target("search", f"{base}/v1/search?query=Widget"),
        Target("openapi", f"{base}/v1/openapi.json"),
        Target("error pages", f"{base}/v1/errors"),
        Target("error page", f"{base}/v1/errors/1000"),
        Target("change feed", f"{base}/v1/changes"),
        Target("health", f"{base}/healthz"),
        Target("readiness", f"{base}/readyz"),
        Target("404", f"{base}/v1/inventory-items/{uuid.uuid4()}"),
        Target("410", f"{base}{gone}"),
        Target("400", f"{base}/v1/inventory-items?limit=0"),
        Target("406", f"{base}/v1/inventory-items", (("Accept", "text/csv"),)),
        Target("item, HEAD", f"{base}{item}", method="HEAD"),
        Target("list, HEAD", f"{base}/v1/inventory-items", method="HEAD"),
    ]
    if server.auth:
        found.append(Target("401", f"{base}/v1/inventory-items", anonymous=True))
    conditional = [
        Target("item, If-None-Match", f"{base}{item}", (("If-None-Match", etag(item)),)),
        Target(
            "item as XML, If-None-Match",
            f"{base}{item}",
            (xml, ("If-None-Match", etag(item, ("Accept", ACCEPT_XML)))),
        ),
        Target(
            "list, If-None-Match",
            f"{base}/v1/inventory-items",
            (("If-None-Match", etag("/v1/inventory-items")),),
        ),
        Target(
            "memento, If-None-Match",
            f"{base}{item}?version=0",
            (("If-None-Match", etag(f"{item}?version=0")),),
        ),
        Target(
            "history, If-None-Match",
            f"{base}{item}/history",
            (("If-None-Match", etag(f"{item}/history")),),
        ),
        Target("item, If-None-Match *", f"{base}{item}", (("If-None-Match", "*"),)),
    ]
    return found + conditional


def _summary(prefix: str) -> str:
    return f"application/json; domain-model={prefix}Summary"


def check(targets: Sequence[Target], auth: Sequence[tuple[str, str]] = ()) -> list[Finding]:
    """REDbot's notes on every target (checked together, in one event loop)."""
    import thor
    from redbot.resource import HttpResource

    parser = ConfigParser()
    parser.read_dict({"redbot": {"enable_local_access": "True"}})
    config = parser["redbot"]
    pending: set[int] = set()
    resources = []
    for target in targets:
        resource = HttpResource(config)
        sent = [*target.headers] if target.anonymous else [*auth, *target.headers]
        resource.set_request(target.url, method=target.method, headers=sent)
        resources.append((target, resource))
        pending.add(id(resource))

        def done(resource: Any = resource) -> None:
            pending.discard(id(resource))
            if not pending:
                thor.stop()

        resource.on("check_done", done)
    for _, resource in resources:
        resource.check()
    if pending:
        thor.run()
    findings = []
    for target, resource in resources:
        if resource.fetch_error is not None:
            raise RuntimeError(f"REDbot could not fetch {target.url}: {resource.fetch_error}")
        status = resource.response.status_code_str or "---"
        for note in _notes(resource.response.notes):
            findings.append(
                Finding(
                    target.kind,
                    target.url,
                    status,
                    note.level.value,
                    type(note).__name__,
                    str(note.summary),
                )
            )
    return findings


def _notes(notes: Iterable[Any]) -> Iterable[Any]:
    for note in notes:
        yield note
        yield from _notes(note.subnotes)


def to_fix(findings: Iterable[Finding], quirks: Iterable[Quirk] = QUIRKS) -> list[Finding]:
    """The bad and warning notes no quirk explains."""
    judged = list(quirks)
    return [
        f
        for f in findings
        if f.level in ("bad", "warning")
        and not any(q.note == f.note and (not q.kinds or f.kind in q.kinds) for q in judged)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.redbot_check", description=__doc__)
    parser.add_argument("base", help="the server's origin, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", help="an API key with read and write scopes, if it wants one")
    parser.add_argument("--all", action="store_true", help="print every note, good ones too")
    args = parser.parse_args(argv)
    server = Server(args.base, args.key)
    try:
        findings = check(targets(server), server.auth)
    except (OSError, RuntimeError) as error:
        print(f"cannot check {args.base}: {error}", file=sys.stderr)
        return 2
    for finding in findings if args.all else [f for f in findings if f.level != "good"]:
        print(finding)
    left = to_fix(findings)
    print(f"{len(findings)} notes, {len(left)} to fix", file=sys.stderr)
    for finding in left:
        print(f"TO FIX {finding}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
