"""FEAR: ranking architectures by their feature-extraction ability (Dey, Shah & Bubeck 2021).

Per candidate, in two stages on the search's dataset:

1. **Train to a threshold**: regular training (the protocol's recipe) until the
   running training accuracy reaches ``threshold`` -- a level that a fast
   shallow learner reaches on the same data (:func:`shallow_learner_threshold`:
   HoG features into a two-hidden-layer MLP; 0.6 on CIFAR-10 in the paper).  The
   time this takes is the *time to threshold*, reported in ``info``.
2. **Train as a feature extractor**: freeze everything but the last few cells
   and the head (the layers after the cells: final BN, classifier), train a few
   more epochs with larger batches (a fresh cosine schedule over those epochs).

Score: the training accuracy of the last stage-2 epoch (``score="val_acc"``:
the validation accuracy after stage 2).

**Early rejection** (``reject_factor``, the paper's 1.2 on CIFAR-10, 4.0 in its
random-search run): a candidate whose stage 1 takes longer than
``reject_factor`` times the fastest time to threshold seen so far in the search
is stopped there and recorded as *rejected*: the evaluation fails with reason
``"rejected: ..."`` and the worst score (``-inf``), so strategies treat it like
any failed candidate and ``SearchResult.to_dataframe()`` shows it.  The fastest
time is kept in ``Context.extras`` (key :data:`FASTEST_KEY`), i.e. per search;
with worker processes each worker keeps its own (the candidates it evaluated),
and a resumed search starts from none.  A strategy (or a script) may set
``ctx.extras[FASTEST_KEY]`` itself.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..config import check_choice, check_float, check_int
from ..curves import LearningCurve
from ..registry import estimators
from ..training import TrainingFailed, build_model, train
from .base import Context, Estimate, Estimator

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset
    from ..spaces.base import Architecture

__all__ = ["FEAR", "CandidateRejected", "hog_features", "shallow_learner_threshold", "trainable_names",
           "FASTEST_KEY"]

#: ``Context.extras`` key holding the fastest time to threshold (seconds) seen in the search
FASTEST_KEY = "fear:fastest_time_to_threshold"


class CandidateRejected(TrainingFailed):
    """FEAR's early rejection: stage 1 took longer than ``reject_factor`` x the fastest time to threshold."""

    reason = "rejected"


# --------------------------------------------------------------------------- #
# The shallow learner: HoG features + MLP


