"""The whole stack on a three-member cluster, the leader killed under load, every answer checked.

A report, not a timed test, like ``bench/soak.py`` (whose load, records and checks it runs):
the event store is ``python -m esdblocal --cluster-size 3`` (durable, each member its own
process and log), the app and the projector reach it through the cluster's connection
string (``esdb://host:p0,host:p1,host:p2``: esdbclient discovers the leader by gossip), and
the only fault is ``kill -9`` of whichever member leads, every ``--fault-every`` seconds on
average. The supervisor starts the killed member again after ``--restart-delay`` seconds; it
rejoins as a follower (truncating what no majority held). A fault's window runs from the kill
to a new leader in gossip, plus ``--grace`` seconds.

The soak's checks, over the failovers:

- 0 acknowledged events lost: every 202's events are in the new leader's ``$all``;
- 0 answered twice: no event id twice, no request's events written twice, a keyed POST's
  events as many times as its 202 says;
- no 5xx but 503, a 503 only in a failover's window, and every 503 with ``Retry-After``;
- the projector follows the new leader: it is live again after each failover, caught up
  at the end, and its read store equals a rebuild from the store;

plus a table of the failovers: the election (kill to a new leader in gossip), the first 202
after the kill, and the answers in the window.

Run: ``python bench/failover.py [--seconds 60] [--fault-every 12] [--seed N] [--keep]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak
from common import Report, Service, log
from esdbclient import EventStoreDBClient
from esdbclient.exceptions import EventStoreDBClientException

NODE_LINE = re.compile(r"node (\d+) \(pid (\d+)\): esdb://[^:]+:(\d+)\?")


def _client_call(
    self: soak.Client, op: str, method: str, path: str, *args: Any, **kwargs: Any
) -> Any:
    """soak's request, with its ``Retry-After`` kept in the record (a 503 must carry one)."""
    out = self.out

    class Keep:
        def write(self, line: str) -> None:
            self.line = line

    keep = Keep()
    self.out = keep
    try:
        answer = _original_call(self, op, method, path, *args, **kwargs)
    finally:
        self.out = out
    record = json.loads(keep.line)
    record["retryAfter"] = answer.headers.get("retry-after")
    out.write(json.dumps(record) + "\n")
    return answer


_original_call = soak.Client.call


def client_process(*args: Any) -> None:
    """soak's client process, its requests recording ``Retry-After`` (spawned: patch here)."""
    soak.Client.call = _client_call  # type: ignore[method-assign]
    soak.client_process(*args)


