"""``/v1/changes``: every change to any resource, in commit order, with a cursor and long-poll
(``app.queries.changes`` does the work)."""

from __future__ import annotations

import falcon

from app.description import Described, RouteTable, operation
from app.negotiation import FORMATS
from app.problems import INVALID_QUERY, NOT_ACCEPTABLE, TOO_MANY_WAITING
from app.queries.changes import Feed
from app.representations import ChangeFeed
from app.resources.common import GUARDED


class Changes(Described):
    def __init__(self, routes: RouteTable, feed: Feed) -> None:
        super().__init__(routes)
        self._feed = feed

    @operation(
        summary="Every change to any resource after a cursor, in commit order (long-poll"
        " with Prefer: wait=N).",
        returns=ChangeFeed,
        formats=FORMATS,
        parameters=("after", "limit", "collection", "Prefer"),
        problems=(INVALID_QUERY, NOT_ACCEPTABLE, TOO_MANY_WAITING, *GUARDED),
        conditional=True,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._feed.page(req, resp)

    on_head = on_get
