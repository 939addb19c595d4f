"""The model registry: one row per model version in the ``ml_models`` table, through the Warehouse interface.

Statuses: ``candidate`` (registered, not judged), ``champion`` (what the ``champion`` alias
resolves to; at most one per model), ``archived`` (a former champion) and ``rejected``.
Every state change is ONE GoogleSQL statement, so a process killed mid-way leaves either
the old state or the new one: never two champions, never a duplicated version. Values
travel as ``@name`` query parameters only. There is no implicit "latest": callers pin a
version or ask for the champion.

``uri`` is stored relative to the artifact root for local artifacts under it (ADR 10), so a
copied ``$AIRFLOW_ML_HOME`` reads its own models: records carry where the artifacts are now
(``uri``) and what the row says (``stored_uri``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.core.warehouse.rows import to_rows
from airflow_ml_provider.exceptions import MLProviderError, TableNotFoundError

if TYPE_CHECKING:
    from airflow_ml_provider.core.training.envelope import Envelope

TABLE = "ml_models"
CHAMPION = "champion"
STATUSES = ("candidate", "champion", "archived", "rejected")
DEFAULT_DDL = Path(__file__).resolve().parents[3] / "sql" / "ddl" / "ml_models.sql"

_COLUMNS = (
    "model_name, version, uri, created_at, git_sha, spec_hash, TO_JSON_STRING(metrics) AS metrics, "
    "status, status_reason, blessed_by, promoted_at, updated_at"
)
_SELECT = f"SELECT {_COLUMNS} FROM {TABLE}"
# Newest first; the version breaks ties between models registered in the same instant.
_NEWEST_FIRST = "ORDER BY created_at DESC, version DESC"

_INSERT = f"""
INSERT INTO {TABLE} (model_name, version, uri, created_at, git_sha, spec_hash, metrics, status, updated_at)
SELECT @model_name, @version, @uri, @created_at, {{git_sha}}, {{spec_hash}}, PARSE_JSON(@metrics), 'candidate',
  CURRENT_TIMESTAMP()
FROM (SELECT 1 AS one) AS seed
WHERE NOT EXISTS (SELECT 1 FROM {TABLE} WHERE model_name = @model_name AND version = @version)
"""

# One statement moves the alias: the target becomes champion and whichever row was champion
# is archived. The EXISTS guard makes it all-or-nothing if the target vanished or was rejected.
_PROMOTE = f"""
UPDATE {TABLE}
SET status = CASE WHEN version = @version THEN 'champion' ELSE 'archived' END,
  status_reason = CASE WHEN version = @version THEN @reason ELSE @archived_reason END,
  blessed_by = CASE WHEN version = @version THEN @blessed_by ELSE blessed_by END,
  promoted_at = CASE WHEN version = @version THEN CURRENT_TIMESTAMP() ELSE promoted_at END,
  updated_at = CURRENT_TIMESTAMP()
WHERE model_name = @model_name
  AND (version = @version OR status = 'champion')
  AND EXISTS (
    SELECT 1 FROM {TABLE} AS target
    WHERE target.model_name = @model_name AND target.version = @version AND target.status != 'rejected'
  )
"""

_REJECT = f"""
UPDATE {TABLE}
SET status = 'rejected', status_reason = @reason, updated_at = CURRENT_TIMESTAMP()
WHERE model_name = @model_name AND version = @version AND status != 'champion'
"""

# The version that was champion just before the current one: the archived row promoted last.
_PREVIOUS_CHAMPION = f"""
{_SELECT}
WHERE model_name = @model_name AND status = 'archived' AND promoted_at IS NOT NULL
  AND promoted_at <= (SELECT MAX(promoted_at) FROM {TABLE} WHERE model_name = @model_name AND status = 'champion')
