"""Tabular benchmarks: recorded learning curves and ground truth behind one interface.

* :class:`CurveTable` — the interface (``archs``, ``curve``, ``final_accuracy``,
  ``params``, ``restrict``); pass one to :class:`~nas_engine.search.Search` as
  ``table=`` to search on recorded curves instead of training.
* :class:`JsonlCurveTable` — the engine's own JSON Lines table format.
* :class:`NB201Table` — NAS-Bench-201 accuracy CSVs and curve JSONL files.
* :class:`NATSBench` — the official NATS-Bench topology "simple" release.
* :class:`RestrictedSpace` — a search space restricted to a table's architectures.
"""

from .builder import FullTraining, build_table, table_from_store
from .nats import NATSBench
from .nb201_table import NB201Table
from .table import CurveTable, JsonlCurveTable, RestrictedSpace  # RestrictedSpace: from nas_engine.spaces.restricted

__all__ = [
    "CurveTable", "JsonlCurveTable", "NB201Table", "NATSBench", "RestrictedSpace", "FullTraining", "build_table",
    "table_from_store",
]
