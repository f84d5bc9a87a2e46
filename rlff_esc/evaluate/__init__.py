"""Evaluation: interactive goal completion, response quality, judge ratings, baselines, the report."""