ORDER BY promoted_at DESC, version DESC
LIMIT 1
"""

_LIST_HINT = "List the registered versions with `airflow-ml models list`"
#: How many versions a "no champion" error lists (the newest first).
NEWEST_SHOWN = 3


class RegistryError(MLProviderError):
    """A registry operation cannot be done: unknown version, conflicting registration, no champion."""


def is_relative_uri(uri: str) -> bool:
    """Whether a stored ``ml_models.uri`` is relative to the artifact root: no scheme and no leading ``/``."""
    return "://" not in uri and not PurePath(uri).is_absolute()


@dataclass(frozen=True)
class ModelRecord:
    """One row of ``ml_models``: a model version, where it lives, how it scored and its status."""

    model_name: str
    version: str
    uri: str
    created_at: dt.datetime
    git_sha: str | None
    spec_hash: str | None
    metrics: dict[str, Any]
    status: str
    status_reason: str | None
    blessed_by: str | None
    promoted_at: dt.datetime | None
    updated_at: dt.datetime | None
    #: ``ml_models.uri`` as the row stores it; ``uri`` is where the artifacts are (the same unless relative).
    stored_uri: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-able dict (timestamps as ISO 8601 strings), for XCom and the CLI."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelRecord:
        """Build a record from a row of the registry's SELECT (metrics as a JSON string)."""
        metrics = json.loads(row["metrics"]) if row.get("metrics") else None
        return cls(
            model_name=row["model_name"],
            version=row["version"],
            uri=row["uri"],
            created_at=row["created_at"],
            git_sha=row.get("git_sha"),
            spec_hash=row.get("spec_hash"),
            metrics=metrics if isinstance(metrics, dict) else {},
            status=row["status"],
            status_reason=row.get("status_reason"),
            blessed_by=row.get("blessed_by"),
            promoted_at=row.get("promoted_at"),
            updated_at=row.get("updated_at"),
            stored_uri=row["uri"],
        )


