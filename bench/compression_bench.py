"""gzip or not: bytes on the wire and requests/s for the same URLs, side by side.

The stack (esdblocal, the projector, gunicorn with ``deploy/gunicorn.conf.py``) is started on
this machine and seeded with ``--items`` inventory items through the API. Each URL is then
loaded twice, back to back for ``--rounds`` rounds (the order alternates): without
``Accept-Encoding`` (identity) and with ``Accept-Encoding: gzip``. The report gives the
bytes of each representation, and the medians of requests/s and of the web's CPU per
request (master and workers). The load generator is processes of http.client (as in
``read_bench.py``); it runs on the same cores as the server, so the figures compare the two
codings with each other, not with other machines.

Run: ``python bench/compression_bench.py [--items 300] [--seconds 4] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from typing import Any

from common import (
    Bench,
    create_item,
    fmt,
    http_get,
    log,
    median,
    round_orders,
    run_python_load,
    tree_cpu_seconds,
)

URLS = [
    ("/v1/openapi.json", "the OpenAPI document"),
    ("/v1/inventory-items?limit=100", "a list page of 100"),
    ("/v1/inventory-items", "a list page of 10 (the default)"),
    ("{item}", "one item"),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-auth", dest="auth", action="store_false")
    parser.add_argument("--quick", action="store_true", help="20 items, 1 round of 1 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.seconds, args.rounds = 20, 1.0, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return Bench.main("compression-bench", lambda bench: run(args, bench), auth=args.auth)


def run(args: Any, bench: Bench) -> None:
    env = bench.stack_env(bench.esdblocal(), WEB_WORKERS=args.workers)
    bench.projector(env)
    web = bench.gunicorn("web", env)
    bench.wait(web)
    port, auth = web.port, bench.auth
    log(f"seeding {args.items} items")
    for _ in range(args.items):
        item = create_item(port, auth)
    while http_get(port, item, auth)[0] != 200:  # the projector has them all
        time.sleep(0.05)
    rows = []
    for template, what in URLS:
        path = template.format(item=item)
        _, _, identity = http_get(port, path, auth)
        _, headers, coded = http_get(port, path, {**auth, "Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(coded) == identity
        rates: dict[str, list[float]] = {"identity": [], "gzip": []}
        cpu: dict[str, list[float]] = {"identity": [], "gzip": []}
        for order in round_orders(["identity", "gzip"], args.rounds):
            for coding in order:
                extra = {"Accept-Encoding": "gzip"} if coding == "gzip" else {}
                before = tree_cpu_seconds(web.pid)
                load = run_python_load(port, path, {**auth, **extra}, args.seconds, args)
                used = tree_cpu_seconds(web.pid) - before
                assert load.errors == 0, f"{load.errors} errors on {path}"
                rates[coding].append(load.rate)
                cpu[coding].append(1000 * used / load.requests)
                log(f"{path} {coding}: {load.rate:.0f} req/s")
                time.sleep(0.5)
        plain, zipped = median(rates["identity"]), median(rates["gzip"])
        sizes = [fmt(len(identity)), fmt(len(coded)), f"{len(coded) / len(identity):.0%}"]
        per_request = f"{median(cpu['identity']):.2f} / {median(cpu['gzip']):.2f}"
        figures = [fmt(plain), fmt(zipped), f"{zipped / plain:.2f}", per_request]
        rows.append([f"{what} (`{template}`)", *sizes, *figures])
    bench.header(
        "## gzip or not",
        f"{args.connections} client processes, {args.seconds:g} s a run, {args.rounds} rounds"
        f" (medians), WEB_WORKERS={args.workers}, {args.items} items",
    )
    bench.report.table(
        "URL|identity bytes|gzip bytes|gzip / identity|"
        "identity req/s|gzip req/s|ratio|web CPU ms/req identity / gzip",
        rows,
        text=(7,),
    )


if __name__ == "__main__":
    sys.exit(main())
