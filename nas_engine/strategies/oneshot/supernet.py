"""Supernet training: the one loop that trains a weight-sharing supernet by sampling paths per step.

Each optimisation step draws one minibatch (with the dataset's augmentation),
asks a *path sampler* for the architectures (paths) to train on it, runs each
path forward and backward on that same minibatch, averaging the gradients
(each path's loss is divided by the number of paths), and makes one SGD update:

* :func:`uniform_paths` with ``k=1``: RandNAS / SPOS (one uniformly random path);
* :func:`uniform_paths` with ``k=4``: MultiPath (k random paths, averaged gradients);
* :func:`fair_paths`: FairNAS strict fairness (``|O|`` paths per step in which
  every op on every edge appears exactly once).

With ``inner_steps > 1`` or ``prox > 0`` a step is a first-order
meta-learning step instead (SoTL thesis §3.4.1, Algorithm 4: the supernet
weights are the meta-weights, a path is a task): for each path, starting from
the current weights θ, take ``inner_steps`` plain SGD steps on the step's
minibatch at the schedule's current learning rate η (for MetaMinibatchProx
with the proximal term ``prox/2 * ||w - θ||²`` added to the loss), giving
θ̂; restore θ and hand the supernet's optimiser the Reptile direction
``(θ - θ̂) / (inner_steps * η)`` averaged over the paths, i.e. the mean
gradient along the inner trajectory.  With plain SGD the outer update is
``θ + (θ̂ - θ) / inner_steps`` (η_outer = 1/T at the same learning rate); the
optimiser adds its momentum and weight decay (the inner steps have neither).
With one inner step and no proximal term this is exactly single-path training.

Options of the one-shot mitigations (Ning et al. §5.3, §6; off by default):

* ``snapshots=K``: keep a copy of the weights at the end of each of the last
  ``K`` epochs (:attr:`SupernetTrainer.snapshots`, epoch -> state dict) for
  temporal ensembles and ranking stability; the owner stores them (the
  strategy writes them as checkpoint files beside ``supernet.pt``) and hands
  them back with :meth:`SupernetTrainer.load_snapshots` on resume;
* ``forgetting=True``: record every trained path's accuracy on one fixed
  validation minibatch (:data:`FORGETTING_IMAGES` images, chosen with its own
  generator) right after the step that trained it and again at the end of the
  epoch (:attr:`SupernetTrainer.forgetting`, one record per epoch; the
  forgetting value is their difference, :func:`nas_engine.diagnosis.forgetting_values`).
  The extra forwards draw no random number and change no weight (the BatchNorms
  keep no running statistics), so training stays bit-identical; their seconds
  are kept apart (:attr:`SupernetTrainer.diagnostic_seconds`), not charged;
* ``prune=Pruning(...)``: one-shot pruning (§6.3): after epoch ``prune.epoch``
  score ``prune.pool`` by the validation accuracy of the current weights, keep
  the best ``prune.fraction`` (:attr:`SupernetTrainer.kept`) and train the
  remaining epochs on paths ``prune.sampler(kept)`` draws from them.

The optimiser, schedule, gradient scaler and the optimisation step are
:class:`~nas_engine.training.Optimization`, the same as :func:`~nas_engine.training.train`'s
(from a :class:`~nas_engine.training.Protocol`: SGD with momentum, cosine from
``lr`` to ``lr_min`` over the whole ``protocol.schedule_epochs``); model placement and
minibatches (augmentation included) are :func:`~nas_engine.training.prepare_model`
and :func:`~nas_engine.training.training_batch`.  :class:`SupernetTrainer` holds the whole training
state (weights, optimiser, schedule, data-order and path RNGs) so that training
can be checkpointed after any epoch and resumed bit-exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...data import Dataset
from ...spaces.base import Architecture, FixedEdgeOps, SearchSpace, require_capability
from ...training import (
    Optimization,
    Protocol,
    TrainingDiverged,
    evaluate,
    prepare_model,
    run_epochs,
    training_batch,
)

__all__ = ["PathSampler", "uniform_paths", "fair_paths", "repeated", "SupernetTrainer", "Pruning", "path_accuracy",
           "FORGETTING_IMAGES"]

#: the validation images of the fixed minibatch on which forgetting is measured (fewer when the split is smaller)
FORGETTING_IMAGES = 256

#: ``sampler(space, rng) -> paths``: the architectures trained on one minibatch
PathSampler = Callable[[SearchSpace, np.random.Generator], list[Architecture]]


def uniform_paths(k: int = 1, population: Sequence[Architecture] | None = None) -> PathSampler:
    """``k`` independent uniformly random paths per step (k=1: SPOS/RandNAS; k=4: MultiPath).

    Uniform over the space (``space.sample``), or over ``population`` when given (the isomorphism classes'
    representatives of ``deiso`` sampling, the architectures one-shot pruning kept): one integer draw each.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"uniform_paths: k must be a positive integer, got {k!r}")
    pool = None if population is None else tuple(population)
    if pool is not None and not pool:
        raise ValueError("uniform_paths: the population to sample from is empty")

    def sample(space: SearchSpace, rng: np.random.Generator) -> list[Architecture]:
        if pool is None:
            return [space.sample(rng) for _ in range(k)]
        return [pool[int(rng.integers(len(pool)))] for _ in range(k)]

    return sample


