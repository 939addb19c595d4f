"""A local BigQuery for tests: the REST API (jobs, tables, datasets, uploads) on 127.0.0.1.

The real ``google-cloud-bigquery`` client and the Google provider's ``BigQueryHook`` talk to
it through ``BIGQUERY_EMULATOR_HOST`` (a setting the client library documents for emulators)
with real service-account credentials whose token endpoint is also here. Rows live in an
in-memory DuckDB, one catalog per project and one schema per dataset. It records every
request, so tests assert what BigQuery would receive, and enforces the documented rules in
``tests/fakes/bigquery_rules.py`` (each links its documentation page), so a test fails where
BigQuery would refuse. The Storage Read API (gRPC) is in ``tests/fakes/bigquery_storage.py``.

Why our own fake: see docs/adr/0002-gcp-write-path-and-local-endpoints.md (bqemulator, the
most complete emulator on PyPI, pins fastapi!=0.136.3 and sqlglot<30.12, both of which
Airflow 3.3 and this project need at other versions, and it copies a non-partitioned table
into a column-partitioned one without complaint).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import io
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from airflow_ml_provider.core.sql import to_duckdb
from airflow_ml_provider.exceptions import SQLTemplateError
from tests.fakes import bigquery_rules as rules
from tests.fakes.bigquery_rules import Field, TableMeta
from tests.fakes.google_auth import add_token_route, require_bearer
from tests.fakes.http import FakeServer, HTTPError, Request, Response

API = "/bigquery/v2/projects/(?P<project>[^/]+)"
ANON_DATASET = "_anon_results"
PAGE_ROWS = 1_000  # getQueryResults page size when the client sets none: paging is exercised


@dataclass
class Job:
    """A job as ``jobs.get`` returns it, plus the result rows of a query."""

    resource: dict[str, Any]
    result: pa.Table | None = None
    fields: list[Field] = field(default_factory=list)
    error: HTTPError | None = None
    dml_rows: int | None = None

    @property
    def kind(self) -> str:
        return next(k for k in ("query", "load", "copy", "extract") if k in self.resource["configuration"])


class FakeBigQuery:
    """BigQuery's REST surface that this project uses, backed by DuckDB, enforcing documented rules."""

    def __init__(self, *, gcs_endpoint: str | None = None, location: str = "US") -> None:
        self.location = location
        self.gcs_endpoint = gcs_endpoint
        self.con = duckdb.connect()
        self.lock = threading.RLock()
        self.datasets: set[tuple[str, str]] = set()
        self.tables: dict[tuple[str, str, str], TableMeta] = {}
        self.anon: dict[tuple[str, str, str], tuple[list[Field], pa.Table]] = {}
        self.jobs: dict[str, Job] = {}
        self.uploads: dict[str, tuple[dict[str, Any], bytearray]] = {}
        #: EXPORT DATA writes one file per this many rows (BigQuery shards by its own rules).
        self.export_shard_rows = 10_000
        self.server = FakeServer()
        add_token_route(self.server)
        self._routes()

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeBigQuery:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.con.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def job_configs(self, kind: str) -> list[dict[str, Any]]:
        """The ``configuration.<kind>`` of every job inserted (``query``, ``load``, ``copy``), in order."""
        return [
            j.resource["configuration"][kind]
            for j in self.jobs.values()
            if kind in j.resource["configuration"] and not j.resource["configuration"].get("dryRun")
        ]

    def requests_by_kind(self) -> dict[str, int]:
        """How many API calls of each kind the code made, e.g. ``{"jobs.insert:query": 4, "tables.get": 9}``."""
        counts: dict[str, int] = {}
        for r in self.requests:
            counts[describe(r)] = counts.get(describe(r), 0) + 1
        return dict(sorted(counts.items()))

    # --- direct access for tests (no HTTP) ----------------------------------------------

    def create_dataset(self, project: str, dataset: str) -> None:
        with self.lock:
            self._ensure_catalog(project)
            self._exec(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{dataset}"')
            self.datasets.add((project, dataset))

    def rows(self, project: str, dataset: str, table: str) -> pa.Table:
        with self.lock:
            return self.con.sql(f'SELECT * FROM "{project}"."{dataset}"."{table}"').to_arrow_table()

    def meta(self, project: str, dataset: str, table: str) -> TableMeta:
        return self.tables[(project, dataset, table)]

    # --- routes ----------------------------------------------------------------------

    def _routes(self) -> None:
        r = self.server.route
        r("POST", API + "/datasets", self._insert_dataset)
        r("GET", API + "/datasets/(?P<dataset>[^/]+)", self._get_dataset)
        r("DELETE", API + "/datasets/(?P<dataset>[^/]+)", self._delete_dataset)
        r("GET", API + "/datasets/(?P<dataset>[^/]+)/tables", self._list_tables)
        r("POST", API + "/datasets/(?P<dataset>[^/]+)/tables", self._insert_table)
        r("GET", API + "/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)", self._get_table)
        r("PATCH", API + "/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)", self._patch_table)
        r("DELETE", API + "/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)", self._delete_table)
        r("POST", API + "/jobs", self._insert_job)
        r("GET", API + "/jobs/(?P<job_id>[^/]+)", self._get_job)
        r("POST", API + "/jobs/(?P<job_id>[^/]+)/cancel", self._cancel_job)
        r("GET", API + "/queries/(?P<job_id>[^/]+)", self._query_results)
        r("POST", "/upload" + API + "/jobs", self._start_upload)
        r("PUT", "/upload" + API + "/jobs", self._continue_upload)

    def _authorized(self, request: Request) -> None:
        require_bearer(request)

    # --- datasets --------------------------------------------------------------------

    def _insert_dataset(self, request: Request, project: str) -> Response:
        self._authorized(request)
        ref = request.json()["datasetReference"]
        if (project, ref["datasetId"]) in self.datasets:
            raise HTTPError(409, "duplicate", f"Already Exists: Dataset {project}:{ref['datasetId']}")
        self.create_dataset(project, ref["datasetId"])
        return Response(200, self._dataset_resource(project, ref["datasetId"]))

    def _get_dataset(self, request: Request, project: str, dataset: str) -> Response:
        self._authorized(request)
        self._require_dataset(project, dataset)
        return Response(200, self._dataset_resource(project, dataset))

    def _delete_dataset(self, request: Request, project: str, dataset: str) -> Response:
        self._authorized(request)
        self._require_dataset(project, dataset)
        with self.lock:
            contents = [k for k in self.tables if k[:2] == (project, dataset)]
            if contents and request.query.get("deleteContents") != "true":
                raise HTTPError(400, "resourceInUse", f"Dataset {project}:{dataset} is still in use")
            for key in contents:
                self._drop(key)
            self._exec(f'DROP SCHEMA IF EXISTS "{project}"."{dataset}" CASCADE')
            self.datasets.discard((project, dataset))
        return Response(204)

    def _dataset_resource(self, project: str, dataset: str) -> dict[str, Any]:
        return {
            "kind": "bigquery#dataset",
            "id": f"{project}:{dataset}",
            "datasetReference": {"projectId": project, "datasetId": dataset},
            "location": self.location,
        }

    def _require_dataset(self, project: str, dataset: str) -> None:
        if (project, dataset) not in self.datasets:
            raise HTTPError(404, "notFound", f"Not found: Dataset {project}:{dataset}")

    # --- tables ----------------------------------------------------------------------

    def _list_tables(self, request: Request, project: str, dataset: str) -> Response:
        self._authorized(request)
        self._require_dataset(project, dataset)
        items = [
            {
                "kind": "bigquery#table",
                "id": m.table_id,
                "tableReference": {"projectId": project, "datasetId": dataset, "tableId": m.table},
                "type": m.kind,
            }
            for k, m in sorted(self.tables.items())
            if k[:2] == (project, dataset)
        ]
        return Response(200, {"kind": "bigquery#tableList", "tables": items, "totalItems": len(items)})

    def _insert_table(self, request: Request, project: str, dataset: str) -> Response:
        self._authorized(request)
        body = request.json()
        name = body["tableReference"]["tableId"]
        with self.lock:
            self._require_dataset(project, dataset)
            if (project, dataset, name) in self.tables:
                raise HTTPError(409, "duplicate", f"Already Exists: Table {project}:{dataset}.{name}")
            partitioning = body.get("timePartitioning") or {}
            meta = TableMeta(
                project,
                dataset,
                name,
                [Field.from_api(f) for f in body.get("schema", {}).get("fields", [])],
                partition_field=partitioning.get("field") if partitioning else None,
                clustering=list((body.get("clustering") or {}).get("fields", [])),
                expires_ms=body.get("expirationTime"),
                description=body.get("description"),
            )
            self._create(meta)
            return Response(200, self._table_resource(meta))

    def _get_table(self, request: Request, project: str, dataset: str, table: str) -> Response:
        self._authorized(request)
        return Response(200, self._table_resource(self._require_table(project, dataset, table)))

    def _patch_table(self, request: Request, project: str, dataset: str, table: str) -> Response:
        self._authorized(request)
        meta = self._require_table(project, dataset, table)
        body = request.json()
        unsupported = set(body) - {"expirationTime", "description", "labels", "tableReference", "etag"}
        if unsupported:
            raise HTTPError(400, "invalid", f"the fake patches expirationTime and description only, not {unsupported}")
        if "expirationTime" in body:
            meta.expires_ms = body["expirationTime"]
        if "description" in body:
            meta.description = body["description"]
        return Response(200, self._table_resource(meta))

    def _delete_table(self, request: Request, project: str, dataset: str, table: str) -> Response:
        self._authorized(request)
        with self.lock:
            self._require_table(project, dataset, table)
            self._drop((project, dataset, table))
        return Response(204)

    def _require_table(self, project: str, dataset: str, table: str) -> TableMeta:
        meta = self.tables.get((project, dataset, table))
        if meta is None:
            raise HTTPError(404, "notFound", f"Not found: Table {project}:{dataset}.{table}")
        return meta

    def _table_resource(self, meta: TableMeta) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "bigquery#table",
            "id": meta.table_id,
            "tableReference": {"projectId": meta.project, "datasetId": meta.dataset, "tableId": meta.table},
            "schema": {"fields": [f.api() for f in meta.schema]},
            "type": meta.kind,
            "location": self.location,
            "creationTime": str(meta.created_ms),
        }
        if meta.kind == "TABLE":
            with self.lock:
                out["numRows"] = str(self._count(meta))
        if meta.partition_field:
            out["timePartitioning"] = {"type": "DAY", "field": meta.partition_field}
        if meta.clustering:
            out["clustering"] = {"fields": list(meta.clustering)}
        if meta.expires_ms:
            out["expirationTime"] = meta.expires_ms
        if meta.description:
            out["description"] = meta.description
        return out

    # --- storage (DuckDB) --------------------------------------------------------------

    def _ensure_catalog(self, project: str) -> None:
        attached = {r[0] for r in self._exec("SELECT database_name FROM duckdb_databases()")}
        if project not in attached:
            self._exec(f"ATTACH ':memory:' AS \"{project}\"")

    def _exec(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one DuckDB statement and consume its result (DuckDB refuses new work until then)."""
        return self.con.execute(sql, params).fetchall()

    @staticmethod
    def _name(meta_or_key: TableMeta | tuple[str, str, str]) -> str:
        p, d, t = (
            (meta_or_key.project, meta_or_key.dataset, meta_or_key.table)
            if isinstance(meta_or_key, TableMeta)
            else meta_or_key
        )
        return f'"{p}"."{d}"."{t}"'

    def _create(self, meta: TableMeta) -> None:
        columns = ", ".join(
            f'"{f.name}" {rules.duckdb_type(f)}{" NOT NULL" if f.mode == "REQUIRED" else ""}' for f in meta.schema
        )
        self._exec(f"CREATE TABLE {self._name(meta)} ({columns})")
        meta.created_ms = int(time.time() * 1000)
        self.tables[(meta.project, meta.dataset, meta.table)] = meta

    def _drop(self, key: tuple[str, str, str]) -> None:
        meta = self.tables.pop(key)
        self._exec(f"DROP {'VIEW' if meta.kind == 'VIEW' else 'TABLE'} IF EXISTS {self._name(key)}")

    def _count(self, meta: TableMeta) -> int:
        return int(self._exec(f"SELECT COUNT(*) FROM {self._name(meta)}")[0][0])

    def table_arrow(self, project: str, dataset: str, table: str) -> tuple[list[Field], pa.Table]:
        """Schema and rows of a table or of a query's anonymous result (for the Storage Read API)."""
        key = (project, dataset, table)
        if key in self.anon:
            return self.anon[key]
        with self.lock:
            meta = self._require_table(project, dataset, table)
            return meta.schema, self.con.sql(f"SELECT * FROM {self._name(meta)}").to_arrow_table()

    def _insert_rows(self, meta: TableMeta, data: pa.Table, *, replace_partition: dt.date | None = None) -> None:
        """Insert ``data`` (by column name); optionally first delete one partition, in one transaction."""
        self.con.register("_fake_rows", data)
        try:
            self._exec("BEGIN TRANSACTION")
            if replace_partition is not None:
                self._exec(f'DELETE FROM {self._name(meta)} WHERE "{meta.partition_field}" = ?', [replace_partition])
            if data.num_rows:
                self._exec(f"INSERT INTO {self._name(meta)} BY NAME SELECT * FROM _fake_rows")
            self._exec("COMMIT")
        except duckdb.Error as err:
            self._exec("ROLLBACK")
            raise HTTPError(400, "invalid", f"Error while writing {meta.table_id}: {err}") from err
        finally:
            self.con.unregister("_fake_rows")

    # --- writes to a destination (query results, loads, copies) ----------------------

    def _write(
        self,
        dest: dict[str, Any],
        data: pa.Table,
        new_fields: list[Field],
        config: dict[str, Any],
        *,
        default_disposition: str,
        by_position: bool,
    ) -> None:
        """Write rows to ``dest`` (maybe ``table$YYYYMMDD``) under BigQuery's write and create dispositions."""
        project, dataset = dest["projectId"], dest["datasetId"]
        name, partition = rules.parse_decorator(dest["tableId"])
        disposition = config.get("writeDisposition") or default_disposition
        with self.lock:
            self._require_dataset(project, dataset)
            meta = self.tables.get((project, dataset, name))
            if meta is None:
                if partition is not None or config.get("createDisposition") == "CREATE_NEVER":
                    raise HTTPError(404, "notFound", f"Not found: Table {project}:{dataset}.{name}")
                partitioning = config.get("timePartitioning") or {}
                meta = TableMeta(
                    project,
                    dataset,
                    name,
                    new_fields,
                    partition_field=partitioning.get("field"),
                    clustering=list((config.get("clustering") or {}).get("fields", [])),
                )
                self._create(meta)
                self._insert_rows(meta, data)
                return
            if meta.kind != "TABLE":
                raise HTTPError(400, "invalid", f"Cannot write to {meta.table_id}: it is a {meta.kind}")
            rules.check_destination_spec(meta, config)
            if partition is not None:
                if meta.partition_field is None:
                    raise HTTPError(
                        400,
                        "invalid",
                        f"Cannot write to partition {dest['tableId']}: {meta.table_id} is not partitioned",
                    )
                rules.check_partition_rows(meta, partition, data)
            truncate_table = disposition == "WRITE_TRUNCATE" and partition is None
            if not truncate_table:
                rules.check_schema_compatible(meta, new_fields, by_position=by_position)
                rules.check_required_values(meta, data)
            if disposition == "WRITE_EMPTY":
                where = f' WHERE "{meta.partition_field}" = ?' if partition is not None else ""
                n = self._exec(f"SELECT COUNT(*) FROM {self._name(meta)}{where}", [partition] if partition else [])
                if n[0][0]:
                    raise HTTPError(409, "duplicate", f"Already Exists: Table {meta.table_id}")
            if truncate_table:
                # https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobConfigurationQuery
                # WRITE_TRUNCATE: overwrite the table data and use the schema of the new rows;
                # partitioning and clustering stay.
                if meta.partition_field and meta.partition_field not in data.column_names:
                    raise HTTPError(400, "invalid", f"Partitioning column {meta.partition_field} is missing")
                self._drop((project, dataset, name))
                meta = TableMeta(
                    project, dataset, name, new_fields, partition_field=meta.partition_field, clustering=meta.clustering
                )
                self._create(meta)
                self._insert_rows(meta, data)
            else:
                replace = partition if disposition == "WRITE_TRUNCATE" else None
                self._insert_rows(meta, data, replace_partition=replace)

    # --- jobs ------------------------------------------------------------------------

    def _insert_job(self, request: Request, project: str) -> Response:
        self._authorized(request)
        return Response(200, self._run_job(project, request.json()).resource)

    def _run_job(self, project: str, body: dict[str, Any], upload: bytes | None = None) -> Job:
        ref = dict(body.get("jobReference") or {})
        ref.setdefault("projectId", project)
        ref.setdefault("jobId", "job_" + uuid.uuid4().hex)
        ref.setdefault("location", self.location)
        if ref["jobId"] in self.jobs:
            # https://cloud.google.com/bigquery/docs/running-jobs#generate-jobid: job ids are unique per project
            raise HTTPError(409, "duplicate", f"Already Exists: Job {project}:{ref['location']}.{ref['jobId']}")
        now = str(int(time.time() * 1000))
        resource = {
            "kind": "bigquery#job",
            "id": f"{project}:{ref['location']}.{ref['jobId']}",
            "jobReference": ref,
            "configuration": json.loads(json.dumps(body.get("configuration", {}))),
            "status": {"state": "DONE"},
            "statistics": {"creationTime": now, "startTime": now, "endTime": now},
            "user_email": "airflow-ml-tests@example.iam.gserviceaccount.com",
        }
        job = Job(resource)
        dry = bool(resource["configuration"].get("dryRun"))
        try:
            if job.kind == "query":
                self._run_query(project, job, dry)
            elif job.kind == "load":
                self._run_load(job, upload)
            elif job.kind == "copy":
                self._run_copy(job)
            else:
                raise HTTPError(400, "invalid", f"the fake does not run {job.kind} jobs")
        except HTTPError as err:
            job.error = err
            resource["status"] = {
                "state": "DONE",
                "errorResult": {"reason": err.reason, "message": err.message},
                "errors": [{"reason": err.reason, "message": err.message}],
            }
        if not dry:
            self.jobs[ref["jobId"]] = job
        return job

    def _get_job(self, request: Request, project: str, job_id: str) -> Response:
        self._authorized(request)
        return Response(200, self._require_job(project, job_id).resource)

    def _cancel_job(self, request: Request, project: str, job_id: str) -> Response:
        self._authorized(request)
        return Response(200, {"kind": "bigquery#jobCancelResponse", "job": self._require_job(project, job_id).resource})

    def _require_job(self, project: str, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise HTTPError(404, "notFound", f"Not found: Job {project}:{self.location}.{job_id}")
        return job

    def _query_results(self, request: Request, project: str, job_id: str) -> Response:
        """``jobs.getQueryResults``: a failed job answers with its error; rows come in pages."""
        self._authorized(request)
        job = self._require_job(project, job_id)
        if job.error is not None:
            raise job.error
        out: dict[str, Any] = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": job.resource["jobReference"],
            "jobComplete": True,
            "schema": {"fields": [f.api() for f in job.fields]},
            "totalRows": str(job.result.num_rows if job.result is not None else 0),
            "cacheHit": False,
        }
        if job.dml_rows is not None:
            out["numDmlAffectedRows"] = str(job.dml_rows)
        if job.result is not None:
            start = int(request.query.get("pageToken") or request.query.get("startIndex") or 0)
            size = int(request.query.get("maxResults") or PAGE_ROWS)
            page = job.result.slice(start, size)
            int64_ts = request.query.get("formatOptions.useInt64Timestamp", "").lower() == "true"
            out["rows"] = [encode_row(job.fields, row, int64_ts) for row in page.to_pylist()]
            if start + size < job.result.num_rows:
                out["pageToken"] = str(start + size)
        return Response(200, out)

    # --- query jobs ------------------------------------------------------------------

    def _run_query(self, project: str, job: Job, dry: bool) -> None:
        config = job.resource["configuration"]["query"]
        if config.get("useLegacySql", True) is not False:
            raise HTTPError(400, "invalid", "the fake runs GoogleSQL only: set useLegacySql=false")
        sql = config["query"]
        default = config.get("defaultDataset") or {}
        default_project = default.get("projectId", project)
        default_dataset = default.get("datasetId")
        try:
            tree = sqlglot.parse_one(sql, read="bigquery")
        except sqlglot.errors.ParseError as err:
            raise HTTPError(400, "invalidQuery", f"Syntax error: {err}") from err
        params = decode_parameters(config.get("queryParameters", []))
        with self.lock:
            referenced = self._referenced_tables(tree, default_project, default_dataset)
            processed = sum(self._table_bytes(key) for key in referenced)
            billed = rules.bytes_billed(processed, len(referenced))
            job.resource["statistics"].update(
                totalBytesProcessed=str(processed),
                query={"totalBytesProcessed": str(processed), "totalBytesBilled": str(0 if dry else billed)},
            )
            if dry:
                return
            rules.check_bytes_billed(config.get("maximumBytesBilled"), billed)
            self._use(default_project, default_dataset)
            statement = self._statement(tree, sql, job, params, default_project, default_dataset)
            job.resource["statistics"]["query"]["statementType"] = statement

    def _statement(
        self,
        tree: exp.Expression,
        sql: str,
        job: Job,
        params: dict[str, Any],
        project: str,
        dataset: str | None,
    ) -> str:
        config = job.resource["configuration"]["query"]
        if isinstance(tree, exp.Export):
            self._export(tree, params)
            return "EXPORT_DATA"
        if isinstance(tree, exp.Create):
            return self._ddl(tree, sql, params, project, dataset)
        if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge):
            job.dml_rows = self._dml(sql, params)
            return tree.key.upper()
        if not isinstance(tree, exp.Query):
            raise HTTPError(400, "invalidQuery", f"the fake does not run {tree.key.upper()} statements")
        data = self._select(sql, params)
        fields = [rules.field_from_arrow(f.name, f.type) for f in data.schema]
        job.result, job.fields = data, fields
        dest = config.get("destinationTable")
        if dest is None:
            ref = job.resource["jobReference"]
            dest = {"projectId": ref["projectId"], "datasetId": ANON_DATASET, "tableId": "anon_" + ref["jobId"]}
            config["destinationTable"] = dest
            self.anon[(dest["projectId"], ANON_DATASET, dest["tableId"])] = (fields, data)
        else:
            dest.setdefault("projectId", project)
            self._write(dest, data, fields, config, default_disposition="WRITE_EMPTY", by_position=True)
        return "SELECT"

    def _use(self, project: str, dataset: str | None) -> None:
        self._ensure_catalog(project)
        if dataset:
            self._require_dataset(project, dataset)
            self._exec(f'USE "{project}"."{dataset}"')

    def _referenced_tables(self, tree: exp.Expression, project: str, dataset: str | None) -> list[tuple[str, str, str]]:
        ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
        created = tree.this.this if isinstance(tree, exp.Create) and isinstance(tree.this, exp.Schema) else None
        found: list[tuple[str, str, str]] = []
        for table in tree.find_all(exp.Table):
            if table is created or (isinstance(tree, exp.Create) and table is tree.this):
                continue
            if not table.name or (not table.db and table.name in ctes) or isinstance(table.parent, exp.Unnest):
                continue
            if isinstance(table.this, exp.Func | exp.Unnest):
                continue
            key = (table.catalog or project, table.db or dataset or "", table.name)
            if key[2] in ctes and not table.db:
                continue
            if key not in self.tables:
                raise HTTPError(
                    404,
                    "notFound",
                    f"Not found: Table {key[0]}:{key[1]}.{key[2]} was not found in location {self.location}",
                )
            if key not in found:
                found.append(key)
        return found

    def _table_bytes(self, key: tuple[str, str, str]) -> int:
        meta = self.tables[key]
        if meta.kind != "TABLE":
            return 0
        return int(self.con.sql(f"SELECT * FROM {self._name(meta)}").to_arrow_table().nbytes)

    def _duckdb_sql(self, sql: str) -> str:
        try:
            return to_duckdb(sql, "<fake bigquery>")
        except SQLTemplateError as err:
            raise HTTPError(400, "invalidQuery", str(err)) from err

    def _select(self, sql: str, params: dict[str, Any]) -> pa.Table:
        text = self._duckdb_sql(sql)
        try:
            data = self.con.sql(text, params=params or None).to_arrow_table()
        except duckdb.Error as err:
            raise HTTPError(400, "invalidQuery", f"Query error: {err}") from err
        return normalise(data)

    def _dml(self, sql: str, params: dict[str, Any]) -> int:
        try:
            self._exec("BEGIN TRANSACTION")
            rows = self._exec(self._duckdb_sql(sql), params or None)
            self._exec("COMMIT")
        except duckdb.Error as err:
            self._exec("ROLLBACK")
            raise HTTPError(400, "invalidQuery", f"Query error: {err}") from err
        return int(rows[0][0]) if rows and rows[0] else 0

    def _ddl(self, tree: exp.Create, sql: str, params: dict[str, Any], project: str, dataset: str | None) -> str:
        kind = str(tree.args.get("kind", "")).upper()
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        key = (target.catalog or project, target.db or dataset or "", target.name)
        self._require_dataset(key[0], key[1])
        exists = key in self.tables
        if kind == "VIEW":
            if exists and not tree.args.get("replace"):
                if tree.args.get("exists"):
                    return "CREATE_VIEW"
                raise HTTPError(409, "duplicate", f"Already Exists: Table {key[0]}:{key[1]}.{key[2]}")
            if exists:
                self._drop(key)
            select = tree.expression
            text = self._duckdb_sql(select.sql(dialect="bigquery"))
            try:
                self._exec(f"CREATE VIEW {self._name(key)} AS {text}")
                sample = self.con.sql(f"SELECT * FROM {self._name(key)} LIMIT 0").to_arrow_table()
            except duckdb.Error as err:
                raise HTTPError(400, "invalidQuery", f"Query error: {err}") from err
            schema = [rules.field_from_arrow(f.name, f.type) for f in normalise(sample).schema]
            self.tables[key] = TableMeta(*key, schema, kind="VIEW", created_ms=int(time.time() * 1000))
            return "CREATE_VIEW"
        if kind != "TABLE" or not isinstance(tree.this, exp.Schema):
            raise HTTPError(
                400, "invalidQuery", f"the fake runs CREATE TABLE (with columns) and CREATE VIEW, not: {sql[:80]}"
            )
        if exists:
            if tree.args.get("exists"):
                return "CREATE_TABLE"
            raise HTTPError(409, "duplicate", f"Already Exists: Table {key[0]}:{key[1]}.{key[2]}")
        schema = [ddl_field(c) for c in tree.this.expressions if isinstance(c, exp.ColumnDef)]
        props = tree.args.get("properties")
        partition, clustering = None, []
        for prop in props.expressions if props else []:
            if isinstance(prop, exp.PartitionedByProperty):
                column = prop.this.find(exp.Column)
                partition = column.name if column is not None else prop.this.name
            elif isinstance(prop, exp.Cluster):
                clustering = [e.name for e in prop.expressions]
        self._create(TableMeta(*key, schema, partition_field=partition, clustering=clustering))
        return "CREATE_TABLE"

    def _export(self, tree: exp.Export, params: dict[str, Any]) -> None:
        """``EXPORT DATA``: Parquet shards to GCS; overwrite replaces same-named files and keeps the others.

        https://cloud.google.com/bigquery/docs/reference/standard-sql/export-statements ("uri: ...
        must contain exactly one * wildcard"; "overwrite: If true, overwrites any existing files
        with the same URI. Otherwise, if the destination storage bucket is not empty, the
        statement returns an error").
        """
        options: dict[str, Any] = {}
        for prop in tree.args["options"].expressions:
            if isinstance(prop, exp.FileFormatProperty):
                options["format"] = prop.this.name
            else:
                value = prop.args["value"]
                options[prop.name.lower()] = value.this if isinstance(value, exp.Boolean) else value.name
        uri, fmt = str(options.get("uri", "")), str(options.get("format", "")).upper()
        if fmt != "PARQUET":
            raise HTTPError(400, "invalidQuery", f"the fake exports PARQUET only, not {fmt or 'no format'}")
        if not uri.startswith("gs://") or uri.count("*") != 1:
            raise HTTPError(
                400, "invalidQuery", f"Invalid value: the export URI {uri} must be gs:// with exactly one '*'"
            )
        if self.gcs_endpoint is None:
            raise HTTPError(400, "invalid", "the fake BigQuery has no GCS endpoint to export to")
        bucket_name, _, pattern = uri[len("gs://") :].partition("/")
        bucket = self._gcs().bucket(bucket_name)
        prefix = pattern.split("*", 1)[0]
        if options.get("overwrite") is not True and any(True for _ in bucket.list_blobs(prefix=prefix, max_results=1)):
            raise HTTPError(
                400, "invalidQuery", f"Invalid value: the destination {uri} is not empty; set overwrite = true"
            )
        data = self._select(tree.this.sql(dialect="bigquery"), params)
        shards = max(1, math.ceil(data.num_rows / self.export_shard_rows))
        for i in range(shards):
            buffer = io.BytesIO()
            pq.write_table(data.slice(i * self.export_shard_rows, self.export_shard_rows), buffer)
            bucket.blob(pattern.replace("*", f"{i:012d}")).upload_from_string(buffer.getvalue())

    def _gcs(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="fake", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.gcs_endpoint}
        )

    # --- load and copy jobs ----------------------------------------------------------

    def _run_load(self, job: Job, upload: bytes | None) -> None:
        config = job.resource["configuration"]["load"]
        if config.get("sourceFormat") != "PARQUET":
            raise HTTPError(400, "invalid", f"the fake loads PARQUET only, not {config.get('sourceFormat')}")
        if upload is None:
            raise HTTPError(400, "invalid", "the fake loads uploaded files only (no sourceUris)")
        try:
            data = pq.read_table(io.BytesIO(upload))
        except pa.ArrowInvalid as err:
            raise HTTPError(400, "invalid", f"Error while reading data: {err}") from err
        fields = [rules.field_from_arrow(f.name, f.type, f.nullable) for f in data.schema]
        with self.lock:
            self._write(
                config["destinationTable"],
                normalise(data),
                fields,
                config,
                default_disposition="WRITE_APPEND",
                by_position=False,
            )

    def _run_copy(self, job: Job) -> None:
        config = job.resource["configuration"]["copy"]
        sources = config.get("sourceTables") or [config["sourceTable"]]
        if len(sources) != 1:
            raise HTTPError(400, "invalid", "the fake copies one source table at a time")
        src = sources[0]
        dest = config["destinationTable"]
        with self.lock:
            source = self._require_table(src["projectId"], src["datasetId"], rules.parse_decorator(src["tableId"])[0])
            name, _ = rules.parse_decorator(dest["tableId"])
            rules.check_copy(source, self.tables.get((dest["projectId"], dest["datasetId"], name)))
            _, data = self.table_arrow(source.project, source.dataset, source.table)
            spec = {
                **config,
                "timePartitioning": {"field": source.partition_field} if source.partition_field else None,
                "clustering": {"fields": source.clustering} if source.clustering else None,
            }
            self._write(dest, data, list(source.schema), spec, default_disposition="WRITE_EMPTY", by_position=False)

    # --- uploads (resumable and multipart), as google-resumable-media sends them ------

    def _start_upload(self, request: Request, project: str) -> Response:
        self._authorized(request)
        kind = request.query.get("uploadType")
        if kind == "multipart":
            metadata, data = parse_multipart(request)
            return Response(200, self._run_job(project, metadata, data).resource)
        if kind != "resumable":
            raise HTTPError(400, "invalid", f"unsupported uploadType {kind!r}")
        upload_id = uuid.uuid4().hex
        self.uploads[upload_id] = (request.json(), bytearray())
        location = f"{self.url}/upload/bigquery/v2/projects/{project}/jobs?uploadType=resumable&upload_id={upload_id}"
        return Response(200, None, {"Location": location})

    def _continue_upload(self, request: Request, project: str) -> Response:
        upload_id = request.query.get("upload_id", "")
        if upload_id not in self.uploads:
            raise HTTPError(404, "notFound", f"no resumable upload {upload_id}")
        metadata, buffer = self.uploads[upload_id]
        buffer.extend(request.body)
        content_range = request.headers.get("content-range", "")
        total = content_range.rsplit("/", 1)[-1]
        if total == "*" or (total.isdigit() and len(buffer) < int(total)):
            return Response(308, None, {"Range": f"bytes=0-{len(buffer) - 1}"})
        del self.uploads[upload_id]
        return Response(200, self._run_job(project, metadata, bytes(buffer)).resource)


