"""Final training and export: one architecture trained with the full protocol, checkpointed every epoch.

:func:`train_final` builds the network of one architecture, trains it for
``schedule_epochs`` epochs (the whole cosine schedule: the protocol's
``schedule_epochs``) with the engine's one training loop (:func:`nas_engine.training.train`),
evaluates the test split (and the validation split, when the data has one)
after every epoch, and checkpoints everything after every epoch into its
output directory ``out``:

``out/checkpoint.pt`` (+ ``checkpoint.pt.json``, its manifest)
    written by :func:`nas_engine.safeload.save_checkpoint` (atomic, sha256 in
    the manifest, weights-only): the training state of
    :func:`~nas_engine.training.train`'s ``on_state`` (model, optimiser,
    schedule, gradient scaler, the data-order generator, torch's global CPU
    and CUDA RNG states, the curve so far) plus the test results per epoch.
    Its fingerprint (:func:`fingerprint`) is the architecture, the space's
    configuration, the data's fingerprint, the protocol, the seed and the
    execution (torch threads, device type).  The same call on the same
    ``out`` resumes after the last checkpointed epoch -- on CPU with the same
    thread count to bit-identical final weights -- and a finished one is not
    trained again (its files are written again); a different configuration is
    refused with a one-line ``ValueError`` naming the differing keys.
``out/model.pt``
    the trained network as plain data that ``torch.load(weights_only=True)``
    reads: ``state_dict`` (CPU tensors) with ``arch`` (the architecture
    string), ``space`` (``space.to_config()``), ``num_classes``,
    ``in_channels``, ``resolution``, ``size`` (the ``space.build`` size
    arguments) and the data normalisation ``mean`` / ``std``.
    :func:`load_model` rebuilds the network from it through the space.
``out/model.pt2``
    a :func:`torch.export.export` program (:func:`torch.export.save`) that
    runs without nas-engine: ``torch.export.load(path).module()(x)``.  It
    **includes the normalisation** (:class:`Normalized`): ``x`` is a float32
    NCHW batch of images scaled to [0, 1] (the dataset's raw pixel scale:
    8-bit images divided by 255) at the training resolution, any batch size;
    it returns the logits.  The export is checked before it is written: its
    outputs on test images must equal the eager network's (``export_check``
    in the summary).  When the export fails (a space whose network
    ``torch.export`` cannot trace), training still counts: ``model.pt`` and
    the summary are written and the summary names the error.
``out/summary.json``
    the architecture, space, data, protocol, seed, epochs, per-epoch train
    loss / train accuracy / validation accuracy / test accuracy, the final
    test accuracy, training seconds (over all sessions) and the files.
``out/run.lock``
    the writer lock (:data:`LOCK`, the protocol of a store's lock,
    :class:`~nas_engine.files.DirectoryLock`), held from before ``out`` is read
    until the last file is written: a second training (or search) into the same
    ``out`` is refused with a one-line ``ValueError`` naming the holder's pid,
    host and start time; the lock of a killed process is released by the
    kernel and taken over.  A link or FIFO named ``run.lock`` is refused.

Every file is written under a fresh name made exclusively beside it and
renamed into place (:func:`nas_engine.files.atomic_write`): a symbolic link
planted under a file's name (or its old ``.tmp`` name) is replaced, never
written through.

Why ``torch.export`` and not TorchScript: TorchScript (``torch.jit``) is
deprecated in the torch this engine targets, and the NB201 network exports
with ``torch.export`` as it is (no code changes), with a dynamic batch size,
outputs equal to the eager network's.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .curves import LearningCurve
from .data import Dataset
from .files import DirectoryLock, DirectoryLockedError, atomic_write, describe_holder
from .safeload import load_checkpoint, manifest_path, save_checkpoint
from .spaces.base import Architecture, SearchSpace
from .threads import check_threads, torch_threads
from .training import Protocol, build_model, evaluate, resolve_device, train

__all__ = ["train_final", "build_network", "load_model", "fingerprint", "Normalized", "FinalTraining",
           "CHECKPOINT", "MODEL", "EXPORT", "SUMMARY", "LOCK"]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
EXPORT = "model.pt2"
SUMMARY = "summary.json"
#: the writer lock of the output directory (the same file and protocol as a store's ``run.lock``)
LOCK = "run.lock"

_CHECKPOINT_FORMAT = "nas-engine final training"
_MODEL_FORMAT = "nas-engine model"
_VERSION = 1


class Normalized(nn.Module):
    """``net`` behind the data normalisation: ``forward(x) = net((x - mean) / std)``, ``x`` in [0, 1]."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


