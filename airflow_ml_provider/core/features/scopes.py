"""The scopes a data-check run can have; a module of its own so the CLI parser imports nothing heavy."""

#: What ``DataCheckOperator`` / ``airflow-ml check`` may scope a run to: ``steps`` checks the rows
#: every feature step WOULD write (nothing is written, see core.features.preflight); ``preflight`` is
#: ``events`` + ``steps``, the gate before a date's first step publishes.
SCOPES = ("all", "events", "tables", "steps", "preflight")
