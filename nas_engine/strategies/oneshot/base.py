"""One-shot (weight-sharing) strategies: train a supernet in ``setup``, then propose candidates that
estimators evaluate from the supernet's inherited weights.

:class:`OneShotStrategy` is the common base of ``randnas``, ``spos``, ``fairnas``
and ``multipath`` (:mod:`.methods`); a subclass chooses the path sampler of
supernet training (:mod:`.supernet`), the candidate selector (random sampling
or regularised evolution) and its default fine-tuning learning rate.

``setup(space, ctx)``:

1. builds ``space.supernet(...)`` at the protocol's size (seeded from the
   search seed) and trains it with the supernet protocol (NB201 one-shot
   defaults of the SoTL thesis, Appendix B: batch 64, SGD lr 0.025 cosine to
   0.001, momentum 0.9, weight decay 5e-4, 100 epochs);
2. with a store (``ctx.store_dir``), checkpoints the whole training state to
   ``<store>/supernet.pt`` after every epoch; a resumed search reloads it and
   continues from the last finished epoch (a finished supernet is not
   retrained).  The checkpoint's manifest ``supernet.pt.json`` records what it
   was trained for and the file's sha256 (see
   :func:`nas_engine.safeload.load_checkpoint`): a store holding a different
   supernet, a corrupt checkpoint or one without its manifest is refused, and
   the file is read with ``torch.load(weights_only=True)``;
3. sets up the candidate selector.

Afterwards ``initial_weights(arch)`` gives a standalone network for ``arch``
holding a copy of the inherited weights (``supernet.extract``) and
``fine_tuning`` (a :class:`~nas_engine.estimators.base.FineTuning`) says how
training-based estimators fine-tune it: SGD at the constant rate
``finetune_lr`` (momentum 0.9, weight decay 5e-4, batch ``finetune_batch_size``)
in "epochs" of ``finetune_batches`` minibatches, so an estimator with
``epochs=T`` sees B = T x ``finetune_batches`` fine-tuning minibatches (TSE at
B=100/200/300 is ``tse`` at epochs 1/2/3).  The supernet itself is never
changed by an evaluation.

Cost: the supernet's training seconds are the strategy's ``setup_seconds``
(cumulative over resumed runs, kept in the checkpoint); the search charges
them to its clock and its result (see :mod:`nas_engine.search`).

Mitigations of Ning et al. (§5.3, §6; every one off by default, all resume
exactly; ``docs/oneshot.md`` has the table with their costs): ``samples`` (S
draws of the method's path sampler per step), ``deiso`` (training paths
uniform over the space's isomorphism classes, each class by its
representative, which also gives every member of the class its inherited
weights), ``post_deiso`` (an inherited-weight estimate is the mean over the
candidate's isomorphism class), ``bn_affine``, ``ensemble`` with
``ensemble_mode`` (temporal ensembles of the last k epochs' weights:
``"weights"`` averages the weights, ``"scores"`` the estimates), one-shot
pruning (``prune_fraction``, ``prune_epoch``, ``prune_pool``), and the
diagnostics ``keep_checkpoints`` (the last K epochs' weights as
``supernet-epoch-EEEE.pt`` files with manifests beside ``supernet.pt``; older
ones are deleted), ``record_forgetting`` (forgetting values, written to
``supernet-forgetting.json``) and ``record_stability`` (every proposal's
inherited-weight validation accuracy at each kept checkpoint, in the
strategy's stored state) that ``nas-engine diagnose`` shows.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ...config import check_bool, check_choice, check_float, check_int, parameters
from ...context import FineTuning, InheritsWeights, derive_seed
from ...files import atomic_write
from ...safeload import load_checkpoint, manifest_path, save_checkpoint
from ...spaces.base import Architecture, Enumerable, HasSupernet, IsomorphismClasses, require_capability
from ...spaces.restricted import RestrictedSpace
from ...training import Protocol, seeded
from ..base import Strategy
from .supernet import PathSampler, Pruning, SupernetTrainer, path_accuracy, repeated

__all__ = ["OneShotStrategy", "InheritedWeights", "CHECKPOINT", "FORGETTING_FILE", "snapshot_name",
           "ENSEMBLE_MODES"]

#: the supernet checkpoint's file name inside a store directory
CHECKPOINT = "supernet.pt"
#: the forgetting record's file name inside a store directory (``record_forgetting=True``)
FORGETTING_FILE = "supernet-forgetting.json"
#: what a temporal ensemble averages: the weights of the last k epochs, or the estimates made with each
ENSEMBLE_MODES = ("weights", "scores")
_SNAPSHOT = re.compile(r"^supernet-epoch-(\d{4,})\.pt$")


def snapshot_name(epoch: int) -> str:
    """The file name of the weights kept at the end of ``epoch`` (``keep_checkpoints``, temporal ensembles)."""
    return f"supernet-epoch-{int(epoch):04d}.pt"


class InheritedWeights(InheritsWeights):
    """What estimators need from a one-shot strategy: ``initial_weights(arch)`` and ``fine_tuning``
    (the :class:`~nas_engine.context.InheritsWeights` capability), without the strategy.

    Picklable (the supernet travels with it), so worker processes of a
    parallel search can fine-tune from the same inherited weights.
    """

    def __init__(self, supernet: torch.nn.Module, fine_tuning: FineTuning, name: str, *,
                 score_supernets: Sequence[torch.nn.Module] = (), space: Any = None, deiso: bool = False,
                 post_deiso: bool = False):
        self.supernet, self.fine_tuning, self.name = supernet, fine_tuning, name
        #: the supernets whose estimates are averaged (a temporal score ensemble); empty: ``supernet`` alone
        self.score_supernets = list(score_supernets)
        self.space, self.deiso, self.post_deiso = space, bool(deiso), bool(post_deiso)
        if (deiso or post_deiso) and not isinstance(space, IsomorphismClasses):
            raise TypeError("InheritedWeights: deiso and post_deiso need the space (with IsomorphismClasses)")

    def paths(self, arch: Architecture) -> tuple[Architecture, ...]:
        """The supernet paths whose estimates make ``arch``'s: its isomorphism class (``post_deiso``), its class
        representative (``deiso``: the path that was trained for the class), or ``arch`` itself."""
        if self.post_deiso:
            return self.space.isomorphic(arch)
        if self.deiso:
            return (self.space.representative(arch),)
        return (arch,)

    def initial_weights(self, arch: Architecture) -> torch.nn.Module:
        return self.supernet.extract(self.space.representative(arch) if self.deiso else arch)

    def inherited_variants(self, arch: Architecture) -> Iterator[torch.nn.Module]:
        """Every (supernet of the score ensemble) x (path of :meth:`paths`), extracted one at a time."""
        for net in self.score_supernets or (self.supernet,):
            for path in self.paths(arch):
                yield net.extract(path)

    def __getstate__(self) -> dict[str, Any]:
        # the supernet crosses to worker processes as one bytes object (its tensors copied): through torch's
        # multiprocessing reductions every tensor would take a file descriptor of its own, and a large supernet
        # (DARTS) fails with "too many fds".  In-memory, from this process to its own workers; no file involved.
        return {**self.__dict__, "supernet": pickle.dumps(self.supernet, protocol=pickle.HIGHEST_PROTOCOL),
                "score_supernets": pickle.dumps(self.score_supernets, protocol=pickle.HIGHEST_PROTOCOL)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "supernet": pickle.loads(state["supernet"]),  # noqa: S301 - see __getstate__
                              "score_supernets": pickle.loads(state["score_supernets"])})  # noqa: S301

    def __repr__(self) -> str:
        return f"InheritedWeights({self.name!r})"


@parameters
class OneShotStrategy(Strategy, InheritsWeights):
    """Base of the supernet strategies (see the module docstring for what ``setup`` does).

    Constructor arguments: the supernet protocol (``epochs``, ``batch_size``,
    ``lr``, ``lr_min``, ``momentum``, ``weight_decay``; width, depth, device,
    augmentation and precision come from the search's protocol), the
    fine-tuning (``finetune_lr``: None for the method's default;
    ``finetune_batches``: minibatches per fine-tuning "epoch";
    ``finetune_batch_size``), ``candidates`` (stop proposing after that
    many; None: until the search's budget ends) and the mitigations and
    diagnostics of Ning et al. (see the module docstring and ``docs/oneshot.md``):
    ``samples``, ``deiso``, ``post_deiso``, ``bn_affine``, ``ensemble``,
    ``ensemble_mode``, ``prune_fraction``, ``prune_epoch``, ``prune_pool``,
    ``keep_checkpoints``, ``record_forgetting``, ``record_stability``.
    """

    requires: ClassVar[tuple[type, ...]] = (HasSupernet,)
    #: the fine-tuning learning rate when ``finetune_lr`` is None (SoTL thesis §4.2)
    default_finetune_lr: ClassVar[float] = 0.001

    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    finetune_lr: float | None = None
    finetune_batches: int = 100
    finetune_batch_size: int = 64
    candidates: int | None = None
    samples: int = 1
    deiso: bool = False
    post_deiso: bool = False
    bn_affine: bool = False
    ensemble: int = 1
    ensemble_mode: str = "weights"
    prune_fraction: float | None = None
    prune_epoch: int | None = None
    prune_pool: int = 1000
    keep_checkpoints: int = 0
    record_forgetting: bool = False
    record_stability: bool = False

    def __post_init__(self):
        who = type(self).__name__
        self.epochs = check_int(self.epochs, "epochs", who=who)
        self.batch_size = check_int(self.batch_size, "batch_size", who=who)
        for name in ("lr", "lr_min", "momentum", "weight_decay"):
            setattr(self, name, check_float(getattr(self, name), name, low=0, who=who))
        self.finetune_lr = check_float(self.finetune_lr, "finetune_lr", low=0, none=True, who=who)
        self.finetune_batches = check_int(self.finetune_batches, "finetune_batches", who=who)
        self.finetune_batch_size = check_int(self.finetune_batch_size, "finetune_batch_size", who=who)
        self.candidates = check_int(self.candidates, "candidates", none=True, who=who)
        if self.lr_min > self.lr:
            raise ValueError(f"{who}: lr_min={self.lr_min!r} must not exceed lr={self.lr!r}")
        self.samples = check_int(self.samples, "samples", who=who)
        for name in ("deiso", "post_deiso", "bn_affine", "record_forgetting", "record_stability"):
            setattr(self, name, check_bool(getattr(self, name), name, who=who))
        self.ensemble = check_int(self.ensemble, "ensemble", who=who)
        self.ensemble_mode = check_choice(self.ensemble_mode, "ensemble_mode", ENSEMBLE_MODES, who=who)
        self.prune_fraction = check_float(self.prune_fraction, "prune_fraction", low=0, high=1, low_open=True,
                                          high_open=True, none=True, who=who)
        self.prune_epoch = check_int(self.prune_epoch, "prune_epoch", none=True, who=who)
        self.prune_pool = check_int(self.prune_pool, "prune_pool", low=2, who=who)
        self.keep_checkpoints = check_int(self.keep_checkpoints, "keep_checkpoints", low=0, who=who)
        if self.deiso and self.post_deiso:
            raise ValueError(f"{who}: deiso=True and post_deiso=True exclude each other: deiso gives every member "
                             "of an isomorphism class its representative's weights, so there is nothing to average")
        if self.prune_epoch is not None and self.prune_fraction is None:
            raise ValueError(f"{who}: prune_epoch={self.prune_epoch!r} needs prune_fraction (the fraction to keep)")
        if self.prune_fraction is not None and self.pruning_epoch() >= self.epochs:
            raise ValueError(f"{who}: one-shot pruning after epoch {self.pruning_epoch()} needs epochs > "
                             f"{self.pruning_epoch()} to train on the kept architectures, got epochs={self.epochs!r}")
        if self.record_stability and self.keep_checkpoints < 2:
            raise ValueError(f"{who}: record_stability=True compares kept checkpoints; it needs keep_checkpoints >= 2, "
                             f"got {self.keep_checkpoints!r}")
        self.supernet = None
        self.setup_seconds = 0.0

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"epochs": 1, "batch_size": 32, "finetune_batches": 2, "finetune_batch_size": 32}

    # -- what a method chooses ------------------------------------------------------
    @abstractmethod
    def path_sampler(self, population: Sequence[Architecture] | None = None) -> PathSampler:
        """The paths trained per supernet step (one draw; ``samples`` repeats it): uniform over the space, or over
        ``population`` when given (``deiso``'s class representatives, the architectures pruning kept).  Only
        called with a population when ``deiso`` or pruning is on."""

    @abstractmethod
    def make_selector(self) -> Strategy:
        """The strategy that proposes candidates once the supernet is trained (set up on the space, or on the
        architectures one-shot pruning kept)."""

    def trainer_options(self) -> dict[str, Any]:
        """Extra :class:`SupernetTrainer` arguments (the meta-learning methods' ``inner_steps``/``prox``)."""
        return {}

    # -- setup -------------------------------------------------------------------------
    def supernet_protocol(self, protocol: Protocol) -> Protocol:
        """The supernet's training protocol: this strategy's optimiser settings at ``protocol``'s size/device."""
        return protocol.replace(schedule_epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_min=self.lr_min,
                                momentum=self.momentum, nesterov=self.momentum > 0,
                                weight_decay=self.weight_decay)

    def finetune_protocol(self, protocol: Protocol) -> Protocol:
        """The fine-tuning protocol: constant ``finetune_lr`` (cosine from lr to the same lr_min)."""
        lr = self.default_finetune_lr if self.finetune_lr is None else self.finetune_lr
        return protocol.replace(batch_size=self.finetune_batch_size, lr=lr, lr_min=lr, momentum=self.momentum,
                                nesterov=self.momentum > 0, weight_decay=self.weight_decay)

    def pruning_epoch(self) -> int | None:
        """The epoch after which one-shot pruning runs: ``prune_epoch``, by default 60% of ``epochs`` (Ning et al.
        prune at epoch 600 of 1000), at least 1; None without pruning."""
        if self.prune_fraction is None:
            return None
        return self.prune_epoch if self.prune_epoch is not None else max(1, round(0.6 * self.epochs))

    def snapshot_count(self) -> int:
        """How many epochs' weights training keeps: ``keep_checkpoints``, at least the ``ensemble`` when > 1."""
        return max(self.keep_checkpoints, self.ensemble if self.ensemble > 1 else 0)

    def _fingerprint(self, ctx) -> dict[str, Any]:
        proto = {k: v for k, v in self.supernet_protocol(ctx.protocol).to_dict().items() if k != "device"}
        # the options that change the supernet's training or what its checkpoint holds; each only when it is
        # not its default, so stores trained before the options existed keep their fingerprint
        options: dict[str, Any] = {}
        if self.samples != 1:
            options["samples"] = self.samples
        if self.deiso:
            options["deiso"] = True
        if self.bn_affine:
            options["bn_affine"] = True
        if self.snapshot_count():
            options["snapshots"] = self.snapshot_count()
        if self.record_forgetting:
            options["forgetting"] = True
        if self.prune_fraction is not None:
            options["prune"] = {"fraction": self.prune_fraction, "epoch": self.pruning_epoch(),
                                "pool": self.prune_pool}
        return {"strategy": self.name, "params": {k: v for k, v in self.get_params().items()
                                                  if k in ("epochs", "batch_size", "lr", "lr_min", "momentum",
                                                           "weight_decay")},
                "data": ctx.data.fingerprint(), "protocol": proto, "seed": int(ctx.seed),
                **self.trainer_options(), **options}

    def _sampler(self, population: Sequence[Architecture] | None) -> PathSampler:
        return repeated(self.path_sampler() if population is None else self.path_sampler(population), self.samples)

    def _pruning_pool(self, space, ctx, population: Sequence[Architecture] | None) -> tuple[Architecture, ...]:
        """The architectures one-shot pruning scores: ``prune_pool`` of them (all when there are no more), drawn
        without replacement from ``population`` (deiso's representatives) or the space, with their own seed."""
        rng = np.random.default_rng(np.random.SeedSequence([int(ctx.seed), 0x9A0E]))
        if population is None and isinstance(space, Enumerable) and len(space) <= 10 * self.prune_pool:
            population = list(space.enumerate())
        if population is not None:
            if len(population) <= self.prune_pool:
                return tuple(population)
            return tuple(population[int(i)] for i in sorted(rng.choice(len(population), self.prune_pool,
                                                                         replace=False)))
        seen: dict[str, Architecture] = {}
        for _ in range(100 * self.prune_pool):
            a = space.sample(rng)
            seen.setdefault(a.string, a)
            if len(seen) == self.prune_pool:
                break
        return tuple(seen.values())

    def setup(self, space, ctx) -> None:
        super().setup(space, ctx)
        if ctx.data is None:
            raise ValueError(f"strategy {self.name!r} trains a supernet and needs a dataset (data=None given)")
        for on, what in ((self.deiso, "deiso=True"), (self.post_deiso, "post_deiso=True")):
            if on:
                require_capability(space, IsomorphismClasses, f"strategy {self.name!r} with {what}")
        protocol = self.supernet_protocol(ctx.protocol)
        with seeded(derive_seed(ctx.seed, f"supernet/{self.name}")):
            supernet = space.supernet(ctx.data.num_classes, in_channels=ctx.data.in_channels,
                                      **protocol.size_for(space), **({"affine": True} if self.bn_affine else {}))
        population = [members[0] for members in space.isomorphism_classes()] if self.deiso else None
        prune = None
        if self.prune_fraction is not None:
            prune = Pruning(self.pruning_epoch(), self.prune_fraction, self._pruning_pool(space, ctx, population),
                            self._sampler)
        trainer = SupernetTrainer(supernet, space, ctx.data, protocol, self._sampler(population),
                                  seed=derive_seed(ctx.seed, f"supernet-data/{self.name}"),
                                  snapshots=self.snapshot_count(), forgetting=self.record_forgetting, prune=prune,
                                  **self.trainer_options())
        fingerprint = self._fingerprint(ctx)
        store = Path(ctx.store_dir) if ctx.store_dir is not None else None
        path = store / CHECKPOINT if store is not None else None

        def snapshot_fingerprint(epoch: int) -> dict[str, Any]:
            return {**fingerprint, "snapshot_epoch": int(epoch)}

        if path is not None and (path.exists() or manifest_path(path).exists()):
            # fingerprint, size and sha256 checked against the manifest before torch.load(weights_only=True)
            state = load_checkpoint(path, fingerprint=fingerprint, map_location=trainer.device)
            trainer.load_state_dict(state)
            trainer.load_snapshots({e: load_checkpoint(store / snapshot_name(e), fingerprint=snapshot_fingerprint(e),
                                                       map_location=trainer.device)
                                    for e in state.get("snapshot_epochs", [])})

        def checkpoint(t: SupernetTrainer) -> None:
            # the new snapshot first, then the checkpoint naming it, then the snapshots it no longer names
            if t.epoch in t.snapshots:
                save_checkpoint(store / snapshot_name(t.epoch), t.snapshots[t.epoch],
                                fingerprint=snapshot_fingerprint(t.epoch))
            save_checkpoint(path, t.state_dict(), fingerprint=fingerprint)
            for f in store.iterdir():
                m = _SNAPSHOT.match(f.name)
                if m and int(m.group(1)) not in t.snapshots:
                    manifest_path(f).unlink(missing_ok=True)
                    f.unlink(missing_ok=True)
            if t.forgetting is not None:
                record = {"format": "nas-engine-forgetting", "version": 1, "strategy": self.name,
                          "epochs": t.forgetting}
                atomic_write(store / FORGETTING_FILE, (json.dumps(record) + "\n").encode())

        trainer.run(on_epoch=checkpoint if path is not None else None, progress=ctx.progress)
        self.supernet = supernet.eval()
        self.forgetting = trainer.forgetting
        self.setup_seconds = trainer.seconds
        self._val = (trainer.data.x_val, trainer.data.y_val)
        self._protocol = protocol
        # the kept checkpoints as supernets (oldest first), copied only where a score ensemble or the stability
        # record uses them
        self.snapshot_epochs = sorted(trainer.snapshots)
        last = self.snapshot_epochs[-self.ensemble:] if self.ensemble > 1 else []
        used = self.snapshot_epochs if self.record_stability else last if self.ensemble_mode == "scores" else []
        snapshots = {e: self._copy_with(supernet, trainer.snapshots[e]) for e in used}
        inherited, score_nets = supernet, []
        if last and self.ensemble_mode == "weights":
            states = [trainer.snapshots[e] for e in last]
            inherited = self._copy_with(supernet, {k: (torch.stack([st[k] for st in states]).mean(0)
                                                       if v.is_floating_point() else v)
                                                   for k, v in states[-1].items()})
        elif last:
            score_nets = [snapshots[e] for e in last]
        self.supernet = inherited
        self._stability_nets = snapshots if self.record_stability else {}
        self.stability: dict[str, list[float]] = {}
        self.trainer_summary = {"epochs": trainer.epoch, "seconds": trainer.seconds,
                                "final_loss": trainer.epoch_losses[-1] if trainer.epoch_losses else None,
                                "paths_trained": trainer.paths_trained}
        if self.snapshot_count():
            self.trainer_summary["snapshot_epochs"] = list(self.snapshot_epochs)
        if last:
            self.trainer_summary["ensemble_epochs"] = list(last)
        if trainer.forgetting is not None:
            self.trainer_summary["diagnostic_seconds"] = trainer.diagnostic_seconds
        if trainer.kept is not None:
            self.trainer_summary["pruned_after_epoch"] = self.pruning_epoch()
            self.trainer_summary["kept"] = len(trainer.kept)
        self.fine_tuning = FineTuning(self.finetune_protocol(ctx.protocol), self.finetune_batches)
        self.weights = InheritedWeights(inherited, self.fine_tuning, self.name, score_supernets=score_nets,
                                        space=space if (self.deiso or self.post_deiso) else None,
                                        deiso=self.deiso, post_deiso=self.post_deiso)
        self._selector = self.make_selector()
        #: one-shot pruning: the kept architectures (best first) and every pool member's score; None without
        self.kept, self.prune_scores = trainer.kept, trainer.prune_scores
        self._selector.setup(RestrictedSpace(space, trainer.kept) if trainer.kept is not None else space, ctx)
        self._n_asked = 0

    @staticmethod
    def _copy_with(supernet: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        net = copy.deepcopy(supernet)
        net.load_state_dict(state)
        return net.eval()

    # -- inherited weights -----------------------------------------------------------
    def initial_weights(self, arch: Architecture) -> torch.nn.Module:
        """A standalone network for ``arch`` holding a copy of the supernet's weights (with ``deiso``: of its
        isomorphism class representative's path; with a weight ensemble: of the averaged weights)."""
        if self.supernet is None:
            raise RuntimeError(f"strategy {self.name!r} has no supernet before setup()")
        return self.weights.initial_weights(arch)

    def inherited_variants(self, arch: Architecture) -> Iterator[torch.nn.Module]:
        """The networks whose inherited-weight estimates are averaged into ``arch``'s (see
        :meth:`InheritedWeights.inherited_variants`)."""
        if self.supernet is None:
            raise RuntimeError(f"strategy {self.name!r} has no supernet before setup()")
        return self.weights.inherited_variants(arch)

    def for_workers(self) -> InheritedWeights | None:
        """The inherited weights, on the CPU, for estimators in worker processes."""
        if self.supernet is None:
            return None
        w = self.weights
        return InheritedWeights(copy.deepcopy(w.supernet).cpu(), self.fine_tuning, self.name,
                                score_supernets=[copy.deepcopy(n).cpu() for n in w.score_supernets],
                                space=w.space, deiso=w.deiso, post_deiso=w.post_deiso)

    def _record_stability(self, arch: Architecture) -> None:
        """``arch``'s inherited-weight validation accuracy at each kept checkpoint (averaged over the paths that
        make its estimate: its class with ``post_deiso``, its representative with ``deiso``)."""
        if arch.string in self.stability:
            return
        paths = self.weights.paths(arch)
        self.stability[arch.string] = [
            sum(path_accuracy(net, p, *self._val, self._protocol) for p in paths) / len(paths)
            for net in self._stability_nets.values()]

    # -- ask / tell --------------------------------------------------------------------
    def ask(self) -> list[Architecture]:
        if self.candidates is not None and self._n_asked >= self.candidates:
            return []
        out = self._selector.ask()
        if self.candidates is not None:
            out = out[: self.candidates - self._n_asked]
        self._n_asked += len(out)
        if self.kept is not None:  # proposed from the kept architectures: as architectures of the search's space
            out = [self.space.from_string(a.string) for a in out]
        if self._stability_nets:
            for a in out:
                self._record_stability(a)
        return out

    def tell(self, evaluations: Sequence) -> None:
        self._selector.tell(evaluations)

    def state_dict(self) -> dict[str, Any]:
        out = {**super().state_dict(), "n_asked": self._n_asked, "selector": self._selector.state_dict(),
               "supernet": dict(self.trainer_summary)}
        if self.record_stability:
            out["stability"] = {"epochs": list(self.snapshot_epochs),
                                "scores": {a: list(v) for a, v in self.stability.items()}}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._n_asked = int(state["n_asked"])
        self._selector.load_state_dict(state["selector"])
        if self.record_stability and "stability" in state:
            self.stability = {a: [float(x) for x in v] for a, v in state["stability"]["scores"].items()}
