"""The README's configuration table names exactly the variables the app reads, with their
defaults, and the production section's commands name real modules and files."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def configuration_table() -> dict[str, str]:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    table = section.split("| variable | default | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", table, re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_the_configuration_table_names_every_variable_and_no_other() -> None:
    assert set(configuration_table()) == set(VARIABLES)


def test_the_documented_defaults_are_the_real_ones() -> None:
    documented = configuration_table()
    for name, default in VARIABLES.items():
        if default:
            assert f"`{default}`" in documented[name], name
        else:  # unset, or computed (the worker count from the cores)
            assert documented[name] == "unset" or "cores" in documented[name], name


def test_the_production_section_points_at_files_that_exist() -> None:
    section = README.split("## Running in production", 1)[1].split("\n## ", 1)[0]
    paths = set(re.findall(r"deploy/[\w./-]+\w", section))
    assert paths
    for path in paths:
        if path in ("deploy/.env", "deploy/api-keys"):
            continue  # the files the reader creates
        assert (ROOT / path).exists(), path
