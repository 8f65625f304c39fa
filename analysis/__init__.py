"""Scaling-law analysis of a sweep's results table: fits, frontiers, saturation, figures, reports.

Depends only on the results table's columns, never on training code. Reading order:

- ``columns``: the results-table contract (the one place column names live) and its validation;
- ``load``: reading RESULTS_DIR/results.parquet with one-line errors;
- ``frontier``: the compute-efficient frontier and which points are kept;
- ``forms``, ``fitting``: the three laws and their robust point estimates;
- ``bootstrap``: trial-resampling intervals and identifiability verdicts;
- ``diagnostics``: goodness of fit and the extrapolation check;
- ``saturation``: where a frontier stops improving, and who leads where;
- ``study``: all of the above per (dataset, metric, family or model), as data;
- ``figures``, ``tables``, ``render``, ``report``: the report folder (Markdown, HTML, fits.json, PNG/SVG).

``scaling analyze`` (``scaling/commands/analyze.py``) is the command-line entry point.
"""
