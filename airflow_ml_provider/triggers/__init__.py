"""Deferrable triggers: they poll remote jobs in the triggerer so no worker slot waits."""