class ModelRegistry:
    """Register, judge, promote and resolve model versions in the warehouse's ``ml_models`` table.

    ``artifact_root`` is the connection's artifact root (``PlatformConfig.artifacts_uri``): a
    local model folder under it is stored relative to it, and a relative ``uri`` is read under
    it. None means the embedded default's, ``$AIRFLOW_ML_HOME/artifacts``.
    """

    def __init__(self, warehouse: Warehouse, ddl_path: Path | None = None, *, artifact_root: str | None = None) -> None:
        self.warehouse = warehouse
        self.ddl_path = Path(ddl_path) if ddl_path is not None else DEFAULT_DDL
        self.artifact_root = artifact_root

    def __repr__(self) -> str:
        return f"ModelRegistry({self.warehouse!r})"

    # --- where artifacts are (ADR 10) ---------------------------------------------

    @property
    def root(self) -> str:
        """The artifact root relative URIs are under: the given one, else the embedded default's."""
        if self.artifact_root:
            return self.artifact_root
        from airflow_ml_provider.core.contract.config import PlatformConfig, ml_home

        try:
            return PlatformConfig().artifacts_uri
        except ValueError:  # a relative AIRFLOW_ML_HOME has no file:// URI until it is resolved
            from airflow_ml_provider.core import storage

            return storage.to_uri(ml_home() / "artifacts")

    def stored_uri(self, uri: str) -> str:
        """The form ``uri`` is stored in: relative to a local artifact root when under it, else as given.

        ``gs://`` stays absolute (the bucket is the place, and BigQuery readers see it whole);
        a relative ``uri`` is taken as relative to the root already.
        """
        from airflow_ml_provider.core import storage

        if is_relative_uri(uri):
            return uri
        path, root = storage.local_path(uri), storage.local_path(self.root)
        if path is None or root is None:
            return uri
        path, root = path.expanduser().resolve(), root.expanduser().resolve()
        return path.relative_to(root).as_posix() if path != root and path.is_relative_to(root) else uri

    def resolved_uri(self, stored: str) -> str:
        """Where a stored ``uri`` points: a relative one under the artifact root, an absolute one as stored."""
        from airflow_ml_provider.core import storage

        return storage.join(self.root, stored) if is_relative_uri(stored) else stored

    def _same_place(self, a: str, b: str) -> bool:
        """Whether two URIs name the same folder (a retried registration may spell it differently)."""
        from airflow_ml_provider.core import storage

        a, b = self.resolved_uri(a), self.resolved_uri(b)
        if a.rstrip("/") == b.rstrip("/"):
            return True
        pa, pb = storage.local_path(a), storage.local_path(b)
        return pa is not None and pb is not None and pa.expanduser().resolve() == pb.expanduser().resolve()

    # --- table --------------------------------------------------------------------

    def ensure(self) -> None:
        """Create ``ml_models`` from its DDL unless it exists."""
        try:
            ddl = self.ddl_path.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise RegistryError(
                f"the registry DDL {self.ddl_path} does not exist, so table {TABLE} cannot be created. "
                "Run from a checkout that has sql/ddl/ml_models.sql, or pass ddl_path= to ModelRegistry."
            ) from err
        self.warehouse.ensure_table(ddl, source=str(self.ddl_path))

    # --- reads --------------------------------------------------------------------

    def _select(self, where: str, params: Mapping[str, Any], *, tail: str = "", source: str) -> list[ModelRecord]:
        sql = f"{_SELECT} {where} {tail}".strip()
        return self._records(sql, params, source=source)

    def _records(self, sql: str, params: Mapping[str, Any], *, source: str) -> list[ModelRecord]:
        try:
            rows = to_rows(self.warehouse.query(sql, params, source=source))
        except TableNotFoundError:
            # Nothing registered yet: a fresh warehouse has no versions and no champion.
            return []
        records = [ModelRecord.from_row(r) for r in rows]
        return [dataclasses.replace(r, uri=self.resolved_uri(r.uri)) if is_relative_uri(r.uri) else r for r in records]

    def find(self, model_name: str, version: str) -> ModelRecord | None:
        """The record of ``model_name`` ``version``, or None when it is not registered."""
        found = self._select(
            "WHERE model_name = @model_name AND version = @version",
            {"model_name": model_name, "version": version},
            source="registry.get",
        )
        return found[0] if found else None

    def get(self, model_name: str, version: str) -> ModelRecord:
        """The record of ``model_name`` ``version``; an unknown version is a RegistryError."""
        found = self.find(model_name, version)
        if found is None:
            raise RegistryError(
                f"model {model_name!r} has no version {version!r} in table {TABLE}. {_LIST_HINT}, "
                f"or use the alias {CHAMPION!r}."
            )
        return found

    def champion(self, model_name: str) -> ModelRecord | None:
        """The current champion of ``model_name``, or None when none was promoted."""
        found = self._select(
            "WHERE model_name = @model_name AND status = 'champion'",
            {"model_name": model_name},
            tail=_NEWEST_FIRST,
            source="registry.champion",
        )
        return found[0] if found else None

    def list(self, model_name: str | None = None) -> list[ModelRecord]:
        """Every version of ``model_name`` (or of every model), newest first."""
        if model_name is None:
            return self._select("", {}, tail=_NEWEST_FIRST + ", model_name", source="registry.list")
        return self._select(
            "WHERE model_name = @model_name", {"model_name": model_name}, tail=_NEWEST_FIRST, source="registry.list"
        )

    def resolve(self, model_name: str, version_or_alias: str) -> ModelRecord:
        """``champion`` -> the current champion; anything else is a pinned version. Never an implicit latest."""
        if version_or_alias == CHAMPION:
            found = self.champion(model_name)
            if found is None:
                raise RegistryError(self._no_champion(model_name))
            return found
        return self.get(model_name, version_or_alias)

    def locate(self, model_name: str, version_or_alias: str, exists: Callable[[str], bool]) -> ModelRecord:
        """``resolve``, then check the version's artifacts are where its ``uri`` says, before anything loads them.

        ``exists`` is the caller's (``Artifacts.exists``). A relative or local ``uri`` whose
        envelope is missing is a ModelLoadError naming the version, the path looked at and the
        fix (a warehouse copied without its artifacts folder); a ``gs://`` one is read as stored.
        """
        record = self.resolve(model_name, version_or_alias)
        self.check_artifacts(record, exists)
        return record

    def check_artifacts(self, record: ModelRecord, exists: Callable[[str], bool]) -> None:
        """Raise ModelLoadError when ``record``'s envelope is not where its relative or local ``uri`` says."""
        from airflow_ml_provider.core import storage
        from airflow_ml_provider.core.training.envelope import ENVELOPE_FILE, ModelLoadError

        stored = record.stored_uri or record.uri
        relative = is_relative_uri(stored)
        if not relative and storage.local_path(record.uri) is None:
            return  # gs://: a missing object fails when read, naming it
        envelope = storage.join(record.uri, ENVELOPE_FILE)
        if exists(envelope):
            return
        head = f"model {record.model_name} version {record.version}: {envelope} does not exist"
        if relative:
            raise ModelLoadError(
                f"{head}. ml_models.uri is {stored!r}, relative to the artifact root {self.root}, and that root does "
                f"not hold it. A warehouse copied without its artifacts folder cannot load its models: copy the whole "
                "AIRFLOW_ML_HOME folder (warehouse.duckdb and artifacts/), or point AIRFLOW_ML_HOME (or the "
                f"ml_platform connection's artifact_root) at the folder that holds {stored}."
            )
        tail = f"{record.model_name}/{record.version}/model"
        moved = storage.join(self.root, tail)
        hint = (
            f" This version's artifacts are under the current artifact root at {moved}: store the relative form "
            f"with UPDATE ml_models SET uri = '{tail}' WHERE model_name = '{record.model_name}' "
            f"AND version = '{record.version}'."
            if record.uri.rstrip("/").endswith("/" + tail) and exists(storage.join(moved, ENVELOPE_FILE))
            else " Restore that folder, or train and promote a new version."
        )
        raise ModelLoadError(
            f"{head}. ml_models.uri is the absolute {stored} (written before local URIs were stored relative to "
            f"the artifact root, or outside it), and that folder was moved or deleted.{hint}"
        )

    def _no_champion(self, model_name: str) -> str:
        """Why ``champion`` resolves to nothing, and how to serve anyway: pin a version or promote one."""
        head = f"no champion for model {model_name}; train and promote one first"
        pin = "`airflow-ml recommend --model-version {v}` (or `drift`; in a DAG, the operator's model_version='{v}')"
        records = self.list(model_name)
        if not records:
            return (
                f"{head}: no version of {model_name} is registered in table {TABLE} yet (`airflow-ml train` "
                f"registers one). Then serve it pinned with {pin.format(v='<version>')}, or make it the "
                "champion with `airflow-ml models promote <version>`."
            )
        shown = records[:NEWEST_SHOWN]
        listed = ", ".join(
            f"{r.version} ({r.status}{': cannot be promoted' if r.status == 'rejected' else ''}, "
            f"registered {r.created_at:%Y-%m-%d %H:%M})"
            for r in shown
        )
        older = (
            f", and {len(records) - len(shown)} older (`airflow-ml models list`)" if len(records) > len(shown) else ""
        )
        example = next((r.version for r in records if r.status != "rejected"), None)
        promote = (
            f"make one the champion with `airflow-ml models promote {example}`"
            if example
            else "every registered version was rejected by the gate, so train a new one to promote"
        )
        return (
            f"{head}, or serve a registered version pinned. Registered, newest first: {listed}{older}. "
            f"Pin one with {pin.format(v=example or records[0].version)}, or {promote}."
        )

    # --- writes -------------------------------------------------------------------

    def register_candidate(
        self,
        model_name: str,
        version: str,
        uri: str,
        metrics: Mapping[str, Any],
        git_sha: str | None,
        spec_hash: str | None,
        created_at: dt.datetime,
    ) -> ModelRecord:
        """Record a new candidate; a retry with the same uri returns the existing row instead of adding one.

        ``created_at`` without a time zone is taken as UTC.
        """
        for label, value in (("model_name", model_name), ("version", version), ("uri", uri)):
            if not isinstance(value, str) or not value.strip():
                raise RegistryError(f"cannot register a model with an empty {label} (got {value!r}).")
        try:
            metrics_json = json.dumps(dict(metrics), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise RegistryError(
                f"metrics of model {model_name!r} version {version!r} are not JSON ({err}); pass numbers, "
                "strings and nested dicts only, with no NaN or infinity."
            ) from err
        params: dict[str, Any] = {
            "model_name": model_name,
            "version": version,
            "uri": self.stored_uri(uri),
            "created_at": created_at,
            "metrics": metrics_json,
        }
        # Query parameters cannot be NULL, so a missing value is a typed NULL in the SQL instead.
        optional: dict[str, str] = {}
        for name, given in (("git_sha", git_sha), ("spec_hash", spec_hash)):
            if given is None:
                optional[name] = "CAST(NULL AS STRING)"
            else:
                optional[name] = f"@{name}"
                params[name] = given
        self.ensure()
        self.warehouse.execute(_INSERT.format(**optional), params, source="registry.register_candidate")
        stored = self.get(model_name, version)
        if not self._same_place(stored.uri, uri):
            raise RegistryError(
                f"model {model_name!r} version {version!r} is already registered with uri {stored.uri!r}, "
                f"not {uri!r}. Versions are immutable: train under a new version id. {_LIST_HINT}."
            )
        return stored

    def register_trained(self, envelope: Envelope, uri: str) -> ModelRecord:
        """Register a trained envelope as a candidate and store its drift reference profile."""
        from airflow_ml_provider.core.drift.store import store_profile

        record = self.register_candidate(
            model_name=envelope.name,
            version=envelope.version,
            uri=uri,
            metrics=envelope.metrics,
            git_sha=envelope.git_sha,
            spec_hash=envelope.spec_hash,
            created_at=envelope.created_at,
        )
        # The drift reference, queryable next to the results it will be compared with.
        store_profile(self.warehouse, envelope.name, envelope.version, envelope.profile)
        return record

    def promote(self, model_name: str, version: str, blessed_by: str, reason: str) -> ModelRecord:
        """Make ``version`` the champion and archive the previous one, in one UPDATE."""
        target = self.get(model_name, version)
        if target.status == "rejected":
            raise RegistryError(
                f"model {model_name!r} version {version!r} was rejected ({target.status_reason or 'no reason given'}) "
                "and cannot be promoted. Train a new version, or promote another one."
            )
        if target.status == "champion":
            return target  # A retried promote is a no-op: the alias already points here.
        return self._move_champion(
            model_name,
            version,
            blessed_by=blessed_by,
            reason=reason,
            archived_reason=f"superseded by version {version} (promoted by {blessed_by})",
        )

    def reject(self, model_name: str, version: str, reason: str) -> ModelRecord:
        """Mark ``version`` rejected (e.g. it failed the evaluation gate); it can never be promoted."""
        target = self.get(model_name, version)
        if target.status == "champion":
            raise RegistryError(
                f"model {model_name!r} version {version!r} is the champion and cannot be rejected while it "
                "serves. Promote another version or roll back first."
            )
        self.warehouse.execute(
            _REJECT, {"model_name": model_name, "version": version, "reason": reason}, source="registry.reject"
        )
        stored = self.get(model_name, version)
        if stored.status != "rejected":
            raise RegistryError(
                f"model {model_name!r} version {version!r} became the champion while being rejected; "
                "it was left as champion. Roll back first if it must go."
            )
        return stored

    def rollback(self, model_name: str, blessed_by: str, reason: str | None = None) -> ModelRecord:
        """Restore the previous champion and archive the current one, in one UPDATE; return the restored record.

        The previous champion is the archived version promoted last. The restored version gets a new
        ``promoted_at``, so a second rollback undoes the first.
        """
        current = self.champion(model_name)
        if current is None:
            raise RegistryError(f"cannot roll back model {model_name}: it has no champion. {_LIST_HINT}.")
        found = self._records(_PREVIOUS_CHAMPION, {"model_name": model_name}, source="registry.rollback")
        if not found:
            raise RegistryError(
                f"cannot roll back model {model_name}: version {current.version} is its first champion, so "
                "there is no previous champion to restore. Promote a specific version instead."
            )
        previous = found[0]
        why = f": {reason}" if reason else ""
        return self._move_champion(
            model_name,
            previous.version,
            blessed_by=blessed_by,
            reason=f"rollback from version {current.version} by {blessed_by}{why}",
            archived_reason=f"rolled back to version {previous.version} by {blessed_by}{why}",
        )

    def _move_champion(
        self, model_name: str, version: str, *, blessed_by: str, reason: str, archived_reason: str
    ) -> ModelRecord:
        self.warehouse.execute(
            _PROMOTE,
            {
                "model_name": model_name,
                "version": version,
                "blessed_by": blessed_by,
                "reason": reason,
                "archived_reason": archived_reason,
            },
            source="registry.promote",
        )
        stored = self.get(model_name, version)
        if stored.status != "champion":
            raise RegistryError(
                f"model {model_name!r} version {version!r} was not promoted: it is {stored.status} "
                f"({stored.status_reason or 'no reason'}); another process changed it. The champion is unchanged."
            )
        return stored
