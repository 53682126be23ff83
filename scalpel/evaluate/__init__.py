"""Evaluation: generation backends, benchmark registry, scoring, suite runner."""
