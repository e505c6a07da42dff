"""Settings from the environment: every variable, its default, and what it means (README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.auth import Key, keys_from_env
from app.etags import load_or_create_key, parse_key
from projections import config

TRUE = {"1", "true", "yes", "on"}

# Every environment variable the web and the projector read, with its default ("" = unset).
# The README's configuration table and the deploy files are checked against this list.
VARIABLES: dict[str, str] = {
    "ESDB_URI": "",
    "DATA_DIR": "var",
    "ESDB_PORT": "2113",
    "PORT": "8000",
    "HOST": "127.0.0.1",
    "WEB_WORKERS": "",
    "WEB_THREADS": "",
    "ETAG_KEY": "",
    "REQUIRE_IF_MATCH": "false",
    "API_KEYS": "",
    "API_KEYS_FILE": "",
    "REQUIRE_AUTH": "false",
    "READ_WAIT": "2",
    "LOG_LEVEL": "info",
}


@dataclass(frozen=True, slots=True)
class Settings:
    esdb_uri: str
    data_dir: Path
    port: int
    etag_key: bytes
    require_if_match: bool = False
    read_wait: float = 2.0
    api_keys: tuple[Key, ...] = ()
    require_auth: bool = False

    @property
    def read_directory(self) -> Path:
        return config.read_directory(self.data_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        data_dir = config.data_dir(env)
        key_text = env.get("ETAG_KEY")
        return cls(
            esdb_uri=config.esdb_uri(env),
            data_dir=data_dir,
            port=int(env.get("PORT", "8000")),
            etag_key=parse_key(key_text) if key_text else load_or_create_key(data_dir),
            require_if_match=env.get("REQUIRE_IF_MATCH", "").lower() in TRUE,
            read_wait=float(env.get("READ_WAIT", "2")),
            api_keys=keys_from_env(env),
            require_auth=env.get("REQUIRE_AUTH", "").lower() in TRUE,
        )