@dataclass
class FinalTraining:
    """What :func:`train_final` produced.

    ``model`` is the trained network (CPU, eval mode, without the
    normalisation: it takes normalised images like the ``Dataset``'s);
    ``curve`` the training curve of every epoch (earlier sessions included);
    ``test_acc`` / ``test_loss`` per epoch (empty without a test split);
    ``seconds`` the training and evaluation time over all sessions;
    ``resumed_from`` the epochs done before this call (0 for a fresh start);
    ``files`` the written files by role (``checkpoint``, ``model``,
    ``export`` unless the export failed, ``summary``); ``export_error`` why
    the export failed (None when it did not).
    """

    arch: Architecture
    model: nn.Module
    epochs: int
    curve: LearningCurve
    test_acc: list[float]
    test_loss: list[float]
    seconds: float
    resumed_from: int
    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    export_error: str | None = None

    @property
    def final_test_acc(self) -> float | None:
        """The test accuracy after the last epoch (None without a test split)."""
        return self.test_acc[-1] if self.test_acc else None

    def __repr__(self) -> str:
        acc = "n/a" if self.final_test_acc is None else f"{self.final_test_acc:.4f}"
        return f"FinalTraining({self.arch.string!r}, epochs={self.epochs}, test_acc={acc}, out={str(self.out)!r})"


def _space(space) -> SearchSpace:
    """A space from an instance, a registered name or a ``to_config()`` dict."""
    if isinstance(space, SearchSpace):
        return space
    from .registry import from_config, spaces

    if isinstance(space, str):
        return spaces.create(space)
    if isinstance(space, dict):
        return from_config("space", space)
    raise TypeError(f"space must be a SearchSpace, a registered space name or a space config dict, "
                    f"got {type(space).__name__}: {space!r}")


def _arch(space: SearchSpace, arch) -> Architecture:
    if isinstance(arch, str):
        return space.from_string(arch)
    space.check_architecture(arch)
    return arch


def _protocol(protocol: Protocol | None, schedule_epochs: int | None) -> Protocol:
    protocol = Protocol() if protocol is None else protocol
    if not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a Protocol or None, got {type(protocol).__name__}")
    if schedule_epochs is None:
        return protocol
    if isinstance(schedule_epochs, bool) or not isinstance(schedule_epochs, int) or schedule_epochs < 1:
        raise ValueError(f"schedule_epochs must be a positive integer, got {schedule_epochs!r}")
    return protocol.replace(schedule_epochs=schedule_epochs)


def build_network(space, arch, data: Dataset, protocol: Protocol | None = None, *, seed: int = 0) -> nn.Module:
    """The freshly initialised network of ``arch`` for ``data``'s classes and channels at ``protocol``'s size
    (default :class:`~nas_engine.training.Protocol`'s: NB201's C=16, N=5), initialised from ``seed``: the
    network :func:`train_final` starts from."""
    space = _space(space)
    return build_model(space, _arch(space, arch), data, _protocol(protocol, None), seed)


def fingerprint(space, arch, data: Dataset, protocol: Protocol, seed: int, *, threads: int | None = None
                ) -> dict[str, Any]:
    """What a final training is, as its checkpoint records it (JSON): a resumed run must match it."""
    space = _space(space)
    threads = torch.get_num_threads() if threads is None else threads
    return {
        "kind": "final-training", "arch": _arch(space, arch).string, "space": space.to_config(),
        "data": data.fingerprint(), "num_classes": int(data.num_classes),
        "protocol": {k: v for k, v in protocol.to_dict().items() if k != "device"}, "seed": int(seed),
        "execution": {"threads": int(threads), "device": resolve_device(protocol.device).type},
    }


def _format_epoch(r: dict[str, Any]) -> str:
    parts = [f"epoch {r['epoch']:>{len(str(r['epochs']))}}/{r['epochs']}", f"loss {r['train_loss']:.4f}",
             f"train {r['train_acc']:.4f}"]
    if r["val_acc"] is not None:
        parts.append(f"val {r['val_acc']:.4f}")
    if r["test_acc"] is not None:
        parts.append(f"test {r['test_acc']:.4f}")
    parts.append(f"{r['seconds']:.1f} s")
    return "  ".join(parts)


