"""Where the read store lives: the web and the projector must agree (both read DATA_DIR)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get("DATA_DIR", "var"))


def read_directory(data: Path) -> Path:
    """Where the read store's generations live."""
    return data / "read"