# --- encoding ------------------------------------------------------------------------


def describe(request: Request) -> str:
    """A request as the API method it calls, e.g. ``jobs.insert:query`` or ``tables.get``."""
    path = request.path
    if path.endswith("/token"):
        return "oauth2.token"
    if path.startswith("/upload/"):
        return "jobs.insert:load (upload)" if request.method == "POST" else "jobs.insert:load (upload data)"
    parts = path.split("/")[5:]  # after /bigquery/v2/projects/<p>/
    if parts[:1] == ["jobs"] and len(parts) == 1 and request.method == "POST":
        config = request.json().get("configuration", {})
        kind = next((k for k in ("query", "load", "copy", "extract") if k in config), "?")
        return f"jobs.insert:{kind}{' (dry run)' if config.get('dryRun') else ''}"
    if parts[:1] == ["queries"]:
        return "jobs.getQueryResults"
    resource = "tables" if "tables" in parts else parts[0] if parts else "?"
    single = len(parts) % 2 == 0
    verb = {"GET": "get" if single else "list", "POST": "insert", "PATCH": "patch", "DELETE": "delete"}
    return f"{resource}.{verb.get(request.method, request.method.lower())}"


def decode_parameters(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """Named query parameters as Python values (positional ones are not used by this project)."""
    out: dict[str, Any] = {}
    for p in parameters:
        if "name" not in p:
            raise HTTPError(400, "invalid", "the fake supports named query parameters only")
        kind = p["parameterType"]["type"]
        raw = (p.get("parameterValue") or {}).get("value")
        if raw is None:
            out[p["name"]] = None
        elif kind in ("INT64", "INTEGER"):
            out[p["name"]] = int(raw)
        elif kind in ("FLOAT64", "FLOAT"):
            out[p["name"]] = float(raw)
        elif kind in ("BOOL", "BOOLEAN"):
            out[p["name"]] = str(raw).lower() == "true"
        elif kind == "DATE":
            out[p["name"]] = dt.date.fromisoformat(raw)
        elif kind == "TIMESTAMP":
            out[p["name"]] = dt.datetime.fromisoformat(str(raw).replace(" ", "T").replace("Z", "+00:00"))
        elif kind == "STRING":
            out[p["name"]] = str(raw)
        else:
            raise HTTPError(400, "invalid", f"the fake has no query parameters of type {kind}")
    return out


def normalise(data: pa.Table) -> pa.Table:
    """DuckDB's Arrow types as BigQuery would type the columns (INT64, FLOAT64, microsecond UTC)."""
    fields = []
    for f in data.schema:
        kind = f.type
        if pa.types.is_integer(kind):
            kind = pa.int64()
        elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            kind = pa.float64()
        elif pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_timestamp(kind):
            kind = pa.timestamp("us", tz="UTC" if kind.tz else None)
        fields.append(pa.field(f.name, kind, nullable=True))
    return data.cast(pa.schema(fields))


def ddl_field(column: exp.ColumnDef) -> Field:
    """A DDL column as a schema field: ``NOT NULL`` makes it REQUIRED, ``ARRAY<T>`` REPEATED."""
    kind = column.args["kind"]
    required = any(isinstance(c.kind, exp.NotNullColumnConstraint) for c in column.constraints)
    if kind.is_type(exp.DataType.Type.ARRAY):
        inner = Field.from_api({"name": column.name, "type": kind.expressions[0].sql(dialect="bigquery")})
        return Field(column.name, inner.type, "REPEATED")
    if kind.is_type(exp.DataType.Type.STRUCT):
        members = [ddl_field(e) for e in kind.expressions if isinstance(e, exp.ColumnDef)]
        return Field(column.name, "RECORD", "REQUIRED" if required else "NULLABLE", members)
    return Field.from_api(
        {"name": column.name, "type": kind.sql(dialect="bigquery"), "mode": "REQUIRED" if required else "NULLABLE"}
    )


def _encode(f: Field, value: Any, int64_ts: bool) -> Any:
    if value is None:
        return None
    if f.type == "RECORD":
        return {"f": [{"v": _encode(s, value.get(s.name), int64_ts)} for s in f.fields]}
    if f.type == "BOOLEAN":
        return "true" if value else "false"
    if f.type == "FLOAT":
        return (
            "NaN"
            if value != value
            else ("Infinity" if value == math.inf else "-Infinity" if value == -math.inf else repr(value))
        )
    if f.type == "TIMESTAMP":
        micros = (
            int(value.timestamp() * 1_000_000)
            if value.tzinfo
            else int(value.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
        )
        return str(micros) if int64_ts else repr(micros / 1_000_000)
    if f.type in ("DATE", "DATETIME"):
        return value.isoformat()
    if f.type == "BYTES":
        return base64.b64encode(value).decode()
    return str(value)


def encode_row(fields: list[Field], row: dict[str, Any], int64_ts: bool) -> dict[str, Any]:
    """One row in the REST API's ``{"f": [{"v": ...}]}`` form, every scalar a string."""
    cells = []
    for f in fields:
        value = row.get(f.name)
        if f.mode == "REPEATED":
            single = Field(f.name, f.type, "NULLABLE", f.fields)
            cells.append({"v": [{"v": _encode(single, v, int64_ts)} for v in value or []]})
        else:
            cells.append({"v": _encode(f, value, int64_ts)})
    return {"f": cells}


def parse_multipart(request: Request) -> tuple[dict[str, Any], bytes]:
    """The JSON metadata and the file of a ``multipart/related`` upload."""
    head = f"Content-Type: {request.headers.get('content-type')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    parts = list(message.iter_parts())  # type: ignore[attr-defined]
    return json.loads(parts[0].get_content()), parts[1].get_payload(decode=True)


def iter_batches(data: pa.Table, rows: int) -> Iterator[pa.RecordBatch]:
    """``data`` as record batches of at most ``rows`` rows."""
    yield from data.to_batches(max_chunksize=rows)
