"""Ground truth from a file: :func:`load_truth_table` picks the table type from the file's name.

What ``nas-engine correlate --truth`` and the report's ``truth.png`` read.
It sits above the table modules it chooses between.
"""

from __future__ import annotations

import os
from pathlib import Path

from .nb201_table import NB201Table
from .table import CurveTable, JsonlCurveTable

__all__ = ["load_truth_table"]


def load_truth_table(path: str | os.PathLike) -> CurveTable:
    """A ground-truth table: an NB201 accuracy CSV (``.csv``) or an engine JSON Lines table (anything else)."""
    path = Path(path)
    if path.suffix == ".csv":
        return NB201Table(path)
    return JsonlCurveTable(path)
