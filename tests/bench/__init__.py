"""Smoke test of the benchmark (bench/): the tiny profile end to end."""
