"""How numbers read in the report: compact, scientific only where the magnitude needs it."""

from __future__ import annotations

import math
from numbers import Real


def number(value: float | None, digits: int = 3) -> str:
    """``0.0123``, ``1.23e-05``; NaN, None or a missing value of a nullable column (pandas' NA) as an em dash."""
    if not isinstance(value, Real) or not math.isfinite(value):
        return "—"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.{digits}g}"
    return f"{value:.{max(digits - 1, 1)}e}"


def signed(value: float, digits: int = 3) -> str:
    """``+0.012``, ``-1.20e-05``, and a plain ``0``."""
    if value == 0:
        return "0"
    text = number(value, digits)
    return text if text.startswith("-") else f"+{text}"


def decades_text(decades: float, digits: int = 1) -> str:
    """``1.0 decade``, ``2.3 decades``."""
    text = f"{decades:.{digits}f}"
    return f"{text} decade" if float(text) == 1.0 else f"{text} decades"
