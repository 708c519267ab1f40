"""Imports flow one way: the import-linter contracts of setup.cfg hold, and they would catch a break.

``lint-imports`` reads the ``[importlinter]`` contracts from setup.cfg (the
layers, "plugins import neither the loop nor the harness", plugin modules
independent of each other, no cycles between siblings).  grimp, under
import-linter, counts every import statement: module level, inside functions
and under ``if TYPE_CHECKING:``.  The test with an injected import shows that
a contract breaks when a plugin reaches up into the loop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_LINT = ("import sys\n"
         "from importlinter.cli import lint_imports\n"
         "sys.exit(lint_imports(config_filename='setup.cfg', no_cache=True, no_logo=True))\n")


def _require_import_linter():
    pytest.importorskip("importlinter", reason="import-linter is not installed: pip install 'import-linter>=2.0' "
                                               "(it is in the dev extra)")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package and setup.cfg under ``root`` (that nas_engine, not an installed one)."""
    _require_import_linter()
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", _LINT], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_import_contracts_are_kept():
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_module_graph_has_no_cycle():
    """No import cycle between any two modules, function-level and TYPE_CHECKING imports included."""
    import networkx as nx

    _require_import_linter()
    import grimp  # installed with import-linter

    graph = grimp.build_graph("nas_engine", cache_dir=None)  # TYPE_CHECKING imports included (the default)
    g = nx.DiGraph()
    for m in graph.modules:
        g.add_node(m)
        g.add_edges_from((m, imported) for imported in graph.find_modules_directly_imported_by(m))
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert not cycles and not list(nx.selfloop_edges(g)), cycles


def _inject(root: Path, module: str, anchor: str, code: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    text = path.read_text()
    assert anchor in text, f"{anchor!r} not in {path}"
    path.write_text(text.replace(anchor, anchor + code, 1))


@pytest.mark.parametrize("module, anchor, code, expected", [
    # a plugin reaching up into the loop from inside a function (a function-level import)
    ("nas_engine.strategies.random", "from .base import Strategy\n",
     "\n\ndef _search():\n    from ..search import Search\n\n    return Search\n",
     "nas_engine.strategies.random -> nas_engine.search"),
    # a typing-only import that closes a cycle: search -> results -> search
    ("nas_engine.results", "from .spaces.base import Architecture, SearchSpace\n",
     "    from .search import Search\n",
     "nas_engine.results -> nas_engine.search"),
    # one plugin importing another plugin's module
    ("nas_engine.estimators.tse", "from .base import CurveEstimator\n",
     "from .valacc import ValAcc  # noqa: F401\n",
     "nas_engine.estimators.tse -> nas_engine.estimators.valacc"),
])
def test_an_injected_import_breaks_a_contract(tmp_path, module, anchor, code, expected):
    shutil.copytree(ROOT / "nas_engine", tmp_path / "nas_engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    _inject(tmp_path, module, anchor, code)
    run = _lint_imports(tmp_path)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "BROKEN" in run.stdout and expected in run.stdout, run.stdout + run.stderr


def test_old_import_paths_still_work():
    """What moved to a lower layer is still importable from where it was."""
    from nas_engine import context, costs, results, threads
    from nas_engine.benchmarks import RestrictedSpace as R1
    from nas_engine.benchmarks.table import RestrictedSpace as R2
    from nas_engine.correlate import count_flops, count_params, model_costs
    from nas_engine.estimators.base import Context, FineTuning, derive_seed
    from nas_engine.executors import torch_threads
    from nas_engine.search import WORST_SCORE, Budget, Evaluation, Outcome, SearchResult
    from nas_engine.spaces import RestrictedSpace

    assert (Budget, Evaluation, SearchResult, Outcome, WORST_SCORE) == (
        results.Budget, results.Evaluation, results.SearchResult, results.Outcome, results.WORST_SCORE)
    assert (Context, FineTuning, derive_seed) == (context.Context, context.FineTuning, context.derive_seed)
    assert R1 is R2 is RestrictedSpace
    assert (count_params, count_flops, model_costs) == (costs.count_params, costs.count_flops, costs.model_costs)
    assert torch_threads is threads.torch_threads
