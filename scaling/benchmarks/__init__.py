"""Micro-benchmarks behind ``scaling bench``: what is timed, how FLOPs are counted, how results print."""
