"""Imports flow one way: the import-linter contracts of setup.cfg hold, and they would catch a break.

``lint-imports`` reads the ``[importlinter]`` contracts from setup.cfg (the
layers, "plugins import neither the loop nor the harness", plugin modules
independent of each other, no cycles between siblings).  grimp, under
import-linter, counts every import statement: module level, inside functions
and under ``if TYPE_CHECKING:``.  The test with an injected import shows that
a contract breaks when a plugin reaches up into the loop.

``tests/import_graph.py`` measures the graph itself (``python -m tests.import_graph``
prints it): the graph of every import, with the package ``__init__`` each
import runs implicitly, has no cycle; no function-level import would close a
cycle if it were module-level; no import runs up or across a layer of
setup.cfg's layers contracts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import import_graph

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
    """No import cycle between any two modules, function-level and TYPE_CHECKING imports included, nor through
    the package ``__init__`` an import runs first (a package re-exporting a higher module hides a cycle there)."""
    _require_import_linter()
    statements = import_graph.imports()
    assert {s.where for s in statements} == {"module", "type-checking", "function"}  # all of them are counted
    assert not import_graph.cycles(import_graph.module_graph(statements, implicit=False))
    graph = import_graph.module_graph(statements)
    assert not import_graph.cycles(graph), import_graph.cycles(graph)


def test_no_function_level_import_dodges_a_cycle():
    """The function-level imports left are there for import speed: none would close a cycle at module level."""
    _require_import_linter()
    statements = import_graph.imports()
    function_level = [s for s in statements if s.where == "function"]
    assert function_level  # the CLI keeps its parsing light, and this test would notice if grimp stopped seeing them
    dodging = import_graph.cycle_dodging(statements, import_graph.module_graph(statements))
    assert not dodging, [f"{s.importer}:{s.line}: {s.text}" for s in dodging]


def test_each_layer_imports_only_lower_layers():
    """setup.cfg's layers contracts, checked statement by statement here as well as by lint-imports; only the
    command line imports the package's own ``__init__`` (the public API, above every layer)."""
    _require_import_linter()
    statements = import_graph.imports()
    contracts = import_graph.layers_contracts()
    assert [len(c.layers) for c in contracts][:1] == [18] and len(contracts) == 6  # the package; tables; 4 plugin kinds
    bad = import_graph.against_the_layers(statements, contracts)
    assert not bad, [f"{name}: {s.importer}:{s.line}: {s.text}" for name, s in bad]
    assert import_graph.outside_the_layers(statements, contracts) == {"nas_engine"}
    assert {s.importer for s in statements if s.imported == "nas_engine"} <= {"nas_engine.cli", "nas_engine.__main__"}


_MEASURE = ("import json, sys\n"
            "from tests import import_graph as ig\n"
            "s = ig.summary(ig.Path(sys.argv[1]))\n"
            "print(json.dumps({'cycles': s['cycles'], 'dodging': [i.importer for i in s['cycle_dodging']],\n"
            "                  'against': [i.importer + ' -> ' + i.imported for _, i in s['against_the_layers']]}))\n")


