"""A read store and snapshots are trusted only against the event store they came from.

The port clash a new user met: the stack ran against another checkout's esdblocal on our
port, then against our own fresh one with the same ``DATA_DIR``, and served the other
store's rows as ready while our writes never appeared. And a store restored from an older
backup, behind the read store's checkpoint. Real processes throughout: esdblocal, gunicorn,
the projector, over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    call,
    free_port,
    stack_env,
    start_projector,
    start_web,
    wait_for_port,
)

pytestmark = pytest.mark.slow
CREATE = {"Content_Type": "application/json"}
CHECK_IN = {"Content_Type": "application/json; domain-model=CheckInItemsToInventoryCommand"}
REBUILDING = "the read store is not from this event store; rebuilding it from this one"


@contextlib.contextmanager
def esdblocal(data: Path, port: int) -> Iterator[str]:
    """An esdblocal as ``make run`` starts it (system projections on), on ``port``."""
    command = [sys.executable, "-m", "esdblocal", "--port", str(port), "--http-port", "0"]
    process = subprocess.Popen(
        [*command, "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    uri = process.stdout.readline().strip()
    try:
        assert uri.startswith("esdb://"), f"esdblocal did not start (exit {process.poll()})"
        yield uri
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


@contextlib.contextmanager
def web(env: dict[str, str]) -> Iterator[int]:
    process = start_web(env, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(int(env["PORT"]), process)
        yield int(env["PORT"])
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


@contextlib.contextmanager
def projector(env: dict[str, str], lines: list[dict[str, Any]]) -> Iterator[None]:
    """The projector; its JSON log lines land in ``lines`` when it has stopped."""
    process = start_projector(env, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        lines += [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def create(port: int, name: str, **headers: str) -> tuple[str, str]:
    """A new item: its path and the commit position its 202 carried."""
    status, got, body = call(
        port, "POST", "/v1/inventory-items", {"name": name}, **CREATE, **headers
    )
    assert status == 202, body
    return "/" + got["location"].split("/", 3)[3], got["commit-position"]


def read(port: int, path: str, position: str) -> dict[str, Any]:
    status, _, body = call(port, "GET", path, Commit_Position=position)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def key(name: str) -> str:
    return "key-" + name.replace(" ", "-")


@contextlib.contextmanager
def stack(data: Path, uri: str) -> Iterator[Callable[[list[str]], list[tuple[str, str]]]]:
    """The stack against ``uri`` with ``data``; yields a function that writes items (each
    with an Idempotency-Key) and waits until they are readable."""
    env = stack_env(data, uri, free_port())
    lines: list[dict[str, Any]] = []
    with web(env) as port, projector(env, lines):

        def write(names: list[str]) -> list[tuple[str, str]]:
            made = [create(port, name, Idempotency_Key=key(name)) for name in names]
            for path, position in made:

                def readable(path: str = path, position: str = position) -> bool:
                    return call(port, "GET", path, Commit_Position=position)[0] == 200

                eventually(readable, f"{path} to be readable")
            return made

        yield write


def mismatch_of(port: int) -> dict[str, Any] | None:
    status, _, body = call(port, "GET", "/readyz")
    mismatch: dict[str, Any] | None = body["projector"].get("storeMismatch")
    assert (status == 503) if mismatch else True, body
    return mismatch


def test_a_read_store_from_another_store_is_never_served_and_is_rebuilt(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    with esdblocal(tmp_path / "other-checkout", port) as uri, stack(data, uri) as write:
        theirs = write(["Theirs 1", "Theirs 2"])
    snapshots = data / "snapshots.sqlite3"
    with closing(sqlite3.connect(snapshots)) as db:
        assert db.execute("SELECT COUNT(*) FROM replays").fetchone() == (2,)

    # Our own fresh store on the same port, the same DATA_DIR: the same ESDB_URI.
    with esdblocal(tmp_path / "ours", port) as again:
        assert again == uri
        env = stack_env(data, uri, free_port())
        with web(env) as web_port:
            # Before the projector has even started, the web knows the rows are not ours.
            mismatch = mismatch_of(web_port)
            assert mismatch is not None
            assert (mismatch["reason"], mismatch["rebuilding"]) == ("other-store", False)
            for path, _ in theirs:
                status, headers, problem = call(web_port, "GET", path)
                assert (status, problem["errorCode"]) == (503, 1019), problem
                assert "other-store" in problem["detail"] and headers["retry-after"] == "5"
            assert call(web_port, "GET", "/v1/inventory-items")[0] == 503
            # The other store's idempotency replay is not trusted: the same key appends here.
            ours, position = create(web_port, "Theirs 1", Idempotency_Key=key("Theirs 1"))
            assert ours == theirs[0][0], "the same key names the same resource"
            fresh, fresh_position = create(web_port, "Ours")
            status, _, problem = call(web_port, "POST", theirs[1][0], {"count": 1}, **CHECK_IN)
            assert (status, problem["errorCode"]) == (404, 1002), "no snapshot from there"

            lines: list[dict[str, Any]] = []
            with projector(env, lines):
                served: list[tuple[int, Any]] = []

                def readable() -> bool:
                    foreign = call(web_port, "GET", theirs[1][0])[0]
                    assert foreign in (503, 404), "a row of the other store was served"
                    answer = call(web_port, "GET", fresh, Commit_Position=fresh_position)
                    served.append((answer[0], answer[2]))
                    if answer[0] != 200:
                        assert mismatch_of(web_port) is not None or answer[0] == 503
                    return answer[0] == 200

                eventually(readable, "our own write to be readable")
                assert {status for status, _ in served} <= {200, 503}
                assert read(web_port, ours, position)["name"] == "Theirs 1"
                status, _, page = call(web_port, "GET", "/v1/inventory-items?limit=100")
                assert status == 200
                assert sorted(item["name"] for item in page["items"]) == ["Ours", "Theirs 1"]
                assert call(web_port, "GET", theirs[1][0])[0] == 404

                def ready() -> bool:
                    status, _, body = call(web_port, "GET", "/readyz")
                    return status == 200 and body["projector"].get("lag") == 0

                eventually(ready, "/readyz to say ready")
    rebuilding = [line for line in lines if line["message"] == REBUILDING]
    assert len(rebuilding) == 1, lines
    assert rebuilding[0]["reason"] == "other-store" and "ESDB_URI" in rebuilding[0]["todo"]
    assert [line for line in lines if line["message"] == "rebuilt store swapped in"]


def test_a_store_restored_from_an_older_backup_is_caught(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    store = tmp_path / "esdb"
    backup = tmp_path / "backup"
    backup.mkdir()
    with esdblocal(store, port) as uri, stack(data, uri) as write:
        (kept,) = write(["Kept"])
        with (
            closing(sqlite3.connect(store / "log.sqlite3")) as live,
            closing(sqlite3.connect(backup / "log.sqlite3")) as copy,
        ):
            live.backup(copy)  # the online backup the README describes
        lost = write(["Lost 1", "Lost 2"])

    with esdblocal(backup, port):
        env = stack_env(data, uri, free_port())
        with web(env) as web_port:
            mismatch = mismatch_of(web_port)
            assert mismatch is not None
            assert mismatch["reason"] in ("past-head", "other-history"), mismatch
            assert call(web_port, "GET", kept[0])[0] == 503
            status, _, problem = call(web_port, "POST", lost[0][0], {"count": 1}, **CHECK_IN)
            assert (status, problem["errorCode"]) == (404, 1002), "its snapshot was dropped"
            lines: list[dict[str, Any]] = []
            with projector(env, lines):
                path, position = create(web_port, "After the restore")
                eventually(
                    lambda: call(web_port, "GET", path, Commit_Position=position)[0] == 200,
                    "the write after the restore to be readable",
                )
                assert read(web_port, kept[0], kept[1])["name"] == "Kept"
                for gone, _ in lost:
                    assert call(web_port, "GET", gone)[0] == 404
                assert mismatch_of(web_port) is None
    (rebuilding,) = [line for line in lines if line["message"] == REBUILDING]
    assert rebuilding["reason"] in ("past-head", "other-history")
