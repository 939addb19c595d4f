"""ModelRegistry on a real DuckDB file: idempotent registration, one champion at a time, rollback, resolve."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.registry.models import ModelRecord, ModelRegistry, RegistryError

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)
METRICS = {
    "k": 10,
    "model": {"ndcg": 0.412, "recall": 1 / 3, "precision": 0.05, "map": 0.2},
    "baseline": {"ndcg": 0.335, "recall": 0.25, "precision": 0.04, "map": 0.15},
    "lift": {"ndcg": 0.2298},
}
NASTY = 'it\'s "fine"; DROP TABLE ml_models; --'


@pytest.fixture
def wh(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=10)


@pytest.fixture
def registry(wh: DuckDBWarehouse) -> ModelRegistry:
    reg = ModelRegistry(wh)
    reg.ensure()
    return reg


def register(reg: ModelRegistry, version: str, *, model: str = "recsys", hours: int = 0, **kw) -> ModelRecord:
    args = {
        "uri": f"file:///models/{model}/{version}",
        "metrics": METRICS,
        "git_sha": "abc123",
        "spec_hash": "f00d",
        "created_at": T0 + dt.timedelta(hours=hours),
    } | kw
    return reg.register_candidate(model, version, **args)


def raw(wh: DuckDBWarehouse, sql: str, params: dict | None = None) -> list[tuple]:
    """What is really stored, read with plain DuckDB (no transpiler)."""
    con = duckdb.connect(str(wh.path), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def statuses(wh: DuckDBWarehouse, model: str = "recsys") -> dict[str, str]:
    return dict(raw(wh, "SELECT version, status FROM ml_models WHERE model_name = $m", {"m": model}))


def champions(wh: DuckDBWarehouse, model: str = "recsys") -> list[str]:
    return [v for v, s in statuses(wh, model).items() if s == "champion"]


# --- table ---------------------------------------------------------------------------


def test_ddl_creates_the_table_on_duckdb_and_is_idempotent(wh: DuckDBWarehouse):
    reg = ModelRegistry(wh)
    reg.ensure()
    reg.ensure()
    assert list(wh.table_columns("ml_models")) == [
        "model_name",
        "version",
        "uri",
        "created_at",
        "git_sha",
        "spec_hash",
        "metrics",
        "status",
        "status_reason",
        "blessed_by",
        "promoted_at",
        "updated_at",
    ]
    assert wh.table_columns("ml_models")["metrics"] == "JSON"


def test_missing_ddl_is_a_clear_error(wh: DuckDBWarehouse, tmp_path: Path):
    reg = ModelRegistry(wh, ddl_path=tmp_path / "nope.sql")
    with pytest.raises(RegistryError, match=r"nope\.sql does not exist.*pass ddl_path="):
        reg.ensure()


def test_reads_on_a_fresh_warehouse_find_nothing(wh: DuckDBWarehouse):
    reg = ModelRegistry(wh)
    assert reg.list() == []
    assert reg.champion("recsys") is None
    with pytest.raises(RegistryError, match="has no version 'v1'"):
        reg.get("recsys", "v1")


# --- register ------------------------------------------------------------------------


def test_register_is_idempotent(registry: ModelRegistry, wh: DuckDBWarehouse):
    first = register(registry, "v1")
    again = register(registry, "v1")
    assert first == again
    assert raw(wh, "SELECT count(*) FROM ml_models")[0][0] == 1
    assert first.status == "candidate"
    assert first.created_at == T0
    assert (first.git_sha, first.spec_hash) == ("abc123", "f00d")
    assert first.promoted_at is None and first.blessed_by is None


def test_register_creates_the_table_when_absent(wh: DuckDBWarehouse):
    rec = register(ModelRegistry(wh), "v1")
    assert rec.version == "v1"


def test_conflicting_uri_is_an_error(registry: ModelRegistry, wh: DuckDBWarehouse):
    register(registry, "v1")
    with pytest.raises(RegistryError, match=r"already registered with uri 'file:///models/recsys/v1', not 'gs://b/x'"):
        register(registry, "v1", uri="gs://b/x")
    assert raw(wh, "SELECT uri FROM ml_models") == [("file:///models/recsys/v1",)]


def test_metrics_round_trip_as_dict(registry: ModelRegistry):
    rec = register(registry, "v1")
    assert rec.metrics == METRICS
    assert isinstance(rec.metrics["model"], dict)
    assert registry.get("recsys", "v1").metrics == METRICS


def test_optional_fields_may_be_null(registry: ModelRegistry):
    rec = register(registry, "v1", git_sha=None, spec_hash=None, metrics={})
    assert (rec.git_sha, rec.spec_hash, rec.metrics) == (None, None, {})


def test_naive_created_at_is_utc(registry: ModelRegistry):
    rec = register(registry, "v1", created_at=dt.datetime(2026, 3, 1, 6, 0))
    assert rec.created_at == T0


@pytest.mark.parametrize("bad", [{"ndcg": float("nan")}, {"when": dt.date(2026, 1, 1)}])
def test_non_json_metrics_are_an_error(registry: ModelRegistry, bad: dict):
    with pytest.raises(RegistryError, match="are not JSON"):
        register(registry, "v1", metrics=bad)


def test_as_dict_is_json_able(registry: ModelRegistry):
    import json

    d = register(registry, "v1").as_dict()
    assert d["created_at"] == "2026-03-01T06:00:00+00:00"
    assert json.loads(json.dumps(d)) == d


# --- promote / reject ----------------------------------------------------------------


def test_promote_moves_the_champion(registry: ModelRegistry, wh: DuckDBWarehouse):
    for i, v in enumerate(["v1", "v2", "v3"]):
        register(registry, v, hours=i)
    first = registry.promote("recsys", "v1", blessed_by="gate", reason="passed the gate")
    assert (first.status, first.blessed_by, first.status_reason) == ("champion", "gate", "passed the gate")
    assert first.promoted_at is not None
    assert statuses(wh) == {"v1": "champion", "v2": "candidate", "v3": "candidate"}

    second = registry.promote("recsys", "v3", blessed_by="alice", reason="manual")
    assert champions(wh) == ["v3"]
    assert statuses(wh) == {"v1": "archived", "v2": "candidate", "v3": "champion"}
    assert second.promoted_at > first.promoted_at
    old = registry.get("recsys", "v1")
    assert old.blessed_by == "gate" and old.promoted_at == first.promoted_at
    assert old.status_reason == "superseded by version v3 (promoted by alice)"
    assert registry.champion("recsys") == second


def test_promote_again_is_a_no_op(registry: ModelRegistry):
    register(registry, "v1")
    first = registry.promote("recsys", "v1", blessed_by="gate", reason="r")
    assert registry.promote("recsys", "v1", blessed_by="someone", reason="retry") == first


def test_promote_an_archived_version_brings_it_back(registry: ModelRegistry, wh: DuckDBWarehouse):
    register(registry, "v1")
    register(registry, "v2", hours=1)
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    registry.promote("recsys", "v2", blessed_by="a", reason="r")
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    assert statuses(wh) == {"v1": "champion", "v2": "archived"}


def test_promote_only_touches_its_model(registry: ModelRegistry, wh: DuckDBWarehouse):
    register(registry, "v1")
    register(registry, "v1", model="other")
    registry.promote("other", "v1", blessed_by="a", reason="r")
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    assert champions(wh, "other") == ["v1"] and champions(wh, "recsys") == ["v1"]


def test_promote_unknown_version_is_an_error(registry: ModelRegistry, wh: DuckDBWarehouse):
    register(registry, "v1")
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    with pytest.raises(RegistryError, match=r"model 'recsys' has no version 'v9'.*airflow-ml models list"):
        registry.promote("recsys", "v9", blessed_by="a", reason="r")
    assert champions(wh) == ["v1"]


def test_promote_rejected_version_is_an_error(registry: ModelRegistry, wh: DuckDBWarehouse):
    register(registry, "v1")
    register(registry, "v2", hours=1)
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    registry.reject("recsys", "v2", reason="ndcg@10 below baseline")
    with pytest.raises(RegistryError, match=r"version 'v2' was rejected \(ndcg@10 below baseline\)"):
        registry.promote("recsys", "v2", blessed_by="a", reason="r")
    assert statuses(wh) == {"v1": "champion", "v2": "rejected"}


def test_reject(registry: ModelRegistry):
    register(registry, "v1")
    rec = registry.reject("recsys", "v1", reason="failed the gate")
    assert (rec.status, rec.status_reason) == ("rejected", "failed the gate")
    assert rec.updated_at is not None


def test_reject_unknown_or_champion_is_an_error(registry: ModelRegistry, wh: DuckDBWarehouse):
    with pytest.raises(RegistryError, match="has no version 'v1'"):
        registry.reject("recsys", "v1", reason="r")
    register(registry, "v1")
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    with pytest.raises(RegistryError, match="is the champion and cannot be rejected"):
        registry.reject("recsys", "v1", reason="r")
    assert champions(wh) == ["v1"]


# --- rollback ------------------------------------------------------------------------


def test_rollback_restores_the_previous_champion(registry: ModelRegistry, wh: DuckDBWarehouse):
    for i, v in enumerate(["v1", "v2", "v3"]):
        register(registry, v, hours=i)
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    registry.promote("recsys", "v3", blessed_by="a", reason="r")  # v2 was never champion
    restored = registry.rollback("recsys", blessed_by="oncall")
    assert restored.version == "v1"
    assert (restored.status, restored.blessed_by) == ("champion", "oncall")
    assert restored.status_reason == "rollback from version v3 by oncall"
    assert statuses(wh) == {"v1": "champion", "v2": "candidate", "v3": "archived"}
    assert registry.get("recsys", "v3").status_reason == "rolled back to version v1 by oncall"


def test_rollback_twice_undoes_the_rollback(registry: ModelRegistry, wh: DuckDBWarehouse):
    register(registry, "v1")
    register(registry, "v2", hours=1)
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    registry.promote("recsys", "v2", blessed_by="a", reason="r")
    assert registry.rollback("recsys", blessed_by="b", reason="bad scores").version == "v1"
    assert registry.rollback("recsys", blessed_by="b").version == "v2"
    assert champions(wh) == ["v2"]


def test_rollback_without_a_previous_champion_is_an_error(registry: ModelRegistry, wh: DuckDBWarehouse):
    with pytest.raises(RegistryError, match="it has no champion"):
        registry.rollback("recsys", blessed_by="b")
    register(registry, "v1")
    register(registry, "v2", hours=1)
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    with pytest.raises(RegistryError, match="v1 is its first champion, so there is no previous champion"):
        registry.rollback("recsys", blessed_by="b")
    assert statuses(wh) == {"v1": "champion", "v2": "candidate"}


# --- resolve / list ------------------------------------------------------------------


def test_resolve(registry: ModelRegistry):
    register(registry, "v1")
    register(registry, "v2", hours=1)
    with pytest.raises(RegistryError, match="no champion for model recsys; train and promote one first"):
        registry.resolve("recsys", "champion")
    registry.promote("recsys", "v1", blessed_by="a", reason="r")
    assert registry.resolve("recsys", "champion").version == "v1"
    assert registry.resolve("recsys", "v2").version == "v2"
    with pytest.raises(RegistryError, match=r"has no version 'latest'.*airflow-ml models list"):
        registry.resolve("recsys", "latest")
    with pytest.raises(RegistryError, match="has no version 'v1'"):
        registry.resolve("other", "v1")


def test_list_is_newest_first(registry: ModelRegistry):
    register(registry, "v2", hours=2)
    register(registry, "v1", hours=1)
    register(registry, "v3", hours=3)
    register(registry, "a1", model="other", hours=0)
    assert [r.version for r in registry.list("recsys")] == ["v3", "v2", "v1"]
    assert [(r.model_name, r.version) for r in registry.list()] == [
        ("recsys", "v3"),
        ("recsys", "v2"),
        ("recsys", "v1"),
        ("other", "a1"),
    ]
    assert registry.list("nobody") == []


# --- values never become SQL ---------------------------------------------------------


def test_quote_laden_values_are_stored_verbatim(registry: ModelRegistry, wh: DuckDBWarehouse):
    model, version = 'o\'model "x"', "v1'; --"
    rec = registry.register_candidate(
        model,
        version,
        uri="gs://b/it's/@uri",
        metrics={"note": NASTY, "ndcg": 0.1},
        git_sha=NASTY,
        spec_hash="@version",
        created_at=T0,
    )
    assert rec.metrics == {"note": NASTY, "ndcg": 0.1}
    promoted = registry.promote(model, version, blessed_by=NASTY, reason=NASTY)
    assert (promoted.model_name, promoted.version, promoted.git_sha) == (model, version, NASTY)
    assert (promoted.status_reason, promoted.blessed_by, promoted.spec_hash) == (NASTY, NASTY, "@version")
    assert registry.resolve(model, "champion").uri == "gs://b/it's/@uri"
    assert wh.table_exists("ml_models")
    assert raw(wh, "SELECT model_name, version, status_reason FROM ml_models") == [(model, version, NASTY)]


# --- where artifacts are: relative to the artifact root (ADR 10) -------------------------------


def envelope_at(folder: Path) -> str:
    """A model folder with an envelope file (``locate`` looks for it); its file:// URI."""
    folder.mkdir(parents=True)
    (folder / "envelope.json").write_text("{}")
    return folder.as_uri()


