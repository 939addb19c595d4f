"""docs/gcp.md works as written: the image it pushes is the one it builds, and the APIs the code calls are enabled.

The runbook's shell blocks are read as a reader would run them: ``export`` lines set variables
that later lines use. A runbook that pushed ``$_`` (the last argument of the build: ``.``), never
created the Artifact Registry repository, or created the bucket in another location than the
dataset failed only on real GCP; these tests fail on the page instead.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.paths import REPO as REPO_ROOT

RUNBOOK = REPO_ROOT / "docs" / "gcp.md"
PACKAGE = REPO_ROOT / "airflow_ml_provider"

#: What in the package's code calls which Google API (marker regex -> service to enable).
API_MARKERS = {
    r"from google\.cloud import bigquery\b|hooks\.bigquery import": "bigquery.googleapis.com",
    r"bigquery_storage": "bigquerystorage.googleapis.com",
    r"hooks\.vertex_ai\.|aiplatform_v1": "aiplatform.googleapis.com",
    r"hooks\.gcs import|gcsfs|\"gs://\"": "storage.googleapis.com",
    r"training_image_uri": "artifactregistry.googleapis.com",  # the image Vertex AI pulls
    r"impersonation_chain": "iamcredentials.googleapis.com",  # the Google provider's impersonated credentials
}


def shell_commands(markdown: str) -> list[str]:
    """The commands of the page's ```bash blocks, continuation lines joined, comments and heredocs dropped."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        block = re.sub(r"<<'EOF'\n.*?\n\s*EOF", "", block, flags=re.S)
        block = re.sub(r"export AIRFLOW_CONN_\w+='.*?'", "", block, flags=re.S)  # connection JSON, read apart
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def expand(command: str, variables: dict[str, str]) -> list[str]:
    """The command's words with ``$VAR``/``${VAR}`` replaced as the shell would (unknown ones kept).

    ``export A=x B=$A`` assigns from left to right, so an export's words update ``variables`` as they go.
    """
    words = []
    for word in shlex.split(command, comments=True):
        word = re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), word)
        if command.startswith("export ") and "=" in word:
            name, _, value = word.partition("=")
            variables[name] = value
        words.append(word)
    return words


@pytest.fixture(scope="module")
def runbook() -> tuple[list[list[str]], dict[str, str]]:
    """Every command as expanded words, and the variables the page exports (in order)."""
    variables: dict[str, str] = {}
    commands = []
    for command in shell_commands(RUNBOOK.read_text()):
        if command.startswith("export "):
            expand(command, variables)
            continue
        commands.append(expand(command, variables))
    return commands, variables


def _find(commands: list[list[str]], *prefix: str) -> list[list[str]]:
    return [c for c in commands if c[: len(prefix)] == list(prefix)]


def _option(words: list[str], name: str) -> str:
    for i, word in enumerate(words):
        if word == name:
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    raise AssertionError(f"{name} missing from: {' '.join(words)}")


def test_the_pushed_image_is_the_built_tag(runbook) -> None:
    commands, _ = runbook
    (build,) = _find(commands, "docker", "build")
    (push,) = _find(commands, "docker", "push")
    built = _option(build, "-t")
    assert push[2] == built, f"docker push {push[2]!r} is not the tag built: {built!r}"
    assert "$" not in built and re.fullmatch(r"[a-z0-9-]+-docker\.pkg\.dev/[\w-]+/[\w-]+/[\w.-]+:[\w.-]+", built)


def test_the_registry_exists_and_docker_may_push_to_it(runbook) -> None:
    commands, _ = runbook
    built = _option(_find(commands, "docker", "build")[0], "-t")
    host, project, repository = built.split("/")[:3]
    (create,) = _find(commands, "gcloud", "artifacts", "repositories", "create")
    assert create[4] == repository and _option(create, "--repository-format") == "docker"
    assert f"{_option(create, '--location')}-docker.pkg.dev" == host
    assert _option(create, "--project") == project
    (auth,) = _find(commands, "gcloud", "auth", "configure-docker")
    assert auth[3] == host


def test_every_api_the_code_calls_is_enabled(runbook) -> None:
    commands, _ = runbook
    enabled = {w for c in _find(commands, "gcloud", "services", "enable") for w in c[3:] if w.endswith(".com")}
    code = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    needed = {api for marker, api in API_MARKERS.items() if re.search(marker, code)}
    assert len(needed) == len(API_MARKERS), f"a marker no longer matches the code: {set(API_MARKERS.values()) - needed}"
    assert needed <= enabled, f"not enabled in docs/gcp.md: {sorted(needed - enabled)}"


def test_dataset_bucket_image_and_connection_share_one_region(runbook) -> None:
    commands, variables = runbook
    (dataset,) = [c for c in _find(commands, "bq") if "mk" in c]
    (bucket,) = _find(commands, "gcloud", "storage", "buckets", "create")
    region = _option(dataset, "--location")
    assert _option(bucket, "--location") == region
    assert re.fullmatch(r"[a-z]+-[a-z]+\d", region), f"{region} is not a region: Vertex AI needs a regional bucket"
    text = RUNBOOK.read_text()
    connection = re.search(r"AIRFLOW_CONN_ML_PLATFORM_DEFAULT='(.*?)'", text, flags=re.S)
    assert connection is not None
    extra = json.loads(connection.group(1))["extra"]
    assert extra["location"] == region
    example = {k: v.replace(variables["PROJECT"], extra["project"]) for k, v in variables.items()}
    assert extra["training_image_uri"] == example["IMAGE"]
    assert extra["staging_bucket"] == f"gs://{example['BUCKET']}"


def test_the_runbook_does_not_call_exports_free() -> None:
    text = RUNBOOK.read_text().lower()
    assert "exports are free" not in text and "exports, and dry runs are free" not in text
    assert "$_" not in RUNBOOK.read_text()


def test_shell_reader_joins_continuations_and_expands_variables() -> None:
    markdown = '```bash\nexport A=x B="$A-y"\ncmd "$B" \\\n  --flag "${A}" # note\n```\n'
    (export, command) = shell_commands(markdown)
    variables: dict[str, str] = {}
    expand(export, variables)
    assert variables == {"A": "x", "B": "x-y"}
    assert expand(command, variables) == ["cmd", "x-y", "--flag", "x"]


def test_paths_exist() -> None:
    assert RUNBOOK.is_file() and Path(PACKAGE / "backends" / "gcp_locations.py").is_file()
