"""``scaling reproduce NAME ...``: run one of the paper reproductions (see scaling/reproduce/)."""

from __future__ import annotations

import argparse
import importlib

HELP = "reproduce a paper table (trains several models; minutes to hours)"

# reproduction name -> module implementing it
REPRODUCTIONS: dict[str, str] = {
    "table4": "scaling.reproduce.table4",
    "table2": "scaling.reproduce.table2",
    "ranking": "scaling.reproduce.ranking",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="reproduction", metavar="NAME", required=True)
    for name, module_name in REPRODUCTIONS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_reproduce=module.run)


def run(args: argparse.Namespace) -> int:
    return args._reproduce(args)
