"""API keys with scopes: ``Authorization: Bearer <key>``; ``read`` for GET/HEAD, ``write``
for everything that changes something.

Keys are configured as ``principal:key:scope+scope`` entries, comma-separated in
``API_KEYS`` or one per line in the file ``API_KEYS_FILE``. Only SHA-256 digests of the keys
are kept, and a presented key is compared with ``hmac.compare_digest``. With no keys at all
the API runs open (the embedded default, said loudly at start-up); ``REQUIRE_AUTH=true``
makes that a start-up error instead.

Health checks, OPTIONS, the OpenAPI document and the error pages stay public: load
balancers and documentation tools must reach them without a key. So do the browser client's
files (``/app/``): they hold no data, and the page asks for a key when the API wants one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon

from app.problems import FORBIDDEN, UNAUTHORIZED, Problem

SCOPES = ("read", "write")
READ_METHODS = ("GET", "HEAD")
# The browser client's files are public too: they hold no data, and the page asks for a key.
PUBLIC = ("/healthz", "/readyz", "/v1/openapi.json", "/v1/errors", "/app/")
CLIENT = "/app"
LANDING = "/"  # a redirect to the entry point or the browser client: it holds no data
CHALLENGE = 'Bearer realm="api"'


@dataclass(frozen=True, slots=True)
class Key:
    principal: str
    digest: bytes
    scopes: frozenset[str]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(entries: Iterable[str]) -> tuple[Key, ...]:
    """``principal:key:read+write`` entries (blank lines and ``#`` comments skipped)."""
    keys = []
    for number, entry in enumerate(entries, 1):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        try:
            principal, key, scopes = entry.split(":")
        except ValueError:
            # The entry is not echoed: it may hold a key.
            raise ValueError(
                f"API key entry {number} is not principal:key:scopes ({entry.count(':')} colons)"
            ) from None
        wanted = frozenset(scopes.split("+"))
        if not principal or len(key) < 16 or not wanted or not wanted <= set(SCOPES):
            raise ValueError(
                f"API key of {principal!r}: a key is 16 characters or more and its scopes"
                f" are some of {', '.join(SCOPES)}"
            )
        keys.append(Key(principal, _digest(key), wanted))
    return tuple(keys)


def keys_from_env(env: Mapping[str, str]) -> tuple[Key, ...]:
    entries = [e for e in env.get("API_KEYS", "").split(",") if e.strip()]
    path = env.get("API_KEYS_FILE")
    if path:
        entries += Path(path).read_text().splitlines()
    return parse_keys(entries)


class Authentication:
    """Falcon middleware: who is calling (``req.context.principal``), and may they."""

    def __init__(self, keys: tuple[Key, ...]) -> None:
        self._keys = keys

    @property
    def open(self) -> bool:
        return not self._keys

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
    ) -> None:
        req.context.principal = None
        if (
            self.open
            or req.method == "OPTIONS"
            or req.path.startswith(PUBLIC)
            or req.path in (CLIENT, LANDING)
        ):
            return
        scheme, _, presented = (req.auth or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise Problem(
                UNAUTHORIZED,
                "Send an API key: Authorization: Bearer <key>.",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        digest = _digest(presented.strip())
        key = next((k for k in self._keys if hmac.compare_digest(k.digest, digest)), None)
        if key is None:
            raise Problem(
                UNAUTHORIZED,
                "That API key is not one of ours.",
                headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
            )
        needed = "read" if req.method in READ_METHODS else "write"
        if needed not in key.scopes:
            raise Problem(
                FORBIDDEN,
                f"This key may not {needed}: its scopes are {', '.join(sorted(key.scopes))}.",
            )
        req.context.principal = key.principal
