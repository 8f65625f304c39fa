"""The ``scaling`` command line: dispatches to one module per subcommand.

Every subcommand module exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports happen inside ``run`` so that ``--help`` stays fast.
A :class:`~core.errors.UserError` is printed as one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scaling.commands import add_subcommands, run_subcommand
from core.errors import UserError

# subcommand name -> module implementing it
COMMANDS: dict[str, str] = {
    "train": "scaling.commands.train",
    "config": "scaling.commands.config",
    "data": "scaling.commands.data",
    "analyze": "scaling.commands.analyze",
    "quickstart": "scaling.commands.quickstart",
    "reproduce": "scaling.commands.reproduce",
    "bench": "scaling.commands.bench",
    "sweep": "scaling.commands.sweep",
    "results": "scaling.commands.results",
    "serve-bench": "scaling.commands.serve_bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaling",
        description="Scaling-law study harness for Generative Recommenders (HSTU) vs Transformer and DLRM baselines.",
    )
    add_subcommands(parser, COMMANDS, dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run_subcommand(args, "command")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
