"""Evaluation: features, retrieval, classification metrics, plots and previews."""
