"""The study harness: data, training, evaluation, FLOPs accounting, sweeps and the ``scaling`` CLI."""

__version__ = "0.1.0"
