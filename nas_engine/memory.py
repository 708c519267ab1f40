"""A memory estimate of one candidate's training, and the memory this process may still use.

:func:`estimate_memory` sizes one candidate without training it: the
network is built and run forward on one image, and forward hooks sum the
outputs of its modules (what autograd keeps for the backward pass), times the
protocol's batch size.  (The ``meta`` device would avoid even that, but its
first use imports 4 s of torch's decompositions; the one-image pass costs
milliseconds.)  With the parameters, their gradients and the
optimiser's buffers, and the dataset's tensors, that is the memory of one
evaluation; :func:`available_memory` (from :mod:`nas_engine.threads`, with
what else this process may use) is what the system lets it use
(``/proc/meminfo``'s ``MemAvailable``, capped by the cgroup's ``memory.max``).
The search checks them before it starts (see :mod:`nas_engine.search`), and ``nas-engine`` checks the input minibatch at
``--resolution`` before it loads data (:func:`check_input_memory`): an
impossible configuration is refused in one line with the numbers instead of
reaching the allocator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .threads import available_memory, format_bytes

__all__ = ["MemoryEstimate", "estimate_memory", "available_memory", "check_memory", "check_input_memory",
           "search_memory", "format_bytes", "InsufficientMemory"]


class InsufficientMemory(ValueError):
    """A configuration needs more memory than this process may use (one line, with the numbers)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory of one candidate's training, in bytes.

    ``parameters``: its weights; ``training_state``: their gradients and the
    optimiser's buffers (SGD's momentum); ``activations``: the outputs of its
    modules for one training minibatch, the input included (``None`` when the
    network cannot run on one image); ``data``: the dataset's tensors.
    """

    parameters: int
    training_state: int
    activations: int | None
    data: int

    @property
    def candidate(self) -> int:
        """The memory of the candidate itself (without the data)."""
        return self.parameters + self.training_state + (self.activations or 0)

    @property
    def total(self) -> int:
        return self.candidate + self.data

    def describe(self) -> str:
        act = "unknown" if self.activations is None else format_bytes(self.activations)
        return (f"parameters {format_bytes(self.parameters)}, gradients and optimiser state "
                f"{format_bytes(self.training_state)}, activations {act}, data {format_bytes(self.data)}")


def _tensor_bytes(t: Any) -> int:
    return 0 if t is None else int(t.numel()) * int(t.element_size())


def _output_bytes(out: Any) -> int:
    import torch

    if isinstance(out, torch.Tensor):
        return _tensor_bytes(out)
    if isinstance(out, (list, tuple)):
        return sum(_output_bytes(o) for o in out)
    if isinstance(out, dict):
        return sum(_output_bytes(o) for o in out.values())
    return 0


#: the largest resolution at which :func:`estimate_memory` runs its one-image forward pass; above it, the
#: activations are measured at this resolution and scaled by the area
MEASURE_RESOLUTION = 64


def estimate_memory(space, arch, data, protocol) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of training ``arch`` of ``space`` on ``data`` with ``protocol``.

    The network is built (its parameters are small) and run forward on one
    zero image in evaluation mode, without gradients; forward hooks sum the
    outputs of its leaf modules, which, times the batch size, are the
    activations autograd keeps for one training minibatch.  Exact in the batch
    size; at resolutions above :data:`MEASURE_RESOLUTION` the image is that
    size and the activations are scaled by the area (convolutional networks
    with global pooling, as every space of the engine builds).  Nothing of the
    dataset's size is allocated.
    """
    import torch

    from .threads import torch_threads
    from .training import build_model

    data_bytes = sum(_tensor_bytes(getattr(data, name, None))
                     for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"))
    model = build_model(space, arch, data, protocol, 0)  # (on the CPU, whatever the protocol's device)
    params = sum(_tensor_bytes(p) for p in model.parameters()) + sum(_tensor_bytes(b) for b in model.buffers())
    buffers_per_param = 1 + (1 if getattr(protocol, "momentum", 0) else 0)  # the gradient, SGD's momentum
    state = buffers_per_param * sum(_tensor_bytes(p) for p in model.parameters() if p.requires_grad)
    channels, side = int(data.x_train.shape[1]), int(data.x_train.shape[-1])
    measured = min(side, MEASURE_RESOLUTION)
    total = [4 * channels * measured * measured]  # the float32 input
    hooks = [m.register_forward_hook(lambda _m, _i, out: total.append(_output_bytes(out)))
             for m in model.modules() if next(m.children(), None) is None]
    activations: int | None
    try:
        model.eval()
        with torch.no_grad(), torch_threads(1):  # one thread: 2 cost 7x as much for a pass this small
            model(torch.zeros(1, channels, measured, measured))
        activations = math.ceil(sum(total) * protocol.batch_size * (side / measured) ** 2)
    except Exception:  # noqa: BLE001 - a network that cannot run on one image: parameters and data only
        activations = None
    finally:
        for h in hooks:
            h.remove()
    return MemoryEstimate(params, state, activations, data_bytes)


def check_memory(need: int, what: str, available: int | None = None,
                 source: str = "of memory this process may use (MemAvailable, cgroup memory.max)") -> None:
    """Raise :class:`InsufficientMemory` (one line: ``what``, both numbers, ``source``) when ``need`` bytes
    exceed ``available`` (default :func:`available_memory`; nothing is checked where it is unknown)."""
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise InsufficientMemory(f"{what} needs about {format_bytes(need)}, more than the "
                                 f"{format_bytes(available)} {source}")


def check_input_memory(batch_size: int, resolution: int, channels: int = 1, images: int = 0,
                       available: int | None = None) -> None:
    """Check, before any data is loaded, the least that ``resolution`` costs: one float32 minibatch of
    ``batch_size`` images and ``images`` more (the dataset's, where its size is known) of ``channels``
    channels at ``resolution`` x ``resolution`` (the network's activations are larger still)."""
    n = batch_size + images
    need = 4 * n * channels * resolution * resolution
    what = (f"one minibatch of {batch_size} images" if not images
            else f"one minibatch of {batch_size} images and the {images} images of the dataset")
    check_memory(need, f"resolution {resolution}: {what} at {resolution}x{resolution} (float32, {channels} "
                       f"channel{'s' if channels > 1 else ''})", available)


def search_memory(estimate: MemoryEstimate, workers: int, processes: bool) -> int:
    """Bytes a search needs with ``workers`` candidates at once: in this process, the data and one
    candidate; in worker processes, the driver's data and per worker the candidate and its own copy of the
    data."""
    if not processes:
        return estimate.total
    return estimate.data + max(1, workers) * (estimate.candidate + estimate.data)
