"""ETags are opaque, deterministic, bound to their stream, and unforgeable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from app.etags import ETagCodec, load_or_create_key, parse_key

KEY = bytes(range(64))


@pytest.fixture
def codec() -> ETagCodec:
    return ETagCodec(KEY)


def test_round_trip_and_determinism(codec: ETagCodec) -> None:
    for version in (-1, 0, 1, 41, 2**40):
        tag = codec.encode("car-1", version)
        assert codec.encode("car-1", version) == tag  # same version, same string
        assert codec.decode("car-1", tag) == version


def test_opaque_and_distinct(codec: ETagCodec) -> None:
    tags = {codec.encode("car-1", v) for v in range(100)}
    assert len(tags) == 100
    assert all(tag.isascii() and '"' not in tag for tag in tags)


def test_a_tag_is_useless_on_another_stream(codec: ETagCodec) -> None:
    assert codec.decode("car-2", codec.encode("car-1", 3)) is None


@pytest.mark.parametrize("tag", ["", "garbage", "*", "AAAA", "a" * 32, "é"])
def test_garbage_does_not_decode(codec: ETagCodec, tag: str) -> None:
    assert codec.decode("car-1", tag) is None


def test_another_key_cannot_read_or_forge(codec: ETagCodec) -> None:
    other = ETagCodec(bytes(reversed(range(64))))
    assert other.decode("car-1", codec.encode("car-1", 3)) is None


def test_key_created_once_and_kept(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "var")
    assert len(key) == 64
    assert load_or_create_key(tmp_path / "var") == key
    assert (tmp_path / "var" / "etag.key").stat().st_mode & 0o777 == 0o600


def test_configured_keys(tmp_path: Path) -> None:
    assert parse_key(KEY.hex()) == KEY
    assert parse_key(base64.b64encode(KEY).decode()) == KEY
    with pytest.raises(ValueError):
        parse_key("abcd")


def test_processes_racing_to_create_the_key_all_get_the_same_whole_key(tmp_path: Path) -> None:
    """gunicorn workers boot together on a fresh DATA_DIR: none may read a half-written key."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(8) as pool:
        keys = pool.map(load_or_create_key, [tmp_path] * 32)
    assert len(set(keys)) == 1
    assert len(keys[0]) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["etag.key"]
