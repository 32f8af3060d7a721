"""Scoring: model outputs of every face (``infer``), the per-face scores (``scores``) and the
scoring job that writes ``scores.parquet`` (``pipeline``)."""
