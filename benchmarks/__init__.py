"""Benchmarks: quality against best-known solutions and search-default measurements."""
