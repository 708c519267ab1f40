"""random, regularized-evolution and bo run on the nb101 space from the API and the CLI (tiny sizes).

The helpers are shared with tests/test_randwired.py, which runs the same searches on ``randwired``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nas_engine import Budget, Protocol, Search, create
from nas_engine.cli import main

#: a width-4 network, one cell/stage, trained for one epoch by the tse estimator (about 0.1-0.3 s a candidate)
PROTOCOL = Protocol(schedule_epochs=2, batch_size=128, lr=0.05, device="cpu", scale="tiny")
EVALUATIONS = 3
#: small settings so that the third evaluation is a mutant (evolution) or a GP proposal (bo)
STRATEGY_ARGS = {
    "random": {},
    "regularized-evolution": {"population_size": 2, "sample_size": 2},
    "bo": {"initial_points": 2, "pool_size": 20, "n_incumbents": 2, "mc_samples": 16, "fit_maxiter": 20},
}
STRATEGIES = tuple(STRATEGY_ARGS)


def check_history(space, strategy: str, archs, scores) -> None:
    """Common assertions: the right count, finite scores, valid distinct proposals, and what the strategy
    must have done for its third proposal."""
    assert len(archs) == EVALUATIONS and len(scores) == EVALUATIONS
    assert all(math.isfinite(s) for s in scores), scores
    for a in archs:
        assert a.space_name == space.name and space.from_string(a.string) == a  # valid in the space
    if strategy == "regularized-evolution":  # P=2: the third proposal mutates the better of the first two
        parent = archs[int(np.argmax(scores[:2]))]
        assert space.canonical(archs[2]) != space.canonical(parent)
    if strategy == "bo":  # the GP never proposes an encoding it has already observed
        codes = {space.encode(a).tobytes() for a in archs}
        assert len(codes) == EVALUATIONS
    if strategy == "random":
        assert len(set(archs)) == EVALUATIONS


def api_search(strategy: str, space_name: str, space=None):
    space = space if space is not None else create("space", space_name)
    result = Search(create("strategy", strategy, **STRATEGY_ARGS[strategy]), space,
                    create("estimator", "tse", epochs=1), data="digits", protocol=PROTOCOL,
                    budget=Budget(evaluations=EVALUATIONS), progress=False).run()
    archs = [e.arch for e in result.history]
    scores = [float(e.score) for e in result.history]
    check_history(space, strategy, archs, scores)
    assert all(e.epochs == 1 for e in result.history)  # tse trained each candidate for one epoch
    return result


#: the space's tiny size on the command line (each space's own size parameters)
SIZE_ARGS = {"nb101": ["--size", "stem_channels=4", "--size", "cells_per_stack=1"],
             "randwired": ["--C", "4", "--size", "stages=1"]}


def cli_search(strategy: str, space_name: str, tmp_path, capsys) -> dict:
    args = ["search", "--strategy", strategy, "--space", space_name, "--estimator", "tse", "--epochs", "1",
            "--data", "digits", "--evaluations", str(EVALUATIONS), *SIZE_ARGS[space_name], "--device", "cpu",
            "--workers", "1", "--json", "--out", str(tmp_path / "run")]
    for key, value in STRATEGY_ARGS[strategy].items():
        args += ["--strategy-arg", f"{key}={value}"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["strategy"]["name"] == strategy and out["config"]["space"]["name"] == space_name
    assert out["config"]["strategy"]["params"].items() >= STRATEGY_ARGS[strategy].items()
    space = create("space", space_name)
    evaluations = out["evaluations"]
    archs = [space.from_string(e["arch"]) for e in evaluations]
    scores = [float(e["score"]) for e in evaluations]
    check_history(space, strategy, archs, scores)
    assert all(e["status"] == "ok" and e["epochs"] == 1 for e in evaluations)
    assert out["best"]["arch"] == archs[int(np.argmax(scores))].string
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_api_search_on_nb101(strategy):
    api_search(strategy, "nb101")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cli_search_on_nb101(strategy, tmp_path, capsys):
    cli_search(strategy, "nb101", tmp_path, capsys)
