"""One module per ``scaling`` subcommand; each exposes ``HELP``, ``add_arguments`` and ``run``."""
