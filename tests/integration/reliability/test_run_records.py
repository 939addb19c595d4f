"""recommendation_runs tells the truth: a running row before scoring, one row per (run_id, try), lost tries."""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.inference.runs import start_run, utcnow
from tests.integration.reliability.conftest import DAY, World, context


def recommend(w: World, run_id: str, try_number: int = 1) -> dict:
    from airflow_ml_provider.operators.inference import BatchRecommendOperator

    with DAG("reliability_runs", schedule=None):
        op = BatchRecommendOperator(task_id="recommend", pipeline=str(w.pipeline), prediction_date=str(DAY))
    return op.execute(context("recommend", run_id=run_id, try_number=try_number))


def runs(w: World, run_id: str) -> list[dict]:
    return (
        DuckDBWarehouse(w.warehouse)
        .query(
            "SELECT try_number, status, rows_written, error FROM recommendation_runs WHERE run_id = @r "
            "ORDER BY try_number",
            {"r": run_id},
        )
        .to_pylist()
    )


def test_a_rerun_of_the_same_try_updates_its_row(case: World):
    wh = DuckDBWarehouse(case.warehouse)
    first = recommend(case, "rerun")
    with wh.connect() as con:  # make the second attempt write a different number of rows: one user fewer
        # (without events in the lookback the user is not served at all; without features alone the
        # global popularity list would still fill their list)
        user = con.execute(f"SELECT min(user_id) FROM features WHERE as_of_date = '{DAY}'").fetchone()[0]
        con.execute(f"DELETE FROM features WHERE as_of_date = '{DAY}' AND user_id = ?", [user])
        con.execute("DELETE FROM events WHERE user_id = ?", [user])
    second = recommend(case, "rerun")
    assert second["rows_written"] != first["rows_written"]
    assert runs(case, "rerun") == [
        {"try_number": 1, "status": "success", "rows_written": second["rows_written"], "error": None}
    ]
    written = wh.query("SELECT COUNT(*) AS n FROM recommendations WHERE prediction_date = @d", {"d": DAY})
    assert written.to_pylist()[0]["n"] == second["rows_written"]


def test_a_try_killed_while_running_shows_as_lost_to_the_next_try(case: World):
    wh = DuckDBWarehouse(case.warehouse)
    # What try 1 leaves when it is SIGKILLed after its start: the running row, nothing else.
    start_run(wh, {"run_id": "killed", "try_number": 1, "prediction_date": DAY, "started_at": utcnow()})
    assert [r["status"] for r in runs(case, "killed")] == ["running"]
    recommend(case, "killed", try_number=2)
    got = runs(case, "killed")
    assert [(r["try_number"], r["status"]) for r in got] == [(1, "lost"), (2, "success")]
    assert got[0]["error"] == "try 1 stopped without finishing (killed, or its worker was lost); try 2 took over"


def test_cli_shows_a_running_row_of_a_killed_try_as_lost(case, capsys):
    """A try killed outright leaves `running`; once a newer attempt of the date ran, the CLI says `lost`."""
    import datetime as dt
    import json

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.cli import main
    from airflow_ml_provider.core.inference.runs import runs_of_date, start_run
    from tests.integration.reliability.conftest import DAY

    wh = DuckDBWarehouse(case.warehouse)
    # Newer than the world's own run of DAY (built at session start), and within LOST_AFTER.
    killed_at = dt.datetime.now(dt.UTC)
    start_run(wh, {"run_id": "scheduled__killed", "try_number": 1, "prediction_date": DAY, "started_at": killed_at})
    by_run = {r["run_id"]: r["status"] for r in runs_of_date(wh, DAY)}
    assert by_run["scheduled__killed"] == "running"  # the newest attempt of the date: it may still run

    assert (
        main(
            [
                "recommend",
                "--date",
                str(DAY),
                "--pipeline",
                str(case.pipeline),
                "--warehouse",
                str(case.warehouse),
                "--run-id",
                "cli__after",
                "-q",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["recommendations", "--date", str(DAY), "--warehouse", str(case.warehouse), "--json", "-q"]) == 0
    shown = json.loads(capsys.readouterr().out)
    statuses = {a["run_id"]: a["status"] for a in shown["attempts"]}
    assert statuses["scheduled__killed"] == "lost" and statuses["cli__after"] == "success"
    assert shown["run"]["run_id"] == "cli__after"
    stored = wh.query("SELECT status FROM recommendation_runs WHERE run_id = 'scheduled__killed'").to_pylist()
    assert stored == [{"status": "running"}]  # the table keeps what was written; only the display says lost
