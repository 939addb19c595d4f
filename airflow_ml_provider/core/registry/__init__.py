"""The model registry (ml_models) and promotion: the gate decides, the champion alias moves."""
