"""The production-like deployment, checked statically: docker-compose.yaml, Dockerfile, .env.example, .dockerignore.

There is no Docker engine where this suite runs, so nothing here builds or starts a container.
What is checked instead: the compose file has Airflow 3.3's CeleryExecutor layout with
healthchecks and ordered start-up, both modes are wired, every variable is documented and no
secret has a literal value; the image installs the provider with the same uv, constraints
file and command as `make install`, from the Airflow version those constraints pin; and the
build context leaves local state and secrets out. `docker compose config` runs when a compose
CLI is available.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.get_provider_info import get_provider_info
from tests.paths import REPO

COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / ".env.example"
MAKEFILE = REPO / "Makefile"
CONSTRAINTS = REPO / "requirements" / "constraints.txt"

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
BACKING_SERVICES = ("postgres", "redis")
LONG_RUNNING = (*BACKING_SERVICES, *AIRFLOW_SERVICES)
REQUIRED = (*LONG_RUNNING, "airflow-init")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

#: Names of values that are secrets: they must come from .env with no default.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET", re.IGNORECASE)
#: Names that look sensitive anywhere (keys, tokens): never a literal value.
SENSITIVE_NAME = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$|TOKEN", re.IGNORECASE)
_VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


# --- loading ---------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, Any]:
    return compose()["services"]


def env_of(service: str) -> dict[str, str]:
    """A service's environment as its container gets it: its env_file(s), then ``environment``."""
    from tests.e2e.layout import read_layout

    out: dict[str, str] = {}
    env_files = services()[service].get("env_file", [])
    for name in [env_files] if isinstance(env_files, str) else env_files:
        out.update(read_layout(REPO / name))
    env = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping so anchors can merge it"
    return out | {k: "" if v is None else str(v) for k, v in env.items()}


def volumes_of(service: str) -> dict[str, str]:
    """Container path -> source (host path or named volume) of a service's short-syntax volumes."""
    out = {}
    for spec in services()[service].get("volumes", []):
        source, target, *_ = _VAR_REF.sub(lambda m: f"VAR({m.group(1)})", spec).split(":")
        out[target] = source
    return out


@cache
def env_example() -> dict[str, dict[str, Any]]:
    """Each variable of .env.example: its active value (None if only commented out), its
    commented-out example values, and whether a comment in its block documents it."""
    found: dict[str, dict[str, Any]] = {}
    block_has_comment = False
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        assignment = re.match(r"^(#\s*)?([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if not line:
            block_has_comment = False
        elif assignment:
            commented, name, value = assignment.groups()
            entry = found.setdefault(name, {"value": None, "examples": [], "documented": False})
            if commented:
                entry["examples"].append(_unquote(value))
            else:
                entry["value"] = _unquote(value)
            entry["documented"] = entry["documented"] or block_has_comment
        elif line.startswith("#") and line.strip("# -"):
            block_has_comment = True
    return found


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def compose_variables() -> dict[str, set[str]]:
    """Every ${VAR} docker-compose.yaml interpolates -> the operators it is used with ('' for none)."""
    out: dict[str, set[str]] = {}
    text = "\n".join(ln for ln in COMPOSE.read_text(encoding="utf-8").splitlines() if not ln.lstrip().startswith("#"))
    for m in _VAR_REF.finditer(text):
        out.setdefault(m.group(1), set()).add(m.group(2) or "")
    return out


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line[:-1].strip()}" if line.endswith("\\") else f"{current} {line}"
        if not line.endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
            current = ""
    return out


def dockerfile_args() -> dict[str, str]:
    args = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = _unquote(value)
    return args


def pinned(package: str) -> str:
    m = re.search(rf"^{re.escape(package)}==(\S+)$", CONSTRAINTS.read_text(encoding="utf-8"), re.MULTILINE)
    assert m, f"{package} is not pinned in {CONSTRAINTS.relative_to(REPO)}"
    return m.group(1)


