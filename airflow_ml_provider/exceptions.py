"""The provider's error hierarchy.

Every error is a sentence that names the thing (file, key, table, job), what was
expected and what to do. ``retryable`` tells operators whether Airflow should retry
(transient: a lock, a network blip) or fail at once (bad config, bad SQL, bad data).
"""

from __future__ import annotations


class MLProviderError(Exception):
    """Base class for every error raised by airflow-ml-provider."""

    retryable = False


class ContractError(MLProviderError):
    """The pipeline contract or a connection's configuration is invalid."""


class IdentifierError(ContractError, ValueError):
    """A table, dataset or project name is not a safe identifier.

    Also a ValueError, so pydantic reports it with the key path of the bad value.
    """


class SQLTemplateError(MLProviderError):
    """A SQL file does not parse as GoogleSQL or cannot run on the backend."""


class WarehouseError(MLProviderError):
    """A warehouse operation failed."""


class TableNotFoundError(WarehouseError):
    """A table the SQL reads or the write targets does not exist."""


class SchemaMismatchError(WarehouseError):
    """Rows to write do not match the existing table's schema."""


class EmptyResultError(WarehouseError):
    """A query meant to fill a partition returned no rows."""


class DegenerateResultError(WarehouseError):
    """A result that would replace a partition with a degenerate one (no lists, no catalogue); nothing was written."""


class ShardError(WarehouseError):
    """A sharded inference run's staged shards are missing, duplicated or inconsistent; nothing was published."""


class BytesBudgetExceeded(WarehouseError):
    """A BigQuery query would scan more bytes than ``maximum_bytes_billed`` allows."""


class WarehouseLockedError(WarehouseError):
    """The local DuckDB file stayed locked by another process past the retry bound."""

    retryable = True


class HorizonNotPassedError(MLProviderError):
    """A date's label horizon has not passed yet: its labels or outcomes would be incomplete.

    Not retryable within a task: the data cannot appear before the date the message names.
    """


class TrainingJobError(MLProviderError):
    """A training job (the local subprocess or a Vertex AI CustomJob) failed; the message says how and where."""
