"""The registered differentiable-NAS strategies: ``darts``, ``darts-tse``, ``drnas``, ``drnas-tse``.

==============  =====================================  =========================================================
name            mixing weights                         architecture step
==============  =====================================  =========================================================
``darts``       ``softmax(alpha)`` (Liu et al.)        every minibatch, on a validation minibatch (first order;
                                                       ``order=2``: the unrolled second-order gradient)
``darts-tse``   ``softmax(alpha)``                     every ``T=100`` training minibatches, on the sum of their
                                                       training losses' gradients (SoTL-DARTS, thesis Alg. 3)
``drnas``       a ``Dirichlet(elu(alpha)+1)`` sample   as ``darts`` (first order), through the pathwise
                per forward pass (Chen et al.)         gradient of the sample
``drnas-tse``   as ``drnas``                           as ``darts-tse``
==============  =====================================  =========================================================

All run through :class:`~nas_engine.search.Search` like the one-shot strategies: ``setup`` runs the search phase
(:class:`~.trainer.RelaxedTrainer`, checkpointed to ``<store>/relaxed.pt`` after every epoch and resumed
bit-exactly), then ``ask`` proposes the architecture derived after each search epoch, one per call, in epoch
order, so the search's history is the search trajectory (repeats are answered from the first evaluation, as
for any repeated proposal).  With a table the evaluation of a proposal is its benchmark accuracy (e.g. the
``benchmark`` estimator); live, the search's estimator trains it.

Defaults (SoTL thesis Appendix B, DARTS): 50 epochs, batch 64, weight SGD lr 0.025 cosine to 0.001, momentum
0.9 (no Nesterov), weight decay 5e-4 on NB201 and 3e-4 elsewhere (``weight_decay=None``), gradient norm clipped
at 5; architecture Adam lr 3e-4, betas (0.5, 0.999), weight decay 1e-3; ``T=100``.  Chosen where the papers are
silent: the weight optimiser's momentum and schedule position are restored with the weights in step (3) of
Algorithm 3 (the thesis' code restores the weights only), the DrNAS readout is the Dirichlet mean, and DrNAS's
regulariser is the architecture weight decay (its "l2" option; ``kl_reg > 0`` adds its KL term instead).
DrNAS's progressive learning (partial channels, pruning) is not implemented.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from ...config import check_choice, check_float, check_int, parameters
from ...context import derive_seed
from ...registry import strategies
from ...safeload import load_checkpoint, manifest_path, save_checkpoint
from ...spaces.base import Architecture, Relaxable
from ...training import Protocol, seeded
from ..base import Strategy
from .trainer import RelaxedTrainer

__all__ = ["DifferentiableStrategy", "DARTS", "DARTSTSE", "DrNAS", "DrNASTSE", "CHECKPOINT"]

#: the search-phase checkpoint's file name inside a store directory
CHECKPOINT = "relaxed.pt"

#: weight decay by space when ``weight_decay=None`` (SoTL thesis Appendix B); other spaces: DARTS's 3e-4
_WEIGHT_DECAY = {"nb201": 5e-4}


@parameters
class DifferentiableStrategy(Strategy):
    """Base of the differentiable strategies (see the module docstring)."""

    requires: ClassVar[tuple[type, ...]] = (Relaxable,)
    mixing: ClassVar[str] = "softmax"
    update: ClassVar[str] = "darts"

    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float | None = None
    grad_clip: float | None = 5.0
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3

    def __post_init__(self):
        who = type(self).__name__
        self.epochs = check_int(self.epochs, "epochs", who=who)
        self.batch_size = check_int(self.batch_size, "batch_size", who=who)
        for name in ("lr", "lr_min", "arch_weight_decay"):
            setattr(self, name, check_float(getattr(self, name), name, low=0, who=who))
        self.arch_lr = check_float(self.arch_lr, "arch_lr", low=0, low_open=True, who=who)
        self.momentum = check_float(self.momentum, "momentum", low=0, high=1, high_open=True, who=who)
        self.weight_decay = check_float(self.weight_decay, "weight_decay", low=0, none=True, who=who)
        self.grad_clip = check_float(self.grad_clip, "grad_clip", low=0, low_open=True, none=True, who=who)
        if self.lr_min > self.lr:
            raise ValueError(f"{who}: lr_min={self.lr_min!r} must not exceed lr={self.lr!r}")
        self.trainer: RelaxedTrainer | None = None
        self.setup_seconds = 0.0

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"epochs": 2, "batch_size": 256}

    def trainer_options(self) -> dict[str, Any]:
        """The method's :class:`RelaxedTrainer` arguments beyond mixing and update."""
        return {}

    def search_protocol(self, protocol: Protocol, space) -> Protocol:
        """The weights' protocol: this strategy's optimiser settings at ``protocol``'s size and device."""
        wd = self.weight_decay if self.weight_decay is not None else _WEIGHT_DECAY.get(space.name, 3e-4)
        return protocol.replace(schedule_epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_min=self.lr_min,
                                momentum=self.momentum, nesterov=False, weight_decay=wd)

    def _fingerprint(self, ctx, protocol: Protocol) -> dict[str, Any]:
        return {"strategy": self.name, "params": self.get_params(), "data": ctx.data.fingerprint(),
                "protocol": {k: v for k, v in protocol.to_dict().items() if k != "device"}, "seed": int(ctx.seed)}

    def setup(self, space, ctx) -> None:
        super().setup(space, ctx)
        if ctx.data is None:
            raise ValueError(f"strategy {self.name!r} searches with a relaxed supernet and needs a dataset "
                             "(data=None given)")
        protocol = self.search_protocol(ctx.protocol, space)
        with seeded(derive_seed(ctx.seed, f"supernet/{self.name}")):
            supernet = space.supernet(ctx.data.num_classes, in_channels=ctx.data.in_channels,
                                      **protocol.size_for(space))
        seed = derive_seed(ctx.seed, f"relaxed/{self.name}")
        with seeded(seed):  # the Dirichlet samples come from torch's global RNG (kept in the checkpoint)
            trainer = RelaxedTrainer(supernet, space, ctx.data, protocol, mixing=self.mixing, update=self.update,
                                     grad_clip=self.grad_clip, arch_lr=self.arch_lr,
                                     arch_weight_decay=self.arch_weight_decay, seed=seed, **self.trainer_options())
            fingerprint = self._fingerprint(ctx, protocol)
            path = Path(ctx.store_dir) / CHECKPOINT if ctx.store_dir is not None else None
            if path is not None and (path.exists() or manifest_path(path).exists()):
                trainer.load_state_dict(load_checkpoint(path, fingerprint=fingerprint, map_location=trainer.device))

            def checkpoint(t: RelaxedTrainer) -> None:
                save_checkpoint(path, t.state_dict(), fingerprint=fingerprint)

            trainer.run(on_epoch=checkpoint if path is not None else None, progress=ctx.progress)
        self.trainer = trainer
        self.setup_seconds = trainer.seconds
        self._n_asked = 0

    def mixing_weights(self) -> dict[str, Any]:
        """The final mixing weights (expected, as numpy arrays) of the search phase."""
        if self.trainer is None:
            raise RuntimeError(f"strategy {self.name!r} has not searched yet (call setup)")
        return {g: w.detach().cpu().numpy() for g, w in self.trainer.mixing_weights(sample=False).items()}

    def ask(self) -> list[Architecture]:
        trajectory = self.trainer.trajectory
        if self._n_asked >= len(trajectory):
            return []
        arch = self.space.from_string(trajectory[self._n_asked])
        self._n_asked += 1
        return [arch]

    def state_dict(self) -> dict[str, Any]:
        t = self.trainer
        summary = {"epochs": t.epoch, "seconds": t.seconds, "arch_steps": t.arch_steps,
                   "final_train_loss": t.history[-1]["train_loss"] if t.history else None}
        return {**super().state_dict(), "n_asked": self._n_asked, "search": summary}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._n_asked = int(state["n_asked"])


