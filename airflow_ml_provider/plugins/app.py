"""The ML pages: a FastAPI app the plugin mounts under ``/ml`` in Airflow's API server.

Every route depends on Airflow's own authentication (the ``Authorization: Bearer`` header or
the ``_token`` cookie the UI sets at login; the nav loads the pages in an iframe with that
cookie) and on DAG read access: no token is a 401, a user without DAG read access a 403.

Reads go through the ``ml_platform_default`` connection (the embedded DuckDB default when
it does not exist), with a short lock timeout: a page never waits minutes for a busy
DuckDB file, it answers 503 with a message instead.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.exceptions import MLProviderError, WarehouseLockedError
from airflow_ml_provider.plugins import data, data_drift, data_models, data_outcomes, data_quality, figures

log = logging.getLogger(__name__)

#: Seconds a page waits for a busy DuckDB file before it answers 503 (tasks wait much longer).
UI_LOCK_TIMEOUT = 5.0
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# ISO timestamps as the pages show them: ``2026-03-31 12:05`` (minute) and ``2026-03-31`` (day); None is blank.
TEMPLATES.env.filters["minute"] = lambda value: (value or "")[:16].replace("T", " ")
TEMPLATES.env.filters["day"] = lambda value: (value or "")[:10]


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
    """A page cannot be served; rendered as a message page (HTML) or ``{"detail": ...}`` (JSON).

    ``param`` names the query parameter at fault: the page then keeps its filter form, filled
    with what was asked and that field marked, so the user corrects it in place.
    """

    def __init__(self, status_code: int, title: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status_code, self.title, self.message, self.param = status_code, title, message, param


def _read(fn: Callable[[Warehouse], dict[str, Any]], warehouse: Warehouse) -> dict[str, Any]:
    try:
        return fn(warehouse)
    except PageError:
        raise
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


# --- filters ----------------------------------------------------------------------------------


def _day(value: str | None, name: str = "date") -> dt.date | None:
    """A ``YYYY-MM-DD`` query parameter as a date; empty is no filter; anything else is a 400 naming it."""
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PageError(
            400,
            "Bad filter",
            f"query parameter {name}={value!r} is not a calendar date: use YYYY-MM-DD, e.g. {name}=2026-03-31.",
            param=name,
        ) from None


Text = Annotated[str | None, Query(max_length=200)]


def _text(value: str | None) -> str | None:
    return value.strip() or None if value else None


def _choice(value: str | None, name: str, allowed: tuple[str, ...]) -> str | None:
    """A query parameter that takes one of ``allowed`` values; empty is no filter; anything else is a 400."""
    value = _text(value)
    if value is None or value in allowed:
        return value
    raise PageError(
        400,
        "Bad filter",
        f"query parameter {name}={value!r} is not one of {', '.join(allowed)}; leave it empty for all.",
        param=name,
    )


#: The filter form of each page: (query parameter, label, placeholder). Error pages show the same form.
FILTER_FIELDS: dict[str, list[tuple[str, str, str]]] = {
    "models": [
        ("model", "model", "recsys"),
        ("version", "version", "any"),
        ("date", "data as of (on or before)", "YYYY-MM-DD"),
    ],
    "drift": [
        ("date", "date", "YYYY-MM-DD (newest)"),
        ("model", "model", "any"),
        ("feature", "feature", "worst flagged"),
    ],
    "recommendations": [
        ("date", "served date", "YYYY-MM-DD (newest)"),
        ("model", "model", "any"),
        ("version", "version", "any"),
    ],
    "data": [
        ("date", "checked date", "YYYY-MM-DD (newest)"),
        ("table", "table", "any"),
        ("status", "status", "pass | warn | fail | skipped"),
    ],
}
#: The values of ``data_checks.status``.
CHECK_STATUSES = ("pass", "warn", "fail", "skipped")


def get_text_reader() -> data_models.TextReader:
    """Reads an artifact URI (a model's envelope) with the connection's credentials, as the operators do."""
    from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

    hook = MLPlatformHook()
    return lambda uri: hook.artifact_path(uri).read_text()


ReaderDep = Annotated[data_models.TextReader, Depends(get_text_reader)]


def artifact_root() -> str:
    """The connection's artifact root, which a relative ``ml_models.uri`` is under (ADR 10)."""
    from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

    return MLPlatformHook().config.artifacts_uri


# --- what each page shows (the page and its JSON endpoint serve the same dict) -----------------


def _models(warehouse: Warehouse, model: str | None, version: str | None, date: str | None) -> dict[str, Any]:
    day = _day(date)
    root = artifact_root()
    return _read(lambda w: data.models(w, _text(model), _text(version), day, artifact_root=root), warehouse)


def _model_version(
    warehouse: Warehouse, reader: data_models.TextReader, model_name: str, version: str, date: str | None
) -> dict[str, Any]:
    day = _day(date)

    def read(w: Warehouse) -> dict[str, Any]:
        try:
            return data_models.model_version(
                w, model_name, version, reader, outcomes_end=day, artifact_root=artifact_root()
            )
        except data_models.ModelNotFound as err:
            raise PageError(404, "No such model version", f"{err}. The Models page lists every version.") from err

    return _read(read, warehouse)


def _recommendations(
    warehouse: Warehouse, date: str | None, model: str | None, version: str | None, user: str | None
) -> dict[str, Any]:
    day, model, version, user = _day(date), _text(model), _text(version), _text(user)

    def read(w: Warehouse) -> dict[str, Any]:
        found = data.recommendations(w, day, model, version)
        newest = found["latest_date"]
        # The contract names the items and events sources (and their columns) the lists are shown with.
        spec = data_outcomes.page_contract(model)
        found["top_items"] = (
            data_outcomes.top_items(w, dt.date.fromisoformat(newest), model=model, version=version, spec=spec)
            if newest
            else {"items": [], "attributes": []}
        )
        found["outcomes"] = data_outcomes.outcomes(w, model=model, version=version, end=day)
        found["revenue_unit"] = data_outcomes.revenue_unit(spec)
        horizon, horizon_source = data_outcomes.label_horizon(spec, found["outcomes"])
        found["headline"] = data_outcomes.headline(found["outcomes"], newest, horizon, horizon_source)
        found["concentration"] = None
        if newest:
            run: dict[str, Any] = next(
                (r for r in found["runs"] if str(r["prediction_date"])[:10] == newest and r["status"] == "success"), {}
            )
            found["concentration"] = data_outcomes.concentration(
                w,
                dt.date.fromisoformat(newest),
                found["latest_totals"]["users"],
                model=model,
                version=version,
                catalog_items=run.get("catalog_items"),
            )
        found["outcomes_empty"] = data_outcomes.no_outcomes_message(day, model, version)
        found["user"] = data_outcomes.user_lookup(w, user, day, spec) if user else None
        found["filters"]["user"] = user
        return found

    return _read(read, warehouse)


def _drift(warehouse: Warehouse, date: str | None, model: str | None, feature: str | None) -> dict[str, Any]:
    day, model, feature = _day(date), _text(model), _text(feature)

    def read(w: Warehouse) -> dict[str, Any]:
        found = data.drift(w, day, model)
        checked = found["day"]
        all_rows = [f for f in found["flagged"] if f["segment"] == "__all__"]
        features = sorted({r["feature"] for r in found["psi"]})
        # Default column: the worst flagged on all rows, else the first checked one.
        chosen = feature or (all_rows[0]["feature"] if all_rows else features[0] if features else None)
        found["features"], found["feature"] = features, chosen
        found["trend"], found["bins"] = [], None
        if checked and chosen:
            when = dt.date.fromisoformat(checked)
            found["trend"] = data_drift.psi_trend(w, chosen, when, model=model)
            found["bins"] = data_drift.bins(w, chosen, when, model=model)
        found["filters"]["feature"] = chosen
        # The verdict shown is the checked date's own (all rows); a date with no check says so
        # and names the newest check before it, never showing that check's verdict as its own.
        on_day = [v for v in found["verdicts"] if v["logical_date"] == checked and v["segment"] == "__all__"]
        found["verdict"] = on_day[0] if on_day else None
        found["checked_before"] = found["verdicts"][0]["logical_date"] if found["verdicts"] and not on_day else None
        return found

    return _read(read, warehouse)


def _data_checks(warehouse: Warehouse, date: str | None, table: str | None, status: str | None) -> dict[str, Any]:
    day, chosen = _day(date), _choice(status, "status", CHECK_STATUSES)
    return _read(lambda w: data_quality.data_checks(w, day, table=_text(table), status=chosen), warehouse)


# --- routes -----------------------------------------------------------------------------------

router = APIRouter()


@router.get("/", include_in_schema=False)
def index(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{_base(request)}/models")


@router.get("/api/models")
def api_models(warehouse: WarehouseDep, model: Text = None, version: Text = None, date: Text = None) -> dict[str, Any]:
    """Every model version (filtered by ``model``, ``version``, trained on or before ``date``) and its metric."""
    return _models(warehouse, model, version, date)


@router.get("/api/models/{model_name}/{version}")
def api_model_version(
    warehouse: WarehouseDep, reader: ReaderDep, model_name: str, version: str, date: Text = None
) -> dict[str, Any]:
    """One version: params, data windows, metrics in both scopes, importance, gate, profile, outcomes."""
    return _model_version(warehouse, reader, model_name, version, date)


@router.get("/api/drift")
def api_drift(warehouse: WarehouseDep, date: Text = None, model: Text = None, feature: Text = None) -> dict[str, Any]:
    """PSI per feature up to ``date``, verdicts, that date's flags, and one feature's trend and bins."""
    return _drift(warehouse, date, model, feature)


@router.get("/api/recommendations")
def api_recommendations(
    warehouse: WarehouseDep, date: Text = None, model: Text = None, version: Text = None, user: Text = None
) -> dict[str, Any]:
    """Runs, coverage, realized outcomes, the date's top items and, with ``user``, that user's list."""
    return _recommendations(warehouse, date, model, version, user)


@router.get("/api/data")
def api_data(warehouse: WarehouseDep, date: Text = None, table: Text = None, status: Text = None) -> dict[str, Any]:
    """The data checks of ``date`` (default: the newest checked date)."""
    return _data_checks(warehouse, date, table, status)


@router.get("/models", response_class=HTMLResponse)
def models_page(
    request: Request, warehouse: WarehouseDep, model: Text = None, version: Text = None, date: Text = None
) -> HTMLResponse:
    found = _models(warehouse, model, version, date)
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
        fields=FILTER_FIELDS["models"],
        models=models,
        metric=found["metric"],
        filters=found["filters"],
        charts={name: figures.models_chart(models, name) for name in names},
        metric_charts={name: figures.metrics_chart(featured[name]) for name in names},
        champions={name: record for name, record in featured.items() if record["status"] == "champion"},
    )


@router.get("/models/{model_name}/{version}", response_class=HTMLResponse)
def model_version_page(
    request: Request, warehouse: WarehouseDep, reader: ReaderDep, model_name: str, version: str, date: Text = None
) -> HTMLResponse:
    found = _model_version(warehouse, reader, model_name, version, date)
    env = found["envelope"]
    outcomes = found["outcomes"]
    dates = data_outcomes.outcome_dates(outcomes)
    k = found["k"]
    return _page(
        request,
        "model.html",
        active="models",
        m=found,
        r=found["record"],
        scope_charts=[
            figures.scope_chart(found["metrics"], s, k)
            for s in ("all_active", "end_to_end", "candidates")
            if any(row["scope"] == s for row in found["metrics"])
        ],
        importance=figures.importance_chart(env["feature_importance"], version)
        if env and env["feature_importance"]
        else None,
        outcome_charts=[
            figures.outcome_chart(data_outcomes.outcome_series(outcomes, metric), dates, metric, label)
            for metric, label in (("hit_rate", "hit rate"), ("ndcg_at_k", f"ndcg@{k or 'k'}"))
        ]
        if outcomes
        else [],
        no_outcomes=data_outcomes.no_outcomes_message(_day(date)),
        revenue_unit=data_outcomes.revenue_unit(data_outcomes.page_contract(model_name)) if outcomes else None,
        fields=VERSION_FIELDS,
        filters={"date": _text(date)},
    )


@router.get("/drift", response_class=HTMLResponse)
def drift_page(
    request: Request, warehouse: WarehouseDep, date: Text = None, model: Text = None, feature: Text = None
) -> HTMLResponse:
    found = _drift(warehouse, date, model, feature)
    bins = found["bins"]
    spec = data_outcomes.page_contract(_text(model))
    feature_table = spec.feature_table if spec else "features"
    return _page(
        request,
        "drift.html",
        active="drift",
        heatmap=figures.drift_heatmap(found["psi"], feature_table) if found["psi"] else None,
        trend_chart=figures.psi_trend_chart(found["trend"], found["feature"]) if found["trend"] else None,
        bins_chart=figures.bins_chart(bins) if bins and "labels" in bins else None,
        fields=FILTER_FIELDS["drift"],
        **found,
    )


@router.get("/recommendations", response_class=HTMLResponse)
def recommendations_page(
    request: Request,
    warehouse: WarehouseDep,
    date: Text = None,
    model: Text = None,
    version: Text = None,
    user: Text = None,
) -> HTMLResponse:
    found = _recommendations(warehouse, date, model, version, user)
    outcomes = found["outcomes"]
    dates = data_outcomes.outcome_dates(outcomes)
    k = next((o["k"] for o in outcomes if o.get("k")), None)
    return _page(
        request,
        "recommendations.html",
        active="recommendations",
        fields=FILTER_FIELDS["recommendations"],
        chart=figures.coverage_chart(found["coverage"]) if found["coverage"] else None,
        outcome_charts=[
            figures.outcome_chart(data_outcomes.outcome_series(outcomes, metric), dates, metric, label)
            for metric, label in (("hit_rate", "hit rate"), ("ndcg_at_k", f"ndcg@{k or 'k'}"))
        ]
        if outcomes
        else [],
        **found,
    )


@router.get("/data", response_class=HTMLResponse)
def data_page(
    request: Request, warehouse: WarehouseDep, date: Text = None, table: Text = None, status: Text = None
) -> HTMLResponse:
    found = _data_checks(warehouse, date, table, status)
    return _page(request, "data.html", active="data", fields=FILTER_FIELDS["data"], **found)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(f"{_base(request)}/api/")


def _page_name(request: Request) -> str | None:
    """The overview page a request is for (``models``, ``drift``, ...), None for any other path."""
    rest = request.url.path[len(_base(request)) :].strip("/")
    return rest if rest in FILTER_FIELDS else None


#: The filter form of a model version's page (its outcomes).
VERSION_FIELDS = [("date", "served on or before", "YYYY-MM-DD")]


def _form(request: Request) -> tuple[str, list[tuple[str, str, str]]] | None:
    """The filter form (action, fields) of the page a request is for, None for a path without one."""
    page = _page_name(request)
    if page:
        return f"{_base(request)}/{page}", FILTER_FIELDS[page]
    parts = request.url.path[len(_base(request)) :].strip("/").split("/")
    if len(parts) == 3 and parts[0] == "models":
        return request.url.path, VERSION_FIELDS
    return None


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    if _is_api(request):
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
    form = _form(request) if exc.param else None
    response = _page(
        request,
        "message.html",
        active=_page_name(request) or ("models" if form else None),
        title=exc.title,
        message=exc.message,
        # A bad filter keeps the page's form, filled with what was asked, the faulty field marked.
        form_action=form[0] if form else None,
        fields=form[1] if form else [],
        filters=dict(request.query_params),
        invalid=exc.param,
    )
    response.status_code = exc.status_code
    return response


def _airflow_base(request: Request) -> str:
    """Airflow's own URL prefix: the app's mount path (``/ml``) taken off the root path."""
    from airflow_ml_provider.plugins.ml_platform import URL_PREFIX

    base = _base(request)
    return base[: -len(URL_PREFIX)] if base.endswith(URL_PREFIX) else base


def _airflow_not_found(request: Request) -> Response | None:
    """Airflow's UI page (its 404 view) with status 404, or None when the UI is not built."""
    try:
        import airflow

        index = Path(airflow.__file__).parent / "ui" / "dist" / "index.html"
        html = index.read_text()
    except (ImportError, OSError):
        return None
    # The same substitution Airflow's own catch-all route makes (core_api/app.py: backend_server_base_url).
    base = f"{_airflow_base(request)}/"
    return HTMLResponse(html.replace("{{ backend_server_base_url }}", base), status_code=404)


async def _http_error(request: Request, exc: Exception) -> Response:
    """``/ml/api/*`` keeps FastAPI's JSON errors; a browser on a page gets what Airflow's UI gives.

    No or an expired token: a redirect to Airflow's login (``/api/v2/auth/login?next=<page>``,
    what Airflow's UI does on a 401, so the auth manager picks the login page and returns the
    user here). An unknown path: Airflow's UI, which shows its "page not found". A user without
    DAG read access: a message page with status 403.
    """
    from fastapi.exception_handlers import http_exception_handler

    assert isinstance(exc, StarletteHTTPException)
    if _is_api(request):
        return await http_exception_handler(request, exc)
    if exc.status_code == 401:
        login = f"{_airflow_base(request)}/api/v2/auth/login?{urlencode({'next': str(request.url)})}"
        return RedirectResponse(login, status_code=307)
    if exc.status_code == 404 and (response := _airflow_not_found(request)) is not None:
        return response
    if exc.status_code in (403, 404):
        title = "Not allowed" if exc.status_code == 403 else "Page not found"
        message = (
            "Your Airflow user cannot read DAGs, which the ML pages require; ask an admin for DAG read access."
            if exc.status_code == 403
            else f"There is no page at {request.url.path}. The ML pages are Models, Drift, Recommendations and Data."
        )
        response = _page(request, "message.html", active=None, title=title, message=message)
        response.status_code = exc.status_code
        return response
    return await http_exception_handler(request, exc)


def create_app() -> FastAPI:
    """The app the plugin mounts; every route requires an Airflow user with DAG read access."""
    app = FastAPI(
        title="ML platform",
        description="Models, drift and recommendations of airflow-ml-provider.",
        dependencies=[Depends(requires_access_dag("GET"))],
    )
    app.include_router(router)
    app.add_exception_handler(PageError, _page_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


app = create_app()
