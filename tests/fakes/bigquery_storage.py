"""A local BigQuery Storage Read API (gRPC) over the fake BigQuery's tables.

The real ``google-cloud-bigquery-storage`` client connects with an insecure channel when
``BIGQUERY_STORAGE_EMULATOR_HOST`` is set (see ``backends/bigquery_read.py``), creates a
read session and reads Arrow record batches, as against
https://cloud.google.com/bigquery/docs/reference/storage. Enforced: the ARROW format the
code asks for, a readable table or query result, ``selected_fields`` that exist, the
``bigquery.readsessions.create`` permission (switched off with ``deny_read_sessions``), and
that a stream is read from an offset the server has sent. Batches are cut at
``batch_rows`` rows, so tests see several messages per stream.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pyarrow as pa
from google.cloud.bigquery_storage_v1 import types

from tests.fakes.bigquery import FakeBigQuery

SERVICE = "google.cloud.bigquery.storage.v1.BigQueryRead"


class FakeBigQueryStorage:
    """``CreateReadSession`` and ``ReadRows``; records sessions for assertions."""

    def __init__(self, bigquery: FakeBigQuery, *, batch_rows: int = 500) -> None:
        self.bigquery = bigquery
        self.batch_rows = batch_rows
        self.deny_read_sessions = False
        self.sessions: list[types.CreateReadSessionRequest] = []
        self.rows_sent = 0
        self._streams: dict[str, pa.Table] = {}
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeBigQueryStorage:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "CreateReadSession": grpc.unary_unary_rpc_method_handler(
                self._create_read_session,
                request_deserializer=types.CreateReadSessionRequest.deserialize,
                response_serializer=types.ReadSession.serialize,
            ),
            "ReadRows": grpc.unary_stream_rpc_method_handler(
                self._read_rows,
                request_deserializer=types.ReadRowsRequest.deserialize,
                response_serializer=types.ReadRowsResponse.serialize,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def _create_read_session(self, request: types.CreateReadSessionRequest, context: Any) -> types.ReadSession:
        self.sessions.append(request)
        if self.deny_read_sessions:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "request failed: the user does not have 'bigquery.readsessions.create' permission "
                f"for '{request.parent}'",
            )
        session = request.read_session
        if session.data_format != types.DataFormat.ARROW:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the fake serves data_format=ARROW only")
        parts = session.table.split("/")
        if len(parts) != 6 or parts[0] != "projects" or parts[2] != "datasets" or parts[4] != "tables":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid table name {session.table!r}")
        try:
            _, data = self.bigquery.table_arrow(parts[1], parts[3], parts[5])
        except Exception as err:  # the REST fake's 404 as the gRPC status BigQuery sends
            context.abort(grpc.StatusCode.NOT_FOUND, f"Not found: Table {session.table}: {err}")
        selected = list(session.read_options.selected_fields)
        missing = [c for c in selected if c not in data.column_names]
        if missing:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Selected fields {missing} are not in {session.table}")
        if selected:
            data = data.select(selected)
        name = f"projects/{parts[1]}/locations/us/sessions/{uuid.uuid4().hex}"
        stream = f"{name}/streams/0"
        with self._lock:
            self._streams[stream] = data
        return types.ReadSession(
            name=name,
            table=session.table,
            data_format=types.DataFormat.ARROW,
            arrow_schema=types.ArrowSchema(serialized_schema=data.schema.serialize().to_pybytes()),
            streams=[types.ReadStream(name=stream)] if data.num_rows else [],
            estimated_row_count=data.num_rows,
        )

    def _read_rows(self, request: types.ReadRowsRequest, context: Any) -> Iterator[types.ReadRowsResponse]:
        with self._lock:
            data = self._streams.get(request.read_stream)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Not found: stream {request.read_stream}")
        if request.offset > data.num_rows:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"offset {request.offset} is past the end of the stream")
        schema = types.ArrowSchema(serialized_schema=data.schema.serialize().to_pybytes())
        for i, batch in enumerate(data.slice(request.offset).to_batches(max_chunksize=self.batch_rows)):
            self.rows_sent += batch.num_rows
            # The first response of a stream carries the schema (ReadRowsResponse.arrow_schema).
            extra = {"arrow_schema": schema} if i == 0 else {}
            yield types.ReadRowsResponse(
                **extra,
                row_count=batch.num_rows,
                arrow_record_batch=types.ArrowRecordBatch(
                    serialized_record_batch=batch.serialize().to_pybytes(), row_count=batch.num_rows
                ),
            )
