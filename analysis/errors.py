"""The error analysis raises for a results folder or option a user must fix (one line, no traceback)."""

from __future__ import annotations

from core.errors import UserError


class AnalysisError(UserError):
    """A results table or analysis option that cannot be analysed; the message says what to do."""