class ClusterStack(soak.Stack):
    """soak's stack with a three-member cluster for the store; the fault: kill -9 the leader."""

    def start_store(self) -> None:
        argv = [sys.executable, "-m", "esdblocal", "--cluster-size", "3", "--port", "0"]
        argv += ["--data", str(self.data / "esdb")]
        argv += ["--cluster-restart-delay", str(self.args.restart_delay)]
        self.esdb = Service("esdblocal-cluster", argv, self.tmp, self.env)
        self.services.append(self.esdb)
        self.uri = self.esdb.wait_for_line(
            self.esdb.stdout_path, lambda line: line.startswith("esdb"), 60
        )
        self.esdb_port = 0
        log(f"cluster at {self.uri}")
        self.failovers: list[dict[str, Any]] = []
        self.leader_port()  # the cluster has elected its first leader

    # -------------------------------------------------------------- the cluster

    def members(self) -> dict[int, tuple[int, int]]:
        """gRPC port → (member number, its latest pid), from the supervisor's lines."""
        text = self.esdb.stdout_path.read_text(errors="replace")
        return {int(port): (int(i), int(pid)) for i, pid, port in NODE_LINE.findall(text)}

    def leader_port(self, timeout: float = 60, other_than: int | None = None) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for port in list(self.members()):
                try:
                    with EventStoreDBClient(f"esdb://127.0.0.1:{port}?tls=false") as member:
                        gossip = member.read_gossip(timeout=1)
                except EventStoreDBClientException:
                    continue
                leaders = [m.port for m in gossip if m.state == "NODE_STATE_LEADER"]
                if len(leaders) == 1 and leaders[0] != other_than:
                    return leaders[0]
            time.sleep(0.05)
        raise RuntimeError("no leader")

    def pids(self) -> dict[str, list[int]]:
        pids = super().pids()
        pids["esdblocal"] = sorted(pid for _, pid in self.members().values())
        return pids

    def start_esdb(self) -> Service:
        raise RuntimeError("the cluster's supervisor exited")

    def kill(self, kind: str, rng: Any) -> soak.Window:
        if kind != "leader":
            return super().kill(kind, rng)
        port = self.leader_port()
        index, pid = self.members()[port]
        window = soak.Window("esdblocal", pid, time.time())  # the soak's store window
        with self.lock:
            self.windows.append(window)
            lines = self.live_lines(self.projector)
        os.kill(pid, signal.SIGKILL)
        threading.Thread(target=self._note_live, args=(window, lines), daemon=True).start()
        new = self.leader_port(other_than=port)
        window.back = time.time()
        self.failovers.append(
            {
                "window": window,
                "old": index,
                "new": self.members()[new][0],
                "election_s": window.back - window.start,
            }
        )
        log(f"member {index} killed; member {self.members()[new][0]} leads after"
            f" {window.back - window.start:.2f} s")  # fmt: skip
        return window

    def _note_live(self, window: soak.Window, lines: int) -> None:
        """The projector's next "caught up; live" after a kill. (soak's watcher only counts
        lines after the store is back, which here is when this script's gossip polling saw
        the new leader: the projector may be live again before that.)"""
        deadline = time.monotonic() + 120
        while window.live is None and time.monotonic() < deadline:
            with self.lock:
                if self.live_lines(self.projector) > lines:
                    window.live = time.time()
                    return
            time.sleep(0.02)

    def faults(self, stop: Any, until: float, rng: Any) -> None:
        """kill -9 the leader at random times until ``until`` (at least once)."""
        first = True
        while True:
            gap = rng.uniform(0.5, 1.5) * self.args.fault_every
            if first:
                gap = min(gap, max(1.0, (until - time.time()) / 2))
            if stop.wait(gap) or time.time() >= until:
                return
            first = False
            log("fault: kill -9 the leader")
            try:
                self.kill("leader", rng)
            except Exception as error:
                with self.lock:
                    self.unexpected_exits.append(f"failover failed: {error}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration (60)")
    parser.add_argument("--fault-every", type=float, default=12.0, help="mean gap (12 s)")
    parser.add_argument("--restart-delay", type=float, default=3.0, help="of a killed member (3)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grace", type=float, default=2.0, help="seconds after a new leader (2)")
    parser.add_argument("--shared-items", type=int, default=4)
    parser.add_argument("--shared-cars", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--read-wait", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    args.poison_every = 0.0
    if args.seed is None:
        import random

        args.seed = random.SystemRandom().randrange(1_000_000)
    return args


def failover_rows(
    stack: ClusterStack, records: list[dict[str, Any]], grace: float
) -> list[list[str]]:
    rows = []
    for failover in stack.failovers:
        window: soak.Window = failover["window"]
        end = window.end(grace)
        inside = [r for r in records if soak.overlaps(r, window.start, end)]
        statuses = collections.Counter(str(r["status"] or "no answer") for r in inside)
        after = [r["t1"] for r in records if r["status"] == 202 and r["t1"] > window.start]
        first = min(after) - window.start if after else None
        rows.append(
            [
                f"{failover['old']} → {failover['new']}",
                f"{failover['election_s']:.2f}",
                f"{first:.2f}" if first is not None else "never",
                ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
                f"{window.live - window.start:.2f}" if window.live else "—",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    soak.client_process = client_process  # type: ignore[assignment]
    return soak.main(argv, parse_args, ClusterStack, failover_checks, "failover")


def failover_checks(args: Any, stack: ClusterStack, report: Report, ok: bool) -> bool:
    """soak's report relabelled for the cluster, then the failover's own checks and table."""
    records = []
    for path in sorted((stack.tmp / "records").glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line]
    bare = [r for r in records if r["status"] == 503 and not r.get("retryAfter")]
    server_errors = [r for r in records if (r["status"] or 0) >= 500 and r["status"] != 503]
    lines = report.lines
    lines[0] = "# Failover under load: the stack on a three-member cluster"
    for i, line in enumerate(lines):
        if line.startswith("- stack: esdblocal (durable)"):
            lines[i] = line.replace(
                "esdblocal (durable)",
                "esdblocal --cluster-size 3 (durable; a killed member restarted after"
                f" {args.restart_delay:g} s)",
            )
        if line.startswith("| ") and "| esdblocal |" in line:  # the Faults table
            lines[i] = line.replace("| esdblocal |", "| the leader |")
        if line.startswith("- faults:"):
            lines[i] = (
                f"- faults: {len(stack.failovers)} kill -9 of the leader (mean gap"
                f" {args.fault_every:g} s), grace {args.grace:g} s after the new leader"
            )
    checks = [
        ("every 503 carries Retry-After", not bare, f"{len(bare)} without"),
        ("no 5xx but 503", not server_errors, f"{len(server_errors)} other 5xx"),
        ("the leader was killed", bool(stack.failovers), f"{len(stack.failovers)} times"),
    ]
    report.add("## Failover checks", "")
    rows = [[name, "ok" if good else "**FAIL**", detail] for name, good, detail in checks]
    report.table("check|result|detail", rows, text=(1, 2))
    report.add("## Failovers", "")
    header = "leader|election s|first 202 after s|answers in the window|projector live after s"
    report.table(header, failover_rows(stack, records, args.grace), text=(0, 3))
    ok = ok and all(good for _, good, _ in checks)
    report.add(f"**{'all failover checks passed' if ok else 'FAILOVER CHECKS FAILED'}**")
    return ok


if __name__ == "__main__":
    sys.exit(main())
