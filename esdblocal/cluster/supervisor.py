"""``python -m esdblocal --cluster-size N``: N members on this machine, kept running.

Each member is a process of its own (``esdblocal.cluster.node``) with its own gRPC port,
HTTP port and log (``<data>/node<i>/log.sqlite3``). The supervisor prints the cluster's
connection string, then a line per member (its pid, ports and log) and a line at each
change of state. A member that dies (``kill -9``) is started again after
``--cluster-restart-delay`` seconds, on the same ports, as a container runtime would; one
that exits asking for it (after leaving an offline truncation) is started again at once.
SIGTERM or Ctrl-C stops every member and then the supervisor (exit 0).

Ports: with ``--port P`` member i serves gRPC on P + 2i and HTTP on P + 2i + 1 (2113/2114,
2115/2116, 2117/2118); with ``--port 0`` every port is a free one, chosen by the member.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from esdblocal import certificates
from esdblocal.cluster.member import RESTART
from esdblocal.server import DB_FILE, default_advertise_host

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass
class Child:
    index: int
    data: Path
    port: int
    http_port: int | None
    process: subprocess.Popen[str] | None = None
    generation: int = 0
    ready: bool = False
    restart_at: float | None = None
    state: str = "Unknown"
    pids: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.size: int = args.cluster_size
        self.host: str = args.host
        self.advertise = args.advertise_host or default_advertise_host(args.host)
        self.dial = "127.0.0.1" if args.host in ("0.0.0.0", "", "localhost") else args.host
        if args.host == "::":
            self.dial = "::1"
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        if args.memory:
            self._temporary = tempfile.TemporaryDirectory(prefix="esdblocal-cluster-")
            base = Path(self._temporary.name)
        else:
            base = Path(args.data)
        self.children = [Child(i, base / f"node{i}", *self._ports(i)) for i in range(self.size)]
        # A secure cluster: one CA and node certificate for every member, made before they start.
        self.certs: Path | None = None
        self.ca: Path | None = None
        if args.tls:
            self.certs = Path(args.certs) if args.certs else base / "certs"
            self.ca = certificates.ensure(self.certs, (self.host,)).ca
        self.events: queue.SimpleQueue[tuple[str, int, int, Any]] = queue.SimpleQueue()
        self.stopping = False

    def _ports(self, index: int) -> tuple[int, int | None]:
        """Member ``index``'s gRPC and HTTP ports (0: a free one; None: no HTTP)."""
        args = self.args
        port = args.port + 2 * index if args.port else 0
        if args.no_http:
            return port, None
        http_base = args.cluster_http_port if args.cluster_http_port is not None else args.port + 1
        return port, http_base + 2 * index if args.port and http_base else 0

    # ------------------------------------------------------------ processes

    def _command(self, child: Child) -> list[str]:
        args = self.args
        command = [
            sys.executable, "-m", "esdblocal.cluster.node",
            "--index", str(child.index), "--size", str(self.size),
            "--host", self.host, "--advertise-host", self.advertise,
            "--port", str(child.port), "--data", str(child.data),
            "--run-projections", args.run_projections,
            "--start-standard-projections", "true" if args.start_standard_projections else "false",
            "--commit-timeout-ms", str(args.commit_timeout_ms),
        ]  # fmt: skip
        if child.http_port is not None:
            command += ["--http-port", str(child.http_port)]
        if self.certs is not None:
            command += ["--certs", str(self.certs)]
        if args.web_ui is not None:
            command += ["--web-ui", str(args.web_ui)]
        return command

    def _start(self, child: Child) -> None:
        child.data.mkdir(parents=True, exist_ok=True)
        child.generation += 1
        child.ready = False
        child.restart_at = None
        process = subprocess.Popen(
            self._command(child),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        child.process = process
        threading.Thread(
            target=self._read, args=(child.index, child.generation, process), daemon=True
        ).start()

    def _read(self, index: int, generation: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self.events.put(("message", index, generation, message))
        self.events.put(("exit", index, generation, process.wait()))

    def _send_addresses(self, children: list[Child]) -> None:
        members = [
            {
                "index": c.index,
                "host": self.advertise,
                "dial": self.dial,
                "port": c.port,
                "http_port": c.http_port,
            }
            for c in self.children
        ]
        line = json.dumps({"members": members}) + "\n"
        for child in children:
            stdin: IO[str] | None = child.process.stdin if child.process else None
            if stdin is None:
                continue
            try:
                stdin.write(line)
                stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    # ------------------------------------------------------------ output

    def _say(self, text: str) -> None:
        print(f"esdblocal: {text}", flush=True)

    def uri(self) -> str:
        targets = ",".join(f"{self.host}:{c.port}" for c in self.children)
        return f"esdb://{targets}?{self._tls()}"

    def _tls(self) -> str:
        if self.ca is None:
            return "tls=false"
        return f"tls=true&tlsCAFile={self.ca.resolve()}"

    def _describe(self, child: Child) -> str:
        assert child.process is not None
        http = ""
        if child.http_port is not None:
            host = "localhost" if self.host in ("127.0.0.1", "::1") else self.host
            scheme = "http" if self.ca is None else "https"
            http = f", HTTP {scheme}://{host}:{child.http_port}/web/"
        return (
            f"node {child.index} (pid {child.process.pid}): esdb://{self.host}:{child.port}"
            f"?{self._tls()}{http}, log {child.data / DB_FILE}"
        )

    # ------------------------------------------------------------ running

    def run(self) -> int:
        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            if not self._start_all():
                return 1
            self._supervise()
            return 0
        finally:
            self._stop_all()
            if self._temporary is not None:
                self._temporary.cleanup()

    def _start_all(self) -> bool:
        for child in self.children:
            self._start(child)
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(c.ready for c in self.children):
            if self.stopping or time.monotonic() > deadline:
                print("esdblocal: the cluster's members did not start", file=sys.stderr)
                return False
            try:
                kind, index, _, payload = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            child = self.children[index]
            if kind == "exit":
                print(
                    f"esdblocal: node {index} exited with {payload} while starting",
                    file=sys.stderr,
                )
                return False
            if "ready" in payload:
                self._ready(child, payload["ready"])
        print(self.uri(), flush=True)
        for child in self.children:
            self._say(self._describe(child))
        self._send_addresses(self.children)
        return True

    def _ready(self, child: Child, ready: dict[str, Any]) -> None:
        child.ready = True
        child.port = int(ready["port"])  # a free port, once chosen, is kept on restarts
        if ready.get("http_port") is not None:
            child.http_port = int(ready["http_port"])

    def _supervise(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is not None and now >= child.restart_at:
                    self._start(child)
            try:
                kind, index, generation, payload = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            child = self.children[index]
            if generation != child.generation:
                continue
            if kind == "exit":
                self._exited(child, payload)
            elif "ready" in payload:
                self._ready(child, payload["ready"])
                self._say(self._describe(child))
                self._send_addresses([child])
            elif "state" in payload:
                child.state = payload["state"]
                self._say(
                    f"node {index} is {payload['state']} (term {payload['term']},"
                    f" epoch {payload['epoch']})"
                )

    def _exited(self, child: Child, code: int) -> None:
        if self.stopping:
            return
        child.ready = False
        if code == RESTART:
            self._say(f"node {child.index} exited to be started again; starting it")
            child.restart_at = time.monotonic()
            return
        delay = float(self.args.cluster_restart_delay)
        if delay < 0:
            self._say(f"node {child.index} exited ({code}); not starting it again")
            return
        self._say(f"node {child.index} exited ({code}); starting it again in {delay:g} s")
        child.restart_at = time.monotonic() + delay

    def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run(args: argparse.Namespace) -> int:
    return Supervisor(args).run()
