"""Tabular benchmarks: recorded learning curves and ground truth behind one interface.

* :class:`CurveTable` — the interface (``archs``, ``curve``, ``final_accuracy``,
  ``params``, ``restrict``); pass one to :class:`~nas_engine.search.Search` as
  ``table=`` to search on recorded curves instead of training.
* :class:`JsonlCurveTable` — the engine's own JSON Lines table format.
* :class:`NB201Table` — NAS-Bench-201 accuracy CSVs and curve JSONL files.
* :class:`NATSBench` — the official NATS-Bench topology "simple" release.
* :class:`RestrictedSpace` — a search space restricted to a table's architectures.
* :func:`load_truth_table` — a ground-truth table from a file (NB201 CSV or JSONL).

Tables only: the builder that trains architectures into a table runs searches,
so it lives above the search loop, in :mod:`nas_engine.build` (``build_table``,
``table_from_store``, ``FullTraining``).
"""

from .nats import NATSBench
from .nb201_table import NB201Table
from .table import CurveTable, JsonlCurveTable, RestrictedSpace  # RestrictedSpace: from nas_engine.spaces.restricted
from .truth import load_truth_table

__all__ = ["CurveTable", "JsonlCurveTable", "NB201Table", "NATSBench", "RestrictedSpace", "load_truth_table"]
