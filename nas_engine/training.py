"""The one training loop of the engine.

:class:`Protocol` is the training recipe (the hyperparameters of the full
schedule and the network size); :func:`train` runs the first ``epochs`` epochs
of that schedule on a model and returns a :class:`~nas_engine.curves.LearningCurve`.

The schedule is defined over ``protocol.epochs`` (T_end): an estimator that
trains only ``T < T_end`` epochs sees exactly the first T epochs of the full
run, as in the TSE paper (the learning rate follows the cosine of the full
schedule, it is not compressed into T epochs).

Hot-path choices: the dataset is moved to the device once; minibatch losses and
correct counts are accumulated in device tensors and read back once per epoch
(no per-step host synchronisation); augmentation runs batched on the device.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F

from .curves import LearningCurve
from .data import Dataset, augment_batch

__all__ = [
    "Protocol",
    "train",
    "evaluate",
    "build_model",
    "resolve_device",
    "seeded",
    "TrainingFailed",
    "TrainingDiverged",
    "TrainingOutOfMemory",
    "is_out_of_memory",
]

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Protocol:
    """A training recipe: SGD with a cosine learning-rate schedule.

    The defaults are NAS-Bench-201's CIFAR-10 recipe (200 epochs, batch 256,
    SGD lr 0.1 with Nesterov momentum 0.9, weight decay 5e-4, cosine to 0) and
    its network size (``C=16`` channels, ``N=5`` cells per stage).

    ``device="auto"`` picks CUDA when available.  ``channels_last=None`` means
    "on" (it is faster on CPU and with CUDA convolutions).  ``amp`` is ``None``
    (float32), ``"bf16"`` or ``"fp16"`` (fp16 uses a gradient scaler on CUDA).
    ``augment`` applies the dataset's augmentation (random crop + flip).
    """

    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_min: float = 0.0
    C: int = 16
    N: int = 5
    device: str = "auto"
    channels_last: bool | None = None
    amp: str | None = None
    augment: bool = True
    eval_batch_size: int = 1000

    def __post_init__(self):
        for name in ("epochs", "batch_size", "C", "N", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Protocol.{name} must be a positive integer, got {v!r}")
        for name in ("lr", "momentum", "weight_decay", "lr_min"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"Protocol.{name} must be a finite non-negative number, got {v!r}")
        if self.amp not in (None, *_AMP_DTYPES):
            raise ValueError(f"Protocol.amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("Protocol.nesterov=True needs momentum > 0")
        _parse_device(self.device)  # the name only: availability is checked when training starts

    @property
    def size(self) -> dict[str, int]:
        """Network-size keyword arguments for ``space.build``."""
        return {"C": self.C, "N": self.N}

    def replace(self, **changes) -> Protocol:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protocol:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown Protocol field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


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
        return space.build(arch, data.num_classes, in_channels=data.in_channels, **protocol.size)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` reports running out of memory: CUDA OOM, ``MemoryError``, or torch's CPU
    allocator failing (``RuntimeError: ... can't allocate memory``, e.g. under a ``RLIMIT_AS`` cap)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _autocast(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[amp])


def _use_channels_last(protocol: Protocol) -> bool:
    return True if protocol.channels_last is None else protocol.channels_last


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, protocol: Protocol,
             device: torch.device | None = None) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` (eval mode) on ``(x, y)``."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    cl = _use_channels_last(protocol)
    try:
        for i in range(0, len(x), protocol.eval_batch_size):
            xb = x[i:i + protocol.eval_batch_size].to(device, non_blocking=True)
            yb = y[i:i + protocol.eval_batch_size].to(device, non_blocking=True)
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with _autocast(device, protocol.amp):
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
    schedule then spans ``B * protocol.epochs`` steps.

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
    """
    epochs = protocol.epochs if epochs is None else epochs
    if not isinstance(epochs, int) or not 1 <= epochs <= protocol.epochs:
        raise ValueError(
            f"epochs must be an integer in [1, protocol.epochs={protocol.epochs}], got {epochs!r}"
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
    named = dict(model.named_parameters())
    frozen = set() if frozen is None else set(frozen)
    unknown = sorted(frozen - set(named))
    if unknown:
        raise ValueError(f"frozen names parameter(s) the model does not have: {unknown[:5]}"
                         f"{' ...' if len(unknown) > 5 else ''}; expected names from model.named_parameters()")
    trainable = [p for name, p in named.items() if name not in frozen]
    if not trainable:
        raise ValueError("frozen covers every parameter of the model; nothing would be trained")
    device = resolve_device(protocol.device)
    data = data.to(device)
    cl = _use_channels_last(protocol)
    model.to(device)
    if cl:
        model.to(memory_format=torch.channels_last)
    model.train()

    n = data.n_train
    bs = protocol.batch_size
    chunked = steps_per_epoch is not None
    if chunked:
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be a positive integer or None, got {steps_per_epoch!r}")
    else:
        steps_per_epoch = math.ceil(n / bs)
    opt = torch.optim.SGD(
        trainable, lr=protocol.lr, momentum=protocol.momentum,
        nesterov=protocol.nesterov, weight_decay=protocol.weight_decay,
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=steps_per_epoch * protocol.epochs, eta_min=protocol.lr_min
    )
    scaler = torch.amp.GradScaler(device.type) if (protocol.amp == "fp16" and device.type == "cuda") else None
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    do_val = validate and data.n_val > 0

    rec: dict[str, list] = {k: [] for k in ("minibatch_losses", "train_loss", "train_acc",
                                          "val_loss", "val_acc", "epoch_seconds")}

    info: dict[str, Any] = {"device": str(device), "amp": protocol.amp, "batch_size": bs,
                            "steps_per_epoch": steps_per_epoch}
    if frozen:
        info["frozen_parameters"] = len(frozen)
    stream = torch.empty(0, dtype=torch.long, device=device)  # chunked epochs: the rest of the current permutation
    stopping = stop_at_train_acc is not None or max_seconds is not None
    if stopping:  # per-step correct counts / batch sizes of the last epoch's worth of steps (a ring)
        ring_correct = torch.zeros(steps_per_epoch, device=device, dtype=torch.long)
        ring_size = torch.zeros(steps_per_epoch, device=device, dtype=torch.long)
    train_seconds = 0.0
    global_step = 0
    stopped: dict[str, Any] | None = None

    def check(t_epoch: float) -> dict[str, Any] | None:
        seconds = train_seconds + time.perf_counter() - t_epoch
        acc = float(ring_correct.sum()) / max(int(ring_size.sum()), 1)  # one host sync per check
        reason = None
        if stop_at_train_acc is not None and acc >= stop_at_train_acc:
            reason = "train-acc"
        elif max_seconds is not None and seconds > max_seconds:
            reason = "time-limit"
        if reason is None:
            return None
        return {"reason": reason, "steps": global_step, "epochs": global_step / steps_per_epoch,
                "seconds": seconds, "train_acc": acc}

    def curve() -> LearningCurve:
        return LearningCurve(**{k: v for k, v in rec.items() if k != "train_loss"}, info=dict(info))

    requires_grad = {name: p.requires_grad for name, p in named.items()}
    for name in frozen:
        named[name].requires_grad_(False)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="train", leave=False, unit="ep")
    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            losses = torch.empty(steps_per_epoch, device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            if chunked:
                parts = [stream]
                need = steps_per_epoch * bs - len(stream)
                while need > 0:
                    parts.append(torch.randperm(n, generator=gen).to(device))
                    need -= n
                perm = torch.cat(parts)
                stream = perm[steps_per_epoch * bs:]
                full = steps_per_epoch * bs
            else:
                perm = torch.randperm(n, generator=gen).to(device)
                full = n
            steps_done = 0
            for step in range(steps_per_epoch):
                idx = perm[step * bs:(step + 1) * bs]
                xb, yb = data.x_train[idx], data.y_train[idx]
                if protocol.augment and (data.crop_padding or data.flip):
                    xb = augment_batch(xb, gen, padding=data.crop_padding, flip=data.flip)
                if cl:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with _autocast(device, protocol.amp):
                    out = model(xb)
                    loss = F.cross_entropy(out.float(), yb)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                sched.step()
                losses[step] = loss.detach()
                step_correct = (out.detach().argmax(1) == yb).sum()
                correct += step_correct
                steps_done = step + 1
                global_step += 1
                if stopping:
                    ring_correct[global_step % steps_per_epoch] = step_correct
                    ring_size[global_step % steps_per_epoch] = len(yb)
                    if global_step % check_every == 0 or steps_done == steps_per_epoch:
                        stopped = check(t0)
                        if stopped is not None:
                            break
            mb = losses[:steps_done].tolist()  # one host sync per epoch
            rec["minibatch_losses"].append(mb)
            seen = full if steps_done == steps_per_epoch else min(steps_done * bs, full)
            rec["train_acc"].append(float(correct) / seen)
            if not all(map(math.isfinite, mb)):
                rec["epoch_seconds"].append(time.perf_counter() - t0)
                if do_val:
                    rec["val_loss"].append(math.nan)
                    rec["val_acc"].append(0.0)
                raise TrainingDiverged(f"training loss became non-finite in epoch {epoch + 1}", curve())
            train_seconds += time.perf_counter() - t0
            if do_val:
                vl, va = evaluate(model, data.x_val, data.y_val, protocol, device)
                rec["val_loss"].append(vl)
                rec["val_acc"].append(va)
            rec["epoch_seconds"].append(time.perf_counter() - t0)
            if stopped is not None:
                info["stopped"] = stopped
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sum(mb) / len(mb):.3f}")
            if on_epoch is not None:
                on_epoch(epoch + 1, curve())
            if stopped is not None:
                break
    except TrainingFailed:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            if device.type == "cuda":
                torch.cuda.empty_cache()
            raise TrainingOutOfMemory(f"out of memory in epoch {len(rec['epoch_seconds']) + 1}: {exc}",
                                      _complete_epochs(rec, info)) from exc
        raise
    finally:
        for name, flag in requires_grad.items():
            named[name].requires_grad_(flag)
        if bar is not None:
            bar.close()
    return curve()


def _complete_epochs(rec: dict[str, list], info: dict) -> LearningCurve:
    k = len(rec["epoch_seconds"])
    return LearningCurve(**{name: v[:k] for name, v in rec.items() if name != "train_loss"}, info=dict(info))
