"""``scaling reproduce NAME``: a paper table, as a shipped sweep run on the sweep engine and then its view.

Each reproduction is a sweep YAML under ``sweeps/`` (trials on Ray Tune, resumable, in parallel,
one results table) plus a named view of that table (:mod:`analysis.views`): exactly
``scaling sweep sweeps/FILE.yaml`` followed by ``scaling analyze STORAGE/NAME --view VIEW``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

HELP = "reproduce a paper table: run its sweep (sweeps/NAME.yaml, resumable) and write its view (markdown + CSV)"
SWEEPS_DIR = Path(__file__).resolve().parents[2] / "sweeps"


@dataclass(frozen=True)
class Reproduction:
    sweep: str  # file under sweeps/
    view: str  # analysis view (analysis/views/) that turns its results table into the paper's table
    help: str


REPRODUCTIONS: dict[str, Reproduction] = {
    "table2": Reproduction("table2.yaml", "table2",
                           "Table 2: Transformer vs HSTU (-rab, Softmax) vs HSTU (-rab) on Dirichlet-process data, "
                           "one pass (CPU, minutes)"),
    "table4": Reproduction("table4_ml100k_beauty.yaml", "table4",
                           "Table 4 settings: SASRec vs HSTU on ml-100k and amazon-beauty, leave-one-out (CPU, hours)"),
    "table4-ml-1m": Reproduction("table4.yaml", "table4",
                                 "Table 4 on MovieLens-1M: SASRec, HSTU, HSTU-large (one GPU per trial)"),
    "table5": Reproduction("table5.yaml", "table5",
                           "Table 5: Transformer, ablated HSTUs, Transformer++, HSTU; retrieval log pplx and ranking "
                           "NE, streaming (CPU, minutes)"),
    "ranking": Reproduction("ranking.yaml", "ranking",
                            "every ranking model (GRs and DLRMs): NE and AUC per task on ml-100k and the synthetic "
                            "industrial stream"),
    "stochastic-length": Reproduction("stochastic_length.yaml", "stochastic_length",
                                      "Stochastic Length: metrics, sparsity and s2, time per pass for alpha 1.8 and "
                                      "1.6 vs 2.0 (off)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="reproduction", metavar="NAME", required=True)
    for name, reproduction in REPRODUCTIONS.items():
        sub = subparsers.add_parser(name, help=reproduction.help,
                                    description=f"{reproduction.help}. Runs sweeps/{reproduction.sweep}, then the "
                                                f"'{reproduction.view}' view of its results.")
        _add_run_arguments(sub)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a sweep key, as for scaling sweep: run-config keys under config., e.g. "
                             "--set config.data.synthetic_dp.num_records=2000 --set resources.cpu=2 (repeatable)")
    parser.add_argument("--storage", default=None, metavar="DIR",
                        help="results root (local folder or URI), overriding the sweep's (default: runs/sweeps)")
    parser.add_argument("--resume", action="store_true",
                        help="continue: skip trials with a final record, rerun unfinished ones")
    parser.add_argument("--retry-failed", action="store_true",
                        help="like --resume, and also rerun failed and diverged trials")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="folder for NAME.md and NAME.csv (default: the sweep's results folder)")
    parser.add_argument("--dry-run", action="store_true", help="validate, print the expanded trials and exit")


def run(args: argparse.Namespace) -> int:
    from scaling.commands.sweep import format_trials, log
    from scaling.sweep.plan import plan_sweep

    reproduction = REPRODUCTIONS[args.reproduction]
    sweep_file = SWEEPS_DIR / reproduction.sweep
    if not sweep_file.is_file():
        raise UserError(f"{sweep_file} not found: scaling reproduce runs the sweeps of a source checkout")
    plan = plan_sweep(sweep_file, args.storage, args.resume, args.retry_failed, args.overrides)
    if args.dry_run:
        print(format_trials(plan))
        print(f"\n{len(plan.trials)} trials, {len(plan.to_run)} to run; results would go to {plan.store.root}; "
              f"then the '{reproduction.view}' view")
        return 0

    from scaling.sweep.records import finished
    from scaling.sweep.runner import run_sweep_exclusively

    out = args.out if args.out is not None else _local_folder(plan.store.root)  # checked before training
    plan = run_sweep_exclusively(plan, args.resume, args.retry_failed, log)
    records = plan.store.read_records()
    unfinished = [t for t in plan.to_run if not finished(records.get(t.trial_id))]
    if unfinished:  # said before the view, which may find too little to show
        log(f"{len(unfinished)} trials did not finish; continue with: scaling reproduce {args.reproduction} --resume")
    print_view(reproduction.view, plan.store.root, out)
    return 1 if unfinished else 0


def _local_folder(root: str) -> Path:
    if "://" in root:
        raise UserError(f"results are at {root}; pass --out DIR for the table's local folder")
    return Path(root)


def print_view(view: str, results: str, out: Path) -> None:
    """The view of the results table at ``results`` (a sweep folder, local or URI): printed, and OUT/VIEW.md/.csv."""
    from analysis.views import write_view
    from analysis.views.common import ViewOptions
    from scaling.sweep.table import read_results

    markdown = write_view(view, read_results(results), out, ViewOptions(), source=results)
    print(markdown, end="")
    print(f"wrote {out / f'{view}.md'} and {out / f'{view}.csv'}")
