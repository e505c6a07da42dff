"""gzip for the representations GET and HEAD send, when ``Accept-Encoding`` asks for it.

A representation is compressed when the client accepts gzip (RFC 9110 12.5.3: ``gzip`` or
``*`` with a q above 0, and not below identity's), whatever its size (nginx's default
``gzip_min_length`` is 20 bytes; ours are all larger). Every response that could have been
compressed says ``Vary: Accept-Encoding``, compressed or not, so a cache never hands gzip to
a client that did not ask for it.

A content coding makes another representation (RFC 9110 8.4.1), so its strong validator
differs (8.8.3): the gzip representation's ETag is the identity one's followed by ``.gz``.
``If-None-Match`` then matches per coding, and ``If-Match`` with either tag names the same
version (a write reads the version before the first ``.``).

gzip level 1: it costs a fraction of level 6's CPU for nearly the same size on JSON pages
(bench/compression_bench.py). What a worker compressed is kept, keyed by the identity bytes,
so a page served again while the store is idle is compressed once.
"""

from __future__ import annotations

import functools
import threading
import zlib
from collections import OrderedDict
from typing import Any

import falcon

GZIP_SUFFIX = ".gz"
LEVEL = 1
KEPT = 128  # compressed bodies per worker process (a list page of 100 is ~40 KB)
_READS = ("GET", "HEAD")


@functools.lru_cache(maxsize=256)
def accepts_gzip(header: str | None) -> bool:
    """Does ``Accept-Encoding`` choose gzip over identity? (A member we cannot read counts
    for nothing, as a missing one does: the answer is then identity, which is always safe.)"""
    if not header:
        return False
    weights: dict[str, float] = {}
    for member in header.split(","):
        coding, _, params = member.strip(" \t").partition(";")
        coding = coding.strip(" \t").lower()
        q = 1.0
        name, _, value = params.strip(" \t").partition("=")
        if name.strip(" \t").lower() == "q":
            try:
                q = float(value.strip(" \t"))
            except ValueError:
                continue
        if coding:
            weights.setdefault(coding, q)
    gzip = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    identity = weights.get("identity", weights.get("*", 1.0))
    return gzip > 0 and gzip >= identity


def wants_gzip(req: falcon.Request) -> bool:
    return bool(getattr(req.context, "gzip", False))


def validator(req: falcon.Request, etag: str) -> str:
    """The ETag of the representation this request gets: identity's, or gzip's. Marks the
    response as one that varies on Accept-Encoding."""
    req.context.coded = True
    return etag + GZIP_SUFFIX if wants_gzip(req) else etag


class Compression:
    """Falcon middleware: decides the coding per request, compresses on the way out."""

    def __init__(self) -> None:
        self._kept: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.gzip = req.method in _READS and accepts_gzip(req.get_header("Accept-Encoding"))

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        if not getattr(req.context, "coded", False):
            return  # not a representation with a validator: nothing to vary
        vary = resp.get_header("Vary")
        resp.set_header("Vary", f"{vary}, Accept-Encoding" if vary else "Accept-Encoding")
        data = resp.data
        if wants_gzip(req) and resp.status_code == 200 and isinstance(data, bytes):
            resp.data = self._compressed(data)
            resp.set_header("Content-Encoding", "gzip")

    def _compressed(self, data: bytes) -> bytes:
        with self._lock:
            found = self._kept.get(data)
            if found is not None:
                self._kept.move_to_end(data)
                return found
        compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        found = compressor.compress(data) + compressor.flush()
        with self._lock:
            self._kept[data] = found
            if len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return found
