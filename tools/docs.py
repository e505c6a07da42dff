"""``python -m tools.docs http://127.0.0.1:8000/v1``: documentation learned from a live server.

It knows only the root URL. It follows the entry point's links, asks each route OPTIONS with
``Accept: application/json; domain-model=ResourceDescription``, follows the links those
descriptions give (item routes are templated; each comes with an example URL to ask), reads
the error-code pages, and writes ``API.md`` and a single static ``index.html``.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

DESCRIPTION = "application/json; domain-model=ResourceDescription"


@dataclass
class Crawl:
    root: str
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # by path template
    errors: list[dict[str, Any]] = field(default_factory=list)


def fetch(url: str, method: str = "GET", accept: str = "application/json") -> Any:
    request = urllib.request.Request(url, method=method, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def crawl(root: str) -> Crawl:
    """Every route reachable from ``root`` by links, described by its own OPTIONS."""
    result = Crawl(root)
    origin = urlsplit(root).netloc
    entry = fetch(root)
    queue = [root] + [link["href"] for link in entry.get("links", [])]
    seen: set[str] = set()
    while queue:
        url = queue.pop(0)
        if url in seen or urlsplit(url).netloc != origin:
            continue
        seen.add(url)
        try:
            described = fetch(url, "OPTIONS", DESCRIPTION)
        except urllib.error.HTTPError as error:
            print(f"skipped {url}: OPTIONS answered {error.code}", file=sys.stderr)
            continue
        result.resources.setdefault(described["path"], described)
        for link in described.get("links", []):
            queue.append(link.get("example") or link["href"])
    errors = next((link["href"] for link in entry["links"] if link["rel"] == "errors"), None)
    if errors is not None:
        result.errors = fetch(errors)
    return result


# ---------------------------------------------------------------- rendering


@dataclass
class Table:
    head: list[str]
    rows: list[list[str]]


Block = tuple[str, Any]  # ("h1"|"h2"|"h3"|"p"|"code"|"table", content)


def blocks(found: Crawl) -> Iterator[Block]:
    yield "h1", f"API reference for {found.root}"
    yield (
        "p",
        (
            "Generated from the server's own OPTIONS descriptions. Commands are chosen by the "
            "`domain-model` parameter of the Content-Type; responses name theirs the same way."
        ),
    )
    yield (
        "table",
        Table(
            ["route", "methods"],
            [[f"`{path}`", ", ".join(d["allow"])] for path, d in sorted(found.resources.items())],
        ),
    )
    schemas: dict[str, Any] = {}
    for path, described in sorted(found.resources.items()):
        schemas.update(described.get("schemas", {}))
        yield "h2", f"`{path}`"
        for method in described["methods"]:
            yield "h3", f"{method['method']} `{path}`"
            yield "p", method["summary"]
            if method["accepts"]:
                yield (
                    "table",
                    Table(
                        ["domain-model", "Content-Type", "schema"],
                        [
                            [f"`{a['domainModel']}`", f"`{a['contentType']}`", _ref(a["schema"])]
                            for a in method["accepts"]
                        ],
                    ),
                )
                if not method["bodyRequired"]:
                    yield "p", "The body may be left out."
            if method["parameters"]:
                yield (
                    "table",
                    Table(
                        ["parameter", "in", "meaning"],
                        [
                            [f"`{p['name']}`", p["in"], p["description"]]
                            for p in method["parameters"]
                        ],
                    ),
                )
            yield (
                "table",
                Table(
                    ["status", "answers", "error codes"],
                    [
                        [
                            str(r["status"]),
                            f"`{r['domainModel']}`"
                            if "domainModel" in r
                            else r.get("contentType", r.get("description", "no body")),
                            ", ".join(str(c) for c in r.get("errorCodes", [])),
                        ]
                        for r in method["responses"]
                    ],
                ),
            )
            offered = [rep for r in method["responses"] for rep in r.get("representations", [])]
            if offered:
                yield (
                    "p",
                    "Representations on offer (choose with Accept; the first is the default):",
                )
                yield (
                    "table",
                    Table(
                        ["domain-model", "Content-Type", "schema"],
                        [
                            [f"`{o['domainModel']}`", f"`{o['contentType']}`", _ref(o["schema"])]
                            for o in offered
                        ],
                    ),
                )
    yield "h2", "Schemas"
    for name, schema in sorted(schemas.items()):
        yield "h3", name
        yield "code", json.dumps(schema, indent=2)
    if found.errors:
        yield "h2", "Error codes"
        yield (
            "table",
            Table(
                ["errorCode", "status", "title", "meaning"],
                [
                    [str(e["errorCode"]), str(e["status"]), e["title"], e["description"]]
                    for e in found.errors
                ],
            ),
        )


def _ref(schema: dict[str, Any]) -> str:
    return schema.get("$ref", "").rsplit("/", 1)[-1] or json.dumps(schema)


def markdown(found: Crawl) -> str:
    out: list[str] = []
    for kind, content in blocks(found):
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {content}\n")
        elif kind == "p":
            out.append(f"{content}\n")
        elif kind == "code":
            out.append(f"```json\n{content}\n```\n")
        else:
            cells = [content.head, ["---"] * len(content.head), *content.rows]
            lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
            out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def page(found: Crawl) -> str:
    out = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>API reference for {html.escape(found.root)}</title>",
        "<style>body{font:15px/1.5 system-ui;max-width:60rem;margin:auto;padding:1rem}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;"
        "padding:.2rem .5rem;text-align:left}pre{background:#f6f6f6;padding:.5rem}</style>",
    ]

    def inline(text: str) -> str:
        parts = html.escape(text).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    for kind, content in blocks(found):
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{inline(content)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{inline(content)}</p>")
        elif kind == "code":
            out.append(f"<pre>{html.escape(content)}</pre>")
        else:
            head = "".join(f"<th>{inline(c)}</th>" for c in content.head)
            body = "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>"
                for row in content.rows
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(out) + "\n</html>\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs", description=__doc__)
    parser.add_argument("root", help="the API's entry point, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--out", type=Path, default=Path("api-docs"), help="output directory")
    args = parser.parse_args(argv)
    try:
        found = crawl(urljoin(args.root, urlsplit(args.root).path))
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"cannot read {args.root}: {error}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "API.md").write_text(markdown(found))
    (args.out / "index.html").write_text(page(found))
    print(f"{len(found.resources)} routes -> {args.out / 'API.md'}, {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
