"""One module per ``scaling`` subcommand; each exposes ``HELP``, ``add_arguments`` and ``run``.

Commands with their own sub-subcommands (``bench``) register modules of the
same shape with :func:`add_subcommands`, exactly as the top-level CLI does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping


def add_subcommands(parser: argparse.ArgumentParser, registry: Mapping[str, str], dest: str, metavar: str) -> None:
    """Add one subparser per ``registry`` entry (name -> module path); the chosen module's ``run``
    ends up in ``args._run_<dest>``."""
    subparsers = parser.add_subparsers(dest=dest, metavar=metavar, required=True)
    for name, module_name in registry.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(**{f"_run_{dest}": module.run})


def run_subcommand(args: argparse.Namespace, dest: str) -> int:
    """Run the module :func:`add_subcommands` selected for ``dest``, its output options checked first."""
    check_output_options(args)
    return int(getattr(args, f"_run_{dest}")(args) or 0)


def check_output_options(args: argparse.Namespace) -> None:
    """``--out DIR`` and ``--csv FILE`` of any command, checked before it works (a one-line error, not lost results)."""
    from pathlib import Path

    from core.files import check_output_file, check_output_folder

    for option, check in (("out", check_output_folder), ("csv", check_output_file)):
        value = getattr(args, option, None)
        if isinstance(value, Path):
            warning = check(value, f"--{option}")
            if warning is not None:
                print(f"warning: {warning}", file=sys.stderr)
