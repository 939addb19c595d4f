"""How the local BigQuery runs GoogleSQL statements (SELECT, DML, DDL, EXPORT DATA) and encodes rows.

A mixin of ``FakeBigQuery`` (tests/fakes/bigquery.py): statements run on its DuckDB through the
product's own sqlglot transpiler (SQL semantics are not what these fakes test), while the job
around them follows BigQuery's rules: referenced tables must exist, bytes are billed (at least
10 MB per table) against ``maximumBytesBilled``, results land in the destination under its
write disposition, and ``EXPORT DATA`` writes Parquet shards to the local GCS.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from airflow_ml_provider.core.warehouse.sql import to_duckdb
from airflow_ml_provider.exceptions import SQLTemplateError
from tests.fakes import bigquery_rules as rules
from tests.fakes.bigquery_rules import Field, TableMeta
from tests.fakes.gcs import bucket_location
from tests.fakes.http import HTTPError

ANON_DATASET = "_anon_results"


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


class QueryStatements:
    """Query jobs of ``FakeBigQuery``: parse, bill, run on DuckDB, write the result."""

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
            self._export(tree, params, self._data_location(tree, project, dataset))
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
        if kind != "TABLE":
            raise HTTPError(400, "invalidQuery", f"the fake runs CREATE TABLE and CREATE VIEW, not: {sql[:80]}")
        if exists:
            if tree.args.get("exists"):
                return "CREATE_TABLE"
            if not tree.args.get("replace"):
                raise HTTPError(409, "duplicate", f"Already Exists: Table {key[0]}:{key[1]}.{key[2]}")
        meta = TableMeta(*key, [])
        self._table_options(meta, tree.args.get("properties"))
        if isinstance(tree.expression, exp.Query):
            # CREATE TABLE ... AS SELECT: the columns are the query's (NULLABLE), the table gets its
            # options (expiry included) when it is created, in the same job.
            data = self._select(ctas_query(sql), params)
            meta.schema = [rules.field_from_arrow(f.name, f.type) for f in data.schema]
            if exists:
                self._drop(key)
            self._create(meta)
            self._insert_rows(meta, data)
            return "CREATE_TABLE_AS_SELECT"
        if not isinstance(tree.this, exp.Schema):
            raise HTTPError(400, "invalidQuery", f"the fake needs columns or AS SELECT in: {sql[:80]}")
        meta.schema = [ddl_field(c) for c in tree.this.expressions if isinstance(c, exp.ColumnDef)]
        if exists:
            self._drop(key)
        self._create(meta)
        return "CREATE_TABLE"

    def _table_options(self, meta: TableMeta, props: exp.Properties | None) -> None:
        """PARTITION BY, CLUSTER BY and OPTIONS of a CREATE TABLE, as BigQuery stores them.

        https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language#table_option_list:
        ``expiration_timestamp`` (evaluated when the table is created), ``partition_expiration_days``,
        ``require_partition_filter``; other options are refused so a test never trusts an ignored one.
        """
        for prop in props.expressions if props else []:
            if isinstance(prop, exp.PartitionedByProperty):
                column = prop.this.find(exp.Column)
                meta.partition_field = column.name if column is not None else prop.this.name
            elif isinstance(prop, exp.Cluster | exp.ClusterProperty):
                meta.clustering = [e.name for e in prop.expressions]
            elif isinstance(prop, exp.Property):
                name, value = prop.name.lower(), prop.args["value"]
                if name == "expiration_timestamp":
                    moment = self._select(f"SELECT {value.sql(dialect='bigquery')} AS t", {}).column(0)[0].as_py()
                    meta.expires_ms = str(int(moment.timestamp() * 1000) + self.clock_offset_ms)
                elif name == "partition_expiration_days":
                    meta.partition_expiration_ms = str(int(float(value.name) * 86_400_000))
                elif name == "require_partition_filter":
                    meta.require_partition_filter = bool(value.this) if isinstance(value, exp.Boolean) else False
                elif name != "description":
                    raise HTTPError(400, "invalidQuery", f"the fake does not store the table option {name}")

    def _data_location(self, tree: exp.Expression, project: str, dataset: str | None) -> str:
        """Where a statement's data lives: its tables' dataset, else its default dataset, else the job's."""
        for p, d, _ in self._referenced_tables(tree, project, dataset):
            return self.datasets[(p, d)]
        return self.datasets.get((project, dataset or ""), self.location)

    def _export(self, tree: exp.Export, params: dict[str, Any], data_location: str) -> None:
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
        check_export_location(data_location, bucket_name, bucket_location(self.gcs_endpoint, bucket_name))
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


def ctas_query(sql: str) -> str:
    """The query text of ``CREATE TABLE ... AS <query>``, as written (regenerating it from the tree could change it)."""
    depth = 0
    for token in sqlglot.tokenize(sql, read="bigquery"):
        if token.token_type == sqlglot.TokenType.L_PAREN:
            depth += 1
        elif token.token_type == sqlglot.TokenType.R_PAREN:
            depth -= 1
        elif token.token_type == sqlglot.TokenType.ALIAS and depth == 0:
            return sql[token.end + 1 :].strip()
    raise HTTPError(400, "invalidQuery", f"no AS <query> in: {sql[:80]}")


def check_export_location(data_location: str, bucket: str, found: str | None) -> None:
    """EXPORT DATA writes only to a bucket colocated with the data.

    https://cloud.google.com/bigquery/docs/exporting-data#data-locations: a dataset in a region
    exports to a bucket in the same region; the EU multi-region to EU or a region inside it; the US
    multi-region to any location. BigQuery's refusal reads "Cannot read and write in different
    locations: source: <dataset location>, destination: <bucket location>".
    """
    if found is None:
        raise HTTPError(404, "notFound", f"Not found: bucket {bucket}")
    source, destination = data_location.lower(), found.lower()
    # The fake's own reading of the rule (the product's is in backends/gcp_locations.py): EU member-state regions.
    in_eu = destination == "eu" or destination in {"europe-west1", "europe-west3", "europe-west4", "europe-north1"}
    allowed = source == "us" or (in_eu if source == "eu" else source == destination)
    if not allowed:
        raise HTTPError(
            400,
            "invalid",
            f"Cannot read and write in different locations: source: {data_location}, destination: {found.lower()}",
        )


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
        if pa.types.is_integer(kind) or (pa.types.is_decimal(kind) and kind.scale == 0):
            kind = pa.int64()  # DuckDB sums integers into HUGEINT (decimal(38,0)); BigQuery into INT64
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
