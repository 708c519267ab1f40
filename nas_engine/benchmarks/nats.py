"""NATS-Bench topology search space (= NAS-Bench-201), read from the official "simple" release.

The release ``NATS-tss-v1_0-3ffb9-simple`` is a directory of bz2-compressed
pickles: ``meta.pickle.pbz2`` and one ``{index:06d}.pickle.pbz2`` per
architecture (15,625).  It is not downloaded by this package: get the archive
from the NATS-Bench project, extract it and pass the directory to
:class:`NATSBench`.  The pickles are read with the restricted unpickler of
:mod:`nas_engine.safeload` (dicts, lists, tuples, sets, str, bytes, numbers,
``OrderedDict`` and numpy scalars/arrays only): a file that names anything
else is refused and nothing in it runs.

``meta``: ``{"meta_archs": [arch string of index 0, 1, ...], "total_archs":
15625, "arch2infos": None, "evaluated_indexes": set()}``.

Per architecture: ``{hp: entry}`` for the two training schedules ``hp`` =
``"12"`` and ``"200"`` (epochs), each entry ``{"arch_index", "arch_str",
"dataset_seed": {dataset: [seeds]}, "all_results": {(dataset, seed): run},
"clear_net_done"}``.  A ``run`` holds ``epochs``, ``train_losses``,
``train_acc1es`` (percent) and ``train_times`` (seconds of each epoch), keyed
by epoch ``0..epochs-1``; ``eval_names`` (the evaluation splits) and
``eval_acc1es``, ``eval_losses``, ``eval_times`` keyed ``"<split>@<epoch>"``;
``params`` (millions), ``flop`` (millions), ``latency`` (``[seconds]``), and
``name``, ``seed``, ``arch_config``, ``train_acc5es``, ``net_state_dict``
(None in this release).

Seeds: ``hp="200"``: 777, 888, 999 for every dataset; ``hp="12"``: 111 and
777 for ``cifar10-valid``, 111 for the others.  Splits per dataset:

* ``cifar10-valid`` (trained on the 25k train half): ``x-valid`` (the 25k
  valid half) at every epoch; ``ori-test`` (the 10k test set) at every epoch
  for hp 12, only at the last epoch for hp 200.
* ``cifar10`` (trained on all 50k): ``ori-test`` only, at every epoch.
* ``cifar100``, ``ImageNet16-120``: ``x-valid`` and ``x-test`` (two halves of
  the test set) and ``ori-test``; for hp 200 ``x-valid``/``x-test`` only at
  the last epoch.

What :class:`NATSBench` returns (accuracies as fractions):

* ``curve``: ``train_loss``/``train_acc`` per epoch; ``val_loss``/``val_acc``
  from :data:`VAL_SPLIT` of the dataset (``x-valid``; for ``cifar10``, which
  has no validation split, ``ori-test``: ranking by it ranks by test data)
  when that split is recorded at every epoch, else none (the curve's
  ``info["source"]`` says so).  ``epoch_seconds``: the recorded training time
  of each epoch, plus the recorded time of the validation pass when
  ``validate`` (as a live run that validates is charged).  With ``seed=None``
  every value is the mean over the available seeds.
* ``final_accuracy``: the :data:`TEST_SPLIT` accuracy at the last epoch
  (default ``cifar10``, hp 200: the usual ground truth).
"""

from __future__ import annotations

import bz2
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..curves import LearningCurve
from ..safeload import safe_pickle_load
from ..spaces.base import Architecture
from .table import CurveTable, file_digest

__all__ = ["NATSBench", "DATASETS", "HPS", "VAL_SPLIT", "TEST_SPLIT"]

RELEASE = "NATS-tss-v1_0-3ffb9-simple"
DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
HPS = ("12", "200")
#: the evaluation split a curve's validation values come from
VAL_SPLIT = {"cifar10-valid": "x-valid", "cifar10": "ori-test", "cifar100": "x-valid", "ImageNet16-120": "x-valid"}
#: the evaluation split of the final (test) accuracy
TEST_SPLIT = {"cifar10-valid": "ori-test", "cifar10": "ori-test", "cifar100": "x-test", "ImageNet16-120": "x-test"}

_META = "meta.pickle.pbz2"
_ARCH_FILE = re.compile(r"^(\d{6})\.pickle\.pbz2$")
_GET_IT = (f"the full release is NATS-Bench's {RELEASE!r} archive: download and extract it yourself, "
           "then pass its directory to NATSBench(path)")


def _load(file: Path, what: str) -> Any:
    """The bz2-compressed pickle ``file``, through the restricted unpickler (errors name the file)."""
    with bz2.open(file, "rb") as f:
        return safe_pickle_load(f, path_for_errors=file, what=what)


