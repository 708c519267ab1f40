import json

from nas_engine.cli import main


def test_list(capsys):
    assert main(["list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "tse-ema" in out["estimator"] and "nb201" in out["space"]
    assert main(["list"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert {"fixed", "random", "regularized-evolution"} <= set(lines["strategy"].split(", "))
    assert "tse-ema" in lines["estimator"].split(", ") and lines["space"].split(", ")[0] == "nb201"


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
    assert "unknown estimator 'tse-emma'" in capsys.readouterr().err
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
