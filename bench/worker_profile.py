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
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import (
    CHECK_IN,
    CREATE,
    HOST,
    PROJECT_ROOT,
    Report,
    Service,
    bench_env,
    children_of,
    cpu_seconds,
    ensure_wrk,
    free_port,
    http_get,
    log,
    machine,
    revision,
    start_esdblocal,
    wait_http,
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
    py_spy: str,
    wrk: str,
    port: int,
    master: int,
    path: str,
    headers: dict[str, str],
    script: Path | None,
    seconds: float,
    tmp: Path,
    owners: Owners,
) -> tuple[int, float, collections.Counter[str], int]:
    """(requests, worker CPU seconds, samples per owner, samples) for one loaded run."""
    (worker,) = children_of(master)
    argv = [wrk, "-t1", "-c4", *(["-s", str(script)] if script else [])]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    url = f"http://{HOST}:{port}{path}"
    subprocess.run([*argv, "-d1s", url], capture_output=True, check=True)  # warm
    raw = tmp / f"spy-{port}-{time.monotonic_ns()}.txt"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(worker),
            "--rate",
            "500",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--duration",
            str(int(seconds) + 2),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attached
    before = cpu_seconds(worker)
    done = subprocess.run(
        [*argv, f"-d{int(seconds)}s", url], capture_output=True, text=True, check=True
    )
    cpu = cpu_seconds(worker) - before
    spy.wait()
    requests = next(
        int(line.split()[0]) for line in done.stdout.splitlines() if "requests in" in line
    )
    total, counts = split(raw, owners)
    return requests, cpu, counts, total


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="profiled load per run")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=("get-item", "get-304", "list-0", "check-in"),
        help="repeatable; default: all four",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = args.scenario or ["get-item", "get-304", "list-0", "check-in"]
    wrk = ensure_wrk("wrk")
    assert wrk is not None
    py_spy = ensure_py_spy()
    load_before = os.getloadavg()
    services: list[Service] = []
    report = Report()
    with tempfile.TemporaryDirectory(prefix="worker-profile-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            run(args, scenarios, wrk, py_spy, tmp, services, report, load_before)
        finally:
            for service in reversed(services):
                service.stop()
    print("\n".join(report.lines), flush=True)
    return 0


def run(
    args: argparse.Namespace,
    scenarios: list[str],
    wrk: str,
    py_spy: str,
    tmp: Path,
    services: list[Service],
    report: Report,
    load_before: tuple[float, ...],
) -> None:
    data = tmp / "data"
    env, auth = bench_env(auth=True)
    uri = start_esdblocal(data, tmp, env, services)
    base = {
        **env,
        "ESDB_URI": uri,
        "DATA_DIR": str(data),
        "WEB_WORKERS": "1",
        "WEB_THREADS": "1",
        "LOG_LEVEL": "info",
        "ETAG_KEY": os.urandom(64).hex(),
    }
    services.append(Service("projector", [sys.executable, "-m", "projections"], tmp, base))
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"]
    ports = {"app": free_port(), "hello-world": free_port()}
    servers = {
        "app": Service(
            "web-app", [*gunicorn, "app.wsgi:app"], tmp, {**base, "PORT": str(ports["app"])}
        ),
        "hello-world": Service(
            "web-hello",
            [*gunicorn, "--pythonpath", "bench", "hello_app:app"],
            tmp,
            {**base, "PORT": str(ports["hello-world"])},
        ),
    }
    services.extend(servers.values())
    for name, server in servers.items():
        wait_http(server, ports[name], "/healthz")
    item = create(ports["app"], auth)
    for _ in range(20):
        create(ports["app"], auth)
    _, headers, _ = http_get(ports["app"], item, auth)
    etag = headers["ETag"]
    script = tmp / "post.lua"
    script.write_text(POST_SCRIPT % CHECK_IN)
    plans = {
        "get-item": ("GET item (200)", item, {}, None),
        "get-304": ("GET item, If-None-Match (304)", item, {"If-None-Match": etag}, None),
        "list-0": ("list offset 0", "/v1/inventory-items?offset=0&limit=10", {}, None),
        "check-in": ("POST check-in", item, {}, script),
    }
    owners = Owners()
    report.add(
        "## Where a sync worker's CPU goes, per request (py-spy)",
        "",
        *(f"- {line}" for line in machine(load_before)),
        f"- code: {revision()}",
        "- one sync worker per server, deploy/gunicorn.conf.py, LOG_LEVEL=info, API key on;"
        f" wrk, 4 connections, {args.seconds:g} s per run; py-spy --nonblocking at 500 Hz",
        "",
    )
    for key in scenarios:
        label, path, extra, lua = plans[key]
        apps = ["app"] if key == "check-in" else ["app", "hello-world"]
        measured = {}
        for name in apps:
            log(f"{label}: {name}")
            measured[name] = profile(
                py_spy,
                wrk,
                ports[name],
                servers[name].pid,
                path,
                {**auth, **extra},
                lua,
                args.seconds,
                tmp,
                owners,
            )
        header = ["owner", *(f"{name} µs/req" for name in apps)]
        rows = []
        per_request = {}
        for name, (requests, cpu, counts, total) in measured.items():
            per_request[name] = {
                owner: 1e6 * cpu / requests * counts[owner] / total if total else 0.0
                for owner in OWNERS
            }
        for owner in OWNERS:
            rows.append([owner, *(f"{per_request[name][owner]:.0f}" for name in apps)])
        rows.append(
            [
                "**all (worker CPU ÷ requests)**",
                *(f"**{1e6 * measured[n][1] / measured[n][0]:.0f}**" for n in apps),
            ]
        )
        report.add(
            f"### {label}: "
            + ", ".join(
                f"{name} {measured[name][0] / args.seconds:,.0f} req/s,"
                f" {measured[name][3]:,} samples"
                for name in apps
            ),
            "",
        )
        report.table(header, rows)
        (tmp / f"{key}.json").write_text(json.dumps(per_request))


def create(port: int, auth: dict[str, str]) -> str:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    body = json.dumps({"name": f"profiled {uuid.uuid4()}"})
    conn.request("POST", "/v1/inventory-items", body, {**auth, "Content-Type": CREATE})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status != 202:
        raise RuntimeError(f"create answered {resp.status}")
    location = resp.getheader("Location") or ""
    path = "/" + location.split("/", 3)[3]
    position = resp.getheader("Commit-Position") or ""
    status, _, _ = http_get(port, path, {**auth, "Commit-Position": position})
    if status != 200:
        raise RuntimeError(f"GET {path} after its create answered {status}")
    return path


if __name__ == "__main__":
    sys.exit(main())