def hog_features(x: torch.Tensor, *, cell: int = 8, bins: int = 9, block: int = 2, clip: float = 0.2,
                 eps: float = 1e-6) -> torch.Tensor:
    """Histogram-of-oriented-gradients descriptors (Dalal & Triggs 2005) of an NCHW batch: ``(N, D)``.

    Centred ``[-1, 0, 1]`` gradients; for colour images each pixel takes the
    gradient of the channel with the largest magnitude; unsigned orientations
    (0-180 degrees) vote with their magnitude into ``bins`` bins, split linearly
    between the two nearest bin centres; votes are summed over ``cell`` x ``cell``
    cells; blocks of ``block`` x ``block`` cells (stride one cell) are
    L2-Hys normalised (L2, clip at ``clip``, L2 again) and concatenated.
    """
    if x.dim() != 4:
        raise ValueError(f"hog_features expects an NCHW batch, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    for name, v in (("cell", cell), ("bins", bins), ("block", block)):
        check_int(v, name, who="hog_features")
    cells_y, cells_x = h // cell, w // cell
    if cells_y < block or cells_x < block:
        raise ValueError(f"hog_features: a {h}x{w} image has {cells_y}x{cells_x} cells of {cell}px, "
                         f"fewer than one block of {block}x{block} cells; use a smaller cell")
    x = x.float()
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[..., :, 1:-1] = x[..., :, 2:] - x[..., :, :-2]
    gy[..., 1:-1, :] = x[..., 2:, :] - x[..., :-2, :]
    mag = torch.hypot(gx, gy)
    best = mag.argmax(dim=1, keepdim=True)  # strongest channel per pixel
    mag = mag.gather(1, best)[:, 0]
    angle = torch.rad2deg(torch.atan2(gy.gather(1, best)[:, 0], gx.gather(1, best)[:, 0])) % 180.0
    pos = angle / (180.0 / bins) - 0.5  # position between bin centres
    lo = torch.floor(pos)
    frac = pos - lo
    lo_bin = lo.long() % bins
    hi_bin = (lo_bin + 1) % bins
    hist = torch.zeros(n, bins, h, w)
    hist.scatter_add_(1, lo_bin[:, None], (mag * (1 - frac))[:, None])
    hist.scatter_add_(1, hi_bin[:, None], (mag * frac)[:, None])
    hist = hist[..., :cells_y * cell, :cells_x * cell]
    cells = F.avg_pool2d(hist, cell) * (cell * cell)  # (N, bins, cells_y, cells_x)
    blocks = cells.unfold(2, block, 1).unfold(3, block, 1)  # (N, bins, by, bx, block, block) -> bins fastest below
    blocks = blocks.permute(0, 2, 3, 4, 5, 1).reshape(n, (cells_y - block + 1) * (cells_x - block + 1), -1)
    blocks = blocks / torch.sqrt((blocks ** 2).sum(-1, keepdim=True) + eps ** 2)
    blocks = blocks.clamp_max(clip)
    blocks = blocks / torch.sqrt((blocks ** 2).sum(-1, keepdim=True) + eps ** 2)
    return blocks.reshape(n, -1)


_THRESHOLD_CACHE: dict[str, dict[str, Any]] = {}


def shallow_learner_threshold(data: Dataset, *, hidden: Sequence[int] = (128, 128), cell: int | None = None,
                              seed: int = 0, max_iter: int = 200, cache_dir: str | Path | None = None,
                              details: bool = False) -> float | dict[str, Any]:
    """FEAR's training-accuracy threshold for ``data``: a shallow learner's training accuracy.

    HoG features (:func:`hog_features`, ``cell`` pixels per cell; default a
    quarter of the image side, 8 px at 32 px) of the training split into
    scikit-learn's ``MLPClassifier`` with two hidden layers (``hidden``), Adam,
    early stopping on 10% of the training images held out inside the learner
    (so that it does not memorise a small training set); the threshold is its
    accuracy on the whole training split (FEAR, Appendix A.3: 0.6 on CIFAR-10).

    Cached per dataset fingerprint and learner settings, in-process and, with
    ``cache_dir``, in ``cache_dir/fear_thresholds.json``.  ``details=True``
    returns a dict with the threshold (``"threshold"``), the learner's
    held-out accuracy, its iterations, the feature size and the seconds taken.
    """
    from sklearn.neural_network import MLPClassifier

    hidden = tuple(int(h) for h in hidden)
    if len(hidden) < 1 or min(hidden) < 1:
        raise ValueError(f"hidden must be a non-empty sequence of positive layer widths, got {hidden!r}")
    cell = max(1, data.resolution // 4) if cell is None else cell
    key = json.dumps([data.fingerprint(), list(hidden), cell, seed, max_iter])
    path = Path(cache_dir) / "fear_thresholds.json" if cache_dir is not None else None
    if key not in _THRESHOLD_CACHE and path is not None and path.exists():
        stored = json.loads(path.read_text())
        if key in stored:
            _THRESHOLD_CACHE[key] = stored[key]
    if key not in _THRESHOLD_CACHE:
        t0 = time.perf_counter()
        feats = torch.cat([hog_features(data.x_train[i:i + 2048].cpu(), cell=cell)
                           for i in range(0, data.n_train, 2048)]).numpy()
        y = data.y_train.cpu().numpy()
        mlp = MLPClassifier(hidden_layer_sizes=hidden, early_stopping=True, validation_fraction=0.1,
                            max_iter=max_iter, random_state=seed)
        mlp.fit(feats, y)
        result = {"threshold": float(mlp.score(feats, y)), "heldout_acc": float(mlp.best_validation_score_),
                  "iterations": int(mlp.n_iter_), "features": int(feats.shape[1]),
                  "seconds": time.perf_counter() - t0, "dataset": data.fingerprint()}
        _THRESHOLD_CACHE[key] = result
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            stored = json.loads(path.read_text()) if path.exists() else {}
            stored[key] = result
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(stored, indent=1))
            tmp.replace(path)
    result = _THRESHOLD_CACHE[key]
    return dict(result) if details else result["threshold"]


# --------------------------------------------------------------------------- #
# Which parameters stay trainable in stage 2


def _has_params(m: torch.nn.Module) -> bool:
    return any(True for _ in m.parameters())


def _blocks(model: torch.nn.Module) -> tuple[list[str], int | None, int]:
    """Top-level blocks with parameters, in forward order, the cell stack expanded.

    The cell stack is the ``Sequential`` / ``ModuleList`` child with the most
    parameterised elements (at least two).  Returns (block prefixes, index
    where the cells start, number of cells); ``(names, None, 0)`` without a stack.
    """
    children = [(n, c) for n, c in model.named_children() if _has_params(c)]
    stacks = [(sum(_has_params(m) for m in c), n) for n, c in children
              if isinstance(c, (torch.nn.Sequential, torch.nn.ModuleList))]
    size, stack = max(stacks, default=(0, None))
    if size < 2:
        return [n for n, _ in children], None, 0
    names: list[str] = []
    start = 0
    for n, c in children:
        if n == stack:
            start = len(names)
            names.extend(f"{n}.{k}" for k, m in c.named_children() if _has_params(m))
        else:
            names.append(n)
    return names, start, size


def trainable_names(model: torch.nn.Module, cells: int = 1) -> list[str]:
    """Module prefixes FEAR keeps trainable in stage 2: the last ``cells`` cells and everything after them.

    The cells are the elements of the model's largest ``Sequential`` /
    ``ModuleList`` child (NB201: ``cells``); the head is every block with
    parameters after it (NB201: ``lastact``, ``classifier``).  A model without
    such a child: its last ``cells + 1`` parameterised children.
    """
    check_int(cells, "cells", low=0)
    names, start, length = _blocks(model)
    if start is None:
        return names[-(cells + 1):]
    if cells > length:
        raise ValueError(f"cannot keep {cells} cells trainable: the model has {length}")
    return names[start + length - cells:] if cells else names[start + length:]


def _frozen_parameters(model: torch.nn.Module, keep: Sequence[str]) -> list[str]:
    def kept(name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in keep)

    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in keep if not any(n == p or n.startswith(p + ".") for n in names)]
    if unknown:
        raise ValueError(f"FEAR: unfrozen prefix(es) {unknown} match no parameter of the model; "
                         f"its parameters start with {sorted({n.split('.')[0] for n in names})}")
    return [n for n in names if not kept(n)]


