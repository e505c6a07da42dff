"""Content negotiation as the seed's system did it: the format by ``Accept`` (JSON or XML,
q-values included), and the representation by the 5LMT parameters a client names there
(``domain-model`` and ``version``).

A representation on offer is a (format, domain-model) pair; the first domain-model a route
offers is its default, and JSON is the default format. Each ``Accept`` range is parsed with
Falcon's own ``parse_header``; the highest q wins, then the most specific range, then the
order of the header, then the route's own order (JSON before XML, default model first). A
range that names a domain-model the route does not offer, another version, or a format we
do not serve matches nothing; when nothing matches, 406 lists what is available.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import falcon
import msgspec

from app import coding, xmldocs
from app.accept import XML, ranges
from app.media import JSON, VERSION, content_type
from app.problems import NOT_ACCEPTABLE, Problem

FORMATS = (JSON, XML)
# Every representation may be stored (by the client's own cache only: ``private``), and is
# revalidated before each reuse: ``max-age=0`` makes it stale at once, and
# ``must-revalidate`` forbids serving it stale when the origin cannot be reached (RFC 9111
# 5.2.2.2), which ``max-age=0`` alone would allow.
CACHE_CONTROL = "private, max-age=0, must-revalidate"


@dataclass(frozen=True, slots=True)
class Choice:
    format: str
    model: str
    default: bool  # the route's default representation in JSON

    @property
    def tag_suffix(self) -> str:
        """What tells this representation's ETag from the default's (RFC 9110 8.8.3: a
        strong validator differs between representations): empty for the default, whose
        ETag is the write side's, else ``.<domain-model>.<json|xml>``."""
        if self.default:
            return ""
        return f".{self.model}.{self.format.rpartition('/')[2]}"


def negotiate(
    accept: str | None, models: Sequence[str], formats: Sequence[str] = FORMATS
) -> Choice:
    """The representation to send, or a 406 problem listing those on offer."""
    choice = _choose(accept, tuple(models), tuple(formats))
    if choice is None:
        available = [f"{f}; domain-model={m}; version={VERSION}" for f in formats for m in models]
        raise Problem(
            NOT_ACCEPTABLE,
            "No representation on offer matches Accept: " + ", ".join(available) + ".",
            available=available,
        )
    return choice


# Clients send few distinct Accept headers, again and again: each is parsed and ranked once
# (per worker, the most recent 512).
@functools.lru_cache(maxsize=512)
def _choose(accept: str | None, models: tuple[str, ...], formats: tuple[str, ...]) -> Choice | None:
    best: tuple[tuple[float, int, int, int], Choice] | None = None
    for accepted in ranges(accept):
        if accepted.q <= 0 or (accepted.version is not None and accepted.version != VERSION):
            continue
        for rank, media_type in enumerate(formats):
            if not accepted.matches(media_type):
                continue
            if accepted.model is None:
                model = models[0]
            elif accepted.model in models:
                model = accepted.model
            else:
                continue
            key = (accepted.q, accepted.specificity, -accepted.order, -rank)
            if best is None or key > best[0]:
                default = media_type == JSON and model == models[0]
                best = (key, Choice(media_type, model, default))
    return None if best is None else best[1]


_encode = msgspec.json.Encoder().encode


def encode(choice: Choice, value: Any) -> bytes:
    """``value`` (a Struct) in the chosen format."""
    return _encode(value) if choice.format == JSON else xmldocs.render(choice.model, value)


def digest_tag(body: bytes) -> str:
    """A strong validator for content built per request: a digest of exactly its bytes."""
    digest = hashlib.blake2b(body, digest_size=18).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def fresh(req: falcon.Request, etag: str) -> bool:
    """Does If-None-Match name this representation? (weak comparison, RFC 9110 13.1.2)"""
    tags = req.if_none_match
    if not tags:
        return False
    return any(tag == "*" or str(tag) == etag for tag in tags)


def validated(req: falcon.Request, resp: falcon.Response, etag: str) -> bool:
    """The validator and caching on the answer; True (and a 304) when the client holds
    this representation already (the ETag is the coding's: ``app.coding``)."""
    etag = coding.validator(req, etag)
    resp.etag = etag
    resp.cache_control = [CACHE_CONTROL]
    if fresh(req, etag):
        resp.status = falcon.HTTP_304
        return True
    return False


def respond(
    req: falcon.Request,
    resp: falcon.Response,
    model: str,
    value: Any,
    vary: Sequence[str] = (),
) -> None:
    """A 200 of one model, in the format the client asks for, with an ETag of its bytes
    (a 304 when If-None-Match names it); ``vary`` names other request fields that
    selected it."""
    choice = negotiate(req.get_header("Accept"), [model])
    resp.vary = ["Accept", *vary]
    body = encode(choice, value)
    if validated(req, resp, digest_tag(body)):
        return
    resp.content_type = content_type(model, choice.format)
    resp.data = body
