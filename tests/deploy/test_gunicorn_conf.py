"""deploy/gunicorn.conf.py loads through gunicorn's own Config and yields what it promises."""

from __future__ import annotations

import json
import logging.config
import multiprocessing
import runpy
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config

CONF = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"
VARIABLES = ("HOST", "PORT", "WEB_WORKERS", "WEB_THREADS", "LOG_LEVEL")


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Config:
    """The file as gunicorn reads it: every name it sets goes through Config.set (which
    validates types and hook signatures)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = runpy.run_path(str(CONF))
    config = Config()
    unknown = []
    for name, value in namespace.items():
        if name.startswith("_") or name.isupper() or name == "annotations":
            continue  # private helpers, constants, ``from __future__ import annotations``
        if isinstance(value, type(runpy)) or (callable(value) and name not in config.settings):
            continue  # imported modules and functions that are not hooks
        if name in config.settings:
            config.set(name, value)
        else:
            unknown.append(name)
    assert not unknown, f"settings gunicorn does not know: {unknown}"
    return config


def test_defaults_come_from_the_core_count(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(monkeypatch)
    assert config.workers == 2 * multiprocessing.cpu_count()
    assert config.threads == 2  # gthread: keep-alive, for clients that reuse connections
    assert config.worker_class_str == "gthread"
    assert config.bind == ["127.0.0.1:8000"]
    assert config.preload_app is False  # each worker imports the app (and its client) itself
    assert config.loglevel == "info"
    assert config.accesslog is None  # the app writes the structured access line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WEB_WORKERS": "3"}, {"workers": 3, "threads": 2, "worker_class_str": "gthread"}),
        ({"WEB_THREADS": "1"}, {"threads": 1, "worker_class_str": "sync"}),
        ({"WEB_THREADS": "4"}, {"threads": 4, "worker_class_str": "gthread"}),
        ({"HOST": "0.0.0.0", "PORT": "9000"}, {"bind": ["0.0.0.0:9000"]}),
        ({"LOG_LEVEL": "warning"}, {"loglevel": "warning"}),
    ],
)
def test_the_environment_overrides(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: dict[str, Any]
) -> None:
    config = load(monkeypatch, **env)
    for name, value in expected.items():
        assert getattr(config, name) == value, name


def test_shutdown_is_graceful_within_the_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(monkeypatch)
    assert 0 < config.graceful_timeout <= config.timeout
    assert config.graceful_timeout >= 10  # longer than READ_WAIT's default wait of 2 s


def test_hooks_are_the_ones_that_check_and_warm_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(monkeypatch)
    assert config.on_starting.__module__ != "gunicorn.config"  # ours, not the default no-op
    assert config.post_worker_init.__module__ != "gunicorn.config"


def test_the_logging_config_is_valid_and_writes_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load(monkeypatch)
    names = ["", "gunicorn.error", "gunicorn.access"]
    saved = {
        name: (logger.handlers[:], logger.level, logger.propagate)
        for name in names
        for logger in [logging.getLogger(name)]
    }
    try:
        logging.config.dictConfig(config.logconfig_dict)
        logging.getLogger("gunicorn.error").warning("hello %s", "there")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        # the app writes the access line; gunicorn's would be a second one per request
        assert not logging.getLogger("gunicorn.access").isEnabledFor(logging.CRITICAL - 1)
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
    record = json.loads(line)
    assert (record["level"], record["logger"], record["message"]) == (
        "warning",
        "gunicorn.error",
        "hello there",
    )


def test_gunicorn_builds_no_access_line_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a logconfig_dict set, gunicorn's stock logger would build every request's access
    atoms before the silenced logger dropped them; the configured class builds nothing."""
    config = load(monkeypatch)
    logger = config.logger_class(config)
    assert type(logger).__module__ == "app.logs"
    assert not logger.access_log_enabled

    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"gunicorn read the response's {name} for an access line")

    logger.access(Exploding(), Exploding(), {}, 0.001)
