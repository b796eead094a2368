"""Evaluation stage: metrics from scikit-learn, a markdown report and PNG plots."""