def stored_uris(wh: DuckDBWarehouse) -> dict[str, str]:
    return dict(raw(wh, "SELECT version, uri FROM ml_models"))


def test_local_artifacts_under_the_root_are_stored_relative_others_as_given(wh: DuckDBWarehouse, tmp_path: Path):
    root = tmp_path / "artifacts"
    reg = ModelRegistry(wh, artifact_root=root.as_uri())
    under = (root / "recsys" / "v1" / "model").as_uri()
    outside = (tmp_path / "elsewhere" / "model").as_uri()
    register(reg, "v1", uri=under)
    register(reg, "v2", uri="gs://bucket/airflow-ml/recsys/v2/model")  # production: absolute
    register(reg, "v3", uri=outside)
    register(reg, "v4", uri=str(root / "recsys" / "v4" / "model"))  # a plain path counts as local
    assert stored_uris(wh) == {
        "v1": "recsys/v1/model",
        "v2": "gs://bucket/airflow-ml/recsys/v2/model",
        "v3": outside,
        "v4": "recsys/v4/model",
    }
    got = reg.get("recsys", "v1")
    assert (got.uri, got.stored_uri) == (under, "recsys/v1/model")
    assert reg.get("recsys", "v2").uri == "gs://bucket/airflow-ml/recsys/v2/model"
    # Another root reads the same row under itself: that is what makes a copied folder self-contained.
    moved = ModelRegistry(wh, artifact_root=(tmp_path / "copy" / "artifacts").as_uri())
    assert moved.get("recsys", "v1").uri == (tmp_path / "copy" / "artifacts" / "recsys" / "v1" / "model").as_uri()
    assert moved.get("recsys", "v3").uri == outside