# --------------------------------------------------------------------------- #
# The estimator


def _concat(a: LearningCurve, b: LearningCurve, info: dict[str, Any]) -> LearningCurve:
    """Stage 1 then stage 2 as one curve (validation entries NaN where a stage did not validate)."""
    def val(c: LearningCurve, name: str) -> tuple:
        return getattr(c, name) or (math.nan,) * c.epochs

    both_val = bool(a.val_acc or b.val_acc)
    return LearningCurve(
        minibatch_losses=a.minibatch_losses + b.minibatch_losses,
        train_acc=a.train_acc + b.train_acc,
        val_loss=val(a, "val_loss") + val(b, "val_loss") if both_val else (),
        val_acc=val(a, "val_acc") + val(b, "val_acc") if both_val else (),
        epoch_seconds=a.epoch_seconds + b.epoch_seconds,
        info=info,
    )


@estimators.register("fear")
class FEAR(Estimator):
    """FEAR (see the module docstring).

    Args:
        threshold: stage 1's training-accuracy threshold; ``None``: computed
            once per dataset by :func:`shallow_learner_threshold`.
        max_epochs: cap of stage 1 (``None``: the protocol's ``epochs``); a
            candidate that never reaches the threshold goes on to stage 2 with
            ``info["reached_threshold"] = False``.
        stage2_epochs: epochs of stage 2.
        stage2_batch_size: its batch size (``None``: 4 x the protocol's).
        stage2_lr: its initial learning rate (``None``: the protocol's), cosine
            to the protocol's ``lr_min`` over ``stage2_epochs``.
        unfrozen_cells: cells kept trainable in stage 2, besides the head
            (see :func:`trainable_names`).
        unfrozen: explicit module prefixes to keep trainable instead (e.g.
            ``("cells.4", "lastact", "classifier")``).
        score: ``"train_acc"`` (the paper's main variant) or ``"val_acc"``.
        reject_factor: early rejection (e.g. 1.2); ``None`` turns it off.
        check_every: steps between checks of the running accuracy in stage 1.
        threshold_cache: directory for the on-disk cache of computed thresholds.
    """

    score_description = ("training accuracy after stage 2, the few epochs with all but the last cells frozen "
                         "(validation accuracy with score='val_acc')")
    score_is_accuracy = True

    def __init__(self, threshold: float | None = None, *, max_epochs: int | None = None, stage2_epochs: int = 5,
                 stage2_batch_size: int | None = None, stage2_lr: float | None = None, unfrozen_cells: int = 1,
                 unfrozen: Sequence[str] | None = None, score: str = "train_acc",
                 reject_factor: float | None = None, check_every: int = 1, threshold_cache: str | None = None):
        self.threshold = check_float(threshold, "threshold", low=0, low_open=True, high=1,
                                     none=True, who="FEAR")
        self.max_epochs = check_int(max_epochs, "max_epochs", none=True, who="FEAR")
        self.stage2_epochs = check_int(stage2_epochs, "stage2_epochs", who="FEAR")
        self.stage2_batch_size = check_int(stage2_batch_size, "stage2_batch_size", none=True, who="FEAR")
        self.stage2_lr = check_float(stage2_lr, "stage2_lr", low=0, low_open=True, none=True, who="FEAR")
        self.unfrozen_cells = check_int(unfrozen_cells, "unfrozen_cells", low=0, who="FEAR")
        if unfrozen is not None:
            if isinstance(unfrozen, str) or not all(isinstance(p, str) and p for p in unfrozen) or not unfrozen:
                raise ValueError(f"FEAR: unfrozen must be a non-empty list of module prefixes or None, "
                                 f"got {unfrozen!r}")
            unfrozen = list(unfrozen)
        self.unfrozen = unfrozen
        self.score = check_choice(score, "score", ("train_acc", "val_acc"), who="FEAR")
        self.reject_factor = check_float(reject_factor, "reject_factor", low=1, none=True, who="FEAR")
        self.check_every = check_int(check_every, "check_every", who="FEAR")
        self.threshold_cache = threshold_cache

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"threshold": 0.3, "max_epochs": 2, "stage2_epochs": 1}

    def validate_context(self, ctx: Context) -> None:
        if ctx.table is not None:
            raise ValueError("FEAR trains candidates (two stages, part of the network frozen); it cannot read "
                             "a tabular benchmark's curves: search without table=")
        if self.max_epochs is not None and self.max_epochs > ctx.protocol.schedule_epochs:
            raise ValueError(f"FEAR(max_epochs={self.max_epochs}) exceeds the protocol's schedule "
                             f"(schedule_epochs={ctx.protocol.schedule_epochs})")
        if self.score == "val_acc" and ctx.data is not None and ctx.data.n_val == 0:
            raise ValueError(f"FEAR(score='val_acc') needs a validation split, but dataset {ctx.data.name!r} "
                             "has n_val=0")

    def resolve_threshold(self, data: Dataset) -> tuple[float, str]:
        """The stage-1 threshold for ``data`` and where it came from (``"given"`` or ``"shallow-learner"``)."""
        if self.threshold is not None:
            return self.threshold, "given"
        return float(shallow_learner_threshold(data, cache_dir=self.threshold_cache)), "shallow-learner"

    def estimate(self, arch: Architecture, ctx: Context) -> Estimate:
        self.validate_context(ctx)
        if ctx.data is None:
            raise ValueError("FEAR trains candidates and needs a dataset; this context has data=None")
        data, protocol = ctx.data, ctx.protocol
        threshold, source = self.resolve_threshold(data)
        seed = ctx.arch_seed(arch)
        model = build_model(ctx.space, arch, data, protocol, seed)
        fastest = ctx.extras.get(FASTEST_KEY)
        limit = self.reject_factor * fastest if self.reject_factor is not None and fastest is not None else None

        # stage 1: regular training until the running training accuracy reaches the threshold
        stage1 = train(model, data, protocol, epochs=self.max_epochs or protocol.schedule_epochs, seed=seed,
                       validate=False, progress=ctx.progress, stop_at_train_acc=threshold, max_seconds=limit,
                       check_every=self.check_every)
        stop = stage1.info.get("stopped")
        seconds1 = stop["seconds"] if stop else stage1.total_seconds
        epochs1 = stop["epochs"] if stop else float(stage1.epochs)
        info: dict[str, Any] = {"threshold": threshold, "threshold_source": source,
                                "reached_threshold": bool(stop and stop["reason"] == "train-acc"),
                                "stage1_seconds": seconds1, "stage1_epochs": epochs1,
                                "stage1_train_acc": stop["train_acc"] if stop else stage1.train_acc[-1]}
        if limit is not None:
            info["fastest_time_to_threshold"] = fastest
        if stop and stop["reason"] == "time-limit":
            raise CandidateRejected(
                f"stage 1 ran {seconds1:.3g} s without reaching training accuracy {threshold:.3g} "
                f"(running accuracy {stop['train_acc']:.3g}): longer than {self.reject_factor:g} x the fastest "
                f"time to threshold {fastest:.3g} s", LearningCurve(**{**_fields(stage1), "info": info}))
        if info["reached_threshold"]:
            info["time_to_threshold"] = seconds1
            info["epochs_to_threshold"] = epochs1
            if fastest is None or seconds1 < fastest:
                ctx.extras[FASTEST_KEY] = seconds1

        # stage 2: freeze all but the last cells and the head; larger batches, a few epochs
        keep = self.unfrozen if self.unfrozen is not None else trainable_names(model, self.unfrozen_cells)
        frozen = _frozen_parameters(model, keep)
        n_all = sum(p.numel() for p in model.parameters())
        frozen_set = set(frozen)
        n_trainable = sum(p.numel() for n, p in model.named_parameters() if n not in frozen_set)
        bs2 = self.stage2_batch_size or 4 * protocol.batch_size
        p2 = protocol.replace(schedule_epochs=self.stage2_epochs, batch_size=min(bs2, data.n_train),
                              lr=protocol.lr if self.stage2_lr is None else self.stage2_lr)
        validate2 = self.score == "val_acc"
        stage2 = train(model, data, p2, seed=seed + 1, validate=validate2, progress=ctx.progress, frozen=frozen)
        info.update({"unfrozen": list(keep), "trainable_fraction": n_trainable / max(n_all, 1),
                     "stage2_seconds": stage2.total_seconds, "stage2_batch_size": p2.batch_size,
                     "final_train_acc": stage2.train_acc[-1]})
        if validate2:
            info["final_val_acc"] = stage2.val_acc[-1]
        score = stage2.val_acc[-1] if validate2 else stage2.train_acc[-1]
        curve = _concat(stage1, stage2, {**info, "stage1_curve_epochs": stage1.epochs})
        return Estimate(float(score), stage1.total_seconds + stage2.total_seconds, epochs1 + self.stage2_epochs,
                        curve, info)


def _fields(c: LearningCurve) -> dict[str, Any]:
    return {name: getattr(c, name) for name in ("minibatch_losses", "train_acc", "val_loss", "val_acc",
                                                "epoch_seconds")}
