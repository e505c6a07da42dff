"""Soak the whole stack under faults, then check every answer against the event store.

A report, not a timed test: it prints what it saw and exits non-zero when a check fails (a
failed check is a finding; the report still prints).

The stack runs as real processes in a temp dir, with production-like settings (API key and
REQUIRE_AUTH=true, LOG_LEVEL=info, READ_WAIT=2, WEB_WORKERS from the core count): esdblocal
durable on a fixed port (``python -m esdblocal --port P --data DIR``), the projector
(``python -m projections``) and gunicorn (``gunicorn -c deploy/gunicorn.conf.py
app.wsgi:app``).

Load: ``--processes`` client processes of ``--threads`` threads each, every request on a new
http.client connection with a unique ``X-Request-Id`` (the app writes it into each event's
metadata as ``requestId``). The mix: inventory creates; check-ins and removals with and
without If-Match, on the client's own items and on items all clients share (a GET's ETag
then If-Match: 202 or 412; no If-Match: the server's retries, or 409); renames; deactivations
(twice: the second appends nothing); car creates, PUTs and merge-PATCHes on own and shared
cars; car deletes; POSTs with an ``Idempotency-Key`` (creates and check-ins), sent again
with the same key while they get no answer or a 503; reads of the client's own write with
its ``Commit-Position`` (the ETag must be the 202's); list pages and shared reads.

Faults, at random times (every ``--fault-every`` seconds on average; the kinds taken in a
shuffled round so that each happens): ``kill -9`` of esdblocal (restarted on the same data
dir and port after a short random down time), of the projector (restarted), and of one
gunicorn worker (the master respawns it). Each fault is a window: from the kill to the
service being back (esdblocal printing its URI; the projector's next ``caught up; live``),
plus ``--grace`` seconds.

At the end the load stops, the projector catches up, and the script checks:

- every 202 has exactly its ``eventsAppended`` events in the store (``$all`` read with
  esdbclient, counted by ``requestId``), all in the resource's stream; no event id twice;
  a keyed POST's events are in the store as many times as its 202 says, however many
  attempts it took (counted by ``idempotencyKey``);
- no other answer appended anything. A 503 that overlapped an esdblocal window may have
  appended (the store committed, then died before answering): counted apart, not a failure.
  A request that got no answer (its connection cut by a kill) has an unknown outcome:
  counted apart, appended or not, never as lost;
- every event in the API's categories belongs to a request the clients sent;
- no 5xx except 503, and a 503 only inside a fault window (``unavailable`` in an esdblocal
  window; ``read-model-behind`` in an esdblocal or projector window);
- each read of a client's own write with its ``Commit-Position`` saw that write (the 202's
  ETag; 410 after a delete);
- no process exited without being killed; the projector caught up at the end; every process
  still running at the end exits 0 on SIGTERM;
- the read store equals a fresh ``python -m projections --rebuild`` into another DATA_DIR:
  every table of both current generations, row by row (left out: the checkpoint rows of
  ``meta`` and columns of when a row was written, such as the quarantine's ``at``; a
  ``blocks`` count of 0 is the same as no row; FTS5 tables compared through the virtual
  table, not their shadow tables);

and prints each process's RSS at the start and at the end of the load.

``--poison-every N`` also writes a hostile history (undecodable data, wrong shapes, unknown
types, numbers beyond 64 bits, events before the creation event, stock below zero) straight
into a fresh stream of the API's categories every N seconds, as another client of the store
would: the projector must go on, and the rebuild must meet them as the live store did.

Run: ``python bench/soak.py [--seconds 300] [--quick] [--seed N] [--json FILE] [--keep]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    GUNICORN,
    HOST,
    Report,
    Service,
    bench_env,
    children_of,
    free_port,
    log,
    machine,
    revision,
    start_esdblocal,
    wait_http,
)

INVENTORY = "inventoryItem"
CAR = "car"
CHECK_IN = "application/json; domain-model=CheckInItemsToInventoryCommand"
REMOVE = "application/json; domain-model=RemoveItemsFromInventoryCommand"
CREATE_ITEM = "application/json; domain-model=CreateInventoryItemCommand"
RENAME = "application/json; domain-model=RenameInventoryItemCommand"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
UNAVAILABLE, READ_MODEL_BEHIND = 1016, 1019
MODELS = {"Ford": ("Escape", "F150"), "BMW": ("M3", "M5")}
COLORS = ("red", "white", "blue")
CONDITIONS = ("excellent", "good", "average", "poor")
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
CLIENT_TIMEOUT_S = 40.0  # above the app's own bounds (10 s per store call, READ_WAIT)
FTS5_SHADOWS = ("_data", "_idx", "_content", "_docsize", "_config")
META_BOOKKEEPING = ("position", "updated")  # the checkpoint, and when it was written
WHEN_COLUMNS = ("at", "updated")  # a column of when the projector wrote a row, in any table

# op name -> weight in the mix
MIX: dict[str, int] = {
    "item-create": 5,
    "item-check-in-own": 10,
    "item-remove-own": 5,
    "item-check-in-shared": 8,
    "item-remove-shared": 3,
    "item-check-in-shared-if-match": 6,
    "item-create-keyed": 2,
    "item-check-in-keyed": 4,
    "car-create-keyed": 1,
    "item-rename-own": 3,
    "item-rename-shared": 2,
    "item-deactivate-own": 2,
    "car-create": 4,
    "car-put-own": 4,
    "car-patch-own": 4,
    "car-put-shared": 2,
    "car-patch-shared": 4,
    "car-delete-own": 1,
    "read-list": 8,
    "read-shared": 4,
    "read-search": 1,
}
RYW_AFTER_WRITE = 0.5  # how often a 202 on an own resource is read back at once
POISON_PREFIX = "soak-poison-"
KEYED_ATTEMPTS = 30  # a keyed POST is retried while it gets no answer or a 503


# ---------------------------------------------------------------------------- the clients


@dataclass
class Own:
    """What a client knows of a resource only it writes (None: unknown since a cut)."""

    etag: str | None
    rep: dict[str, Any] | None = None  # a car's representation
    gone: bool = False


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


def random_car(rng: random.Random) -> dict[str, Any]:
    make = rng.choice(list(MODELS))
    return {
        "year": rng.randint(1990, 2025),
        "make": make,
        "model": rng.choice(MODELS[make]),
        "color": rng.choice(COLORS),
        "mileage": rng.randint(0, 100_000),
        "vin": "".join(rng.choice(VIN_ALPHABET) for _ in range(17)),
        "condition": rng.choice(CONDITIONS),
        "owner": str(uuid.uuid4()),
    }


class Client:
    """One load thread: requests, their records, and what it knows of its own resources."""

    def __init__(
        self,
        name: str,
        port: int,
        auth: dict[str, str],
        shared: dict[str, list[str]],
        seed: int,
        out: Any,
    ) -> None:
        self.name = name
        self.port = port
        self.auth = auth
        self.shared = shared
        self.rng = random.Random(seed)
        self.out = out
        self.items: dict[str, Own] = {}
        self.cars: dict[str, Own] = {}
        self.counter = 0
        self.ops = list(MIX)
        self.weights = [MIX[op] for op in self.ops]

    # -------------------------------------------------------------- one request

    def call(
        self,
        op: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        stream: str | None = None,
        ryw: dict[str, Any] | None = None,
    ) -> Answer:
        self.counter += 1
        rid = f"soak-{self.name}-{self.counter}-{uuid.uuid4().hex[:8]}"
        sent = {"X-Request-Id": rid, **self.auth, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
        record: dict[str, Any] = {"rid": rid, "op": op, "method": method, "path": path}
        key = (headers or {}).get("Idempotency-Key")
        if key is not None:
            record["key"] = key
        conn = http.client.HTTPConnection(HOST, self.port, timeout=CLIENT_TIMEOUT_S)
        answer = Answer(None)
        record["t0"] = time.time()
        try:
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            raw = resp.read()
            answer = Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()})
            if raw:
                try:
                    answer.body = json.loads(raw)
                except ValueError:
                    answer.body = raw.decode(errors="replace")[:200]
        except (OSError, http.client.HTTPException) as error:
            record["error"] = f"{type(error).__name__}: {error}"
        finally:
            conn.close()
        record["t1"] = time.time()
        record["status"] = answer.status
        if isinstance(answer.body, dict):
            if "errorCode" in answer.body:
                record["code"] = answer.body["errorCode"]
            if answer.status == 202:
                record["appended"] = answer.body.get("eventsAppended")
        if answer.status == 202:
            location = answer.headers.get("location")
            if stream is None and location:  # a create: the new resource's stream
                category = CAR if "/cars/" in location else INVENTORY
                stream = f"{category}-{location.rstrip('/').rsplit('/', 1)[1]}"
            record["stream"] = stream
        if ryw is not None:
            record["ryw"] = ryw
            record["etag"] = answer.headers.get("etag")
        self.out.write(json.dumps(record) + "\n")
        return answer

    # -------------------------------------------------------------- helpers

    def if_match(self, etag: str | None) -> dict[str, str]:
        return {"If-Match": etag} if etag else {}

    def read_back(self, kind: str, rid: str, own: Own, answer: Answer) -> None:
        """Read an own write back with its Commit-Position: it must show that write."""
        position = answer.headers.get("commit-position")
        if position is None or self.rng.random() >= RYW_AFTER_WRITE:
            return
        path = f"/v1/{kind}/{rid}"
        expect = {"status": 410} if own.gone else {"status": 200, "etag": own.etag}
        self.call(
            f"read-own-{'car' if kind == 'cars' else 'item'}",
            "GET",
            path,
            headers={"Commit-Position": position},
            ryw=expect,
        )

    def settle(self, own: Own, answer: Answer) -> bool:
        """Fold a write's answer into what we know of an own resource; True on a 202."""
        if answer.status == 202:
            # A PUT's 202 names the new version's tag in its body only (RFC 9110 9.3.4: a
            # validator in the header would claim the command body was stored).
            body_tag = answer.body.get("etag") if isinstance(answer.body, dict) else None
            own.etag = answer.headers.get("etag") or body_tag
            return True
        if answer.status is None or answer.status >= 500 or answer.status == 412:
            own.etag = None  # may or may not have happened: learn it again by reading
            own.rep = None
        return False

    def pick(self, owned: dict[str, Own]) -> tuple[str, Own] | None:
        alive = [(k, v) for k, v in owned.items() if not v.gone]
        return self.rng.choice(alive) if alive else None

    def changed(self, rep: dict[str, Any]) -> dict[str, Any]:
        new = dict(rep)
        if self.rng.random() < 0.6:
            new["color"] = self.rng.choice(COLORS)
        if self.rng.random() < 0.6:
            new["mileage"] = rep["mileage"] + self.rng.randint(0, 500)
        if self.rng.random() < 0.3:
            new["condition"] = self.rng.choice(CONDITIONS)
        if self.rng.random() < 0.1:
            new["owner"] = str(uuid.uuid4())
        return new

    def fetch_car(self, cid: str) -> tuple[dict[str, Any] | None, str | None]:
        answer = self.call("read-car", "GET", f"/v1/cars/{cid}")
        if answer.status == 200 and isinstance(answer.body, dict):
            return answer.body, answer.headers.get("etag")
        return None, None

    # -------------------------------------------------------------- the operations

    def step(self) -> None:
        op = self.rng.choices(self.ops, self.weights)[0]
        getattr(self, "op_" + op.replace("-", "_"))(op)

    def op_item_create(self, op: str) -> None:
        answer = self.call(
            op,
            "POST",
            "/v1/inventory-items",
            {"name": f"Soak {self.name} {self.counter}"},
            {"Content-Type": CREATE_ITEM},
        )
        if answer.status == 202:
            rid = answer.headers["location"].rstrip("/").rsplit("/", 1)[1]
            own = self.items[rid] = Own(answer.headers.get("etag"))
            self.read_back("inventory-items", rid, own, answer)

    def _item_write(self, op: str, method: str, body: Any, content_type: str) -> None:
        chosen = self.pick(self.items)
        if chosen is None:
            self.op_item_create("item-create")
            return
        rid, own = chosen
        headers = {"Content-Type": content_type}
        if self.rng.random() < 0.5:
            headers.update(self.if_match(own.etag))
        answer = self.call(
            op, method, f"/v1/inventory-items/{rid}", body, headers, f"{INVENTORY}-{rid}"
        )
        if self.settle(own, answer):
            self.read_back("inventory-items", rid, own, answer)

    def op_item_check_in_own(self, op: str) -> None:
        self._item_write(op, "POST", {"count": self.rng.randint(1, 10)}, CHECK_IN)

    def op_item_remove_own(self, op: str) -> None:
        self._item_write(op, "POST", {"count": self.rng.randint(1, 5)}, REMOVE)

    def op_item_rename_own(self, op: str) -> None:
        self._item_write(op, "PUT", {"newName": f"Soak {self.name} r{self.counter}"}, RENAME)

    def op_item_deactivate_own(self, op: str) -> None:
        chosen = self.pick(self.items)
        if chosen is None:
            self.op_item_create("item-create")
            return
        rid, own = chosen
        path, stream = f"/v1/inventory-items/{rid}", f"{INVENTORY}-{rid}"
        headers = self.if_match(own.etag) if self.rng.random() < 0.5 else {}
        answer = self.call(op, "DELETE", path, None, headers, stream)
        if self.settle(own, answer):
            own.gone = True
            self.read_back("inventory-items", rid, own, answer)
            self.call(op + "-again", "DELETE", path, None, None, stream)  # 202, nothing appended

    def _shared_item(self, op: str, body: Any, content_type: str, method: str = "POST") -> None:
        rid = self.rng.choice(self.shared["items"])
        self.call(
            op,
            method,
            f"/v1/inventory-items/{rid}",
            body,
            {"Content-Type": content_type},
            f"{INVENTORY}-{rid}",
        )

    def op_item_check_in_shared(self, op: str) -> None:
        self._shared_item(op, {"count": self.rng.randint(1, 10)}, CHECK_IN)

    def op_item_remove_shared(self, op: str) -> None:
        self._shared_item(op, {"count": self.rng.randint(1, 3)}, REMOVE)

    def op_item_rename_shared(self, op: str) -> None:
        self._shared_item(op, {"newName": f"Shared r{self.name}.{self.counter}"}, RENAME, "PUT")

    def op_item_check_in_shared_if_match(self, op: str) -> None:
        rid = self.rng.choice(self.shared["items"])
        seen = self.call("read-shared", "GET", f"/v1/inventory-items/{rid}")
        etag = seen.headers.get("etag")
        if seen.status != 200 or etag is None:
            return
        self.call(
            op,
            "POST",
            f"/v1/inventory-items/{rid}",
            {"count": self.rng.randint(1, 10)},
            {"Content-Type": CHECK_IN, "If-Match": etag},
            f"{INVENTORY}-{rid}",
        )

    def keyed(self, op: str, path: str, body: Any, content_type: str, stream: str | None) -> Answer:
        """A POST with an Idempotency-Key, sent again (same key, same body) while it gets no
        answer or a 503: however many attempts, its events must be in the store once."""
        headers = {"Content-Type": content_type, "Idempotency-Key": f"soak-{uuid.uuid4()}"}
        answer = Answer(None)
        for _ in range(KEYED_ATTEMPTS):
            answer = self.call(op, "POST", path, body, headers, stream)
            if answer.status is not None and answer.status != 503:
                break
            time.sleep(0.2)
        return answer

    def op_item_create_keyed(self, op: str) -> None:
        body = {"name": f"Soak {self.name} k{self.counter}"}
        answer = self.keyed(op, "/v1/inventory-items", body, CREATE_ITEM, None)
        if answer.status == 202:
            rid = answer.headers["location"].rstrip("/").rsplit("/", 1)[1]
            self.items[rid] = Own(answer.headers.get("etag"))

    def op_item_check_in_keyed(self, op: str) -> None:
        chosen = self.pick(self.items)
        if self.rng.random() < 0.5 or chosen is None:
            rid = self.rng.choice(self.shared["items"])
            path = f"/v1/inventory-items/{rid}"
            self.keyed(op, path, {"count": 1}, CHECK_IN, f"{INVENTORY}-{rid}")
            return
        rid, own = chosen
        body = {"count": self.rng.randint(1, 10)}
        answer = self.keyed(op, f"/v1/inventory-items/{rid}", body, CHECK_IN, f"{INVENTORY}-{rid}")
        self.settle(own, answer)

    def op_car_create_keyed(self, op: str) -> None:
        rep = random_car(self.rng)
        answer = self.keyed(op, "/v1/cars", rep, JSON, None)
        if answer.status == 202:
            cid = answer.headers["location"].rstrip("/").rsplit("/", 1)[1]
            self.cars[cid] = Own(answer.headers.get("etag"), rep)

    def op_car_create(self, op: str) -> None:
        rep = random_car(self.rng)
        answer = self.call(op, "POST", "/v1/cars", rep, {"Content-Type": JSON})
        if answer.status == 202:
            cid = answer.headers["location"].rstrip("/").rsplit("/", 1)[1]
            own = self.cars[cid] = Own(answer.headers.get("etag"), rep)
            self.read_back("cars", cid, own, answer)

    def _own_car(self) -> tuple[str, Own] | None:
        chosen = self.pick(self.cars)
        if chosen is None:
            self.op_car_create("car-create")
            return None
        cid, own = chosen
        if own.rep is None:
            own.rep, own.etag = self.fetch_car(cid)
            if own.rep is None:
                return None
        return cid, own

    def op_car_put_own(self, op: str) -> None:
        chosen = self._own_car()
        if chosen is None:
            return
        cid, own = chosen
        assert own.rep is not None
        new = self.changed(own.rep)
        headers = {"Content-Type": JSON}
        if self.rng.random() < 0.5:
            headers.update(self.if_match(own.etag))
        answer = self.call(op, "PUT", f"/v1/cars/{cid}", new, headers, f"{CAR}-{cid}")
        if self.settle(own, answer):
            own.rep = new
            self.read_back("cars", cid, own, answer)

    def op_car_patch_own(self, op: str) -> None:
        chosen = self._own_car()
        if chosen is None:
            return
        cid, own = chosen
        assert own.rep is not None
        patch: dict[str, Any] = {"mileage": own.rep["mileage"] + self.rng.randint(1, 300)}
        if self.rng.random() < 0.5:
            patch["color"] = self.rng.choice(COLORS)
        headers = {"Content-Type": MERGE_PATCH}
        if self.rng.random() < 0.5:
            headers.update(self.if_match(own.etag))
        answer = self.call(op, "PATCH", f"/v1/cars/{cid}", patch, headers, f"{CAR}-{cid}")
        if self.settle(own, answer):
            own.rep = {**own.rep, **patch}
            self.read_back("cars", cid, own, answer)

    def op_car_delete_own(self, op: str) -> None:
        chosen = self.pick(self.cars)
        if chosen is None:
            return
        cid, own = chosen
        answer = self.call(
            op, "DELETE", f"/v1/cars/{cid}", None, self.if_match(own.etag), f"{CAR}-{cid}"
        )
        if self.settle(own, answer):
            own.gone = True
            self.read_back("cars", cid, own, answer)

    def op_car_put_shared(self, op: str) -> None:
        cid = self.rng.choice(self.shared["cars"])
        rep, etag = self.fetch_car(cid)
        if rep is None:
            return
        headers = {"Content-Type": JSON}
        if self.rng.random() < 0.5 and etag:
            headers["If-Match"] = etag
        self.call(op, "PUT", f"/v1/cars/{cid}", self.changed(rep), headers, f"{CAR}-{cid}")

    def op_car_patch_shared(self, op: str) -> None:
        cid = self.rng.choice(self.shared["cars"])
        field_, values = self.rng.choice((("color", COLORS), ("condition", CONDITIONS)))
        patch = {field_: self.rng.choice(values)}
        headers = {"Content-Type": MERGE_PATCH}
        self.call(op, "PATCH", f"/v1/cars/{cid}", patch, headers, f"{CAR}-{cid}")

    def op_read_list(self, op: str) -> None:
        kind = self.rng.choice(("inventory-items", "cars"))
        offset = self.rng.choice((0, 0, 10, self.rng.randint(0, 500)))
        state = self.rng.choice(("", "", "&state=all", "&state=deactivated"))
        self.call(op, "GET", f"/v1/{kind}?offset={offset}&limit=10{state}")

    def op_read_shared(self, op: str) -> None:
        if self.rng.random() < 0.5:
            self.call(op, "GET", f"/v1/inventory-items/{self.rng.choice(self.shared['items'])}")
        else:
            self.call(op, "GET", f"/v1/cars/{self.rng.choice(self.shared['cars'])}")

    def op_read_search(self, op: str) -> None:
        self.call(op, "GET", f"/v1/search?query=soak+{self.name}&limit=5")


