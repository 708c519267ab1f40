"""Final training and export (nas_engine.final, ``nas-engine train``, ``Evaluation.train/build``).

Tiny NB201 (C=4, N=1) on the embedded digits data: a few tenths of a second per epoch.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas_engine.cli import main
from nas_engine.data import load_dataset
from nas_engine.final import CHECKPOINT, EXPORT, MODEL, SUMMARY, Normalized, load_model, train_final
from nas_engine.registry import from_config
from nas_engine.results import SearchResult
from nas_engine.search import Budget, Search
from nas_engine.training import build_model, train

from . import warm
from .conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
# the CLI's equivalent of TINY (threads pinned: they are part of the checkpoint's configuration)
TINY_ARGS = ["--data", "digits", "--C", "4", "--N", "1", "--batch-size", "128", "--lr", "0.05", "--device", "cpu",
             "--threads", "1"]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / MODEL, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


# -- the training loop's checkpoint / resume ----------------------------------------------------------------

@pytest.mark.parametrize("steps_per_epoch", [None, 3])
def test_train_resumes_from_on_state_to_identical_weights(digits, steps_per_epoch):
    """train(on_state=...) then train(resume=state) equals one uninterrupted train(): weights and curve."""
    from nas_engine.registry import spaces

    space = spaces.create("nb201")
    arch = space.from_string(ARCH)
    protocol = TINY.replace(schedule_epochs=4)
    opts = {"epochs": 4, "seed": 3, "steps_per_epoch": steps_per_epoch}

    whole = build_model(space, arch, digits, protocol, seed=1)
    curve = train(whole, digits, protocol, **opts)

    saved = {}

    def keep(epoch, state):  # what a checkpoint holds: bytes that torch.load(weights_only=True) reads
        buffer = io.BytesIO()
        torch.save(state, buffer)
        saved[epoch] = buffer.getvalue()

    first = build_model(space, arch, digits, protocol, seed=1)
    train(first, digits, protocol, **{**opts, "epochs": 2}, on_state=keep)
    assert sorted(saved) == [1, 2]
    state = torch.load(io.BytesIO(saved[2]), weights_only=True)
    resumed = build_model(space, arch, digits, protocol, seed=99)  # other initial weights: the state replaces them
    curve2 = train(resumed, digits, protocol, **opts, resume=state)
    _assert_same_weights(whole.state_dict(), resumed.state_dict())
    assert curve2.minibatch_losses == curve.minibatch_losses and curve2.val_acc == curve.val_acc

    with pytest.raises(ValueError, match="2 epochs done, more than the 1 asked for"):
        train(build_model(space, arch, digits, protocol, seed=1), digits, protocol, **{**opts, "epochs": 1},
              resume=state)


# -- killed and resumed (a) ----------------------------------------------------------------------------------

def test_cli_train_killed_after_a_checkpoint_resumes_to_identical_weights(tmp_path):
    epochs = 6
    args = ["train", "--arch", ARCH, "--schedule-epochs", str(epochs), *TINY_ARGS, "--quiet"]
    ref = tmp_path / "ref"
    assert main(args + ["--out", str(ref)]) == 0

    out = tmp_path / "killed"
    command = ["-m", "nas_engine", *args, "--out", str(out)]
    proc = warm.popen(command, cwd=tmp_path, env=_env())
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not (out / (CHECKPOINT + ".json")).exists():
            time.sleep(0.01)
        assert proc.poll() is None, f"the training finished (or failed) before it could be killed: " \
                                    f"{proc.stderr[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / MODEL).exists()

    rerun = warm.run(command, cwd=tmp_path, env=_env(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((out / SUMMARY).read_text())
    assert 1 <= summary["resumed_from_epoch"] < epochs and summary["sessions"] == 2
    _assert_same_weights(_weights(ref), _weights(out))
    assert summary["test_acc"] == json.loads((ref / SUMMARY).read_text())["test_acc"]
    assert len(summary["test_acc"]) == epochs

    # a finished directory: the same command trains nothing and writes the same files again
    assert main(args + ["--out", str(out)]) == 0
    _assert_same_weights(_weights(ref), _weights(out))
    assert json.loads((out / SUMMARY).read_text())["resumed_from_epoch"] == epochs


# -- the export runs without nas-engine (b); model.pt rebuilds through the space (c) --------------------------

_NO_NAS_ENGINE = """\
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "nas_engine" or name.startswith("nas_engine."):
            raise ImportError("nas_engine is blocked in this interpreter")
        return None

