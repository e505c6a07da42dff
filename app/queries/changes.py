"""The change feed: every change to any resource, in commit order, after a cursor, with a
long-poll.

The projector writes the feed into the read store in the same transaction as the rows, so
the feed agrees with what GET answers: replaying it from 0 reaches exactly the read store's
versions. ``after`` is a commit position (0: from the start); ``Link: rel=next`` carries the
cursor. ``Prefer: wait=N`` (RFC 7240) waits, at most ``MAX_WAIT`` seconds, while nothing
lies after the cursor, and says ``Preference-Applied``.

A waiting request holds a gunicorn worker (a thread with gthread), so waiting is bounded
across all the web's processes: ``LONG_POLL_SLOTS`` lock files under ``$DATA_DIR``; a
request that finds every slot taken gets 503 ``too-many-waiting`` with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import falcon

from app import headers
from app.etags import ETagCodec
from app.negotiation import respond
from app.problems import INVALID_QUERY, TOO_MANY_WAITING, Problem
from app.queries.parsing import MAX_OFFSET, integer, refuse_unknown
from app.queries.presentations import PRESENTATIONS, Presentation
from app.representations import ChangeFeed, FeedEntry, Link
from projections.reader import Change, ReadModels

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_WAIT = 30.0
POLL_SECONDS = 0.02
BY_PATH = {p.path: p for p in PRESENTATIONS.values()}


class Slots:
    """At most ``count`` long-polls at once across processes: one lock file each."""

    def __init__(self, directory: Path, count: int) -> None:
        self._paths = [directory / f"slot-{n}.lock" for n in range(count)]
        self._directory = directory

    @contextlib.contextmanager
    def taken(self) -> Iterator[bool]:
        """Yields True while holding a free slot, False when every slot is taken."""
        self._directory.mkdir(parents=True, exist_ok=True)
        for path in self._paths:
            handle: IO[bytes] = path.open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        yield False


@dataclass(frozen=True, slots=True)
class Cursor:
    """What a request of the feed asks: the changes after ``after``, at most ``limit``, of
    the ``chosen`` collections (``collection``: the one it named, if any)."""

    after: int
    limit: int
    collection: str | None
    chosen: tuple[Presentation, ...]

    @property
    def categories(self) -> list[str]:
        return [p.view.category for p in self.chosen]

    def url(self, base: str, after: int) -> str:
        query = f"&collection={self.collection}" if self.collection else ""
        return f"{base}?after={after}&limit={self.limit}{query}"


def cursor(req: falcon.Request) -> Cursor:
    """The request's cursor, or 400 ``invalid-query``."""
    refuse_unknown(req, ("after", "collection"))
    after = min(integer(req, "after", 0, 0), MAX_OFFSET)  # past every commit position
    limit = min(integer(req, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    collection = req.get_param("collection")
    if collection is not None and collection not in BY_PATH:
        raise Problem(
            INVALID_QUERY,
            f"`collection` is one of {', '.join(sorted(BY_PATH))}.",
            parameter="collection",
        )
    chosen = (BY_PATH[collection],) if collection else tuple(BY_PATH.values())
    return Cursor(after, limit, collection, chosen)


def wait(req: falcon.Request) -> float:
    """``Prefer: wait=N`` (RFC 7240 4.3: N is delta-seconds, digits), capped at MAX_WAIT; 0
    when absent. Other preferences are ignored, as RFC 7240 2 asks; a Prefer that breaks
    the grammar, or a wait that is not delta-seconds, is a 400 naming Prefer."""
    seconds = headers.preferences(req).get("wait")
    if seconds is None:
        return 0.0
    if not seconds.isdigit() or not seconds.isascii():
        raise headers.invalid("Prefer", "wait=N takes whole seconds (RFC 7240 4.3), e.g. wait=10.")
    return min(float(seconds[:6]) if len(seconds) <= 6 else MAX_WAIT, MAX_WAIT)


class Feed:
    """``GET /v1/changes`` over the read store: parse the cursor, find the changes (waiting
    for some when asked), present them."""

    def __init__(self, reads: ReadModels, etags: ETagCodec, slots: Slots) -> None:
        self._reads = reads
        self._etags = etags
        self._slots = slots

    def page(self, req: falcon.Request, resp: falcon.Response) -> None:
        asked = cursor(req)
        found = self._changes(asked, wait(req), resp)
        base = f"{req.prefix}{req.path}"
        after = found[-1].position if found else asked.after
        links = [Link("self", asked.url(base, asked.after)), Link("next", asked.url(base, after))]
        resp.append_link(links[1].href, "next")
        entries = [self._entry(req.prefix, change) for change in found]
        page = ChangeFeed(after=asked.after, limit=asked.limit, items=entries, links=links)
        # wait=N decides whether an empty page answers at once
        respond(req, resp, "ChangeFeed", page, vary=["Prefer"])

    def _changes(self, asked: Cursor, seconds: float, resp: falcon.Response) -> list[Change]:
        """The changes after the cursor; when there are none and the client would wait
        ``seconds``, those the projector commits within them (a slot held meanwhile)."""
        found = self._reads.changes(asked.after, asked.limit, asked.categories)
        if found or not seconds:
            return found
        with self._slots.taken() as waiting:
            if not waiting:
                raise Problem(
                    TOO_MANY_WAITING,
                    "Every long-poll slot is taken; retry shortly.",
                    headers={"Retry-After": "1"},
                )
            found = self._wait_for(asked, seconds)
        resp.set_header("Preference-Applied", f"wait={seconds:g}")
        return found

    def _wait_for(self, asked: Cursor, seconds: float) -> list[Change]:
        deadline = time.monotonic() + seconds
        position = self._reads.position()
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            now = self._reads.position()
            if now != position:  # the projector committed: look again
                position = now
                found = self._reads.changes(asked.after, asked.limit, asked.categories)
                if found:
                    return found
        return []

    def _entry(self, prefix: str, change: Change) -> FeedEntry:
        presentation = PRESENTATIONS[change.category]
        stream = presentation.view.aggregate.stream(change.id)
        return FeedEntry(
            resource=presentation.href(prefix, change.id),
            collection=presentation.path,
            version=change.version,
            etag=f'"{self._etags.encode(stream, change.version)}"',
            type=change.type,
            position=change.position,
            time=None
            if change.time is None
            else datetime.datetime.fromtimestamp(change.time, datetime.UTC),
        )
