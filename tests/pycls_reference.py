"""THE REFERENCE'S FORMULAS: pycls' own complexity counts for AnyNet, transcribed for the NDS peer check.

Not engine code: a transcription of facebookresearch/pycls, read in its git
history (snapshot at 5719de641657c251f807c20a1fcf8ef6f4b60144), so that
``tests/test_nds.py`` can check the engine's NDS networks against the
reference implementation's own numbers.

* :func:`anynet_complexity` -- the **analytic** counts of pycls commit
  8723c6c ("Fast/simple complexity counts (flops/params/acts)", 2020-05-08):
  ``pycls/utils/net.py`` ``complexity_conv2d`` / ``complexity_batchnorm2d``
  and ``pycls/models/anynet.py`` ``AnyHead`` / ``ResBasicBlock`` /
  ``BasicTransform`` / ``ResBottleneckBlock`` / ``BottleneckTransform`` /
  ``ResStemCifar`` / ``AnyStage`` / ``AnyNet._complexity``.  That version
  parametrises groups by group width (``g = w_b // gw``); NDS's networks were
  built by the AnyNet of the initial commit 996cb1d (2019-10-25), which takes
  the number of groups ``num_gs`` directly (``groups=num_gs`` in its
  ``BottleneckTransform``).  The transcription takes ``num_gs`` as the initial
  commit does and is otherwise the 8723c6c formulas line by line.
* :func:`static_flops_count` -- ``pycls/utils/metrics.py`` ``flops_count`` of
  the initial commit 996cb1d (the NDS-era counter, run on a built model: it
  walks ``named_modules()`` in order, skips no conv, and does not advance the
  resolution after a ``.proj`` conv).

FLOPs conventions: pycls counts **multiply-adds** of convs and of the
classifier; the analytic version adds the classifier's ``nc`` bias additions
(the head is counted as a 1x1 conv with bias), the 2019 static counter does
not.  ``torch.utils.flop_counter`` (the engine's ``count_flops``) counts 2
FLOPs per multiply-add of convs and matrix products and no bias additions, so
for an AnyNet: ``count_flops == 2 * (anynet_complexity(...)["flops"] - nc) ==
2 * static_flops_count(...)``.  Parameters: every conv weight (``k*k*w_in*w_out
// groups``), 2 per BatchNorm channel, the classifier's weight and bias
(pycls' ``params_count`` is ``sum(p.numel())``, as the engine's ``count_params``).
"""

from __future__ import annotations


def complexity_conv2d(cx, w_in, w_out, k, stride, padding, groups=1, bias=False):
    """pycls 8723c6c ``pycls/utils/net.py``: accumulates a Conv2D into ``cx = (h, w, flops, params, acts)``."""
    h, w, flops, params, acts = cx["h"], cx["w"], cx["flops"], cx["params"], cx["acts"]
    h = (h + 2 * padding - k) // stride + 1
    w = (w + 2 * padding - k) // stride + 1
    flops += k * k * w_in * w_out * h * w // groups
    params += k * k * w_in * w_out // groups
    flops += w_out if bias else 0
    params += w_out if bias else 0
    acts += w_out * h * w
    return {"h": h, "w": w, "flops": flops, "params": params, "acts": acts}


def complexity_batchnorm2d(cx, w_in):
    """pycls 8723c6c ``pycls/utils/net.py``: accumulates a BatchNorm2D (2 parameters per channel, no flops)."""
    h, w, flops, params, acts = cx["h"], cx["w"], cx["flops"], cx["params"], cx["acts"]
    params += 2 * w_in
    return {"h": h, "w": w, "flops": flops, "params": params, "acts": acts}


def head_complexity(cx, w_in, nc):
    """``AnyHead.complexity``: average pooling to 1x1, then the classifier as a 1x1 conv with bias."""
    cx["h"], cx["w"] = 1, 1
    return complexity_conv2d(cx, w_in, nc, 1, 1, 0, bias=True)


def basic_transform_complexity(cx, w_in, w_out, stride):
    """``BasicTransform.complexity``: [3x3 conv, BN] x2, the first with the stride."""
    cx = complexity_conv2d(cx, w_in, w_out, 3, stride, 1)
    cx = complexity_batchnorm2d(cx, w_out)
    cx = complexity_conv2d(cx, w_out, w_out, 3, 1, 1)
    cx = complexity_batchnorm2d(cx, w_out)
    return cx


def res_basic_block_complexity(cx, w_in, w_out, stride, bm=None, gs=None):
    """``ResBasicBlock.complexity``: the projection (1x1 conv, BN) when the shape changes, in parallel."""
    proj_block = (w_in != w_out) or (stride != 1)
    if proj_block:
        h, w = cx["h"], cx["w"]
        cx = complexity_conv2d(cx, w_in, w_out, 1, stride, 0)
        cx = complexity_batchnorm2d(cx, w_out)
        cx["h"], cx["w"] = h, w  # parallel branch
    return basic_transform_complexity(cx, w_in, w_out, stride)


