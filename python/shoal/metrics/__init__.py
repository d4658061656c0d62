"""Metrics: the records a run's events hold, the run history they build, and its stores."""
