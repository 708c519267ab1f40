"""Reliability, round two (issue 33), the CLI: 0 is a value, not "unset"; every numeric option is range-checked
before the data is loaded; ``show --json --csv -``, empty paths and a closed standard output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas_engine import Budget, cli
from nas_engine.build import build_table
from nas_engine.cli import main
from nas_engine.correlate import sample_architectures
from nas_engine.final import train_final
from nas_engine.report import write_report
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.training import Protocol

from .conftest import zero_cost_store

ROOT = Path(__file__).resolve().parents[1]
A = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A stored search of three evaluations (zero-cost: nothing trains)."""
    return zero_cost_store(tmp_path_factory.mktemp("cli") / "run", 3)


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """Loading the data fails the test: what is refused is refused before; the current directory is empty."""
    def load(args):
        raise AssertionError("the data was loaded before the options were checked")

    monkeypatch.setattr(cli, "_data", load)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys, argv: list[str]) -> str:
    """The one line a refused invocation prints (it exits 2 and prints nothing else)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


# -- 0 is a value, not "unset" ---------------------------------------------------------------------------
@pytest.mark.parametrize("argv, option", [
    (["train", "--arch", A, "--schedule-epochs", "0", "--out", "t"], "--schedule-epochs"),
    (["bench", "build", "--archs", "2", "--schedule-epochs", "0", "--out", "b"], "--schedule-epochs"),
    (["bench", "build", "--archs", "0", "--schedule-epochs", "1", "--out", "b"], "--archs"),
    (["search", "--schedule-epochs", "0"], "--schedule-epochs"),
    (["search", "--epochs", "0"], "--epochs"),
    (["search", "--evaluations", "0"], "--evaluations"),
    (["search", "--batch-size", "0"], "--batch-size"),
    (["search", "--C", "0"], "--C"),
    (["search", "--workers", "0"], "--workers"),
    (["train", "--from", "s", "--rank", "0", "--schedule-epochs", "1", "--out", "t"], "--rank"),
    (["correlate", "--archs", "0", "--epochs", "1", "--truth", "t.csv", "--out", "c"], "--archs"),
])
def test_zero_is_refused_where_it_means_nothing(capsys, no_data, argv, option):
    line = refused(capsys, argv)
    command = " ".join(argv[:2] if argv[0] == "bench" else argv[:1])
    assert line.startswith(f"nas-engine {command}: error: argument {option}: expected an integer in 1..")
    assert line.endswith(f", got '0' (see nas-engine {command} --help)")
    assert list(no_data.iterdir()) == []  # nothing was written


@pytest.mark.parametrize("argv, option", [
    (["train", "--arch", A, "--epochs", "0", "--out", "t"], "--epochs 0"),  # train's length is --schedule-epochs
    (["bench", "build", "--archs", "1", "--epochs", "0", "--out", "b"], "--epochs 0"),
])
def test_an_estimator_budget_given_to_a_whole_training_is_refused(capsys, no_data, argv, option):
    assert refused(capsys, argv) == f"nas-engine: error: unrecognized arguments: {option} (see nas-engine --help)"


def test_zero_is_a_value_in_the_library_too(store, tmp_path):
    for make, fragment in [(lambda: Protocol(schedule_epochs=0), "schedule_epochs must be an integer >= 1, got 0"),
                           (lambda: Budget(evaluations=0), "evaluations must be an integer >= 1 or None, got 0"),
                           (lambda: Budget(epochs=0), "epochs must be a finite number > 0 or None, got 0"),
                           (lambda: write_report(store, tmp_path / "r", top=-1), "top must be an integer >= 0"),
                           (lambda: write_report(store, "", top=3), "out must be a path"),
                           (lambda: train_final("nb201", A, None, schedule_epochs=0, out=tmp_path / "t"),
                            "schedule_epochs must be a positive integer, got 0"),
                           (lambda: build_table(None, None, None, archs=0, out=tmp_path / "b"),
                            "build_table: archs must be an integer >= 1, got 0"),
                           (lambda: build_table(None, None, None, archs=2, out=""), "out must be a directory")]:
        with pytest.raises(ValueError, match=fragment):
            make()
    assert list(tmp_path.iterdir()) == []


def test_zero_rows_are_honoured_by_show(capsys, store):
    assert main(["show", store, "--top", "0"]) == 0
    out = capsys.readouterr().out
    assert "3 evaluations (0 failed)" in out and "best: " in out and "index" not in out  # the summary, no table
    assert main(["show", store, "--top", "1"]) == 0
    assert "index" in capsys.readouterr().out


# -- every numeric option is range-checked when parsed -----------------------------------------------------
@pytest.mark.parametrize("option, value, expected", [
    ("--top", "-1", "an integer in 0..2147483647"),
    ("--top", "2147483648", "an integer in 0..2147483647"),
    ("--evaluations", "nan", "an integer in 1..2147483647"),
    ("--epochs", "2.5", "an integer in 1..2147483647"),
    ("--batch-size", "1e3", "an integer in 1..2147483647"),
    ("--N", "-2", "an integer in 1..2147483647"),
    ("--resolution", "100000000000", "an integer in 1..2147483647"),
    ("--n-val", "-1", "an integer in 0..2147483647"),
    ("--seed", "-1", "an integer in 0..9223372036854775807"),
    ("--seed", str(2**63), "an integer in 0..9223372036854775807"),
    ("--threads", "-1", "an integer in 1..2147483647"),
    ("--lr", "nan", "a finite number > 0"),
    ("--lr", "-0.1", "a finite number > 0"),
    ("--budget-seconds", "inf", "a finite number > 0"),
    ("--budget-epochs", "1e400", "a finite number > 0"),
    ("--budget-cost-seconds", "0", "a finite number > 0"),
])
def test_search_options_are_range_checked_before_the_data_is_loaded(capsys, no_data, option, value, expected):
    assert refused(capsys, ["search", option, value]) == (
        f"nas-engine search: error: argument {option}: expected {expected}, got '{value}' "
        "(see nas-engine search --help)")


@pytest.mark.parametrize("argv, option, value", [
    (["train", "--arch", A, "--schedule-epochs", "1", "--out", "t", "--threads"], "--threads", "0"),
    (["train", "--arch", A, "--schedule-epochs", "1", "--out", "t", "--batch-size"], "--batch-size", "-8"),
    (["bench", "build", "--archs", "1", "--schedule-epochs", "1", "--out", "b", "--lr"], "--lr", "inf"),
    (["show", "s", "--top"], "--top", "-1"),
    (["search", "--workers"], "--workers", "65537"),  # a slot per worker is held up front
    (["bench", "build", "--schedule-epochs", "1", "--out", "b", "--archs"], "--archs", "100001"),
    (["report", "s", "--top"], "--top", "-5"),
])
def test_the_other_commands_check_their_numbers_too(capsys, no_data, argv, option, value):
    line = refused(capsys, [*argv, value])
    assert f"error: argument {option}: expected " in line and f"got '{value}'" in line


def test_more_architectures_than_the_space_holds_are_refused_before_the_data(capsys, no_data):
    # they used to be sampled for 1,000 x 15,626 draws after the data was loaded, and only then refused
    line = refused(capsys, ["bench", "build", "--archs", "15626", "--schedule-epochs", "1", "--out", "b"])
    assert line == "nas-engine: error: 15626 distinct architectures asked, but the space 'nb201' holds 15625"
    assert list(no_data.iterdir()) == []
    with pytest.raises(ValueError, match="3 distinct architectures asked, but only 1 are given to sample from"):
        sample_architectures(NB201Space(), 3, among=[A, A])


def test_a_learning_rate_beyond_float32_is_refused_by_the_protocol_before_the_data(capsys, no_data):
    # it used to train, and fail every candidate with "value cannot be converted to type float without overflow"
    assert refused(capsys, ["search", "--lr", "1e39"]) == (
        "nas-engine: error: Protocol: lr must be a finite number > 0 and <= 3.40282e+38, got 1e+39")


def test_more_threads_than_cpus_for_train_are_refused_before_the_data(capsys, no_data):
    line = refused(capsys, ["train", "--arch", A, "--schedule-epochs", "1", "--out", "t", "--threads", "100000"])
    assert line.startswith("nas-engine: error: --threads=100000: more torch threads than the")


# -- show --json --csv -, empty paths -------------------------------------------------------------------
def test_show_json_with_csv_to_stdout_is_refused_and_with_a_file_does_both(capsys, store, tmp_path):
    assert refused(capsys, ["show", store, "--json", "--csv", "-"]) == (
        "nas-engine: error: --json and --csv - both write to standard output; give one of them, or --csv PATH "
        "to write the CSV to a file beside the JSON")
    csv = tmp_path / "all.csv"
    assert main(["show", store, "--json", "--csv", str(csv)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["evaluations"]) == 3 and len(csv.read_text().splitlines()) == 1 + 3


@pytest.mark.parametrize("argv, option", [
    (["train", "--arch", A, "--schedule-epochs", "1", "--out", ""], "--out"),
    (["search", "--out", ""], "--out"),
    (["bench", "build", "--archs", "1", "--schedule-epochs", "1", "--out", " "], "--out"),
    (["report", "s", "--out", ""], "--out"),
    (["show", ""], "DIR"),
    (["show", "s", "--csv", ""], "--csv"),
    (["search", "--data-root", ""], "--data-root"),
])
def test_an_empty_path_is_refused_instead_of_meaning_the_current_directory(capsys, no_data, argv, option):
    line = refused(capsys, argv)
    assert f"error: argument {option}: expected a path, got '" in line
    assert list(no_data.iterdir()) == []  # nothing written into the current directory


def test_a_csv_path_that_cannot_be_written_names_the_option(capsys, store, tmp_path):
    path = tmp_path / "no" / "such" / "x.csv"
    assert main(["show", store, "--csv", str(path)]) == 2
    line = capsys.readouterr().err  # (after the store's two header lines on standard output)
    assert line.count("\n") == 1 and line.startswith(f"nas-engine: error: --csv {path}: cannot write it (")


# -- a closed standard output ---------------------------------------------------------------------------
def test_show_into_a_pipe_closed_early_exits_quietly(store):
    """``nas-engine show DIR | head -c0``: the reader is gone before anything is written."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "nas_engine.cli", "show", store], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away: every write to the pipe fails with EPIPE
    try:
        err = proc.stderr.read()
        status = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert err == b"" and status == 1  # no "Broken pipe" and no traceback; Python's documented status
    assert time.monotonic() - t0 < 60
