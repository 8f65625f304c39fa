"""Scaling sweeps: a typed sweep config expanded into validated trials, run on Ray Tune, one results table.

``spec`` reads and checks the sweep YAML; ``expand`` turns it into trials (each a full,
validated run config with a content-derived id); ``plan`` chooses the trials an invocation runs
(fresh, ``--resume``, ``--retry-failed``); ``runner`` drives Ray Tune over ``trainable``, the
thin adapter around ``scaling.train.train`` that sends the ``reports``; ``recorder`` keeps one
record per trial on disk (``records``) and prints progress; ``table`` builds the results table
from the records and ``summary`` prints it one line per trial.
"""
