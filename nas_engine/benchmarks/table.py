"""Tabular benchmarks: recorded learning curves and ground truth, one interface.

A :class:`CurveTable` maps architecture strings of one search space to what a
benchmark recorded for them: a :class:`~nas_engine.curves.LearningCurve`
(``curve``), the ground-truth final test accuracy (``final_accuracy``, a
fraction in [0, 1]) and, where recorded, the parameter count (``params``).
Given to :class:`~nas_engine.search.Search` as ``table=``, it replaces training:
every curve estimator reads its curve from the table and is charged the
table's recorded seconds (``curve.epoch_seconds``) instead of training time.

A table usually holds only part of a space; :meth:`CurveTable.restrict` (or
:class:`RestrictedSpace`) turns a space into the space of the table's
architectures, so that any strategy searches only what the table can answer.

The engine's own table format, read by :class:`JsonlCurveTable` and written by
:meth:`JsonlCurveTable.write`, is JSON Lines (UTF-8, one JSON object per line,
blank lines ignored, ``NaN``/``Infinity`` as Python's :mod:`json` writes them)::

    {"arch": "<architecture string>",
     "space": "<search-space name, e.g. nb201>",
     "curve": <LearningCurve.to_dict()>,
     "final_accuracy": <float in [0, 1] or null>,
     "params": <int or null>,
     "info": {<anything JSON>}}

* ``arch`` (required) is the space's canonical string; each appears once.
* ``space`` (required) is the same on every line.
* ``curve`` (required) is :meth:`LearningCurve.to_dict` of the recorded run:
  per-epoch lists ``minibatch_losses`` (one list per epoch), ``train_loss``,
  ``train_acc``, ``val_loss``, ``val_acc`` (accuracies as fractions) and
  ``epoch_seconds`` (seconds each epoch took, validation included when the
  run validated: this is what a tabular search charges), any of which may be
  left out, plus an optional ``info`` object.
* ``final_accuracy`` is the ground truth to rank against (test accuracy after
  the full schedule), ``params`` the parameter count; both may be null or
  absent.  ``info`` (optional) holds anything else about the row.

No other keys are allowed, so a typo fails loudly.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..curves import LearningCurve
from ..files import atomic_write
from ..spaces.base import Architecture, SearchSpace
from ..spaces.restricted import RestrictedSpace  # re-exported: restrict() makes one

__all__ = ["CurveTable", "JsonlCurveTable", "RestrictedSpace"]


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of the SHA-256 of a file (a table's identity in a store)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def require_file(path: str | os.PathLike, what: str) -> Path:
    """``Path(path)``, or ``FileNotFoundError`` naming the path and what it should hold."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {str(p)!r}")
    return p


def without_validation(curve: LearningCurve) -> LearningCurve:
    """``curve`` without its validation lists (what a run with ``validate=False`` records)."""
    if not curve.val_loss and not curve.val_acc:
        return curve
    d = curve.to_dict()
    d.pop("val_loss", None)
    d.pop("val_acc", None)
    return LearningCurve.from_dict(d)


