"""One module per ``scaling`` subcommand; each exposes ``HELP``, ``add_arguments`` and ``run``.

Commands with their own sub-subcommands (``bench``) register modules of the
same shape with :func:`add_subcommands`, exactly as the top-level CLI does.
"""

from __future__ import annotations

import argparse
import importlib
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
    """Run the module :func:`add_subcommands` selected for ``dest``."""
    return int(getattr(args, f"_run_{dest}")(args) or 0)
