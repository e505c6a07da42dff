"""The floor for bench/read_bench.py: a Falcon hello-world under the same gunicorn settings.

It answers the URLs the benchmark reads (an item, the collection, ``/healthz``) with a small
JSON body through ``resp.media`` and does nothing else: no middleware, no store, no ETag,
no conditional requests (a GET with ``If-None-Match`` gets the same 200).

Run: ``gunicorn -c deploy/gunicorn.conf.py --pythonpath bench hello_app:app``.
"""

from __future__ import annotations

from uuid import UUID

import falcon


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"message": "hello", "offset": 0, "items": []}

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, item_id: UUID) -> None:
        resp.media = {"id": str(item_id), "name": "hello", "currentCount": 0}


app = falcon.App()
hello = Hello()
app.add_route("/healthz", hello)
app.add_route("/v1/inventory-items", hello)
app.add_route("/v1/inventory-items/{item_id:uuid}", hello, suffix="item")
