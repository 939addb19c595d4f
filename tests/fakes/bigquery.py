"""A local BigQuery for tests: the REST API (jobs, tables, datasets, uploads) on 127.0.0.1.

The real ``google-cloud-bigquery`` client and the Google provider's ``BigQueryHook`` talk to
it through ``BIGQUERY_EMULATOR_HOST`` (a setting the client library documents for emulators)
with real service-account credentials whose token endpoint is also here. Rows live in an
in-memory DuckDB, one catalog per project and one schema per dataset. It records every
request, so tests assert what BigQuery would receive, and enforces the documented rules in
``tests/fakes/bigquery_rules.py`` (each links its documentation page), so a test fails where
BigQuery would refuse. Datasets have locations (EXPORT DATA checks the bucket's, which the local
GCS reports), and tables whose expiry passes are deleted, on a clock ``advance`` moves forward.
The Storage Read API (gRPC) is in ``tests/fakes/bigquery_storage.py``.

Why our own fake: see docs/adr/0002-gcp-write-path-and-local-endpoints.md (bqemulator, the
most complete emulator on PyPI, pins fastapi!=0.136.3 and sqlglot<30.12, both of which
Airflow 3.3 and this project need at other versions, and it copies a non-partitioned table
into a column-partitioned one without complaint).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.parser
import email.policy
import io
import json
import threading
import time
import uuid
from typing import Any

import duckdb
import duckdb.func
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot

from airflow_ml_provider.core.inference.shards import fingerprint64
from tests.fakes import bigquery_billing as billing
from tests.fakes import bigquery_rules as rules
from tests.fakes.bigquery_rules import Field, TableMeta
from tests.fakes.bigquery_sql import Job, QueryStatements, decode_parameters, encode_row, normalise
from tests.fakes.google_auth import add_token_route, require_bearer
from tests.fakes.http import FakeServer, HTTPError, Request, Response

API = "/bigquery/v2/projects/(?P<project>[^/]+)"
PAGE_ROWS = 1_000  # getQueryResults page size when the client sets none: paging is exercised


class FakeBigQuery(QueryStatements):
    """BigQuery's REST surface that this project uses, backed by DuckDB, enforcing documented rules."""

    def __init__(self, *, gcs_endpoint: str | None = None, location: str = "US") -> None:
        self.location = location
        self.gcs_endpoint = gcs_endpoint
        self.con = duckdb.connect()
        # BigQuery's FARM_FINGERPRINT, as the embedded warehouse defines it (core/inference/shards.py): the
        # fake computes the same values BigQuery documents, so shard membership is real here.
        self.con.create_function("farm_fingerprint", fingerprint64, ["varchar"], "bigint", type=duckdb.func.ARROW)
        self.lock = threading.RLock()
        #: (project, dataset) -> its location (BigQuery's spelling: ``US``, ``EU``, ``us-central1``).
        self.datasets: dict[tuple[str, str], str] = {}
        #: Added to the wall clock when expiry is judged: a test moves time forward with ``advance``.
        self.clock_offset_ms = 0
        self.tables: dict[tuple[str, str, str], TableMeta] = {}
        self.anon: dict[tuple[str, str, str], tuple[list[Field], pa.Table]] = {}
        self.jobs: dict[str, Job] = {}
        self.uploads: dict[str, tuple[dict[str, Any], bytearray]] = {}
        #: EXPORT DATA writes one file per this many rows (BigQuery shards by its own rules).
        self.export_shard_rows = 10_000
        #: Bill query jobs by BigQuery's documented on-demand rules (tests/fakes/bigquery_billing.py:
        #: referenced columns sized by type, partition pruning, 10 MB minimums) instead of whole tables.
        self.documented_billing = False
        #: Sizes of a synthetic world (rows per partition, bytes per row per column), used instead of
        #: measuring the rows held: a 1M-user world is priced without being materialised.
        self.declared_stats: dict[tuple[str, str, str], billing.TableStats] = {}
        #: Every table a documented estimate read, with its schema and size then (``bench/cost.py``).
        self.seen_stats: dict[tuple[str, str, str], tuple[TableMeta, billing.TableStats]] = {}
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

    def create_dataset(self, project: str, dataset: str, location: str | None = None) -> None:
        with self.lock:
            self._ensure_catalog(project)
            self._exec(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{dataset}"')
            self.datasets[(project, dataset)] = location or self.location

    def now_ms(self) -> int:
        """The endpoint's clock in epoch milliseconds (the wall clock plus ``advance``)."""
        return int(time.time() * 1000) + self.clock_offset_ms

    def advance(self, seconds: float) -> None:
        """Move the endpoint's clock forward: tables whose expiry passes are deleted, as BigQuery does."""
        self.clock_offset_ms += int(seconds * 1000)
        self.expire_tables()

    def expire_tables(self) -> None:
        """Delete every table whose ``expirationTime`` has passed.

        https://cloud.google.com/bigquery/docs/managing-tables#updating_a_tables_expiration_time
        ("When the table expires, it is deleted along with all of the data it contains"). BigQuery
        deletes lazily; here every request first deletes what has expired.
        """
        with self.lock:
            now = self.now_ms()
            for key, meta in list(self.tables.items()):
                if meta.expires_ms and int(meta.expires_ms) <= now:
                    self._drop(key)

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
        self.expire_tables()

    # --- datasets --------------------------------------------------------------------

    def _insert_dataset(self, request: Request, project: str) -> Response:
        self._authorized(request)
        ref = request.json()["datasetReference"]
        if (project, ref["datasetId"]) in self.datasets:
            raise HTTPError(409, "duplicate", f"Already Exists: Dataset {project}:{ref['datasetId']}")
        self.create_dataset(project, ref["datasetId"], request.json().get("location"))
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
            self.datasets.pop((project, dataset), None)
        return Response(204)

    def _dataset_resource(self, project: str, dataset: str) -> dict[str, Any]:
        return {
            "kind": "bigquery#dataset",
            "id": f"{project}:{dataset}",
            "datasetReference": {"projectId": project, "datasetId": dataset},
            "location": self.datasets[(project, dataset)],
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
            meta = TableMeta(
                project,
                dataset,
                name,
                [Field.from_api(f) for f in body.get("schema", {}).get("fields", [])],
                clustering=list((body.get("clustering") or {}).get("fields", [])),
                expires_ms=body.get("expirationTime"),
                description=body.get("description"),
            )
            meta.set_partitioning(body.get("timePartitioning"), body.get("requirePartitionFilter"))
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
            out["timePartitioning"] = meta.partitioning()
            if meta.require_partition_filter:
                out["requirePartitionFilter"] = True
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
        meta.created_ms = self.now_ms()
        meta.expires_at_creation = meta.expires_ms
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
                meta = TableMeta(
                    project,
                    dataset,
                    name,
                    new_fields,
                    clustering=list((config.get("clustering") or {}).get("fields", [])),
                )
                meta.set_partitioning(config.get("timePartitioning"))
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
                meta = dataclasses.replace(meta, schema=new_fields)
                self._create(meta)
                self._insert_rows(meta, data)
            else:
                replace = partition if disposition == "WRITE_TRUNCATE" else None
                self._insert_rows(meta, data, replace_partition=replace)

    # --- documented billing (tests/fakes/bigquery_billing.py) --------------------------

    def _run_query(self, project: str, job: Job, dry: bool) -> None:
        """A query job; with ``documented_billing`` its bytes are BigQuery's on-demand estimate."""
        if not self.documented_billing:
            super()._run_query(project, job, dry)
            return
        config = job.resource["configuration"]["query"]
        default = config.get("defaultDataset") or {}
        try:
            with self.lock:
                found = billing.estimate(
                    config["query"],
                    decode_parameters(config.get("queryParameters", [])),
                    self.tables,
                    self.table_stats,
                    project=default.get("projectId", project),
                    dataset=default.get("datasetId"),
                )
        except sqlglot.errors.ParseError:
            found = None  # the statement's own run reports the syntax error
        super()._run_query(project, job, dry)
        if found is not None:
            job.resource["statistics"]["totalBytesProcessed"] = str(found.processed)
            job.resource["statistics"]["query"].update(
                totalBytesProcessed=str(found.processed), totalBytesBilled=str(0 if dry else found.billed)
            )

    def table_stats(self, meta: TableMeta) -> billing.TableStats:
        """The declared size of a table, or its rows measured the documented way (and remembered in ``seen_stats``)."""
        key = (meta.project, meta.dataset, meta.table)
        if key in self.declared_stats:
            return self.declared_stats[key]
        name = self._name(meta)
        part = f'CAST("{meta.partition_field}" AS DATE)' if meta.partition_field else "NULL"
        sizes = [_size_sql(f) for f in meta.schema]
        select = ", ".join([f"{part} AS p", "COUNT(*) AS n", *(f"SUM({s})" for s in sizes)])
        rows = self._exec(f"SELECT {select} FROM {name} GROUP BY 1")
        counts = {r[0]: int(r[1]) for r in rows}
        total = max(sum(counts.values()), 1)
        width = {f.name: float(sum(r[2 + i] or 0 for r in rows)) / total for i, f in enumerate(meta.schema)}
        stats = billing.TableStats(counts, width)
        self.seen_stats[key] = (dataclasses.replace(meta), stats)
        return stats

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
                "timePartitioning": source.partitioning() if source.partition_field else None,
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


def _size_sql(f: Field, col: str | None = None) -> str:
    """DuckDB SQL for the logical bytes of column ``f`` in one row ("Data size calculation")."""
    col = col or f'"{f.name}"'
    if f.mode == "REPEATED" and f.type in billing.FIXED_BYTES:
        return f"COALESCE(len({col}), 0) * {billing.FIXED_BYTES[f.type]}"
    if f.mode == "REPEATED" and f.type == "STRING":
        return f"COALESCE(list_sum(list_transform({col}, x -> 2 + strlen(x))), 0)"
    if f.type == "RECORD":
        parts = [_size_sql(s, f'{col}."{s.name}"') for s in f.fields]
        return " + ".join(parts) if parts else "0"
    if f.type in billing.FIXED_BYTES:
        return f"CASE WHEN {col} IS NULL THEN 0 ELSE {billing.FIXED_BYTES[f.type]} END"
    if f.type == "BYTES":
        return f"CASE WHEN {col} IS NULL THEN 0 ELSE 2 + octet_length({col}) END"
    if f.type == "STRING":
        return f"CASE WHEN {col} IS NULL THEN 0 ELSE 2 + strlen({col}) END"
    return f"CASE WHEN {col} IS NULL THEN 0 ELSE strlen(CAST({col} AS VARCHAR)) END"  # JSON: its UTF-8 text


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


def parse_multipart(request: Request) -> tuple[dict[str, Any], bytes]:
    """The JSON metadata and the file of a ``multipart/related`` upload."""
    head = f"Content-Type: {request.headers.get('content-type')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    parts = list(message.iter_parts())  # type: ignore[attr-defined]
    return json.loads(parts[0].get_content()), parts[1].get_payload(decode=True)
