"""The peer of issue 28's command row: Emmett's Express sample on the same esdblocal.

**What it is.** ``samples/webApi/expressjs-with-esdb`` of https://github.com/event-driven-io/emmett
(a shopping-cart Web API: Express 4 on Node, Emmett's ``CommandHandler`` and
``@eventstore/db-client`` 6), at commit ``97b16c567711c907a6739aa7b38272d01e7c169d``
(2025-03-19, "Bumped to 0.35.0"; the sample pins ``@event-driven-io/emmett*`` 0.35.0-alpha.2,
Node v20.11.1 in its ``.nvmrc``). That commit, not emmett's newest: the newest sample pins
0.43.0-beta.13, which the npm registry this project's machines reach does not serve; the
sample's ``src/`` is the same at both commits. Nothing of it is committed here.

**Getting and building it.** ``make peer`` clones that commit into ``var/emmett`` (git-ignored;
``EMMETT_DIR`` puts it elsewhere, for ``make peer`` and for this module alike), then runs
``npm ci`` and ``npm run build`` (tsup: ``dist/index.cjs``, what the sample's Dockerfile runs)
in the sample. Where GitHub is not reachable, put the tree there by hand from any copy of the
repository, then run ``make peer``, which skips the clone when the sample is there::

    mkdir -p var/emmett
    git --git-dir=<a clone or mirror of emmett> archive 97b16c567711c907a6739aa7b38272d01e7c169d \\
        | tar -x -C var/emmett
    make peer

Node 20 (``/usr/bin/node``) and npm 11 run it; npm installs only from the registry.

**How it runs** (``running``): ``node dist/index.cjs`` in the sample's folder, with
``ESDB_CONNECTION_STRING`` set to esdblocal's ``esdb://127.0.0.1:PORT?tls=false`` (the sample
reads only that; esdblocal is insecure by default, as the sample's docker-compose runs
EventStoreDB). The sample listens on a hard-coded port 3000 (``startAPI(application)``); so
that runs never collide, a ``--require`` preload written into ``tmp`` makes a ``listen(3000)``
listen on 127.0.0.1 port 0 and print the port it got. The sample's code is not changed. Its
client negotiates with ServerFeatures and appends with BatchAppend, both of which esdblocal
serves; nothing else was needed to make it run.

**The command** (``command``): ``POST /clients/{id}/shopping-carts/current/product-items``
with ``{"productId": ..., "quantity": 1}``, answered 204. It is the sample's cheapest
single-event command, and it does what our check-in does: load the aggregate, decide, append
one event to the aggregate's stream with the expected version it read
(Emmett's ``CommandHandler``: ``aggregateStream`` then ``appendToStream`` with
``expectedRevision``), then answer. Emmett has no snapshots: each command reads its cart's
whole stream. So that this cost stays that of a realistic cart, not of a cart that has grown
through a whole benchmark (ours folds from a snapshot), every client starts a new cart every
``CART_SIZE`` commands: a command reads 0 to ``CART_SIZE - 1`` events, and one in
``CART_SIZE`` appends to a new stream (expected: no stream). ``setup`` gives the client fresh
carts (call it in the process that then sends that client's commands, once per run) and adds a
product to a warm-up cart, so that the sample's store connection is up before the clock runs.

The sample's Express keeps HTTP/1.1 connections alive (``Connection: keep-alive``,
``Keep-Alive: timeout=5``): ``KEEP_ALIVE``.

**Self-check**: ``python bench/peer.py --check [--clients 8] [--commands 300]`` starts
esdblocal (durable, in a temp dir) and the sample, runs that many clients in closed loops
through this interface on kept-alive connections, counts the answers, reads every cart back
with esdbclient and prints the counts and a rough rate (one run on a shared machine: noise,
not a figure).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PROJECT_ROOT, Service, bench_env, log, percentile

EMMETT_COMMIT = "97b16c567711c907a6739aa7b38272d01e7c169d"
SAMPLE_PATH = Path("samples/webApi/expressjs-with-esdb")
KEEP_ALIVE = True
CART_SIZE = 10
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LISTENING = "PEER_LISTENING "
CONTENT_TYPE = {"Content-Type": "application/json"}

# Loaded with `node --require`: the sample's `startAPI` listens on port 3000 (hard-coded in
# its src/index.ts); this makes that listen(3000) pick a free loopback port and print it.
PRELOAD = f"""
const http = require('node:http');
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {{
  if (port !== 3000) return listen.call(this, port, ...rest);
  this.once('listening', () => console.log('{LISTENING}' + this.address().port));
  return listen.call(this, 0, '127.0.0.1', ...rest);
}};
"""

# client -> the token of its carts, set by setup() in the process that sends its commands.
_carts: dict[int, str] = {}


def emmett_dir() -> Path:
    configured = Path(os.environ.get("EMMETT_DIR", "var/emmett"))
    return configured if configured.is_absolute() else PROJECT_ROOT / configured


def sample_dir() -> Path:
    return emmett_dir() / SAMPLE_PATH


def available() -> str | None:
    """None when the sample is built and can run; else why not, in one line."""
    sample = sample_dir()
    if not (sample / "package.json").is_file():
        return f"Emmett's sample is not in {sample}: run `make peer` (EMMETT_DIR moves it)"
    if not (sample / "node_modules" / "@event-driven-io" / "emmett-esdb").is_dir():
        return f"Emmett's sample in {sample} has no node_modules: run `make peer`"
    if not (sample / "dist" / "index.cjs").is_file():
        return f"Emmett's sample in {sample} is not built (no dist/index.cjs): run `make peer`"
    if shutil.which("node") is None:
        return "node is not on PATH: Emmett's sample needs Node 20"
    return None


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/clients/peer-ready/shopping-carts/current")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 404  # an empty cart: the app answers and read the store
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the sample's process group (node and anything it started), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # what node left behind in its group
        os.killpg(proc.pid, signal.SIGKILL)
    log(f"emmett sample stopped (exit status {proc.returncode})")


@contextlib.contextmanager
def running(esdb_uri: str, tmp: Path) -> Iterator[str]:
    """The sample on a free loopback port against ``esdb_uri``; yields its base URL once it
    answers, and stops it on exit. Its output goes to ``tmp/emmett.stdout`` and ``.stderr``."""
    reason = available()
    if reason is not None:
        raise RuntimeError(reason)
    preload = tmp / "emmett-listen.cjs"
    preload.write_text(PRELOAD)
    stdout_path, stderr_path = tmp / "emmett.stdout", tmp / "emmett.stderr"
    env = {**os.environ, "ESDB_CONNECTION_STRING": esdb_uri}
    env.pop("NODE_OPTIONS", None)
    argv = ["node", "--require", str(preload), "dist/index.cjs"]
    log(f"starting emmett sample ({EMMETT_COMMIT[:10]}) against {esdb_uri}")
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            argv, cwd=sample_dir(), env=env, stdout=out, stderr=err, start_new_session=True
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        port = 0
        while True:
            if proc.poll() is not None:
                tail = stderr_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"emmett sample exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"emmett sample: not answering after {STARTUP_TIMEOUT_S} s")
            if not port:
                for line in stdout_path.read_text(errors="replace").splitlines():
                    if line.startswith(LISTENING):
                        port = int(line[len(LISTENING) :])
            if port and _answers(port):
                break
            time.sleep(0.1)
        log(f"emmett sample ready at http://127.0.0.1:{port} (pid {proc.pid})")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def cart_id(client: int, n: int) -> str:
    """The sample's clientId that ``client``'s ``n``-th command goes to."""
    token = _carts.get(client)
    if token is None:
        raise RuntimeError(
            f"peer.setup(base_url, {client}) was not called in this process: call it first,"
            " in the process that sends this client's commands"
        )
    return f"bench-{token}-{client}-{n // CART_SIZE}"


def cart_stream(client: int, n: int) -> str:
    """The EventStoreDB stream of that cart (the sample's ``getShoppingCartId``)."""
    return f"shopping_cart:{cart_id(client, n)}:current"


def _add_body(n: int) -> bytes:
    return json.dumps({"productId": f"product-{n % 7}", "quantity": 1}).encode()


def setup(base_url: str, client: int) -> None:
    """Fresh carts for ``client``, and one product added to its warm-up cart (answered 204)."""
    token = uuid.uuid4().hex[:12]
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        path = f"/clients/bench-{token}-{client}-warmup/shopping-carts/current/product-items"
        conn.request("POST", path, body=_add_body(0), headers=CONTENT_TYPE)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 204:
        raise RuntimeError(f"emmett sample: warm-up add answered {resp.status}: {body[:300]!r}")
    _carts[client] = token


def command(client: int, n: int) -> tuple[str, str, bytes, dict[str, str]]:
    """Method, path, body and headers of ``client``'s ``n``-th command (answered 204)."""
    path = f"/clients/{cart_id(client, n)}/shopping-carts/current/product-items"
    return "POST", path, _add_body(n), CONTENT_TYPE


def _client_loop(
    base_url: str, client: int, commands: int, statuses: dict[int, int], latencies: list[float]
) -> None:
    parts = urlsplit(base_url)
    conn: http.client.HTTPConnection | None = None
    for n in range(commands):
        method, path, body, headers = command(client, n)
        began = time.perf_counter()
        if conn is None:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = None
            statuses[-1] = statuses.get(-1, 0) + 1
            continue
        latencies.append(time.perf_counter() - began)
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        if resp.will_close or not KEEP_ALIVE:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def check(clients: int, commands: int) -> int:
    """Step 3 of the peer's brief: every command 2xx, every event in the store."""
    from esdbclient import EventStoreDBClient
    from esdbclient.exceptions import NotFound

    reason = available()
    if reason is not None:
        print(f"peer: {reason}")
        return 2
    env, _ = bench_env(auth=False)
    with tempfile.TemporaryDirectory(prefix="peer-check-") as name:
        tmp = Path(name)
        argv = [sys.executable, "-m", "esdblocal", "--port", "0", "--data", str(tmp / "esdb")]
        with Service("esdblocal", argv, tmp, env) as esdb:
            uri = esdb.first_line()
            with running(uri, tmp) as base_url:
                for client in range(clients):
                    setup(base_url, client)
                statuses = [dict[int, int]() for _ in range(clients)]
                latencies = [list[float]() for _ in range(clients)]
                threads = [
                    threading.Thread(
                        target=_client_loop,
                        args=(base_url, c, commands, statuses[c], latencies[c]),
                    )
                    for c in range(clients)
                ]
                began = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                seconds = time.perf_counter() - began
            store = EventStoreDBClient(uri)
            try:
                streams = {cart_stream(c, n): c for c in range(clients) for n in range(commands)}
                stored = 0
                bad_streams = []
                for stream in streams:
                    try:
                        events = store.get_stream(stream)
                    except NotFound:
                        events = ()
                    stored += len(events)
                    ok = all(e.type == "ProductItemAddedToShoppingCart" for e in events)
                    positions = [e.stream_position for e in events]
                    if not ok or positions != list(range(len(positions))):
                        bad_streams.append(stream)
            finally:
                store.close()
    total: dict[int, int] = {}
    for per_client in statuses:
        for status, count in per_client.items():
            total[status] = total.get(status, 0) + count
    ok_count = sum(count for status, count in total.items() if 200 <= status < 300)
    expected = clients * commands
    ordered = sorted(x for per_client in latencies for x in per_client)
    print(f"emmett sample {EMMETT_COMMIT} in {sample_dir()}")
    print(f"clients: {clients}, commands each: {commands}, cart size: {CART_SIZE}")
    print(f"answers by status: {dict(sorted(total.items()))} (-1: connection error)")
    print(f"2xx: {ok_count} of {expected}")
    print(f"events in esdblocal: {stored} in {len(streams)} cart streams (expected {expected})")
    print(f"streams with a wrong event type or a gap: {len(bad_streams)}")
    print(
        f"rough rate: {ok_count / seconds:.0f} commands/s over {seconds:.1f} s,"
        f" p50 {percentile(ordered, 50) * 1000:.1f} ms, p99 {percentile(ordered, 99) * 1000:.1f} ms"
        " (one run on a shared machine: noise)"
    )
    return 0 if ok_count == expected == stored and not bad_streams else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="run the sample against esdblocal and check it"
    )
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients (8)")
    parser.add_argument("--commands", type=int, default=300, help="commands per client (300)")
    args = parser.parse_args(argv)
    if not args.check:
        reason = available()
        print(f"peer: {reason or 'available in ' + str(sample_dir())}")
        return 0 if reason is None else 2
    return check(args.clients, args.commands)


if __name__ == "__main__":
    sys.exit(main())
