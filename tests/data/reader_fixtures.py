"""What the reader tests share: the one-line DataError a reader raises on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import DataError


def error_of(reader, *paths: Path) -> str:
    """The message of the DataError ``reader(*paths)`` raises, checked to be one line."""
    with pytest.raises(DataError) as caught:
        reader(*paths)
    message = str(caught.value)
    assert "\n" not in message
    return message
