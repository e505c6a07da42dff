"""The production deploy files agree with the app and with each other.

Static checks only (no Docker daemon, no network): the compose files, ``deploy/.env.example``,
the systemd units and the Dockerfile are parsed and held against ``app.settings.VARIABLES``,
the ``Procfile`` and the EventStoreDB settings a secure node or cluster needs.
"""

from __future__ import annotations

import ast
import configparser
import functools
import json
import posixpath
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
import yaml

from app.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
ENV_EXAMPLE = DEPLOY / ".env.example"

SINGLE = "compose.yaml"
CLUSTER = "compose.cluster.yaml"
COMPOSE_FILES = [SINGLE, CLUSTER]
# The EventStoreDB services of each compose file.
NODES = {SINGLE: ["esdb"], CLUSTER: ["node1", "node2", "node3"]}
APP_SERVICES = ["web", "projector"]

ESDB_IMAGE = "eventstore/eventstore:24.10"
CERTS_IMAGE = "eventstore/es-gencert-cli:"
# What compose interpolation sees in these tests (stands in for deploy/.env).
INTERPOLATION_ENV = {"ESDB_ADMIN_PASSWORD": "admin-pw-1", "ESDB_OPS_PASSWORD": "ops-pw-2"}

INSTALL_DIR = "/opt/restful-cqrs"
STATE_DIR = "/var/lib/restful-cqrs"
UNITS = {"web": "restful-cqrs-web.service", "projector": "restful-cqrs-projector.service"}


# --- helpers: compose --------------------------------------------------------------------

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$`` on one string."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = not value if op and op.startswith(":") else value is None
        if op in (":-", "-"):
            return arg if unset_or_empty else str(value)
        if op in (":?", "?"):
            if unset_or_empty:
                raise LookupError(f"compose would refuse: {name}: {arg}")
            return str(value)
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return value or ""

    return _REFERENCE.sub(replace, text)