@dataclass(frozen=True)
class _Run:
    """One recorded training run, as arrays over epochs (NaN where nothing was recorded)."""

    train_loss: np.ndarray
    train_acc: np.ndarray
    train_time: np.ndarray
    evals: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # split -> (acc, loss, time)
    params: float
    flop: float

    @classmethod
    def from_raw(cls, r: dict[str, Any]) -> _Run:
        E = int(r["epochs"])

        def by_epoch(d: dict, split: str | None = None) -> np.ndarray:
            keys = range(E) if split is None else (f"{split}@{e}" for e in range(E))
            return np.array([d.get(k, np.nan) for k in keys], dtype=np.float64)

        evals = {s: (by_epoch(r["eval_acc1es"], s), by_epoch(r["eval_losses"], s), by_epoch(r["eval_times"], s))
                 for s in r["eval_names"]}
        return cls(by_epoch(r["train_losses"]), by_epoch(r["train_acc1es"]), by_epoch(r["train_times"]),
                   evals, float(r["params"]), float(r["flop"]))


class NATSBench(CurveTable):
    """The NATS-Bench topology "simple" release in directory ``path`` (see the module docstring).

    ``dataset``, ``hp`` and ``seed`` are the defaults of :meth:`curve` (and so
    what a tabular search reads); ``seed=None`` averages over the seeds.
    ``meta.pickle.pbz2`` is read on construction and the directory listed
    once: :meth:`archs` are the architectures whose files are present.  An
    architecture's file is read when first asked for; the last
    ``cache_size`` architectures read are kept in memory.
    """

    space_name = "nb201"

    def __init__(self, path: str | os.PathLike, *, dataset: str = "cifar10-valid", hp: str = "200",
                 seed: int | None = None, cache_size: int = 256):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"NATS-Bench directory not found: {str(self.path)!r}; {_GET_IT}")
        meta = self.path / _META
        if not meta.is_file():
            raise FileNotFoundError(f"NATS-Bench meta file not found: {str(meta)!r}; {_GET_IT}")
        raw_meta = _load(meta, "a NATS-Bench meta file")
        try:
            self._meta_archs: list[str] = [str(s) for s in raw_meta["meta_archs"]]
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{str(meta)!r} is not a NATS-Bench meta file (no 'meta_archs' list)") from e
        self._index = {s: i for i, s in enumerate(self._meta_archs)}
        present = (_ARCH_FILE.match(e.name) for e in os.scandir(self.path))
        self._present = sorted(i for m in present if m and (i := int(m.group(1))) < len(self._meta_archs))
        self._present_set = frozenset(self._present)
        self.dataset, self.hp = self._check(dataset, hp)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer (a recorded seed) or None (their mean), got {seed!r}")
        self.seed = seed
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive integer, got {cache_size!r}")
        self.cache_size = cache_size
        self._cache: OrderedDict[int, dict[str, dict[str, dict[int, _Run]]]] = OrderedDict()

    @property
    def max_epochs(self) -> int:
        return int(self.hp)

    # -- architectures and files ------------------------------------------------------
    def archs(self) -> list[str]:
        """The architectures whose files are in the directory, by index."""
        return [self._meta_archs[i] for i in self._present]

    def __contains__(self, arch: Architecture | str) -> bool:
        return self._index.get(self._string(arch)) in self._present_set

    def index(self, arch: Architecture | str) -> int:
        """The benchmark's index of ``arch`` (``KeyError`` for a string that is no NB201 architecture)."""
        s = self._string(arch)
        try:
            return self._index[s]
        except KeyError:
            raise KeyError(f"architecture {s!r} is not one of the {len(self._meta_archs)} architectures "
                           f"of {self!r}") from None

    def _record(self, arch: Architecture | str) -> dict[str, dict[str, dict[int, _Run]]]:
        """``{hp: {dataset: {seed: _Run}}}`` for ``arch``, read from its file (or the cache)."""
        i = self.index(arch)
        rec = self._cache.get(i)
        if rec is not None:
            self._cache.move_to_end(i)
            return rec
        file = self.path / f"{i:06d}.pickle.pbz2"
        if not file.is_file():
            raise FileNotFoundError(
                f"NATS-Bench file {str(file)!r} of architecture {self._meta_archs[i]!r} (index {i}) is missing: "
                f"the directory holds {len(self._present)} of the {len(self._meta_archs)} architecture files; "
                f"{_GET_IT}")
        raw = _load(file, "a NATS-Bench architecture file")
        rec = {}
        try:
            for hp, entry in raw.items():
                if entry["arch_str"] != self._meta_archs[i]:
                    raise ValueError(f"{str(file)!r} holds architecture {entry['arch_str']!r}, but the meta file "
                                     f"gives {self._meta_archs[i]!r} for index {i}")
                rec[hp] = {ds: {int(s): _Run.from_raw(entry["all_results"][(ds, s)]) for s in seeds}
                           for ds, seeds in entry["dataset_seed"].items()}
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"{str(file)!r} is not a NATS-Bench architecture file as documented in "
                             f"nas_engine.benchmarks.nats ({type(e).__name__}: {e})") from e
        self._cache[i] = rec
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return rec

    def _runs(self, arch: Architecture | str, dataset: str | None, hp: str | None, seed: int | None,
              ) -> tuple[list[_Run], list[int], str, str]:
        """The runs of (``arch``, ``dataset``, ``hp``) for ``seed`` (None: all seeds), and the seeds."""
        dataset, hp = self._check(self.dataset if dataset is None else dataset, self.hp if hp is None else hp)
        by_seed = self._record(arch)[hp][dataset]
        if seed is None:
            seeds = sorted(by_seed)
        elif seed in by_seed:
            seeds = [seed]
        else:
            raise ValueError(f"seed {seed!r} is not recorded for {dataset} with hp={hp}; "
                             f"available: {sorted(by_seed)} (or None for their mean)")
        return [by_seed[s] for s in seeds], seeds, dataset, hp

    @staticmethod
    def _check(dataset: str, hp: str) -> tuple[str, str]:
        if dataset not in DATASETS:
            raise ValueError(f"unknown NATS-Bench dataset {dataset!r}; available: {', '.join(DATASETS)}")
        if hp not in HPS:
            raise ValueError(f"hp must be one of {HPS} (the training schedule's epochs, as a string), got {hp!r}")
        return dataset, hp

    # -- queries ----------------------------------------------------------------------
    def _curve(self, arch: str, *, validate: bool, dataset: str | None = None, hp: str | None = None,
               seed: int | None = None) -> LearningCurve:
        """The recorded curve; ``dataset``/``hp``/``seed`` default to the table's settings."""
        runs, seeds, dataset, hp = self._runs(arch, dataset, hp, self.seed if seed is None else seed)

        def mean(get) -> np.ndarray:
            return np.mean([get(r) for r in runs], axis=0)

        split = VAL_SPLIT[dataset]
        val = [r.evals[split] for r in runs if split in r.evals]
        val_acc = np.mean([v[0] for v in val], axis=0) if len(val) == len(runs) else None
        source = f"NATS-Bench {self.path.name} index {self.index(arch)}, {dataset}, hp={hp}"
        if val_acc is None or np.isnan(val_acc).any():
            val_acc = None
            source += f" (split {split!r} is not recorded at every epoch: no validation curve)"
        seconds = mean(lambda r: r.train_time)
        curve = {"train_loss": mean(lambda r: r.train_loss), "train_acc": mean(lambda r: r.train_acc) / 100}
        if validate and val_acc is not None:
            curve["val_loss"] = np.mean([v[1] for v in val], axis=0)
            curve["val_acc"] = val_acc / 100
            seconds = seconds + np.mean([v[2] for v in val], axis=0)
        info = {"source": source, "index": self.index(arch), "dataset": dataset, "hp": hp, "seeds": seeds,
                "val_split": split if val_acc is not None else None}
        return LearningCurve(**curve, epoch_seconds=seconds, info=info)

    def curve(self, arch: Architecture | str, epochs: int | None = None, *, validate: bool = True,
              dataset: str | None = None, hp: str | None = None, seed: int | None = None) -> LearningCurve:
        """The recorded curve of ``arch`` on ``dataset`` under schedule ``hp`` (see the module docstring).

        ``dataset``, ``hp`` and ``seed`` default to the table's settings;
        ``seed=None`` there means the mean over the recorded seeds.
        """
        return super().curve(arch, epochs, validate=validate, dataset=dataset, hp=hp, seed=seed)

    def final_accuracy(self, arch: Architecture | str, dataset: str = "cifar10", hp: str = "200",
                       seed: int | None = None) -> float:
        """Test accuracy (:data:`TEST_SPLIT`) at the last epoch, a fraction; ``seed=None``: mean over seeds."""
        runs, _, dataset, hp = self._runs(arch, dataset, hp, seed)
        split = TEST_SPLIT[dataset]
        acc = float(np.mean([r.evals[split][0][-1] for r in runs]))
        if np.isnan(acc):
            raise ValueError(f"{self!r} records no {split!r} accuracy at the last epoch for {dataset}, hp={hp}")
        return acc / 100

    def params(self, arch: Architecture | str, dataset: str = "cifar10") -> int:
        """Number of parameters of ``arch``'s network for ``dataset`` (its classifier differs)."""
        runs, _, _, _ = self._runs(arch, dataset, "200", None)
        return round(runs[0].params * 1e6)

    def flops(self, arch: Architecture | str, dataset: str = "cifar10") -> float:
        """FLOPs of one forward pass of ``arch``'s network on one ``dataset`` image (recorded in millions)."""
        runs, _, _, _ = self._runs(arch, dataset, "200", None)
        return runs[0].flop * 1e6

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "NATSBench", "release": self.path.name, "meta_sha256": file_digest(self.path / _META),
                "dataset": self.dataset, "hp": self.hp, "seed": self.seed}

    def __repr__(self) -> str:
        return (f"NATSBench({str(self.path)!r}, dataset={self.dataset!r}, hp={self.hp!r}, seed={self.seed!r}; "
                f"{len(self._present)} of {len(self._meta_archs)} architecture files)")
