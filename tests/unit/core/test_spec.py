"""The pipeline contract: the reference pipeline.yaml loads, and bad contracts fail naming file and key."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_ml_provider.core.contract.spec import FEATURE_TYPES, FeatureColumn, PipelineSpec, load_spec
from airflow_ml_provider.core.features.render import render_sql
from airflow_ml_provider.core.warehouse.sql import referenced_params
from airflow_ml_provider.exceptions import ContractError
from tests.paths import PIPELINE as REFERENCE
from tests.paths import SQL_DIR


@pytest.fixture(scope="module")
def reference_raw() -> dict[str, Any]:
    return yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))


def write_contract(tmp_path: Path, raw: Any, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / "dags" / "recsys" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


# --- the reference contract -----------------------------------------------------------


def test_reference_contract_loads(reference_raw):
    spec = load_spec(REFERENCE)
    assert spec.name == "recsys"
    assert spec.entities.user == "user_id" and spec.entities.item == "item_id"
    assert [s.table for s in spec.steps] == [s["table"] for s in reference_raw["steps"]]
    assert spec.feature_table == "features" and spec.feature_table in [s.table for s in spec.steps]
    assert spec.label.step.table == "labels" and spec.label.column == "relevance"
    assert spec.windows.label_horizon_days == reference_raw["windows"]["label_horizon_days"]
    assert set(spec.sources) == {"events", "items", "users"}
    assert [f.name for f in spec.features] == [f["name"] for f in reference_raw["features"]]


def test_reference_sql_steps_exist_and_use_only_the_contract_params():
    spec = load_spec(REFERENCE)
    available = set(spec.query_params(dt.date(2026, 3, 31)))
    for step in [*spec.steps, spec.label.step]:
        path = SQL_DIR / step.sql
        used = referenced_params(render_sql(step, SQL_DIR, dt.date(2026, 3, 31), spec), source=str(path))
        assert used, f"{step.sql} uses no parameter at all"
        assert used <= available, f"{step.sql} uses {used - available} that query_params does not provide"


def test_step_lookup_includes_the_label_step_and_names_known_tables():
    spec = load_spec(REFERENCE)
    assert spec.step("candidates").sql == "recsys/candidates.sql"
    assert spec.step("labels").sql == "recsys/labels.sql"
    with pytest.raises(ContractError) as info:
        spec.step("nope")
    assert "'nope'" in str(info.value) and "user_features" in str(info.value) and "labels" in str(info.value)


def test_query_params_content(reference_raw):
    spec = load_spec(REFERENCE)
    windows = reference_raw["windows"]
    assert spec.query_params(dt.date(2026, 3, 31)) == {
        **reference_raw["sql_params"],
        "as_of": dt.date(2026, 3, 31),
        "lookback_days": windows["feature_lookback_days"],
        "label_horizon_days": windows["label_horizon_days"],
        "candidates_per_user": reference_raw["candidates_per_user"],
        "exclude_seen": reference_raw["inference"]["exclude_seen"],
    }


def test_query_params_follow_the_contract(tmp_path, reference_raw):
    raw = copy.deepcopy(reference_raw)
    raw["windows"]["feature_lookback_days"] = 14
    raw["windows"]["label_horizon_days"] = 3
    raw["candidates_per_user"] = 20
    params = load_spec(write_contract(tmp_path, raw)).query_params(dt.date(2026, 1, 2))
    assert params == {
        **reference_raw["sql_params"],
        "as_of": dt.date(2026, 1, 2),
        "lookback_days": 14,
        "label_horizon_days": 3,
        "candidates_per_user": 20,
        "exclude_seen": "none",
    }


def test_feature_types_cover_every_declarable_type():
    declarable = set(FeatureColumn.model_fields["type"].annotation.__args__)
    assert set(FEATURE_TYPES) == declarable


# --- spec_hash ------------------------------------------------------------------------


def test_spec_hash_is_stable_across_loads_and_formatting(tmp_path, reference_raw):
    first = load_spec(REFERENCE).spec_hash
    assert first == load_spec(REFERENCE).spec_hash
    assert len(first) == 16 and int(first, 16) >= 0
    # Same content, different YAML: no comments, keys sorted, flow style gone.
    path = tmp_path / "reformatted.yaml"
    path.write_text(yaml.safe_dump(reference_raw, sort_keys=True), encoding="utf-8")
    assert load_spec(path).spec_hash == first


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["windows"].update(label_horizon_days=14),
        lambda r: r.update(candidates_per_user=51),
        lambda r: r["features"].pop(),
        lambda r: r["features"][0].update(type="INT64"),
        lambda r: r["steps"][0].update(cluster_by=["user_id", "as_of_date"]),
        lambda r: r["label"].update(column="label"),
    ],
    ids=["window", "candidates", "feature-removed", "feature-type", "cluster", "label"],
)
def test_spec_hash_changes_when_the_contract_changes(tmp_path, reference_raw, mutate):
    raw = copy.deepcopy(reference_raw)
    mutate(raw)
    assert load_spec(write_contract(tmp_path, raw)).spec_hash != load_spec(REFERENCE).spec_hash


# --- bad contracts: ContractError naming the file and the key path ---------------------


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation that sets ``a.b.0.c`` to ``value`` (creating nothing but the last key)."""

    def mutate(raw: dict) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(key: str) -> Callable[[dict], None]:
    return lambda raw: raw.pop(key)