def repeated(sampler: PathSampler, times: int) -> PathSampler:
    """``times`` draws of ``sampler`` per step, their paths trained on one minibatch with averaged gradients
    (Ning et al.'s S Monte-Carlo architecture samples per supernet step); ``times=1`` is ``sampler`` itself."""
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError(f"repeated: times must be a positive integer, got {times!r}")
    if times == 1:
        return sampler

    def sample(space: SearchSpace, rng: np.random.Generator) -> list[Architecture]:
        return [p for _ in range(times) for p in sampler(space, rng)]

    return sample


class _OnePath(torch.nn.Module):
    """``supernet`` restricted to one path, as a module of one input (what :func:`~nas_engine.training.evaluate`
    runs)."""

    def __init__(self, supernet: torch.nn.Module, arch: Architecture):
        super().__init__()
        self.supernet, self.arch = supernet, arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.arch)


def path_accuracy(supernet: torch.nn.Module, arch: Architecture, x: torch.Tensor, y: torch.Tensor,
                  protocol: Protocol) -> float:
    """The accuracy of ``supernet``'s path ``arch`` on ``(x, y)`` in evaluation mode (batches of
    ``protocol.eval_batch_size``), with the weights it has now: what ``valacc-inherited`` computes on an
    extracted copy, without the copy."""
    module = _OnePath(supernet, arch).train(supernet.training)  # evaluate() restores this mode afterwards
    return evaluate(module, x, y, protocol)[1]


@dataclass(frozen=True)
class Pruning:
    """One-shot pruning (Ning et al. §6.3): after epoch ``epoch``, keep the ``fraction`` of ``pool`` with the
    highest validation accuracy under the supernet's current weights (ties by position in ``pool``; at least
    one) and train the remaining epochs with ``sampler(kept)``."""

    epoch: int
    fraction: float
    pool: tuple[Architecture, ...]
    sampler: Callable[[Sequence[Architecture]], PathSampler]


def fair_paths(space: SearchSpace, rng: np.random.Generator) -> list[Architecture]:
    """FairNAS strict fairness: ``|O|`` paths; on every edge each op is used by exactly one of them.

    Each edge draws an independent random permutation of the op set; path ``j``
    takes the ``j``-th op of every edge's permutation.  Needs a space with the
    :class:`~nas_engine.spaces.base.FixedEdgeOps` capability.
    """
    require_capability(space, FixedEdgeOps, "FairNAS's fair path sampling")
    ops, edges = space.OPS, space.EDGES
    perms = np.stack([rng.permutation(len(ops)) for _ in edges])  # (edges, |O|)
    return [space.from_ops([ops[perms[e, j]] for e in range(len(edges))]) for j in range(len(ops))]