class CurveTable(ABC):
    """Recorded learning curves and ground truth for architectures of one space.

    Subclasses set :attr:`space_name` and :attr:`max_epochs` and implement
    :meth:`archs`, ``__contains__``, :meth:`_curve`, :meth:`final_accuracy`
    and :meth:`fingerprint`; they may add keyword arguments to ``curve`` and
    ``final_accuracy`` (e.g. the dataset).  Architectures are given as
    :class:`~nas_engine.spaces.base.Architecture` or as strings.  An
    architecture the table does not hold raises ``KeyError`` naming it and
    the table.
    """

    #: name of the search space whose architecture strings the table uses
    space_name: str = "nb201"
    #: epochs recorded for every architecture (None when not known in advance)
    max_epochs: int | None = None

    @abstractmethod
    def archs(self) -> list[str]:
        """The architecture strings that have a recorded curve, in the table's order."""

    @abstractmethod
    def __contains__(self, arch: Architecture | str) -> bool:
        """Whether the table has a recorded curve for ``arch``."""

    def __len__(self) -> int:
        return len(self.archs())

    def curve(self, arch: Architecture | str, epochs: int | None = None, *, validate: bool = True,
              **kw) -> LearningCurve:
        """The recorded curve of ``arch``, truncated to its first ``epochs`` epochs if given.

        ``validate=False`` leaves out the validation lists (and, where the
        table records it, the time of the validation passes), as a live run
        with ``validate=False`` would.  ``curve.epoch_seconds`` is the
        recorded time per epoch, so ``curve.total_seconds`` is the cost the
        benchmark paid for those epochs.
        """
        s = self._string(arch)
        full = self._curve(s, validate=validate, **kw)
        if epochs is None:
            return full
        if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs:
            raise ValueError(f"epochs must be a positive integer or None, got {epochs!r}")
        if epochs > full.epochs:
            raise ValueError(f"{self!r} records {full.epochs} epochs for {s!r}; {epochs} were asked for")
        return full.truncate(epochs)

    @abstractmethod
    def _curve(self, arch: str, *, validate: bool, **kw) -> LearningCurve:
        """The full recorded curve of ``arch`` (a string; ``KeyError`` if absent)."""

    @abstractmethod
    def final_accuracy(self, arch: Architecture | str, **kw) -> float:
        """The ground-truth final test accuracy of ``arch``, a fraction in [0, 1]."""

    def ground_truth(self, **kw) -> dict[str, float]:
        """``{arch string: final_accuracy}`` for every architecture the table has a truth for."""
        return {a: self.final_accuracy(a, **kw) for a in self.archs()}

    def params(self, arch: Architecture | str) -> int:
        """The parameter count of ``arch``; ``NotImplementedError`` if the table does not record it."""
        raise NotImplementedError(f"{type(self).__name__} does not record parameter counts")

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """A JSON-able identity of the table and its settings (stored in a search's config)."""

    def restrict(self, space: SearchSpace) -> RestrictedSpace:
        """``space`` restricted to the architectures of this table (see :class:`RestrictedSpace`)."""
        if space.name != self.space_name:
            raise ValueError(f"{self!r} holds architectures of space {self.space_name!r}, not {space.name!r}")
        return RestrictedSpace(space, self.archs())

    # -- helpers --------------------------------------------------------------
    def _string(self, arch: Architecture | str) -> str:
        """The string of ``arch`` (``TypeError``/``ValueError`` for a wrong type or space)."""
        if isinstance(arch, Architecture):
            if arch.space_name != self.space_name:
                raise ValueError(f"architecture {arch!r} belongs to space {arch.space_name!r}, "
                                 f"but {self!r} holds space {self.space_name!r}")
            return arch.string
        if isinstance(arch, str):
            return arch
        raise TypeError(f"expected an Architecture or an architecture string, got {type(arch).__name__}: {arch!r}")

    def _missing(self, arch: str) -> KeyError:
        return KeyError(f"architecture {arch!r} is not in {self!r}")


_ROW_KEYS = ("arch", "space", "curve", "final_accuracy", "params", "info")


