"""Scaling-law analysis of a sweep's results table: fits, frontiers, saturation, figures, reports.

Depends only on the results table's columns, never on training code.
"""
