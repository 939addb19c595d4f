"""Stage 3, evaluation.

Ranking metrics, offline evaluation on the test window, the gate, the horizon guard and realized
outcomes.
"""
