"""Benchmark suites: measured by code that can fail, reported as percentiles and ratios."""