sys.meta_path.insert(0, Refuse())
try:
    import nas_engine  # noqa: F401
except ImportError:
    pass
else:
    sys.exit("nas_engine could be imported")
import torch

program, inputs, outputs = sys.argv[1:4]
module = torch.export.load(program).module()
x = torch.load(inputs, weights_only=True)
with torch.no_grad():
    torch.save({"all": module(x), "one": module(x[:1])}, outputs)
assert not [m for m in sys.modules if m.split(".")[0] == "nas_engine"]
print("ok")
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("final") / "out"
    return train_final("nb201", ARCH, digits, TINY, schedule_epochs=3, out=out, seed=5, progress=False), out


def test_export_runs_in_an_interpreter_without_nas_engine(trained, digits, tmp_path):
    final, out = trained
    assert final.export_error is None and final.files["export"] == out / EXPORT
    x = (digits.x_test[:32] * torch.tensor(digits.std).view(1, -1, 1, 1)
         + torch.tensor(digits.mean).view(1, -1, 1, 1))  # [0, 1] images: what the export takes
    torch.save(x, tmp_path / "x.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run([sys.executable, "-c", _NO_NAS_ENGINE, str(out / EXPORT), str(tmp_path / "x.pt"),
                          str(tmp_path / "y.pt")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    with torch.no_grad():
        want = Normalized(final.model, digits.mean, digits.std).eval()(x)
        # the trained model on the normalised images the training saw gives the same logits
        torch.testing.assert_close(final.model(digits.x_test[:32]), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got["all"], want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["one"], want[:1], rtol=1e-5, atol=1e-6)  # any batch size
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["export"]["max_abs_diff"] <= 1e-5
    assert summary["input"]["range"] == [0.0, 1.0] and summary["input"]["mean"] == list(digits.mean)


def test_model_pt_loads_weights_only_and_rebuilds_the_network_through_the_space(trained, digits):
    final, out = trained
    obj = torch.load(out / MODEL, map_location="cpu", weights_only=True)
    assert obj["arch"] == ARCH and obj["space"] == {"name": "nb201", "params": {}}
    assert (obj["num_classes"], obj["in_channels"], obj["resolution"]) == (10, 1, 8)
    assert obj["size"] == {"C": 4, "N": 1} and obj["mean"] == list(digits.mean) and obj["std"] == list(digits.std)
    space = from_config("space", obj["space"])
    net = space.build(space.from_string(obj["arch"]), obj["num_classes"], in_channels=obj["in_channels"],
                      **obj["size"])
    net.load_state_dict(obj["state_dict"])
    net.eval()
    _assert_same_weights(net.state_dict(), final.model.state_dict())
    with torch.no_grad():
        assert torch.equal(net(digits.x_test), final.model(digits.x_test))
        wrapped = load_model(out / MODEL)
        assert isinstance(wrapped, Normalized)
        _assert_same_weights(wrapped.net.state_dict(), net.state_dict())
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["arch"] == ARCH and summary["epochs"] == 3 and len(summary["test_acc"]) == 3
    assert summary["final_test_acc"] == final.final_test_acc == final.test_acc[-1]
    assert summary["files"] == {"checkpoint": CHECKPOINT, "model": MODEL, "export": EXPORT, "summary": SUMMARY}


# -- from a stored search (d), the Python API --------------------------------------------------------------

@pytest.fixture(scope="module")
def stored_search(tmp_path_factory, digits):
    store = tmp_path_factory.mktemp("search") / "store"
    result = Search("random", "nb201", "tse-ema", data=digits, protocol=TINY, budget=Budget(evaluations=3),
                    seed=2, store=str(store), progress=False).run()
    return result, store


def test_cli_trains_the_best_architecture_of_a_stored_search(stored_search, digits, tmp_path, capsys):
    result, store = stored_search
    out = tmp_path / "best"
    assert main(["train", "--from", str(store), "--rank", "1", "--data", "digits", "--schedule-epochs", "2",
                 "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "final test accuracy" in printed and str(out / MODEL) in printed and str(out / EXPORT) in printed
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["arch"] == result.best.arch.string
    # the stored search's recipe (C=4, N=1, lr 0.05, batch 128) over the --schedule-epochs schedule
    assert {k: summary["protocol"][k] for k in ("size", "lr", "batch_size", "schedule_epochs")} == \
        {"size": {"C": 4, "N": 1}, "lr": 0.05, "batch_size": 128, "schedule_epochs": 2}

    # the same through the Python API: result.best.train with the stored recipe
    loaded = SearchResult.load(store)
    assert loaded.ranked()[0].arch == loaded.best.arch
    from nas_engine.threads import torch_threads
    from nas_engine.training import Protocol

    protocol = loaded.protocol(device="cpu")
    assert protocol == Protocol.from_dict({**loaded.config["protocol"], "device": "cpu"})
    assert loaded.protocol(size={"C": 8}).size == {"C": 8, "N": 1}  # one size key changed, the others stored
    with torch_threads(1):
        final = loaded.best.train(digits, protocol, schedule_epochs=2, out=tmp_path / "api", progress=False)
    _assert_same_weights(final.model.state_dict(), _weights(out))
    net = loaded.best.build(digits, protocol, seed=0)
    assert isinstance(net, torch.nn.Module) and net.classifier.out_features == digits.num_classes

    ranked = loaded.ranked()
    assert len({e.arch.string for e in ranked}) == len(ranked)
    assert [e.score for e in ranked] == sorted((e.score for e in ranked), reverse=True)


# -- errors (e) -----------------------------------------------------------------------------------------------

def _one_line_error(capsys, args) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas-engine: error: ") and "\n" not in err, err
    return err


def test_errors_are_one_line_and_exit_2(stored_search, trained, tmp_path, capsys):
    _, store = stored_search
    n = len(SearchResult.load(store).ranked())
    err = _one_line_error(capsys, ["train", "--from", str(store), "--rank", str(n + 1), "--schedule-epochs", "1",
                                   "--out", str(tmp_path / "x")])
    assert f"--rank {n + 1}" in err and f"1..{n}" in err
    err = _one_line_error(capsys, ["train", "--arch", "|nor_conv_3x3~0|+|none~0|skip_connect~1|",
                                   "--schedule-epochs", "1", "--out", str(tmp_path / "y")])
    assert "must have 3 nodes" in err and "|nor_conv_3x3~0|+|none~0|skip_connect~1|" in err
    err = _one_line_error(capsys, ["train", "--arch", "|nor_conv_3x3~0|+|nne~0|skip_connect~1|+|none~0|none~1|none~2|",
                                   "--schedule-epochs", "1", "--out", str(tmp_path / "y")])
    assert "unknown op 'nne'" in err
    # an existing out directory of another configuration: the differing keys are named
    _, out = trained
    err = _one_line_error(capsys, ["train", "--arch", ARCH, "--schedule-epochs", "3", *TINY_ARGS, "--lr", "0.1",
                                   "--seed", "5", "--out", str(out)])
    assert "protocol.lr: 0.05 there, 0.1 here" in err and "seed" in err
    err = _one_line_error(capsys, ["train", "--arch", ARCH, "--schedule-epochs", "4", "--out", str(out), *TINY_ARGS])
    assert "protocol.schedule_epochs: 3 there, 4 here" in err
    # finished files without their checkpoint are not overwritten
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / MODEL).write_bytes(b"")
    err = _one_line_error(capsys, ["train", "--arch", ARCH, "--schedule-epochs", "1", "--out", str(bare)])
    assert "no checkpoint.pt" in err
    # options that do not go together
    assert "--rank goes with --from" in _one_line_error(
        capsys, ["train", "--arch", ARCH, "--rank", "2", "--schedule-epochs", "1", "--out", str(tmp_path / "z")])
    assert "--space goes with --arch" in _one_line_error(
        capsys, ["train", "--from", str(store), "--space", "nb201", "--schedule-epochs", "1", "--out",
                 str(tmp_path / "z")])
    assert "needs --schedule-epochs" in _one_line_error(capsys, ["train", "--arch", ARCH, "--out", str(tmp_path / "z")])
    assert "no store here" in _one_line_error(
        capsys, ["train", "--from", str(tmp_path / "nowhere"), "--schedule-epochs", "1", "--out", str(tmp_path / "z")])
