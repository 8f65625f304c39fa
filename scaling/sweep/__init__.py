"""Scaling sweeps: a typed sweep config expanded into validated trials, run on Ray Tune, one results table.

``spec`` reads and checks the sweep YAML, ``expand`` turns it into trials (each a full,
validated run config), ``plan`` picks the trials a run (or resume) executes, ``trainable`` is the thin Ray Tune adapter around ``scaling.train.train``,
``records`` keeps one record per trial on disk, ``table`` builds the results table from those
records, and ``runner`` drives Ray Tune.
"""