@strategies.register("darts")
@parameters
class DARTS(DifferentiableStrategy):
    """DARTS (Liu et al., 2019): softmax mixing, architecture steps on validation minibatches.

    ``order=1``: first-order DARTS (default; the thesis' baseline); ``order=2``: the unrolled second-order
    gradient with DARTS's finite-difference Hessian-vector product.  ``arch_split="train"`` takes the
    architecture steps on the training minibatch instead (what ``darts-tse`` with ``T=1`` equals).
    """

    order: int = 1
    arch_split: str = "val"

    def __post_init__(self):
        super().__post_init__()
        self.order = check_choice(self.order, "order", (1, 2), who="DARTS")
        self.arch_split = check_choice(self.arch_split, "arch_split", ("val", "train"), who="DARTS")

    def trainer_options(self) -> dict[str, Any]:
        return {"order": self.order, "arch_split": self.arch_split}


@parameters
class _TSEUpdate(DifferentiableStrategy):
    """The TSE architecture update: one step per ``T`` training minibatches on their summed gradients."""

    update: ClassVar[str] = "tse"
    T: int = 100

    def __post_init__(self):
        super().__post_init__()
        self.T = check_int(self.T, "T", who=type(self).__name__)

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {**super().conformance_params(), "T": 2}

    def trainer_options(self) -> dict[str, Any]:
        return {**super().trainer_options(), "T": self.T}


@parameters
class _DirichletMixing(DifferentiableStrategy):
    """DrNAS's mixing: a pathwise Dirichlet sample per forward pass; ``kl_reg`` its optional KL regulariser."""

    mixing: ClassVar[str] = "dirichlet"
    kl_reg: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        self.kl_reg = check_float(self.kl_reg, "kl_reg", low=0, who=type(self).__name__)
        if not math.isfinite(self.kl_reg):
            raise ValueError(f"{type(self).__name__}: kl_reg must be finite, got {self.kl_reg!r}")

    def trainer_options(self) -> dict[str, Any]:
        return {**super().trainer_options(), "kl_reg": self.kl_reg}


@strategies.register("darts-tse")
@parameters
class DARTSTSE(_TSEUpdate):
    """SoTL-DARTS / DARTS-TSE (SoTL thesis §3.3.3, Algorithm 3; TSE paper §4.4): the architecture descends
    the sum of the first-order architecture gradients of ``T`` training losses (no validation data)."""


@strategies.register("drnas")
@parameters
class DrNAS(_DirichletMixing):
    """DrNAS (Chen et al., 2021): mixing weights sampled from ``Dirichlet(elu(alpha) + 1)`` per forward pass,
    the concentration learnt through pathwise gradients of validation losses (first order)."""


@strategies.register("drnas-tse")
@parameters
class DrNASTSE(_TSEUpdate, _DirichletMixing):
    """DrNAS-TSE (TSE paper §4.4; SoTL-DrNAS, thesis §3.3.4): DrNAS's Dirichlet mixing with SoTL-DARTS's
    architecture step on the sum of ``T`` training losses' gradients."""
