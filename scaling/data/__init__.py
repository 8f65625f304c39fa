"""Data: raw readers, downloads, synthetic generators, caching, splits and jagged batches.

Entry point: :func:`scaling.data.loading.load_dataset` turns a ``DataConfig`` into a
:class:`~scaling.data.sequences.SequenceDataset`.
"""