class SupernetTrainer:
    """Trains ``supernet`` (forward ``supernet(x, path)``) on ``data`` with ``protocol``, ``sampler`` paths per step.

    ``seed`` fixes the data order, augmentation and path sampling.  Call
    :meth:`train_epoch` ``protocol.schedule_epochs`` times (or use :meth:`run`);
    :meth:`state_dict` / :meth:`load_state_dict` checkpoint everything.
    """

    def __init__(self, supernet: torch.nn.Module, space: SearchSpace, data: Dataset, protocol: Protocol,
                 sampler: PathSampler, *, seed: int = 0, inner_steps: int = 1, prox: float = 0.0,
                 snapshots: int = 0, forgetting: bool = False, prune: Pruning | None = None):
        if data.n_train == 0:
            raise ValueError(f"dataset {data.name!r} has no training images")
        if isinstance(snapshots, bool) or not isinstance(snapshots, int) or snapshots < 0:
            raise ValueError(f"SupernetTrainer: snapshots must be an integer >= 0, got {snapshots!r}")
        if not isinstance(forgetting, bool):
            raise ValueError(f"SupernetTrainer: forgetting must be True or False, got {forgetting!r}")
        if (forgetting or prune is not None) and data.n_val == 0:
            raise ValueError(f"dataset {data.name!r} has no validation images: forgetting and one-shot pruning "
                             "measure validation accuracy")
        if prune is not None and not 1 <= prune.epoch < protocol.schedule_epochs:
            raise ValueError(f"SupernetTrainer: the pruning epoch must be from 1 to {protocol.schedule_epochs - 1} "
                             f"(training continues after it), got {prune.epoch!r}")
        if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 1:
            raise ValueError(f"SupernetTrainer: inner_steps must be an integer >= 1, got {inner_steps!r}")
        if isinstance(prox, bool) or not isinstance(prox, (int, float)) or not math.isfinite(prox) or prox < 0:
            raise ValueError(f"SupernetTrainer: prox must be a finite number >= 0, got {prox!r}")
        self.supernet, self.space, self.protocol, self.sampler = supernet, space, protocol, sampler
        self.inner_steps, self.prox = inner_steps, float(prox)
        self.meta = inner_steps > 1 or self.prox > 0
        self.device = prepare_model(supernet, protocol)
        self.data = data.to(self.device)
        self.steps_per_epoch = math.ceil(self.data.n_train / protocol.batch_size)
        self.optimization = Optimization(supernet.parameters(), protocol, self.device, self.steps_per_epoch)
        if self.meta and self.scaler is not None:
            raise ValueError("meta-learning supernet steps (inner_steps > 1 or prox > 0) do not support fp16 "
                             "loss scaling; use amp='bf16' or full precision")
        self.generator = torch.Generator().manual_seed(int(seed) % (2**63))
        self.path_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA7B5]))
        self.epoch = 0
        self.seconds = 0.0
        self.epoch_losses: list[float] = []  # mean path loss per epoch
        self.paths_trained = 0
        self.keep_snapshots, self.prune = snapshots, prune
        #: epoch -> a copy of the weights (``supernet.state_dict()``) at its end, the last ``snapshots`` epochs
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self._snapshot_epochs: list[int] = []
        #: per epoch with ``forgetting``: {"epoch", "archs", "acc_after_step", "acc_after_epoch"}
        self.forgetting: list[dict[str, Any]] | None = [] if forgetting else None
        self.diagnostic_seconds = 0.0
        #: after pruning: the kept architectures' strings (best first) and every pool member's score
        self.kept: list[str] | None = None
        self.prune_scores: dict[str, float] | None = None
        self._active_sampler = sampler
        if forgetting:
            gen = torch.Generator().manual_seed((int(seed) + 0xF0A6E7) % (2**63))  # its own: no training draw
            n = min(FORGETTING_IMAGES, self.data.n_val)
            idx = torch.randperm(self.data.n_val, generator=gen)[:n].to(self.data.x_val.device)
            self._probe = (self.data.x_val[idx], self.data.y_val[idx])

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.optimization.optimizer

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        return self.optimization.scheduler

    @property
    def scaler(self) -> torch.amp.GradScaler | None:
        return self.optimization.scaler

    @property
    def done(self) -> bool:
        return self.epoch >= self.protocol.schedule_epochs

    def train_epoch(self) -> float:
        """One epoch (one pass over the training split); returns its mean path loss."""
        if self.done:
            raise RuntimeError(f"the supernet has already been trained for all {self.protocol.schedule_epochs} epochs")
        t0 = time.perf_counter()
        net, data, bs, dev = self.supernet, self.data, self.protocol.batch_size, self.device
        net.train()
        n = data.n_train
        perm = torch.randperm(n, generator=self.generator).to(dev)
        loss_sum = torch.zeros((), device=dev)
        n_losses = 0
        diagnostic = 0.0
        record = {"epoch": self.epoch + 1, "archs": [], "acc_after_step": []} if self.forgetting is not None else None
        for step in range(self.steps_per_epoch):
            xb, yb = training_batch(data, perm[step * bs:(step + 1) * bs], self.protocol, self.generator)
            paths = self._active_sampler(self.space, self.path_rng)
            loss_sum += self._meta_step(xb, yb, paths) if self.meta else self._step(xb, yb, paths)
            n_losses += len(paths)
            self.paths_trained += len(paths)
            if record is not None:
                t1 = time.perf_counter()
                for path in paths:
                    record["archs"].append(path.string)
                    record["acc_after_step"].append(path_accuracy(net, path, *self._probe, self.protocol))
                diagnostic += time.perf_counter() - t1
        mean = float(loss_sum) / max(n_losses, 1)  # one host sync per epoch
        if record is not None:
            t1 = time.perf_counter()
            after = {a: path_accuracy(net, self.space.from_string(a), *self._probe, self.protocol)
                     for a in dict.fromkeys(record["archs"])}
            record["acc_after_epoch"] = [after[a] for a in record["archs"]]
            diagnostic += time.perf_counter() - t1
        self.seconds += time.perf_counter() - t0 - diagnostic
        self.diagnostic_seconds += diagnostic
        if not math.isfinite(mean):
            raise TrainingDiverged(f"supernet training loss became non-finite in epoch {self.epoch + 1}")
        self.epoch += 1
        self.epoch_losses.append(mean)
        if record is not None:
            self.forgetting.append(record)
        if self.keep_snapshots:
            self.snapshots[self.epoch] = {k: v.detach().clone() for k, v in net.state_dict().items()}
            for e in sorted(self.snapshots)[:-self.keep_snapshots]:
                del self.snapshots[e]
        if self.prune is not None and self.epoch == self.prune.epoch:
            t1 = time.perf_counter()
            self._prune()
            self.seconds += time.perf_counter() - t1
        return mean

    def _prune(self) -> None:
        """Score the pruning pool with the current weights, keep the best fraction, sample from it from now on."""
        pool, x, y = self.prune.pool, self.data.x_val, self.data.y_val
        scores = [path_accuracy(self.supernet, a, x, y, self.protocol) for a in pool]
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))
        n_keep = max(1, int(round(self.prune.fraction * len(pool))))
        self.prune_scores = {a.string: float(sc) for a, sc in zip(pool, scores)}
        self.kept = [pool[i].string for i in order[:n_keep]]
        self._active_sampler = self.prune.sampler([pool[i] for i in order[:n_keep]])

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, paths: list[Architecture]) -> torch.Tensor:
        """One update on the paths' averaged gradients (the shared step); returns the sum of the paths' losses."""
        total = torch.zeros((), device=self.device)
        for _, loss in self.optimization.step(self.supernet, xb, yb, paths):
            total += loss
        return total

    def _meta_step(self, xb: torch.Tensor, yb: torch.Tensor, paths: list[Architecture]) -> torch.Tensor:
        """One Reptile / MetaMinibatchProx update (see the module docstring); returns the sum of the
        paths' pre-adaptation losses."""
        net, opt = self.supernet, self.optimization
        params = list(net.parameters())
        theta = [p.detach().clone() for p in params]
        lr = opt.lr
        direction: list[torch.Tensor | None] = [None] * len(params)
        total = torch.zeros((), device=self.device)
        for path in paths:
            touched: set[int] = set()
            for t in range(self.inner_steps):
                for p in params:
                    p.grad = None
                _, loss = opt.forward(net, xb, yb, path)
                if t == 0:
                    total += loss.detach()
                opt.backward(loss)  # no loss scaling here (refused at construction)
                with torch.no_grad():
                    for i, (p, p0) in enumerate(zip(params, theta)):
                        if p.grad is None:
                            continue
                        touched.add(i)
                        g = p.grad if self.prox == 0 else p.grad + self.prox * (p - p0)
                        p.sub_(lr * g)
            with torch.no_grad():
                for i in touched:
                    d = theta[i] - params[i]
                    direction[i] = d if direction[i] is None else direction[i] + d
                    params[i].copy_(theta[i])
        scale = 1.0 / (len(paths) * self.inner_steps * lr) if lr > 0 else 0.0
        for p, d in zip(params, direction):
            p.grad = None if d is None else d * scale
        opt.update()  # the optimiser's step with momentum and weight decay, then the schedule's
        return total

    def run(self, on_epoch: Callable[[SupernetTrainer], None] | None = None, progress: bool = False) -> None:
        """Train the remaining epochs; ``on_epoch(trainer)`` after each (e.g. to checkpoint)."""
        run_epochs(self, desc="supernet", on_epoch=on_epoch, progress=progress)

    # -- checkpointing ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The whole training state; the snapshots' weights are not in it (only their epochs,
        ``snapshot_epochs``: see :meth:`load_snapshots`)."""
        return {
            "model": self.supernet.state_dict(), **self.optimization.state_dict(),
            "generator": self.generator.get_state(), "path_rng": self.path_rng.bit_generator.state,
            "epoch": self.epoch, "seconds": self.seconds, "epoch_losses": list(self.epoch_losses),
            "paths_trained": self.paths_trained, "snapshot_epochs": sorted(self.snapshots),
            "forgetting": self.forgetting, "diagnostic_seconds": self.diagnostic_seconds,
            "kept": self.kept, "prune_scores": self.prune_scores,
        }

    def load_snapshots(self, snapshots: dict[int, dict[str, torch.Tensor]]) -> None:
        """Restore the snapshots' weights (epoch -> state dict) after :meth:`load_state_dict`: exactly the
        epochs it names (``snapshot_epochs``)."""
        if sorted(snapshots) != self._snapshot_epochs:
            raise ValueError(f"the checkpoint keeps snapshots of epochs {self._snapshot_epochs}, got "
                             f"{sorted(snapshots)}")
        self.snapshots = {int(e): snapshots[e] for e in sorted(snapshots)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.supernet.load_state_dict(state["model"])
        self.optimization.load_state_dict(state)
        self.generator.set_state(state["generator"])
        self.path_rng.bit_generator.state = state["path_rng"]
        self.epoch = int(state["epoch"])
        self.seconds = float(state["seconds"])
        self.epoch_losses = [float(x) for x in state["epoch_losses"]]
        self.paths_trained = int(state["paths_trained"])
        self._snapshot_epochs = [int(e) for e in state.get("snapshot_epochs", [])]
        self.snapshots = {}
        if self.forgetting is not None:
            self.forgetting = list(state.get("forgetting") or [])
        self.diagnostic_seconds = float(state.get("diagnostic_seconds", 0.0))
        self.kept, self.prune_scores = state.get("kept"), state.get("prune_scores")
        self._active_sampler = self.sampler
        if self.kept is not None:
            if self.prune is None:
                raise ValueError("the checkpoint was pruned; this trainer has no pruning")
            self._active_sampler = self.prune.sampler([self.space.from_string(a) for a in self.kept])
