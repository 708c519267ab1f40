"""NAS-Bench-201 ground truth from plain files: an accuracy CSV and a curve JSONL.

**Accuracy CSV** (e.g. ``nb201_cifar10_200ep.csv``, ``nb201_all_datasets_12ep.csv``):
a header line, then one row per architecture.  Columns ``index`` (the
benchmark's architecture index) and ``arch_str`` (its NB201 string) are
required; ``params_m`` (parameters, in millions) is optional; every other
column is an accuracy in percent, e.g. ``cifar10_valid_acc`` (trained on the
25k train half, accuracy on the 25k valid half) and ``cifar10_test_acc``
(trained on all 50k, test accuracy: the usual ground truth) in the 200-epoch
table, ``cifar10-test``, ``cifar100-val``, ... in the 12-epoch one.

**Curve JSONL** (e.g. ``nb201_cifar10valid_curves_200archs.jsonl``): one JSON
object per line, ``{"index": int, "arch_str": str, "train_acc": [...],
"valid_acc": [...]}`` with the per-epoch training and validation accuracy (in
percent, mean of the benchmark's seeds) on ``cifar10-valid``.  No losses and
no times are recorded, so its curves have only ``train_acc`` and ``val_acc``
(fractions): ValAcc can score them, loss-based estimators (TSE, ...) cannot,
and a tabular search over them is charged no time.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from ..curves import LearningCurve
from ..spaces.base import Architecture
from .table import CurveTable, file_digest, require_file, without_validation

__all__ = ["NB201Table"]

_KEY_COLUMNS = ("index", "arch_str")
_PARAMS = "params_m"


class NB201Table(CurveTable):
    """NAS-Bench-201 accuracies from ``csv_path`` and, optionally, learning curves from ``curves``.

    ``metric`` is the CSV column :meth:`final_accuracy` returns by default.
    :meth:`archs` lists the architectures with a curve (none without a curve
    file); :meth:`all_archs` every architecture of the CSV, all of which have
    accuracies (and parameter counts when the CSV has ``params_m``).
    """

    space_name = "nb201"

    def __init__(self, csv_path: str | os.PathLike, curves: str | os.PathLike | None = None, *,
                 metric: str = "cifar10_test_acc"):
        self.csv_path = require_file(csv_path, "NAS-Bench-201 accuracy CSV")
        self._rows: dict[str, dict[str, float]] = {}
        self._index: dict[str, int] = {}
        with open(self.csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in _KEY_COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{str(self.csv_path)!r} lacks column(s) {missing}; its header is {header}")
            self.columns = tuple(c for c in header if c not in _KEY_COLUMNS and c != _PARAMS)
            self._has_params = _PARAMS in header
            for lineno, row in enumerate(reader, start=2):
                try:
                    values = {c: float(row[c]) for c in header if c not in _KEY_COLUMNS}
                    self._index[row["arch_str"]] = int(row["index"])
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{str(self.csv_path)!r} line {lineno}: {exc}") from None
                self._rows[row["arch_str"]] = values
        if metric not in self.columns:
            raise ValueError(f"unknown metric {metric!r}; the accuracy columns of {str(self.csv_path)!r} "
                             f"are {', '.join(self.columns)}")
        self.metric = metric

        self.curves_path = None if curves is None else require_file(curves, "NAS-Bench-201 curve JSONL")
        self._curves: dict[str, LearningCurve] = {}
        if self.curves_path is not None:
            self._curves = self._read_curves(self.curves_path)
        self.max_epochs = min((c.epochs for c in self._curves.values()), default=None)

    def _read_curves(self, path: Path) -> dict[str, LearningCurve]:
        out = {}
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    arch, index = row["arch_str"], int(row["index"])
                    train_acc, valid_acc = row["train_acc"], row["valid_acc"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{str(path)!r} line {lineno}: expected an object with index, arch_str, "
                                     f"train_acc and valid_acc ({exc!r})") from None
                if self._index.get(arch) != index:
                    raise ValueError(f"{str(path)!r} line {lineno}: architecture {arch!r} has index {index}, "
                                     f"but {str(self.csv_path)!r} gives {self._index.get(arch)}")
                out[arch] = LearningCurve(
                    train_acc=[a / 100 for a in train_acc], val_acc=[a / 100 for a in valid_acc],
                    info={"source": f"NB201Table curves {path.name!r}, which record per-epoch train/valid "
                                    "accuracy only (no losses, no times)", "index": index},
                )
        return dict(sorted(out.items(), key=lambda kv: kv[1].info["index"]))

    # -- the CurveTable interface -------------------------------------------------
    def archs(self) -> list[str]:
        """The architectures with a learning curve, by benchmark index."""
        return list(self._curves)

    def __contains__(self, arch: Architecture | str) -> bool:
        return self._string(arch) in self._curves

    def _curve(self, arch: str, *, validate: bool) -> LearningCurve:
        curve = self._curves.get(arch)
        if curve is None:
            raise self._missing(arch)
        return curve if validate else without_validation(curve)

    def final_accuracy(self, arch: Architecture | str, metric: str | None = None) -> float:
        """Column ``metric`` (default: the table's ``metric``) for ``arch``, as a fraction."""
        metric = self.metric if metric is None else metric
        if metric not in self.columns:
            raise ValueError(f"unknown metric {metric!r}; the accuracy columns are {', '.join(self.columns)}")
        return self._row(arch)[metric] / 100

    def params(self, arch: Architecture | str) -> int:
        if not self._has_params:
            return super().params(arch)
        return round(self._row(arch)[_PARAMS] * 1e6)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "type": "NB201Table", "csv": self.csv_path.name, "csv_sha256": file_digest(self.csv_path),
            "curves": None if self.curves_path is None else self.curves_path.name,
            "curves_sha256": None if self.curves_path is None else file_digest(self.curves_path),
        }

    # -- the whole CSV ----------------------------------------------------------------
    def all_archs(self) -> list[str]:
        """Every architecture of the CSV, in its order."""
        return list(self._rows)

    def ground_truth(self, metric: str | None = None) -> dict[str, float]:
        """``{arch string: accuracy}`` over every row of the CSV (not only those with curves)."""
        return {a: self.final_accuracy(a, metric) for a in self._rows}

    def index(self, arch: Architecture | str) -> int:
        """The benchmark's index of ``arch``."""
        self._row(arch)
        return self._index[self._string(arch)]

    def _row(self, arch: Architecture | str) -> dict[str, float]:
        s = self._string(arch)
        try:
            return self._rows[s]
        except KeyError:
            raise KeyError(f"architecture {s!r} is not in {str(self.csv_path)!r}") from None

    def _missing(self, arch: str) -> KeyError:
        if self.curves_path is None:
            return KeyError(f"{self!r} has no learning curves: pass curves= (e.g. the path of "
                            f"nb201_cifar10valid_curves_200archs.jsonl) to get {arch!r}'s")
        return super()._missing(arch)

    def __repr__(self) -> str:
        curves = "" if self.curves_path is None else f", curves={str(self.curves_path)!r}"
        return f"NB201Table({str(self.csv_path)!r}{curves})"
