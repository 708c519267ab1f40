"""What a network costs: parameter counts and forward FLOPs.

Used by the zero-cost baselines (``params``, ``flops``), LcSVR's features and
the correlation harness (:mod:`nas_engine.correlate`, which re-exports these).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .spaces.base import Architecture, SearchSpace

__all__ = ["count_params", "count_flops", "model_costs"]


def count_params(model) -> int:
    """The number of parameters of ``model`` (every parameter, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model, x) -> int:
    """Forward FLOPs of ``model`` (eval mode, no gradients) on the input ``x``, by ``torch.utils.flop_counter``.

    Counted are the operations torch's counter knows (convolutions, matrix
    products; a multiply-add is 2 FLOPs); what a network does not execute (e.g.
    NB201 edges that cannot reach the cell output) is not counted.  ``model``'s
    train/eval mode is restored afterwards.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_costs(space: SearchSpace, archs: Sequence[Architecture | str], *, num_classes: int,
                in_channels: int, resolution: int, **size) -> dict[str, dict[str, float]]:
    """#params and forward FLOPs (one image, :func:`count_flops`) per architecture."""
    import torch

    out = {}
    x = torch.zeros(1, in_channels, resolution, resolution)
    for a in archs:
        a = space.from_string(a) if isinstance(a, str) else a
        model = space.build(a, num_classes, in_channels=in_channels, **size)
        out[a.string] = {"params": float(count_params(model)), "flops": float(count_flops(model, x))}
    return out
