"""Torch's intra-op thread count: :func:`torch_threads` sets it for a block.

A low-level helper (standard library only; torch is imported when it is
used), shared by the executors and by strategies that run torch themselves
(BO's GP fit); :mod:`nas_engine.executors` re-exports it.
"""

from __future__ import annotations

import contextlib

__all__ = ["torch_threads"]


def _set_torch_threads(n: int) -> int:
    """Set torch's intra-op threads to ``n``; return the previous setting."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    return before


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads, restored afterwards (``None``: leave them alone)."""
    if n is None:
        yield
        return
    before = _set_torch_threads(n)
    try:
        yield
    finally:
        _set_torch_threads(before)