def referenced(value: Any) -> set[str]:
    """The variables a raw (not yet interpolated) compose value refers to."""
    if isinstance(value, dict):
        return set().union(*(referenced(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(referenced(v) for v in value)) if value else set()
    if isinstance(value, str):
        return {m["braced"] or m["bare"] for m in _REFERENCE.finditer(value) if not m["escaped"]}
    return set()


def _interpolated(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolated(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolated(v, env) for v in value]
    if isinstance(value, str):
        return interpolate(value, env)
    return value


@functools.cache
def raw_compose(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / name).read_text())
    assert isinstance(loaded, dict), name
    return loaded


@functools.cache
def compose(name: str) -> dict[str, Any]:
    """The compose file as compose runs it, with INTERPOLATION_ENV as its .env."""
    return _interpolated(raw_compose(name), INTERPOLATION_ENV)  # type: ignore[no-any-return]


def service(name: str, service_name: str) -> dict[str, Any]:
    services = compose(name)["services"]
    assert service_name in services, f"{name} has no service {service_name!r}"
    return services[service_name]  # type: ignore[no-any-return]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def env_files(svc: dict[str, Any]) -> list[Path]:
    files = svc.get("env_file") or []
    files = [files] if isinstance(files, str) else files
    return [DEPLOY / (f if isinstance(f, str) else f["path"]) for f in files]


def mounts(svc: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each of the service's volumes."""
    result = []
    for volume in svc.get("volumes") or []:
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            result.append((source, target, "ro" in "".join(mode).split(",")))
        else:
            read_only = bool(volume.get("read_only"))
            result.append((volume.get("source", ""), volume["target"], read_only))
    return result


def locate(name: str, svc: dict[str, Any], path: str) -> tuple[str, str]:
    """The named volume and the path inside it where the service's ``path`` lives."""
    declared = compose(name).get("volumes") or {}
    best: tuple[str, str] | None = None
    for source, target, _ in mounts(svc):
        inside = posixpath.relpath(path, target)
        on_volume = source in declared and not inside.startswith("..")
        if on_volume and (best is None or len(target) > len(best[1])):
            best = (source, target)
    assert best is not None, f"{path} is on no named volume of the service"
    return best[0], posixpath.normpath(posixpath.relpath(path, best[1]))


def certs_commands(name: str) -> list[list[str]]:
    """The es-gencert-cli invocations of the certs service, each as its arguments."""
    svc = service(name, "certs")
    parts = [*(svc.get("entrypoint") or []), *(svc.get("command") or [])]
    script = "\n".join(p for p in parts if isinstance(p, str))
    commands = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "es-gencert-cli":
            commands.append(words[1:])
    return commands


def flag(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def generated(name: str) -> dict[str, str]:
    """Which certs-volume directories the certs service fills: {'ca': 'ca', 'node1': 'node'}."""
    ((volume, target, read_only),) = mounts(service(name, "certs"))
    assert volume == "certs" and not read_only
    kinds = {}
    for args in certs_commands(name):
        out = posixpath.relpath(flag(args, "-out"), target)
        kinds[out] = {"create-ca": "ca", "create-node": "node"}[args[0]]
    return kinds


def parse_uri(uri: str) -> tuple[str, str, str, list[str], dict[str, str]]:
    """scheme, user, password, hosts, options of an esdb:// connection string."""
    scheme, _, rest = uri.partition("://")
    authority, _, query = rest.partition("?")
    userinfo, _, hostlist = authority.rpartition("@")
    user, _, password = userinfo.partition(":")
    options = {k.lower(): v[-1] for k, v in parse_qs(query, strict_parsing=True).items()}
    return scheme, unquote(user), unquote(password), hostlist.split(","), options


def seconds(duration: str) -> float:
    """'30', '30s', '1m30s', '1min' as seconds (compose and systemd durations)."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", duration.strip())
    assert parts, duration
    return sum(float(n) * units[u] for n, u in parts)


# --- helpers: the other files ------------------------------------------------------------


@functools.cache
def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip(): shlex.split(command) for name, command in entries}


@functools.cache
def graceful_timeout() -> float:
    """gunicorn's graceful_timeout: 20 s, or what deploy/gunicorn.conf.py says if more."""
    tree = ast.parse((DEPLOY / "gunicorn.conf.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "graceful_timeout" for t in node.targets
        ):
            try:
                return max(20.0, float(ast.literal_eval(node.value)))
            except ValueError:
                break
    return 20.0


_ASSIGNMENT = re.compile(r"^(?P<comment>#\s*)?(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


@functools.cache
def env_example() -> tuple[dict[str, str], set[str]]:
    """The assignments of .env.example, and the keys of commented-out assignments."""
    active: dict[str, str] = {}
    commented: set[str] = set()
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        stripped = line.strip()
        match = _ASSIGNMENT.match(stripped)
        if match and match["comment"]:
            commented.add(match["key"])
        elif match:
            assert match["key"] not in active, f"line {number}: {match['key']} set twice"
            active[match["key"]] = match["value"]
        else:
            assert not stripped or stripped.startswith("#"), f"line {number}: {line!r}"
    return active, commented


@functools.cache
def compose_only() -> set[str]:
    """Variables the compose files interpolate that the app itself never reads."""
    names = set().union(*(referenced(raw_compose(f)) for f in COMPOSE_FILES))
    return names - set(VARIABLES)


def unit(file_name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    assert parser.read(SYSTEMD / file_name), f"cannot read {file_name}"
    return parser


def unit_environment(service_section: configparser.SectionProxy) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(service_section.get("Environment", "")))


def without_install_paths(argv: list[str]) -> list[str]:
    """An installed command line, as the Procfile spells it (relative to the project)."""
    venv_bin = f"{INSTALL_DIR}/.venv/bin/"
    assert argv[0].startswith(venv_bin), f"{argv[0]} is not from the project's virtualenv"
    words = [argv[0].removeprefix(venv_bin)]
    for word in argv[1:]:
        words.append(word.removeprefix(INSTALL_DIR + "/") if word.startswith("/") else word)
    return words


@functools.cache
def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined: [(INSTRUCTION, arguments)]."""
    instructions, pending = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def instruction(keyword: str) -> list[str]:
    return [arguments for kw, arguments in dockerfile() if kw == keyword]


# --- compose: every service --------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_has_the_services(name: str) -> None:
    services = set(compose(name)["services"])
    assert services == {"certs", *NODES[name], *APP_SERVICES}


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_uses_the_official_images(name: str) -> None:
    assert service(name, "certs")["image"].startswith(CERTS_IMAGE)
    for node in NODES[name]:
        assert service(name, node)["image"] == ESDB_IMAGE
    for app in APP_SERVICES:
        build = service(name, app)["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert build["dockerfile"] == "deploy/Dockerfile"
    assert service(name, "web")["image"] == service(name, "projector")["image"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
@pytest.mark.parametrize("app", APP_SERVICES)
def test_app_services_get_only_the_apps_variables(name: str, app: str) -> None:
    svc = service(name, app)
    unknown = set(environment(svc)) - set(VARIABLES)
    assert not unknown, f"{app} is given variables the app does not read: {unknown}"
    # env_file is deploy/.env, the copy of .env.example: the app's variables, plus the
    # compose-only passwords the containers are handed too and ignore.
    assert env_files(svc) == [DEPLOY / ".env"]
    active, commented = env_example()
    unknown = (set(active) | commented) - set(VARIABLES) - compose_only()
    assert not unknown, f".env.example has keys nobody reads: {unknown}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_app_services_run_the_procfile_commands(name: str) -> None:
    (cmd,) = (json.loads(args) for args in instruction("CMD"))
    web = service(name, "web").get("command", cmd)
    assert web == procfile()["web"]
    assert service(name, "projector")["command"] == procfile()["projector"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_web_and_projector_share_the_data_directory(name: str) -> None:
    web, projector = (service(name, app) for app in APP_SERVICES)
    data_dir = environment(web)["DATA_DIR"]
    assert environment(projector)["DATA_DIR"] == data_dir
    web_volume = locate(name, web, data_dir)
    assert web_volume == locate(name, projector, data_dir)
    assert web_volume[1] == "."  # the volume is DATA_DIR itself
    for svc in (web, projector):
        assert [ro for _, target, ro in mounts(svc) if target == data_dir] == [False]
    assert web_volume[0] not in {s for n in NODES[name] for s, *_ in mounts(service(name, n))}


@pytest.mark.parametrize("name", COMPOSE_FILES)
@pytest.mark.parametrize("app", APP_SERVICES)
def test_app_services_run_for_production(name: str, app: str) -> None:
    svc = service(name, app)
    env = environment(svc)
    assert env["HOST"] == "0.0.0.0"
    assert svc["restart"] == "unless-stopped"
    assert seconds(svc["stop_grace_period"]) > graceful_timeout()
    assert svc.get("stop_signal", "SIGTERM") == "SIGTERM"
    depends = svc["depends_on"]
    for node in NODES[name]:
        assert depends[node]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_web_is_published_and_checked_for_readiness(name: str) -> None:
    raw_web = raw_compose(name)["services"]["web"]
    web = service(name, "web")
    assert raw_web["ports"] == ["${PORT:-8000}:8000"]
    assert environment(web).get("PORT", VARIABLES["PORT"]) == "8000"
    test = web["healthcheck"]["test"]
    assert test[0] == "CMD" and "/readyz" in " ".join(test)
    assert service(name, "projector")["healthcheck"] == {"disable": True}


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_esdb_uri_is_secure_and_names_the_nodes(name: str) -> None:
    uris = {app: environment(service(name, app))["ESDB_URI"] for app in APP_SERVICES}
    assert uris["web"] == uris["projector"]
    scheme, user, password, hosts, options = parse_uri(uris["web"])
    assert scheme == "esdb"
    assert options["tls"] == "true"
    assert "tlsverifycert" not in options
    # admin reads $all; the password is the one the nodes were created with.
    assert user == "admin"
    assert password == INTERPOLATION_ENV["ESDB_ADMIN_PASSWORD"]
    assert hosts == [f"{node}:2113" for node in NODES[name]]
    if len(hosts) > 1:
        assert options["nodepreference"] == "leader"
    # The CA certificate the certs service creates, on the read-only certs volume.
    for app in APP_SERVICES:
        svc = service(name, app)
        volume, inside = locate(name, svc, options["tlscafile"])
        assert (volume, posixpath.basename(inside)) == ("certs", "ca.crt")
        assert generated(name)[posixpath.dirname(inside)] == "ca"
        assert all(ro for source, _, ro in mounts(svc) if source == "certs")


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_requires_the_passwords(name: str) -> None:
    admin, ops = "ESDB_ADMIN_PASSWORD", "ESDB_OPS_PASSWORD"
    with pytest.raises(LookupError, match=admin):
        _interpolated(raw_compose(name), {ops: "x"})
    with pytest.raises(LookupError, match=ops):
        _interpolated(raw_compose(name), {admin: "x"})
    with pytest.raises(LookupError, match=admin):
        _interpolated(raw_compose(name), {admin: "", ops: "x"})  # empty is missing too
    for node in NODES[name]:
        raw = raw_compose(name)["services"][node]["environment"]
        assert raw["EVENTSTORE_DEFAULT_ADMIN_PASSWORD"].startswith("${ESDB_ADMIN_PASSWORD:?")
        assert raw["EVENTSTORE_DEFAULT_OPS_PASSWORD"].startswith("${ESDB_OPS_PASSWORD:?")


# --- compose: EventStoreDB -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "node"), [(name, node) for name in COMPOSE_FILES for node in NODES[name]]
)
def test_esdb_node_is_secure(name: str, node: str) -> None:
    svc = service(name, node)
    env = environment(svc)
    assert all(key.startswith("EVENTSTORE_") for key in env), sorted(env)
    assert env.get("EVENTSTORE_INSECURE", "false").lower() == "false"
    assert env["EVENTSTORE_CLUSTER_SIZE"] == str(len(NODES[name]))
    # System projections on, for the $ce-/$bc- streams people inspect.
    assert env["EVENTSTORE_RUN_PROJECTIONS"] == "System"
    assert env["EVENTSTORE_START_STANDARD_PROJECTIONS"] == "true"
    assert env["EVENTSTORE_DEFAULT_ADMIN_PASSWORD"] == INTERPOLATION_ENV["ESDB_ADMIN_PASSWORD"]
    assert env["EVENTSTORE_DEFAULT_OPS_PASSWORD"] == INTERPOLATION_ENV["ESDB_OPS_PASSWORD"]
    # Certificate, key and CA: files the certs service writes to the volume mounted here.
    kinds = generated(name)
    cert_volume, cert = locate(name, svc, env["EVENTSTORE_CERTIFICATE_FILE"])
    key_volume, key = locate(name, svc, env["EVENTSTORE_CERTIFICATE_PRIVATE_KEY_FILE"])
    ca_volume, ca = locate(name, svc, env["EVENTSTORE_TRUSTED_ROOT_CERTIFICATES_PATH"])
    assert cert_volume == key_volume == ca_volume == "certs"
    assert posixpath.dirname(cert) == posixpath.dirname(key)
    assert (posixpath.basename(cert), posixpath.basename(key)) == ("node.crt", "node.key")
    assert kinds[posixpath.dirname(cert)] == "node"
    assert kinds[ca] == "ca"
    assert svc["depends_on"]["certs"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize(
    ("name", "node"), [(name, node) for name in COMPOSE_FILES for node in NODES[name]]
)
def test_esdb_node_keeps_its_data_and_reports_health(name: str, node: str) -> None:
    svc = service(name, node)
    data = [source for source, target, _ in mounts(svc) if target == "/var/lib/eventstore"]
    assert len(data) == 1 and data[0] in compose(name)["volumes"]
    others = [n for n in NODES[name] if n != node]
    assert all(data[0] not in {s for s, *_ in mounts(service(name, n))} for n in others)
    test = " ".join(svc["healthcheck"]["test"])
    assert "curl" in test and "https://localhost:2113/health/live" in test
    assert svc["restart"] == "unless-stopped"
    for port in svc.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{node} publishes {port} beyond this host"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_certs_service_makes_a_ca_and_a_certificate_per_node(name: str) -> None:
    svc = service(name, "certs")
    assert svc["user"] == "root"
    assert svc.get("restart", "no") == "no"
    commands = certs_commands(name)
    assert [args[0] for args in commands] == ["create-ca"] + ["create-node"] * len(NODES[name])
    ca_out = flag(commands[0], "-out")
    for node, args in zip(NODES[name], commands[1:], strict=True):
        assert flag(args, "-ca-certificate") == f"{ca_out}/ca.crt"
        assert flag(args, "-ca-key") == f"{ca_out}/ca.key"
        assert {"localhost", node} <= set(flag(args, "-dns-names").split(","))
        assert "127.0.0.1" in flag(args, "-ip-addresses").split(",")
        # this node's certificate is the one the node loads
        cert = environment(service(name, node))["EVENTSTORE_CERTIFICATE_FILE"]
        assert locate(name, service(name, node), cert)[1] == posixpath.relpath(
            f"{flag(args, '-out')}/node.crt", mounts(svc)[0][1]
        )
    # once only: a later `up` keeps the certificates the nodes already trust
    script = " ".join(svc["command"])
    assert re.search(r"if \[ -f \S+ \]; then .*exit 0; fi", script)


def test_cluster_nodes_gossip_with_each_other() -> None:
    nodes = NODES[CLUSTER]
    assert len(nodes) == 3
    networks = compose(CLUSTER)["networks"]
    for node in nodes:
        svc = service(CLUSTER, node)
        env = environment(svc)
        others = [f"{other}:2113" for other in nodes if other != node]
        assert sorted(env["EVENTSTORE_GOSSIP_SEED"].split(",")) == others
        assert env["EVENTSTORE_DISCOVER_VIA_DNS"] == "false"
        # Replication on the node's fixed address, advertised under its certificate's name.
        ((network, settings),) = svc["networks"].items()
        assert network in networks
        assert env["EVENTSTORE_REPLICATION_IP"] == settings["ipv4_address"]
        assert env["EVENTSTORE_REPLICATION_HOST_ADVERTISE_AS"] == node
        assert env["EVENTSTORE_NODE_HOST_ADVERTISE_AS"] == node
    addresses = [service(CLUSTER, n)["networks"] for n in nodes]
    assert len({next(iter(a.values()))["ipv4_address"] for a in addresses}) == 3


# --- .env.example --------------------------------------------------------------------------


def test_env_example_has_no_stale_keys() -> None:
    active, commented = env_example()
    stale = (set(active) | commented) - set(VARIABLES) - compose_only()
    assert not stale, f"neither the app nor the compose files read {stale}"


def test_env_example_defines_what_compose_requires() -> None:
    active, _ = env_example()
    assert compose_only(), "the compose files interpolate no variable of their own?"
    assert compose_only() <= set(active)
    for name in COMPOSE_FILES:
        # with .env.example's values (passwords filled in), every interpolation resolves
        _interpolated(raw_compose(name), {**active, **INTERPOLATION_ENV})


def test_env_example_mentions_every_app_variable() -> None:
    text = ENV_EXAMPLE.read_text()
    missing = [name for name in VARIABLES if not re.search(rf"\b{name}\b", text)]
    assert not missing, f"say something about {missing} in .env.example"


@pytest.mark.parametrize(
    ("key", "value"),
    [("REQUIRE_AUTH", "true"), ("ESDB_ADMIN_PASSWORD", ""), ("ESDB_OPS_PASSWORD", "")],
)
def test_env_example_production_values(key: str, value: str) -> None:
    active, _ = env_example()
    assert active[key] == value


def test_env_example_api_keys_file_is_the_webs_secret() -> None:
    active, _ = env_example()
    path = active["API_KEYS_FILE"]
    assert path.startswith("/run/secrets/")
    secret = posixpath.basename(path)
    for name in COMPOSE_FILES:
        assert secret in service(name, "web")["secrets"]
        assert compose(name)["secrets"][secret]["file"]


def test_env_example_etag_key_placeholder() -> None:
    active, _ = env_example()
    assert active["ETAG_KEY"] == ""  # empty: the shared key file in DATA_DIR
    assert "secrets.token_hex(64)" in ENV_EXAMPLE.read_text()


def test_env_example_is_committed_and_env_is_not() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git work tree")

    def ignored(path: str) -> bool:
        check = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=ROOT, check=False, capture_output=True
        )
        assert check.returncode in (0, 1), check.stderr
        return check.returncode == 0

    assert ignored("deploy/.env")
    assert ignored("deploy/api-keys")
    assert not ignored("deploy/.env.example")


# --- systemd ------------------------------------------------------------------------------


@pytest.mark.parametrize(("process", "file_name"), UNITS.items())
def test_unit_runs_the_procfile_command(process: str, file_name: str) -> None:
    section = unit(file_name)["Service"]
    assert without_install_paths(shlex.split(section["ExecStart"])) == procfile()[process]
    assert section["WorkingDirectory"] == INSTALL_DIR


@pytest.mark.parametrize("file_name", UNITS.values())
def test_unit_environment_and_state(file_name: str) -> None:
    section = unit(file_name)["Service"]
    assert section["EnvironmentFile"] == "/etc/restful-cqrs/env"
    assert section["User"] == "restful-cqrs"
    assert section["StateDirectory"] == "restful-cqrs"
    assert unit_environment(section)["DATA_DIR"] == STATE_DIR
    assert set(unit_environment(section)) - set(VARIABLES) <= {
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
    }


@pytest.mark.parametrize("file_name", UNITS.values())
def test_unit_stops_gracefully_and_restarts(file_name: str) -> None:
    section = unit(file_name)["Service"]
    assert section["KillSignal"] == "SIGTERM"
    assert seconds(section["TimeoutStopSec"]) > graceful_timeout()
    assert section["Restart"] == "on-failure"
    assert seconds(section["RestartSec"]) == 2


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NoNewPrivileges", "true"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "true"),
        ("ProtectHome", "true"),
    ],
)
@pytest.mark.parametrize("file_name", UNITS.values())
def test_unit_is_hardened(file_name: str, key: str, value: str) -> None:
    section = unit(file_name)["Service"]
    assert section[key] == value
    assert STATE_DIR in section["ReadWritePaths"].split()


def test_projector_does_not_restart_on_misconfiguration() -> None:
    section = unit(UNITS["projector"])["Service"]
    assert {"2", "3"} <= set(section["RestartPreventExitStatus"].split())
    assert "RestartPreventExitStatus" not in unit(UNITS["web"])["Service"]


def test_target_groups_both_units() -> None:
    target = unit("restful-cqrs.target")
    assert set(target["Unit"]["Wants"].split()) == set(UNITS.values())
    for file_name in UNITS.values():
        assert unit(file_name)["Unit"]["PartOf"] == "restful-cqrs.target"


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_cmd_is_the_procfile_web_command() -> None:
    (cmd,) = instruction("CMD")
    assert json.loads(cmd) == procfile()["web"]


def test_dockerfile_builds_a_non_root_image_of_the_project() -> None:
    assert instruction("FROM") == ["python:3.11-slim"]
    assert instruction("WORKDIR") == ["/app"]
    installs = [run.split("&&")[-1].strip() for run in instruction("RUN")]
    assert "pip install --no-cache-dir ." in installs
    (user,) = instruction("USER")
    assert user.split(":")[0] not in {"root", "0"}
    assert instruction("EXPOSE") == ["8000"]
    env = dict(word.split("=", 1) for line in instruction("ENV") for word in shlex.split(line))
    assert env["HOST"] == "0.0.0.0"
    assert env["DATA_DIR"] == "/data"
    assert all(k in VARIABLES or k.startswith(("PYTHON", "PIP_")) for k in env), sorted(env)
    (healthcheck,) = instruction("HEALTHCHECK")
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert probe[:2] == ["python", "-c"]
    assert "urllib" in probe[2] and "/healthz" in probe[2]


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", "deploy/.env"} <= patterns
    assert any("__pycache__" in p for p in patterns)
