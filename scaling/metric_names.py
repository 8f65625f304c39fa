"""The names of the validation metrics each task reports, without torch: what a config may select by."""

from __future__ import annotations

HIT_RATE_CUTOFFS = (1, 10, 50, 100, 200, 500)  # hr@K reported by retrieval evaluations
NDCG_CUTOFFS = (10, 50, 200)  # ndcg@K reported by retrieval evaluations
RANKING_METRICS = ("ne", "auc")  # averaged over the dataset's tasks; ne/TASK and auc/TASK per task


def retrieval_metric_names() -> tuple[str, ...]:
    """Every metric a retrieval (or gr_retrieval) validation reports."""
    return (*(f"hr@{k}" for k in HIT_RATE_CUTOFFS), *(f"ndcg@{k}" for k in NDCG_CUTOFFS), "mrr", "log_pplx")


def selection_metric_problem(metric: str, task: str) -> str | None:
    """Why ``metric`` cannot select checkpoints for ``task`` (None when it can).

    A ranking task's per-task names (``ne/click``) depend on the dataset's tasks, checked once the data are loaded.
    """
    if task == "ranking":
        base, slash, name = metric.partition("/")
        if base in RANKING_METRICS and (not slash or name):
            return None
        return f"ranking reports {', '.join(RANKING_METRICS)} and their per-task ne/TASK, auc/TASK; got {metric!r}"
    if metric in retrieval_metric_names():
        return None
    return f"{task} reports {', '.join(retrieval_metric_names())}; got {metric!r}"
