"""``scaling reproduce NAME ...``: run one of the paper reproductions (see scaling/reproduce/)."""

from __future__ import annotations

import argparse

from scaling.commands import add_subcommands, run_subcommand

HELP = "reproduce a paper table (trains several models; minutes to hours)"

# reproduction name -> module implementing it
REPRODUCTIONS: dict[str, str] = {
    "table4": "scaling.reproduce.table4",
    "table2": "scaling.reproduce.table2",
    "ranking": "scaling.reproduce.ranking",
    "stochastic-length": "scaling.reproduce.stochastic_length",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, REPRODUCTIONS, dest="reproduction", metavar="NAME")


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args, "reproduction")
