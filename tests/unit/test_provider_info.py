"""The package registers itself with Airflow: provider info, plugin and console script."""

from __future__ import annotations

from importlib.metadata import entry_points

from airflow_ml_provider.get_provider_info import get_provider_info


def test_provider_info_declares_ml_platform_connection():
    info = get_provider_info()
    assert info["package-name"] == "airflow-ml-provider"
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "ml_platform"
    assert conn["hook-class-name"] == "airflow_ml_provider.hooks.ml_platform.MLPlatformHook"
    fields = set(conn["conn-fields"])
    assert {"backend", "project", "location", "dataset", "staging_bucket", "warehouse_path", "artifact_root"} <= fields


def test_entry_points_are_registered():
    groups = ("apache_airflow_provider", "airflow.plugins", "console_scripts")
    eps = {(g, ep.value) for g in groups for ep in entry_points(group=g) if ep.value.startswith("airflow_ml_provider")}
    assert ("apache_airflow_provider", "airflow_ml_provider.get_provider_info:get_provider_info") in eps
    assert ("airflow.plugins", "airflow_ml_provider.plugins.ml_platform:MLPlatformPlugin") in eps
    # Only the entry point registers the plugin: Airflow skips provider-info plugins while
    # [core] lazy_load_providers is on (the default) and loads them twice when it is off.
    assert "plugins" not in get_provider_info()
    assert ("console_scripts", "airflow_ml_provider.cli:main") in eps


def test_declared_modules_and_hook_import():
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    module, _, cls = info["connection-types"][0]["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module), cls)
    assert hook.conn_type == "ml_platform"
    assert hook.default_conn_name == "ml_platform_default"


def test_airflow_providers_manager_sees_the_package():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "airflow-ml-provider" in pm.providers
    assert "ml_platform" in pm.hooks
