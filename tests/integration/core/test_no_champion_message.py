"""Without a champion, every entry point says how to serve anyway: pin --model-version, or promote a version.

The message is raised once, in ``ModelRegistry.resolve``; ``airflow-ml recommend``, the batch
inference stage (one shard, and the sharded plan the DAG runs) all show it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.inference.sharded import plan_shards, recommend
from airflow_ml_provider.core.registry.models import NEWEST_SHOWN, ModelRegistry, RegistryError
from tests.paths import PIPELINE

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 3, 31)


@pytest.fixture
def wh(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=10)


def register(wh: DuckDBWarehouse, *versions: str) -> ModelRegistry:
    """Register ``versions`` oldest first, one hour apart (the last is the newest)."""
    registry = ModelRegistry(wh)
    registry.ensure()
    for hours, version in enumerate(versions):
        registry.register_candidate(
            "recsys",
            version,
            uri=f"file:///models/recsys/{version}",
            metrics={},
            git_sha=None,
            spec_hash=None,
            created_at=T0 + dt.timedelta(hours=hours),
        )
    return registry


def no_champion(registry: ModelRegistry) -> str:
    with pytest.raises(RegistryError) as err:
        registry.resolve("recsys", "champion")
    return str(err.value)


def test_nothing_registered_says_train_then_pin_or_promote(wh):
    message = no_champion(ModelRegistry(wh))
    assert message.startswith("no champion for model recsys; train and promote one first")
    assert "no version of recsys is registered" in message and "`airflow-ml train`" in message
    assert "airflow-ml recommend --model-version <version>" in message
    assert "model_version='<version>'" in message  # the operators' (and so the DAG's) argument
    assert "airflow-ml models promote <version>" in message


def test_registered_versions_are_listed_newest_first_with_a_runnable_pin_and_promote(wh):
    registry = register(wh, "v1", "v2", "v3", "v4", "v5")
    registry.reject("recsys", "v5", reason="lost to popularity")
    message = no_champion(registry)
    assert NEWEST_SHOWN == 3
    listed = message.split("Registered, newest first: ")[1]
    # The newest three, newest first; the two older ones are counted, not named.
    assert listed.index("v5 (rejected: cannot be promoted") < listed.index("v4 (candidate") < listed.index("v3 (")
    assert "v2 (" not in listed and "v1 (" not in listed
    assert "and 2 older (`airflow-ml models list`)" in message
    assert "registered 2026-03-01 10:00" in message  # v5's registration time
    # The examples name the newest version that can be promoted, never the rejected one.
    assert "airflow-ml recommend --model-version v4" in message
    assert "model_version='v4'" in message
    assert "airflow-ml models promote v4" in message


def test_only_rejected_versions_say_so(wh):
    registry = register(wh, "v1")
    registry.reject("recsys", "v1", reason="r")
    message = no_champion(registry)
    assert "airflow-ml recommend --model-version v1" in message
    assert "every registered version was rejected by the gate, so train a new one" in message
    assert "models promote" not in message


def test_a_champion_or_a_pinned_version_resolves_without_the_message(wh):
    registry = register(wh, "v1", "v2")
    assert registry.resolve("recsys", "v2").version == "v2"
    registry.promote("recsys", "v1", blessed_by="t", reason="r")
    assert registry.resolve("recsys", "champion").version == "v1"


def test_airflow_ml_recommend_prints_it(wh, capsys):
    register(wh, "v1", "v2")
    code = main(["recommend", "--date", str(DAY), "--warehouse", str(wh.path), "--pipeline", str(PIPELINE)])
    err = capsys.readouterr().err
    assert code == 1
    assert "airflow-ml recommend: error: no champion for model recsys" in err
    assert "v2 (candidate" in err and "--model-version v2" in err and "airflow-ml models promote v2" in err


@pytest.mark.parametrize("shards", [1, 2], ids=["one-shard", "sharded"])
def test_the_batch_inference_stage_raises_it(wh, shards):
    """The stage the DAG's tasks call: run_batch_inference (one shard), plan_shards (the DAG's plan task)."""
    register(wh, "v1")
    spec = load_spec(PIPELINE)
    with pytest.raises(RegistryError, match=r"--model-version v1.*models promote v1"):
        recommend(wh, spec, DAY, run_id="t", shards=shards)
    with pytest.raises(RegistryError, match=r"--model-version v1.*models promote v1"):
        plan_shards(wh, spec, DAY, shards)
