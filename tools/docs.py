"""``python -m tools.docs http://127.0.0.1:8000/v1``: documentation learned from a live server.

It knows only the root URL (and, where the API wants one, an API key: ``--key`` or
``$API_KEY``). It follows the entry point's links, asks each route OPTIONS with
``Accept: application/json; domain-model=ResourceDescription``, follows the links those
descriptions give (item routes are templated; each comes with an example URL to ask), reads
the error-code pages, and writes ``API.md`` and a single static ``index.html``: a linked table
of contents, an anchor for every route, method, representation and error code, a curl example
per method (and per command it accepts) built from the same descriptions, and every error
code linked to its explanation and to the API's own page for it.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shlex
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
    examples: dict[str, str] = field(default_factory=dict)  # path template -> a URL to ask


def fetch(
    url: str, method: str = "GET", accept: str = "application/json", key: str | None = None
) -> Any:
    headers = {"Accept": accept}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def crawl(root: str, key: str | None = None) -> Crawl:
    """Every route reachable from ``root`` by links, described by its own OPTIONS."""
    result = Crawl(root)
    origin = urlsplit(root).netloc
    try:
        entry = fetch(root, key=key)
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise ValueError("the entry point wants an API key (--key or $API_KEY)") from None
        raise
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
        result.examples.setdefault(described["path"], url)
        for link in described.get("links", []):
            queue.append(link.get("example") or link["href"])
    errors = next((link["href"] for link in entry["links"] if link["rel"] == "errors"), None)
    if errors is not None:
        result.errors = fetch(errors, key=key)
    return result


# ---------------------------------------------------------------- examples from schemas

UUID = "7f0c6b5e-2d4a-4f1e-9a57-3c2b1d0e9f8a"


def example(schema: dict[str, Any], schemas: dict[str, Any], name: str = "") -> Any:
    """A value that fits ``schema`` (JSON Schema as ``schema_components`` writes it)."""
    if "$ref" in schema:
        return example(schemas.get(schema["$ref"].rsplit("/", 1)[-1], {}), schemas, name)
    for keyword in ("examples", "enum"):
        if schema.get(keyword):
            return schema[keyword][0]
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        usable = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return example(usable[0], schemas, name) if usable else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        wanted = schema.get("required") or list(properties)
        return {p: example(properties[p], schemas, p) for p in wanted if p in properties}
    if kind == "array":
        return [example(schema.get("items", {}), schemas, name)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
        return max(low, min(1, schema.get("maximum", 1)))
    if kind == "boolean":
        return True
    if kind == "string":
        return _string(schema, name)
    return None


def _string(schema: dict[str, Any], name: str) -> str:
    if schema.get("format") == "uuid":
        return UUID
    if schema.get("format") == "date-time":
        return "2024-01-01T00:00:00Z"
    candidates = [_from_pattern(schema.get("pattern", "")), f"An example {name}".strip()]
    low: int = schema.get("minLength", 0)
    high: int = schema.get("maxLength", 1 << 30)
    for candidate in candidates:
        if candidate is None or not low <= len(candidate) <= high:
            continue
        try:
            if re.search(schema.get("pattern", ""), candidate):
                return candidate
        except re.error:
            return candidate
    return "x" * max(low, 1)


def _from_pattern(pattern: str) -> str | None:
    """A string matching a simple pattern: literals and ``[class]`` atoms, each optionally
    repeated ``{n}``/``{n,m}``, anchored by ``^...$``; None for anything richer."""
    body = pattern.removeprefix("^").removesuffix("$")
    atom = re.compile(r"(\[[^\]^\\]+\]|[A-Za-z0-9_-])(\{(\d+)(?:,\d*)?\})?")
    out, at = [], 0
    while at < len(body):
        found = atom.match(body, at)
        if found is None:
            return None
        chars = found.group(1)
        if chars.startswith("["):
            chars = "".join(
                "".join(map(chr, range(ord(a), ord(b) + 1))) if b else a
                for a, b in re.findall(r"(.)(?:-(.))?", chars[1:-1])
            )
        count = int(found.group(3) or 1)
        out.append("".join(chars[i % len(chars)] for i in range(count)))
        at = found.end()
    return "".join(out)


def curls(method: dict[str, Any], url: str, schemas: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(title, command) for each way of calling ``method`` on ``url``, from its description."""
    verb = method["method"]
    statuses = {r["status"] for r in method["responses"]}
    base = ["curl", "-i"]
    if verb == "HEAD":
        base = ["curl", "-I"]
    elif verb != "GET":
        base += ["-X", verb]
    base.append(url)
    headers: list[str] = []
    if 401 in statuses:
        headers.append('"Authorization: Bearer $API_KEY"')
    if verb == "OPTIONS":
        headers.append(shlex.quote(f"Accept: {DESCRIPTION}"))
    offered = [rep for r in method["responses"] for rep in r.get("representations", [])]
    if offered:
        headers.append(shlex.quote(f"Accept: {offered[0]['contentType']}"))
    if "If-Match" in method.get("preconditions", []):
        headers.append('"If-Match: $ETAG"')

    def command(extra: list[str], body: str | None) -> str:
        words = [*base, *(f"-H {h}" for h in [*headers, *extra])]
        if body is not None:
            words.append(f"-d {shlex.quote(body)}")
        return " \\\n  ".join([" ".join(words[: len(base)]), *words[len(base) :]])

    if not method["accepts"]:
        yield "", command([], None)
        return
    for accepted in method["accepts"]:
        body = json.dumps(example(accepted["schema"], schemas), separators=(",", ":"))
        content_type = shlex.quote(f"Content-Type: {accepted['contentType']}")
        title = accepted["domainModel"] if len(method["accepts"]) > 1 else ""
        yield title, command([content_type], body)


