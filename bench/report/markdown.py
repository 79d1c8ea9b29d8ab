"""Plain Markdown tables (no extra dependency)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _cell(v: Any, digits: int) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.{digits}f}"
    return str(v).replace("|", "\\|")


def markdown_table(rows: Sequence[dict[str, Any]], *, digits: int = 3, columns: Sequence[str] | None = None) -> str:
    """GitHub-flavoured Markdown table of ``rows`` (dicts with the same keys); floats to ``digits``."""
    if not rows:
        return "(no rows)\n"
    cols = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c), digits) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
