"""Representations kept between requests (app.queries.responder.Renderings) are never older
than the read store: a projector commit drops them, so a GET after a write, a conditional GET
with the old ETag and a list page all see the write."""

from __future__ import annotations

import json
from pathlib import Path

import falcon.testing

from projections.reader import ReadModels
from tests.api.conftest import command, create, path_of

CHECK_IN = "CheckInItemsToInventoryCommand"


def test_a_write_reaches_a_repeated_get_its_304_and_the_list(
    api: falcon.testing.TestClient, api_data: Path
) -> None:
    created = create(api, "Rendered once")
    item = path_of(created.headers["location"])
    wait = {"Commit-Position": created.headers["commit-position"]}
    first = api.simulate_get(item, headers=wait)
    total = api.simulate_get("/v1/inventory-items?limit=1&state=all").json["total"]
    last_page = f"/v1/inventory-items?state=all&offset={total - 1}&limit=1"  # the newest item
    listed = api.simulate_get(last_page)
    head = api.simulate_head(item)  # HEAD: the validators, no body, the rendering intact
    assert (head.status_code, head.headers["etag"], head.content) == (
        200,
        first.headers["etag"],
        b"",
    )
    for _ in range(3):  # kept: the same bytes and validators again
        again = api.simulate_get(item)
        assert (again.content, again.headers["etag"]) == (first.content, first.headers["etag"])
        assert (
            api.simulate_get(item, headers={"If-None-Match": first.headers["etag"]}).status_code
            == 304
        )
    reads = ReadModels(api_data / "read")
    before = reads.token()

    checked_in = api.simulate_post(item, body=json.dumps({"count": 5}), headers=command(CHECK_IN))
    wait = {"Commit-Position": checked_in.headers["commit-position"]}
    after = api.simulate_get(item, headers=wait)
    assert after.json["currentCount"] == 5
    assert after.headers["etag"] != first.headers["etag"]
    old_tag = api.simulate_get(item, headers={"If-None-Match": first.headers["etag"]})
    assert (old_tag.status_code, old_tag.json["currentCount"]) == (200, 5)
    page = api.simulate_get(last_page)
    assert page.headers["etag"] != listed.headers["etag"]
    (entry,) = [e for e in page.json["items"] if item.endswith(e["id"])]
    assert entry["etag"] == after.headers["etag"]
    assert reads.token() != before  # the projector's commit moved the store's token
