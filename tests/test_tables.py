"""Tabular benchmarks: NB201 CSV/JSONL tables, the NATS-Bench release, the engine's JSONL table,
and spaces restricted to a table's architectures.

Expected values are read independently from the shared files (csv / json /
bz2+pickle), and the sources are cross-checked against each other: the
BayesWatch CSV, the curve JSONL and the NATS-Bench pickles record the same runs.
"""

from __future__ import annotations

import bz2
import csv
import json
import math
import pickle
import shutil

import numpy as np
import pytest
import torch

from nas_engine.benchmarks import JsonlCurveTable, NATSBench, NB201Table, RestrictedSpace
from nas_engine.curves import LearningCurve
from nas_engine.estimators import TSEEMA, ValAcc
from nas_engine.spaces.base import Encodable, Enumerable, Mutable
from nas_engine.spaces.nb201 import NB201Space

from .conftest import shared_path
from .toy_space import ToySpace

SPACE = NB201Space()
NATS_DIR = ("nas-bench-201", "nats-tss-v1_0-3ffb9-simple")
ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ARCH11 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"
ARCH284 = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|"
SEEDS_200 = (777, 888, 999)


@pytest.fixture(scope="module")
def csv_rows():
    with open(shared_path("nas-bench-201", "nb201_cifar10_200ep.csv"), newline="") as f:
        return {int(r["index"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def curve_rows():
    with open(shared_path("nas-bench-201", "nb201_cifar10valid_curves_200archs.jsonl")) as f:
        return {r["index"]: r for r in map(json.loads, f)}


@pytest.fixture(scope="module")
def nb201():
    return NB201Table(shared_path("nas-bench-201", "nb201_cifar10_200ep.csv"),
                      shared_path("nas-bench-201", "nb201_cifar10valid_curves_200archs.jsonl"))


@pytest.fixture(scope="module")
def nats():
    return NATSBench(shared_path(*NATS_DIR))


def raw_nats(index):
    with bz2.open(shared_path(*NATS_DIR, f"{index:06d}.pickle.pbz2"), "rb") as f:
        return pickle.load(f)


# -- NB201Table ----------------------------------------------------------------------
def test_nb201_table_accuracies_match_the_csv(nb201, csv_rows):
    assert len(nb201.all_archs()) == 15625 and nb201.columns == ("cifar10_valid_acc", "cifar10_test_acc")
    for i in (0, 1, 11, 284, 7777, 15624):
        row = csv_rows[i]
        arch = row["arch_str"]
        assert nb201.index(arch) == i
        assert nb201.final_accuracy(arch) == float(row["cifar10_test_acc"]) / 100
        assert nb201.final_accuracy(SPACE.from_string(arch), metric="cifar10_valid_acc") == \
            float(row["cifar10_valid_acc"]) / 100
        assert nb201.params(arch) == round(float(row["params_m"]) * 1e6)
    assert max(nb201.final_accuracy(a) for a in nb201.all_archs()) == pytest.approx(0.9437, abs=5e-5)
    assert nb201.final_accuracy(ARCH0) == pytest.approx(0.858633)


def test_nb201_table_curves_from_the_jsonl(nb201, curve_rows):
    assert nb201.max_epochs == 200
    assert nb201.archs() == [curve_rows[i]["arch_str"] for i in range(200)]
    assert ARCH0 in nb201 and SPACE.from_string(ARCH11) in nb201 and ARCH284 not in nb201
    row = curve_rows[37]
    c = nb201.curve(row["arch_str"])
    assert c.epochs == 200 and c.train_loss == () and c.epoch_seconds == () and c.total_seconds == 0
    assert c.train_acc == tuple(a / 100 for a in row["train_acc"])
    assert c.val_acc == tuple(a / 100 for a in row["valid_acc"])
    short = nb201.curve(row["arch_str"], 12)
    assert short.epochs == 12 and short.val_acc == c.val_acc[:12]
    assert nb201.curve(row["arch_str"], 12, validate=False).val_acc == ()
    assert ValAcc(epochs=12).score(c) == row["valid_acc"][11] / 100
    with pytest.raises(ValueError, match=r"TSE-EMA needs LearningCurve\.train_loss.*no losses"):
        TSEEMA(epochs=12).score(c)


def test_nb201_table_other_csv_and_errors(nb201, tmp_path):
    short = NB201Table(shared_path("nas-bench-201", "nb201_all_datasets_12ep.csv"), metric="cifar10-test")
    assert short.final_accuracy(ARCH0) == pytest.approx(0.6955)
    assert short.final_accuracy(ARCH0, metric="cifar100-val") == pytest.approx(0.3184)
    assert short.archs() == [] and short.max_epochs is None
    with pytest.raises(NotImplementedError, match="does not record parameter counts"):
        short.params(ARCH0)
    with pytest.raises(KeyError, match="no learning curves: pass curves="):
        short.curve(ARCH0)
    with pytest.raises(ValueError, match="unknown metric 'cifar10_test_acc'.*cifar10-test"):
        NB201Table(short.csv_path)
    with pytest.raises(KeyError, match=r"architecture '\|none~0\|' is not in"):
        nb201.final_accuracy("|none~0|")
    with pytest.raises(KeyError, match=r"skip_connect~0\|\+.*is not in NB201Table"):
        nb201.curve(ARCH284)
    with pytest.raises(ValueError, match="records 200 epochs"):
        nb201.curve(ARCH0, 201)
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        NB201Table(missing)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        NB201Table(nb201.csv_path, tmp_path / "missing.jsonl")


# -- NATSBench ----------------------------------------------------------------------
def test_nats_meta_and_archs(nats, csv_rows):
    assert nats.archs() == [ARCH0, ARCH11, ARCH284]
    for i, arch in ((0, ARCH0), (11, ARCH11), (284, ARCH284)):
        assert csv_rows[i]["arch_str"] == arch and nats.index(arch) == i and arch in nats
    assert csv_rows[1]["arch_str"] not in nats  # in the meta file, but its file is not in the fixtures
    assert nats.max_epochs == 200 and len(nats) == 3
    assert nats.restrict(SPACE) == RestrictedSpace(SPACE, [ARCH0, ARCH11, ARCH284])
    with pytest.raises(ValueError, match="holds architectures of space 'nb201', not 'toy'"):
        nats.restrict(ToySpace())


def test_nats_curves_follow_the_pickles(nats):
    raw = raw_nats(11)
    c = nats.curve(ARCH11)  # cifar10-valid, hp 200, mean over seeds
    assert c.epochs == 200 and c.info["seeds"] == list(SEEDS_200) and c.info["val_split"] == "x-valid"
    assert all(map(math.isfinite, c.train_loss + c.val_loss)) and 0 < min(c.val_acc) and max(c.train_acc) < 1
    per_seed = [nats.curve(ARCH11, seed=s) for s in SEEDS_200]
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds"):
        manual = np.mean([getattr(p, name) for p in per_seed], axis=0)
        np.testing.assert_allclose(getattr(c, name), manual, rtol=1e-12)
    r = raw["200"]["all_results"][("cifar10-valid", 888)]
    s888 = per_seed[1]
    assert s888.train_loss == tuple(r["train_losses"][e] for e in range(200))
    assert s888.train_acc == tuple(r["train_acc1es"][e] / 100 for e in range(200))
    assert s888.val_acc == tuple(r["eval_acc1es"][f"x-valid@{e}"] / 100 for e in range(200))
    assert s888.val_loss == tuple(r["eval_losses"][f"x-valid@{e}"] for e in range(200))
    # cost: training time, plus the validation passes when validating
    train_only = nats.curve(ARCH11, seed=888, validate=False)
    assert train_only.val_acc == () and train_only.epoch_seconds == tuple(r["train_times"][e] for e in range(200))
    assert s888.epoch_seconds == pytest.approx([r["train_times"][e] + r["eval_times"][f"x-valid@{e}"]
                                                for e in range(200)])
    ten = nats.curve(ARCH11, 10, validate=False)
    assert ten.epochs == 10 and ten.total_seconds == pytest.approx(10 * r["train_times"][0])


def test_nats_schedules_and_datasets(nats):
    raw = raw_nats(284)
    twelve = nats.curve(ARCH284, hp="12")
    assert twelve.epochs == 12 and twelve.info["seeds"] == [111, 777]
    assert NATSBench(nats.path, hp="12").max_epochs == 12
    full = nats.curve(ARCH284, dataset="cifar10")  # trained on all 50k: the val split is ori-test
    r = raw["200"]["all_results"][("cifar10", 999)]
    assert full.info["val_split"] == "ori-test"
    assert nats.curve(ARCH284, dataset="cifar10", seed=999).val_acc[5] == r["eval_acc1es"]["ori-test@5"] / 100
    assert nats.final_accuracy(ARCH284, seed=999) == r["eval_acc1es"]["ori-test@199"] / 100
    c100 = nats.curve(ARCH284, dataset="cifar100")  # x-valid only at the last epoch of hp 200
    assert c100.val_acc == () and "not recorded at every epoch" in c100.info["source"]
    with pytest.raises(ValueError, match=r"ValAcc needs LearningCurve\.val_acc.*not recorded at every epoch"):
        ValAcc(epochs=5).score(c100)
    assert nats.curve(ARCH284, dataset="cifar100", hp="12").info["val_split"] == "x-valid"


def test_nats_ground_truth_agrees_with_the_csv_and_the_curve_jsonl(nats, csv_rows, curve_rows):
    for i, arch in ((0, ARCH0), (11, ARCH11), (284, ARCH284)):
        acc = nats.final_accuracy(arch)
        assert 0 < acc < 1 and acc == pytest.approx(float(csv_rows[i]["cifar10_test_acc"]) / 100, abs=1e-6)
        valid = nats.curve(arch).val_acc[-1]
        assert valid == pytest.approx(float(csv_rows[i]["cifar10_valid_acc"]) / 100, abs=1e-6)
        assert nats.params(arch) == round(float(csv_rows[i]["params_m"]) * 1e6) > 0
        assert nats.flops(arch) > 0
    assert nats.params(ARCH0, dataset="cifar100") > nats.params(ARCH0)  # a 100-way classifier
    assert nats.final_accuracy(ARCH0, dataset="cifar10", hp="12") == pytest.approx(0.6955)
    for i, arch in ((0, ARCH0), (11, ARCH11)):
        c = nats.curve(arch)
        np.testing.assert_allclose(c.train_acc, np.array(curve_rows[i]["train_acc"]) / 100, atol=1e-6)
        np.testing.assert_allclose(c.val_acc, np.array(curve_rows[i]["valid_acc"]) / 100, atol=1e-6)


def test_nats_errors(nats, csv_rows, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"000001\.pickle\.pbz2.*3 of the 15625.*NATS-tss-v1_0-3ffb9-simple"):
        nats.curve(csv_rows[1]["arch_str"])
    with pytest.raises(KeyError, match=r"'\|none~0\|' is not one of the 15625 architectures"):
        nats.curve("|none~0|")
    with pytest.raises(ValueError, match="seed 111 is not recorded.*777, 888, 999"):
        nats.curve(ARCH0, seed=111)
    with pytest.raises(ValueError, match="unknown NATS-Bench dataset 'cifar-10'"):
        nats.final_accuracy(ARCH0, dataset="cifar-10")
    with pytest.raises(ValueError, match="hp must be one of"):
        NATSBench(nats.path, hp="100")
    with pytest.raises(ValueError, match="records 200 epochs"):
        nats.curve(ARCH0, 201)
    with pytest.raises(FileNotFoundError, match=r"meta file not found.*meta\.pickle\.pbz2.*NATS-tss-v1_0-3ffb9"):
        NATSBench(tmp_path)
    with pytest.raises(FileNotFoundError, match="NATS-Bench directory not found.*absent"):
        NATSBench(tmp_path / "absent")
    for name in ("meta.pickle.pbz2", "000284.pickle.pbz2"):
        shutil.copy(nats.path / name, tmp_path / name)
    one = NATSBench(tmp_path, cache_size=1)
    assert one.archs() == [ARCH284] and ARCH0 not in one
    with pytest.raises(FileNotFoundError, match=r"000000\.pickle\.pbz2"):
        one.final_accuracy(ARCH0)
    assert one.curve(ARCH284) == nats.curve(ARCH284)
    assert one.fingerprint() == {**nats.fingerprint(), "release": tmp_path.name}


# -- JsonlCurveTable ------------------------------------------------------------------
def _curve(k, epochs=4):
    return LearningCurve(minibatch_losses=[[2.0 - 0.1 * e - 0.01 * k, 1.9 - 0.1 * e] for e in range(epochs)],
                         train_acc=[0.1 * e for e in range(epochs)], val_loss=[2.1 - 0.1 * e for e in range(epochs)],
                         val_acc=[0.05 * e + 0.01 * k for e in range(epochs)], epoch_seconds=[1.5] * epochs,
                         info={"device": "cpu"})


def test_jsonl_table_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng) for _ in range(3)]
    rows = [{"arch": archs[0], "curve": _curve(0), "final_accuracy": 0.9, "params": 1234, "info": {"k": 0}},
            {"arch": archs[1].string, "space": "nb201", "curve": _curve(1, epochs=6).to_dict()},
            {"arch": archs[2], "curve": _curve(2, epochs=5), "final_accuracy": None}]
    t = JsonlCurveTable.write(tmp_path / "t.jsonl", rows)
    assert t.archs() == [a.string for a in archs] and t.space_name == "nb201" and t.max_epochs == 4
    assert all(a in t for a in archs) and SPACE.from_ops(["none"] * 6) not in t
    assert t.curve(archs[0]) == _curve(0) and t.curve(archs[0]).info == {"device": "cpu"}
    assert t.curve(archs[1], 3) == _curve(1, epochs=6).truncate(3)
    assert t.curve(archs[0], validate=False).val_acc == () and t.curve(archs[0]).total_seconds == 6.0
    assert t.final_accuracy(archs[0]) == 0.9 and t.params(archs[0]) == 1234 and t.info(archs[0]) == {"k": 0}
    with pytest.raises(ValueError, match="does not record a final accuracy"):
        t.final_accuracy(archs[2])
    with pytest.raises(ValueError, match="does not record a parameter count"):
        t.params(archs[1])
    with pytest.raises(KeyError, match="is not in JsonlCurveTable"):
        t.curve("|none~0|")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) == 3 and set(json.loads(lines[1])) == {"arch", "space", "curve", "final_accuracy",
                                                              "params", "info"}
    again = JsonlCurveTable.write(tmp_path / "u.jsonl", rows)
    assert again.fingerprint()["sha256"] == t.fingerprint()["sha256"]
    assert JsonlCurveTable.write(tmp_path / "u.jsonl", rows[:2]).fingerprint() != t.fingerprint()


