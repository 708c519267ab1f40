"""Network blocks that more than one space builds from; any space module may import this one.

Spaces import no other space's module (the ``spaces-independent`` contract in
setup.cfg): a block that two spaces need lives here instead of being written
twice.  A plugin author's space may use them too.  Each block keeps the
sub-module layout, and so the parameter and ``state_dict`` names, of the
spaces' reference code (the benchmarks' parameter counts and stored weights
depend on them); an op that a space builds differently stays in its module
(DARTS's ``SepConv`` / ``DilConv`` / ``FactorizedReduce``, NB101's
``ConvBnRelu``, the randomly wired nodes' ``SeparableConv``, NB201's ``Zero``).
"""

from __future__ import annotations

from torch import nn

__all__ = ["ReLUConvBN", "avg_pool_3x3", "max_pool_3x3"]


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d(k x k, no bias) -> BatchNorm2d: the ``ReLUConvBN`` of NAS-Bench-201 and of DARTS.

    ``padding`` defaults to ``kernel_size // 2`` (NB201's; DARTS passes it).
    ``affine`` / ``track_running_stats`` configure the BatchNorm (the
    benchmarks' networks: both on; the weight-sharing supernets: both off).
    Sub-modules ``0`` (ReLU), ``1`` (the conv: ``1.weight``) and ``2`` (the
    BatchNorm: ``2.weight``, ``2.bias``, running statistics).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int | None = None,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride,
                      padding=kernel_size // 2 if padding is None else padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


def avg_pool_3x3(stride: int = 1) -> nn.AvgPool2d:
    """The ``avg_pool_3x3`` op of NB201 and DARTS: 3x3 average pooling, padding 1, padded pixels not counted."""
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def max_pool_3x3(stride: int = 1) -> nn.MaxPool2d:
    """The ``max_pool_3x3`` (``maxpool3x3``) op of DARTS and NB101: 3x3 max pooling, padding 1 (PyTorch pads
    max-pooling with -inf, so the border is TensorFlow's 'same')."""
    return nn.MaxPool2d(3, stride=stride, padding=1)