# OPTIONS is on every route but not among the methods a description lists (it is the
# description): its example is the request this generator makes.
OPTIONS: dict[str, Any] = {"method": "OPTIONS", "accepts": [], "responses": []}

# ---------------------------------------------------------------- rendering


@dataclass
class Table:
    head: list[str]
    rows: list[list[str]]


@dataclass
class Heading:
    text: str
    anchor: str


@dataclass
class Contents:
    entries: list[tuple[int, str, str]]  # (depth, text, anchor)


# ("h1"|"h2"|"h3"|"p"|"code"|"curl"|"table"|"toc", content). Text may hold `code` and
# [links](#anchor); headings are Heading, tables Table, the table of contents Contents.
Block = tuple[str, Any]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def route_anchor(path: str) -> str:
    return f"route-{slug(path)}"


def method_anchor(method: str, path: str) -> str:
    return f"{method.lower()}-{slug(path)}"


def blocks(found: Crawl) -> Iterator[Block]:
    routes = sorted(found.resources.items())
    schemas: dict[str, Any] = {}
    for _, described in routes:
        schemas.update(described.get("schemas", {}))
    titles = {e["errorCode"]: e["title"] for e in found.errors}

    def schema_link(schema: dict[str, Any]) -> str:
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        return f"[{name}](#schema-{slug(name)})" if name in schemas else f"`{json.dumps(schema)}`"

    def status_link(response: dict[str, Any]) -> str:
        """An error status links to its (first) error code's explanation."""
        codes = response.get("errorCodes", [])
        return f"[{response['status']}](#error-{codes[0]})" if codes else str(response["status"])

    def code_link(code: int) -> str:
        title = titles.get(code)
        return f"[{code}](#error-{code})" + (f" {title}" if title else "")

    yield "h1", Heading(f"API reference for {found.root}", "top")
    yield (
        "p",
        (
            "Generated from the server's own OPTIONS descriptions. Commands are chosen by the "
            "`domain-model` parameter of the Content-Type; responses name theirs the same way. "
            "The curl examples are built from the same descriptions: `$API_KEY` is your key, "
            "`$ETAG` the ETag a GET of the resource answered, and each body is generated from "
            "its JSON Schema (rules that span fields, such as which models a make has, are "
            "the server's to check)."
        ),
    )
    entries: list[tuple[int, str, str]] = [(0, "Routes", "routes")]
    for path, described in routes:
        entries.append((1, f"`{path}`", route_anchor(path)))
        entries += [
            (2, m["method"], method_anchor(m["method"], path)) for m in described["methods"]
        ]
        entries.append((2, "OPTIONS", method_anchor("OPTIONS", path)))
    entries.append((0, "Representations (schemas)", "schemas"))
    entries += [(1, name, f"schema-{slug(name)}") for name in sorted(schemas)]
    if found.errors:
        entries.append((0, "Error codes", "errors"))
        entries += [
            (1, f"{e['errorCode']} {e['title']}", f"error-{e['errorCode']}") for e in found.errors
        ]
    yield "toc", Contents(entries)
    yield "h2", Heading("Routes", "routes")
    yield (
        "table",
        Table(
            ["route", "methods"],
            [
                [
                    f"[`{path}`](#{route_anchor(path)})",
                    ", ".join(
                        f"[{m}](#{method_anchor(m, path)})"
                        if m == "OPTIONS" or any(x["method"] == m for x in d["methods"])
                        else m
                        for m in d["allow"]
                    ),
                ]
                for path, d in routes
            ],
        ),
    )
    for path, described in routes:
        yield "h2", Heading(f"`{path}`", route_anchor(path))
        url = found.examples.get(path, urljoin(found.root, path))
        yield "h3", Heading(f"OPTIONS `{path}`", method_anchor("OPTIONS", path))
        yield (
            "p",
            "Describe this route (no key needed): its methods, what each accepts and answers, "
            "its links. This page is built from these answers. Without this Accept, OPTIONS "
            "answers `Allow` and the JSON array of the methods.",
        )
        yield "curl", next(curls(OPTIONS, url, schemas))[1]
        for method in described["methods"]:
            yield (
                "h3",
                Heading(f"{method['method']} `{path}`", method_anchor(method["method"], path)),
            )
            yield "p", method["summary"]
            for title, command in curls(method, url, schemas):
                if title:
                    yield "p", f"`{title}`:"
                yield "curl", command
            if method["accepts"]:
                yield (
                    "table",
                    Table(
                        ["domain-model", "Content-Type", "schema"],
                        [
                            [
                                f"`{a['domainModel']}`",
                                f"`{a['contentType']}`",
                                schema_link(a["schema"]),
                            ]
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
                            status_link(r),
                            f"`{r['domainModel']}`"
                            if "domainModel" in r
                            else r.get("contentType", r.get("description", "no body")),
                            ", ".join(code_link(c) for c in r.get("errorCodes", [])),
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
                            [
                                f"`{o['domainModel']}`",
                                f"`{o['contentType']}`",
                                schema_link(o["schema"]),
                            ]
                            for o in offered
                        ],
                    ),
                )
    yield "h2", Heading("Representations (schemas)", "schemas")
    for name, schema in sorted(schemas.items()):
        yield "h3", Heading(name, f"schema-{slug(name)}")
        yield "code", json.dumps(schema, indent=2)
    if found.errors:
        yield "h2", Heading("Error codes", "errors")
        yield (
            "p",
            "Every error is `application/problem+json` with this `errorCode`; its "
            "`additionalInformation` is the API's page for the code, linked here.",
        )
        for e in found.errors:
            yield "h3", Heading(f"{e['errorCode']} {e['title']}", f"error-{e['errorCode']}")
            page = next(
                (link["href"] for link in e.get("links", []) if link["rel"] == "self"), None
            )
            yield (
                "p",
                f"Status {e['status']}. {e['description']}"
                + (f" The API's page: [{page}]({page})." if page else ""),
            )


LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def markdown(found: Crawl) -> str:
    out: list[str] = []
    for kind, content in blocks(found):
        if kind in ("h1", "h2", "h3"):
            out.append(f'<a id="{content.anchor}"></a>\n\n{"#" * int(kind[1])} {content.text}\n')
        elif kind == "p":
            out.append(f"{content}\n")
        elif kind == "toc":
            out.append("\n".join(f"{'  ' * d}- [{t}](#{a})" for d, t, a in content.entries) + "\n")
        elif kind in ("code", "curl"):
            out.append(f"```{'json' if kind == 'code' else 'sh'}\n{content}\n```\n")
        else:
            cells = [content.head, ["---"] * len(content.head), *content.rows]
            lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
            out.append("\n".join(lines) + "\n")
    return "\n".join(out)


STYLE = """
:root{color-scheme:light}
body{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:auto;padding:0 1rem 3rem;
  color:#1d1f23;overflow-wrap:break-word}
a{color:#1f5fbf}
h1{font-size:1.5rem}h2{margin-top:2.2rem;border-bottom:1px solid #ccc}h3{margin-top:1.6rem}
:target{scroll-margin-top:.5rem;background:#fff6d5}
code,pre{font:13px/1.45 ui-monospace,Menlo,Consolas,monospace}
pre{background:#f4f5f7;padding:.6rem;overflow-x:auto;white-space:pre-wrap}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
nav.toc ul{padding-left:1.2rem;margin:.2rem 0}
nav.toc li{break-inside:avoid}
nav.toc li ul:has(.methods){display:inline;padding:0}
nav.toc li.methods{display:inline;list-style:none;margin-left:.5rem}
nav.toc li.methods a{margin-right:.5rem;font-size:.9rem}
.top{font-size:.85rem;float:right}
@media (max-width:40rem){body{padding:0 .6rem 2rem;overflow-wrap:anywhere}td,th{padding:.2rem .3rem}
  table,tbody,tr{display:block;width:100%}tr:first-child{display:none}
  tr{border:1px solid #ccc;margin:.4rem 0}td{display:block;border:0}
  td::before{content:attr(data-label) ": ";font-weight:600}td:empty{display:none}}
"""


