"""The one training loop of the engine.

:class:`Protocol` is the training recipe (the hyperparameters of the full
schedule and the network size); :func:`train` runs the first ``epochs`` epochs
of that schedule on a model and returns a :class:`~nas_engine.curves.LearningCurve`.

The schedule is defined over ``protocol.schedule_epochs`` (T_end): an estimator that
trains only ``T < T_end`` epochs sees exactly the first T epochs of the full
run, as in the TSE paper (the learning rate follows the cosine of the full
schedule, it is not compressed into T epochs).

:class:`Optimization` is the optimisation shared with the supernet trainer
(:mod:`nas_engine.strategies.oneshot.supernet`): the protocol's optimiser,
schedule and gradient scaler, and the step (forward under autocast, loss,
backward, update); :func:`prepare_model` and :func:`training_batch` are the
shared model placement and minibatch preparation.

Hot-path choices: the dataset is moved to the device once; minibatch losses and
correct counts are accumulated in device tensors and read back once per epoch
(no per-step host synchronisation); augmentation runs batched on the device.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
import torch.nn.functional as F

from .config import check_bool, check_choice, check_float, check_int
from .curves import LearningCurve
from .data import Dataset, augment_batch

__all__ = [
    "Protocol",
    "PRESETS",
    "DEFAULT_PRESET",
    "Size",
    "upgrade_protocol_dict",
    "train",
    "evaluate",
    "build_model",
    "TrainingTimeLimit",
    "TrainingInterrupted",
    "evaluation_limits",
    "check_limits",
    "resolve_device",
    "seeded",
    "TrainingFailed",
    "TrainingDiverged",
    "TrainingOutOfMemory",
    "is_out_of_memory",
    "Optimization",
    "run_epochs",
    "autocast",
    "use_channels_last",
    "prepare_model",
    "training_batch",
]

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Size(dict):
    """A network-size mapping (``{"C": 8, "N": 1}``) that cannot change and can be hashed, so that a
    :class:`Protocol` holding it stays an immutable value.  Compares equal to the plain ``dict``."""

    def _immutable(self, *args, **kwargs):
        raise TypeError("a Protocol's size cannot change; use protocol.replace(size=...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _immutable  # type: ignore

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __repr__(self) -> str:
        return repr(dict(self))

    def __reduce__(self):
        return Size, (dict(self),)


#: the named recipes of :meth:`Protocol.preset`, the fields each sets (everything else is
#: :class:`Protocol`'s default: SGD, Nesterov momentum 0.9, weight decay 5e-4, cosine to 0, augmentation).
#: ``scale`` names one of the space's sizes (:attr:`~nas_engine.spaces.base.SearchSpace.sizes`).
PRESETS: dict[str, dict[str, Any]] = {
    # a CPU-scale recipe: each space's "small" network; ~0.5 s per NB201 candidate (T=5) on the embedded digits
    "small": {"scale": "small", "batch_size": 128, "lr": 0.1, "schedule_epochs": 50},
    # NAS-Bench-201's CIFAR-10 recipe at the space's own (benchmark) size: Protocol's defaults
    "nb201": {"scale": "default", "batch_size": 256, "lr": 0.1, "schedule_epochs": 200},
}
#: the preset :class:`~nas_engine.search.Search` and ``nas-engine search`` use when given no protocol
DEFAULT_PRESET = "small"


@dataclass(frozen=True)
class Protocol:
    """A training recipe: SGD with a cosine learning-rate schedule, and the network's size.

    The defaults are NAS-Bench-201's CIFAR-10 recipe (a 200-epoch schedule,
    batch 256, SGD lr 0.1 with Nesterov momentum 0.9, weight decay 5e-4, cosine
    to 0) at the space's own (benchmark) network size.  :meth:`preset` gives
    the named recipes (:data:`PRESETS`): ``Protocol.preset("small")`` is the
    CPU-scale one that :class:`~nas_engine.search.Search` and ``nas-engine
    search`` use by default.

    ``schedule_epochs`` is the length T_end of the cosine schedule: an
    estimator's T epochs (its ``epochs``) are a prefix of it, final training
    trains all of it.  (Not to be confused with an estimator's ``epochs`` T or
    ``Budget.epochs``, the total training epochs of a search.)

    The network's size belongs to the search space: ``scale`` names one of
    the space's sizes (``"default"``: the benchmark's network; ``"small"``: a
    CPU-scale one; see :attr:`~nas_engine.spaces.base.SearchSpace.sizes`) and
    ``size`` overrides some or all of its keys, e.g. ``size={"C": 8, "N": 1}``
    for NB201 or ``size={"C": 8, "layers": 5}`` for DARTS.  The space checks
    the keys and values when the size is resolved (:meth:`size_for`).

    ``device="auto"`` picks CUDA when available.  ``channels_last=None`` means
    "on" (it is faster on CPU and with CUDA convolutions).  ``amp`` is ``None``
    (float32), ``"bf16"`` or ``"fp16"`` (fp16 uses a gradient scaler on CUDA).
    ``augment`` applies the dataset's augmentation (random crop + flip).
    """

    schedule_epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_min: float = 0.0
    size: Mapping[str, Any] = field(default_factory=Size)
    scale: str = "default"
    device: str = "auto"
    channels_last: bool | None = None
    amp: str | None = None
    augment: bool = True
    eval_batch_size: int = 1000

    def __post_init__(self):
        who = "Protocol"
        for name in ("schedule_epochs", "batch_size", "eval_batch_size"):
            object.__setattr__(self, name, check_int(getattr(self, name), name, who=who))
        if not isinstance(self.size, Mapping) or not all(isinstance(k, str) for k in self.size):
            raise ValueError(f"{who}: size must be a mapping of size names to values, e.g. {{'C': 8, 'N': 1}}, "
                             f"got {self.size!r}")
        object.__setattr__(self, "size", Size(self.size))
        if not isinstance(self.scale, str) or not self.scale:
            raise ValueError(f"{who}: scale must be the name of one of the space's sizes, e.g. 'default' or "
                             f"'small', got {self.scale!r}")
        # the optimiser applies lr and weight_decay to float32 weights: larger values cannot be represented there
        fmax = torch.finfo(torch.float32).max
        check_float(self.lr, "lr", low=0, low_open=True, high=fmax, who=who)
        check_float(self.lr_min, "lr_min", low=0, who=who)
        if self.lr_min > self.lr:  # the cosine schedule decays from lr to lr_min
            raise ValueError(f"{who}: lr_min must be <= lr={self.lr!r}, got {self.lr_min!r}")
        check_float(self.momentum, "momentum", low=0, high=1, high_open=True, who=who)
        check_float(self.weight_decay, "weight_decay", low=0, high=fmax, who=who)
        check_bool(self.nesterov, "nesterov", who=who)
        if self.nesterov and self.momentum == 0:  # torch's SGD refuses Nesterov without momentum
            raise ValueError(f"{who}: nesterov=True needs momentum > 0 (or nesterov=False), "
                             f"got momentum={self.momentum!r}")
        check_bool(self.channels_last, "channels_last", none=True, who=who)
        check_bool(self.augment, "augment", who=who)
        check_choice(self.amp, "amp", (None, *_AMP_DTYPES), who=who)
        try:  # the name only: availability is checked when training starts
            _parse_device(self.device)
        except ValueError:
            raise ValueError(f"{who}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from None

    @classmethod
    def preset(cls, name: str = DEFAULT_PRESET, **changes) -> Protocol:
        """The named recipe ``name`` of :data:`PRESETS` (``"small"``, ``"nb201"``), with ``changes`` (any
        field, e.g. ``size={"C": 4}`` or ``batch_size=64``) applied on top."""
        if name not in PRESETS:
            raise ValueError(f"unknown protocol preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **changes})

    def size_for(self, space) -> dict[str, Any]:
        """The network size for ``space``: its size named :attr:`scale` with :attr:`size` on top, checked by
        the space (:meth:`~nas_engine.spaces.base.SearchSpace.resolve_size`)."""
        return space.resolve_size(self.size, scale=self.scale)

    def resolved(self, space) -> Protocol:
        """This protocol with its size spelled out for ``space`` (every size key; ``scale="default"``), the
        form a search stores: two protocols that give the same network compare equal."""
        return replace(self, size=self.size_for(space), scale="default")

    def replace(self, **changes) -> Protocol:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = dict(self.size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], space=None) -> Protocol:
        """The protocol of a :meth:`to_dict` dictionary.  A dictionary of an earlier version (``epochs`` for
        the schedule length, ``C`` and ``N`` for the size) is converted: ``epochs`` becomes
        ``schedule_epochs`` and ``C``/``N`` become the size that ``space`` gives them
        (:meth:`~nas_engine.spaces.base.SearchSpace.legacy_size`; NB201's ``C``/``N`` without a space)."""
        d = upgrade_protocol_dict(d, space)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown Protocol field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def upgrade_protocol_dict(d: dict[str, Any], space=None) -> dict[str, Any]:
    """A protocol dictionary in this version's vocabulary (see :meth:`Protocol.from_dict`); unchanged when it
    already is."""
    if not isinstance(d, dict) or not ({"epochs", "C", "N"} & set(d)):
        return d
    d = dict(d)
    if "epochs" in d:
        if "schedule_epochs" in d:
            raise ValueError("a protocol gives both epochs (the old name) and schedule_epochs")
        d["schedule_epochs"] = d.pop("epochs")
    if "C" in d or "N" in d:
        if "size" in d:
            raise ValueError("a protocol gives both C/N (the old size fields) and size")
        C, N = d.pop("C", 16), d.pop("N", 5)
        d["size"] = space.legacy_size(C, N) if space is not None else {"C": C, "N": N}
        d.setdefault("scale", "default")  # the size spelled out, as a search stores it
    return d


class TrainingFailed(RuntimeError):
    """Training could not finish; ``curve`` holds the epochs completed before."""

    reason = "failed"

    def __init__(self, message: str, curve: LearningCurve | None = None):
        super().__init__(message)
        self.curve = curve


class TrainingDiverged(TrainingFailed):
    reason = "diverged"


class TrainingOutOfMemory(TrainingFailed):
    reason = "out-of-memory"


class TrainingTimeLimit(TrainingFailed):
    """The evaluation passed its own time limit (``Search(evaluation_seconds=...)``): a property of the
    candidate, recorded as failed with the reason ``"time limit: ..."``."""

    reason = "time limit"


class TrainingInterrupted(BaseException):
    """The search's wall-clock budget ran out while a candidate trained (raised at a minibatch boundary).

    Not a failure of the candidate: the search records it as *interrupted* (no result) and a resumed search
    with a larger budget runs it again.  A ``BaseException``, like ``KeyboardInterrupt``, so that an
    estimator's ``except Exception`` does not turn it into a result.
    """


# the limits of the evaluation running in this thread: (the search's deadline as time.time(), the evaluation's
# own end as time.monotonic(), its seconds); set by evaluation_limits, read by check_limits
_LIMITS: contextvars.ContextVar[tuple[float | None, float | None, float | None] | None] = \
    contextvars.ContextVar("nas_engine_evaluation_limits", default=None)


@contextlib.contextmanager
def evaluation_limits(deadline: float | None = None, seconds: float | None = None):
    """Bound every :func:`train` call in the block (the search loop wraps each evaluation in it).

    ``deadline``: the wall-clock time (``time.time()``, comparable across the processes of one machine) at
    which the search's ``Budget(seconds=...)`` runs out: training stops at the next minibatch boundary with
    :class:`TrainingInterrupted`.  ``seconds``: the evaluation's own limit, counted from entering the block:
    training stops with :class:`TrainingTimeLimit` (a :class:`TrainingFailed`).  ``None``: no limit.
    """
    if deadline is None and seconds is None:
        yield
        return
    token = _LIMITS.set((deadline, None if seconds is None else time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _LIMITS.reset(token)


def check_limits(curve: Callable[[], LearningCurve | None] | None = None) -> None:
    """Raise if a limit of :func:`evaluation_limits` has passed (a no-op outside one).

    :func:`train` calls it before every minibatch; an estimator or strategy that runs a long loop of its own
    may call it too, so that the search's budget and the evaluation's time limit stop it.  ``curve``
    returns the epochs completed so far (kept in :class:`TrainingTimeLimit`'s ``curve``).
    """
    limits = _LIMITS.get()
    if limits is None:
        return
    deadline, end, seconds = limits
    if deadline is not None and time.time() >= deadline:
        raise TrainingInterrupted("the search's wall-clock budget ran out")
    if end is not None and time.monotonic() >= end:
        raise TrainingTimeLimit(f"the evaluation ran past evaluation_seconds={seconds:g}",
                                curve() if curve is not None else None)


def _parse_device(device) -> torch.device | None:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"invalid device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is validated."""
    dev = _parse_device(device)
    if dev is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
    return dev


@contextlib.contextmanager
def seeded(seed: int):
    """Seed torch's global RNGs inside the block and restore them afterwards."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def build_model(space, arch, data: Dataset, protocol: Protocol, seed: int) -> torch.nn.Module:
    """``space.build`` for the data's shape and the protocol's size, initialised from ``seed``."""
    with seeded(seed):
        return space.build(arch, data.num_classes, in_channels=data.in_channels, **protocol.size_for(space))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` reports running out of memory: CUDA OOM, ``MemoryError``, or torch's CPU
    allocator failing (``RuntimeError: ... can't allocate memory``, e.g. under a ``RLIMIT_AS`` cap)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def autocast(device: torch.device, amp: str | None):
    """The forward pass's autocast context for ``Protocol.amp`` (a null context in float32)."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[amp])


def use_channels_last(protocol: Protocol) -> bool:
    """Whether ``protocol`` runs models and inputs in channels_last memory format (``None`` means on)."""
    return True if protocol.channels_last is None else protocol.channels_last


def prepare_model(model: torch.nn.Module, protocol: Protocol) -> torch.device:
    """Move ``model`` to the protocol's device (channels_last when on) and return that device."""
    device = resolve_device(protocol.device)
    model.to(device)
    if use_channels_last(protocol):
        model.to(memory_format=torch.channels_last)
    return device


def training_batch(data: Dataset, idx: torch.Tensor, protocol: Protocol,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The training minibatch ``idx`` of ``data`` (on the device): augmented with ``generator`` when the
    protocol and the dataset ask for it, in channels_last format when the protocol uses it."""
    xb, yb = data.x_train[idx], data.y_train[idx]
    if protocol.augment and (data.crop_padding or data.flip):
        xb = augment_batch(xb, generator, padding=data.crop_padding, flip=data.flip)
    if use_channels_last(protocol):
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, yb


class Optimization:
    """The optimisation of one training run, shared by :func:`train` and the supernet trainer.

    Set-up from ``protocol``: SGD over ``parameters`` (momentum, Nesterov,
    weight decay), a cosine learning-rate schedule from ``lr`` to ``lr_min``
    over ``steps_per_epoch * protocol.schedule_epochs`` steps (the whole schedule), and
    a gradient scaler for ``amp="fp16"`` on CUDA (``None`` otherwise).

    The step, in parts: :meth:`forward` (model under autocast, float32
    cross-entropy), :meth:`backward` (through the scaler), :meth:`update`
    (optimiser step through the scaler, scaler update, schedule step; no
    gradient clipping); :meth:`step` is the whole step on one minibatch.
    """

    def __init__(self, parameters, protocol: Protocol, device: torch.device, steps_per_epoch: int):
        self.protocol, self.device = protocol, device
        self.optimizer = torch.optim.SGD(
            parameters, lr=protocol.lr, momentum=protocol.momentum,
            nesterov=protocol.nesterov, weight_decay=protocol.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=steps_per_epoch * protocol.schedule_epochs, eta_min=protocol.lr_min
        )
        self.scaler = (torch.amp.GradScaler(device.type)
                       if (protocol.amp == "fp16" and device.type == "cuda") else None)

    @property
    def lr(self) -> float:
        """The learning rate of the next update."""
        return float(self.optimizer.param_groups[0]["lr"])

    def forward(self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                *args) -> tuple[torch.Tensor, torch.Tensor]:
        """``model(xb, *args)`` under autocast and its mean cross-entropy loss (float32): ``(out, loss)``."""
        with autocast(self.device, self.protocol.amp):
            out = model(xb, *args)
            loss = F.cross_entropy(out.float(), yb)
        return out, loss

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of ``loss`` (scaled when a gradient scaler is in use)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def update(self) -> None:
        """Apply the accumulated gradients: optimiser step (through the scaler), then one schedule step."""
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()

    def step(self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor,
             paths: list | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One optimisation step on the minibatch ``(xb, yb)``; returns ``(out, loss)`` per forward, detached.

        Without ``paths``: one forward ``model(xb)``.  With ``paths`` (a
        supernet): one forward ``model(xb, path)`` per path, each loss divided
        by ``len(paths)`` before its backward pass, so that the update follows
        the average of the paths' gradients.
        """
        calls = [()] if paths is None else [(path,) for path in paths]
        self.optimizer.zero_grad(set_to_none=True)
        results = []
        for args in calls:
            out, loss = self.forward(model, xb, yb, *args)
            self.backward(loss / len(calls) if len(calls) > 1 else loss)
            results.append((out.detach(), loss.detach()))
        self.update()
        return results

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, protocol: Protocol,
             device: torch.device | None = None) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` (eval mode) on ``(x, y)``."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    cl = use_channels_last(protocol)
    try:
        for i in range(0, len(x), protocol.eval_batch_size):
            xb = x[i:i + protocol.eval_batch_size].to(device, non_blocking=True)
            yb = y[i:i + protocol.eval_batch_size].to(device, non_blocking=True)
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device, protocol.amp):
                out = model(xb)
            loss_sum += F.cross_entropy(out.float(), yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()
    finally:
        model.train(was_training)
    n = max(len(x), 1)
    return float(loss_sum) / n, float(correct) / n


def train(
    model: torch.nn.Module,
    data: Dataset,
    protocol: Protocol,
    *,
    epochs: int | None = None,
    seed: int = 0,
    validate: bool = True,
    progress: bool = False,
    on_epoch: Callable[[int, LearningCurve], None] | None = None,
    steps_per_epoch: int | None = None,
    frozen: Collection[str] | None = None,
    stop_at_train_acc: float | None = None,
    max_seconds: float | None = None,
    check_every: int = 1,
    resume: dict[str, Any] | None = None,
    on_state: Callable[[int, dict[str, Any]], None] | None = None,
) -> LearningCurve:
    """Train ``model`` for the first ``epochs`` epochs of ``protocol``'s schedule.

    ``seed`` fixes the data order and augmentation (model initialisation is the
    caller's: see :func:`build_model`; the model may also arrive with trained
    weights, e.g. inherited from a supernet, to be fine-tuned).  With
    ``validate`` the validation split is evaluated after every epoch.
    ``on_epoch(epoch, curve_so_far)`` is called after each epoch.  Raises
    :class:`TrainingDiverged` when a loss is NaN/inf and
    :class:`TrainingOutOfMemory` on out-of-memory, with the completed epochs in
    ``exc.curve``.

    ``steps_per_epoch``: by default an epoch is one pass over the training
    split (``ceil(n_train / batch_size)`` minibatches, the last one smaller).
    Given an integer ``B``, an "epoch" is instead ``B`` full minibatches drawn
    from a stream of consecutive random permutations of the training split (a
    batch may span two permutations), so that a budget of ``epochs`` x ``B``
    minibatches can be recorded in chunks of ``B`` -- one-shot fine-tuning
    records B = 100, 200, 300 minibatches as epochs 1, 2, 3.  The cosine
    schedule then spans ``B * protocol.schedule_epochs`` steps.

    ``frozen`` names parameters (as in ``model.named_parameters()``) that are
    not trained: they are left out of the optimiser and their
    ``requires_grad`` is off for the duration of the call (no gradient is
    computed for them; restored afterwards).  Modules stay in training mode
    (batch-norm statistics of frozen layers still follow the batches).

    Early stop (both checked every ``check_every`` steps and at every epoch's
    end): ``stop_at_train_acc`` stops as soon as the *running training
    accuracy* -- the fraction of correct predictions over the last epoch's
    worth of minibatches (the last ``ceil(n_train / batch_size)`` steps, fewer
    during the first epoch), i.e. the epoch's training accuracy at an epoch's
    end -- reaches it; ``max_seconds`` stops once the training time of this
    call (validation passes excluded) exceeds it.  The epoch cut short is
    recorded as the curve's last epoch (its minibatches so far, its training
    accuracy over them, validated if ``validate``), and
    ``curve.info["stopped"]`` says why and when: ``{"reason": "train-acc" |
    "time-limit", "steps", "epochs" (fractional), "seconds" (training time),
    "train_acc" (the running accuracy)}``.  Without a stop, ``"stopped"`` is
    absent.

    Checkpoint and resume: ``on_state(epoch, state)`` is called after each
    epoch (after ``on_epoch``) with the whole state of the run after that
    epoch, as plain data that ``torch.save`` writes and
    ``torch.load(weights_only=True)`` reads: the model's and the
    optimisation's state dicts (optimiser, schedule, gradient scaler), the
    data-order generator's state, torch's global CPU and CUDA RNG states, the
    recorded curve, the step count and training time.  Its tensors are the
    live ones (save or copy them in the callback).  ``resume=state`` continues
    a run from such a state: call with the same model (architecture),
    ``data``, ``protocol``, ``seed`` and options, and the returned curve holds
    every epoch, the earlier ones included; on CPU with the same thread count
    the weights after the last epoch are bit-identical to an uninterrupted
    run's.  Resuming sets torch's global RNG states to the state's (so a
    model's own randomness, e.g. dropout, continues too): run inside
    :func:`seeded` or :func:`torch.random.fork_rng` to keep the caller's.
    """
    epochs = _check_train_arguments(data, protocol, epochs, steps_per_epoch, stop_at_train_acc, max_seconds,
                                    check_every)
    trainable, frozen_params = _split_parameters(model, frozen)
    run = _TrainingRun(model, data, protocol, trainable, len(frozen_params), seed=seed, validate=validate,
                       steps_per_epoch=steps_per_epoch, stop_at_train_acc=stop_at_train_acc,
                       max_seconds=max_seconds, check_every=check_every)
    start = 0 if resume is None else run.load_state_dict(resume, epochs)
    bar = _progress_bar(epochs, start) if progress else None
    try:
        with _gradients_off(frozen_params):
            for epoch in range(start, epochs):
                if run.stopped is not None:  # resumed from the state of a run that stopped early
                    break
                t0 = time.perf_counter()
                losses, acc = run.train_epoch(t0)
                run.record_epoch(epoch, t0, losses, acc)  # raises TrainingDiverged
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{sum(losses) / len(losses):.3f}")
                if on_epoch is not None:
                    on_epoch(epoch + 1, run.curve())
                if on_state is not None:
                    on_state(epoch + 1, run.state_dict())
                if run.stopped is not None:
                    break
    except TrainingFailed:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise run.out_of_memory(exc) from exc
        raise
    finally:
        if bar is not None:
            bar.close()
    return run.curve()


def _check_train_arguments(data: Dataset, protocol: Protocol, epochs, steps_per_epoch, stop_at_train_acc,
                           max_seconds, check_every) -> int:
    """Validate :func:`train`'s arguments; returns the number of epochs to train."""
    epochs = protocol.schedule_epochs if epochs is None else epochs
    if not isinstance(epochs, int) or not 1 <= epochs <= protocol.schedule_epochs:
        raise ValueError(
            f"epochs must be an integer in [1, protocol.schedule_epochs={protocol.schedule_epochs}], got {epochs!r}"
        )
    if data.n_train == 0:
        raise ValueError(f"dataset {data.name!r} has no training images")
    if stop_at_train_acc is not None and (isinstance(stop_at_train_acc, bool) or not isinstance(
            stop_at_train_acc, (int, float)) or not 0 < stop_at_train_acc <= 1):
        raise ValueError(f"stop_at_train_acc must be a fraction in (0, 1] or None, got {stop_at_train_acc!r}")
    if max_seconds is not None and (isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float))
                                    or not max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds!r}")
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be a positive integer (steps), got {check_every!r}")
    if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int)
                                        or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be a positive integer or None, got {steps_per_epoch!r}")
    return epochs


def _split_parameters(model: torch.nn.Module, frozen: Collection[str] | None
                      ) -> tuple[list[torch.nn.Parameter], dict[str, torch.nn.Parameter]]:
    """The trainable parameters (in the model's order) and the frozen ones by name, checked against the model."""
    named = dict(model.named_parameters())
    frozen = set() if frozen is None else set(frozen)
    unknown = sorted(frozen - set(named))
    if unknown:
        raise ValueError(f"frozen names parameter(s) the model does not have: {unknown[:5]}"
                         f"{' ...' if len(unknown) > 5 else ''}; expected names from model.named_parameters()")
    trainable = [p for name, p in named.items() if name not in frozen]
    if not trainable:
        raise ValueError("frozen covers every parameter of the model; nothing would be trained")
    return trainable, {name: named[name] for name in frozen}


@contextlib.contextmanager
def _gradients_off(params: dict[str, torch.nn.Parameter]):
    """``requires_grad`` off for ``params`` inside the block, restored afterwards."""
    requires_grad = {name: p.requires_grad for name, p in params.items()}
    for p in params.values():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for name, flag in requires_grad.items():
            params[name].requires_grad_(flag)


def run_epochs(trainer, *, desc: str, on_epoch: Callable | None = None, progress: bool = False) -> None:
    """Call ``trainer.train_epoch()`` (which returns the epoch's loss) until ``trainer.done``, then
    ``on_epoch(trainer)`` after each epoch (e.g. to checkpoint); ``progress`` shows a bar named ``desc``
    over ``trainer.protocol.schedule_epochs`` starting at ``trainer.epoch``.  The loop of the supernet trainers."""
    bar = _progress_bar(trainer.protocol.schedule_epochs, trainer.epoch, desc) if progress else None
    try:
        while not trainer.done:
            loss = trainer.train_epoch()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
            if on_epoch is not None:
                on_epoch(trainer)
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(epochs: int, initial: int = 0, desc: str = "train"):
    from tqdm.auto import tqdm

    return tqdm(total=epochs, initial=initial, desc=desc, leave=False, unit="ep")


class _TrainingRun:
    """The state of one :func:`train` call; its methods are the parts of train's epoch loop."""

    def __init__(self, model, data: Dataset, protocol: Protocol, trainable: list, n_frozen: int, *,
                 seed: int, validate: bool, steps_per_epoch: int | None, stop_at_train_acc: float | None,
                 max_seconds: float | None, check_every: int):
        self.device = prepare_model(model, protocol)
        model.train()
        self.model, self.data, self.protocol = model, data.to(self.device), protocol
        self.chunked = steps_per_epoch is not None
        self.steps_per_epoch = steps_per_epoch if self.chunked else math.ceil(data.n_train / protocol.batch_size)
        self.optimization = Optimization(trainable, protocol, self.device, self.steps_per_epoch)
        self.gen = torch.Generator().manual_seed(int(seed) % (2**63))
        self.do_val = validate and self.data.n_val > 0
        self.stream = torch.empty(0, dtype=torch.long, device=self.device)  # chunked: rest of a permutation
        self.stop_at_train_acc, self.max_seconds, self.check_every = stop_at_train_acc, max_seconds, check_every
        self.stopping = stop_at_train_acc is not None or max_seconds is not None
        if self.stopping:  # per-step correct counts / batch sizes of the last epoch's worth of steps (a ring)
            self.ring_correct = torch.zeros(self.steps_per_epoch, device=self.device, dtype=torch.long)
            self.ring_size = torch.zeros(self.steps_per_epoch, device=self.device, dtype=torch.long)
        self.rec: dict[str, list] = {k: [] for k in ("minibatch_losses", "train_acc", "val_loss", "val_acc",
                                                     "epoch_seconds")}
        self.info: dict[str, Any] = {"device": str(self.device), "amp": protocol.amp,
                                     "batch_size": protocol.batch_size, "steps_per_epoch": self.steps_per_epoch}
        if n_frozen:
            self.info["frozen_parameters"] = n_frozen
        self.train_seconds = 0.0
        self.global_step = 0
        self.stopped: dict[str, Any] | None = None

    def epoch_order(self) -> tuple[torch.Tensor, int]:
        """The epoch's sample order and the number of samples it covers when it runs to its end."""
        n, full = self.data.n_train, self.steps_per_epoch * self.protocol.batch_size
        if not self.chunked:
            return torch.randperm(n, generator=self.gen).to(self.device), n
        parts = [self.stream]
        need = full - len(self.stream)
        while need > 0:
            parts.append(torch.randperm(n, generator=self.gen).to(self.device))
            need -= n
        perm = torch.cat(parts)
        self.stream = perm[full:]
        return perm, full

    def train_epoch(self, t0: float) -> tuple[list[float], float]:
        """The epoch's optimisation steps (fewer on an early stop): its minibatch losses and training accuracy."""
        perm, full = self.epoch_order()
        bs, spe = self.protocol.batch_size, self.steps_per_epoch
        losses = torch.empty(spe, device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        steps_done = 0
        for step in range(spe):
            check_limits(self.curve)  # the search's deadline and the evaluation's time limit, if any
            xb, yb = training_batch(self.data, perm[step * bs:(step + 1) * bs], self.protocol, self.gen)
            [(out, loss)] = self.optimization.step(self.model, xb, yb)
            losses[step] = loss
            step_correct = (out.argmax(1) == yb).sum()
            correct += step_correct
            steps_done = step + 1
            self.global_step += 1
            if self.stopping and self.stop_check(step_correct, len(yb), last=steps_done == spe, t0=t0):
                break
        seen = full if steps_done == spe else min(steps_done * bs, full)
        return losses[:steps_done].tolist(), float(correct) / seen  # one host sync per epoch

    def stop_check(self, step_correct: torch.Tensor, size: int, *, last: bool, t0: float) -> bool:
        """Record the step in the ring; every ``check_every`` steps and at the epoch's end, check the stops."""
        self.ring_correct[self.global_step % self.steps_per_epoch] = step_correct
        self.ring_size[self.global_step % self.steps_per_epoch] = size
        if self.global_step % self.check_every != 0 and not last:
            return False
        seconds = self.train_seconds + time.perf_counter() - t0
        acc = float(self.ring_correct.sum()) / max(int(self.ring_size.sum()), 1)  # one host sync per check
        reason = None
        if self.stop_at_train_acc is not None and acc >= self.stop_at_train_acc:
            reason = "train-acc"
        elif self.max_seconds is not None and seconds > self.max_seconds:
            reason = "time-limit"
        if reason is not None:
            self.stopped = {"reason": reason, "steps": self.global_step,
                            "epochs": self.global_step / self.steps_per_epoch, "seconds": seconds, "train_acc": acc}
        return reason is not None

    def record_epoch(self, epoch: int, t0: float, losses: list[float], acc: float) -> None:
        """Record the epoch (validated if asked); raises :class:`TrainingDiverged` on a non-finite loss."""
        rec = self.rec
        rec["minibatch_losses"].append(losses)
        rec["train_acc"].append(acc)
        if not all(map(math.isfinite, losses)):
            rec["epoch_seconds"].append(time.perf_counter() - t0)
            if self.do_val:
                rec["val_loss"].append(math.nan)
                rec["val_acc"].append(0.0)
            raise TrainingDiverged(f"training loss became non-finite in epoch {epoch + 1}", self.curve())
        self.train_seconds += time.perf_counter() - t0
        if self.do_val:
            vl, va = evaluate(self.model, self.data.x_val, self.data.y_val, self.protocol, self.device)
            rec["val_loss"].append(vl)
            rec["val_acc"].append(va)
        rec["epoch_seconds"].append(time.perf_counter() - t0)
        if self.stopped is not None:
            self.info["stopped"] = self.stopped

    def curve(self, epochs: int | None = None) -> LearningCurve:
        """The curve so far (its first ``epochs`` epochs if given)."""
        return LearningCurve(**{k: v[:epochs] for k, v in self.rec.items()}, info=dict(self.info))

    # -- checkpointing (see train's docstring: ``on_state`` / ``resume``) ----------------
    _STATE_VERSION = 1

    def state_dict(self) -> dict[str, Any]:
        """The run's state after its last recorded epoch (live tensors; plain data for ``torch.save``)."""
        cuda = list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() and torch.cuda.is_initialized() \
            else []
        return {
            "version": self._STATE_VERSION, "epochs": len(self.rec["epoch_seconds"]),
            "steps_per_epoch": self.steps_per_epoch, "chunked": self.chunked,
            "model": self.model.state_dict(), "optimization": self.optimization.state_dict(),
            "rng": {"data": self.gen.get_state(), "torch": torch.get_rng_state(), "cuda": cuda},
            "stream": self.stream.cpu(),
            "ring": [self.ring_correct.cpu(), self.ring_size.cpu()] if self.stopping else None,
            "records": {k: list(v) for k, v in self.rec.items()},
            "train_seconds": self.train_seconds, "global_step": self.global_step, "stopped": self.stopped,
        }

    def load_state_dict(self, state: dict[str, Any], epochs: int) -> int:
        """Continue from :meth:`state_dict`'s ``state``; returns the number of epochs it had completed."""
        version = state.get("version") if isinstance(state, dict) else None
        if version != self._STATE_VERSION:
            raise ValueError(f"resume: not a training state of this version (expected version "
                             f"{self._STATE_VERSION}, got {version!r})")
        done = int(state["epochs"])
        if (state["steps_per_epoch"], state["chunked"]) != (self.steps_per_epoch, self.chunked):
            raise ValueError(f"resume: the state was made with {state['steps_per_epoch']} steps per epoch "
                             f"({'chunked' if state['chunked'] else 'passes over the data'}), this run has "
                             f"{self.steps_per_epoch} ({'chunked' if self.chunked else 'passes over the data'})")
        if done > epochs:
            raise ValueError(f"resume: the state has {done} epochs done, more than the {epochs} asked for")
        if (state["ring"] is not None) != self.stopping:
            raise ValueError("resume: the state was made with other early-stop options (stop_at_train_acc / "
                             "max_seconds) than this run's")
        self.model.load_state_dict(state["model"])
        self.optimization.load_state_dict(state["optimization"])
        rng = state["rng"]
        self.gen.set_state(rng["data"].cpu())
        torch.set_rng_state(rng["torch"].cpu())
        if rng["cuda"] and torch.cuda.is_available():
            n = min(len(rng["cuda"]), torch.cuda.device_count())
            for i in range(n):
                torch.cuda.set_rng_state(rng["cuda"][i].cpu(), i)
        self.stream = state["stream"].to(self.device)
        if self.stopping:
            self.ring_correct = state["ring"][0].to(self.device)
            self.ring_size = state["ring"][1].to(self.device)
        self.rec = {k: list(state["records"][k]) for k in self.rec}
        self.train_seconds = float(state["train_seconds"])
        self.global_step = int(state["global_step"])
        self.stopped = state["stopped"]
        if self.stopped is not None:
            self.info["stopped"] = self.stopped
        return done

    def out_of_memory(self, exc: BaseException) -> TrainingOutOfMemory:
        """The failure to raise for ``exc``, with the epochs completed before it."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        done = len(self.rec["epoch_seconds"])
        return TrainingOutOfMemory(f"out of memory in epoch {done + 1}: {exc}", self.curve(done))
