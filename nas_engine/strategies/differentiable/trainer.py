"""The search phase of differentiable NAS: weights and architecture parameters of a relaxed supernet.

:class:`RelaxedTrainer` trains a space's supernet in its continuous relaxation
(``supernet.mixed(x, weights)``, see :class:`~nas_engine.spaces.base.Relaxable`)
together with architecture parameters ``alpha`` (one tensor per group of the
space's :meth:`~nas_engine.spaces.base.Relaxable.relaxation`, initialised
``1e-3 * N(0, 1)`` as in DARTS), held apart from the network weights:

* **mixing** ``"softmax"`` (DARTS): the mixing weights are ``softmax(alpha)``
  over each edge's ops.  ``"dirichlet"`` (DrNAS): they are a reparameterised
  (pathwise) sample of ``Dirichlet(elu(alpha) + 1)`` drawn afresh for every
  forward pass, so the gradient reaches the concentration parameters through
  the sample; the architecture read out at the end of an epoch uses the
  Dirichlet mean.
* **update** ``"darts"`` (Liu et al., Algorithm 2 of the SoTL thesis): every
  step first updates ``alpha`` on a minibatch of the architecture split
  (``arch_split="val"``: the dataset's validation split, augmented like the
  training data, as DARTS splits its training set in halves; ``"train"``: the
  same training minibatch the weights then use), then the weights on the
  training minibatch with the new ``alpha``.  First order (``order=1``): the
  gradient of the architecture loss at the current weights.  Second order
  (``order=2``): DARTS's one-step unrolled gradient
  ``grad_alpha L_val(w', alpha) - eta * H v`` with ``w' = w - eta * (momentum
  buffer * mu + grad_w L_train + weight decay * w)`` (the optimiser's own
  step, as the official ``Architect``), ``v = grad_w' L_val(w', alpha)`` and
  the mixed second derivative ``H v = grad^2_{alpha,w} L_train(w, alpha) v``
  approximated by central finite differences at ``w +- R v`` with ``R = 0.01 /
  |v|`` (:func:`hessian_vector_product`; ``hvp_r=0.01`` is DARTS's constant.  On
  ReLU networks a step that size can straddle kinks: on the tests' tiny float64
  supernet it is off by more than the product itself, while ``hvp_r=1e-4``
  and below agree with the exact product to 1e-7).
* **update** ``"tse"`` (SoTL-DARTS / DARTS-TSE, thesis §3.3.3 eq. 3.22 and
  Algorithm 3): the training minibatches are taken in chunks of ``T``
  (``T=100``; the last chunk of an epoch may be shorter, as in the thesis'
  Appendix A); (1) train the weights on the chunk's ``T`` minibatches as usual
  while *summing* the first-order architecture gradients of their training
  losses (nothing else is computed: the same backward passes give both);
  (2) one architecture step on that sum; (3) restore the weights and the
  weight optimiser (momentum buffers and schedule position) to their state
  before the chunk and train them again on the same ``T`` minibatches with the
  new ``alpha``.  No validation data is used.  With ``T=1`` this is exactly
  first-order DARTS with ``arch_split="train"``.

Weights: SGD with momentum (no Nesterov, as DARTS), weight decay, a cosine
schedule from ``lr`` to ``lr_min`` over all steps, gradients clipped to norm
``grad_clip``.  Architecture: Adam (``arch_lr``, betas (0.5, 0.999), weight
decay ``arch_weight_decay``).  DrNAS may add ``kl_reg * KL(Dir(elu(alpha)+1)
|| Dir(1))`` to the architecture loss (its "kl" regulariser; 0 = its "l2"
one, which is the weight decay on ``alpha``).

The whole state (supernet and optimiser, ``alpha`` and Adam, data-order
generator, torch's global RNG which draws the Dirichlet samples, epoch,
trajectory) is :meth:`RelaxedTrainer.state_dict`; training checkpointed after
an epoch and resumed gives bit-identical results.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.distributions import Dirichlet, kl_divergence

from ...data import Dataset, augment_batch
from ...spaces.base import Relaxable
from ...training import Optimization, Protocol, TrainingDiverged, autocast, prepare_model, run_epochs, use_channels_last

__all__ = ["RelaxedTrainer", "hessian_vector_product", "MIXINGS", "UPDATES"]

MIXINGS = ("softmax", "dirichlet")
UPDATES = ("darts", "tse")


def hessian_vector_product(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor],
                           alphas: list[torch.Tensor], vector: list[torch.Tensor], r: float = 1e-2
                           ) -> list[torch.Tensor]:
    """``grad^2_{alpha,w} L(w, alpha) . vector`` by central differences, as the official DARTS ``Architect``.

    ``loss_fn()`` computes the loss at the current values of ``params`` (w);
    they are moved to ``w +- R * vector`` with ``R = r / |vector|`` (in place,
    and restored exactly), and ``(grad_alpha L(w+) - grad_alpha L(w-)) / (2R)`` returned.
    """
    norm = torch.sqrt(sum((v.double() ** 2).sum() for v in vector))
    R = r / float(norm) if float(norm) > 0 else 0.0
    if R == 0.0:
        return [torch.zeros_like(a) for a in alphas]
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, v in zip(params, vector):
            p.add_(v, alpha=R)
    g_plus = torch.autograd.grad(loss_fn(), alphas)
    with torch.no_grad():
        for p, s, v in zip(params, saved, vector):
            p.copy_(s).sub_(v, alpha=R)
    g_minus = torch.autograd.grad(loss_fn(), alphas)
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)  # exactly the weights it was given
    return [(gp - gm) / (2 * R) for gp, gm in zip(g_plus, g_minus)]


class RelaxedTrainer:
    """Searches ``space`` (a :class:`~nas_engine.spaces.base.Relaxable`) with its relaxed ``supernet`` on ``data``.

    ``protocol`` gives the weights' optimisation (epochs, batch size, lr,
    lr_min, momentum, weight decay; Nesterov is not used), the device,
    augmentation and precision (float32 or bf16 autocast; fp16 loss scaling is
    refused).  See the module docstring for ``mixing``, ``update``, ``order``,
    ``T`` and ``arch_split``.  ``seed`` fixes ``alpha``'s initialisation, the
    data order, augmentation and Dirichlet samples.  Call :meth:`train_epoch`
    ``protocol.schedule_epochs`` times (or :meth:`run`); after each epoch ``trajectory``
    holds the architecture derived so far (one string per epoch) and
    ``history`` the epoch's mixing weights and losses.
    """

    def __init__(self, supernet: torch.nn.Module, space: Relaxable, data: Dataset, protocol: Protocol, *,
                 mixing: str = "softmax", update: str = "darts", order: int = 1, T: int = 100,
                 arch_split: str = "val", arch_lr: float = 3e-4, arch_weight_decay: float = 1e-3,
                 arch_betas: tuple[float, float] = (0.5, 0.999), grad_clip: float | None = 5.0,
                 kl_reg: float = 0.0, hvp_r: float = 1e-2, seed: int = 0):
        if mixing not in MIXINGS:
            raise ValueError(f"mixing must be one of {MIXINGS}, got {mixing!r}")
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
        if order not in (1, 2) or isinstance(order, bool):
            raise ValueError(f"order must be 1 (first-order DARTS) or 2 (second order), got {order!r}")
        if order == 2 and (update != "darts" or mixing != "softmax"):
            raise ValueError("order=2 (unrolled second-order gradient) is defined for DARTS only "
                             "(update='darts', mixing='softmax')")
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be an integer >= 1 (minibatches per architecture step), got {T!r}")
        if arch_split not in ("val", "train"):
            raise ValueError(f"arch_split must be 'val' or 'train', got {arch_split!r}")
        if protocol.amp == "fp16":
            raise ValueError("differentiable NAS does not support fp16 loss scaling; use amp='bf16' or full "
                             "precision")
        if data.n_train == 0:
            raise ValueError(f"dataset {data.name!r} has no training images")
        if update == "darts" and arch_split == "val" and data.n_val == 0:
            raise ValueError(f"DARTS updates the architecture on validation data, but dataset {data.name!r} has "
                             "n_val=0 (give it a validation split, or use the TSE variant, which needs none)")
        self.supernet, self.space, self.protocol = supernet, space, protocol
        self.mixing_kind, self.update_kind, self.order, self.T, self.arch_split = mixing, update, order, T, arch_split
        self.grad_clip, self.kl_reg, self.hvp_r = grad_clip, float(kl_reg), float(hvp_r)
        self.device = prepare_model(supernet, protocol)
        self.data = data.to(self.device)
        self.steps_per_epoch = math.ceil(self.data.n_train / protocol.batch_size)
        self.params = [p for p in supernet.parameters() if p.requires_grad]
        self.optimization = Optimization(self.params, protocol, self.device, self.steps_per_epoch)
        self.generator = torch.Generator().manual_seed(int(seed) % (2**63))
        init = torch.Generator().manual_seed((int(seed) + 0x41F) % (2**63))
        self.groups = list(space.relaxation())
        self.alphas = [
            (1e-3 * torch.randn(shape, generator=init, dtype=torch.float32)).to(self.device).requires_grad_(True)
            for shape in space.relaxation().values()
        ]
        self.arch_optimizer = torch.optim.Adam(self.alphas, lr=arch_lr, betas=tuple(arch_betas),
                                               weight_decay=arch_weight_decay)
        self.epoch = 0
        self.seconds = 0.0
        self.arch_steps = 0
        self.history: list[dict[str, Any]] = []

    # -- mixing weights ------------------------------------------------------------
    def mixing_weights(self, *, sample: bool = True) -> dict[str, torch.Tensor]:
        """The mixing weights of a forward pass (softmax, or a fresh Dirichlet sample; ``sample=False``:
        the Dirichlet mean), differentiable with respect to ``alpha``."""
        out = {}
        for group, a in zip(self.groups, self.alphas):
            if self.mixing_kind == "softmax":
                out[group] = F.softmax(a, dim=-1)
            else:
                conc = F.elu(a) + 1
                out[group] = Dirichlet(conc).rsample() if sample else conc / conc.sum(-1, keepdim=True)
        return out

    def _kl(self) -> torch.Tensor | None:
        if self.mixing_kind != "dirichlet" or self.kl_reg == 0:
            return None
        total = sum(kl_divergence(Dirichlet(F.elu(a) + 1), Dirichlet(torch.ones_like(a))).sum() for a in self.alphas)
        return self.kl_reg * total

    @property
    def trajectory(self) -> list[str]:
        """The architecture derived after each epoch so far, in epoch order."""
        return [h["arch"] for h in self.history]

    # -- data --------------------------------------------------------------------------
    def _batch(self, split: str, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.data
        xb, yb = (d.x_train[idx], d.y_train[idx]) if split == "train" else (d.x_val[idx], d.y_val[idx])
        if self.protocol.augment and (d.crop_padding or d.flip):
            xb = augment_batch(xb, self.generator, padding=d.crop_padding, flip=d.flip)
        if use_channels_last(self.protocol):
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb

    def _loss(self, xb: torch.Tensor, yb: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(self.device, self.protocol.amp):
            out = self.supernet.mixed(xb, weights)
        return F.cross_entropy(out.float(), yb)

    # -- the steps -------------------------------------------------------------------------
    def _weight_step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """One SGD step of the weights with ``alpha`` fixed; returns the loss."""
        with torch.no_grad():
            w = self.mixing_weights()
        loss = self._loss(xb, yb, w)
        self._apply_weight_grads(torch.autograd.grad(loss, self.params))
        return loss.detach()

    def _apply_weight_grads(self, grads) -> None:
        for p, g in zip(self.params, grads):
            p.grad = g
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimization.update()  # the optimiser's step, then the schedule's

    def _arch_step(self, grads: list[torch.Tensor]) -> None:
        kl = self._kl()
        if kl is not None:
            grads = [g + k for g, k in zip(grads, torch.autograd.grad(kl, self.alphas))]
        for a, g in zip(self.alphas, grads):
            a.grad = g
        self.arch_optimizer.step()
        self.arch_optimizer.zero_grad(set_to_none=True)
        self.arch_steps += 1

    def unrolled_gradient(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor
                          ) -> list[torch.Tensor]:
        """Second-order DARTS: ``grad_alpha L_val(w', alpha) - eta * grad^2_{alpha,w} L_train(w, alpha) v``
        (see the module docstring), with the weights restored afterwards."""
        opt = self.optimization.optimizer
        group = opt.param_groups[0]
        eta, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        with torch.no_grad():
            w_train = self.mixing_weights()
        g = torch.autograd.grad(self._loss(xt, yt, w_train), self.params)
        theta = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, gp in zip(self.params, g):
                buf = opt.state.get(p, {}).get("momentum_buffer")
                step = gp + wd * p
                if buf is not None:
                    step = step + mu * buf
                p.sub_(eta * step)  # w' = w - eta * (mu * buf + grad + wd * w)
        w_val = self.mixing_weights()
        grads = torch.autograd.grad(self._loss(xv, yv, w_val), self.alphas + self.params)
        d_alpha, v = list(grads[:len(self.alphas)]), list(grads[len(self.alphas):])
        with torch.no_grad():
            for p, t in zip(self.params, theta):
                p.copy_(t)
        implicit = hessian_vector_product(lambda: self._loss(xt, yt, self.mixing_weights()), self.params,
                                          self.alphas, v, r=self.hvp_r)
        return [d - eta * h for d, h in zip(d_alpha, implicit)]

    def _darts_epoch(self, perm: torch.Tensor) -> tuple[float, float | None]:
        bs, n_val = self.protocol.batch_size, self.data.n_val
        val_perm = torch.randperm(n_val, generator=self.generator).to(self.device) if self.arch_split == "val" \
            else None
        ar = torch.arange(bs, device=self.device)
        train_sum = torch.zeros((), device=self.device)
        arch_sum = torch.zeros((), device=self.device)
        for step in range(self.steps_per_epoch):
            xt, yt = self._batch("train", perm[step * bs:(step + 1) * bs])
            if val_perm is not None:
                xv, yv = self._batch("val", val_perm[(step * bs + ar) % n_val])
            else:
                xv, yv = xt, yt
            if self.order == 2:
                grads = self.unrolled_gradient(xt, yt, xv, yv)
            else:
                w = self.mixing_weights()
                arch_loss = self._loss(xv, yv, w)
                grads = list(torch.autograd.grad(arch_loss, self.alphas))
                arch_sum += arch_loss.detach()
            self._arch_step(grads)
            train_sum += self._weight_step(xt, yt)
        n = self.steps_per_epoch
        return float(train_sum) / n, (float(arch_sum) / n if self.order == 1 else None)

    def _tse_epoch(self, perm: torch.Tensor) -> tuple[float, float]:
        bs = self.protocol.batch_size
        train_sum = torch.zeros((), device=self.device)
        sotl_sum = torch.zeros((), device=self.device)
        for start in range(0, self.steps_per_epoch, self.T):
            batches = [self._batch("train", perm[s * bs:(s + 1) * bs])
                       for s in range(start, min(start + self.T, self.steps_per_epoch))]
            model_state = {k: v.detach().clone() for k, v in self.supernet.state_dict().items()}
            opt_state = copy.deepcopy(self.optimization.state_dict())
            acc = [torch.zeros_like(a) for a in self.alphas]
            na = len(self.alphas)
            for xb, yb in batches:  # (1) T steps of training, summing the architecture gradients
                loss = self._loss(xb, yb, self.mixing_weights())
                grads = torch.autograd.grad(loss, self.alphas + self.params)
                for s, g in zip(acc, grads[:na]):
                    s.add_(g)
                self._apply_weight_grads(grads[na:])
                sotl_sum += loss.detach()
            self._arch_step(acc)  # (2) one architecture step on the SoTL gradient
            with torch.no_grad():  # (3) back to the weights and optimiser before the chunk ...
                self.supernet.load_state_dict(model_state)
            self.optimization.load_state_dict(opt_state)
            for xb, yb in batches:  # ... and train them again with the new alpha
                train_sum += self._weight_step(xb, yb)
        n = self.steps_per_epoch
        return float(train_sum) / n, float(sotl_sum) / n

    # -- epochs ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.epoch >= self.protocol.schedule_epochs

    def train_epoch(self) -> float:
        """One search epoch (one pass over the training split); returns the mean training loss."""
        if self.done:
            raise RuntimeError(f"the search has already run all {self.protocol.schedule_epochs} epochs")
        t0 = time.perf_counter()
        self.supernet.train()
        perm = torch.randperm(self.data.n_train, generator=self.generator).to(self.device)
        if self.update_kind == "darts":
            train_loss, arch_loss = self._darts_epoch(perm)
        else:
            train_loss, arch_loss = self._tse_epoch(perm)
        self.seconds += time.perf_counter() - t0
        if not math.isfinite(train_loss) or not all(torch.isfinite(a).all() for a in self.alphas):
            raise TrainingDiverged(f"the differentiable search diverged in epoch {self.epoch + 1} "
                                   f"(training loss {train_loss})")
        self.epoch += 1
        with torch.no_grad():
            expected = self.mixing_weights(sample=False)
        arch = self.space.derive(expected)
        weights = {g: w.cpu().tolist() for g, w in expected.items()}
        self.history.append({"epoch": self.epoch, "arch": arch.string, "train_loss": train_loss,
                             "arch_loss": arch_loss, "seconds": self.seconds, "weights": weights})
        return train_loss

    def run(self, on_epoch: Callable[[RelaxedTrainer], None] | None = None, progress: bool = False) -> None:
        """Run the remaining epochs; ``on_epoch(trainer)`` after each (e.g. to checkpoint)."""
        run_epochs(self, desc="search", on_epoch=on_epoch, progress=progress)

    # -- checkpointing ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": self.supernet.state_dict(), **self.optimization.state_dict(),
            "alphas": [a.detach().clone() for a in self.alphas], "arch_optimizer": self.arch_optimizer.state_dict(),
            "generator": self.generator.get_state(), "torch_rng": rng, "epoch": self.epoch, "seconds": self.seconds,
            "arch_steps": self.arch_steps, "history": copy.deepcopy(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.supernet.load_state_dict(state["model"])
        self.optimization.load_state_dict(state)
        with torch.no_grad():
            for a, s in zip(self.alphas, state["alphas"]):
                a.copy_(s)
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"]["cpu"])
        if self.device.type == "cuda" and "cuda" in state["torch_rng"]:
            torch.cuda.set_rng_state(state["torch_rng"]["cuda"], self.device)
        self.epoch = int(state["epoch"])
        self.seconds = float(state["seconds"])
        self.arch_steps = int(state["arch_steps"])
        self.history = copy.deepcopy(state["history"])