def page(found: Crawl) -> str:
    out = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>API reference for {html.escape(found.root)}</title>",
        f"<style>{STYLE}</style>",
    ]

    def inline(text: str) -> str:
        pieces = []
        at = 0
        for link in LINK.finditer(text):
            pieces.append(_code(text[at : link.start()]))
            href = html.escape(link.group(2), quote=True)
            pieces.append(f'<a href="{href}">{_code(link.group(1))}</a>')
            at = link.end()
        pieces.append(_code(text[at:]))
        return "".join(pieces)

    for kind, content in blocks(found):
        if kind in ("h1", "h2", "h3"):
            top = '<a class=top href="#contents">contents</a>' if kind != "h1" else ""
            out.append(f'<{kind} id="{content.anchor}">{inline(content.text)}{top}</{kind}>')
        elif kind == "p":
            out.append(f"<p>{inline(content)}</p>")
        elif kind == "toc":
            out.append(_contents(content, inline))
        elif kind in ("code", "curl"):
            out.append(f"<pre>{html.escape(content)}</pre>")
        else:
            head = "".join(f"<th>{inline(c)}</th>" for c in content.head)
            body = "".join(
                "<tr>"
                + "".join(
                    f'<td data-label="{html.escape(h)}">{inline(c)}</td>'
                    for h, c in zip(content.head, row, strict=True)
                )
                + "</tr>"
                for row in content.rows
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(out) + "\n</html>\n"


def _code(text: str) -> str:
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _contents(toc: Contents, inline: Any) -> str:
    """Each route on a line with its methods; representations and errors folded away."""
    out = ['<nav class=toc id=contents aria-label="Contents"><h2>Contents</h2><ul>']
    sections: list[tuple[str, str, list[list[str]]]] = []
    for depth, text, target in toc.entries:
        link = f'<a href="#{target}">{inline(text)}</a>'
        if depth == 0:
            sections.append((text, target, []))
        elif depth == 1:
            sections[-1][2].append([link])
        else:
            sections[-1][2][-1].append(link)
    for title, anchor, items in sections:
        heading = f'<a href="#{anchor}">{html.escape(title)}</a>'
        lines = "".join(
            f"<li>{first}"
            + (f"<ul><li class=methods>{' '.join(rest)}</li></ul>" if rest else "")
            + "</li>"
            for first, *rest in items
        )
        if anchor == "routes":
            out.append(f"<li>{heading}<ul>{lines}</ul></li>")
        else:
            out.append(
                f"<li><details><summary>{heading} ({len(items)})</summary>"
                f"<ul>{lines}</ul></details></li>"
            )
    out.append("</ul></nav>")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs", description=__doc__)
    parser.add_argument("root", help="the API's entry point, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--out", type=Path, default=Path("api-docs"), help="output directory")
    parser.add_argument(
        "--key",
        default=os.environ.get("API_KEY"),
        help="an API key (read scope) for the entry point and the error list; default $API_KEY",
    )
    args = parser.parse_args(argv)
    try:
        found = crawl(urljoin(args.root, urlsplit(args.root).path), args.key)
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
