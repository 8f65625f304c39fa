"""``scaling config [CONFIG.yaml] [--set ...]``: print the resolved config, or every key with its meaning."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "validate and print a resolved run config, or list every config key (--keys)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, nargs="?", default=None, help="YAML run config (default: built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--keys", action="store_true", help="list every key with its type, default and meaning")


def run(args: argparse.Namespace) -> int:
    import yaml

    from scaling.config import RunConfig, load_run_config
    from core.configtools import describe, to_dict

    if args.keys:
        for key, kind, default, help_text in describe(RunConfig):
            print(f"{key:<40} {kind:<36} default {default!r:<14} {help_text}")
        return 0
    config = load_run_config(args.config, args.overrides)
    print(yaml.safe_dump(to_dict(config), sort_keys=False).rstrip())
    return 0
