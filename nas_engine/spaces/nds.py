"""The NDS design spaces ResNet, ResNeXt-A and ResNeXt-B for CIFAR (Radosavovic et al., ICCV 2019).

"On Network Design Spaces for Visual Recognition" (NDS) samples networks
from *design spaces* built on pycls' **AnyNet**: a stem, three stages of
residual blocks and a head.  Independently for each stage ``i`` a network
chooses its number of blocks ``d_i`` (depth) and its width ``w_i`` (output
channels of every block); ResNeXt networks also choose the stage's
bottleneck ratio ``b_i`` and number of groups ``g_i``.  NDS Table 1 writes
each range as ``a,b,n``: ``n`` values spaced about evenly in log space from
``a`` to ``b``, sampled uniformly; the values themselves are:

* ResNet: depth 1,24,9 (1 2 3 4 6 8 12 16 24), width 16,256,12
  (16 24 32 40 48 64 80 96 128 160 192 256);
* ResNeXt-A: depth 1,16,5 (1 2 4 8 16), width 16,256,5 (16 32 64 128 256),
  bottleneck ratio 1 2 4, groups 1 2 4;
* ResNeXt-B: depth 1,16,5 (1 2 4 8 16), width 64,1024,5 (64 128 256 512 1024),
  bottleneck ratio 1 2 4, groups 1 2 4 8 16.

(ResNet's 9 depths and 12 widths, and ResNeXt-A's values with the ratio as
pycls' multiplier ``bot_mul = 1 / b`` in ``[0.25, 0.5, 1]``, are also those
of aw_nas' ``nds_resnet`` / ``nds_resnexta`` supernets, the NDS spaces of
Ning et al.; ResNeXt-B's come from NDS Table 1 alone.)  The spaces hold
``108**3 = 1,259,712`` (ResNet), ``225**3 = 11,390,625`` (ResNeXt-A) and
``375**3 = 52,734,375`` (ResNeXt-B) networks (:attr:`NDSSpace.num_architectures`).

The network (:class:`NDSNetwork`, pycls ``AnyNet`` with the CIFAR settings of NDS)
---------------------------------------------------------------------------------
pycls' configuration at NDS time (``configs/cifar/anynet/R-56_nds_1gpu.yaml``
of the initial commit 996cb1d): stem ``res_stem_cifar`` with ``STEM_W: 16``
(3x3 conv, stride 1 -> BN -> ReLU), stage strides ``[1, 2, 2]``, head global
average pooling -> linear classifier (with bias).  Stage ``i`` has ``d_i``
blocks of width ``w_i``; its first block takes the previous width and the
stage's stride.  Blocks (pycls ``anynet.py``):

* ResNet -- ``res_basic_block``: ``relu(proj(x) + f(x))`` with ``f`` = 3x3 conv
  (stride) -> BN -> ReLU -> 3x3 conv -> BN;
* ResNeXt -- ``res_bottleneck_block``: ``f`` = 1x1 conv ``w_in -> w_b`` -> BN ->
  ReLU -> 3x3 conv ``w_b -> w_b`` (stride, ``g_i`` groups) -> BN -> ReLU -> 1x1
  conv ``w_b -> w_i`` -> BN, with the bottleneck width ``w_b = w_i / b_i``
  (pycls: ``int(round(w_out * bot_mul))``);

``proj`` is a 1x1 conv (stride) -> BN where the block changes the width or
the resolution, else the identity.  Convs have no bias; BatchNorm is torch's
default (eps 1e-5, momentum 0.1), which is pycls'; weights are initialised as
pycls' ``init_weights`` does (conv ``N(0, sqrt(2 / fan_out))``, BN 1 and 0,
linear ``N(0, 0.01)`` and bias 0).  Module names follow pycls' (``stem.conv``,
``s2.b1.proj``, ``s2.b1.f.a``, ``head.fc``), so a pycls ``state_dict`` loads.

Size
----
The architecture fixes every depth and width, so the protocol's size is a
**width multiplier** ``width`` (:attr:`NDSSpace.default_size`: 1.0, the NDS
network; ``"small"`` 0.25, ``"tiny"`` 0.125): the stem gets
``max(1, round(16 * width))`` channels, stage ``i`` ``w'_i = max(1,
round(w_i * width))``, and a bottleneck ``w'_b = max(g_i, g_i * round(w'_i /
(b_i * g_i)))`` (a multiple of the groups).  At ``width=1`` these are NDS's
widths exactly (every NDS width divides by ``b_i * g_i``).  Depths, strides,
ratios and groups do not change.

Strings, graphs, sampling, mutation, encoding
---------------------------------------------
Strings list the stage values, parameter by parameter: ``d=2,8,4/w=32,64,256``
(ResNet), ``d=1,4,2/w=16,64,256/b=1,2,4/g=4,1,2`` (ResNeXt; ``b`` the
bottleneck ratio, ``g`` the groups).  :meth:`NDSSpace.from_string` is strict
(``to_string(from_string(s)) == s``) and names the bad value in one line.
:meth:`NDSSpace.to_graph` is the stage chain ``stem -> s1 -> s2 -> s3 -> head``
(see there).  :meth:`NDSSpace.sample` draws every stage's values
independently and uniformly from the space's lists (log-uniform over each
range, as NDS samples); :meth:`NDSSpace.mutate` changes one value of one
stage to another of its list; :meth:`NDSSpace.encode` gives each value's
index in its list scaled to [0, 1].  :meth:`NDSSpace.to_pycls` /
:meth:`NDSSpace.from_pycls` convert to and from pycls' AnyNet arguments (the
``net`` entries of the NDS data files: ``ds``, ``ws``, ``ss``, ``bot_muls``,
``num_gs``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import torch
from torch import nn

from nas_engine.config import check_float, check_int
from nas_engine.registry import spaces
from nas_engine.spaces.base import Architecture, Encodable, Mutable, SearchSpace

__all__ = ["NDSSpec", "NDSSpace", "NDSResNetSpace", "NDSResNeXtASpace", "NDSResNeXtBSpace", "NDSNetwork",
           "ResBasicBlock", "ResBottleneckBlock", "STEM_WIDTH", "STRIDES", "stage_widths"]

#: the stem's width (pycls ``ANYNET.STEM_W`` in NDS's CIFAR configurations)
STEM_WIDTH = 16
#: the stages' strides (pycls ``ANYNET.STRIDES``)
STRIDES = (1, 2, 2)
#: the parameters of a stage, in the order of the string (``b`` and ``g`` only in ResNeXt spaces)
_KEYS = ("d", "w", "b", "g")
_NAMES = {"d": "depth", "w": "width", "b": "bottleneck ratio", "g": "groups"}
_INT = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class NDSSpec:
    """An architecture's values, stage by stage: ``depths``, ``widths`` and, in the ResNeXt spaces,
    ``ratios`` (bottleneck ratio ``b_i``: ``w_b = w_i / b_i``) and ``groups``; ``None`` in ResNet."""

    depths: tuple[int, int, int]
    widths: tuple[int, int, int]
    ratios: tuple[int, int, int] | None = None
    groups: tuple[int, int, int] | None = None

    def values(self) -> dict[str, tuple[int, ...]]:
        """``{"d": depths, "w": widths[, "b": ratios, "g": groups]}`` in the order of the string."""
        out = {"d": self.depths, "w": self.widths}
        if self.ratios is not None:
            out.update(b=self.ratios, g=self.groups)
        return out

    @property
    def string(self) -> str:
        return "/".join(f"{k}={','.join(map(str, v))}" for k, v in self.values().items())


def stage_widths(spec: NDSSpec, width: float = 1.0) -> tuple[int, list[int], list[int] | None]:
    """The channels of the network of ``spec`` at width multiplier ``width``: ``(stem, [w'_i], [w'_b,i])``
    (the bottleneck widths ``None`` for ResNet); see the module docstring for the rounding."""
    stem = max(1, int(round(STEM_WIDTH * width)))
    ws = [max(1, int(round(w * width))) for w in spec.widths]
    if spec.ratios is None:
        return stem, ws, None
    wbs = [max(g, g * int(round(w / (b * g)))) for w, b, g in zip(ws, spec.ratios, spec.groups)]
    return stem, ws, wbs


class NDSSpace(SearchSpace, Mutable, Encodable):
    """An NDS design space (see the module docstring); the three registered ones are its subclasses.

    Class attributes: ``block`` (pycls' block type), ``display`` (the paper's
    name), ``choices`` (each stage parameter's values, in increasing order).
    Size (:attr:`default_size`): the width multiplier ``width``, 1.0 the NDS
    network; ``"small"`` 0.25, ``"tiny"`` 0.125.
    """

    block: ClassVar[str] = ""
    display: ClassVar[str] = ""
    choices: ClassVar[dict[str, tuple[int, ...]]] = {}

    default_size = {"width": 1.0}
    named_sizes = {"small": {"width": 0.25}, "tiny": {"width": 0.125}}

    @property
    def resnext(self) -> bool:
        """True for the ResNeXt spaces (stages choose a bottleneck ratio and groups)."""
        return "b" in self.choices

    @property
    def keys(self) -> tuple[str, ...]:
        """The parameters of a stage, in the order of the string: ``d, w`` (ResNet), ``d, w, b, g`` (ResNeXt)."""
        return _KEYS if self.resnext else _KEYS[:2]

    @property
    def num_architectures(self) -> int:
        """The number of networks in the space: the product of the list lengths over the three stages."""
        return math.prod(len(self.choices[k]) for k in self.keys) ** 3

    def _example(self) -> str:
        return "'d=1,4,2/w=16,64,256/b=1,2,4/g=4,1,2'" if self.resnext else "'d=2,8,4/w=32,64,256'"

    # -- construction and text ---------------------------------------------------------------------
    def architecture(self, depths: Sequence[int], widths: Sequence[int], ratios: Sequence[int] | None = None,
                     groups: Sequence[int] | None = None) -> Architecture:
        """The architecture with these per-stage values (three each; ``ratios`` and ``groups`` in the
        ResNeXt spaces only).  Raises a one-line ``ValueError`` naming a value outside the space."""
        given = {"d": depths, "w": widths, "b": ratios, "g": groups}
        for key in _KEYS[2:]:
            if not self.resnext and given[key] is not None:
                raise ValueError(f"{self.display} stages have no {_NAMES[key]} (a ResNeXt parameter); got "
                                 f"{_NAMES[key]} {given[key]!r}")
        values: dict[str, tuple[int, ...]] = {}
        for key in self.keys:
            v = given[key]
            if v is None or isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) != 3:
                raise ValueError(f"{self.display}: {_NAMES[key]} must be three values (one per stage), got {v!r}")
            out = []
            for stage, x in enumerate(v, 1):
                if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or int(x) not in self.choices[key]:
                    raise ValueError(f"{_NAMES[key]} {x!r} of stage {stage} is not in the {self.display} design "
                                     f"space; its {_NAMES[key]} values: {', '.join(map(str, self.choices[key]))}")
                out.append(int(x))
            values[key] = tuple(out)
        spec = NDSSpec(values["d"], values["w"], values.get("b"), values.get("g"))
        return Architecture(self, spec, spec.string)

    def from_string(self, s: str) -> Architecture:
        """Parse ``d=2,8,4/w=32,64,256`` (ResNet) or ``d=1,4,2/w=16,64,256/b=1,2,4/g=4,1,2`` (ResNeXt).

        Strict (``to_string(from_string(s)) == s``): the parameters in this order,
        three plain decimal integers each, no spaces.  A malformed string or a
        value outside the space raises a one-line ``ValueError`` naming it (a
        non-``str`` argument raises ``TypeError``).
        """
        if not isinstance(s, str):
            raise TypeError(f"expected an {self.name} architecture string, got {type(s).__name__}: {s!r}")
        fields = [f.partition("=") for f in s.split("/")]
        keys = [k for k, _, _ in fields]
        if keys != list(self.keys) or not all(sep for _, sep, _ in fields):
            raise ValueError(f"{self.name} string must give {', '.join(k + '=...' for k in self.keys)} separated "
                             f"by '/', like {self._example()}, got {s!r}")
        values = {}
        for key, _, text in fields:
            items = text.split(",")
            if len(items) != 3:
                raise ValueError(f"{key}={text!r} in {s!r} must give three values (one per stage) separated by ','")
            for item in items:
                if not _INT.fullmatch(item):
                    raise ValueError(f"{_NAMES[key]} {item!r} in {s!r} must be a plain decimal integer (no sign, "
                                     f"spaces or leading zeros)")
            values[key] = [int(x) for x in items]
        try:
            return self.architecture(values["d"], values["w"], values.get("b"), values.get("g"))
        except ValueError as exc:
            raise ValueError(f"{exc} (in {s!r})") from None

    def spec(self, a: Architecture) -> NDSSpec:
        """``a``'s :class:`NDSSpec`."""
        self.check_architecture(a)
        return a.spec

    # -- pycls / NDS data ---------------------------------------------------------------------------
    def to_pycls(self, a: Architecture) -> dict[str, Any]:
        """pycls' AnyNet arguments of ``a`` at NDS's CIFAR settings (the form of the NDS data's ``net``):
        ``block_type``, ``stem_type``, ``stem_w``, ``ds``, ``ws``, ``ss``, ``bot_muls`` (``1 / b``) and
        ``num_gs`` (both ``[]`` for ResNet, as pycls' defaults)."""
        spec = self.spec(a)
        return {"block_type": self.block, "stem_type": "res_stem_cifar", "stem_w": STEM_WIDTH,
                "ds": list(spec.depths), "ws": list(spec.widths), "ss": list(STRIDES),
                "bot_muls": [1.0 / b for b in spec.ratios] if spec.ratios else [],
                "num_gs": list(spec.groups) if spec.groups else []}

    def from_pycls(self, net: Mapping[str, Any]) -> Architecture:
        """The architecture of pycls AnyNet arguments (an NDS data file's ``net`` entry): ``ds``, ``ws`` and,
        for ResNeXt, ``bot_muls`` and ``num_gs``.  Keys that fix the network (``block_type``, ``stem_type``,
        ``stem_w``, ``ss``) are checked when present; a bottleneck multiplier must be ``1 / b`` of a ratio."""
        if not isinstance(net, Mapping):
            raise ValueError(f"from_pycls expects a mapping of AnyNet arguments, got {type(net).__name__}")
        fixed = {"block_type": self.block, "stem_type": "res_stem_cifar", "stem_w": STEM_WIDTH, "ss": list(STRIDES)}
        for key, expected in fixed.items():
            if key in net and (list(net[key]) if key == "ss" else net[key]) != expected:
                raise ValueError(f"{self.display} networks have {key}={expected!r}, got {net[key]!r}")
        for key in ("ds", "ws"):
            if key not in net:
                raise ValueError(f"AnyNet arguments of {self.display} must give {key!r}; got keys {sorted(net)}")
        ratios = groups = None
        if self.resnext:
            bms, gs = net.get("bot_muls"), net.get("num_gs")
            if not bms or not gs:
                raise ValueError(f"AnyNet arguments of {self.display} must give 'bot_muls' and 'num_gs', got "
                                 f"{bms!r} and {gs!r}")
            ratios = []
            for bm in bms:
                b = round(1.0 / bm) if isinstance(bm, (int, float)) and bm > 0 else None
                if b is None or not math.isclose(bm * b, 1.0, rel_tol=1e-9):
                    raise ValueError(f"bot_mul {bm!r} is not 1 / b of a bottleneck ratio b")
                ratios.append(int(b))
            groups = list(gs)
        elif net.get("bot_muls") or net.get("num_gs"):
            if any(x != 1 for x in [*(net.get("bot_muls") or []), *(net.get("num_gs") or [])]):
                raise ValueError(f"{self.display} has no bottleneck multipliers or groups; got bot_muls="
                                 f"{net.get('bot_muls')!r}, num_gs={net.get('num_gs')!r}")
        return self.architecture(list(net["ds"]), list(net["ws"]), ratios, groups)

    # -- graphs -------------------------------------------------------------------------------------
    def to_graph(self, a: Architecture) -> nx.DiGraph:
        """The stage chain as a ``networkx.DiGraph``: node 0 the stem, nodes 1-3 the stages, node 4 the head;
        edges ``(i, i + 1)`` the feature maps between them.

        Node attributes: ``op`` (``res_stem_cifar``; the stages' block type,
        ``res_basic_block`` or ``res_bottleneck_block``; ``avgpool-fc`` for the
        head), ``width`` (output channels at width 1; the head's is ``None``),
        ``stride``; stages also ``depth`` (blocks) and, in ResNeXt,
        ``bottleneck_ratio`` and ``groups``.  Edge attribute ``channels``: the
        channels of the feature map (the source node's ``width``).
        """
        spec = self.spec(a)
        g = nx.DiGraph(arch=a.string, space=self.name)
        g.add_node(0, op="res_stem_cifar", width=STEM_WIDTH, stride=1)
        for i in range(3):
            attrs = {"op": self.block, "depth": spec.depths[i], "width": spec.widths[i], "stride": STRIDES[i]}
            if spec.ratios is not None:
                attrs.update(bottleneck_ratio=spec.ratios[i], groups=spec.groups[i])
            g.add_node(i + 1, **attrs)
        g.add_node(4, op="avgpool-fc", width=None, stride=1)
        for i in range(4):
            g.add_edge(i, i + 1, channels=g.nodes[i]["width"])
        return g

    # -- sampling, mutation, encoding ---------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """A random architecture: every stage's values drawn independently and uniformly from their lists
        (stage 1's ``d, w[, b, g]``, then stage 2's, then stage 3's)."""
        values: dict[str, list[int]] = {k: [] for k in self.keys}
        for _stage in range(3):
            for k in self.keys:
                values[k].append(self.choices[k][int(rng.integers(len(self.choices[k])))])
        return self.architecture(values["d"], values["w"], values.get("b"), values.get("g"))

    def mutate(self, a: Architecture, rng: np.random.Generator) -> Architecture:
        """One value of one stage changed: a stage uniformly, one of its parameters (``d, w[, b, g]``)
        uniformly, and a new value uniformly among that parameter's other values."""
        values = {k: list(v) for k, v in self.spec(a).values().items()}
        stage = int(rng.integers(3))
        key = self.keys[int(rng.integers(len(self.keys)))]
        others = [x for x in self.choices[key] if x != values[key][stage]]
        values[key][stage] = others[int(rng.integers(len(others)))]
        return self.architecture(values["d"], values["w"], values.get("b"), values.get("g"))

    def encode(self, a: Architecture) -> np.ndarray:
        """``float32`` of shape ``(3 * len(keys),)``: stage by stage, each value's index in its list divided
        by the list's length - 1 (0 the smallest, 1 the largest; the lists are log-spaced, so this is the
        value's position on a log scale)."""
        values = self.spec(a).values()
        return np.array([self.choices[k].index(values[k][i]) / (len(self.choices[k]) - 1)
                         for i in range(3) for k in self.keys], dtype=np.float32)

    # -- networks -----------------------------------------------------------------------------------
    def build(self, a: Architecture, num_classes: int, *, in_channels: int = 3, width: float = 1.0) -> NDSNetwork:
        """The network of ``a`` (:class:`NDSNetwork`), freshly initialised as pycls does; ``width`` the width
        multiplier (1.0: the NDS network; see the module docstring)."""
        who = f"{type(self).__name__}.build"
        num_classes = check_int(num_classes, "num_classes", who=who)
        in_channels = check_int(in_channels, "in_channels", who=who)
        width = check_float(width, "width", who=who, low=0, low_open=True)
        spec = self.spec(a)
        stem, ws, wbs = stage_widths(spec, width)
        return NDSNetwork(stem, spec.depths, ws, STRIDES, num_classes, in_channels=in_channels,
                          bottlenecks=wbs, groups=spec.groups)


@spaces.register("nds-resnet")
class NDSResNetSpace(NDSSpace):
    """NDS ResNet: residual basic blocks; per stage a depth and a width."""

    block = "res_basic_block"
    display = "NDS ResNet"
    choices = {"d": (1, 2, 3, 4, 6, 8, 12, 16, 24), "w": (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)}


@spaces.register("nds-resnext-a")
class NDSResNeXtASpace(NDSSpace):
    """NDS ResNeXt-A: residual bottleneck blocks; per stage a depth, a width, a bottleneck ratio and groups."""

    block = "res_bottleneck_block"
    display = "NDS ResNeXt-A"
    choices = {"d": (1, 2, 4, 8, 16), "w": (16, 32, 64, 128, 256), "b": (1, 2, 4), "g": (1, 2, 4)}


@spaces.register("nds-resnext-b")
class NDSResNeXtBSpace(NDSSpace):
    """NDS ResNeXt-B: as ResNeXt-A with wider stages (64-1024) and more groups (up to 16)."""

    block = "res_bottleneck_block"
    display = "NDS ResNeXt-B"
    choices = {"d": (1, 2, 4, 8, 16), "w": (64, 128, 256, 512, 1024), "b": (1, 2, 4), "g": (1, 2, 4, 8, 16)}


# ---------------------------------------------------------------------------------
# network modules (pycls AnyNet's layout and module names)
# ---------------------------------------------------------------------------------
class _ResBlock(nn.Module):
    """``relu(proj(x) + f(x))``: ``proj`` a 1x1 conv (stride) -> BN where the width or resolution changes, else
    the identity; a subclass fills the residual branch ``f`` (pycls' module names and order: proj, bn, f, relu)."""

    def __init__(self, w_in: int, w_out: int, stride: int):
        super().__init__()
        self.proj_block = w_in != w_out or stride != 1
        if self.proj_block:
            self.proj = nn.Conv2d(w_in, w_out, 1, stride=stride, bias=False)
            self.bn = nn.BatchNorm2d(w_out)
        self.f = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.bn(self.proj(x)) if self.proj_block else x
        return self.relu(skip + self.f(x))


class ResBasicBlock(_ResBlock):
    """``f`` = 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN (pycls ``ResBasicBlock``)."""

    def __init__(self, w_in: int, w_out: int, stride: int):
        super().__init__(w_in, w_out, stride)
        self.f.add_module("a", nn.Conv2d(w_in, w_out, 3, stride=stride, padding=1, bias=False))
        self.f.add_module("a_bn", nn.BatchNorm2d(w_out))
        self.f.add_module("a_relu", nn.ReLU())
        self.f.add_module("b", nn.Conv2d(w_out, w_out, 3, padding=1, bias=False))
        self.f.add_module("b_bn", nn.BatchNorm2d(w_out))
        self.relu = nn.ReLU()


class ResBottleneckBlock(_ResBlock):
    """``f`` = 1x1 conv ``w_in -> w_b`` -> BN -> ReLU -> 3x3 conv ``w_b -> w_b`` (stride, ``groups``) -> BN -> ReLU
    -> 1x1 conv ``w_b -> w_out`` -> BN (pycls ``ResBottleneckBlock``)."""

    def __init__(self, w_in: int, w_out: int, stride: int, w_b: int, groups: int):
        super().__init__(w_in, w_out, stride)
        self.f.add_module("a", nn.Conv2d(w_in, w_b, 1, bias=False))
        self.f.add_module("a_bn", nn.BatchNorm2d(w_b))
        self.f.add_module("a_relu", nn.ReLU())
        self.f.add_module("b", nn.Conv2d(w_b, w_b, 3, stride=stride, padding=1, groups=groups, bias=False))
        self.f.add_module("b_bn", nn.BatchNorm2d(w_b))
        self.f.add_module("b_relu", nn.ReLU())
        self.f.add_module("c", nn.Conv2d(w_b, w_out, 1, bias=False))
        self.f.add_module("c_bn", nn.BatchNorm2d(w_out))
        self.relu = nn.ReLU()


class _Head(nn.Module):
    """Global average pooling -> linear classifier (pycls ``AnyHead``)."""

    def __init__(self, w_in: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(w_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class NDSNetwork(nn.Module):
    """pycls AnyNet with the CIFAR stem: ``stem`` (3x3 conv ``in_channels -> stem_width``, stride 1, BN,
    ReLU), stages ``s1``..``s3`` (``depths[i]`` blocks of width ``widths[i]``, the first with
    ``strides[i]``), ``head`` (average pooling, ``Linear``).  Basic blocks without ``bottlenecks``; else
    bottleneck blocks with bottleneck widths ``bottlenecks[i]`` and ``groups[i]`` groups.  Returns logits."""

    def __init__(self, stem_width: int, depths: Sequence[int], widths: Sequence[int], strides: Sequence[int],
                 num_classes: int, *, in_channels: int = 3, bottlenecks: Sequence[int] | None = None,
                 groups: Sequence[int] | None = None):
        super().__init__()
        if not len(depths) == len(widths) == len(strides):
            raise ValueError(f"NDSNetwork needs one depth, width and stride per stage, got {depths}, {widths}, "
                             f"{strides}")
        if (bottlenecks is None) != (groups is None):
            raise ValueError("NDSNetwork: bottleneck blocks need both bottleneck widths and groups")
        self.stem = nn.Sequential()
        self.stem.add_module("conv", nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False))
        self.stem.add_module("bn", nn.BatchNorm2d(stem_width))
        self.stem.add_module("relu", nn.ReLU())
        prev = stem_width
        for i, (d, w, s) in enumerate(zip(depths, widths, strides)):
            stage = nn.Sequential()
            for j in range(d):
                w_in, stride = (prev, s) if j == 0 else (w, 1)
                block = (ResBasicBlock(w_in, w, stride) if bottlenecks is None
                         else ResBottleneckBlock(w_in, w, stride, bottlenecks[i], groups[i]))
                stage.add_module(f"b{j + 1}", block)
            self.add_module(f"s{i + 1}", stage)
            prev = w
        self.head = _Head(prev, num_classes)
        if not self.head.fc.weight.is_meta:  # a network on the meta device (for counting) holds no values
            self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


def _init_weights(m: nn.Module) -> None:
    """pycls' ``init_weights``: conv ``N(0, sqrt(2 / fan_out))`` with ``fan_out = k * k * out_channels``, BN
    weight 1 and bias 0, linear ``N(0, 0.01)`` and bias 0."""
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, mean=0.0, std=0.01)
        nn.init.zeros_(m.bias)