def _append_feature(feature: dict) -> Callable[[dict], None]:
    return lambda raw: raw["features"].append(feature)


BAD_CONTRACTS = {
    "wrong-type": (_set("windows.label_horizon_days", "seven"), ["windows.label_horizon_days", "'seven'"]),
    "out-of-range": (_set("windows.label_horizon_days", 0), ["windows.label_horizon_days", "greater than or equal"]),
    "unknown-key": (_set("windows.label_horizon", 7), ["windows.label_horizon", "unknown key"]),
    "unknown-top-level-key": (_set("featurez", []), ["featurez", "unknown key"]),
    "missing-owners": (_delete("owners"), ["owners", "required"]),
    "empty-owner-list": (_set("owners.data_science", []), ["owners.data_science"]),
    "missing-steps": (_delete("steps"), ["steps", "required"]),
    "duplicate-feature": (
        _append_feature({"name": "item_price", "type": "FLOAT64"}),
        ["features", "duplicate", "item_price"],
    ),
    "feature-is-entity-key": (_append_feature({"name": "user_id", "type": "STRING"}), ["features", "user_id"]),
    "bad-feature-type": (_set("features.2.type", "INT"), ["features.2.type", "'INT'"]),
    "feature-name-injection": (_set("features.0.name", "x; DROP TABLE y"), ["features.0.name"]),
    "feature-table-not-written": (_set("feature_table", "model_input"), ["feature_table", "model_input"]),
    "duplicate-step-table": (_set("steps.1.table", "user_features"), ["steps", "user_features"]),
    "sql-parent-dir": (_set("steps.0.sql", "recsys/../../etc/passwd.sql"), ["steps.0.sql"]),
    "sql-absolute": (_set("steps.1.sql", "/etc/recsys/item_features.sql"), ["steps.1.sql"]),
    "sql-not-sql": (_set("steps.1.sql", "recsys/item_features.py"), ["steps.1.sql"]),
    "cluster-by-5": (_set("steps.0.cluster_by", ["a", "b", "c", "d", "e"]), ["steps.0.cluster_by", "4"]),
    "cluster-by-injection": (_set("steps.0.cluster_by", ["user_id`"]), ["steps.0.cluster_by"]),
    "table-injection": (_set("steps.2.table", "candidates; DROP TABLE events"), ["steps.2.table"]),
    "source-injection": (_set("sources.events", "events` --"), ["sources"]),
    "label-table-injection": (_set("label.step.table", "a.b"), ["label.step.table"]),
    "label-column-injection": (_set("label.column", "relevance OR 1=1"), ["label.column"]),
    "entity-injection": (_set("entities.user", "user id"), ["entities.user"]),
    "name-not-identifier": (_set("name", "rec-sys"), ["name"]),
    "candidates-not-int": (_set("candidates_per_user", 2.5), ["candidates_per_user"]),
}


