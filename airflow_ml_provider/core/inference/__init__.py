"""Stage 4, batch inference.

Scoring (LightGBM or compiled trees), user shards, the run log, and the day's recommendations.
"""
