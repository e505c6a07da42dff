"""The soak under faults (bench/soak.py), short: the whole stack as processes, mixed load,
kill -9 of esdblocal, the projector and a gunicorn worker, then every answer checked against
the event store and the read store against a rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOAD_SECONDS = 20

pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
def test_soak_under_faults_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    summary_path = tmp_path / "soak.json"
    argv = [sys.executable, "bench/soak.py", "--quick", "--seconds", str(LOAD_SECONDS)]
    done = subprocess.run(
        [*argv, "--json", str(summary_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    report = f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    assert summary_path.exists(), report
    summary = json.loads(summary_path.read_text())
    checks = {check["name"]: check for check in summary["checks"]}
    failed = [f"{name}: {c['detail']}" for name, c in checks.items() if not c["ok"]]
    assert not failed, f"seed {summary['seed']}: " + "\n".join(failed) + "\n" + report
    assert done.returncode == 0, report

    # Each check ran, and each kind of fault happened under load.
    for name in (
        "every 202's events in the store exactly once",
        "no refusal appended anything",
        "every event belongs to a request sent",
        "no 5xx but 503 in a fault window",
        "read-your-writes: own writes read back",
        "the projector caught up",
        "read store equals a rebuild",
    ):
        assert checks[name]["ok"], name
    assert {fault["kind"] for fault in summary["faults"]} == {"esdblocal", "projector", "worker"}
    figures = summary["figures"]
    assert figures["202"] > 100
    assert figures["events in the store"] >= figures["events acknowledged"] > 0
