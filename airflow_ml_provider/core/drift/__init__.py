"""Stage 5, drift.

One scan per table counts rows into the reference bins; metrics, verdicts, reports and the
stored results.
"""
