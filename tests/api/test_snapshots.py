"""Snapshots (issue 13): a cold worker starts from the host's snapshot, never trusts it beyond
its version, keeps idempotency keys across it, and ignores one of another shape; a worker
whose cache is behind starts from the host's newer state; every append updates it."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import falcon.testing
import msgspec
from esdbclient import EventStoreDBClient, NewEvent, StreamState

from app.api import create_app
from app.snapshots import SNAPSHOT_AFTER
from domain import inventory
from tests.api.conftest import FIXED_NOW, command, create, path_of, settings

CHECK_IN = "CheckInItemsToInventoryCommand"
REMOVE = "RemoveItemsFromInventoryCommand"


def worker(esdb_uri: str, data: Path) -> falcon.testing.TestClient:
    """A fresh web worker: an empty cache, the host's DATA_DIR."""
    return falcon.testing.TestClient(create_app(settings(esdb_uri, data), clock=lambda: FIXED_NOW))


def snapshot_of(data: Path, stream: str) -> tuple[str, int] | None:
    with closing(sqlite3.connect(data / "snapshots.sqlite3")) as db:
        found = db.execute(
            "SELECT fingerprint, version FROM states WHERE stream = ?", (stream,)
        ).fetchone()
    return None if found is None else (found[0], found[1])


def append(client: EventStoreDBClient, stream: str, count: int, times: int) -> None:
    data = msgspec.json.encode(inventory.ItemsCheckedInToInventory(count=count))
    client.append_to_stream(
        stream,
        current_version=StreamState.ANY,
        events=[NewEvent(type="ItemsCheckedInToInventory", data=data) for _ in range(times)],
    )


def created(api: falcon.testing.TestClient, name: str) -> tuple[str, str]:
    """A new item through the API: its path and its stream."""
    item = path_of(create(api, name).headers["location"])
    return item, "inventoryItem-" + item.rsplit("/", 1)[1]


def post(
    api: falcon.testing.TestClient, path: str, model: str, count: int, **headers: str
) -> falcon.testing.Result:
    return api.simulate_post(
        path, body=json.dumps({"count": count}), headers={**command(model), **headers}
    )


def test_a_cold_worker_starts_from_the_snapshot_and_reads_what_follows(
    esdb_uri: str, tmp_path: Path, client: EventStoreDBClient
) -> None:
    first = worker(esdb_uri, tmp_path)
    item, stream = created(first, "Long")
    keyed = post(first, item, CHECK_IN, 1, **{"Idempotency-Key": "early-key"})
    assert keyed.status_code == 202
    append(client, stream, 1, SNAPSHOT_AFTER + 50)  # another writer: versions 2..151
    assert post(worker(esdb_uri, tmp_path), item, CHECK_IN, 1).status_code == 202
    snapshot = snapshot_of(tmp_path, stream)  # the state after that worker's own append
    assert snapshot is not None and snapshot[1] == SNAPSHOT_AFTER + 52
    stock = 1 + SNAPSHOT_AFTER + 50 + 1

    append(client, stream, 2, 5)  # beyond the snapshot: a cold worker must read them
    cold = worker(esdb_uri, tmp_path)
    exact = post(cold, item, REMOVE, stock + 10)
    assert exact.status_code == 202, exact.json
    assert (post(cold, item, REMOVE, 1).json["errorCode"]) == 1011  # nothing left
    # The idempotency key used before the snapshot is still answered as the first time.
    retried = post(
        worker(esdb_uri, tmp_path), item, CHECK_IN, 1, **{"Idempotency-Key": "early-key"}
    )
    assert (retried.status_code, retried.headers["etag"]) == (202, keyed.headers["etag"])
    assert len(client.get_stream(stream)) == 1 + 1 + SNAPSHOT_AFTER + 50 + 1 + 5 + 1


def test_a_snapshot_of_another_shape_is_ignored(
    esdb_uri: str, tmp_path: Path, client: EventStoreDBClient
) -> None:
    api = worker(esdb_uri, tmp_path)
    item, stream = created(api, "Reshaped")
    append(client, stream, 1, SNAPSHOT_AFTER)
    assert post(worker(esdb_uri, tmp_path), item, CHECK_IN, 1).status_code == 202
    with closing(sqlite3.connect(tmp_path / "snapshots.sqlite3")) as db:
        db.execute(
            "UPDATE states SET fingerprint = '0:older', state = ? WHERE stream = ?",
            (b'{"exists":true,"name":"Wrong","active":true,"count":999999}', stream),
        )
        db.commit()
    removed = post(worker(esdb_uri, tmp_path), item, REMOVE, SNAPSHOT_AFTER + 1)
    assert removed.status_code == 202  # decided on the whole stream, not the stale row
    assert post(worker(esdb_uri, tmp_path), item, REMOVE, 1).json["errorCode"] == 1011