def bottleneck_transform_complexity(cx, w_in, w_out, stride, bm, gs):
    """``BottleneckTransform.complexity`` (no SE): 1x1, BN, 3x3 (stride, groups), BN, 1x1, BN.

    ``w_b = int(round(w_out * bm))``; groups: the initial commit's ``num_gs`` (8723c6c: ``w_b // gw``).
    """
    w_b = int(round(w_out * bm))
    g = gs
    cx = complexity_conv2d(cx, w_in, w_b, 1, 1, 0)
    cx = complexity_batchnorm2d(cx, w_b)
    cx = complexity_conv2d(cx, w_b, w_b, 3, stride, 1, g)
    cx = complexity_batchnorm2d(cx, w_b)
    cx = complexity_conv2d(cx, w_b, w_out, 1, 1, 0)
    cx = complexity_batchnorm2d(cx, w_out)
    return cx


def res_bottleneck_block_complexity(cx, w_in, w_out, stride, bm=1.0, gs=1):
    """``ResBottleneckBlock.complexity``: the projection when the shape changes, in parallel."""
    proj_block = (w_in != w_out) or (stride != 1)
    if proj_block:
        h, w = cx["h"], cx["w"]
        cx = complexity_conv2d(cx, w_in, w_out, 1, stride, 0)
        cx = complexity_batchnorm2d(cx, w_out)
        cx["h"], cx["w"] = h, w  # parallel branch
    return bottleneck_transform_complexity(cx, w_in, w_out, stride, bm, gs)


def res_stem_cifar_complexity(cx, w_in, w_out):
    """``ResStemCifar.complexity``: 3x3 conv (stride 1), BN."""
    cx = complexity_conv2d(cx, w_in, w_out, 3, 1, 1)
    return complexity_batchnorm2d(cx, w_out)


BLOCKS = {"res_basic_block": res_basic_block_complexity, "res_bottleneck_block": res_bottleneck_block_complexity}
STEMS = {"res_stem_cifar": res_stem_cifar_complexity}


def anystage_complexity(cx, w_in, w_out, stride, d, block_fun, bm, gs):
    """``AnyStage.complexity``: ``d`` blocks; stride and ``w_in`` apply to the first."""
    for i in range(d):
        b_stride = stride if i == 0 else 1
        b_w_in = w_in if i == 0 else w_out
        cx = block_fun(cx, b_w_in, w_out, b_stride, bm, gs)
    return cx


def anynet_complexity(*, stem_type, stem_w, block_type, ds, ws, ss, bot_muls, num_gs, nc, im_size=32, w_in=3,
                      **_ignored):
    """``AnyNet._complexity`` at ``im_size`` x ``im_size``: ``{"h", "w", "flops", "params", "acts"}``.

    Takes the AnyNet arguments of the NDS data (``ds, ws, ss, bot_muls, num_gs``; empty ``bot_muls`` /
    ``num_gs`` mean 1.0 / 1, as pycls' defaults) plus ``nc`` classes; ``w_in``: input channels.
    """
    bot_muls = bot_muls if bot_muls else [None for _d in ds]
    num_gs = num_gs if num_gs else [None for _d in ds]
    cx = {"h": im_size, "w": im_size, "flops": 0, "params": 0, "acts": 0}
    cx = STEMS[stem_type](cx, w_in, stem_w)
    block_fun = BLOCKS[block_type]
    prev_w = stem_w
    for d, w, s, bm, gs in zip(ds, ws, ss, bot_muls, num_gs):
        cx = anystage_complexity(cx, prev_w, w, s, d, block_fun, bm, gs)
        prev_w = w
    return head_complexity(cx, prev_w, nc)


def static_flops_count(model, im_size=32):
    """pycls 996cb1d ``pycls/utils/metrics.py`` ``flops_count``: multiply-adds of convs and linear layers
    (no biases), walking ``model.named_modules()`` in order; a ``.proj`` conv does not advance the
    resolution (it runs in parallel with the block's first conv).  (The SE branch is left out: AnyNet of
    NDS has none.)"""
    import torch.nn as nn

    h, w = im_size, im_size
    count = 0
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            h_out = (h + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
            w_out = (w + 2 * m.padding[1] - m.kernel_size[1]) // m.stride[1] + 1
            count += m.weight.numel() * h_out * w_out
            if ".proj" not in n:
                h, w = h_out, w_out
        elif isinstance(m, nn.MaxPool2d):
            h = (h + 2 * m.padding - m.kernel_size) // m.stride + 1
            w = (w + 2 * m.padding - m.kernel_size) // m.stride + 1
        elif isinstance(m, nn.Linear):
            count += m.in_features * m.out_features
    return int(count)
