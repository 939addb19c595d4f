"""The warehouse.

The Warehouse interface, GoogleSQL rendering and DuckDB rewrites, table DDL, job labels, what is
in it.
"""