def test_a_retry_finds_its_row_however_the_uri_is_spelled(wh: DuckDBWarehouse, tmp_path: Path):
    root = tmp_path / "artifacts"
    reg = ModelRegistry(wh, artifact_root=root.as_uri())
    model_dir = root / "recsys" / "v1" / "model"
    register(reg, "v1", uri=model_dir.as_uri())
    assert register(reg, "v1", uri=model_dir.as_uri() + "/").version == "v1"
    assert register(reg, "v1", uri="recsys/v1/model").version == "v1"
    with pytest.raises(RegistryError, match="already registered with uri"):
        register(reg, "v1", uri=(root / "recsys" / "v2" / "model").as_uri())


def test_without_a_root_the_embedded_default_is_used(wh: DuckDBWarehouse, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_ML_HOME", str(tmp_path / "ml"))
    reg = ModelRegistry(wh)
    assert reg.root == (tmp_path / "ml" / "artifacts").as_uri()
    register(reg, "v1", uri=(tmp_path / "ml" / "artifacts" / "recsys" / "v1" / "model").as_uri())
    assert stored_uris(wh) == {"v1": "recsys/v1/model"}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIRFLOW_ML_HOME", "ml")  # relative: taken from the working directory
    assert reg.root == (tmp_path / "ml" / "artifacts").as_uri()
    assert reg.get("recsys", "v1").uri == (tmp_path / "ml" / "artifacts" / "recsys" / "v1" / "model").as_uri()


def test_an_absolute_row_written_before_reads_as_it_is(wh: DuckDBWarehouse, tmp_path: Path):
    root = tmp_path / "artifacts"
    reg = ModelRegistry(wh, artifact_root=root.as_uri())
    reg.ensure()
    absolute = envelope_at(root / "recsys" / "old" / "model")
    wh.execute(
        "INSERT INTO ml_models (model_name, version, uri, created_at, metrics, status) "
        "VALUES ('recsys', 'old', @uri, @t, PARSE_JSON('{}'), 'candidate')",
        {"uri": absolute, "t": T0},
    )
    assert stored_uris(wh) == {"old": absolute}
    found = reg.locate("recsys", "old", lambda uri: Path(uri.removeprefix("file://")).exists())
    assert (found.uri, found.stored_uri) == (absolute, absolute)


def _exists(uri: str) -> bool:
    from airflow_ml_provider.core import storage

    return storage.exists(uri)


def test_a_relative_row_missing_under_the_root_names_the_version_the_path_and_the_fix(
    wh: DuckDBWarehouse, tmp_path: Path
):
    original = tmp_path / "ml" / "artifacts"
    register(
        ModelRegistry(wh, artifact_root=original.as_uri()), "v1", uri=envelope_at(original / "recsys" / "v1" / "model")
    )
    copy_root = tmp_path / "copy" / "artifacts"
    from airflow_ml_provider.core.training.envelope import ModelLoadError

    with pytest.raises(ModelLoadError) as err:
        ModelRegistry(wh, artifact_root=copy_root.as_uri()).locate("recsys", "v1", _exists)
    message = str(err.value)
    assert message.startswith(
        f"model recsys version v1: {(copy_root / 'recsys' / 'v1' / 'model' / 'envelope.json').as_uri()} does not exist."
    )
    assert f"ml_models.uri is 'recsys/v1/model', relative to the artifact root {copy_root.as_uri()}" in message
    assert "copy the whole AIRFLOW_ML_HOME folder (warehouse.duckdb and artifacts/)" in message
    assert "artifact_root" in message
    # The original root still serves it.
    assert ModelRegistry(wh, artifact_root=original.as_uri()).locate("recsys", "v1", _exists).version == "v1"


def test_a_moved_absolute_row_says_how_to_store_it_relative(wh: DuckDBWarehouse, tmp_path: Path):
    """A folder copied with rows from before ADR 10: the old path is gone, its copy is under the new root."""
    from airflow_ml_provider.core.training.envelope import ModelLoadError

    old = (tmp_path / "old" / "artifacts" / "recsys" / "v1" / "model").as_uri()
    register(ModelRegistry(wh, artifact_root="gs://unrelated"), "v1", uri=old)  # stored absolute
    root = tmp_path / "new" / "artifacts"
    envelope_at(root / "recsys" / "v1" / "model")
    with pytest.raises(ModelLoadError, match="does not exist") as err:
        ModelRegistry(wh, artifact_root=root.as_uri()).locate("recsys", "v1", _exists)
    assert f"ml_models.uri is the absolute {old}" in str(err.value)
    assert "UPDATE ml_models SET uri = 'recsys/v1/model' WHERE model_name = 'recsys' AND version = 'v1'" in str(
        err.value
    )


def test_a_gs_uri_is_not_checked_before_it_is_read(wh: DuckDBWarehouse):
    reg = ModelRegistry(wh, artifact_root="gs://bucket/airflow-ml")
    register(reg, "v1", uri="gs://bucket/airflow-ml/recsys/v1/model")

    def no_calls(uri: str) -> bool:
        raise AssertionError(f"looked up {uri}")

    assert reg.locate("recsys", "v1", no_calls).uri == "gs://bucket/airflow-ml/recsys/v1/model"
