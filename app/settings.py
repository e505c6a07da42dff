"""Settings from the environment: every variable, its default, and what it means (README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.auth import Key, keys_from_env
from app.bodies import DEFAULT_MAX_BODY_BYTES
from app.etags import load_or_create_key, parse_key
from eventstore.connection import check_uri, esdb_uri, root_certificates
from eventstore.streams import EventStore
from projections import config

TRUE = {"1", "true", "yes", "on"}

# Every environment variable the web and the projector read, with its default ("" = unset).
# The README's configuration table and the deploy files are checked against this list.
VARIABLES: dict[str, str] = {
    "ESDB_URI": "",
    "ESDB_ROOT_CERTIFICATES": "",
    "DATA_DIR": "var",
    "ESDB_PORT": "2113",
    "PORT": "8000",
    "HOST": "127.0.0.1",
    "WEB_WORKERS": "",
    "WEB_THREADS": "2",
    "ETAG_KEY": "",
    "REQUIRE_IF_MATCH": "false",
    "API_KEYS": "",
    "API_KEYS_FILE": "",
    "REQUIRE_AUTH": "false",
    "READ_WAIT": "2",
    "LOG_LEVEL": "info",
    "MAX_BODY_BYTES": "65536",
    "LONG_POLL_SLOTS": "2",
    "METRICS_PORT": "9464",
    "METRICS_HOST": "127.0.0.1",
    "PROJECTOR_METRICS_PORT": "9465",
    "PROMETHEUS_MULTIPROC_DIR": "",
    "OTEL_TRACES_EXPORTER": "",
    "OTEL_EXPORTER_FILE_PATH": "traces.jsonl",
}


class ConfigurationError(Exception):
    """A setting no process can start with; the message names the variable."""


def _number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> int | float:
    text = env.get(name) or VARIABLES[name]
    try:
        value = kind(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {text!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    esdb_uri: str
    data_dir: Path
    etag_key: bytes
    require_if_match: bool = False
    read_wait: float = 2.0
    api_keys: tuple[Key, ...] = ()
    require_auth: bool = False
    esdb_root_certificates: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    long_poll_slots: int = 2

    def event_store(self) -> EventStore:
        """The event store adapter these settings describe (not connected yet)."""
        return EventStore(self.esdb_uri, root_certificates=self.esdb_root_certificates)

    @property
    def read_directory(self) -> Path:
        return config.read_directory(self.data_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """The settings, or ConfigurationError naming what is wrong (nothing is echoed that
        could be a secret)."""
        data_dir = config.data_dir(env)
        uri = esdb_uri(env)
        try:
            check_uri(uri)
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        key_text = env.get("ETAG_KEY")
        try:
            etag_key = parse_key(key_text) if key_text else load_or_create_key(data_dir)
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        except OSError as error:
            raise ConfigurationError(f"cannot keep the ETag key under DATA_DIR: {error}") from None
        try:
            api_keys = keys_from_env(env)
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        except OSError as error:
            raise ConfigurationError(f"API_KEYS_FILE cannot be read: {error}") from None
        require_auth = env.get("REQUIRE_AUTH", "").lower() in TRUE
        if require_auth and not api_keys:
            raise ConfigurationError(
                "REQUIRE_AUTH is set but no API keys are configured (API_KEYS or API_KEYS_FILE)"
            )
        return cls(
            esdb_uri=uri,
            data_dir=data_dir,
            etag_key=etag_key,
            require_if_match=env.get("REQUIRE_IF_MATCH", "").lower() in TRUE,
            read_wait=float(_number(env, "READ_WAIT", float)),
            api_keys=api_keys,
            require_auth=require_auth,
            esdb_root_certificates=root_certificates(env),
            max_body_bytes=_body_limit(env),
            long_poll_slots=int(_number(env, "LONG_POLL_SLOTS", int)),
        )


def _body_limit(env: Mapping[str, str]) -> int:
    limit = int(_number(env, "MAX_BODY_BYTES", int))
    if limit < 1024:  # the largest command is a car, about 300 bytes
        raise ConfigurationError("MAX_BODY_BYTES must be at least 1024")
    return limit
