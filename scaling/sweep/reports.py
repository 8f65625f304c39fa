"""The flat reports a trial sends to Ray Tune: where it starts, one per evaluation, then one final report.

Names are the results table's columns: ``step``, ``epoch``, ``flops``, ``pf_days``,
``wall_seconds``, ``params_embedding``, ``params_non_embedding``, ``eval_set`` (which events the
``valid`` metrics scored), and one ``split/metric`` per metric (``train/loss``, ``valid/ndcg@10``,
``valid/ne/click``, ``oracle/ne`` (the true probabilities on the same set), ``progressive/ne``,
``test/hr@10``...). ``report``
says which kind a report is. Failures are classified here: a NaN/inf loss is ``diverged``,
anything else (out-of-memory included) is ``failed``, each with a one-line reason.
"""

from __future__ import annotations

from typing import Any

import torch

from core.results_schema import COMPLETED, DIVERGED, FAILED
from scaling.divergence import TrainingDiverged

START = "start"
EVALUATION = "evaluation"
FINAL = "final"
REPORT_KIND = "report"  # key naming the kind of a report
EVALUATIONS_DONE = "evaluations_done"  # the trial's evaluations so far, this one included (1, 2, ...)


def start_report(evaluations_done: int) -> dict[str, Any]:
    """A trial (re)starts after ``evaluations_done`` evaluations: 0, or those of the checkpoint it resumes."""
    return {REPORT_KIND: START, EVALUATIONS_DONE: evaluations_done}


def _params(params: dict[str, int]) -> dict[str, int]:
    return {"params_embedding": params.get("embedding"), "params_non_embedding": params.get("non_embedding")}


def _metrics(split: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{split}/{name}": value for name, value in metrics.items()}


def evaluation_report(entry: dict[str, Any]) -> dict[str, Any]:
    """A history entry of ``train()`` (one validation) as a flat report."""
    return {
        REPORT_KIND: EVALUATION,
        "step": entry["step"],
        "epoch": entry["epoch"],
        "flops": entry["flops"],
        "pf_days": entry["pf_days"],
        "wall_seconds": entry["elapsed_seconds"],
        **_params(entry.get("params", {})),
        "eval_set": entry["eval_set"],
        "train/loss": entry["train_loss"],
        **_metrics("valid", entry["valid"]),
        **_metrics("progressive", entry.get("progressive", {})),
        **_metrics("oracle", entry.get("oracle", {})),
    }


def completed_report(result: dict[str, Any]) -> dict[str, Any]:
    """The result of a finished ``train()``: status, totals and the best checkpoint's test metrics."""
    return {
        REPORT_KIND: FINAL,
        "status": COMPLETED,
        "failure_reason": None,
        "step": result["steps"],
        "flops": result["flops"],
        "pf_days": result["pf_days"],
        "wall_seconds": result["wall_seconds"],
        "best_epoch": result.get("best_epoch", result.get("best_window")),  # the best checkpoint's epoch or window
        **_params(result["params"]),
        **_training_totals(result),
        **_metrics("test", result["test"]),
    }


def _training_totals(result: dict[str, Any]) -> dict[str, Any]:
    """Passes, training time without evaluation, the Table 3 sparsity of the sequences trained on, and MFU."""
    timing, utilisation = result["timing"], result["mfu"]
    return {"passes": timing["passes"], "train_wall_seconds": timing["train_wall_seconds"],
            "train_cpu_seconds": timing["train_cpu_seconds"], **result["training_sparsity"],
            "train_flops_per_s": utilisation["train_flops_per_s"], "mfu": utilisation["mfu"]}


def failure_report(error: BaseException, wall_seconds: float) -> dict[str, Any]:
    """A trial that raised: its status (failed or diverged) and a one-line reason."""
    status, reason = classify_failure(error)
    return {REPORT_KIND: FINAL, "status": status, "failure_reason": reason, "wall_seconds": wall_seconds}


def classify_failure(error: BaseException) -> tuple[str, str]:
    """(status, one-line reason) of an exception raised by a trial."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, TrainingDiverged):
        return DIVERGED, text or "training loss became NaN or infinite"
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return FAILED, f"out of memory ({type(error).__name__}): {text}".rstrip(": ")
    return FAILED, f"{type(error).__name__}: {text}" if text else type(error).__name__
