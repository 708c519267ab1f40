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
"""

from __future__ import annotations

import copy
import pickle
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from ...config import check_float, check_int, parameters
from ...context import FineTuning, InheritsWeights, derive_seed
from ...safeload import load_checkpoint, manifest_path, save_checkpoint
from ...spaces.base import Architecture, HasSupernet
from ...training import Protocol, seeded
from ..base import Strategy
from .supernet import PathSampler, SupernetTrainer

__all__ = ["OneShotStrategy", "InheritedWeights", "CHECKPOINT"]

#: the supernet checkpoint's file name inside a store directory
CHECKPOINT = "supernet.pt"


class InheritedWeights(InheritsWeights):
    """What estimators need from a one-shot strategy: ``initial_weights(arch)`` and ``fine_tuning``
    (the :class:`~nas_engine.context.InheritsWeights` capability), without the strategy.

    Picklable (the supernet travels with it), so worker processes of a
    parallel search can fine-tune from the same inherited weights.
    """

    def __init__(self, supernet: torch.nn.Module, fine_tuning: FineTuning, name: str):
        self.supernet, self.fine_tuning, self.name = supernet, fine_tuning, name

    def initial_weights(self, arch: Architecture) -> torch.nn.Module:
        return self.supernet.extract(arch)

    def __getstate__(self) -> dict[str, Any]:
        # the supernet crosses to worker processes as one bytes object (its tensors copied): through torch's
        # multiprocessing reductions every tensor would take a file descriptor of its own, and a large supernet
        # (DARTS) fails with "too many fds".  In-memory, from this process to its own workers; no file involved.
        return {**self.__dict__, "supernet": pickle.dumps(self.supernet, protocol=pickle.HIGHEST_PROTOCOL)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "supernet": pickle.loads(state["supernet"])})  # noqa: S301 - see __getstate__

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
    ``finetune_batch_size``) and ``candidates`` (stop proposing after that
    many; None: until the search's budget ends).
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
        self.supernet = None
        self.setup_seconds = 0.0

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"epochs": 1, "batch_size": 32, "finetune_batches": 2, "finetune_batch_size": 32}

    # -- what a method chooses ------------------------------------------------------
    @abstractmethod
    def path_sampler(self) -> PathSampler:
        """The paths trained per supernet step."""

    @abstractmethod
    def make_selector(self) -> Strategy:
        """The strategy that proposes candidates once the supernet is trained."""

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

    def _fingerprint(self, ctx) -> dict[str, Any]:
        proto = {k: v for k, v in self.supernet_protocol(ctx.protocol).to_dict().items() if k != "device"}
        return {"strategy": self.name, "params": {k: v for k, v in self.get_params().items()
                                                  if k in ("epochs", "batch_size", "lr", "lr_min", "momentum",
                                                           "weight_decay")},
                "data": ctx.data.fingerprint(), "protocol": proto, "seed": int(ctx.seed),
                **self.trainer_options()}

    def setup(self, space, ctx) -> None:
        super().setup(space, ctx)
        if ctx.data is None:
            raise ValueError(f"strategy {self.name!r} trains a supernet and needs a dataset (data=None given)")
        protocol = self.supernet_protocol(ctx.protocol)
        with seeded(derive_seed(ctx.seed, f"supernet/{self.name}")):
            supernet = space.supernet(ctx.data.num_classes, in_channels=ctx.data.in_channels,
                                      **protocol.size_for(space))
        trainer = SupernetTrainer(supernet, space, ctx.data, protocol, self.path_sampler(),
                                  seed=derive_seed(ctx.seed, f"supernet-data/{self.name}"),
                                  **self.trainer_options())
        fingerprint = self._fingerprint(ctx)
        path = Path(ctx.store_dir) / CHECKPOINT if ctx.store_dir is not None else None
        if path is not None and (path.exists() or manifest_path(path).exists()):
            # fingerprint, size and sha256 checked against the manifest before torch.load(weights_only=True)
            trainer.load_state_dict(load_checkpoint(path, fingerprint=fingerprint, map_location=trainer.device))

        def checkpoint(t: SupernetTrainer) -> None:
            save_checkpoint(path, t.state_dict(), fingerprint=fingerprint)

        trainer.run(on_epoch=checkpoint if path is not None else None, progress=ctx.progress)
        self.supernet = supernet.eval()
        self.trainer_summary = {"epochs": trainer.epoch, "seconds": trainer.seconds,
                                "final_loss": trainer.epoch_losses[-1] if trainer.epoch_losses else None,
                                "paths_trained": trainer.paths_trained}
        self.setup_seconds = trainer.seconds
        self.fine_tuning = FineTuning(self.finetune_protocol(ctx.protocol), self.finetune_batches)
        self.weights = InheritedWeights(supernet, self.fine_tuning, self.name)
        self._selector = self.make_selector()
        self._selector.setup(space, ctx)
        self._n_asked = 0

    # -- inherited weights -----------------------------------------------------------
    def initial_weights(self, arch: Architecture) -> torch.nn.Module:
        """A standalone network for ``arch`` holding a copy of the supernet's weights."""
        if self.supernet is None:
            raise RuntimeError(f"strategy {self.name!r} has no supernet before setup()")
        return self.weights.initial_weights(arch)

    def for_workers(self) -> InheritedWeights | None:
        """The inherited weights, on the CPU, for estimators in worker processes."""
        if self.supernet is None:
            return None
        return InheritedWeights(copy.deepcopy(self.supernet).cpu(), self.fine_tuning, self.name)

    # -- ask / tell --------------------------------------------------------------------
    def ask(self) -> list[Architecture]:
        if self.candidates is not None and self._n_asked >= self.candidates:
            return []
        out = self._selector.ask()
        if self.candidates is not None:
            out = out[: self.candidates - self._n_asked]
        self._n_asked += len(out)
        return out

    def tell(self, evaluations: Sequence) -> None:
        self._selector.tell(evaluations)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "n_asked": self._n_asked, "selector": self._selector.state_dict(),
                "supernet": dict(self.trainer_summary)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._n_asked = int(state["n_asked"])
        self._selector.load_state_dict(state["selector"])
