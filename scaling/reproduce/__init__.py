"""Paper reproductions: commands that train several models and write a comparison table.

Each module exposes ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and is a
subcommand of ``scaling reproduce``. They are benchmarks, not tests: they take minutes to hours.
"""
