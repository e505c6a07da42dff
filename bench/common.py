"""The benchmarks' harness: processes with their output in files (``Bench`` starts the
stacks: esdblocal, the projector, gunicorn, and stops them all), the environment they run
with, alternating rounds (``round_orders``), load from wrk, and the report (``Report``:
markdown tables, min / median / max, the machine and the load average before the run).

A script is then a description of what it measures against what: it builds its stack with
``Bench``, runs its paths in paired rounds, and adds rows to ``bench.report``."""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing.queues import Queue
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


HOST = "127.0.0.1"


CREATE = "application/json; domain-model=CreateInventoryItemCommand"


CHECK_IN = "application/json; domain-model=CheckInItemsToInventoryCommand"


STARTUP_TIMEOUT_S = 60.0


STOP_TIMEOUT_S = 15.0


STDERR_TAIL_LINES = 30


WRK_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"connect\\": %d, \\"read\\": %d,"
    .. " \\"write\\": %d, \\"status\\": %d, \\"timeout\\": %d, \\"p50_us\\": %d,"
    .. " \\"p99_us\\": %d, \\"max_us\\": %d}\\n",
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Service:
    """A subprocess with its output in files; stop() sends SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], tmp: Path, env: dict[str, str]) -> None:
        self.name = name
        self.stdout_path = tmp / f"{name}.stdout"
        self.stderr_path = tmp / f"{name}.stderr"
        log(f"starting {name}: {' '.join(argv[1:])}")
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=err)
        self.started = time.perf_counter()
        self.address = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def first_line(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """The first line the process prints (a server's address, once it is ready)."""
        self.address = self.wait_for_line(self.stdout_path, lambda line: True, timeout)
        log(f"{self.name} ready at {self.address} (pid {self.pid})")
        return self.address

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with status {self.proc.returncode}:\n{self.stderr_tail()}"
            )

    def wait_for_line(self, path: Path, accept: Callable[[str], bool], timeout: float) -> str:
        """The first line of ``path`` that ``accept``s, written before ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in path.read_text(errors="replace").splitlines(keepends=True):
                if line.endswith("\n") and accept(line):
                    return line.strip()
            self.check_alive()
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no expected line after {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it")
                self.proc.kill()
                self.proc.wait()
        log(f"{self.name} stopped (exit status {self.proc.returncode})")

    def stderr_tail(self) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-STDERR_TAIL_LINES:])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(parent: int) -> set[int]:
    """The pids whose parent is ``parent`` (a gunicorn master's workers), from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
            found.add(int(entry.name))
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU of a process and its direct children (a gunicorn master and its workers)."""
    return cpu_seconds(root) + sum(cpu_seconds(child) for child in children_of(root))


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def wait_http(service: Service, port: int, path: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        service.check_alive()
        with contextlib.suppress(OSError):
            if http_get(port, path)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{service.name} does not answer {path} on port {port}")


@dataclass
class Load:
    """One load run: rate, latency, and the CPU the server (master + workers) used."""

    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    errors: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu / self.requests if self.requests else math.nan


def ensure_wrk(choice: str) -> str | None:
    """The wrk binary, installing Debian's package as root when it is missing."""
    if choice == "python":
        return None
    found = shutil.which("wrk")
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "wrk"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        found = shutil.which("wrk")
    if found is None and choice == "wrk":
        raise RuntimeError("--loadgen wrk, but wrk is not installed")
    return found


def run_wrk(
    wrk: str, script: Path, url: str, headers: dict[str, str], seconds: float, args: Any
) -> Load:
    argv = [wrk, "-t", str(args.wrk_threads), "-c", str(args.connections)]
    argv += ["-d", f"{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script)]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([*argv, url], stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, to read its CPU
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        errors_text = err.read()
    marker = next((line for line in out.splitlines() if line.startswith("WRKJSON ")), None)
    if marker is None:
        raise RuntimeError(
            f"wrk printed no summary (exit {proc.returncode}):\n{out}\n{errors_text}"
        )
    summary = json.loads(marker[len("WRKJSON ") :])
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Load(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors,
        client_cpu=usage.ru_utime + usage.ru_stime,
    )


def fmt(value: float, digits: int = 0) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def ms(values: list[float], p: float) -> float:
    return percentile(sorted(values), p) * 1000


def revision() -> str:
    """The commit measured, and whether the work tree differed from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", *argv], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{commit}{' with uncommitted changes' if dirty else ''}"


def machine(load_before: tuple[float, ...]) -> list[str]:
    """The lines every benchmark report opens with: cores, load, versions."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("falcon", "gunicorn", "esdbclient")
    )
    return [
        f"CPU cores: {os.cpu_count()} ({model or platform.machine()}); web servers, projector,"
        " esdblocal and the load generator all share them",
        f"load average before the run: {' / '.join(f'{x:.2f}' for x in load_before)}"
        " (1 / 5 / 15 min; well above 0 means something else was using the cores)",
        f"Python {platform.python_version()}, {versions}, {platform.system()}",
    ]


def bench_env(auth: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The processes' environment (none of the caller's settings leak in) and the request
    headers: with ``auth``, as production runs, REQUIRE_AUTH and one read+write key."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("ETAG_KEY", "API_KEYS", "API_KEYS_FILE", "REQUIRE_AUTH", "ESDB_URI"):
        env.pop(name, None)
    if not auth:
        return env, {}
    key = secrets.token_hex(16)
    env.update(API_KEYS=f"bench:{key}:read+write", REQUIRE_AUTH="true")
    return env, {"Authorization": f"Bearer {key}"}


def start_esdblocal(data: Path, tmp: Path, env: dict[str, str], services: list[Service]) -> str:
    """esdblocal (durable, under ``data/esdb``) as a service; its connection string."""
    esdb = Service(
        "esdblocal",
        [sys.executable, "-m", "esdblocal", "--port", "0", "--data", str(data / "esdb")],
        tmp,
        env,
    )
    services.append(esdb)
    return esdb.first_line()


def machine_lines(args: Any, loadgen: str, load_before: tuple[float, ...]) -> list[str]:
    return [
        *machine(load_before),
        f"gunicorn: -c deploy/gunicorn.conf.py (sync workers, Connection: close),"
        f" WEB_WORKERS={args.workers}, READ_WAIT={args.read_wait:g}, LOG_LEVEL={args.log_level}"
        + (
            " (one access line per request, as in production), "
            if args.log_level.lower() in ("info", "debug")
            else " (no access log lines: NOT as production runs), "
        )
        + (
            "API_KEYS with one key and REQUIRE_AUTH=true: every request carries"
            " `Authorization: Bearer <key>` (hello-world gets it too and ignores it)"
            if args.auth
            else "no API keys (the API is open)"
        ),
        f"code: {revision()}",
        f"load: {loadgen}",
    ]


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(
        self, header: list[str] | str, rows: list[list[str]], text: tuple[int, ...] = ()
    ) -> None:
        """A markdown table: figures right-aligned, the first column and ``text`` ones left;
        ``header`` is a list or one string of names between ``|``."""
        if isinstance(header, str):
            header = header.split("|")
        self.add("| " + " | ".join(header) + " |")
        aligns = ["---" if i == 0 or i in text else "---:" for i in range(len(header))]
        self.add("|" + "|".join(aligns) + "|")
        self.add(*("| " + " | ".join(row) + " |" for row in rows))
        self.add("")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """``min / median / max`` of ``values`` (times ``scale``), for a table cell."""
    if not values:
        return "—"
    ordered = sorted(v * scale for v in values)
    return " / ".join(fmt(v, digits) for v in (ordered[0], median(ordered), ordered[-1]))


def p50_p99(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """``p50 / p99`` (nearest rank) of ``values`` times ``scale``, for a table cell."""
    ordered = sorted(values)
    return " / ".join(fmt(percentile(ordered, p) * scale, digits) for p in (50, 99))


def ratios(ours: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Paired ratios, round by round (the baseline measured next to ours in each round)."""
    return [o / b if b else math.nan for o, b in zip(ours, baseline, strict=True)]


def round_orders(items: Sequence[T], rounds: int, rotate: bool = False) -> Iterator[list[T]]:
    """The order of ``items`` in each round: reversed every other round, or (``rotate``)
    shifted by one each round, so that each takes each place in turn and slow drift of the
    machine falls on every item alike."""
    for number in range(rounds):
        if rotate:
            shift = number % len(items)
            yield [*items[shift:], *items[:shift]]
        else:
            yield list(items) if number % 2 == 0 else list(reversed(items))


def order_text(order: Sequence[Any]) -> str:
    return " → ".join(str(getattr(item, "key", item)) for item in order)


GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"]


@dataclass
class Web:
    """A gunicorn server of a stack: its service and port."""

    service: Service
    port: int

    @property
    def pid(self) -> int:
        return self.service.pid


class Bench:
    """One run: a temp dir, the processes started in it (stopped in reverse order when the
    run ends, fails, or gets SIGTERM), the environment and request headers (``auth``), and
    the report. ``Bench.main(prefix, body)`` runs ``body(bench)`` and prints the report."""

    def __init__(self, tmp: Path, auth: bool = True) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.services: list[Service] = []
        self.cleanups: list[Callable[[], None]] = []
        self.report = Report()
        self.env, self.auth = bench_env(auth)
        self.load_before = os.getloadavg()
        self.began = time.perf_counter()

    @classmethod
    def main(
        cls,
        prefix: str,
        body: Callable[[Bench], object],
        auth: bool = True,
    ) -> int:
        def terminate(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)  # so that the finally below stops every process

        signal.signal(signal.SIGTERM, terminate)
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp_name:
            bench = cls(Path(tmp_name), auth)
            try:
                result = body(bench)
            finally:
                bench.stop()
        print("\n".join(bench.report.lines), flush=True)
        return 1 if result is False else 0

    def stop(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.began

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Service:
        service = Service(name, argv, self.tmp, self.env if env is None else env)
        self.services.append(service)
        return service

    def esdblocal(self, *extra: str, name: str = "esdblocal", data: Path | None = None) -> str:
        """A durable esdblocal (under ``data/esdb``) on a free port; its connection string."""
        store = data if data is not None else self.data / "esdb"
        argv = [sys.executable, "-m", "esdblocal", "--port", "0", "--data", str(store), *extra]
        self.esdb = self.start(name, argv)
        uri = self.esdb.wait_for_line(
            self.esdb.stdout_path, lambda line: line.startswith("esdb"), 60
        )
        log(f"{name} at {uri}")
        return uri

    def stack_env(self, uri: str, **settings: object) -> dict[str, str]:
        """The web servers' and projector's environment: ``settings`` are env vars (None
        removes one)."""
        env = {**self.env, "ESDB_URI": uri, "DATA_DIR": str(self.data), "HOST": HOST}
        for name, value in settings.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = f"{value:g}" if isinstance(value, float) else str(value)
        return env

    def projector(self, env: dict[str, str], *extra: str) -> Service:
        return self.start("projector", [sys.executable, "-m", "projections", *extra], env)

    def gunicorn(
        self, name: str, env: dict[str, str], app: str = "app.wsgi:app", **settings: object
    ) -> Web:
        """gunicorn with deploy/gunicorn.conf.py on a free port; ``app`` from bench/ when it
        is not the product's; ``settings`` as env vars. Call ``wait`` before using it."""
        port = free_port()
        target = [app] if app.startswith("app.") else ["--pythonpath", "bench", app]
        env = {**env, "PORT": str(port), **{k: str(v) for k, v in settings.items()}}
        return Web(self.start(name, [*GUNICORN, *target], env), port)

    @staticmethod
    def wait(*webs: Web) -> None:
        for web in webs:
            wait_http(web.service, web.port, "/healthz")

    def header(self, title: str, *lines: str) -> None:
        """The report's title and its list of what ran where: machine, load, code, ``lines``."""
        self.report.add(
            "",
            title,
            "",
            *(f"- {line}" for line in (*machine(self.load_before), f"code: {revision()}", *lines)),
            "",
        )


# ---------------------------------------------------------------------------- closed-loop clients

CHECK_IN_BODY = b'{"count": 1}'
# The metadata the API writes with each event, in size and shape (app.commands._pending).
RAW_METADATA = json.dumps(
    {
        "$correlationId": "0" * 32,
        "$causationId": "0" * 32,
        "domainModel": "CheckInItemsToInventoryCommand",
        "requestId": "0" * 32,
        "principal": "bench",
    },
    separators=(",", ":"),
).encode()
# One command: method, path, body, headers (what bench/peer.py's ``command`` returns too).
Request = tuple[str, str, bytes, dict[str, str]]


@dataclass
class Sample:
    """One client's share of one timed window."""

    done: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0  # the client's own CPU in the window
    connects: int = 0  # HTTP connections opened


def wait_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        time.sleep(delay)


def send(conn: http.client.HTTPConnection, request: Request) -> http.client.HTTPResponse:
    method, path, body, headers = request
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp


def http_loop(
    base: str, next_request: Callable[[int], Request], keep_alive: bool, start: float, end: float
) -> Sample:
    """A closed loop of ``next_request(n)`` against ``base`` (``http://host:port[/prefix]``)
    from ``start`` to ``end`` (wall clock): a 2xx counts, anything else is an error; with
    ``keep_alive`` the connection is kept while the server keeps it."""
    url = urlsplit(base)
    prefix = url.path.rstrip("/")
    sample, conn, n = Sample(), None, 0
    wait_until(start)
    cpu = time.process_time()
    while time.time() < end:
        method, path, body, headers = next_request(n)
        n += 1
        began = time.perf_counter()
        if conn is None:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            sample.connects += 1
        try:
            resp = send(conn, (method, prefix + path, body, headers))
        except (OSError, http.client.HTTPException):
            conn.close()
            conn, sample.errors = None, sample.errors + 1
            continue
        if not keep_alive or resp.will_close:
            conn.close()
            conn = None
        if 200 <= resp.status < 300:
            sample.done += 1
            sample.latencies.append(time.perf_counter() - began)
        else:
            sample.errors += 1
    sample.cpu = time.process_time() - cpu
    if conn is not None:
        conn.close()
    return sample


def create_item(port: int, auth: dict[str, str]) -> str:
    """A new inventory item through the API; its path."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = {**auth, "Content-Type": CREATE}
        resp = send(conn, ("POST", "/v1/inventory-items", b'{"name": "Bench"}', headers))
    finally:
        conn.close()
    if resp.status != 202:
        raise RuntimeError(f"create answered {resp.status}")
    return urlsplit(resp.headers["Location"]).path


class RawWriter:
    """One closed-loop writer with esdbclient: single-event appends to its own
    ``inventoryItem-<uuid>`` stream (created first, so the projector folds these events as
    it folds the API's), with the version it tracks and the API's event and metadata size.
    Each append is a lone ``NewEvent``: esdbclient's Append RPC, its cheapest single-event
    call and the one the app makes for a one-event command (``eventstore/streams.py``)."""

    def __init__(self, uri: str) -> None:
        from esdbclient import EventStoreDBClient, NewEvent, StreamState

        self.new_event = NewEvent
        self.client = EventStoreDBClient(uri)
        self.stream = f"inventoryItem-{uuid.uuid4()}"
        created = json.dumps({"type": "InventoryItemCreated", "name": "Raw"}).encode()
        first = NewEvent(type="InventoryItemCreated", data=created, metadata=RAW_METADATA)
        self.client.append_to_stream(
            self.stream, current_version=StreamState.NO_STREAM, events=[first]
        )
        self.version = 0
        self.data = json.dumps({"type": "ItemsCheckedInToInventory", "count": 1}).encode()

    def run(self, start: float, end: float) -> Sample:
        sample = Sample()
        wait_until(start)
        cpu = time.process_time()
        while time.time() < end:
            began = time.perf_counter()
            event = self.new_event(
                type="ItemsCheckedInToInventory", data=self.data, metadata=RAW_METADATA
            )
            try:
                self.client.append_to_stream(
                    self.stream, current_version=self.version, events=event
                )
            except Exception:
                sample.errors += 1
                continue
            self.version += 1
            sample.done += 1
            sample.latencies.append(time.perf_counter() - began)
        sample.cpu = time.process_time() - cpu
        return sample


def client_process(index: int, uri: str, auth: dict[str, str], jobs: Any, results: Any) -> None:
    """A spawned client process, driven by ``jobs``: ``("prepare", ports, peer_base)``
    creates its own item on each server (and the peer's per-client setup) untimed;
    ``("api", port, keep_alive, start, end)`` check-ins on its item; ``("peer", base,
    keep_alive, start, end)`` the peer's commands (bench/peer.py); ``("raw", start, end)``
    raw appends to its own stream."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    items: dict[int, str] = {}
    raw: RawWriter | None = None
    check_in = {**auth, "Content-Type": CHECK_IN}
    while (job := jobs.get()) is not None:
        try:
            kind = job[0]
            if kind == "prepare":
                items.update({port: create_item(port, auth) for port in job[1]})
                raw = raw or RawWriter(uri)
                if job[2]:
                    import peer

                    peer.setup(job[2], index)
                results.put(("ok", None))
            elif kind == "api":
                request = ("POST", items[job[1]], CHECK_IN_BODY, check_in)
                loop = http_loop(f"http://{HOST}:{job[1]}", lambda n, r=request: r, *job[2:])
                results.put(("ok", loop))
            elif kind == "peer":
                import peer

                loop = http_loop(job[1], lambda n: peer.command(index, n), *job[2:])
                results.put(("ok", loop))
            elif kind == "raw":
                raw = raw or RawWriter(uri)
                results.put(("ok", raw.run(*job[1:])))
        except Exception as error:
            results.put(("error", repr(error)))
    if raw is not None:
        raw.client.close()


class Clients:
    """``n`` spawned client processes (``client_process``); a job runs on all of them in
    one time window."""

    def __init__(self, n: int, uri: str, auth: dict[str, str]) -> None:
        ctx = mp.get_context("spawn")
        self.results = ctx.Queue()
        self.jobs = [ctx.Queue() for _ in range(n)]
        self.procs = [
            ctx.Process(target=client_process, args=(i, uri, auth, q, self.results), daemon=True)
            for i, q in enumerate(self.jobs)
        ]
        for proc in self.procs:
            proc.start()

    def run(self, job: tuple[Any, ...], timeout: float) -> list[Any]:
        for q in self.jobs:
            q.put(job)
        out = []
        for _ in self.jobs:
            status, value = self.results.get(timeout=timeout)
            if status != "ok":
                raise RuntimeError(f"a client process failed: {value}")
            out.append(value)
        return out

    def close(self) -> None:
        for q in self.jobs:
            q.put(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


@dataclass
class Window:
    """One lane in one round: every client's sample merged, and the CPU each watched
    process (with its children) used: esdblocal, the projector, the lane's server."""

    done: int
    errors: int
    seconds: float
    latencies: list[float]
    parts: list[float]
    client_cpu: float
    connects: int = 0

    @classmethod
    def of(cls, samples: list[Sample], seconds: float, parts: list[float]) -> Window:
        latencies = sorted(x for s in samples for x in s.latencies)
        done, errors = sum(s.done for s in samples), sum(s.errors for s in samples)
        cpu, connects = sum(s.cpu for s in samples), sum(s.connects for s in samples)
        return cls(done, errors, seconds, latencies, parts, cpu, connects)

    @property
    def rate(self) -> float:
        return self.done / self.seconds

    @property
    def server_cpu(self) -> float:
        return sum(self.parts)

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


def timed_window(
    run: Callable[[float, float], list[Sample]], seconds: float, watch: list[int]
) -> Window:
    """``run(start, end)`` over a window starting in 0.3 s; the CPU of ``watch`` over it."""
    start = time.time() + 0.3
    before = [tree_cpu_seconds(pid) for pid in watch]
    samples = run(start, start + seconds)
    after = [tree_cpu_seconds(pid) for pid in watch]
    return Window.of(samples, seconds, [a - b for a, b in zip(after, before, strict=True)])


# A lane of paired rounds: what runs one window (``run(start, end)``) and the pids whose CPU
# is counted over it.
Lane = tuple[Callable[[float, float], list[Sample]], list[int]]


def client_lane(clients: Clients, job: tuple[Any, ...], watch: list[int]) -> Lane:
    """A lane of ``clients`` running ``job`` (its window's start and end appended)."""
    return lambda start, end: clients.run((*job, start, end), end - time.time() + 60), watch


def paired_rounds(
    lanes: dict[str, Lane], rounds: int, seconds: float, warmup: float
) -> tuple[dict[str, list[Window]], list[str]]:
    """Each lane for one window of ``seconds`` per round, the order reversed every other
    round, after an unmeasured ``warmup`` each: the windows per lane, each round's order."""
    for run, watch in lanes.values():
        if warmup > 0:
            timed_window(run, warmup, watch)
    windows: dict[str, list[Window]] = {key: [] for key in lanes}
    orders = []
    for number, order in enumerate(round_orders(list(lanes), rounds)):
        orders.append(order_text(order))
        for key in order:
            run, watch = lanes[key]
            windows[key].append(w := timed_window(run, seconds, watch))
            log(
                f"round {number + 1} {key}: {w.rate:,.0f}/s p50 {w.p(50):.1f} ms p99"
                f" {w.p(99):.1f} ms errors {w.errors}"
            )
    return windows, orders


# ---------------------------------------------------------------------------- seeded reads

FILTER = ["(inventoryItem|car)-.*"]  # what eventstore.feed.Feed asks the server for
ITEM_NAMESPACE = uuid.UUID("6f1c2b7e-3d4a-4e5b-9c8d-7a6b5c4d3e2f")
FLOOR = "floor"  # hello-world + the app's middleware (floor_app.py): the production settings
FLOOR_SCENARIOS = ("get-item", "get-304")
LIST_LIMIT = 10


def item_id(index: int) -> uuid.UUID:
    """The id of the index-th seeded item (deterministic, so any process can name it)."""
    return uuid.uuid5(ITEM_NAMESPACE, f"item-{index}")


def seed_worker(uri: str, first: int, count: int, results: Queue[tuple[int, int, str]]) -> None:
    """Create items first..first+count-1: one BatchAppend call, one request per stream."""
    import msgspec
    from esdbclient import EventStoreDBClient, NewEvent, StreamState

    from domain import inventory

    def event(index: int) -> NewEvent:
        created = inventory.InventoryItemCreated(name=f"Item {index:06d}")
        return NewEvent(type="InventoryItemCreated", data=msgspec.json.encode(created))

    def stream(index: int) -> str:
        return f"{inventory.CATEGORY}-{item_id(index)}"

    failures, how = 0, "multiplexed BatchAppend"
    client = EventStoreDBClient(uri)
    try:
        streams = client.streams
        build = streams._construct_batch_append_req  # esdbclient's own request builder
        stub = streams._stub

        def requests() -> Iterator[Any]:
            for index in range(first, first + count):
                yield build(stream(index), StreamState.NO_STREAM, [event(index)], uuid.uuid4())

        call = stub.BatchAppend(requests(), timeout=3600)
        for answered, response in enumerate(call, 1):
            failures += response.WhichOneof("result") != "success"
            if answered == count:
                break
        call.cancel()
    except AttributeError:  # another esdbclient: one append_to_stream per stream
        how = "append_to_stream per stream"
        for index in range(first, first + count):
            client.append_to_stream(
                stream(index), current_version=StreamState.NO_STREAM, events=[event(index)]
            )
    finally:
        client.close()
    results.put((count, failures, how))


def seed(uri: str, items: int, processes: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results: Queue[tuple[int, int, str]] = ctx.Queue()
    share = math.ceil(items / processes)
    workers = []
    started = time.perf_counter()
    for first in range(0, items, share):
        worker = ctx.Process(
            target=seed_worker, args=(uri, first, min(share, items - first), results)
        )
        worker.start()
        workers.append(worker)
    outcomes = [results.get(timeout=3600) for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join(STOP_TIMEOUT_S)
    written = sum(n for n, _, _ in outcomes)
    failures = sum(f for _, f, _ in outcomes)
    return {
        "items": written,
        "failures": failures,
        "seconds": elapsed,
        "rate": written / elapsed,
        "processes": len(workers),
        "how": outcomes[0][2],
    }


# ---------------------------------------------------------------------------- catch-up


def raw_read_all(uri: str) -> tuple[int, float]:
    from esdbclient import EventStoreDBClient

    with EventStoreDBClient(uri) as client:
        started = time.perf_counter()
        count = sum(1 for _ in client.read_all(filter_include=FILTER, filter_by_stream_name=True))
        return count, time.perf_counter() - started


def raw_subscription(uri: str) -> tuple[int, float]:
    """Events a bare catch-up subscription (the projector's call) delivers up to caught-up."""
    from esdbclient import EventStoreDBClient
    from esdbclient.events import CaughtUp, Checkpoint

    with EventStoreDBClient(uri) as client:
        started = time.perf_counter()
        subscription = client.subscribe_to_all(
            filter_include=FILTER,
            filter_by_stream_name=True,
            include_checkpoints=True,
            include_caught_up=True,
        )
        count = 0
        for event in subscription:
            if isinstance(event, CaughtUp):
                break
            if not isinstance(event, Checkpoint):
                count += 1
        elapsed = time.perf_counter() - started
        subscription.stop()
        return count, elapsed


def caught_up(line: str) -> bool:
    try:
        return bool(json.loads(line).get("message") == "caught up; live")
    except ValueError:
        return False


# ---------------------------------------------------------------------------- HTTP


def http_worker(
    port: int,
    path: str,
    headers: dict[str, str],
    start_at: float,
    seconds: float,
    results: Queue[tuple[list[float], int, float]],
) -> None:
    """Hammer one URL until the deadline: a connection per request when the server closes."""
    import resource

    while time.time() < start_at:
        time.sleep(0.001)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    conn: http.client.HTTPConnection | None = None
    while True:
        started = time.perf_counter()
        if started >= deadline:
            break
        try:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 400:
                errors += 1
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            errors += 1
            if conn is not None:
                conn.close()
            conn = None
            continue
        latencies.append(time.perf_counter() - started)
    if conn is not None:
        conn.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put((latencies, errors, usage.ru_utime + usage.ru_stime))


def run_python_load(
    port: int, path: str, headers: dict[str, str], seconds: float, args: Any
) -> Load:
    ctx = mp.get_context("spawn")
    results: Queue[tuple[list[float], int, float]] = ctx.Queue()
    start_at = time.time() + 1.0  # after every process has started
    workers = [
        ctx.Process(target=http_worker, args=(port, path, headers, start_at, seconds, results))
        for _ in range(args.connections)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(STOP_TIMEOUT_S)
    latencies = sorted(latency for lats, _, _ in outcomes for latency in lats)
    return Load(
        requests=len(latencies),
        seconds=seconds,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=sum(e for _, e, _ in outcomes),
        client_cpu=sum(c for _, _, c in outcomes),
    )


@dataclass(frozen=True)
class Target:
    """One web server under test."""

    label: str
    service: Service
    port: int


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    path: str
    headers: dict[str, str]
    status: int  # what the app must answer (hello-world always answers 200)


class LoadGenerator:
    def __init__(self, args: Any, tmp: Path) -> None:
        self.args = args
        self.wrk = ensure_wrk(args.loadgen)
        self.script = tmp / "summary.lua"
        self.script.write_text(WRK_SCRIPT)

    def describe(self) -> str:
        args = self.args
        if self.wrk:
            version = subprocess.run(
                [self.wrk, "--version"], capture_output=True, text=True, check=False
            ).stdout.splitlines()
            name = version[0].split("Copyright")[0].strip() if version else "wrk"
            return (
                f"{name}, {args.wrk_threads} thread(s), {args.connections} connections;"
                " its latency excludes the TCP connect"
            )
        return (
            f"Python http.client, {args.connections} processes (one connection at a time each,"
            " reconnecting after every Connection: close); latency includes the TCP connect"
        )

    def run(self, target: Target, scenario: Scenario, seconds: float) -> Load:
        target.service.check_alive()
        cpu0 = tree_cpu_seconds(target.service.pid)
        if self.wrk:
            url = f"http://{HOST}:{target.port}{scenario.path}"
            load = run_wrk(self.wrk, self.script, url, scenario.headers, seconds, self.args)
        else:
            load = run_python_load(target.port, scenario.path, scenario.headers, seconds, self.args)
        load.server_cpu = tree_cpu_seconds(target.service.pid) - cpu0
        return load

    def rounds(
        self, targets: list[Target], scenario: Scenario, args: Any, rotate: bool = False
    ) -> dict[str, list[Load]]:
        """Every target under ``scenario``: an unmeasured ``args.warmup`` s each, then
        ``args.rounds`` rounds of ``args.seconds`` s, the order alternating (or rotating)."""
        out: dict[str, list[Load]] = {target.label: [] for target in targets}
        for target in targets:
            if args.warmup > 0:
                self.run(target, scenario, args.warmup)
        for number, order in enumerate(round_orders(targets, args.rounds, rotate)):
            for target in order:
                out[target.label].append(load := self.run(target, scenario, args.seconds))
                log(
                    f"{scenario.label} / {target.label} round {number + 1}: {load.rate:,.0f}"
                    f" req/s, p99 {load.p99_ms:.2f} ms, {load.errors} errors"
                )
        return out


# ---------------------------------------------------------------------------- read-your-writes


@dataclass
class Ryw:
    writes: list[float] = field(default_factory=list)  # POST sent -> 202 read
    visible: list[float] = field(default_factory=list)  # 202 read -> GET's 200 read
    gets: list[float] = field(default_factory=list)  # that GET's own latency
    plain: list[float] = field(default_factory=list)  # the plain GET's
    statuses: dict[int, int] = field(default_factory=dict)  # of the GETs after a write
    stale: int = 0  # 200s whose count did not show the check-in yet
    write_errors: int = 0
    reconnects: int = 0  # requests that found their kept-alive connection closed
    seconds: float = 0.0

    def add(self, other: Ryw) -> None:
        for name in ("writes", "visible", "gets", "plain"):
            getattr(self, name).extend(getattr(other, name))
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.stale, self.write_errors = (
            self.stale + other.stale,
            self.write_errors + other.write_errors,
        )
        self.reconnects += other.reconnects
        self.seconds = max(self.seconds, other.seconds)


class RywClient:
    """Paced writes, each followed at once by a GET of its Location with the 202's
    ``Commit-Position`` (the app waits for the projector), then a plain GET (``plain(tick)``).
    ``keep_alive``: one connection, kept while the server allows (as an HTTP client library),
    else a new one per request; ``check_ins``: every other write is a check-in to the item
    just created (a 200 whose count does not show it is stale), else every write a create."""

    def __init__(self, port: int, auth: dict[str, str], keep_alive: bool, check_ins: bool) -> None:
        self.port, self.auth, self.keep_alive, self.check_ins = port, auth, keep_alive, check_ins
        self.out = Ryw()
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, Any, bytes, float, float]:
        """status, headers, body, sent-at, answered-at; a kept-alive connection found closed
        is opened again once."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
            sent = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt or not self.keep_alive:
                    raise
                self.out.reconnects += 1
                continue
            read = time.perf_counter()
            if resp.will_close or not self.keep_alive:
                self.conn.close()
                self.conn = None
            return resp.status, resp.headers, data, sent, read
        raise AssertionError("unreachable")

    def run(self, rate: float, seconds: float, plain: Callable[[int], str], name: str) -> Ryw:
        out, began, location, checked_in = self.out, time.perf_counter(), "", 0
        for tick in range(int(rate * seconds)):
            wait_until(time.time() + began + tick / rate - time.perf_counter())
            create = not self.check_ins or tick % 2 == 0 or not location
            if create:
                body = json.dumps({"name": f"ryw {name}-{tick}"}).encode()
                sent_to, kind = "/v1/inventory-items", CREATE
            else:
                body, sent_to, kind = CHECK_IN_BODY, location, CHECK_IN
            status, headers, _, sent, answered = self.request(
                "POST", sent_to, {**self.auth, "Content-Type": kind}, body
            )
            if status != 202:
                out.write_errors += 1
                continue
            out.writes.append(answered - sent)
            if create:
                location, checked_in = urlsplit(headers["Location"]).path, 0
            else:
                checked_in += 1
            after = {**self.auth, "Commit-Position": headers["Commit-Position"]}
            status, _, data, sent, read = self.request("GET", location, after)
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if status == 200:
                out.visible.append(read - answered)
                out.gets.append(read - sent)
                out.stale += self.check_ins and json.loads(data).get("currentCount") != checked_in
            status, _, _, sent, read = self.request("GET", plain(tick), self.auth)
            if status == 200:
                out.plain.append(read - sent)
        out.seconds = time.perf_counter() - began
        if self.conn is not None:
            self.conn.close()
        return out
