"""Stage 2, training.

The job (export and arguments), the trainer entrypoint, its data windows, encoding, the envelope
and the drift reference profile.
"""
