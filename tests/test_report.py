"""``nas-engine report DIR``: a self-contained HTML page about a stored search, every number from the store."""

from __future__ import annotations

import base64
import html
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from nas_engine import Budget, Search, SearchResult, create
from nas_engine.benchmarks import JsonlCurveTable
from nas_engine.cli import main
from nas_engine.criteria import kendall, spearman
from nas_engine.curves import LearningCurve
from nas_engine.estimators.base import Estimator
from nas_engine.registry import estimators as estimator_registry
from nas_engine.report import (
    failure_counts,
    reason_prefix,
    truth_pairs,
    write_report,
)
from nas_engine.results import evaluation_accuracy
from nas_engine.search import EvaluationWarning
from nas_engine.spaces.nb201 import NB201Space
from nas_engine.store import RunStore, StoreError

from .conftest import TINY
from .faulty import archs

SPACE = NB201Space()
PNG = b"\x89PNG\r\n\x1a\n"


ARCHS = archs(6)
UNLUCKY = ARCHS[2]


class ParamsExceptOne(Estimator):
    """The network's parameter count (the registered ``params`` estimator), except for one cell, which raises."""

    def __init__(self, unlucky: str = UNLUCKY):
        self.unlucky = unlucky

    def estimate(self, arch, ctx):
        if arch.string == self.unlucky:
            raise ValueError("this cell is unlucky")
        return create("estimator", "params").estimate(arch, ctx)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A finished store: 6 fixed cells scored by their parameter count on digits, one failed."""
    d = tmp_path_factory.mktemp("report") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)  # the unlucky cell's traceback
        Search(create("strategy", "fixed", archs=ARCHS), "nb201", ParamsExceptOne(), data="digits", protocol=TINY,
               budget=Budget(evaluations=6), store=str(d), progress=False).run()
    return d


def span(page: str, ident: str) -> str:
    m = re.search(rf'id="{ident}">([^<]*)<', page)
    assert m, f"no element with id {ident!r} in the page"
    return html.unescape(m.group(1))


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_page_states_the_runs_numbers_and_embeds_its_figures(stored, capsys):
    before = {p.name: p.read_bytes() for p in stored.iterdir() if p.is_file()}
    assert main(["report", str(stored)]) == 0
    out = capsys.readouterr().out
    page_path = stored / "report" / "index.html"
    assert f"wrote {page_path}" in out and "6 evaluations, 1 failed" in out
    # the store itself is not touched (only the report directory is new)
    assert {p.name: p.read_bytes() for p in stored.iterdir() if p.is_file()} == before

    result = SearchResult.load(stored)
    page = page_path.read_text()
    figures = {name: stored / "report" / f"{name}.png" for name in ("progress", "scores", "cells")}
    for path in figures.values():
        assert path.read_bytes().startswith(PNG)
    # the page is self-contained: each figure is embedded, byte for byte
    assert sorted(embedded_pngs(page)) == sorted(p.read_bytes() for p in figures.values())
    assert "<img src=\"data:image/png;base64," in page and 'src="progress.png"' not in page

    best = result.best
    assert span(page, "n-evaluations") == str(len(result.history)) == "6"
    assert span(page, "n-failed") == "1" and span(page, "n-ok") == "5"
    assert span(page, "best-arch") == best.arch.string
    assert span(page, "best-score") == f"{best.score:.6g}"
    # the best has the most parameters among the successful cells (the params estimator)
    assert best.score == max(e.score for e in result.history if e.ok)
    # failures: counted by the reason's prefix, the reason in full
    assert "ValueError: this cell is unlucky" in page
    assert re.search(r"<td>ValueError</td><td>1</td>", page)
    # the configuration, from the store
    assert "fixed(archs=&lt;6 items&gt;)" in page and "params-except-one(unlucky=" in page
    assert f"seed</b></td><td>{result.config['seed']}" in page
    assert result.config["data"] in page


def test_report_with_truth_prints_the_criteria_spearman(stored, tmp_path):
    result = SearchResult.load(stored)
    ok = [e for e in result.history if e.ok]
    rng = np.random.default_rng(3)
    truth = {e.arch.string: float(rng.uniform(0.1, 0.9)) for e in ok[:4]}  # the table holds 4 of the 5
    curve = LearningCurve(minibatch_losses=[[2.0, 1.9]], train_acc=[0.2], val_acc=[0.3], val_loss=[1.8],
                          epoch_seconds=[1.0])
    rows = [{"arch": a, "space": "nb201", "curve": curve, "final_accuracy": t} for a, t in truth.items()]
    rows.append({"arch": UNLUCKY, "space": "nb201", "curve": curve, "final_accuracy": 0.5})  # failed: left out
    table = JsonlCurveTable.write(tmp_path / "truth.jsonl", rows)

    out = tmp_path / "page.html"
    assert main(["report", str(stored), "--truth", str(table.path), "--out", str(out)]) == 0
    page = out.read_text()
    assert (tmp_path / "truth.png").read_bytes().startswith(PNG) and len(embedded_pngs(page)) == 4

    scores = [e.score for e in ok[:4]]
    truths = [truth[e.arch.string] for e in ok[:4]]
    assert truth_pairs(result.history, table) == ([e.arch.string for e in ok[:4]], scores, truths)
    assert span(page, "spearman") == f"{spearman(scores, truths):.4f}"
    assert span(page, "kendall") == f"{kendall(scores, truths):.4f}"
    assert float(span(page, "spearman")) == pytest.approx(spearman(scores, truths), abs=5e-5)


def test_report_of_a_running_store_and_bad_places(stored, tmp_path, capsys):
    running = shutil.copytree(stored, tmp_path / "running", ignore=shutil.ignore_patterns("report"))
    writer = RunStore(running)
    writer.open(SearchResult.load(running).config)  # a search holds it
    try:
        report = write_report(running)
        assert "running: pid " in report.path.read_text() and report.numbers["evaluations"] == 6
    finally:
        writer.close()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no store here" in capsys.readouterr().err
    with pytest.raises(StoreError, match="no store here"):
        write_report(tmp_path / "nothing")


def test_report_of_an_accuracy_estimator_and_an_empty_store(tmp_path, capsys):
    d = tmp_path / "valacc"
    assert main(["search", "--strategy", "random", "--estimator", "valacc", "--epochs", "1", "--C", "4", "--N", "1",
                 "--evaluations", "3", "--device", "cpu", "--quiet", "--out", str(d)]) == 0
    out = capsys.readouterr().out
    assert " accuracy " in out.splitlines()[0]  # the table's accuracy column, next to the score
    assert f"score: {estimator_registry.get('valacc').score_description}" in out
    report = write_report(d)
    page = report.path.read_text()
    assert "<th>accuracy</th>" in page and html.escape(estimator_registry.get("valacc").score_description) in page
    best = SearchResult.load(d).best
    assert report.numbers["best"]["accuracy"] == best.score and f"accuracy {best.score:.4f}" in page

    empty = RunStore(tmp_path / "empty")  # a store created by a search that has finished nothing yet
    empty.open(SearchResult.load(d).config)
    empty.close()
    report = write_report(empty.path)
    assert "The store holds no evaluation yet." in report.path.read_text() and report.figures == {}
    assert report.numbers["evaluations"] == 0 and report.numbers["best"] is None


def test_accuracy_column_rules():
    from nas_engine.results import Evaluation

    arch = SPACE.from_string(ARCHS[0])
    curve = LearningCurve(minibatch_losses=[[1.0]], train_acc=[0.5], val_acc=[0.61], val_loss=[1.0],
                          epoch_seconds=[1.0])
    ev = Evaluation(0, arch, -1.5, 1.0, 1.0, curve=curve)
    assert evaluation_accuracy(ev, False) == 0.61  # a curve with validation
    assert evaluation_accuracy(Evaluation(0, arch, -1.5, 1.0, 1.0, info={"final_val_acc": 0.7}), False) == 0.7
    assert evaluation_accuracy(Evaluation(0, arch, 0.8, 1.0, 1.0), True) == 0.8  # the score is an accuracy
    assert evaluation_accuracy(Evaluation(0, arch, -1.5, 1.0, 1.0), False) is None
    failed = Evaluation(1, arch, float("-inf"), 1.0, 1.0, status="failed", reason="diverged: loss nan", curve=curve)
    assert evaluation_accuracy(failed, True) is None
    assert reason_prefix("diverged: loss nan at epoch 2") == "diverged" and reason_prefix(None)
    assert failure_counts([ev, failed, failed]) == [{"prefix": "diverged", "count": 2, "example": "diverged: loss nan",
                                                     "indices": [1, 1]}]


def test_every_registered_estimator_says_what_its_score_is():
    builtin = [n for n in estimator_registry.names()
               if getattr(estimator_registry.get(n), "__module__", "").startswith("nas_engine.estimators")]
    assert len(builtin) >= 20
    for name in builtin:
        cls = estimator_registry.get(name)
        assert isinstance(cls.score_description, str) and len(cls.score_description) > 10, name
    assert estimator_registry.get("valacc").score_is_accuracy
    assert not estimator_registry.get("tse-ema").score_is_accuracy
    assert "discounted sum of training losses" in estimator_registry.get("tse-ema").score_description
    assert estimator_registry.get("params").score_description == "number of parameters of the network"


def test_report_truth_from_an_nb201_csv_reads_every_row_not_only_those_with_curves(tmp_path):
    """The committed TSE-vs-ValAcc store (an earlier version's JSONL store) against the NB201 accuracy CSV: the
    page's Spearman is the criteria's over the CSV's test accuracies, read here independently."""
    import csv

    from .conftest import shared_path

    csv_path = shared_path("nas-bench-201", "nb201_cifar10_200ep.csv")
    store = tmp_path / "store"
    shutil.copytree(Path(__file__).resolve().parents[1] / "reproduce" / "results" / "tse_rank_correlation" / "store",
                    store)
    with open(csv_path, newline="") as f:
        acc = {r["arch_str"]: float(r["cifar10_test_acc"]) / 100 for r in csv.DictReader(f)}
    result = SearchResult.load(store)
    scores = [e.score for e in result.history]
    truths = [acc[e.arch.string] for e in result.history]
    report = write_report(store, tmp_path / "r", truth=csv_path)
    assert report.numbers["truth"]["n"] == len(result.history) == 100
    assert span(report.path.read_text(), "spearman") == f"{spearman(scores, truths):.4f}"