def test_jsonl_table_rejects_bad_rows(tmp_path):
    arch = SPACE.sample(np.random.default_rng(1))
    ok = {"arch": arch, "curve": _curve(0)}
    with pytest.raises(ValueError, match=r"row 0: 'final_accuracy' must be a fraction in \[0, 1\]"):
        JsonlCurveTable.write(tmp_path / "a.jsonl", [{**ok, "final_accuracy": 93.5}])
    with pytest.raises(ValueError, match=r"row 0: unknown key\(s\) \['acc'\]"):
        JsonlCurveTable.write(tmp_path / "a.jsonl", [{**ok, "acc": 0.5}])
    with pytest.raises(ValueError, match="row 1: architecture .* appears twice"):
        JsonlCurveTable.write(tmp_path / "a.jsonl", [ok, ok])
    with pytest.raises(ValueError, match="row 1: space 'toy' differs from the earlier rows' 'nb201'"):
        JsonlCurveTable.write(tmp_path / "a.jsonl", [ok, {"arch": "aab", "space": "toy", "curve": _curve(1)}])
    assert not (tmp_path / "a.jsonl").exists()  # nothing is written unless every row is good
    line = json.dumps({"arch": arch.string, "space": "nb201", "curve": _curve(0).to_dict()})
    (tmp_path / "b.jsonl").write_text(f"{line}\n\n{line}\n")
    with pytest.raises(ValueError, match="b.jsonl' line 3: architecture .* appears twice"):
        JsonlCurveTable(tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl").write_text('{"arch": "x", "space": "nb201"}\n')
    with pytest.raises(ValueError, match="b.jsonl' line 1: 'curve' must be an object"):
        JsonlCurveTable(tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl").write_text('{"arch": "x",\n')
    with pytest.raises(ValueError, match="b.jsonl' line 1: Expecting"):
        JsonlCurveTable(tmp_path / "b.jsonl")
    with pytest.raises(FileNotFoundError, match="c.jsonl"):
        JsonlCurveTable(tmp_path / "c.jsonl")


# -- RestrictedSpace ----------------------------------------------------------------
def _ops_arch(*ops):
    return SPACE.from_ops(ops)


def test_restricted_space_samples_mutates_and_enumerates_the_subset():
    a = _ops_arch("none", "none", "none", "none", "none", "none")
    b = _ops_arch("skip_connect", "none", "none", "none", "none", "none")  # 1 op from a
    c = _ops_arch("skip_connect", "skip_connect", "none", "none", "none", "none")  # 2 from a, 1 from b
    d = _ops_arch("none", "none", "none", "none", "none", "avg_pool_3x3")  # 1 from a
    space = RestrictedSpace(SPACE, [a.string, b.string, c.string, d.string, b.string])
    assert space.name == "nb201" and len(space) == 4 and list(space.enumerate()) == [a, b, c, d]
    assert isinstance(space, Mutable) and isinstance(space, Enumerable) and isinstance(space, Encodable)
    rng = np.random.default_rng(0)
    assert {space.sample(rng) for _ in range(200)} == {a, b, c, d}
    assert {space.mutate(a, rng) for _ in range(100)} == {b, d}  # the nearest, at random
    assert {space.mutate(c, rng) for _ in range(50)} == {b}
    assert {space.mutate(d, rng) for _ in range(50)} == {a}
    assert space.from_string(c.string) == c and space.to_string(c) == c.string
    assert space.to_graph(c).edges[0, 2]["op"] == "skip_connect" and space.canonical(a) == "0"
    assert (space.encode(b) == SPACE.encode(b)).all()
    assert isinstance(space.build(b, 10, C=4, N=1), torch.nn.Module)
    outside = _ops_arch("nor_conv_3x3", "none", "none", "none", "none", "none")
    with pytest.raises(ValueError, match="is not among the 4 architectures"):
        space.from_string(outside.string)
    with pytest.raises(ValueError, match="is not among the 4 architectures"):
        space.check_architecture(outside)
    with pytest.raises(ValueError, match="unknown op"):
        space.from_string("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert pickle.loads(pickle.dumps(space)) == space and pickle.loads(pickle.dumps(b)) == b
    with pytest.raises(ValueError, match="no other architecture"):
        RestrictedSpace(SPACE, [a.string]).mutate(a, rng)
    with pytest.raises(ValueError, match="to no architectures"):
        RestrictedSpace(SPACE, [])


def test_restricted_space_keeps_only_the_base_capabilities():
    toy = RestrictedSpace(ToySpace(3, mutable=False), ["aab", "abb", "bbb"])
    assert not isinstance(toy, Encodable) and toy.name == "toy"
    assert {toy.mutate(toy.from_string("aab"), np.random.default_rng(s)) for s in range(20)} == \
        {toy.from_string("abb")}
    assert pickle.loads(pickle.dumps(toy)) == toy