def _progress(progress) -> Callable[[str], None] | None:
    if progress is True:
        return lambda line: print(line, flush=True)
    if progress is False or progress is None:
        return None
    if callable(progress):
        return progress
    raise TypeError(f"progress must be True, False or a callable taking a line of text, got {progress!r}")


def train_final(
    space,
    arch,
    data: Dataset,
    protocol: Protocol | None = None,
    *,
    schedule_epochs: int | None = None,
    out: str | os.PathLike[str],
    seed: int = 0,
    threads: int | None = None,
    progress: bool | Callable[[str], None] = True,
) -> FinalTraining:
    """Train ``arch`` of ``space`` on ``data`` for a whole schedule, checkpointing into ``out``; export it.

    ``space``: a :class:`~nas_engine.spaces.base.SearchSpace`, a registered
    name (``"nb201"``) or a ``to_config()`` dict; ``arch`` an
    :class:`~nas_engine.spaces.base.Architecture` of it or its string.
    ``protocol`` is the recipe and network size (default
    :class:`~nas_engine.training.Protocol`: NB201's recipe at the space's
    benchmark size); ``schedule_epochs`` (default the protocol's) replaces the
    protocol's ``schedule_epochs``: the cosine schedule is trained to its end.
    ``seed`` initialises the network (:func:`build_network`) and fixes the data order and augmentation.
    ``threads``: torch's intra-op threads for the run (default: the current
    setting); they change float results, so they are part of the checkpoint's
    fingerprint.  ``progress``: ``True`` prints one line per epoch, a callable
    receives those lines, ``False`` is quiet.

    See the module docstring for the files written to ``out``, resuming and
    refusals.  Raises :class:`~nas_engine.training.TrainingFailed` (diverged,
    out of memory) with the checkpoint of the last good epoch left in ``out``.
    """
    space = _space(space)
    arch = _arch(space, arch)
    protocol = _protocol(protocol, schedule_epochs).resolved(space)
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a nas_engine Dataset (load_dataset(...)), got {type(data).__name__}")
    if threads is not None:
        check_threads(threads, "threads")
    say = _progress(progress)
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():  # Path("") is the current directory
        raise ValueError(f"train_final: out must be a directory path, got {out!r}")
    out = Path(out)
    lock = _lock(out)
    try:
        with torch_threads(threads), torch.random.fork_rng(
                devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
            torch.manual_seed(seed)
            return _FinalRun(space, arch, data, protocol, out, seed, say).run()
    finally:
        lock.release()


def _lock(out: Path) -> DirectoryLock:
    """Become ``out``'s one writer (the store's lock: :class:`~nas_engine.files.DirectoryLock` on ``run.lock``),
    or a one-line ``ValueError`` naming the holder.  A killed holder's lock is released by the kernel."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{out}: cannot create the output directory ({exc.strerror or exc})") from None
    lock = DirectoryLock(out, LOCK)
    try:
        lock.acquire()
    except DirectoryLockedError as exc:
        where = "in this process" if exc.here else f"({describe_holder(exc.holder)})"
        raise ValueError(f"{out}: the output directory is in use by another final training or search {where}; "
                         "wait for it to finish or stop it, or use another output directory") from None
    except OSError as exc:
        raise ValueError(f"{out}: cannot open its lock file {LOCK} for writing ({exc.strerror or exc})") from None
    return lock


class _FinalRun:
    """One session of :func:`train_final` (a fresh start or a resume)."""

    def __init__(self, space: SearchSpace, arch: Architecture, data: Dataset, protocol: Protocol, out: Path,
                 seed: int, say: Callable[[str], None] | None):
        self.space, self.arch, self.data, self.protocol, self.out, self.seed, self.say = (
            space, arch, data, protocol, out, seed, say)
        self.fingerprint = fingerprint(space, arch, data, protocol, seed)
        self.path = out / CHECKPOINT
        self.test_loss: list[float] = []
        self.test_acc: list[float] = []
        self.test_seconds: list[float] = []
        self.sessions = 1

    def load(self) -> dict[str, Any] | None:
        """The training state to resume from, or None for a fresh start (checks what ``out`` holds)."""
        if not (self.path.exists() or manifest_path(self.path).exists()):
            ours = [name for name in (MODEL, EXPORT, SUMMARY) if (self.out / name).exists()]
            if ours:
                raise ValueError(f"{self.out}: holds {', '.join(ours)} of a final training but no {CHECKPOINT} "
                                 f"to check or resume it against; use another out directory (or delete it)")
            return None
        ckpt = load_checkpoint(self.path, fingerprint=self.fingerprint, map_location="cpu",
                               made_for="this final training", remedy="use another out directory (or delete it)")
        if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT or ckpt.get("version") != _VERSION:
            raise ValueError(f"{self.path}: not a final-training checkpoint of this version "
                             f"(expected format {_CHECKPOINT_FORMAT!r} version {_VERSION})")
        self.test_loss = [float(v) for v in ckpt["test_loss"]]
        self.test_acc = [float(v) for v in ckpt["test_acc"]]
        self.test_seconds = [float(v) for v in ckpt["test_seconds"]]
        self.sessions = int(ckpt["sessions"]) + 1
        return ckpt["training"]

    def checkpoint(self, epoch: int, state: dict[str, Any]) -> None:
        """``train``'s ``on_state``: evaluate the test split, save the checkpoint, report the epoch."""
        t0 = time.perf_counter()
        if self.data.x_test is not None and self.data.n_test > 0:
            loss, acc = evaluate(self.model, self.data.x_test, self.data.y_test, self.protocol)
            self.test_loss.append(loss)
            self.test_acc.append(acc)
        self.test_seconds.append(time.perf_counter() - t0)
        save_checkpoint(self.path, {"format": _CHECKPOINT_FORMAT, "version": _VERSION, "training": state,
                                    "test_loss": list(self.test_loss), "test_acc": list(self.test_acc),
                                    "test_seconds": list(self.test_seconds), "sessions": self.sessions},
                        fingerprint=self.fingerprint)
        if self.say is not None:
            rec = state["records"]
            losses = rec["minibatch_losses"][-1]
            self.say(_format_epoch({
                "epoch": epoch, "epochs": self.protocol.schedule_epochs,
                "train_loss": sum(losses) / max(len(losses), 1),
                "train_acc": rec["train_acc"][-1], "val_acc": rec["val_acc"][-1] if rec["val_acc"] else None,
                "test_acc": self.test_acc[-1] if self.test_acc else None,
                "seconds": rec["epoch_seconds"][-1] + self.test_seconds[-1]}))

    def run(self) -> FinalTraining:
        resume = self.load()
        done = 0 if resume is None else int(resume["epochs"])
        self.model = build_model(self.space, self.arch, self.data, self.protocol, self.seed)
        if self.say is not None:
            if done >= self.protocol.schedule_epochs:
                self.say(f"{self.path} holds the finished training ({done} epochs); writing its files again")
            elif done:
                self.say(f"resuming from epoch {done}/{self.protocol.schedule_epochs} ({self.path})")
        curve = train(self.model, self.data, self.protocol, epochs=self.protocol.schedule_epochs, seed=self.seed,
                      resume=resume, on_state=self.checkpoint)
        net = self._cpu_network()
        files = {"checkpoint": self.path, "model": self.out / MODEL}
        atomic_write(self.out / MODEL, _torch_bytes(self.model_file(net)))
        export_error, check = None, None
        try:
            blob, check = _export(net, self.data)
            atomic_write(self.out / EXPORT, blob)
            files["export"] = self.out / EXPORT
        except Exception as exc:  # noqa: BLE001 - a network torch.export cannot trace: training still counts
            export_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            with contextlib.suppress(FileNotFoundError):
                (self.out / EXPORT).unlink()  # never leave an export of other weights beside this model
        files["summary"] = self.out / SUMMARY
        seconds = math.fsum([*curve.epoch_seconds, *self.test_seconds])
        atomic_write(files["summary"], (json.dumps(self.summary(curve, seconds, done, files, check, export_error),
                                                    indent=1, allow_nan=False) + "\n").encode())
        return FinalTraining(arch=self.arch, model=net, epochs=self.protocol.schedule_epochs, curve=curve,
                             test_acc=list(self.test_acc), test_loss=list(self.test_loss), seconds=seconds,
                             resumed_from=done, out=self.out, files=files, export_error=export_error)

    def _cpu_network(self) -> nn.Module:
        """The trained network rebuilt through the space on the CPU (contiguous format, eval mode)."""
        net = self.space.build(self.arch, self.data.num_classes, in_channels=self.data.in_channels,
                               **self.protocol.size_for(self.space))
        net.load_state_dict({k: v.detach().cpu() for k, v in self.model.state_dict().items()})
        return net.eval()

    def model_file(self, net: nn.Module) -> dict[str, Any]:
        return {
            "format": _MODEL_FORMAT, "version": _VERSION,
            "state_dict": {k: v.contiguous() for k, v in net.state_dict().items()},
            "arch": self.arch.string, "space": self.space.to_config(), "num_classes": int(self.data.num_classes),
            "in_channels": int(self.data.in_channels), "resolution": int(self.data.resolution),
            "size": dict(self.protocol.size), "mean": [float(v) for v in self.data.mean],
            "std": [float(v) for v in self.data.std], "data": self.data.fingerprint(),
            "input": "float32 NCHW images scaled to [0, 1]; normalise with (x - mean) / std before the network",
        }

    def summary(self, curve: LearningCurve, seconds: float, resumed_from: int, files: dict[str, Path],
                check: float | None, export_error: str | None) -> dict[str, Any]:
        def finite(values):
            return [v if math.isfinite(v) else None for v in values]

        return {
            "arch": self.arch.string, "space": self.space.to_config(), "data": self.data.fingerprint(),
            "protocol": self.protocol.to_dict(), "seed": self.seed, "epochs": self.protocol.schedule_epochs,
            "execution": self.fingerprint["execution"],
            "train_loss": finite(curve.train_loss),
            "train_acc": finite(curve.train_acc),
            "val_acc": finite(curve.val_acc) if curve.val_acc else None,
            "test_acc": finite(self.test_acc) if self.test_acc else None,
            "final_test_acc": self.test_acc[-1] if self.test_acc else None,
            "final_val_acc": curve.val_acc[-1] if curve.val_acc else None,
            "seconds": seconds, "sessions": self.sessions, "resumed_from_epoch": resumed_from,
            "params": sum(p.numel() for p in self.model.parameters()),
            "input": {"channels": int(self.data.in_channels), "resolution": int(self.data.resolution),
                      "range": [0.0, 1.0], "mean": [float(v) for v in self.data.mean],
                      "std": [float(v) for v in self.data.std],
                      "normalisation": "inside model.pt2; applied by the caller for model.pt's state dict"},
            "num_classes": int(self.data.num_classes),
            "export": {"format": "torch.export", "file": EXPORT, "max_abs_diff": check} if export_error is None
            else {"format": "torch.export", "error": export_error},
            "files": {role: path.name for role, path in files.items()},
        }


def _export(net: nn.Module, data: Dataset) -> tuple[bytes, float]:
    """``torch.export`` of ``Normalized(net)`` (dynamic batch size) as bytes, and the largest absolute
    difference between the saved-and-loaded program's outputs and the eager module's on test images."""
    wrapper = Normalized(net, data.mean, data.std).eval()
    example = torch.zeros(2, data.in_channels, data.resolution, data.resolution)  # no user data in the file
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(wrapper, (example,), dynamic_shapes={"x": {0: batch}})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    blob = buffer.getvalue()
    loaded = torch.export.load(io.BytesIO(blob)).module()  # the bytes written: read back from memory only
    x = data.x_test if data.x_test is not None and data.n_test else data.x_train
    x = x[:64].cpu() * wrapper.std + wrapper.mean  # back to [0, 1] images
    with torch.no_grad():
        want, got = wrapper(x), loaded(x)
    diff = float((want - got).abs().max())
    if not diff <= 1e-4 * max(1.0, float(want.abs().max())):
        raise RuntimeError(f"the exported program's outputs differ from the network's by {diff:.3g}")
    return blob, diff


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def load_model(path: str | os.PathLike[str], *, normalize: bool = True) -> nn.Module:
    """The network :func:`train_final` wrote to ``path`` (``out/model.pt``), rebuilt through its space.

    Read with ``torch.load(weights_only=True)``; the space is created from
    the stored configuration (a registered space), the network built at the
    stored size and loaded with the stored weights (CPU, eval mode).  With
    ``normalize`` (default) it is wrapped in :class:`Normalized` and takes
    [0, 1] images like ``model.pt2``; without, it takes normalised images.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable model file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(obj, dict) or obj.get("format") != _MODEL_FORMAT or obj.get("version") != _VERSION:
        raise ValueError(f"{path}: not a nas-engine model file (expected format {_MODEL_FORMAT!r} "
                         f"version {_VERSION})")
    space = _space(obj["space"])
    net = space.build(space.from_string(obj["arch"]), int(obj["num_classes"]),
                      in_channels=int(obj["in_channels"]), **obj["size"])
    net.load_state_dict(obj["state_dict"])
    net.eval()
    return Normalized(net, obj["mean"], obj["std"]).eval() if normalize else net