class JsonlCurveTable(CurveTable):
    """A table in the engine's own JSON Lines format (see the module docstring).

    The whole file is read on construction.  ``max_epochs`` is the length of
    the shortest curve (the epochs every architecture has).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = require_file(path, "curve table (JSON Lines)")
        with open(self.path, encoding="utf-8") as f:
            lines = [(f"{str(self.path)!r} line {n}", line) for n, line in enumerate(f, start=1) if line.strip()]
        items = []
        for where, line in lines:
            try:
                items.append((where, json.loads(line)))
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        self._rows, space = _check_rows(items)
        self.space_name = space or "nb201"
        self.max_epochs = min((r["curve"].epochs for r in self._rows.values()), default=None)

    @classmethod
    def write(cls, path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> JsonlCurveTable:
        """Check ``rows``, write them as a table file at ``path`` (replacing it) and open it.

        Each row is a mapping with the keys of the format; ``arch`` may be an
        :class:`~nas_engine.spaces.base.Architecture` (then ``space`` defaults
        to its space's name) and ``curve`` a :class:`LearningCurve`.
        """
        path = Path(path)
        items = []
        for i, row in enumerate(rows):
            row = dict(row)
            arch = row.get("arch")
            if isinstance(arch, Architecture):
                row["arch"] = arch.string
                row.setdefault("space", arch.space_name)
            if isinstance(row.get("curve"), LearningCurve):
                row["curve"] = row["curve"].to_dict()
            items.append((f"row {i}", row))
        checked, _ = _check_rows(items)
        lines = [json.dumps({"arch": c["arch"], "space": c["space"], "curve": row["curve"],
                             "final_accuracy": c["final_accuracy"], "params": c["params"], "info": c["info"]}) + "\n"
                 for (_, row), c in zip(items, checked.values())]
        atomic_write(path, "".join(lines).encode("utf-8"))  # never through a link planted in the directory
        return cls(path)

    def archs(self) -> list[str]:
        return list(self._rows)

    def __contains__(self, arch: Architecture | str) -> bool:
        return self._string(arch) in self._rows

    def _row(self, arch: Architecture | str) -> dict[str, Any]:
        s = self._string(arch)
        try:
            return self._rows[s]
        except KeyError:
            raise self._missing(s) from None

    def _curve(self, arch: str, *, validate: bool) -> LearningCurve:
        curve = self._row(arch)["curve"]
        return curve if validate else without_validation(curve)

    def final_accuracy(self, arch: Architecture | str) -> float:
        row = self._row(arch)
        if row["final_accuracy"] is None:
            raise ValueError(f"{self!r} does not record a final accuracy for {row['arch']!r}")
        return row["final_accuracy"]

    def params(self, arch: Architecture | str) -> int:
        row = self._row(arch)
        if row["params"] is None:
            raise ValueError(f"{self!r} does not record a parameter count for {row['arch']!r}")
        return row["params"]

    def info(self, arch: Architecture | str) -> dict[str, Any]:
        """The row's ``info`` object."""
        return dict(self._row(arch)["info"])

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "JsonlCurveTable", "file": self.path.name, "sha256": file_digest(self.path)}

    def __repr__(self) -> str:
        return f"JsonlCurveTable({str(self.path)!r}, {len(self._rows)} architectures)"


def _check_rows(items: Iterable[tuple[str, Any]]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Validate ``(location, row)`` pairs: ``({arch: checked row}, space name or None)``.

    A ``ValueError`` names the location of the first bad row.
    """
    rows: dict[str, dict[str, Any]] = {}
    space = None
    for where, row in items:
        try:
            checked = _check_row(row)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        if checked["arch"] in rows:
            raise ValueError(f"{where}: architecture {checked['arch']!r} appears twice")
        if space is not None and checked["space"] != space:
            raise ValueError(f"{where}: space {checked['space']!r} differs from the earlier rows' {space!r}; "
                             "a table holds one space")
        space = checked["space"]
        rows[checked["arch"]] = checked
    return rows, space


def _check_row(row: Any) -> dict[str, Any]:
    """A validated copy of one table row, ``curve`` parsed into a :class:`LearningCurve`."""
    if not isinstance(row, dict):
        raise TypeError(f"a row must be a JSON object, got {type(row).__name__}")
    unknown = set(row) - set(_ROW_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; allowed: {', '.join(_ROW_KEYS)}")
    for key in ("arch", "space"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ValueError(f"{key!r} must be a non-empty string, got {row.get(key)!r}")
    if not isinstance(row.get("curve"), dict):
        raise ValueError(f"'curve' must be an object (LearningCurve.to_dict()), got {row.get('curve')!r}")
    acc = row.get("final_accuracy")
    if acc is not None and (isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 1):
        raise ValueError(f"'final_accuracy' must be a fraction in [0, 1] or null, got {acc!r}")
    params = row.get("params")
    if params is not None and (isinstance(params, bool) or not isinstance(params, int) or params < 0):
        raise ValueError(f"'params' must be a non-negative integer or null, got {params!r}")
    info = row.get("info") or {}
    if not isinstance(info, dict):
        raise ValueError(f"'info' must be an object, got {info!r}")
    return {"arch": row["arch"], "space": row["space"], "curve": LearningCurve.from_dict(row["curve"]),
            "final_accuracy": None if acc is None else float(acc), "params": params, "info": info}
