"""The ML pages: a FastAPI app the plugin mounts under ``/ml`` in Airflow's API server.

Every route depends on Airflow's own authentication (the ``Authorization: Bearer`` header or
the ``_token`` cookie the UI sets at login; the nav loads the pages in an iframe with that
cookie) and on DAG read access: no token is a 401, a user without DAG read access a 403.

Reads go through the ``ml_platform_default`` connection (the embedded DuckDB default when
it does not exist), with a short lock timeout: a page never waits minutes for a busy
DuckDB file, it answers 503 with a message instead.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from airflow_ml_provider.core.config import PlatformConfig
from airflow_ml_provider.core.warehouse import Warehouse
from airflow_ml_provider.exceptions import MLProviderError, WarehouseLockedError
from airflow_ml_provider.plugins import charts, data

log = logging.getLogger(__name__)

#: Seconds a page waits for a busy DuckDB file before it answers 503 (tasks wait much longer).
UI_LOCK_TIMEOUT = 5.0
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
RANKING_METRICS = ("ndcg", "map", "recall", "precision", "coverage")


def get_warehouse() -> Warehouse:
    """The warehouse of the ``ml_platform_default`` connection, or the embedded default when it does not exist."""
    from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

    config = MLPlatformHook().config
    timeout = min(config.lock_timeout_seconds, UI_LOCK_TIMEOUT)
    return _warehouse_for(config.model_copy(update={"lock_timeout_seconds": timeout}))


@functools.lru_cache(maxsize=4)
def _warehouse_for(config: PlatformConfig) -> Warehouse:
    # The connection is read on every request (it may change); the warehouse, and with it a
    # BigQuery client and its credentials, is reused while the configuration stays the same.
    from airflow_ml_provider.backends import get_warehouse as backend_warehouse

    return backend_warehouse(config, labels={"managed-by": "airflow-ml-ui"})


WarehouseDep = Annotated[Warehouse, Depends(get_warehouse)]


class PageError(Exception):
    """A page cannot be served; rendered as a message page (HTML) or ``{"detail": ...}`` (JSON)."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code, self.title, self.message = status_code, title, message


def _read(fn: Callable[[Warehouse], dict[str, Any]], warehouse: Warehouse) -> dict[str, Any]:
    try:
        return fn(warehouse)
    except WarehouseLockedError as err:
        raise PageError(
            503,
            "The warehouse is busy",
            f"Another process is writing to the warehouse right now, so this page could not read it. "
            f"Reload in a few seconds. ({err})",
        ) from err
    except Exception as err:  # e.g. a BigQuery permission error: a message page, not a bare 500
        log.exception("ML page read failed")
        message = str(err) if isinstance(err, MLProviderError) else f"{type(err).__name__}: {err}"
        raise PageError(500, "The warehouse could not be read", message) from err


