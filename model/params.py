"""Parameter accounting: embedding-table parameters apart from everything else."""

from __future__ import annotations

from torch import nn


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """{'embedding', 'non_embedding', 'total'}: parameters of nn.Embedding tables vs the rest.

    Embedding lookups cost no FLOPs and scale with the vocabulary, so scaling studies report
    them apart (Kaplan et al. 2020 count non-embedding parameters; the paper's Figure 7
    discussion separates the two as well).
    """
    embedding = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False))
    total = sum(p.numel() for p in model.parameters())
    return {"embedding": embedding, "non_embedding": total - embedding, "total": total}