def client_process(
    index: int,
    threads: int,
    port: int,
    auth: dict[str, str],
    shared: dict[str, list[str]],
    seed: int,
    directory: str,
    stop: Any,
) -> None:
    """One client process: ``threads`` clients, each writing its records to its own file."""

    def run(name: str, thread_seed: int) -> None:
        with (Path(directory) / f"records-{name}.jsonl").open("w", buffering=1) as out:
            client = Client(name, port, auth, shared, thread_seed, out)
            while not stop.is_set():
                client.step()

    workers = [
        threading.Thread(target=run, args=(f"p{index}t{t}", seed * 1000 + index * 10 + t))
        for t in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


# ---------------------------------------------------------------------------- the stack


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Window:
    """A fault: from the kill until the service is back, plus the grace."""

    kind: str  # esdblocal | projector | worker
    killed_pid: int
    start: float
    back: float | None = None  # the service answers again (esdblocal), or the worker is replaced
    live: float | None = None  # the projector's next "caught up; live" after the fault
    down_s: float = 0.0

    def end(self, grace: float, reads: bool = False) -> float:
        ends = [t for t in ((self.live if reads else None), self.back) if t is not None]
        return (max(ends) if ends else float("inf")) + grace


class Stack:
    """esdblocal, the projector and gunicorn, each restartable, with a log of their faults."""

    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.data = tmp / "data"
        self.services: list[Service] = []
        self.windows: list[Window] = []
        self.unexpected_exits: list[str] = []
        self.killed: set[int] = set()  # pids this script killed
        self.poisoned: list[tuple[str, str]] = []  # (case, stream) written into the store
        self.stops: list[tuple[str, int | None, float]] = []  # name, exit status, seconds
        self.lock = threading.Lock()
        self._seen_lines: dict[str, int] = {}
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def start_store(self) -> None:
        """esdblocal on a free port (``start_esdb`` restarts it on the same one)."""
        self.uri = start_esdblocal(self.data, self.tmp, self.env, self.services)
        self.esdb = self.services[-1]
        self.esdb_port = urlsplit(self.uri).port

    def _start(self) -> None:
        args = self.args
        self.env, self.auth = bench_env(auth=True)
        self.start_store()
        self.port = free_port()
        settings = {"ESDB_URI": self.uri, "DATA_DIR": self.data, "PORT": self.port}
        settings.update(READ_WAIT=args.read_wait, LOG_LEVEL="info", WEB_WORKERS=args.workers)
        self.env.update({k: str(v) for k, v in settings.items() if v})
        self.generation = {"esdblocal": 1, "projector": 0}
        self.projector = self.start_projector()
        self.web = Service("web", [*GUNICORN, "app.wsgi:app"], self.tmp, self.env)
        self.services.append(self.web)
        wait_http(self.web, self.port, "/healthz")
        self.wait_live(self.projector, 0, 60)

    # -------------------------------------------------------------- services

    def start_projector(self) -> Service:
        self.generation["projector"] += 1
        name = f"projector-{self.generation['projector']}"
        service = Service(name, [sys.executable, "-m", "projections"], self.tmp, self.env)
        self.services.append(service)
        return service

    def start_esdb(self) -> Service:
        self.generation["esdblocal"] += 1
        argv = [sys.executable, "-m", "esdblocal", "--port", str(self.esdb_port)]
        argv += ["--data", str(self.data / "esdb")]
        service = Service(f"esdblocal-{self.generation['esdblocal']}", argv, self.tmp, self.env)
        self.services.append(service)
        service.wait_for_line(service.stdout_path, lambda line: line.startswith("esdb"), 60)
        return service

    def live_lines(self, service: Service) -> int:
        try:
            text = service.stderr_path.read_text(errors="replace")
        except OSError:
            return 0
        return text.count('"caught up; live"')

    def wait_live(self, service: Service, before: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.live_lines(service) <= before:
            service.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service.name} not live after {timeout:.0f} s")
            time.sleep(0.05)

    def workers(self) -> list[int]:
        return sorted(children_of(self.web.pid))

    def pids(self) -> dict[str, list[int]]:
        return {
            "esdblocal": [self.esdb.pid],
            "projector": [self.projector.pid],
            "gunicorn master": [self.web.pid],
            "gunicorn workers": self.workers(),
        }

    # -------------------------------------------------------------- watching

    def watch(self, stop: threading.Event) -> None:
        """Note when the projector goes live (the fault windows end there), and any process
        that exits without being killed by us."""
        while not stop.wait(0.05):
            now = time.time()
            with self.lock:
                projector = self.projector
                count = self.live_lines(projector)
                key = projector.name
                if count > self._seen_lines.get(key, 0):
                    self._seen_lines[key] = count
                    for window in self.windows:
                        if (
                            window.live is None
                            and window.back is not None
                            and window.kind in ("esdblocal", "projector")
                        ):
                            window.live = now
                for service in (self.esdb, self.projector, self.web):
                    if service.proc.poll() is not None and service.pid not in self.killed:
                        last = service.stderr_tail().strip().splitlines() or ["(no output)"]
                        self.unexpected_exits.append(
                            f"{service.name} exited with {service.proc.returncode}: {last[-1]}"
                        )
                        self.killed.add(service.pid)
                        self._replace(service)

    def _replace(self, service: Service) -> None:
        """A process died on its own (a finding): start another so the soak goes on."""
        if service is self.projector:
            self.projector = self.start_projector()
        elif service is self.esdb:
            self.esdb = self.start_esdb()

    # -------------------------------------------------------------- faults

    def kill(self, kind: str, rng: random.Random) -> Window:
        if kind == "worker":
            pids = self.workers()
            if not pids:
                raise RuntimeError("gunicorn has no workers")
            pid = rng.choice(pids)
            window = Window(kind, pid, time.time())
            with self.lock:
                self.windows.append(window)
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                now = self.workers()
                if pid not in now and len(now) >= len(pids):
                    break
                time.sleep(0.02)
            window.back = time.time()
            return window
        with self.lock:
            service = self.esdb if kind == "esdblocal" else self.projector
            self.killed.add(service.pid)
            window = Window(kind, service.pid, time.time())
            self.windows.append(window)
            service.proc.kill()
        service.proc.wait()
        down = rng.uniform(0.2, 3.0) if kind == "esdblocal" else rng.uniform(0.0, 2.0)
        window.down_s = down
        time.sleep(down)
        if kind == "esdblocal":
            fresh = self.start_esdb()
            with self.lock:
                self.esdb = fresh
        else:
            with self.lock:
                self.projector = self.start_projector()
        window.back = time.time()
        return window

    def faults(self, stop: threading.Event, until: float, rng: random.Random) -> None:
        """Kill at random times until ``until``: the kinds in shuffled rounds, and the gaps of
        the first round shortened when needed so that every kind happens at least once."""
        if self.args.fault_every <= 0:
            return
        kinds = ["esdblocal", "projector", "worker"]
        rng.shuffle(kinds)
        first_round = True
        while True:
            gap = rng.uniform(0.3, 1.7) * self.args.fault_every
            if first_round:
                gap = min(gap, max(0.5, (until - time.time()) / (len(kinds) + 1)))
            if stop.wait(gap) or time.time() >= until:
                return
            kind = kinds.pop()
            if not kinds:
                kinds = ["esdblocal", "projector", "worker"]
                rng.shuffle(kinds)
                first_round = False
            log(f"fault: kill -9 {kind}")
            try:
                self.kill(kind, rng)
            except Exception as error:  # a restart that failed is a finding, not a crash
                with self.lock:
                    self.unexpected_exits.append(f"restarting {kind} failed: {error}")

    def stop_one(self, service: Service) -> None:
        """SIGTERM (SIGKILL after 15 s), noting how it ended: every process of the stack
        must exit 0 on SIGTERM, within moments."""
        if service.proc.poll() is not None:
            return
        started = time.perf_counter()
        service.stop()
        self.stops.append((service.name, service.proc.returncode, time.perf_counter() - started))

    def stop(self) -> None:
        """Everything still running, the event store last."""
        for service in sorted(reversed(self.services), key=lambda s: s.name.startswith("esdb")):
            self.stop_one(service)


# ---------------------------------------------------------------------------- poison


def _event(kind: str, **fields: Any) -> tuple[str, bytes]:
    return kind, json.dumps({"type": kind, **fields}).encode()


def poison_cases() -> list[tuple[str, str, list[tuple[str, bytes]]]]:
    """Hostile histories written straight into the store: (name, category, events)."""
    created = _event("InventoryItemCreated", name="Poison")
    car = {
        "year": 2020,
        "make": "Ford",
        "model": "F150",
        "color": "red",
        "mileage": 10,
        "vin": "1FTEW1E50JFA00000",
        "condition": "good",
        "owner": str(uuid.uuid4()),
    }
    return [
        ("not JSON", INVENTORY, [created, ("ItemsCheckedInToInventory", b"\xff{not json")]),
        ("wrong shape", INVENTORY, [created, _event("ItemsCheckedInToInventory", count="ten")]),
        ("unknown type", INVENTORY, [created, _event("ItemsTeleported", count=1)]),
        ("count beyond 64 bits", INVENTORY, [created, _event("ItemsCheckedInToInventory",
                                                              count=10**25)]),
        ("stock below zero", INVENTORY, [created, _event("ItemsRemovedFromInventory", count=5)]),
        ("event before creation", INVENTORY, [_event("ItemsCheckedInToInventory", count=5)]),
        ("car mileage beyond 64 bits", CAR, [_event("CarCreated", **{**car, "mileage": 10**30})]),
        ("car event before creation", CAR, [_event("ColorChanged", color="blue")]),
        ("car empty data", CAR, [("CarCreated", b"")]),
    ]  # fmt: skip


def poisoner(stack: Stack, stop: threading.Event, every: float, rng: random.Random) -> None:
    """Every ``every`` seconds, one hostile history into a fresh stream of the API's
    categories, as another client of the store would write it (retried with the same event
    ids while the store is down). Its events carry a ``requestId`` starting ``soak-poison-``."""
    from esdbclient import EventStoreDBClient, NewEvent, StreamState

    cases = poison_cases()
    client: EventStoreDBClient | None = None
    number = 0
    while not stop.wait(rng.uniform(0.5, 1.5) * every):
        name, category, history = cases[number % len(cases)]
        number += 1
        rid = f"{POISON_PREFIX}{number}"
        meta = json.dumps({"requestId": rid, "$causationId": rid, "poison": name}).encode()
        stream = f"{category}-{uuid.uuid4()}"
        events = [NewEvent(type=t, data=d, metadata=meta, id=uuid.uuid4()) for t, d in history]
        for _ in range(100):
            try:
                if client is None:
                    client = EventStoreDBClient(stack.uri)
                client.append_to_stream(
                    stream, current_version=StreamState.NO_STREAM, events=events, timeout=5
                )
                stack.poisoned.append((name, stream))
                break
            except Exception as error:  # the store is down, or the first try got in
                if "WrongCurrentVersion" in type(error).__name__:
                    stack.poisoned.append((name, stream))
                    break
                with contextlib.suppress(Exception):
                    if client is not None:
                        client.close()
                client = None
                if stop.wait(0.3):
                    break
    if client is not None:
        client.close()


def quarantined(data: Path) -> int | None:
    """Rows in the read store's quarantine table (None: the store has none)."""
    from projections import schema

    path = schema.current_generation(data / "read")
    if path is None:
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,) = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return int(count)