def _base(request: Request) -> str:
    """The URL prefix the app is mounted under (``/ml``, behind any proxy prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, {"base": _base(request), **context})


def _short_date(value: str | None) -> str:
    return (value or "")[:10]


# --- chart builders (data dicts -> SVG) -------------------------------------------------------


def models_chart(models: list[dict[str, Any]], model_name: str) -> str:
    """ndcg@k of each version of ``model_name`` next to the popularity baseline, oldest first."""
    rows = sorted((m for m in models if m["model_name"] == model_name), key=lambda m: (m["created_at"], m["version"]))
    k = next((m["k"] for m in rows if m.get("k")), None)
    at_k = f"@{k}" if k else ""
    return charts.line_chart(
        [m["version"] for m in rows],
        [
            charts.Series(f"model {data.METRIC}{at_k}", [m["model_score"] for m in rows], colour=charts.PALETTE[0]),
            charts.Series(
                f"popularity baseline {data.METRIC}{at_k}",
                [m["baseline_score"] for m in rows],
                colour=charts.PALETTE[1],
                dashed=True,
            ),
        ],
        title=f"{model_name}: {data.METRIC}{at_k} on the held-out test window, by version",
        y_label=f"{data.METRIC}{at_k}",
    )


def metrics_chart(record: dict[str, Any]) -> str:
    """Every ranking metric at k of one version (the champion) next to the popularity baseline."""
    metrics = record.get("metrics") or {}
    model, baseline = metrics.get("model") or {}, metrics.get("baseline") or {}
    scope = str(metrics.get("scope", "candidates")).replace("_", "-")
    base_name = str(metrics.get("baseline_name") or "candidate_popularity").replace("_", " ") + " baseline"
    names = [m for m in RANKING_METRICS if m in model or m in baseline]
    at_k = f"@{record['k']}" if record.get("k") else ""
    return charts.bar_chart(
        [f"{m}{at_k}" for m in names],
        [
            charts.Series(f"{record['version']}", [model.get(m) for m in names], colour=charts.PALETTE[0]),
            charts.Series(base_name, [baseline.get(m) for m in names], colour=charts.PALETTE[1]),
        ],
        title=f"{record['model_name']} {record['status']} {record['version']}: ranking metrics ({scope}) vs the "
        f"{base_name} (same test-window lists)",
    )


def drift_heatmap(psi: list[dict[str, Any]]) -> str:
    """PSI per checked column (rows) and logical date (columns), coloured by severity."""
    dates = sorted({r["logical_date"] for r in psi})
    names: list[str] = []
    cells: dict[tuple[str, str], charts.Cell] = {}
    thresholds: dict[tuple[float | None, float | None], int] = {}
    for r in psi:
        name = r["feature"] if r["table_name"] in (None, "features") else f"{r['table_name']}.{r['feature']}"
        if name not in names:
            names.append(name)
        severity = r["severity"] if r["status"] == "evaluated" else "skipped"
        value = r["value"] if r["value"] is not None and math.isfinite(r["value"]) else None
        tip = (
            f"{name} on {r['logical_date']}: PSI {value:.4f} ({severity}; warn at {r['warn_threshold']}, "
            f"drift at {r['threshold']})"
            if value is not None
            else f"{name} on {r['logical_date']}: skipped ({r.get('skip_reason') or 'no value'})"
        )
        cells[(name, r["logical_date"])] = charts.Cell(value, severity, tip)
        key = (r["warn_threshold"], r["threshold"])
        thresholds[key] = thresholds.get(key, 0) + 1
    warn, drift = max(thresholds, key=lambda t: thresholds[t]) if thresholds else (None, None)
    legend = [
        ("ok", f"ok: PSI < {warn}" if warn is not None else "ok"),
        ("warn", f"warn: PSI ≥ {warn}" if warn is not None else "warn"),
        ("drift", f"drift: PSI ≥ {drift}" if drift is not None else "drift"),
        ("skipped", "skipped"),
    ]
    return charts.heatmap(
        names,
        dates,
        cells,
        title="PSI by feature and date (all rows; hover a cell for its thresholds)",
        legend=legend,
    )


def coverage_chart(coverage: list[dict[str, Any]]) -> str:
    """Catalog coverage of the newest successful run per prediction date."""
    return charts.line_chart(
        [c["prediction_date"] for c in coverage],
        [charts.Series("catalog coverage", [c["coverage"] for c in coverage], colour=charts.PALETTE[2])],
        title="Catalog coverage per prediction date (distinct recommended items / candidate items)",
        y_label="coverage",
        y_min=0.0,
        y_max=1.0,
        percent=True,
    )


# --- routes -----------------------------------------------------------------------------------

router = APIRouter()


@router.get("/", include_in_schema=False)
def index(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{_base(request)}/models")


@router.get("/api/models")
def api_models(warehouse: WarehouseDep) -> dict[str, Any]:
    """Every model version with its status and its metric next to the popularity baseline."""
    return _read(data.models, warehouse)


@router.get("/api/drift")
def api_drift(warehouse: WarehouseDep) -> dict[str, Any]:
    """PSI per feature and date, the verdicts, and the newest date's flagged features."""
    return _read(data.drift, warehouse)


@router.get("/api/recommendations")
def api_recommendations(warehouse: WarehouseDep) -> dict[str, Any]:
    """Batch-inference runs, coverage per date and the newest date's most recommended items."""
    return _read(data.recommendations, warehouse)


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, warehouse: WarehouseDep) -> HTMLResponse:
    found = _read(data.models, warehouse)
    models = found["models"]
    names = sorted({m["model_name"] for m in models})
    # Per model: the champion, else the newest version (models are newest first).
    featured: dict[str, dict[str, Any]] = {}
    for m in models:
        if m["model_name"] not in featured or m["status"] == "champion":
            featured[m["model_name"]] = m
    return _page(
        request,
        "models.html",
        active="models",
        models=models,
        metric=found["metric"],
        charts={name: models_chart(models, name) for name in names},
        metric_charts={name: metrics_chart(featured[name]) for name in names},
        champions={name: record for name, record in featured.items() if record["status"] == "champion"},
    )


@router.get("/drift", response_class=HTMLResponse)
def drift_page(request: Request, warehouse: WarehouseDep) -> HTMLResponse:
    found = _read(data.drift, warehouse)
    return _page(
        request,
        "drift.html",
        active="drift",
        heatmap=drift_heatmap(found["psi"]) if found["psi"] else None,
        verdicts=found["verdicts"],
        flagged=found["flagged"],
        latest=found["verdicts"][0] if found["verdicts"] else None,
    )


@router.get("/recommendations", response_class=HTMLResponse)
def recommendations_page(request: Request, warehouse: WarehouseDep) -> HTMLResponse:
    found = _read(data.recommendations, warehouse)
    return _page(
        request,
        "recommendations.html",
        active="recommendations",
        chart=coverage_chart(found["coverage"]) if found["coverage"] else None,
        short_date=_short_date,
        **found,
    )


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    if request.url.path.startswith(f"{_base(request)}/api/"):
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
    response = _page(request, "message.html", active=None, title=exc.title, message=exc.message)
    response.status_code = exc.status_code
    return response


def create_app() -> FastAPI:
    """The app the plugin mounts; every route requires an Airflow user with DAG read access."""
    app = FastAPI(
        title="ML platform",
        description="Models, drift and recommendations of airflow-ml-provider.",
        dependencies=[Depends(requires_access_dag("GET"))],
    )
    app.include_router(router)
    app.add_exception_handler(PageError, _page_error)
    return app


app = create_app()
