"""The contract.

Pipeline.yaml parsed and validated (spec and its sections), the platform config, identifiers,
source()/ref() names, the model.py hooks.
"""
