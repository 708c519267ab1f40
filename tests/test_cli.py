import json
import re
from importlib import metadata

import pytest

import nas_engine
from nas_engine.cli import _parser, main
from nas_engine.registry import list_plugins
from nas_engine.training import PRESETS, Protocol


def test_list(capsys):
    assert main(["list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "tse-ema" in out["estimator"] and "nb201" in out["space"]
    assert main(["list"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert {"fixed", "random", "regularized-evolution"} <= set(lines["strategy"].split(", "))
    assert "tse-ema" in lines["estimator"].split(", ") and {"darts", "nb201"} <= set(lines["space"].split(", "))


ARGS = ["search", "--strategy", "random", "--space", "nb201", "--estimator", "tse-ema", "--data", "digits",
        "--evaluations", "3", "--epochs", "2", "--schedule-epochs", "10", "--C", "4", "--N", "1",
        "--batch-size", "128", "--device", "cpu", "--seed", "4"]


def test_search_json(capsys, tmp_path):
    assert main(ARGS + ["--json", "--out", str(tmp_path / "run")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["evaluations"]) == 3 and out["best"]["arch"].startswith("|")
    assert out["best"]["score"] == max(e["score"] for e in out["evaluations"])
    assert (tmp_path / "run" / "run.sqlite").exists()


def test_search_table(capsys):
    assert main(ARGS + ["--quiet", "--estimator-arg", "gamma=0.9"]) == 0
    out = capsys.readouterr().out
    assert "best: |" in out and "3 evaluations (0 failed)" in out


def test_errors_exit_2_with_message(capsys, tmp_path):
    assert main(["search", "--estimator", "tse-emma", "--evaluations", "1"]) == 2
    err = capsys.readouterr().err
    assert "argument --estimator: invalid choice: 'tse-emma'" in err and "'tse-ema'" in err  # the known names
    assert main(["search", "--data", "cifar10", "--data-root", str(tmp_path / "nowhere"), "--evaluations", "1"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["search", "--side", "8", "--evaluations", "1"]) == 2
    assert "side is an option of 'synthetic-cifar10' only" in capsys.readouterr().err


def test_search_on_synthetic_cifar10_at_a_smaller_side(capsys):
    args = [a if a != "digits" else "synthetic-cifar10" for a in ARGS]
    assert main(args + ["--side", "8", "--n-train", "200", "--n-val", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["data"].startswith("synthetic-cifar10:8px:side8:pool250:train200:val50")
    assert len(out["evaluations"]) == 3


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    try:
        expected = metadata.version("nas-engine")
    except metadata.PackageNotFoundError:
        expected = nas_engine.__version__
    assert out == f"nas-engine {expected}"


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_option_has_help_and_shows_its_default():
    import argparse

    parser = _parser()
    commands = dict(_subparsers(parser))
    assert {"list", "search", "correlate", "show", "report", "migrate", "bench", "bench build", "bench table"} \
        <= set(commands)
    for name, sub in commands.items():
        fmt = sub._get_formatter()
        for action in sub._actions:
            if "-h" in action.option_strings or isinstance(action, argparse._SubParsersAction):
                continue  # the commands of a command list their help themselves
            assert action.help, f"nas-engine {name} {action.option_strings or action.dest}: no help text"
            shown = fmt._get_help_string(action) % {"default": action.default}
            if action.option_strings and action.default not in (None, False, [], "==SUPPRESS=="):
                assert "default" in shown and str(action.default) in shown, (name, action.option_strings, shown)


def test_search_help_lists_defaults_and_choices(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside names
    assert main(["search", "--help"]) == 0
    out = re.sub(r"\s+", " ", capsys.readouterr().out)
    plugins = list_plugins()
    assert "(default: regularized-evolution)" in out and "(default: tse-ema)" in out and "(default: small)" in out
    assert "one of: " + ", ".join(plugins["estimator"]) in out
    assert "one of: " + ", ".join(plugins["strategy"]) in out
    assert "small: the space's small size, batch 128, lr 0.1, 50-epoch schedule" in out
    assert "nb201: the space's default size, batch 256, lr 0.1, 200-epoch schedule" in out
    assert "(default: 20 when no other budget is given" in out and "(default: 10)" in out  # --top
    assert main(["report", "--help"]) == 0
    assert "(default: DIR/report/index.html)" in re.sub(r"\s+", " ", capsys.readouterr().out)
    assert main(["search", "--strategy", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_bare_search_runs_the_small_protocol_on_digits(capsys):
    assert main(["search", "--evaluations", "2", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    cfg = out["config"]
    small = PRESETS["small"]
    assert cfg["strategy"]["name"] == "regularized-evolution" and cfg["space"]["name"] == "nb201"
    # the estimator's own T: the CLI adds nothing to the estimator
    assert cfg["estimator"] == {"name": "tse-ema", "params": {"epochs": 10, "gamma": 0.999, "validate": False}}
    assert cfg["data"].startswith("digits:")
    p = cfg["protocol"]
    assert (p["size"], p["batch_size"], p["lr"], p["schedule_epochs"]) == ({"C": 8, "N": 1}, 128, 0.1, 50)
    assert (p["batch_size"], p["lr"], p["schedule_epochs"]) == (small["batch_size"], small["lr"],
                                                                small["schedule_epochs"])
    assert len(out["evaluations"]) == 2 and all(e["status"] == "ok" for e in out["evaluations"])
    assert out["score_description"].startswith("negated discounted sum of training losses")
    assert out["this_run"]["evaluations"] == 2 and out["this_run"]["earlier_evaluations"] == 0


@pytest.mark.parametrize("space, cli, protocol", [
    ("nb201", [], None),  # every default: the same search
    ("darts", ["--protocol", "small", "--C", "4", "--size", "layers=3", "--lr", "0.05"],
     Protocol.preset("small", size={"C": 4, "layers": 3}, lr=0.05)),
    ("nb101", ["--protocol", "nb201", "--size", "stem_channels=4", "--size", "cells_per_stack=1",
               "--schedule-epochs", "3", "--batch-size", "64"],
     Protocol.preset("nb201", size={"stem_channels": 4, "cells_per_stack": 1}, schedule_epochs=3, batch_size=64)),
])
def test_the_api_and_the_cli_store_the_same_search(tmp_path, capsys, space, cli, protocol):
    from nas_engine import Budget, Search
    from nas_engine.store import RunStore

    estimator = "tse-ema" if space == "nb201" else "params"
    Search("regularized-evolution", space, estimator, protocol=protocol, budget=Budget(evaluations=1),
           store=str(tmp_path / "api"), progress=False).run()
    assert main(["search", "--space", space, "--estimator", estimator, "--evaluations", "1",
                 "--out", str(tmp_path / "cli"), "--quiet", *cli]) == 0
    api, cmd = RunStore(tmp_path / "api").config(), RunStore(tmp_path / "cli").config()
    assert api == cmd
    # so each resumes the other's store
    assert main(["search", "--space", space, "--estimator", estimator, "--evaluations", "1",
                 "--out", str(tmp_path / "api"), "--quiet", *cli]) == 0


@pytest.mark.parametrize("extra, expected", [
    ([], ({"C": 16, "N": 5}, 256, 0.1, 200)),
    (["--C", "4", "--lr", "0.05", "--schedule-epochs", "20"], ({"C": 4, "N": 5}, 256, 0.05, 20)),
    (["--size", "C=4", "--size", "N=2"], ({"C": 4, "N": 2}, 256, 0.1, 200)),
])
def test_protocol_nb201_is_the_benchmark_recipe(capsys, extra, expected):
    # a zero-cost estimator: the configuration is checked without training anything
    assert main(["search", "--protocol", "nb201", "--estimator", "params", "--evaluations", "1", "--json",
                 "--device", "cpu", *extra]) == 0
    p = json.loads(capsys.readouterr().out)["config"]["protocol"]
    assert (p["size"], p["batch_size"], p["lr"], p["schedule_epochs"]) == expected
    assert (p["momentum"], p["nesterov"], p["weight_decay"]) == (0.9, True, 5e-4)


def test_size_options_are_checked_by_the_space(capsys):
    common = ["search", "--estimator", "params", "--evaluations", "1", "--device", "cpu", "--quiet"]
    assert main(common + ["--space", "darts", "--N", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("nas-engine: error: space 'darts' has no size parameter 'N'; "
                                               "its size parameters: C, layers")
    assert main(common + ["--C", "4", "--size", "C=8"]) == 2
    assert "--C 4 and --size C=8 disagree" in capsys.readouterr().err
    assert main(common + ["--size", "C=0"]) == 2
    assert "space 'nb201': size C must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(common + ["--estimator", "tse", "--epochs", "60"]) == 2  # T beyond the small recipe's schedule
    assert "the protocol's schedule has schedule_epochs=50" in capsys.readouterr().err


def test_an_explicit_t_goes_to_the_estimator(capsys):
    common = ["search", "--strategy", "random", "--evaluations", "1", "--json", "--device", "cpu", "--C", "4"]
    assert main(common + ["--estimator", "valacc", "--estimator-arg", "epochs=2"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["estimator"]["params"]["epochs"] == 2
    assert main(common + ["--estimator", "tse", "--epochs", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["estimator"]["params"]["epochs"] == 1
    assert main(common + ["--estimator", "flops"]) == 0  # no epochs: nothing added
    assert "epochs" not in json.loads(capsys.readouterr().out)["config"]["estimator"]["params"]


def test_resumed_search_tells_this_run_from_the_stored_total(capsys, tmp_path):
    args = ["search", "--strategy", "random", "--estimator", "params", "--quiet", "--device", "cpu",
            "--out", str(tmp_path / "run")]
    assert main(args + ["--evaluations", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"2 evaluations \(0 failed\); this run: [0-9.]+ s; training time", out)
    assert "stored total" not in out and "score: number of parameters of the network" in out
    assert main(args + ["--evaluations", "5"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"5 evaluations \(0 failed\); this run: ([0-9.]+) s \(3 evaluations\); stored total: ([0-9.]+) s "
                  r"\(2 evaluations from earlier runs\); training time [0-9.]+ s \(all runs\)", out)
    assert m, out
    # "this run" is the CLI's clock around Search.run (opening the store and the resource check included), the
    # stored total the search's own clock over all runs: equal but for that overhead and the 0.1 s rounding
    assert float(m.group(2)) + 0.5 >= float(m.group(1))
    assert main(["show", str(tmp_path / "run")]) == 0
    assert "5 evaluations (0 failed) in " in capsys.readouterr().out