@pytest.mark.parametrize("case", list(BAD_CONTRACTS))
def test_bad_contract_names_the_file_and_the_key(tmp_path, reference_raw, case):
    mutate, expected = BAD_CONTRACTS[case]
    raw = copy.deepcopy(reference_raw)
    mutate(raw)
    path = write_contract(tmp_path, raw)
    with pytest.raises(ContractError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:"), msg
    for fragment in expected:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_label_step_may_not_write_a_feature_step_table(tmp_path, reference_raw):
    raw = copy.deepcopy(reference_raw)
    raw["label"]["step"]["table"] = "candidates"
    path = write_contract(tmp_path, raw)
    with pytest.raises(ContractError, match="candidates"):
        load_spec(path)


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    lines = REFERENCE.read_text(encoding="utf-8").splitlines()
    lineno = next(i for i, line in enumerate(lines, 1) if line.startswith("candidates_per_user:"))
    lines[lineno - 1] = "candidates_per_user: 50: 60"
    path = tmp_path / "pipeline.yaml"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:")
    assert "not valid YAML" in msg
    assert f"line {lineno}," in msg


@pytest.mark.parametrize(
    ("text", "got"),
    [("- name: recsys\n- owners: {}\n", "list"), ("just a string\n", "str"), ("", "NoneType")],
)
def test_contract_must_be_a_mapping(tmp_path, text, got):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:")
    assert "mapping" in str(info.value) and got in str(info.value)


def test_missing_contract_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "pipeline.yaml"
    with pytest.raises(ContractError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:")
    assert "not found" in str(info.value)


def test_several_errors_are_all_reported(tmp_path, reference_raw):
    raw = copy.deepcopy(reference_raw)
    raw["windows"]["label_horizon_days"] = "seven"
    raw["steps"][0]["sql"] = "/abs.sql"
    with pytest.raises(ContractError) as info:
        load_spec(write_contract(tmp_path, raw))
    assert "windows.label_horizon_days" in str(info.value) and "steps.0.sql" in str(info.value)


def test_spec_is_immutable():
    spec = load_spec(REFERENCE)
    with pytest.raises(ValueError):
        spec.windows.label_horizon_days = 1  # type: ignore[misc]
    assert isinstance(spec, PipelineSpec)


def test_sql_params_reach_every_sql_file_but_cannot_redefine_the_windows(tmp_path, reference_raw):
    raw = copy.deepcopy(reference_raw)
    raw["sql_params"] = {"repeat_candidates": 3, "trending_days": 2}
    assert load_spec(write_contract(tmp_path, raw)).query_params(dt.date(2026, 1, 2))["repeat_candidates"] == 3
    raw["sql_params"] = {"lookback_days": 3}
    with pytest.raises(ContractError, match=r"sql_params.*'lookback_days' is set from the contract's windows"):
        load_spec(write_contract(tmp_path, raw))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("event_types", {"purchase": ["it's"]}, r"event_types.*not a plain event type"),
        ("event_types", {"purchase": ["order"], "view": ["order"]}, r"'order' is listed under both purchase and view"),
        ("source_columns", {"clicks": {"user_id": "uid"}}, r"source_columns: \['clicks'\] are not roles in sources"),
        ("source_columns", {"events": {"user_id": "uid; DROP"}}, r"source_columns"),
    ],
)
def test_source_mappings_are_validated(tmp_path, reference_raw, key, value, message):
    raw = copy.deepcopy(reference_raw)
    raw[key] = value
    with pytest.raises(ContractError, match=message):
        load_spec(write_contract(tmp_path, raw))
