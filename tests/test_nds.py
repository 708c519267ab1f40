"""The NDS design spaces (nds-resnet, nds-resnext-a, nds-resnext-b): ranges, strings, graphs, sampling, mutation,
encoding, pycls conversion, networks, and the peer check of #params / FLOPs against pycls' own formulas
(``tests/pycls_reference.py``) on 20 sampled networks per space."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from nas_engine import create
from nas_engine.costs import count_flops, count_params
from nas_engine.spaces.nds import STRIDES, NDSNetwork, stage_widths

from .pycls_reference import anynet_complexity, static_flops_count

NAMES = ("nds-resnet", "nds-resnext-a", "nds-resnext-b")


@pytest.fixture(scope="module", params=NAMES)
def space(request):
    return create("space", request.param)


def test_the_three_spaces_hold_nds_table_1s_values():
    resnet, a, b = (create("space", n) for n in NAMES)
    assert resnet.choices == {"d": (1, 2, 3, 4, 6, 8, 12, 16, 24),
                              "w": (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)}
    assert a.choices == {"d": (1, 2, 4, 8, 16), "w": (16, 32, 64, 128, 256), "b": (1, 2, 4), "g": (1, 2, 4)}
    assert b.choices == {"d": (1, 2, 4, 8, 16), "w": (64, 128, 256, 512, 1024), "b": (1, 2, 4),
                         "g": (1, 2, 4, 8, 16)}
    assert [s.num_architectures for s in (resnet, a, b)] == [1_259_712, 11_390_625, 52_734_375]
    assert (resnet.block, a.block, b.block) == ("res_basic_block", "res_bottleneck_block", "res_bottleneck_block")
    assert resnet.default_size == {"width": 1.0} and resnet.resolve_size(scale="small") == {"width": 0.25}


def test_strings_round_trip_and_bad_ones_are_named():
    resnet, a = create("space", "nds-resnet"), create("space", "nds-resnext-a")
    arch = resnet.from_string("d=2,8,24/w=32,64,256")
    assert arch.spec.depths == (2, 8, 24) and arch.spec.widths == (32, 64, 256) and arch.spec.ratios is None
    x = a.from_string("d=1,4,2/w=16,64,256/b=1,2,4/g=4,1,2")
    assert (x.spec.ratios, x.spec.groups) == ((1, 2, 4), (4, 1, 2)) and a.to_string(x) == x.string
    assert a.architecture([1, 4, 2], [16, 64, 256], [1, 2, 4], [4, 1, 2]) == x
    bad = {
        (resnet, "d=2,8,24/w=32,64"): "w='32,64' in 'd=2,8,24/w=32,64' must give three values (one per stage) "
                                      "separated by ','",
        (resnet, "d=2,8,9/w=32,64,256"): "depth 9 of stage 3 is not in the NDS ResNet design space; its depth "
                                         "values: 1, 2, 3, 4, 6, 8, 12, 16, 24 (in 'd=2,8,9/w=32,64,256')",
        (resnet, "d=2,8,04/w=32,64,256"): "depth '04' in 'd=2,8,04/w=32,64,256' must be a plain decimal integer "
                                          "(no sign, spaces or leading zeros)",
        (resnet, "w=32,64,256/d=2,8,4"): "nds-resnet string must give d=..., w=... separated by '/', like "
                                         "'d=2,8,4/w=32,64,256', got 'w=32,64,256/d=2,8,4'",
        (resnet, "d=1,4,2/w=16,64,256/b=1,2,4/g=4,1,2"): "nds-resnet string must give d=..., w=...",
        (a, "d=1,4,2/w=16,64,256/b=1,3,4/g=4,1,2"): "bottleneck ratio 3 of stage 2 is not in the NDS ResNeXt-A "
                                                    "design space; its bottleneck ratio values: 1, 2, 4",
        (a, "d=1,4,2/w=16,64,256/b=1,2,4/g=4,1,8"): "groups 8 of stage 3 is not in the NDS ResNeXt-A design "
                                                    "space; its groups values: 1, 2, 4",
        (a, "d=1,4,2/w=16,64,256"): "nds-resnext-a string must give d=..., w=..., b=..., g=...",
    }
    for (sp, text), message in bad.items():
        with pytest.raises(ValueError) as info:
            sp.from_string(text)
        assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)
    with pytest.raises(TypeError, match="expected an nds-resnet architecture string"):
        resnet.from_string(3)
    with pytest.raises(ValueError, match="NDS ResNet stages have no bottleneck ratio"):
        resnet.architecture([1, 1, 1], [16, 16, 16], ratios=[1, 1, 1])
    with pytest.raises(ValueError, match="belongs to space 'nds-resnext-a', not 'nds-resnext-b'"):
        create("space", "nds-resnext-b").spec(x)


def test_the_graph_is_the_stage_chain():
    a = create("space", "nds-resnext-b")
    g = a.to_graph(a.from_string("d=1,16,2/w=64,512,1024/b=4,1,2/g=16,2,1"))
    assert list(g.edges) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert g.nodes[0] == {"op": "res_stem_cifar", "width": 16, "stride": 1}
    assert g.nodes[2] == {"op": "res_bottleneck_block", "depth": 16, "width": 512, "stride": 2,
                          "bottleneck_ratio": 1, "groups": 2}
    assert g.nodes[4]["op"] == "avgpool-fc" and [g.edges[e]["channels"] for e in g.edges] == [16, 64, 512, 1024]
    r = create("space", "nds-resnet")
    assert r.to_graph(r.from_string("d=1,2,3/w=16,24,32")).nodes[3] == {
        "op": "res_basic_block", "depth": 3, "width": 32, "stride": 2}


def test_sampling_is_uniform_over_each_stage_list(space):
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(1500)]
    assert space.sample(np.random.default_rng(5)) == space.sample(np.random.default_rng(5))
    for key in space.keys:
        for stage in range(3):
            counts = Counter(a.spec.values()[key][stage] for a in archs)
            assert set(counts) == set(space.choices[key])
            expected = len(archs) / len(space.choices[key])
            assert all(abs(c - expected) < 5 * expected**0.5 for c in counts.values()), (key, stage, counts)


def test_mutation_changes_one_value_of_one_stage(space):
    rng = np.random.default_rng(1)
    a = space.sample(rng)
    moved = Counter()
    for _ in range(300):
        m = space.mutate(a, rng)
        diffs = [(k, i) for k, v in a.spec.values().items() for i in range(3) if m.spec.values()[k][i] != v[i]]
        assert len(diffs) == 1 and space.from_string(m.string) == m
        moved[diffs[0]] += 1
    assert set(moved) == {(k, i) for k in space.keys for i in range(3)}


def test_the_encoding_is_each_values_position_in_its_list():
    a = create("space", "nds-resnext-a")
    code = a.encode(a.from_string("d=1,4,16/w=16,64,256/b=1,2,4/g=4,1,2"))
    assert code.dtype == np.float32 and code.tolist() == [0, 0, 0, 1, 0.5, 0.5, 0.5, 0, 1, 1, 1, 0.5]
    r = create("space", "nds-resnet")
    assert r.encode(r.from_string("d=24,3,1/w=16,40,256")).tolist() == pytest.approx([1, 0, 2 / 8, 3 / 11, 0, 1])


def test_pycls_arguments_round_trip():
    a = create("space", "nds-resnext-a")
    x = a.from_string("d=1,4,2/w=16,64,256/b=1,2,4/g=4,1,2")
    net = a.to_pycls(x)
    assert net == {"block_type": "res_bottleneck_block", "stem_type": "res_stem_cifar", "stem_w": 16,
                   "ds": [1, 4, 2], "ws": [16, 64, 256], "ss": [1, 2, 2], "bot_muls": [1.0, 0.5, 0.25],
                   "num_gs": [4, 1, 2]}
    assert a.from_pycls(net) == x
    with pytest.raises(ValueError, match="bot_mul 0.3 is not 1 / b of a bottleneck ratio b"):
        a.from_pycls({**net, "bot_muls": [1.0, 0.3, 0.25]})
    with pytest.raises(ValueError, match="NDS ResNeXt-A networks have block_type='res_bottleneck_block'"):
        a.from_pycls({**net, "block_type": "res_basic_block"})
    r = create("space", "nds-resnet")
    assert r.from_pycls({"ds": [1, 2, 3], "ws": [16, 24, 32], "bot_muls": [], "num_gs": []}).string == \
        "d=1,2,3/w=16,24,32"


def test_networks_follow_pycls_anynet_and_scale_by_width():
    a = create("space", "nds-resnext-a")
    x = a.from_string("d=2,1,1/w=32,64,128/b=2,4,1/g=4,2,4")
    with torch.device("meta"):
        net = a.build(x, 10)
    keys = list(net.state_dict())
    assert keys[:2] == ["stem.conv.weight", "stem.bn.weight"] and "s1.b1.proj.weight" in keys
    assert "s1.b2.proj.weight" not in keys and "s1.b2.f.b.weight" in keys and keys[-1] == "head.fc.bias"
    assert net.s1.b1.f.b.groups == 4 and net.s1.b1.f.b.in_channels == 16 and net.s3.b1.f.b.stride == (2, 2)
    assert stage_widths(x.spec, 1.0) == (16, [32, 64, 128], [16, 16, 128])
    assert stage_widths(x.spec, 0.25) == (4, [8, 16, 32], [4, 4, 32])
    assert stage_widths(x.spec, 0.125) == (2, [4, 8, 16], [4, 2, 16])  # bottlenecks: multiples of the groups
    torch.manual_seed(0)
    small = a.build(x, 10, in_channels=1, width=0.125)
    assert small.s1.b1.f.b.out_channels == 4 and small(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="width must be a finite number > 0, got 0"):
        a.build(x, 10, width=0)
    # pycls' initialisation: conv N(0, sqrt(2 / fan_out)), BN 1 / 0, linear N(0, 0.01) / 0
    torch.manual_seed(0)
    big = create("space", "nds-resnet").build(create("space", "nds-resnet").from_string("d=1,1,1/w=256,256,256"), 10)
    assert abs(big.s2.b1.f.a.weight.std().item() - (2 / (9 * 256)) ** 0.5) < 1e-3
    assert big.head.fc.weight.std().item() == pytest.approx(0.01, rel=0.05) and not big.head.fc.bias.any()


def _conv_only(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with BatchNorm and ReLU replaced by identities: torch's counter counts neither, and on the
    meta device they run slow Python decompositions (this keeps the check at a few seconds)."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for child, sub in list(module.named_children()):
            if isinstance(sub, (nn.BatchNorm2d, nn.ReLU)):
                setattr(module, child, nn.Identity())
    return net


def test_params_and_flops_equal_pycls_own_counts_on_20_sampled_networks_per_space(space):
    """The peer check: 20 sampled NDS networks (width 1, 32x32 CIFAR images, 10 classes) per space, built on the
    meta device.  #params equal pycls' analytic count; pycls counts multiply-adds (and the classifier's 10 bias
    additions), torch's counter 2 FLOPs per multiply-add: ``count_flops == 2 * (pycls_flops - 10)``; pycls' 2019
    static counter, walking our module tree, gives ``pycls_flops - 10``."""
    x = torch.zeros(1, 3, 32, 32, device="meta")
    rows = []
    for i in range(20):
        arch = space.sample(np.random.default_rng(100 + i))
        ref = anynet_complexity(**space.to_pycls(arch), nc=10, im_size=32)
        with torch.device("meta"):
            net = space.build(arch, 10)
            flops = count_flops(net if i == 0 else _conv_only(net), x)  # the first one: the whole network
        rows.append((arch.string, count_params(net), ref["params"], flops, 2 * (ref["flops"] - 10),
                     static_flops_count(net, 32), ref["flops"] - 10))
    mismatches = [r for r in rows if not (r[1] == r[2] and r[3] == r[4] and r[5] == r[6])]
    assert not mismatches, mismatches
    assert len({r[0] for r in rows}) == 20 and min(r[1] for r in rows) < max(r[1] for r in rows)
    with torch.device("meta"):  # the copy counts what the whole network counts
        net = space.build(space.sample(np.random.default_rng(100)), 10)
        assert count_flops(_conv_only(net), x) == rows[0][3]


def test_resnet_56_of_the_nds_configs_matches_pycls_and_the_nds_complexity_cap():
    """pycls' configs/cifar/anynet/R-56_nds_1gpu.yaml (depths 9, widths 16/32/64; 9 is not an NDS depth): 855,770
    parameters, the 0.856 M cap (``_MAX_P``) of the NDS notebooks; 125.7 M multiply-adds."""
    ref = anynet_complexity(stem_type="res_stem_cifar", stem_w=16, block_type="res_basic_block", ds=[9, 9, 9],
                            ws=[16, 32, 64], ss=[1, 2, 2], bot_muls=[], num_gs=[], nc=10)
    assert (ref["params"], ref["flops"]) == (855_770, 125_747_850)
    with torch.device("meta"):
        net = NDSNetwork(16, (9, 9, 9), (16, 32, 64), STRIDES, 10)
    assert count_params(net) == 855_770 and static_flops_count(net) == 125_747_840
    assert count_flops(_conv_only(net), torch.zeros(1, 3, 32, 32, device="meta")) == 2 * 125_747_840


@pytest.mark.parametrize("strategy, args", [
    ("bo", {"initial_points": 2, "pool_size": 20, "n_incumbents": 2, "mc_samples": 16, "fit_maxiter": 20}),
    ("regularized-evolution", {"population_size": 2, "sample_size": 2})])
def test_a_search_proposes_by_encoding_and_mutation_at_the_protocols_width(strategy, args):
    """bo (encodings) and evolution (mutants) over nds-resnext-a, scored by #params at the "tiny" width 0.125."""
    from nas_engine import Budget, Protocol, Search

    space = create("space", "nds-resnext-a")
    result = Search(create("strategy", strategy, **args), space, create("estimator", "params"), data="digits",
                    protocol=Protocol(schedule_epochs=1, batch_size=128, lr=0.05, device="cpu", scale="tiny"),
                    budget=Budget(evaluations=4), progress=False).run()
    assert len(result.history) == 4 and len({e.arch for e in result.history}) == 4
    for e in result.history:  # the params estimator counted the network at the protocol's width
        assert e.score == count_params(space.build(e.arch, 10, in_channels=1, width=0.125))
