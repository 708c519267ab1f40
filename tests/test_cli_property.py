"""Issue 33: the CLI parser driven with random option values never shows a traceback.

Every invocation ends with exit status 0, 1 or 2, and a status 2 comes with exactly one line on standard error
that names the option (or the value) it refuses.  The test drives validation, not training: the data is the tiny
digits subset whatever ``--data`` says (the loaders' own options are checked by their tests), and where a command
would start training (``Search.run``, ``train_final``, ``build_table``) or draw figures (``write_report``) it
raises :class:`Reached` instead; more than 3 sampled architectures are sampled as 3 (the bound is still
checked).  ``show`` and ``migrate`` run for real on a tiny store.  Derandomized, so CI sees the same examples on
every run.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas_engine import cli, correlate
from nas_engine.cli import main
from nas_engine.spaces.base import Enumerable

from .conftest import digits_subset, zero_cost_store

A = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


class Reached(Exception):
    """Every option was accepted: the command got as far as loading its data (or writing its report)."""


# numbers of every kind, as a shell would pass them: negative, zero, huge, NaN, infinities, floats for integers,
# other spellings, and non-numbers
NUMBERS = st.one_of(
    st.integers(-3, 3).map(str),
    st.integers(1, 64).map(str),  # valid more often than not: the command goes on to its later checks
    st.sampled_from(["1", "2", "4", "8", "0.1", "1e-3"]),
    st.integers(-2**70, 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "-0.0", "0.5", "1e-320", "2147483648", "9" * 5000,
                     "0x10", "1_000", "٣", " 7 ", "", " ", "abc", "--", "-"]),
)
TEXT = st.one_of(st.sampled_from(["", " ", "nope", "x" * 300, "a=b", "1", "-1"]), st.text(max_size=6))
KEYS = st.sampled_from(["C", "N", "layers", "epochs", "gamma", "population_size", "threads", "workers",
                        "max_retries", "max_memory_mb", "labels", "flip", "x", "1", ""])
KEY_VALUES = st.builds(lambda k, v: f"{k}={v}", KEYS, st.one_of(NUMBERS, TEXT, st.just('"s"'), st.just("[1]")))
PATHS = st.one_of(st.sampled_from(["", " ", "out", "a/b/c", "/dev/null", "/proc/nope", "/", "."]), TEXT)


def choice(*valid: str):
    return st.one_of(st.sampled_from(valid), TEXT)


TRAINING = {
    "--data": choice("digits", "synthetic-cifar10", "cifar10", "npz:nope.npz"), "--data-root": PATHS,
    "--data-arg": KEY_VALUES, "--n-train": NUMBERS, "--n-val": NUMBERS, "--resolution": NUMBERS, "--side": NUMBERS,
    "--protocol": choice("small", "nb201"), "--schedule-epochs": NUMBERS, "--batch-size": NUMBERS, "--lr": NUMBERS,
    "--size": KEY_VALUES, "--C": NUMBERS, "--N": NUMBERS, "--device": choice("cpu", "auto", "cuda:0", "cuda:-1"),
    "--amp": choice("bf16", "fp16"), "--seed": NUMBERS,
}
EXECUTION = {"--executor": choice("auto", "inline", "processes"), "--workers": NUMBERS, "--threads": NUMBERS,
             "--executor-arg": KEY_VALUES}
SPACES = choice("nb201", "darts", "nb101")

# each command: the arguments it always gets (small budgets), and its options with the values to try
COMMANDS = {
    "search": (["search", "--evaluations", "1", "--estimator", "params", "--quiet"], {
        **TRAINING, **EXECUTION, "--strategy": choice("random", "regularized-evolution"), "--space": SPACES,
        "--estimator": choice("params", "tse-ema"), "--strategy-arg": KEY_VALUES, "--estimator-arg": KEY_VALUES,
        "--evaluations": NUMBERS, "--budget-epochs": NUMBERS, "--budget-seconds": NUMBERS,
        "--budget-cost-seconds": NUMBERS, "--epochs": NUMBERS, "--top": NUMBERS, "--out": PATHS}),
    "train": (["train", "--arch", A, "--schedule-epochs", "1", "--out", "trained", "--quiet"], {
        **TRAINING, "--arch": TEXT, "--space": SPACES, "--threads": NUMBERS, "--out": PATHS}),
    "train --from": (["train", "--from", "STORE", "--schedule-epochs", "1", "--out", "trained", "--quiet"], {
        **TRAINING, "--rank": NUMBERS, "--from": PATHS, "--threads": NUMBERS}),
    "bench build": (["bench", "build", "--archs", "1", "--schedule-epochs", "1", "--out", "bench", "--quiet"], {
        **TRAINING, **EXECUTION, "--archs": NUMBERS, "--space": SPACES, "--out": PATHS}),
    "correlate": (["correlate", "--epochs", "1", "--truth", "nope.jsonl", "--out", "corr", "--quiet"], {
        **TRAINING, "--archs": NUMBERS, "--epochs": NUMBERS, "--estimators": TEXT, "--truth": PATHS}),
    "show": (["show", "STORE"], {"--top": NUMBERS, "--json": None, "--csv": PATHS}),
    "report": (["report", "STORE", "--out", "page"], {"--top": NUMBERS, "--out": PATHS, "--truth": PATHS}),
    "migrate": (["migrate"], {"": PATHS}),
}


@st.composite
def invocations(draw):
    """``(argv, given)``: a command with 1-4 of its options set to random values, and the options set."""
    name = draw(st.sampled_from(sorted(COMMANDS)))
    base, options = COMMANDS[name]
    chosen = draw(st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=4, unique=True))
    argv = list(base)  # the base's options may be what an error names too (--truth of correlate)
    given = {o: v for o, v in zip(base, base[1:]) if o.startswith("--") and not v.startswith("--")}
    for option in chosen:
        if options[option] is None:  # a flag
            argv.append(option)
            continue
        value = draw(options[option])
        given[option] = value
        argv += [value] if option == "" else [f"{option}={value}"]  # --opt=VALUE: a value may start with '-'
    return argv, given


def _names_the_option(line: str, given: dict[str, str]) -> bool:
    """Whether a one-line error names one of the options given (as typed, or as the field it sets, or the key of
    its KEY=VALUE), or shows its value (as given, or as repr() shows it)."""
    names = ["DIR", "argument"]  # a positional, or an option that argparse names itself ("argument --top: ...")
    values = []
    for option, value in given.items():
        bare = option.lstrip("-")
        names += [option, bare.replace("-", "_"), bare.replace("-", " ")] if bare else []
        if "=" in value:
            names.append(value.split("=", 1)[0] or "=")
        if option in ("--C", "--N"):
            names.append("size")
        for shown in (value.strip(), repr(value)[1:-1], value.strip().rstrip("/")):
            if shown:
                values.append(shown[:40])
    return (any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", line) for n in names if n)
            or any(v in line for v in values))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A stored search of two evaluations (zero-cost: nothing trains)."""
    return zero_cost_store(tmp_path_factory.mktemp("cli-property") / "run", 2)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(invocation=invocations())
