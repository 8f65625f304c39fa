"""``scaling config [CONFIG.yaml] [--set ...]``: print the resolved config, every key with its meaning, or the models."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "validate and print a resolved run config, list every config key (--keys) or every model (--models)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, nargs="?", default=None, help="YAML run config (default: built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--keys", action="store_true", help="list every key with its type, default and meaning")
    parser.add_argument("--models", action="store_true",
                        help="list every model.name with its family, input, tasks and the model sections it reads")


def run(args: argparse.Namespace) -> int:
    import yaml

    from scaling.config import RunConfig, load_run_config
    from core.configtools import describe, to_dict

    if args.keys:
        for key, kind, default, help_text in describe(RunConfig):
            print(f"{key:<40} {kind:<36} default {default!r:<14} {help_text}")
        return 0
    if args.models:
        print(format_models())
        return 0
    config = load_run_config(args.config, args.overrides)
    print(yaml.safe_dump(to_dict(config), sort_keys=False).rstrip())
    return 0


def format_models() -> str:
    """One line per catalogue model: name, family, input, tasks, the sections it reads and what it is."""
    from model.catalogue import MODELS

    lines = [f"{'model.name':<14} {'family':<6} {'input':<11} {'data.task':<32} {'reads':<17} description"]
    for name, spec in MODELS.items():
        sections = ", ".join(f"model.{section}" for section in sorted(spec.sections)) or "-"
        lines.append(f"{name:<14} {spec.family:<6} {spec.input:<11} {', '.join(sorted(spec.tasks)):<32} {sections:<17} "
                     f"{spec.description}")
    return "\n".join(lines)