# ---------------------------------------------------------------------------- checking


def store_events(uri: str) -> list[dict[str, Any]]:
    """Every event of $all outside system streams: id, stream, type, requestId."""
    from esdbclient import EventStoreDBClient

    events = []
    with EventStoreDBClient(uri) as client:
        for event in client.read_all():
            if event.stream_name.startswith("$"):
                continue
            try:
                meta = json.loads(event.metadata) if event.metadata else {}
            except ValueError:
                meta = {}
            events.append(
                {
                    "id": str(event.id),
                    "stream": event.stream_name,
                    "type": event.type,
                    "rid": meta.get("requestId") if isinstance(meta, dict) else None,
                    "causation": meta.get("$causationId") if isinstance(meta, dict) else None,
                    "key": meta.get("idempotencyKey") if isinstance(meta, dict) else None,
                }
            )
    return events


def head(uri: str) -> int:
    from esdbclient import EventStoreDBClient

    with EventStoreDBClient(uri) as client:
        position: int = client.get_commit_position()
        return position


def read_position(data: Path) -> int | None:
    """The checkpoint of the current generation of ``data``'s read store."""
    from projections import schema

    path = schema.current_generation(data / "read")
    if path is None or not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'position'").fetchone()
    finally:
        db.close()
    return None if row is None else int(row[0])