def test_every_append_updates_the_hosts_state_and_a_worker_behind_starts_from_it(
    esdb_uri: str, tmp_path: Path, client: EventStoreDBClient
) -> None:
    one, other = worker(esdb_uri, tmp_path), worker(esdb_uri, tmp_path)
    item, stream = created(one, "Shared")
    assert snapshot_of(tmp_path, stream) is not None  # written by the create's own append
    for turn in range(4):  # sync workers: a client's requests land on either
        api = (one, other)[turn % 2]
        assert post(api, item, CHECK_IN, 1).status_code == 202
        snapshot = snapshot_of(tmp_path, stream)
        assert snapshot is not None and snapshot[1] == turn + 1

    # ``one`` last saw version 3; the host's row says version 4. Forge that row's state (the
    # stream is at version 4, so an append after it passes the store's check): ``one`` decides
    # on the host's state, not on its own older cache, which would reload and refuse.
    with closing(sqlite3.connect(tmp_path / "snapshots.sqlite3")) as db:
        (state,) = db.execute("SELECT state FROM states WHERE stream = ?", (stream,)).fetchone()
        forged = msgspec.json.encode({**msgspec.json.decode(state), "count": 40})
        db.execute("UPDATE states SET state = ? WHERE stream = ?", (forged, stream))
        db.commit()
    assert post(one, item, REMOVE, 40).status_code == 202


def replays_of(data: Path, stream: str) -> dict[str, int]:
    """The host's idempotency keys for ``stream``, with the version each one's append
    reached."""
    with closing(sqlite3.connect(data / "snapshots.sqlite3")) as db:
        rows = db.execute("SELECT key, version FROM replays WHERE stream = ?", (stream,))
        return dict(rows.fetchall())


def state_size(data: Path, stream: str) -> int:
    with closing(sqlite3.connect(data / "snapshots.sqlite3")) as db:
        (size,) = db.execute(
            "SELECT length(state) FROM states WHERE stream = ?", (stream,)
        ).fetchone()
    return int(size)


def test_each_key_is_a_row_of_its_own_and_the_state_row_does_not_grow(
    esdb_uri: str, tmp_path: Path
) -> None:
    """A stream's keys are not carried in its state's row (each command used to re-encode
    every key the stream had seen): one row per key, written with the state it reached, and
    a retry of the first key, after many others, is answered by any worker as the first."""
    api = worker(esdb_uri, tmp_path)
    item, stream = created(api, "Keyed")
    assert post(api, item, CHECK_IN, 9).status_code == 202  # version 1, count 9
    first = post(api, item, CHECK_IN, 1, **{"Idempotency-Key": "key-0"})  # version 2
    size = state_size(tmp_path, stream)
    for n in range(1, 40):
        assert post(api, item, CHECK_IN, 1, **{"Idempotency-Key": f"key-{n}"}).status_code == 202
    assert state_size(tmp_path, stream) == size  # the count went from 10 to 49
    assert replays_of(tmp_path, stream) == {f"key-{n}": n + 2 for n in range(40)}

    cold = worker(esdb_uri, tmp_path)
    retried = post(cold, item, CHECK_IN, 1, **{"Idempotency-Key": "key-0"})
    assert retried.status_code == 202
    for header in ("etag", "commit-position"):
        assert retried.headers[header] == first.headers[header]
    other_body = post(worker(esdb_uri, tmp_path), item, CHECK_IN, 2, **{"Idempotency-Key": "key-0"})
    assert (other_body.status_code, other_body.json["errorCode"]) == (422, 1008)
    assert post(cold, item, CHECK_IN, 1).headers["etag"] != first.headers["etag"]


def test_a_key_read_from_the_stream_reaches_the_hosts_replays(
    esdb_uri: str, tmp_path: Path, client: EventStoreDBClient
) -> None:
    """A keyed request served by another host: this host learns its key from the stream's
    metadata when it reads the stream, answers the retry as the first, and keeps the key for
    its other workers."""
    elsewhere = worker(esdb_uri, tmp_path / "other-host")
    item, stream = created(elsewhere, "Travelled")
    first = post(elsewhere, item, CHECK_IN, 3, **{"Idempotency-Key": "from-afar"})
    here = tmp_path / "this-host"
    retried = post(worker(esdb_uri, here), item, CHECK_IN, 3, **{"Idempotency-Key": "from-afar"})
    assert (retried.status_code, retried.headers["etag"]) == (202, first.headers["etag"])
    assert replays_of(here, stream) == {"from-afar": 1}
    assert [e.type for e in client.get_stream(stream)].count("ItemsCheckedInToInventory") == 1
