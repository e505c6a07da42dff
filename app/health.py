"""``/healthz`` (the process answers) and ``/readyz`` (it can do its job) for load balancers."""

from __future__ import annotations

import time
from typing import Any

import falcon

from app.description import Described, RouteTable, operation
from app.media import content_type
from app.representations import Health, Readiness
from eventstore.streams import EventStore, StoreUnavailable
from projections.store import POSITION, QUARANTINED, UPDATED, ReadModels


class HealthCheck(Described):
    @operation(summary="The process answers.", returns=Health)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["no-store"]
        resp.content_type = content_type("Health")
        resp.media = Health("ok")

    on_head = on_get


class ReadinessCheck(Described):
    """Ready when the event store answers and the read store exists; says how far behind.

    ``lag`` is in commit-position units (opaque, but zero means caught up): the newest
    event's position minus the projector's checkpoint.
    """

    def __init__(self, routes: RouteTable, store: EventStore, reads: ReadModels) -> None:
        super().__init__(routes)
        self._store = store
        self._reads = reads

    @operation(
        summary="Ready: the event store answers and the projector has a store (else 503).",
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
        body["projector"] = projector
        ready = body["eventStore"]["reachable"] and bool(status)
        body["status"] = "ready" if ready else "unavailable"
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        if not ready:
            resp.set_header("Retry-After", "1")
        resp.cache_control = ["no-store"]
        resp.content_type = content_type("Readiness")
        resp.media = Readiness(
            status=body["status"], event_store=body["eventStore"], projector=body["projector"]
        )

    on_head = on_get
