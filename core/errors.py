"""The exception a user can act on: the CLI prints its message as one line and exits non-zero."""


class UserError(Exception):
    """Bad input (config, data file, results folder...) described in one actionable line."""


class DataError(UserError):
    """A data file that is missing, empty or malformed; the message names the file (and line)."""
