"""Scaling-law analysis of a sweep's results table: fits, frontiers, saturation, figures, reports.

Depends only on the results table's columns, never on training code. Reading order:

- ``columns``: the results table as the analysis reads it (the contract itself, shared with the sweep that
  writes it, is ``core.results_schema``) and its validation;
- ``load``: reading RESULTS_DIR/results.parquet with one-line errors;
- ``frontier``: the compute-efficient frontier and which points are kept;
- ``forms``, ``fitting``: the registry of scaling-law forms (one entry per form) and their solvers;
- ``bootstrap``: trial-resampling intervals and identifiability verdicts;
- ``diagnostics``: goodness of fit and the extrapolation check;
- ``saturation``: where a frontier stops improving, and who leads where;
- ``study``: all of the above per (dataset, metric, family or model), as data;
- ``trials``: per-trial views (last evaluation, best value), shared with ``scaling results``;
- ``figures``, ``tables``, ``render``, ``report``: the report folder (Markdown, HTML, fits.json, PNG/SVG).

``scaling analyze`` (``scaling/commands/analyze.py``) is the command-line entry point.
"""
