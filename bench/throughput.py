"""Issue 13's one table: every throughput row, ours against its baseline, with its target.

Runs ``command_bench.py`` (commands against raw appends, sync and keep-alive, the cold and
the cached worker) and then ``read_bench.py`` (GET item, 304, list pages against a Falcon
hello-world, the projector against raw ``read_all``), one after the other so that neither
loads the other's machine, each with ``--headlines`` to collect its rows, and prints them as
one markdown table. Each script's own report (per-round ratios, CPU per request, profiles)
is printed before it; ``bench/README.md`` explains every column.

Run: ``python bench/throughput.py [--quick]`` (``make bench`` runs it first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HEADLINE_COLUMNS, PROJECT_ROOT, Report, log, machine, revision

SCRIPTS = ("command_bench.py", "read_bench.py")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="pass --quick to both scripts (a smoke run)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    load_before = os.getloadavg()
    report = Report()
    failed = []
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        for script in SCRIPTS:
            rows = Path(tmp) / f"{script}.json"
            command = [
                sys.executable,
                str(PROJECT_ROOT / "bench" / script),
                "--headlines",
                str(rows),
            ]
            if args.quick:
                command.append("--quick")
            log(f"running {script}")
            done = subprocess.run(command, cwd=PROJECT_ROOT, check=False)
            if done.returncode != 0 or not rows.exists():
                failed.append(f"{script} (exit status {done.returncode})")
                continue
            report.headlines.extend(json.loads(rows.read_text()))
    report.add(
        "",
        "## Throughput: every row of issue 13, measured side by side",
        "",
        f"- code: {revision()}; {'--quick' if args.quick else 'full runs'};"
        f" {time.perf_counter() - began:.0f} s in all",
        *(f"- {line}" for line in machine(load_before)),
        "",
    )
    report.table(HEADLINE_COLUMNS, report.headlines, text=(1, 3, 7))
    report.add(
        "ratio = ours ÷ baseline (rates; for the cold worker, median latencies). Each row's"
        " baseline ran in the same script, in adjacent windows; the scripts' own reports above"
        " give the rounds, the CPU per request and the profiles.",
    )
    if failed:
        report.add("", f"Not measured: {', '.join(failed)}.")
    print("\n".join(report.lines), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
