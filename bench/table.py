"""The one table printer of the benchmarks: rows of dicts -> aligned text columns."""

from __future__ import annotations


def format_table(rows: list[dict]) -> str:
    """Columns in first-seen order; floats with 3 significant digits (whole numbers past 1000)."""
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(c for row in rows for c in row))
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
