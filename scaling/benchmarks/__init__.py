"""Benchmarks behind ``scaling bench`` and ``scaling serve-bench``: what is timed, how FLOPs are counted, how results print."""
