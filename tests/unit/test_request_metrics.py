"""The request figures (telemetry.metrics.Middleware): one series per route, method and
status, and a method HTTP does not define counted as "other", so clients cannot grow the
number of series."""

from __future__ import annotations

from uuid import uuid4

import falcon
import falcon.testing
import pytest
from prometheus_client import REGISTRY

from telemetry import metrics


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {}


def counted(route: str, method: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total", {"route": route, "method": method, "status": status}
    )
    return value or 0.0


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")  # wsgiref's validator: on purpose
def test_requests_are_counted_by_route_method_and_status() -> None:
    app = falcon.App(middleware=[metrics.Middleware()])
    route = f"/hello-{uuid4().hex}"
    app.add_route(route, Hello())
    client = falcon.testing.TestClient(app)
    for _ in range(3):
        client.simulate_get(route)
    client.simulate_post(route)
    methods = [f"X{uuid4().hex[:8].upper()}" for _ in range(5)]
    for method in methods:
        client.simulate_request(method, route)
    assert counted(route, "GET", "200") == 3
    assert counted(route, "POST", "405") == 1
    assert counted(route, "other", "400") == 5  # Falcon alone: 400; the app says 501
    assert all(counted(route, method, "400") == 0 for method in methods)
