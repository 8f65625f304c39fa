"""Networks: embeddings, sequential encoders (HSTU, Transformers), heads, losses and DLRM baselines.

Model code is single-device code: no optimisers, loops or device placement live here.
"""
