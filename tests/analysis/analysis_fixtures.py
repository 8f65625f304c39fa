"""Hand-built results tables in the sweep's contract, with known scaling behaviour, for the analysis tests.

Each family has a known compute-efficient law ``error(C)`` (C in PF-days): GR keeps improving
(0.45 + 0.25 x^-0.2), DLRM flattens after a decade (0.60 + 0.05 x^-0.8), with x = C / 1e-6 PF-days, so
DLRM leads at low compute and GR at high compute, as in the paper's Figure 7. A trial of size i is
compute-optimal at C_opt(i); away from it, it pays a penalty quadratic in log10(C / C_opt), so the
envelope of all trials tracks the family's law where some trial is near its optimum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.results_schema import FLOPS_PER_PF_DAY
REFERENCE_COMPUTE = 1e-6  # PF-days


def gr_error(compute: np.ndarray) -> np.ndarray:
    return 0.45 + 0.25 * (compute / REFERENCE_COMPUTE) ** -0.2


def dlrm_error(compute: np.ndarray) -> np.ndarray:
    return 0.60 + 0.05 * (compute / REFERENCE_COMPUTE) ** -0.8


MODELS = (("hstu", "GR", gr_error), ("sasrec", "GR", gr_error), ("dlrm", "DLRM", dlrm_error),
          ("dcnv2", "DLRM", dlrm_error))


def _metrics(error: float, task: str, final: bool) -> dict[str, float]:
    """Metric columns for a trial's evaluation whose 'error' (NE, or 1 - HR@100) is ``error``."""
    nan = float("nan")
    if task == "ranking":
        valid = {"valid/ne": error, "valid/ne/click": error * 0.98, "valid/auc/click": 1.2 - error}
    else:
        valid = {"valid/hr@10": (1 - error) * 0.4, "valid/hr@100": 1 - error, "valid/hr@500": 1 - 0.6 * error,
                 "valid/ndcg@10": (1 - error) * 0.2}
    test = {name.replace("valid/", "test/"): (value * 0.99 if final else nan) for name, value in valid.items()}
    return valid | test | {"train/loss": 2 * error}


def _trial(trial_id: str, model: str, family: str, law, optimum: float, *, task: str, dataset: str,
           evals: int, rng: np.random.Generator, noise: float, layers: int, status: str = "completed",
           failure_reason: str | None = None) -> list[dict]:
    rows = []
    final_compute = optimum * 10**0.3  # trained a little past its optimum, as sweeps usually do
    for evaluation in range(1, evals + 1):
        compute = final_compute * evaluation / evals  # evaluated at equal step intervals
        penalty = 0.02 * np.log10(compute / optimum) ** 2
        error = float((law(compute) + penalty) * np.exp(rng.normal(0.0, noise)))
        step = 500 * evaluation
        rows.append({
            "sweep": "synthetic", "trial_id": trial_id, "model": model, "family": family, "status": status,
            "failure_reason": failure_reason, "seed": 0, "step": step, "epoch": evaluation / 2.0,
            "flops": compute * FLOPS_PER_PF_DAY, "pf_days": compute,
            "params_embedding": 1_000_000 * layers, "params_non_embedding": 50_000 * layers,
            "wall_seconds": 3.0 * step, "eval_set": f"holdout:{dataset}", "data.task": task, "data.dataset": dataset,
            "model.num_layers": layers, "train.num_negatives": 128,
            **_metrics(error, task, evaluation == evals),
            **({"train_flops_per_s": 2.5e13, "mfu": 0.25} if evaluation == evals and status == "completed" else {}),
        })
    return rows


def synthetic_results(task: str = "ranking", dataset: str = "synthetic-dp", *, sizes: int = 5, evals: int = 6,
                      noise: float = 0.002, seed: int = 0, failures: bool = True,
                      decades: float = 4.0) -> pd.DataFrame:
    """Four models (two per family), ``sizes`` trials each over ``decades`` of compute, plus two broken trials."""
    rng = np.random.default_rng(seed)
    optima = REFERENCE_COMPUTE * np.logspace(0, decades, sizes)
    rows: list[dict] = []
    for model, family, law in MODELS:
        shift = 1.0 if model in ("hstu", "dlrm") else 10**0.25  # the second model of a family fills gaps
        for index, optimum in enumerate(optima):
            rows += _trial(f"{model}-{index}", model, family, law, optimum * shift, task=task, dataset=dataset,
                           evals=evals, rng=rng, noise=noise, layers=2 ** (index + 1))
    if failures:
        rows += _trial("hstu-oom", "hstu", "GR", gr_error, optima[-1] * 10, task=task, dataset=dataset, evals=1,
                       rng=rng, noise=noise, layers=64, status="failed",
                       failure_reason="CUDA out of memory while allocating 2.00 GiB")
        rows += _trial("dlrm-nan", "dlrm", "DLRM", dlrm_error, optima[-1] * 10, task=task, dataset=dataset,
                       evals=2, rng=rng, noise=noise, layers=64, status="diverged",
                       failure_reason="loss became NaN at step 1000")
    return pd.DataFrame(rows)
