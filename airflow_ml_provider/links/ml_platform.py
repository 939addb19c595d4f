"""Links from a task to the plugin's model page (``/ml/models``), anchored to the model version."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

MODELS_PATH = "/ml/models"


def model_page_url(model_name: str, version: str, base_url: str | None = None) -> str:
    """The models page, scrolled to (and highlighting) the row of ``model_name`` ``version``.

    Relative to the Airflow host unless ``[api] base_url`` is set, so it works behind any host name.
    """
    anchor = quote(f"{model_name}-{version}", safe="")
    return f"{(base_url or '').rstrip('/')}{MODELS_PATH}#{anchor}"


def model_of(result: Any, operator: Any = None) -> tuple[str, str] | None:
    """(model name, version) from a task's return value, else from the operator's pinned arguments."""
    if isinstance(result, Mapping):
        name = result.get("model_name")
        version = result.get("version") or result.get("model_version")
        if isinstance(name, str) and isinstance(version, str) and name and version:
            return name, version
    name = getattr(operator, "model_name", None)
    version = getattr(operator, "version", None) or getattr(operator, "model_version", None)
    if isinstance(name, str) and isinstance(version, str) and name and version and version != "champion":
        return name, version
    return None


def _base_url() -> str | None:
    from airflow.sdk.configuration import conf

    return conf.get("api", "base_url", fallback=None)


class ModelPageLink(BaseOperatorLink):
    """The ML plugin's page of the model version the task trained, judged, used or checked against.

    Airflow calls ``get_link`` in the worker when the task finishes and stores the URL in XCom;
    the version comes from the task's return value (``model_name`` and ``version`` or
    ``model_version``), or from the operator's pinned arguments when the task returned nothing.
    Works on both backends: the page reads the connection's warehouse.
    """

    name = "Model page"

    @property
    def xcom_key(self) -> str:
        return "ml_model_page"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            from airflow.sdk.execution_time.xcom import XCom

            result = XCom.get_value(key="return_value", ti_key=ti_key)
            found = model_of(result, operator)
            return model_page_url(*found, base_url=_base_url()) if found else ""
        except Exception:  # a link never fails the task
            log.warning("Could not build the model page link of %s", operator, exc_info=True)
            return ""
