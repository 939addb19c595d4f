"""Stage 1, features: a date's feature steps built all-or-nothing, with the contract's data checks."""
