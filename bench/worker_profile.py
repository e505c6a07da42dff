"""Where a gunicorn worker's CPU goes, per request, for each throughput path: the profile
behind every issue-13 target that is not met.

It starts esdblocal, the projector and, for the app and for the Falcon hello-world
(``hello_app.py``), a gunicorn with one sync worker under ``deploy/gunicorn.conf.py`` (API key
and access log on, as production). For each scenario it loads the worker with wrk (keep-alive
asked for; sync workers close every connection anyway), samples the worker with py-spy
(``--nonblocking``: the worker is never paused) and reads its CPU from /proc. Each sample is
charged to the innermost frame's owner:

- **gunicorn**, **Falcon**, **esdbclient + grpc** (and protobuf), **logging** (the standard
  library's); the rest of the standard library is charged to the code that called it (a
  socket write to gunicorn, a lock grpc waits on to grpc, uuid or hmac to ours), and
  **Python stdlib** is what no caller claims (the interpreter's own start of a thread);
- **ours**: this project's modules (app, projections, domain, eventstore, jsonlogs), split by
  the source line the sample sits on: a line calling SQLite (``execute``, ``fetch*``) is
  **SQLite** (the C library's time is charged to the Python line that called it), a line
  calling msgspec's ``encode``/``decode``/``convert`` is **msgspec**, the rest is **ours**.

CPU per request x each owner's share of the samples = microseconds per request by owner; the
hello-world's split beside the app's shows which costs are the app's own.

Run: ``python bench/worker_profile.py [--seconds 8] [--scenario get-304 ...]``. py-spy is
installed into this Python's environment with pip when it is missing.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    CHECK_IN,
    HOST,
    PROJECT_ROOT,
    Bench,
    Web,
    children_of,
    cpu_seconds,
    create_item,
    ensure_wrk,
    http_get,
    log,
)

OURS = ("app", "projections", "domain", "eventstore", "jsonlogs")
OWNERS = (
    "gunicorn",
    "Falcon",
    "ours",
    "SQLite",
    "msgspec",
    "logging",
    "esdbclient + grpc",
    "Python stdlib",
)
SQLITE_CALLS = (".execute(", ".executemany(", ".fetchone(", ".fetchall(", "in counts")
MSGSPEC_CALLS = ("encode(", "decode(", "convert(", "_encode", "_decode")
POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"count": 1}'
wrk.headers["Content-Type"] = "%s"
"""


def ensure_py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        log("py-spy is missing: pip install py-spy")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
        found = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("py-spy could not be installed")
    return found


class Owners:
    """Charges a py-spy frame (``function (file:line)``) to its owner."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def _line(self, file: str, number: int) -> str:
        if file not in self._lines:
            try:
                self._lines[file] = (PROJECT_ROOT / file).read_text().splitlines()
            except OSError:
                self._lines[file] = []
        lines = self._lines[file]
        return lines[number - 1] if 0 < number <= len(lines) else ""

    def of(self, frame: str) -> str | None:
        """The owner of one frame; None for the standard library (but logging)."""
        where = frame[frame.rfind("(") + 1 : -1] if frame.endswith(")") else ""
        file, _, line = where.rpartition(":")
        top = file.split("/", 1)[0]
        if top == "gunicorn":
            return "gunicorn"
        if top == "falcon":
            return "Falcon"
        if top in ("grpc", "esdbclient", "google"):
            return "esdbclient + grpc"
        if top == "msgspec":
            return "msgspec"
        if top == "logging":
            return "logging"
        if top in OURS:
            text = self._line(file, int(line) if line.isdigit() else 0)
            if any(call in text for call in SQLITE_CALLS):
                return "SQLite"
            if any(call in text for call in MSGSPEC_CALLS):
                return "msgspec"
            return "ours"
        return None

    def charge(self, frames: list[str]) -> str:
        """The owner a sample is charged to: its innermost frame's, where the standard
        library's frames (logging aside) are charged to the code that called them (uuid from
        ours is ours, a lock grpc waits on is grpc's, a socket write is gunicorn's)."""
        for frame in reversed(frames):
            owner = self.of(frame)
            if owner is not None:
                return owner
        return "Python stdlib"


def split(raw: Path, owners: Owners) -> tuple[int, collections.Counter[str]]:
    """(samples, samples per owner) of a py-spy ``--format raw`` file."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        counts[owners.charge(frames)] += int(n)
        total += int(n)
    return total, counts