def test_random_option_values_never_show_a_traceback(invocation, store, tmp_path, monkeypatch, capsys):
    def reached(*args, **kwargs):
        raise Reached

    def sample(space, n, seed=0, **kwargs):  # the bounds are checked; at most 3 are sampled
        known = len(space) if isinstance(space, Enumerable) and kwargs.get("among") is None else 3
        return real_sample(space, n if n > known else min(n, 3), seed, **kwargs)

    real_sample = correlate.sample_architectures
    monkeypatch.chdir(tmp_path)  # relative paths (--out, --csv) land in a scratch directory
    monkeypatch.setattr(cli, "_data", lambda args: digits_subset())
    monkeypatch.setattr(correlate, "sample_architectures", sample)
    for where in ("nas_engine.search.Search.run", "nas_engine.final.train_final", "nas_engine.build.build_table",
                  "nas_engine.report.write_report"):
        monkeypatch.setattr(where, reached)
    argv, given = invocation
    argv = [store if a == "STORE" else a for a in argv]
    capsys.readouterr()
    try:
        status = main(argv)
    except Reached:
        return  # every option was valid: the command would now train
    err = capsys.readouterr().err
    assert status in (0, 1, 2), (argv, status, err)
    assert "Traceback" not in err, (argv, err)
    if status == 2:
        line = err.rstrip("\n")
        assert line and "\n" not in line, (argv, err)  # one line
        assert line.startswith("nas-engine"), (argv, line)
        assert _names_the_option(line, given), (argv, line)