def makefile_var(name: str) -> str:
    m = re.search(rf"^{name}\s*:?=\s*(\S+)\s*$", MAKEFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert m, f"Makefile defines no {name}"
    return m.group(1)


def uv_install_args(command: str) -> list[str]:
    """The arguments after `uv pip install` in a shell command (one such call expected)."""
    for part in re.split(r"&&|;", command):
        tokens = shlex.split(part)
        for i in range(len(tokens) - 2):
            if tokens[i].endswith("uv") and tokens[i + 1 : i + 3] == ["pip", "install"]:
                return tokens[i + 3 :]
    raise AssertionError(f"no `uv pip install` in: {command}")


def makefile_install_command() -> str:
    lines = [ln.strip() for ln in MAKEFILE.read_text(encoding="utf-8").splitlines() if "uv pip install" in ln]
    assert len(lines) == 1, f"expected one `uv pip install` line in the Makefile, found {lines}"
    return lines[0]


def dockerfile_install_command(**build_args: str) -> str:
    runs = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN" and "uv pip install" in rest]
    assert len(runs) == 1, f"expected one RUN with `uv pip install` in the Dockerfile, found {len(runs)}"
    values = {**dockerfile_args(), **build_args}
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), runs[0])


def _split_install(args: list[str]) -> tuple[dict[str, str], set[str], str, bool]:
    """(options with values, flags, the package target, editable) of `uv pip install` arguments."""
    with_value = {"-c", "--constraint", "-r", "--requirement", "--index-url", "--extra-index-url"}
    options: dict[str, str] = {}
    flags: set[str] = set()
    targets: list[str] = []
    editable = False
    it = iter(args)
    for token in it:
        if token in with_value:
            options[{"--constraint": "-c", "--requirement": "-r"}.get(token, token)] = next(it)
        elif token in ("-e", "--editable"):
            editable = True
            targets.append(next(it))
        elif token.startswith("-"):
            flags.add(token)
        else:
            targets.append(token)
    assert len(targets) == 1, f"expected one package to install, got {targets}"
    return options, flags, targets[0], editable


# --- docker-compose.yaml ------------------------------------------------------------------


