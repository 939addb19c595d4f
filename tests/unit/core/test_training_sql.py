"""The training exports' GoogleSQL prunes every partitioned table it reads by that table's own column.

BigQuery prunes a column-partitioned table only "with a filter on the partitioning column"
(https://cloud.google.com/bigquery/docs/querying-partitioned-tables), and a table created with
``require_partition_filter`` refuses a query without one: a date implied through a join
condition is neither. The pipeline's step tables (features, labels) are partitioned by
``as_of_date``, so each must be filtered by its own ``as_of_date`` in the WHERE clause.
"""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.training.job import training_data_sql, truth_data_sql
from tests.paths import PIPELINE

WINDOW_PARAMS = {"train_start", "fit_end", "early_start", "train_end", "validation_start", "validation_end"}


def partition_filters(sql: str, partitioned: set[str]) -> dict[str, set[str]]:
    """Per partitioned table read by ``sql``: the parameters its own as_of_date is compared with in WHERE."""
    return {name: reads[-1] for name, reads in partition_reads(sql, partitioned).items()}


def partition_reads(sql: str, partitioned: set[str]) -> dict[str, list[set[str]]]:
    """Per partitioned table, every read of it in ``sql``: the parameters its as_of_date is compared with."""
    tree = sqlglot.parse_one(sql, read="bigquery")
    found: dict[str, list[set[str]]] = {}
    for table in tree.find_all(exp.Table):
        if table.name not in partitioned:
            continue
        select = table.find_ancestor(exp.Select)
        where = select.args.get("where") if select else None
        alias = table.alias_or_name
        params: set[str] = set()
        for between in where.find_all(exp.Between) if where else ():
            column = between.this
            if isinstance(column, exp.Column) and column.name == "as_of_date" and column.table == alias:
                params |= {p.name for p in between.find_all(exp.Parameter)}
        found.setdefault(table.name, []).append(params)
    return found


@pytest.mark.parametrize("exclude_seen", ["none", "purchased"])
def test_the_training_rows_filter_features_and_labels_each_by_its_own_partition(exclude_seen):
    spec = load_spec(PIPELINE)
    spec = spec.model_copy(update={"inference": spec.inference.model_copy(update={"exclude_seen": exclude_seen})})
    sql = training_data_sql(spec)
    assert partition_filters(sql, {spec.feature_table, spec.label.step.table}) == {
        spec.feature_table: WINDOW_PARAMS,
        spec.label.step.table: WINDOW_PARAMS,
    }


def test_the_truth_filters_the_labels_by_their_partition():
    spec = load_spec(PIPELINE)
    sql = truth_data_sql(spec)
    assert sql is not None
    reads = partition_reads(sql, {spec.label.step.table})[spec.label.step.table]
    # The truth reads every window; the popularity lists' users read the test window only. No read is unfiltered.
    assert WINDOW_PARAMS in reads and all(params and params <= WINDOW_PARAMS for params in reads)
    assert {"validation_start", "validation_end"} in reads
