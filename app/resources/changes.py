"""``/v1/changes``: every change to any resource, in commit order, with a cursor and long-poll.

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
from pathlib import Path
from typing import IO

import falcon

from app import headers
from app.description import Described, RouteTable, operation
from app.etags import ETagCodec
from app.negotiation import FORMATS, respond
from app.problems import INVALID_QUERY, NOT_ACCEPTABLE, TOO_MANY_WAITING, Problem
from app.queries import PRESENTATIONS
from app.queries.parsing import MAX_OFFSET, integer, refuse_unknown
from app.representations import ChangeFeed, FeedEntry, Link
from app.resources.common import GUARDED
from projections.store import Change, ReadModels

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_WAIT = 30.0
POLL_SECONDS = 0.02


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


class Changes(Described):
    def __init__(
        self, routes: RouteTable, reads: ReadModels, etags: ETagCodec, slots: Slots
    ) -> None:
        super().__init__(routes)
        self._reads = reads
        self._etags = etags
        self._slots = slots

    @operation(
        summary="Every change to any resource after a cursor, in commit order (long-poll"
        " with Prefer: wait=N).",
        returns=ChangeFeed,
        formats=FORMATS,
        parameters=("after", "limit", "collection", "Prefer"),
        problems=(INVALID_QUERY, NOT_ACCEPTABLE, TOO_MANY_WAITING, *GUARDED),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        refuse_unknown(req, ("after", "collection"))
        after = min(integer(req, "after", 0, 0), MAX_OFFSET)  # past every commit position
        limit = min(integer(req, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
        collection = req.get_param("collection")
        by_path = {p.path: p for p in PRESENTATIONS.values()}
        if collection is not None and collection not in by_path:
            raise Problem(
                INVALID_QUERY,
                f"`collection` is one of {', '.join(sorted(by_path))}.",
                parameter="collection",
            )
        chosen = [by_path[collection]] if collection else list(by_path.values())
        categories = [p.view.category for p in chosen]
        found = self._reads.changes(after, limit, categories)
        wait = _wait(req)
        if not found and wait:
            with self._slots.taken() as waiting:
                if not waiting:
                    raise Problem(
                        TOO_MANY_WAITING,
                        "Every long-poll slot is taken; retry shortly.",
                        headers={"Retry-After": "1"},
                    )
                found = self._wait_for(after, limit, categories, wait)
            resp.set_header("Preference-Applied", f"wait={wait:g}")
        entries = []
        for change in found:
            presentation = PRESENTATIONS[change.category]
            stream = presentation.view.aggregate.stream(change.id)
            entries.append(
                FeedEntry(
                    resource=presentation.href(req.prefix, change.id),
                    collection=presentation.path,
                    version=change.version,
                    etag=f'"{self._etags.encode(stream, change.version)}"',
                    type=change.type,
                    position=change.position,
                    time=datetime.datetime.fromtimestamp(change.time, datetime.UTC)
                    if change.time is not None
                    else None,
                )
            )
        cursor = found[-1].position if found else after
        query = f"&collection={collection}" if collection else ""
        base = f"{req.prefix}/v1/changes"
        links = [
            Link("self", f"{base}?after={after}&limit={limit}{query}"),
            Link("next", f"{base}?after={cursor}&limit={limit}{query}"),
        ]
        resp.append_link(links[1].href, "next")
        respond(
            req,
            resp,
            "ChangeFeed",
            ChangeFeed(after=after, limit=limit, items=entries, links=links),
            vary=["Prefer"],  # wait=N decides whether an empty page answers at once
        )

    def _wait_for(self, after: int, limit: int, categories: list[str], wait: float) -> list[Change]:
        deadline = time.monotonic() + wait
        position = self._reads.position()
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            now = self._reads.position()
            if now != position:  # the projector committed: look again
                position = now
                found = self._reads.changes(after, limit, categories)
                if found:
                    return found
        return []

    on_head = on_get


def _wait(req: falcon.Request) -> float:
    """``Prefer: wait=N`` (RFC 7240 4.3: N is delta-seconds, digits), capped at MAX_WAIT; 0
    when absent. Other preferences are ignored, as RFC 7240 2 asks; a Prefer that breaks
    the grammar, or a wait that is not delta-seconds, is a 400 naming Prefer."""
    wait = headers.preferences(req).get("wait")
    if wait is None:
        return 0.0
    if not wait.isdigit() or not wait.isascii():
        raise headers.invalid("Prefer", "wait=N takes whole seconds (RFC 7240 4.3), e.g. wait=10.")
    return min(float(wait[:6]) if len(wait) <= 6 else MAX_WAIT, MAX_WAIT)