def test_compose_has_the_airflow_3_celery_layout():
    missing = [s for s in REQUIRED if s not in services()]
    assert not missing, f"docker-compose.yaml lacks services {missing}"
    for service, command in AIRFLOW_SERVICES.items():
        assert services()[service]["command"] == command, service
        assert env_of(service)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", service


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_long_running_services_have_healthchecks_and_restart(service: str):
    spec = services()[service]
    check = spec.get("healthcheck")
    assert check, f"{service} has no healthcheck; depends_on: service_healthy needs one"
    test = check["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{service}: {test}"
    for key in ("interval", "retries"):
        assert key in check, f"{service}'s healthcheck has no {key}"
    assert spec.get("restart") == "always", f"{service} should restart: always"


def test_healthchecks_hit_what_the_services_serve():
    def probe(service: str) -> str:
        return " ".join(services()[service]["healthcheck"]["test"][1:])

    assert "localhost:8080/api/v2/version" in probe("airflow-apiserver")
    # The scheduler only serves :8974/health when its health check server is on.
    assert "localhost:8974/health" in probe("airflow-scheduler")
    assert env_of("airflow-scheduler")["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "--job-type DagProcessorJob" in probe("airflow-dag-processor")
    assert "--job-type TriggererJob" in probe("airflow-triggerer")
    assert "inspect ping" in probe("airflow-worker")
    # $$ is compose's escape: the container's shell, not compose, expands HOSTNAME.
    assert "$${HOSTNAME}" in probe("airflow-worker")


def test_start_order_uses_conditions_like_the_reference_layout():
    deps = {name: spec.get("depends_on", {}) for name, spec in services().items()}
    for name, dep in deps.items():
        assert isinstance(dep, dict), f"{name}: depends_on must be a mapping with conditions"
        for target, how in dep.items():
            assert target in services(), f"{name} depends on unknown service {target}"
            assert how.get("condition") in CONDITIONS, f"{name} -> {target}: {how}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services()[target], f"{name} waits for {target} to be healthy; it has no check"
    for service in AIRFLOW_SERVICES:
        assert deps[service]["postgres"]["condition"] == "service_healthy", service
        assert deps[service]["redis"]["condition"] == "service_healthy", service
        assert deps[service]["airflow-init"]["condition"] == "service_completed_successfully", service
    # Workers talk to the execution API, so they start once the api-server answers.
    assert deps["airflow-worker"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert deps["airflow-init"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" not in services()["airflow-init"]
    _assert_acyclic(deps)


def _assert_acyclic(deps: dict[str, dict[str, Any]]) -> None:
    state: dict[str, str] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "active", f"depends_on cycle: {' -> '.join((*path, node))}"
        state[node] = "active"
        for nxt in deps.get(node, {}):
            visit(nxt, (*path, node))
        state[node] = "done"

    for node in deps:
        visit(node, ())


def _shell_snippets() -> list[tuple[str, str]]:
    """(where, script) of every shell string in the compose file, with compose's $$ unescaped."""
    out = []
    for name, spec in services().items():
        check = (spec.get("healthcheck") or {}).get("test", [])
        if check and check[0] == "CMD-SHELL":
            out.append((f"{name} healthcheck", " ".join(check[1:])))
        command = spec.get("command")
        if spec.get("entrypoint") == "/bin/bash" and isinstance(command, list) and command[0] == "-c":
            out.append((f"{name} command", command[1]))
    return [(where, script.replace("$$", "$")) for where, script in out]


@pytest.mark.parametrize(("where", "script"), [pytest.param(w, s, id=w) for w, s in _shell_snippets()])
def test_shell_snippets_are_valid_bash(where: str, script: str):
    bash = shutil.which("bash")
    assert bash, "bash is needed to check the compose file's scripts"
    out = subprocess.run([bash, "-n", "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"{where}: {out.stderr}"


def test_every_airflow_service_runs_the_image_built_from_the_dockerfile():
    images = set()
    for service in (*AIRFLOW_SERVICES, "airflow-init"):
        build = services()[service]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, service
        images.add(services()[service]["image"])
    assert len(images) == 1, f"the Airflow services should share one image, got {images}"


def test_dags_sql_and_the_warehouse_volume_are_mounted_where_the_code_looks():
    declared_volumes = set(compose().get("volumes") or {})
    for service in (*AIRFLOW_SERVICES, "airflow-init"):
        env, vols = env_of(service), volumes_of(service)
        assert vols.get(env["AIRFLOW__CORE__DAGS_FOLDER"]) == "./dags", service
        assert vols.get(env["AIRFLOW_ML_SQL_DIR"]) == "./sql", service
        # The embedded warehouse lives on a named volume, so it survives `docker compose down`.
        assert vols.get(env["AIRFLOW_ML_HOME"]) == "ml-warehouse", service
    assert "ml-warehouse" in declared_volumes
    # dags/ and sql/ are code: containers read them, never write them.
    specs = services()["airflow-worker"]["volumes"]
    assert any(s.startswith("./dags:") and s.endswith(":ro") for s in specs)
    assert any(s.startswith("./sql:") and s.endswith(":ro") for s in specs)


def test_broker_and_database_point_at_the_compose_services():
    env = env_of("airflow-scheduler")
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert (
        env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_local_mode_runs_ml_tasks_one_at_a_time_through_the_pool():
    """DuckDB allows one writing process per file: ML tasks share a one-slot pool, sensors the other worker slot."""
    value = env_of("airflow-worker")["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
    m = _VAR_REF.fullmatch(value)
    assert m, f"worker concurrency should come from .env, got {value!r}"
    assert m.group(1) == "AIRFLOW_WORKER_CONCURRENCY" and m.group(2) == ":-" and m.group(3) == "2"
    assert env_example()["AIRFLOW_WORKER_CONCURRENCY"]["value"] == "2"
    env = env_of("airflow-worker")
    assert env["AIRFLOW__ML_PLATFORM__POOL"] and env["AIRFLOW_ML_POOL_SLOTS"] == "1"
    init = "\n".join(services()["airflow-init"]["command"])
    assert 'airflow pools set "$${AIRFLOW__ML_PLATFORM__POOL}" "$${AIRFLOW_ML_POOL_SLOTS}"' in init
    local = _connection_examples()["local"]
    assert local["extra"]["backend"] == "local"


# --- modes: the ml_platform connection ---------------------------------------------------


def _connection_examples() -> dict[str, dict[str, Any]]:
    """The local and gcp AIRFLOW_CONN_ML_PLATFORM_DEFAULT values of .env.example, by backend."""
    entry = env_example()["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"]
    values = [v for v in (entry["value"], *entry["examples"]) if v]
    by_backend = {}
    for value in values:
        conn = json.loads(value)
        by_backend[conn["extra"]["backend"]] = conn
    assert set(by_backend) == {"local", "gcp"}, f".env.example should show both modes, found {sorted(by_backend)}"
    return by_backend


@pytest.mark.parametrize("backend", ["local", "gcp"])
def test_env_example_connections_parse_as_the_provider_expects(backend: str):
    conn = _connection_examples()[backend]
    conn_types = {c["connection-type"] for c in get_provider_info()["connection-types"]}
    assert conn["conn_type"] in conn_types
    config = PlatformConfig.from_extras(conn["extra"], source=f".env.example ({backend})")
    assert config.backend == backend
    forbidden = {"key_path", "keyfile_dict", "keyfile_json", "private_key", "credentials", "password"}
    assert not forbidden & set(conn["extra"]), f"no credentials in the ml_platform connection ({backend})"


def test_local_mode_keeps_the_warehouse_on_the_ml_warehouse_volume():
    ml_home = env_of("airflow-worker")["AIRFLOW_ML_HOME"]
    config = PlatformConfig.from_extras(_connection_examples()["local"]["extra"])
    assert config.warehouse_file.parent == Path(ml_home)
    assert config.artifacts_uri.startswith(f"file://{ml_home}/")
    # The active value of .env.example is the local mode: `cp .env.example .env` needs no GCP.
    assert json.loads(env_example()["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"]["value"])["extra"]["backend"] == "local"


def test_gcp_credentials_are_mounted_read_only_and_not_defined_in_the_file():
    env = env_of("airflow-worker")
    assert _VAR_REF.fullmatch(env["GOOGLE_APPLICATION_CREDENTIALS"]), "credentials path must come from .env"
    assert _VAR_REF.fullmatch(env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"]), "google_cloud_default must come from .env"
    mounts = services()["airflow-worker"]["volumes"]
    gcp = [m for m in mounts if "GCP_CREDENTIALS_DIR" in m]
    assert len(gcp) == 1 and gcp[0].endswith(":ro"), f"mount the ADC directory read-only, got {gcp}"
    google = env_example()["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"]
    assert not google["value"], "google_cloud_default is empty in local mode"
    for example in google["examples"]:
        extra = json.loads(example)["extra"]
        assert set(extra) <= {"project", "scopes", "num_retries"}, f"no key material in google_cloud_default: {extra}"


# --- .env.example and secrets -------------------------------------------------------------


def test_every_compose_variable_is_documented_in_env_example_and_vice_versa():
    used = set(compose_variables())
    documented = {name for name, entry in env_example().items() if entry["documented"]}
    listed = set(env_example())
    assert not used - listed, f"docker-compose.yaml reads {sorted(used - listed)}; add them to .env.example"
    assert not used - documented, f"add a comment above {sorted(used - documented)} in .env.example"
    assert not listed - used, f".env.example lists {sorted(listed - used)}, which docker-compose.yaml never reads"


def test_secrets_have_no_default_and_no_value_in_env_example():
    secrets = {name: ops for name, ops in compose_variables().items() if SECRET_NAME.search(name)}
    assert {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "_AIRFLOW_WWW_USER_PASSWORD"} <= set(
        secrets
    )
    for name, ops in secrets.items():
        assert ops == {":?"}, f"{name} must be required (${{{name}:?message}}) everywhere, not defaulted: {ops}"
        assert env_example()[name]["value"] == "", f"{name} must be empty in .env.example (it is a secret)"


def _literal_sensitive_values(mapping: dict[str, Any], where: str) -> list[str]:
    bad = []
    for key, value in mapping.items():
        text = "" if value is None else str(value)
        if SENSITIVE_NAME.search(str(key)) and _VAR_REF.sub("", text).strip():
            bad.append(f"{where}: {key}={text}")
    return bad


def test_no_literal_secrets_in_compose_dockerfile_or_env_example():
    bad = []
    for name, spec in services().items():
        env = spec.get("environment") or {}
        bad += _literal_sensitive_values(env, f"docker-compose.yaml {name}")
        for key, value in env.items():
            # user:password@host URLs: the password must be a ${VAR}.
            for m in re.finditer(r"://[^:/@\s]*:([^@\s]*)@", _VAR_REF.sub("VAR", str(value))):
                if m.group(1) not in ("", "VAR"):
                    bad.append(f"docker-compose.yaml {name}: {key} has a literal password")
    for keyword, rest in dockerfile_instructions():
        if keyword in ("ENV", "ARG"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest):
                if SENSITIVE_NAME.search(name):
                    bad.append(f"Dockerfile: {keyword} {name} (pass secrets at run time, never into a layer)")
    for name, entry in env_example().items():
        if SENSITIVE_NAME.search(name) and entry["value"]:
            bad.append(f".env.example: {name} has a value")
    texts = "\n".join(p.read_text(encoding="utf-8") for p in (COMPOSE, DOCKERFILE, ENV_EXAMPLE))
    for marker in ("-----BEGIN", '"private_key"', "AKIA", "ya29."):
        if marker in texts:
            bad.append(f"key material ({marker!r}) in the deployment files")
    assert not bad, "\n".join(bad)


# --- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_base_image_is_the_pinned_airflow_and_python():
    froms = [rest for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert len(froms) == 1, f"expected one FROM, got {froms}"
    m = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0])
    assert m, f"FROM should be the official apache/airflow:<version>-python<x.y> image, got {froms[0]!r}"
    assert m.group(1) == pinned("apache-airflow"), "the image's Airflow differs from requirements/constraints.txt"
    lock = re.search(r"--python-version\s+(\S+)", MAKEFILE.read_text(encoding="utf-8"))
    assert lock and m.group(2) == lock.group(1), "the image's Python differs from the one constraints are locked for"


def test_dockerfile_installs_the_same_uv_as_the_makefile():
    runs = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "RUN")
    assert '"uv==${UV_VERSION}"' in runs
    assert dockerfile_args()["UV_VERSION"] == makefile_var("UV_VERSION"), "the Dockerfile's uv is not the Makefile's"


def test_dockerfile_install_command_matches_the_makefile():
    """Same constraints file and options as `make install`; with PROVIDER_EXTRAS='[dev]' the same extras too."""
    make_opts, make_flags, make_target, make_editable = _split_install(uv_install_args(makefile_install_command()))
    extras = re.fullmatch(r"\.(\[[^\]]+\])?", make_target)
    assert extras and make_editable, f"the Makefile installs {make_target!r}; update this test with it"

    ci = _split_install(uv_install_args(dockerfile_install_command(PROVIDER_EXTRAS=extras.group(1) or "")))
    prod = _split_install(uv_install_args(dockerfile_install_command()))
    for opts, flags, _target, editable in (ci, prod):
        assert opts == make_opts, f"uv options differ from the Makefile's: {opts} vs {make_opts}"
        assert opts["-c"] == "requirements/constraints.txt"
        # --no-cache only keeps uv's cache out of the layer; -e would tie the image to its source tree.
        assert flags - {"--no-cache"} == make_flags, f"uv flags differ from the Makefile's: {flags} vs {make_flags}"
        assert not editable
    assert ci[2] == make_target, "with the Makefile's extras the image must install exactly what `make install` does"
    assert prod[2] == ".", "the production image installs the runtime dependencies only (no dev extras)"


def test_dockerfile_copies_what_the_install_needs_and_no_credentials():
    copies = [rest for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    sources = [s for c in copies for s in [t for t in shlex.split(c) if not t.startswith("--")][:-1]]
    for needed in ("requirements/constraints.txt", "setup.cfg", "pyproject.toml", "README.md"):
        assert needed in sources, f"the Dockerfile must COPY {needed} before installing"
    for path in ("airflow_ml_provider", "dags", "sql"):
        assert path in sources, f"the Dockerfile must COPY {path}"
    for s in sources:
        assert (REPO / s).exists(), f"COPY source {s} does not exist"
        assert not re.search(r"\.env$|\.gcp|credential|\.json$", s), f"COPY {s} could bake credentials into the image"
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users and users[-1] == "airflow", "the image must run as the airflow user"


def test_setup_cfg_readme_is_in_the_image_because_the_metadata_reads_it():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    needed = re.findall(r"file:\s*(\S+)", cfg["metadata"].get("long_description", ""))
    copied = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "COPY")
    for path in needed:
        assert path in copied, f"setup.cfg reads {path} at build time; COPY it in the Dockerfile"


def _declares_package_data() -> bool:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg.has_section("options.package_data") or (REPO / "MANIFEST.in").exists()


@pytest.mark.xfail(
    not _declares_package_data(),
    reason="known gap: setup.cfg declares no package data yet, so the plugin's HTML templates and the "
    "`airflow-ml init` templates are left out of the wheel the image installs (fix: [options.package_data] "
    "in setup.cfg; this marker then stops applying and the test must pass)",
    strict=True,
)
def test_non_python_package_files_ship_in_the_wheel_the_image_installs(tmp_path: Path):
    """The image installs the provider as a wheel (not editable): data files need package_data.

    Builds the wheel from a copy of exactly what the Dockerfile copies, as the image build does,
    and compares it with the package's files on disk (HTML templates, `airflow-ml init` templates).
    """
    if importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None:
        pytest.skip("building the wheel needs pip and setuptools in this environment")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "airflow_ml_provider", src / "airflow_ml_provider", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("airflow_ml_provider-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    on_disk = {
        p.relative_to(src).as_posix()
        for p in (src / "airflow_ml_provider").rglob("*")
        if p.is_file() and p.suffix != ".pyc"
    }
    missing = sorted(on_disk - shipped)
    assert not missing, (
        f"{len(missing)} package files would be missing from the image (a non-editable install), e.g. "
        f"{missing[:4]}: declare them in setup.cfg, e.g. [options.package_data] "
        "airflow_ml_provider = plugins/templates/*.html, templates/**/*"
    )


# --- .dockerignore -----------------------------------------------------------------------


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(out)))
    return rules


def docker_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negate, regex in _dockerignore_rules():
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".env",
        ".airflow/airflow.db",
        ".ml/warehouse.duckdb",
        ".gcp/application_default_credentials.json",
        ".git/HEAD",
        ".hypothesis/examples/x",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        ".mypy_cache/x",
        "test-artifacts/plugin/models.png",
        "bench/results/run.json",
        "airflow_ml_provider.egg-info/PKG-INFO",
        "airflow_ml_provider/__pycache__/cli.cpython-311.pyc",
        "dags/recsys/__pycache__/model.cpython-311.pyc",
        "dags/warehouse.duckdb",
    ],
)
def test_dockerignore_keeps_local_state_and_secrets_out(path: str):
    assert docker_excludes(path), f"{path} would be sent to the Docker daemon and could land in a layer"


def test_dockerignore_keeps_everything_the_dockerfile_copies():
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY":
            continue
        for source in [t for t in shlex.split(rest) if not t.startswith("--")][:-1]:
            root = REPO / source
            files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
            kept = [p for p in files if "__pycache__" not in p.parts]
            assert kept, f"COPY {source}: nothing to copy"
            dropped = [str(p.relative_to(REPO)) for p in kept if docker_excludes(p.relative_to(REPO).as_posix())]
            assert not dropped, f".dockerignore drops files the Dockerfile copies: {dropped[:5]}"


# --- with a compose CLI --------------------------------------------------------------------


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _compose_config(env_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "no compose CLI here (`docker compose` plugin or docker-compose); the checks above are static. "
            "Where one is installed (no engine needed), these tests run `docker compose config` on the file."
        )
    env_file = tmp_path / ".env"
    env_file.write_text(env_text, encoding="utf-8")
    return subprocess.run(
        [*cli, "--project-directory", str(REPO), "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_config_accepts_the_file_once_secrets_are_set(tmp_path: Path):
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    # Placeholder secrets only for the config check: they never leave tmp_path.
    for name in (n for n in env_example() if SECRET_NAME.search(n)):
        text = re.sub(rf"^{name}=$", f"{name}=placeholder-for-config-check", text, flags=re.MULTILINE)
    out = _compose_config(text, tmp_path)
    assert out.returncode == 0, out.stderr


def test_docker_compose_config_refuses_to_start_without_the_secrets(tmp_path: Path):
    out = _compose_config(ENV_EXAMPLE.read_text(encoding="utf-8"), tmp_path)
    assert out.returncode != 0
    assert "in .env (see .env.example)" in out.stderr, out.stderr