def wait_position(data: Path, target: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reached = read_position(data)
        if reached is not None and reached >= target:
            return True
        time.sleep(0.1)
    return False


def table_rows(db: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, in a form two read stores can be compared by.

    Left out: FTS5 shadow tables (the virtual table is compared instead; its segments
    depend on batch sizes), the checkpoint rows of ``meta``, columns saying when a row was
    written (``WHEN_COLUMNS``); a ``blocks`` count of 0 is the same as no row.
    """
    tables = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    virtual = [n for n, sql in tables if (sql or "").upper().startswith("CREATE VIRTUAL")]
    shadows = {v + suffix for v in virtual for suffix in FTS5_SHADOWS}
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for name, _ in tables:
        if name in shadows or name.startswith("sqlite_"):
            continue
        names = [c[1] for c in db.execute(f'PRAGMA table_info("{name}")')]
        kept = [f'"{c}"' for c in names if c not in WHEN_COLUMNS]
        columns = ", ".join((["rowid"] if name in virtual else []) + kept)
        found = db.execute(f'SELECT {columns} FROM "{name}"').fetchall()
        if name == "meta":
            found = [r for r in found if r[0] not in META_BOOKKEEPING]
        if name == "blocks":
            found = [r for r in found if r[-1] != 0]
        rows[name] = sorted(found, key=repr)
    return rows


def compare_stores(live: Path, rebuilt: Path) -> tuple[bool, list[str]]:
    from projections import schema

    paths = [schema.current_generation(d / "read") for d in (live, rebuilt)]
    if None in paths:
        return False, ["a read store has no current generation"]
    dbs = [sqlite3.connect(f"file:{p}?mode=ro", uri=True) for p in paths if p is not None]
    try:
        left, right = (table_rows(db) for db in dbs)
    finally:
        for db in dbs:
            db.close()
    lines = []
    for name in sorted(set(left) | set(right)):
        a, b = left.get(name), right.get(name)
        if a is None or b is None:
            lines.append(f"table {name}: only in the {'rebuild' if a is None else 'live store'}")
            continue
        only_a = collections.Counter(a) - collections.Counter(b)
        only_b = collections.Counter(b) - collections.Counter(a)
        state = "equal" if not only_a and not only_b else "DIFFERENT"
        lines.append(f"table {name}: {len(a)} rows live, {len(b)} rebuilt: {state}")
        for row in list(only_a)[:3]:
            lines.append(f"  only live:    {row!r}"[:300])
        for row in list(only_b)[:3]:
            lines.append(f"  only rebuilt: {row!r}"[:300])
    same = all(line.endswith("equal") for line in lines if line.startswith("table"))
    return same and bool(lines), lines


def rebuild(stack: Stack, target: int, timeout: float) -> tuple[Path, float, str]:
    """``python -m projections --rebuild`` into a fresh DATA_DIR, stopped once it has reached
    ``target`` (the head); its data dir, seconds, and how it ended."""
    other = stack.tmp / "rebuild"
    other.mkdir()
    env = {**stack.env, "DATA_DIR": str(other)}
    started = time.perf_counter()
    service = Service("rebuild", [sys.executable, "-m", "projections", "--rebuild"], stack.tmp, env)
    stack.services.append(service)
    try:
        service.wait_for_line(
            service.stderr_path, lambda line: "rebuilt store swapped in" in line, timeout
        )
        reached = wait_position(other, target, timeout)
        seconds = time.perf_counter() - started
    finally:
        stack.stop_one(service)
    how = f"exit {service.proc.returncode}" + ("" if reached else ", never reached the head")
    return other, seconds, how


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def overlaps(record: dict[str, Any], start: float, end: float) -> bool:
    return bool(record["t0"] <= end and record["t1"] >= start)


def lateness(record: dict[str, Any], windows: list[Window], reads: bool) -> float | None:
    """How long after the service of its fault window was back (the store answering; for
    reads, the projector live again) a 503'd request was sent; negative: before."""
    kinds = ("esdblocal", "projector") if reads else ("esdblocal",)
    mine = [w for w in windows if w.kind in kinds and w.start <= record["t1"]]
    if not mine:
        return None
    window = max(mine, key=lambda w: w.start)
    back = window.live if reads else window.back
    return None if back is None else float(record["t0"] - back)


def analyse(
    records: list[dict[str, Any]],
    events: list[dict[str, Any]],
    windows: list[Window],
    grace: float,
) -> tuple[list[Check], dict[str, Any]]:
    by_rid: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in events:
        by_rid[event["rid"]].append(event)
    sent = {r["rid"] for r in records}
    store_w = [(w.start, w.end(grace)) for w in windows if w.kind == "esdblocal"]
    read_w = [(w.start, w.end(grace, reads=True)) for w in windows if w.kind != "worker"]

    def in_any(record: dict[str, Any], spans: list[tuple[float, float]]) -> bool:
        return any(overlaps(record, a, b) for a, b in spans)

    figures: dict[str, Any] = collections.defaultdict(int)
    problems: dict[str, list[str]] = collections.defaultdict(list)
    for record in records:
        mine = by_rid.get(record["rid"], [])
        status = record["status"]
        figures["requests"] += 1
        if status is None:
            figures["unknown outcome"] += 1
            figures["unknown outcome, appended"] += bool(mine)
            continue
        if status == 202:
            figures["202"] += 1
        if status == 202 and "key" not in record:  # keyed ones: checked per key below
            expected = record.get("appended")
            figures["events acknowledged"] += expected or 0
            streams = {e["stream"] for e in mine}
            if expected is None or len(mine) != expected:
                kind = "lost" if expected is not None and len(mine) < expected else "duplicated"
                problems[kind].append(
                    f"{record['rid']} {record['method']} {record['path']}: 202 said"
                    f" {expected} event(s), the store has {len(mine)}"
                )
            elif mine and streams != {record.get("stream")}:
                problems["wrong stream"].append(
                    f"{record['rid']}: events in {sorted(streams)}, expected {record.get('stream')}"
                )
        elif status != 202 and mine:
            if status == 503 and in_any(record, store_w):
                figures["503 in a store window, appended"] += 1
            else:
                problems["refusal appended"].append(
                    f"{record['rid']} {record['method']} {record['path']}: answered {status}"
                    f" (errorCode {record.get('code')}), yet {len(mine)} event(s) in the store"
                )
        if status >= 500:
            figures["5xx"] += 1
            code = record.get("code")
            allowed = status == 503 and (
                (code == UNAVAILABLE and in_any(record, store_w))
                or (code == READ_MODEL_BEHIND and in_any(record, read_w))
            )
            if allowed:
                figures["503 in a fault window"] += 1
                late = lateness(record, windows, reads=code == READ_MODEL_BEHIND)
                name = f"503 {code}, latest sent after the service was back (s)"
                if late is not None:
                    figures[name] = round(max(figures.get(name, late), late), 2)
            else:
                problems["unexpected 5xx"].append(
                    f"{record['rid']} {record['method']} {record['path']}: {status}"
                    f" (errorCode {code}) at {record['t0']:.3f}"
                )
        expect = record.get("ryw")
        if expect is not None and status in (200, 410):
            figures["read-your-writes checked"] += 1
            if status != expect["status"] or (status == 200 and record["etag"] != expect["etag"]):
                problems["read-your-writes"].append(
                    f"{record['rid']} GET {record['path']}: {status} {record.get('etag')},"
                    f" expected {expect['status']} {expect.get('etag')}"
                )
    keyed_checks(records, events, figures, problems)
    for event in events:
        if event["causation"] != event["rid"]:
            problems["metadata"].append(f"{event['id']}: $causationId is not its requestId")
    ids = collections.Counter(e["id"] for e in events)
    twice = [i for i, n in ids.items() if n > 1]
    poison = [e for e in events if str(e["rid"]).startswith(POISON_PREFIX)]
    figures["poison events in the store"] = len(poison)
    orphans = [e for e in events if e["rid"] not in sent and e not in poison]
    figures["events in the store"] = len(events)

    def detail(kind: str, ok_text: str) -> str:
        found = problems.get(kind, [])
        if not found:
            return ok_text
        return f"{len(found)}: " + "; ".join(found[:5])

    checks = [
        Check(
            "every 202's events in the store exactly once",
            not problems["lost"] and not problems["duplicated"] and not problems["wrong stream"],
            f"{figures['202']} 202s, {figures['events acknowledged']} events acknowledged"
            f" (+{figures['keyed, events acknowledged']} by {figures['keyed requests']} keyed"
            f" requests in {figures['keyed attempts']} attempts, retried while unanswered);"
            f" lost {len(problems['lost'])}, duplicated {len(problems['duplicated'])},"
            f" wrong stream {len(problems['wrong stream'])}"
            + "".join(
                f"; {p}" for k in ("lost", "duplicated", "wrong stream") for p in problems[k][:3]
            ),
        ),
        Check("no event id twice in $all", not twice, f"{len(twice)} ids twice {twice[:3]}"),
        Check(
            "no refusal appended anything",
            not problems["refusal appended"],
            detail(
                "refusal appended",
                f"none did; {figures['503 in a store window, appended']} 503(s) answered while"
                " the store was cut had appended (uncertain by nature)",
            ),
        ),
        Check(
            "every event belongs to a request sent",
            not orphans,
            f"{len(orphans)} orphan(s) {orphans[:3]}" if orphans else f"{len(events)} events",
        ),
        Check(
            "metadata: $causationId is the request id",
            not problems["metadata"],
            detail("metadata", "every event's"),
        ),
        Check(
            "no 5xx but 503 in a fault window",
            not problems["unexpected 5xx"],
            detail(
                "unexpected 5xx",
                f"{figures['5xx']} 5xx, all 503 inside a fault window (+{grace:g} s)",
            ),
        ),
        Check(
            "read-your-writes: own writes read back",
            not problems["read-your-writes"],
            detail(
                "read-your-writes",
                f"{figures['read-your-writes checked']} reads saw their write",
            ),
        ),
    ]
    return checks, dict(figures)


def keyed_checks(
    records: list[dict[str, Any]],
    events: list[dict[str, Any]],
    figures: dict[str, Any],
    problems: dict[str, list[str]],
) -> None:
    """Requests sent with an Idempotency-Key, retried while unanswered or 503: however many
    attempts, the key's events are in the store exactly as many times as the 202 says."""
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in records:
        if "key" in record:
            groups[record["key"]].append(record)
    by_key: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in events:
        if event["key"] is not None:
            by_key[event["key"]].append(event)
    for key, group in groups.items():
        figures["keyed requests"] += 1
        figures["keyed attempts"] += len(group)
        got = by_key.get(key, [])
        rids = {r["rid"] for r in group}
        accepted = [r for r in group if r["status"] == 202]
        first = group[0]
        where = f"key {key} ({first['method']} {first['path']}, {len(group)} attempt(s))"
        if any(e["rid"] not in rids for e in got):
            problems["duplicated"].append(f"{where}: events of another request carry the key")
        if not accepted:
            refused = [r for r in group if r["status"] is not None and r["status"] != 503]
            if refused and got:
                problems["refusal appended"].append(
                    f"{where}: answered {refused[-1]['status']}, yet {len(got)} event(s)"
                )
            elif not refused:
                figures["keyed, no definitive answer"] += 1
            continue
        figures["keyed, events acknowledged"] += accepted[0].get("appended") or 0
        if len(group) > 1:
            figures["keyed, 202 after a retry"] += 1
        counts = {r.get("appended") for r in accepted}
        streams = {r.get("stream") for r in accepted}
        if len(counts) != 1 or len(streams) != 1:
            problems["duplicated"].append(f"{where}: the 202s disagree: {counts} {streams}")
            continue
        (expected,) = counts
        if expected is None or len(got) != expected:
            kind = "lost" if expected is not None and len(got) < expected else "duplicated"
            problems[kind].append(
                f"{where}: 202 said {expected} event(s), the store has {len(got)}"
            )
        elif got and {e["stream"] for e in got} != streams:
            problems["wrong stream"].append(
                f"{where}: events in {sorted({e['stream'] for e in got})}"
            )


def status_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    statuses = sorted({r["status"] or 0 for r in records})
    names = [str(s) if s else "no answer" for s in statuses]
    per: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for record in records:
        per[record["op"]][record["status"] or 0] += 1
    rows = []
    for op in sorted(per):
        counts = per[op]
        rows.append([op, str(sum(counts.values()))] + [str(counts.get(s, "")) for s in statuses])
    total = collections.Counter(r["status"] or 0 for r in records)
    rows.append(["**all**", str(len(records))] + [str(total.get(s, "")) for s in statuses])
    return ["op", "requests", *names], rows


# ---------------------------------------------------------------------------- the run


def seed_shared(port: int, auth: dict[str, str], items: int, cars: int) -> dict[str, list[str]]:
    """The items and cars every client writes to (created before the clock starts)."""
    shared: dict[str, list[str]] = {"items": [], "cars": []}
    rng = random.Random(0)
    for index in range(items):
        conn = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_S)
        headers = {**auth, "Content-Type": CREATE_ITEM, "X-Request-Id": f"soak-seed-item-{index}"}
        conn.request("POST", "/v1/inventory-items", json.dumps({"name": "Shared"}), headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 202, resp.status
        shared["items"].append(resp.headers["location"].rsplit("/", 1)[1])
        conn.close()
    for index in range(cars):
        body = random_car(rng)
        conn = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_S)
        headers = {**auth, "Content-Type": JSON, "X-Request-Id": f"soak-seed-car-{index}"}
        conn.request("POST", "/v1/cars", json.dumps(body), headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 202, resp.status
        shared["cars"].append(resp.headers["location"].rsplit("/", 1)[1])
        conn.close()
    return shared


def seed_records(shared: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The seeding requests as records (every one a 202 of one event)."""
    records = []
    for kind, category in (("items", INVENTORY), ("cars", CAR)):
        for index, rid in enumerate(shared[kind]):
            name = "item" if kind == "items" else "car"
            records.append(
                {
                    "rid": f"soak-seed-{name}-{index}",
                    "op": f"seed-{name}",
                    "method": "POST",
                    "path": "/v1/" + ("inventory-items" if kind == "items" else "cars"),
                    "t0": 0.0,
                    "t1": 0.0,
                    "status": 202,
                    "appended": 1,
                    "stream": f"{category}-{rid}",
                }
            )
    return records


def rss_snapshot(stack: Stack) -> dict[str, list[tuple[int, int | None]]]:
    return {role: [(pid, rss_kb(pid)) for pid in pids] for role, pids in stack.pids().items()}


def mb(kb: int | None) -> str:
    return "—" if kb is None else f"{kb / 1024:.1f}"


def rss_rows(
    start: dict[str, list[tuple[int, int | None]]], end: dict[str, list[tuple[int, int | None]]]
) -> list[list[str]]:
    rows = []
    for role in start:
        a, b = start[role], end.get(role, [])
        same = {p for p, _ in a} & {p for p, _ in b}
        rows.append(
            [
                role,
                ", ".join(str(p) for p, _ in a),
                " + ".join(mb(k) for _, k in a),
                ", ".join(str(p) for p, _ in b),
                " + ".join(mb(k) for _, k in b),
                f"{len(same)} of {len(a)}" if len(a) > 1 else ("yes" if same else "no (restarted)"),
            ]
        )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="load duration (300)")
    parser.add_argument("--quick", action="store_true", help="30 s of load, faults every 5 s")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--processes", type=int, default=3, help="client processes (3)")
    parser.add_argument("--threads", type=int, default=2, help="client threads per process (2)")
    parser.add_argument(
        "--fault-every",
        type=float,
        default=None,
        help="mean seconds between faults (15; 5 quick; 0: none, to see memory without restarts)",
    )
    parser.add_argument(
        "--poison-every",
        type=float,
        default=0.0,
        help="also write a hostile history straight into the store every N s (0: off)",
    )
    parser.add_argument("--grace", type=float, default=2.0, help="seconds after a fault (2)")
    parser.add_argument("--shared-items", type=int, default=4)
    parser.add_argument("--shared-cars", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="WEB_WORKERS (default: gunicorn's)")
    parser.add_argument("--read-wait", type=float, default=2.0, help="READ_WAIT (2)")
    parser.add_argument("--settle", type=float, default=60.0, help="catch-up timeout at the end")
    parser.add_argument("--json", type=Path, help="also write the checks and figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args(argv)
    if args.quick and args.seconds == parser.get_default("seconds"):
        args.seconds = 30.0
    if args.fault_every is None:
        args.fault_every = 5.0 if args.quick or args.seconds < 60 else 15.0
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    return args


def main(
    argv: list[str] | None = None,
    parse: Callable[[list[str] | None], argparse.Namespace] = parse_args,
    make: Callable[[Path, argparse.Namespace], Stack] | None = None,
    more: Callable[[argparse.Namespace, Any, Report, bool], bool] | None = None,
    prefix: str = "soak",
) -> int:
    """The soak (failover.py passes its own arguments, stack and further checks)."""
    args = parse(argv)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    report = Report()
    stack: Stack | None = None
    ok = False
    try:
        stack = (make or Stack)(tmp, args)
        ok = run(args, stack, report)
        if more is not None:
            ok = more(args, stack, report, ok)
    finally:
        if stack is not None:
            stack.stop()
        print("\n".join(report.lines), flush=True)
        if args.keep or not ok:
            log(f"logs and data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def run(args: argparse.Namespace, stack: Stack, report: Report) -> bool:
    load_before = os.getloadavg()
    rng = random.Random(args.seed)
    shared = seed_shared(stack.port, stack.auth, args.shared_items, args.shared_cars)
    rss_start = rss_snapshot(stack)
    records_dir = stack.tmp / "records"
    records_dir.mkdir()

    ctx = mp.get_context("spawn")
    stop_load = ctx.Event()
    stop_watch = threading.Event()
    watcher = threading.Thread(target=stack.watch, args=(stop_watch,), daemon=True)
    watcher.start()
    clients = [
        ctx.Process(
            target=client_process,
            args=(
                i,
                args.threads,
                stack.port,
                stack.auth,
                shared,
                args.seed,
                str(records_dir),
                stop_load,
            ),
        )
        for i in range(args.processes)
    ]
    log(f"load: {args.processes} x {args.threads} clients for {args.seconds:g} s, seed {args.seed}")
    started = time.time()
    for client in clients:
        client.start()
    until = started + args.seconds - min(10.0, args.seconds / 5)  # the last faults settle
    faults = threading.Thread(target=stack.faults, args=(stop_watch, until, rng))
    faults.start()
    poison = threading.Thread(
        target=poisoner, args=(stack, stop_watch, args.poison_every, random.Random(args.seed + 1))
    )
    if args.poison_every > 0:
        poison.start()
    time.sleep(max(0.0, started + args.seconds - time.time()))
    stop_load.set()
    for client in clients:
        client.join(CLIENT_TIMEOUT_S + 10)
        if client.is_alive():
            client.kill()
    load_seconds = time.time() - started
    stop_watch.set()
    faults.join()
    if poison.is_alive():
        poison.join()
    watcher.join()
    log("load stopped; waiting for the projector to catch up")

    target = head(stack.uri)
    caught_up = wait_position(stack.data, target, args.settle)
    rss_end = rss_snapshot(stack)
    records = seed_records(shared)
    for path in sorted(records_dir.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line]
    events = store_events(stack.uri)
    checks, figures = analyse(records, events, stack.windows, args.grace)
    checks.append(
        Check(
            "the projector caught up",
            caught_up,
            f"head {target}, read store at {read_position(stack.data)}",
        )
    )
    checks.append(
        Check(
            "no process exited unless killed",
            not stack.unexpected_exits,
            "; ".join(stack.unexpected_exits)[:1000] or "none",
        )
    )
    quarantine_live, quarantine_rebuilt = quarantined(stack.data), None
    stack.stop_one(stack.projector)  # the live store stays as it is while it is compared
    log("rebuilding into a fresh DATA_DIR")
    try:
        other, rebuild_s, how = rebuild(stack, target, args.settle)
        same, lines = compare_stores(stack.data, other)
        quarantine_rebuilt = quarantined(other)
        detail = f"rebuild {rebuild_s:.1f} s ({how}); " + "; ".join(line.strip() for line in lines)
        checks.append(Check("read store equals a rebuild", same and how == "exit 0", detail))
    except RuntimeError as error:
        lines = []
        checks.append(Check("read store equals a rebuild", False, str(error)))

    stack.stop()
    unclean = [(n, rc, t) for n, rc, t in stack.stops if rc != 0]
    checks.append(
        Check(
            "every process exits 0 on SIGTERM",
            not unclean,
            (
                "; ".join(f"{n}: exit {rc} after {t:.1f} s" for n, rc, t in unclean)
                + " (a negative status: killed after ignoring SIGTERM for 15 s)"
                if unclean
                else ", ".join(f"{n} {t:.1f} s" for n, _, t in stack.stops)
            ),
        )
    )

    # ------------------------------------------------------------------ the report
    report.add("# Soak under faults", "")
    report.add(*(f"- {line}" for line in machine(load_before)))
    report.add(
        f"- code: {revision()}",
        f"- stack: esdblocal (durable), projector, gunicorn -c deploy/gunicorn.conf.py"
        f" ({len(rss_start['gunicorn workers'])} sync workers), API key + REQUIRE_AUTH,"
        f" LOG_LEVEL=info, READ_WAIT={args.read_wait:g}",
        f"- load: {args.processes} processes x {args.threads} threads for {load_seconds:.0f} s"
        f" (seed {args.seed}), {figures.get('requests', 0)} requests"
        f" ({figures.get('requests', 0) / load_seconds:.0f}/s), a new connection each;"
        f" shared: {args.shared_items} items, {args.shared_cars} cars",
        f"- faults: {len(stack.windows)} kill -9 (mean gap {args.fault_every:g} s), grace"
        f" {args.grace:g} s"
        if args.fault_every > 0
        else "- faults: none (--fault-every 0): every process lives through the run",
        f"- poison: {len(stack.poisoned)} hostile histories written straight into the store"
        f" ({', '.join(sorted({c for c, _ in stack.poisoned}))}); quarantine rows: live store"
        f" {quarantine_live}, rebuild {quarantine_rebuilt}"
        if args.poison_every > 0
        else "- poison: none (--poison-every 0)",
        "",
    )
    report.add("## Checks", "")
    report.table(
        "check|result|detail",
        [[c.name, "ok" if c.ok else "**FAIL**", c.detail.replace("|", "\\|")] for c in checks],
        text=(1, 2),
    )
    report.add("## Outcomes", "")
    report.table(
        "figure|count",
        [[k, str(v)] for k, v in sorted(figures.items())],
    )
    header, rows = status_table(records)
    report.add("## Answers per operation", "")
    report.table(header, rows)
    report.add("## Faults", "")
    cut: collections.Counter[int] = collections.Counter()
    for record in records:
        if record["status"] is None:
            for index, window in enumerate(stack.windows):
                if overlaps(record, window.start, window.end(0)):
                    cut[index] += 1
                    break
    report.table(
        "at s|kill -9|pid|down s|back after s|live after s|no answer",
        [
            [
                f"{w.start - started:.1f}",
                w.kind,
                str(w.killed_pid),
                f"{w.down_s:.2f}" if w.kind != "worker" else "—",
                f"{w.back - w.start:.2f}" if w.back else "never",
                f"{w.live - w.start:.2f}" if w.live else "—",
                str(cut.get(i, 0)),
            ]
            for i, w in enumerate(stack.windows)
        ],
        text=(1,),
    )
    report.add("## Memory (VmRSS, MB)", "")
    report.table(
        "process|pid at start|start|pid at end|end|same process",
        rss_rows(rss_start, rss_end),
        text=(1, 3, 5),
    )
    if lines:
        report.add("## Read store vs rebuild", "", *(f"    {line}" for line in lines), "")
    ok = all(c.ok for c in checks)
    report.add(f"**{'all checks passed' if ok else 'CHECKS FAILED'}**")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "ok": ok,
                    "seed": args.seed,
                    "checks": [c.__dict__ for c in checks],
                    "figures": figures,
                    "faults": [w.__dict__ for w in stack.windows],
                    "rss_kb": {"start": rss_start, "end": rss_end},
                },
                indent=2,
            )
        )
    return ok


if __name__ == "__main__":
    sys.exit(main())
