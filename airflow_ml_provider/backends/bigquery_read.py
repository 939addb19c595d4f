"""Reading query results through the BigQuery Storage Read API: Arrow record batches, bounded memory.

REST pages carry JSON (about 10 MB each, parsed row by row); the Storage Read API streams
Arrow record batches over gRPC (https://cloud.google.com/bigquery/docs/reference/storage).
Candidates for batch inference are read this way. The caller needs the
``bigquery.readsessions.create`` permission (role ``roles/bigquery.readSessionUser``), and a
missing one gets a sentence saying so.

``BIGQUERY_STORAGE_EMULATOR_HOST`` (``host:port``) points the client at a local emulator over
an insecure channel, as ``BIGQUERY_EMULATOR_HOST`` does for the REST client.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from google.api_core.exceptions import Forbidden, PermissionDenied

from airflow_ml_provider.exceptions import WarehouseError

if TYPE_CHECKING:
    from google.cloud import bigquery
    from google.cloud.bigquery_storage_v1 import BigQueryReadClient

EMULATOR_ENV = "BIGQUERY_STORAGE_EMULATOR_HOST"


def read_client(credentials: Any, client_info: Any = None) -> BigQueryReadClient:
    """A Storage Read client with the hook's credentials (or on the emulator, when one is set)."""
    from google.cloud.bigquery_storage_v1 import BigQueryReadClient

    emulator = os.environ.get(EMULATOR_ENV)
    if emulator:
        import grpc
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

        return BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=grpc.insecure_channel(emulator)))
    return BigQueryReadClient(credentials=credentials, client_info=client_info)


def read_batches(
    client: BigQueryReadClient, table: bigquery.TableReference, project: str, *, batch_rows: int, source: str
) -> Iterator[pa.RecordBatch]:
    """Stream ``table`` (e.g. a query job's result table) as Arrow batches of at most ``batch_rows`` rows.

    One read session with one stream keeps the rows in the table's order and memory bounded by
    a batch; scale-out over shards reads one session per shard.
    """
    from google.cloud.bigquery_storage_v1 import types

    path = f"projects/{table.project}/datasets/{table.dataset_id}/tables/{table.table_id}"
    try:
        session = client.create_read_session(
            parent=f"projects/{project}",
            read_session=types.ReadSession(table=path, data_format=types.DataFormat.ARROW),
            max_stream_count=1,
        )
    except (PermissionDenied, Forbidden) as err:
        raise WarehouseError(
            f"{source}: BigQuery refused to read the query's results through the Storage Read API: "
            f"{err.message}. Grant the Airflow service account the `bigquery.readsessions.create` "
            f"permission on project {project} (role roles/bigquery.readSessionUser), then rerun the task."
        ) from err
    schema = pa.ipc.read_schema(pa.py_buffer(session.arrow_schema.serialized_schema))
    for stream in session.streams:
        for message in client.read_rows(stream.name):
            if not message.row_count:
                continue
            batch = pa.ipc.read_record_batch(pa.py_buffer(message.arrow_record_batch.serialized_record_batch), schema)
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)
