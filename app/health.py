"""``/healthz`` (the process answers) and ``/readyz`` (it can do its job) for load balancers.

Not ready, either, while the read store is not from the event store the web writes to
(``projections.reader``): ``/readyz`` names the reason, and every read answers 503 with it
(``handle_untrusted``) until the projector has rebuilt the store from this one.
"""

from __future__ import annotations

import time
from typing import Any

import falcon

from app.description import Described, RouteTable, operation
from app.media import content_type
from app.problems import READ_MODEL_BEHIND, Problem, handle_problem
from app.representations import Health, Readiness
from eventstore.identity import Mismatch
from eventstore.streams import EventStore, StoreUnavailable
from projections.reader import ReadModels, Untrusted
from projections.schema import MISMATCH, POSITION, QUARANTINED, UPDATED


class HealthCheck(Described):
    @operation(summary="The process answers.", returns=Health)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["no-store"]
        resp.content_type = content_type("Health")
        resp.media = Health("ok")

    on_head = on_get


class ReadinessCheck(Described):
    """Ready when the event store answers, the read store exists and was built from this
    event store; says how far behind, or why the read store is not trusted.

    ``lag`` is in commit-position units (opaque, but zero means caught up): the newest
    event's position minus the projector's checkpoint.
    """

    def __init__(self, routes: RouteTable, store: EventStore, reads: ReadModels) -> None:
        super().__init__(routes)
        self._store = store
        self._reads = reads

    @operation(
        summary="Ready: the event store answers and the projector has a store built from it"
        " (else 503).",
        returns=Readiness,
        also=(503,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body: dict[str, Any] = {}
        try:
            head: int | None = self._store.head()
            body["eventStore"] = {"reachable": True, "head": head}
        except StoreUnavailable as error:
            head = None
            body["eventStore"] = {"reachable": False, "error": str(error)}
        status = self._reads.status()
        position = status.get(POSITION)
        projector: dict[str, Any] = {
            "started": bool(status),
            "position": position,
            "quarantined": status.get(QUARANTINED, 0),
        }
        if UPDATED in status:
            projector["secondsSinceLastCommit"] = round(time.time() - float(status[UPDATED]), 3)
        if head is not None:
            projector["lag"] = max(0, head - int(position or 0))
        mismatch = self._mismatch(status)
        if mismatch is not None:
            projector["storeMismatch"] = {
                "reason": mismatch.reason,
                "detail": mismatch.detail,
                "rebuilding": MISMATCH in status,  # the projector found it too: it rebuilds
            }
        body["projector"] = projector
        ready = body["eventStore"]["reachable"] and bool(status) and mismatch is None
        body["status"] = "ready" if ready else "unavailable"
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        if not ready:
            resp.set_header("Retry-After", "1")
        resp.cache_control = ["no-store"]
        resp.content_type = content_type("Readiness")
        resp.media = Readiness(
            status=body["status"], event_store=body["eventStore"], projector=body["projector"]
        )

    def _mismatch(self, status: dict[str, Any]) -> Mismatch | None:
        try:
            return self._reads.mismatch()
        except StoreUnavailable:
            if not status:
                return None
            return Mismatch("unverified", "the event store cannot be reached to check it")

    on_head = on_get


def handle_untrusted(
    req: falcon.Request, resp: falcon.Response, error: Untrusted, params: Any
) -> None:
    """A read while the read store is not from this event store: 503, with the reason."""
    detail = (
        f"The read models are not from this event store ({error.mismatch.reason}:"
        f" {error.mismatch.detail}); they answer again once the projector has rebuilt them."
    )
    problem = Problem(READ_MODEL_BEHIND, detail, headers={"Retry-After": "5"})
    handle_problem(req, resp, problem, params)
