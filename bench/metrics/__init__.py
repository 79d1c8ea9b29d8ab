"""Metrics: classification (the paper's Table 2) and scores of explanation maps against masks."""

from bench.metrics.classification import classification_report

__all__ = ["classification_report"]