@pytest.mark.parametrize("module, anchor, code, expected", [
    # a function-level import that dodges a cycle: results -> search -> results
    ("nas_engine.results", "from .curves import LearningCurve\n",
     "\n\ndef _search():\n    from .search import Search\n\n    return Search\n",
     {"dodging": ["nas_engine.results"], "against": ["nas_engine.results -> nas_engine.search"]}),
    # the tables package re-exporting the builder again: a cycle through the package's __init__
    ("nas_engine.benchmarks", "from .truth import load_truth_table\n", "from ..build import build_table  # noqa\n",
     {"against": ["nas_engine.benchmarks -> nas_engine.build"]}),
])
def test_the_measurement_sees_an_injected_import(tmp_path, module, anchor, code, expected):
    _require_import_linter()
    shutil.copytree(ROOT / "nas_engine", tmp_path / "nas_engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    path = tmp_path / module.replace(".", "/")
    _inject(tmp_path, module + ".__init__" if path.is_dir() else module, anchor, code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["cycles"], found  # both close a cycle
    for key, values in expected.items():
        assert set(values) <= set(found[key]), found


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
    # a space importing another space, and a shared module importing a reader
    ("nas_engine.spaces.darts", "from nas_engine.spaces.ops import ReLUConvBN, avg_pool_3x3, max_pool_3x3",
     "\nfrom nas_engine.spaces.nb201 import NB201Space  # noqa: F401",
     "nas_engine.spaces.darts -> nas_engine.spaces.nb201"),
    ("nas_engine.data.loading", "from .types import Dataset, RawData, _build, _check_raw, _check_split_args\n",
     "from .npz import npz  # noqa: F401\n",
     "nas_engine.data.loading -> nas_engine.data.npz"),
])
def test_an_injected_import_breaks_a_contract(tmp_path, module, anchor, code, expected):
    shutil.copytree(ROOT / "nas_engine", tmp_path / "nas_engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    _inject(tmp_path, module, anchor, code)
    run = _lint_imports(tmp_path)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "BROKEN" in run.stdout and expected in run.stdout, run.stdout + run.stderr


def test_every_module_of_a_plugin_package_is_in_a_layer():
    """The plugin packages' contracts list their modules by name: a new module must be placed in them."""
    import pkgutil

    import nas_engine

    contracts = {c.name: c for c in import_graph.layers_contracts()}
    for package in ("strategies", "estimators", "spaces", "data"):
        contract = next(c for c in contracts.values()
                        if any(m.startswith(f"nas_engine.{package}.") for m in c.layers[-1]))
        path = Path(nas_engine.__file__).parent / package
        modules = {f"nas_engine.{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])}
        assert modules, package
        unplaced = sorted(m for m in modules if contract.place(m) is None)
        assert not unplaced, f"{contract.name}: place {unplaced} in setup.cfg"


def test_old_import_paths_still_work():
    """What moved to a lower layer is still importable from where it was."""
    from nas_engine import Budget as B0
    from nas_engine import context, costs, registry, report, results, threads
    from nas_engine.benchmarks import RestrictedSpace as R1
    from nas_engine.benchmarks import load_truth_table
    from nas_engine.benchmarks.table import RestrictedSpace as R2
    from nas_engine.budget import Budget
    from nas_engine.correlate import count_flops, count_params, model_costs
    from nas_engine.estimators.base import Context, FineTuning, derive_seed
    from nas_engine.executors import torch_threads
    from nas_engine.search import WORST_SCORE, Evaluation, Outcome, SearchResult
    from nas_engine.search import Budget as B1
    from nas_engine.spaces import RestrictedSpace

    assert (B0, B1, Evaluation, SearchResult, Outcome, WORST_SCORE) == (
        results.Budget, results.Budget, results.Evaluation, results.SearchResult, results.Outcome, results.WORST_SCORE)
    assert Budget is results.Budget
    assert (Context, FineTuning, derive_seed) == (context.Context, context.FineTuning, context.derive_seed)
    assert R1 is R2 is RestrictedSpace
    assert (count_params, count_flops, model_costs) == (costs.count_params, costs.count_flops, costs.model_costs)
    assert torch_threads is threads.torch_threads
    # the CLI helpers that lived in report.py (the page still uses them, so the old names still resolve)
    assert (report.load_truth_table, report.describe_plugin, report.estimator_class, report.accuracies,
            report.format_score) == (load_truth_table, registry.describe_plugin, registry.estimator_class,
                                     results.accuracies, results.format_score)


def test_the_benchmarks_package_holds_tables_only():
    import nas_engine.benchmarks as benchmarks
    from nas_engine import build

    assert not hasattr(benchmarks, "build_table") and not hasattr(benchmarks, "builder")
    assert {"build_table", "table_from_store", "FullTraining"} <= set(build.__all__)
