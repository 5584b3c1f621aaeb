"""Trajectory predictors, chosen by name, import path or entry point (``predict.backend``)."""
