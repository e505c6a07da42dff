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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

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
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
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


# The columns of `make bench`'s one table (bench/throughput.py): every script that measures a
# row of it adds the row with ``Report.headline`` and writes them with ``--headlines FILE``.
HEADLINE_COLUMNS = [
    "path",
    "ours",
    "ours p50 / p99 ms",
    "baseline",
    "baseline p50 / p99 ms",
    "ratio",
    "target",
    "met?",
]


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    headlines: list[list[str]] = field(default_factory=list)

    def headline(self, row: list[str]) -> None:
        """A row of the combined table, in ``HEADLINE_COLUMNS``' order."""
        assert len(row) == len(HEADLINE_COLUMNS), row
        self.headlines.append(row)

    def write_headlines(self, path: str | None) -> None:
        if path:
            Path(path).write_text(json.dumps(self.headlines))

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
        headlines: str | None = None,
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
        bench.report.write_headlines(headlines)
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
