"""Configuration the web and the projector must agree on (both read the same environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def esdb_uri(env: Mapping[str, str] = os.environ) -> str:
    """``ESDB_URI``, else the embedded esdblocal on ``ESDB_PORT`` (2113) of this host."""
    return env.get("ESDB_URI") or f"esdb://127.0.0.1:{int(env.get('ESDB_PORT', '2113'))}?tls=false"


def root_certificates(env: Mapping[str, str] = os.environ) -> str | None:
    """``ESDB_ROOT_CERTIFICATES``: PEM text of the CA(s) to trust, for platforms that hand
    secrets over as variables rather than files (``tlsCAFile=`` in the URI is the file form)."""
    return env.get("ESDB_ROOT_CERTIFICATES") or None


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get("DATA_DIR", "var"))


def read_directory(data: Path) -> Path:
    """Where the read store's generations live."""
    return data / "read"
