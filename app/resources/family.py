"""A resource family: the collection of one view, its items, and their past, read the same
way for every family.

The read half comes from the family's ``Presentation`` (where it lives, its models, what a
list may filter) and its ``Timeline`` (the past, from the event store): the list, an item
(from the read models, or at a version or a time from the timeline), its history and its
TimeMap, and HEAD for each. A family writes its commands and names the rest::

    class Cars(Family, presentation=CAR_ITEMS, lists="List cars.", reads="Read a car."):
        ...

Each family's read responders are functions of its own, made as the class is, so that each
carries the description of its own models and filters (``@listing``, ``@reading``, ...).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, ClassVar
from uuid import UUID

import falcon

from app.description import Described, RouteTable
from app.queries import Presentation, Queries
from app.queries.timeline import Timeline, wants_the_past
from app.resources.common import Writer, history, listing, reading, timemap


class Family(Described):
    """The read half of a family, and its routes; subclasses add the commands."""

    presentation: ClassVar[Presentation]

    def __init__(
        self, routes: RouteTable, writer: Writer, queries: Queries, timeline: Timeline
    ) -> None:
        super().__init__(routes)
        self._writer = writer
        self._queries = queries
        self._timeline = timeline

    def __init_subclass__(
        cls, *, presentation: Presentation, lists: str, reads: str, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.presentation = presentation
        described = {
            "": listing(lists, presentation),
            "_item": reading(reads, presentation),
            "_history": history(presentation),
            "_timemap": timemap(presentation),
        }
        for suffix, describe in described.items():
            responder = describe(_own(getattr(Family, f"_get{suffix}")))
            setattr(cls, f"on_get{suffix}", responder)
            setattr(cls, f"on_head{suffix}", responder)

    @classmethod
    def templates(cls) -> list[tuple[str, str]]:
        """Its routes, each a URI template and the suffix of its responders."""
        collection = f"/v1/{cls.presentation.path}"
        item = collection + "/{item_id:uuid}"
        return [
            (collection, ""),
            (item, "item"),
            (f"{item}/history", "history"),
            (f"{item}/timemap", "timemap"),
        ]

    def _get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._queries.collection(req, resp, self.presentation)

    def _get_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        if wants_the_past(req):
            self._timeline.item(req, resp, item_id)
        else:
            self._queries.item(req, resp, self.presentation, item_id)

    def _get_history(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._timeline.history(req, resp, item_id)

    def _get_timemap(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        self._timeline.timemap(req, resp, item_id)


def _own(function: Callable[..., None]) -> Callable[..., None]:
    """A copy of ``function`` (the same code, no extra call), to carry a description of
    its own."""
    assert isinstance(function, types.FunctionType)
    copy = types.FunctionType(
        function.__code__,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    return copy
