"""The registered supernet strategies: ``randnas``, ``spos``, ``fairnas``, ``multipath``, ``reptile``,
``metaprox``.

=============  ===========================================  =====================  ===============
name           supernet training (per step)                 candidates             fine-tuning lr
=============  ===========================================  =====================  ===============
``randnas``    one uniformly random path (Li & Talwalkar)   uniform random         0.01
``spos``       one uniformly random path (Guo et al.)       regularised evolution  0.01
``fairnas``    ``|O|`` paths, every op on every edge once,  uniform random         0.001
               gradients averaged, one update (Chu et al.)
``multipath``  ``k=4`` random paths, averaged gradients     uniform random         0.001
               (Yu et al.)
``reptile``    one random path, Reptile meta-step: 4 inner  uniform random         0.001
               SGD steps on the minibatch, outer step
               towards the adapted weights (Nichol et al.)
``metaprox``   as ``reptile`` with the proximal term        uniform random         0.001
               ``λ/2 ||w - θ||²``, λ=10 (MetaMinibatchProx,
               Zhou et al.)
=============  ===========================================  =====================  ===============

The fine-tuning rates follow the SoTL thesis (§4.2: 0.01 for basic single-path
SPOS, whose supernet is RandNAS's; 0.001 for the variants, for which 0.01
causes catastrophic forgetting).  SPOS's evolutionary search is the engine's
``regularized-evolution`` scoring candidates with the search's estimator from
the inherited weights.  ``reptile`` and ``metaprox`` are the SoTL thesis'
meta-learning supernets (§3.4.1-3.4.2: 4 inner steps, λ=10, meta-batch of one
path); the meta-step is :class:`~.supernet.SupernetTrainer`'s (see
:mod:`.supernet` for the exact update).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...config import check_float, check_int, parameters
from ...registry import create, strategies
from ...spaces.base import FixedEdgeOps, HasSupernet
from .base import OneShotStrategy
from .supernet import fair_paths, uniform_paths

__all__ = ["RandNAS", "SPOS", "FairNAS", "MultiPath", "Reptile", "MetaProx"]


# The candidate selectors are the registered query strategies ``random`` and ``regularized-evolution``,
# made through the registry: a plugin module does not import another plugin's module.
class _RandomCandidates(OneShotStrategy):
    def make_selector(self):
        # one candidate per isomorphism class when the estimates are the class's (deiso, post_deiso); after pruning
        # the candidates are the kept architectures (a RestrictedSpace), each once
        per_class = (self.deiso or self.post_deiso) and self.prune_fraction is None
        return create("strategy", "random", repeats=False, dedupe="isomorphism" if per_class else "string")


@strategies.register("randnas")
class RandNAS(_RandomCandidates):
    """Random-sampling one-shot NAS: uniform single-path supernet, uniformly random candidates."""

    default_finetune_lr: ClassVar[float] = 0.01

    def path_sampler(self, population=None):
        return uniform_paths(1, population)


@strategies.register("fairnas")
class FairNAS(_RandomCandidates):
    """FairNAS strict fairness: per step ``|O|`` paths covering every op on every edge exactly once."""

    default_finetune_lr: ClassVar[float] = 0.001
    requires: ClassVar[tuple[type, ...]] = (HasSupernet, FixedEdgeOps)

    def __post_init__(self):
        super().__post_init__()
        for on, what in ((self.deiso, "deiso=True"), (self.prune_fraction is not None, "one-shot pruning")):
            if on:
                raise ValueError(f"FairNAS: {what} samples paths from a set of architectures, but FairNAS's fair paths "
                                 "cover every op on every edge of the whole space; use randnas, spos or multipath")

    def path_sampler(self, population=None):
        return fair_paths


@strategies.register("multipath")
@parameters
class MultiPath(_RandomCandidates):
    """MultiPath: gradients of ``k`` (default 4) uniformly random paths averaged per step."""

    default_finetune_lr: ClassVar[float] = 0.001
    k: int = 4

    def __post_init__(self):
        super().__post_init__()
        self.k = check_int(self.k, "k", who="MultiPath")

    def _fingerprint(self, ctx):
        return {**super()._fingerprint(ctx), "k": self.k}

    def path_sampler(self, population=None):
        return uniform_paths(self.k, population)


@strategies.register("spos")
@parameters
class SPOS(OneShotStrategy):
    """Single Path One-Shot: uniform single-path supernet, then regularised evolution over inherited weights.

    ``population_size`` / ``sample_size`` configure the evolution (scaled to a
    small evaluation budget as ``regularized-evolution`` does).
    """

    default_finetune_lr: ClassVar[float] = 0.01
    population_size: int = 50
    sample_size: int = 10

    def __post_init__(self):
        super().__post_init__()
        self.make_selector()  # validates population_size and sample_size

    def path_sampler(self, population=None):
        return uniform_paths(1, population)

    def make_selector(self):
        return create("strategy", "regularized-evolution", population_size=self.population_size,
                      sample_size=self.sample_size)


@strategies.register("reptile")
@parameters
class Reptile(_RandomCandidates):
    """Reptile supernet training: per step one random path adapted by ``inner_steps`` SGD steps on the
    minibatch, then an outer step of the supernet towards the adapted weights."""

    default_finetune_lr: ClassVar[float] = 0.001
    #: the proximal coefficient of the inner steps (0: Reptile; a parameter of ``metaprox``)
    prox: ClassVar[float] = 0.0
    inner_steps: int = 4

    def __post_init__(self):
        super().__post_init__()
        self.inner_steps = check_int(self.inner_steps, "inner_steps", who=type(self).__name__)

    def trainer_options(self) -> dict[str, Any]:
        return {"inner_steps": self.inner_steps, "prox": self.prox}

    def path_sampler(self, population=None):
        return uniform_paths(1, population)


@strategies.register("metaprox")
@parameters
class MetaProx(Reptile):
    """MetaMinibatchProx supernet training: Reptile whose inner steps minimise the minibatch loss plus
    ``prox/2 * ||w - θ||²`` (θ: the supernet weights at the start of the step)."""

    prox: float = 10.0

    def __post_init__(self):
        super().__post_init__()
        self.prox = check_float(self.prox, "prox", low=0, who="MetaProx")