def profile(
    bench: Bench, wrk: str, web: Web, request: tuple[str, dict[str, str], Path | None], args: Any
) -> tuple[int, float, collections.Counter[str], int]:
    """(requests, worker CPU seconds, samples per owner, samples) for one loaded run."""
    path, headers, script = request
    (worker,) = children_of(web.pid)
    argv = [wrk, "-t1", "-c4", *(["-s", str(script)] if script else [])]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    url = f"http://{HOST}:{web.port}{path}"
    subprocess.run([*argv, "-d1s", url], capture_output=True, check=True)  # warm
    raw = bench.tmp / f"spy-{web.port}-{time.monotonic_ns()}.txt"
    spy = [args.py_spy, "record", "--pid", str(worker), "--rate", "500", "--nonblocking"]
    spy += ["--format", "raw", "--output", str(raw), "--duration", str(int(args.seconds) + 2)]
    sampler = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attached
    before = cpu_seconds(worker)
    done = subprocess.run(
        [*argv, f"-d{int(args.seconds)}s", url], capture_output=True, text=True, check=True
    )
    cpu = cpu_seconds(worker) - before
    sampler.wait()
    lines = done.stdout.splitlines()
    requests = next(int(line.split()[0]) for line in lines if "requests in" in line)
    total, counts = split(raw, args.owners)
    return requests, cpu, counts, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="profiled load per run")
    parser.add_argument("--quick", action="store_true", help="2 s per run")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=("get-item", "get-304", "list-0", "check-in"),
        help="repeatable; default: all four",
    )
    args = parser.parse_args(argv)
    args.seconds = 2.0 if args.quick else args.seconds
    args.scenario = args.scenario or ["get-item", "get-304", "list-0", "check-in"]
    args.py_spy, args.owners = ensure_py_spy(), Owners()
    return Bench.main("worker-profile", lambda bench: run(args, bench))


def run(args: argparse.Namespace, bench: Bench) -> None:
    wrk = ensure_wrk("wrk")
    assert wrk is not None
    uri = bench.esdblocal()
    env = bench.stack_env(
        uri, WEB_WORKERS=1, WEB_THREADS=1, LOG_LEVEL="info", ETAG_KEY=os.urandom(64).hex()
    )
    bench.projector(env)
    webs = {"app": bench.gunicorn("web-app", env), "hello-world": bench.gunicorn(
        "web-hello", env, "hello_app:app")}  # fmt: skip
    bench.wait(*webs.values())
    auth = bench.auth
    item = create(webs["app"].port, auth)
    for _ in range(20):
        create(webs["app"].port, auth)
    etag = http_get(webs["app"].port, item, auth)[1]["ETag"]
    script = bench.tmp / "post.lua"
    script.write_text(POST_SCRIPT % CHECK_IN)
    plans = {
        "get-item": ("GET item (200)", item, {}, None),
        "get-304": ("GET item, If-None-Match (304)", item, {"If-None-Match": etag}, None),
        "list-0": ("list offset 0", "/v1/inventory-items?offset=0&limit=10", {}, None),
        "check-in": ("POST check-in", item, {}, script),
    }
    bench.header(
        "## Where a sync worker's CPU goes, per request (py-spy)",
        "one sync worker per server, deploy/gunicorn.conf.py, LOG_LEVEL=info, API key on;"
        f" wrk, 4 connections, {args.seconds:g} s per run; py-spy --nonblocking at 500 Hz",
    )
    for key in args.scenario:
        label, path, extra, lua = plans[key]
        apps = ["app"] if key == "check-in" else ["app", "hello-world"]
        measured = {}
        for name in apps:
            log(f"{label}: {name}")
            measured[name] = profile(bench, wrk, webs[name], (path, {**auth, **extra}, lua), args)
        per_request = {
            name: {o: 1e6 * cpu / n * counts[o] / total if total else 0.0 for o in OWNERS}
            for name, (n, cpu, counts, total) in measured.items()
        }
        rows = [[owner, *(f"{per_request[name][owner]:.0f}" for name in apps)] for owner in OWNERS]
        whole = [f"**{1e6 * measured[n][1] / measured[n][0]:.0f}**" for n in apps]
        rows.append(["**all (worker CPU ÷ requests)**", *whole])
        rates = [f"{n} {measured[n][0] / args.seconds:,.0f} req/s, {measured[n][3]:,} samples"
                 for n in apps]  # fmt: skip
        bench.report.add(f"### {label}: " + ", ".join(rates), "")
        bench.report.table(["owner", *(f"{name} µs/req" for name in apps)], rows)


def create(port: int, auth: dict[str, str]) -> str:
    """A new item through the API, once the read side shows it; its path."""
    path = create_item(port, auth)
    deadline = time.monotonic() + 30
    while http_get(port, path, auth)[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"GET {path} after its create never answered 200")
        time.sleep(0.05)
    return path


if __name__ == "__main__":
    sys.exit(main())
