"""The engine's import graph, measured: every import statement, where it sits, and which way it runs.

Used by ``tests/test_layers.py``; run it to print the numbers::

    python -m tests.import_graph

grimp (installed with import-linter) finds every import statement of the
``nas_engine`` package -- module level, under ``if TYPE_CHECKING:`` and inside
functions -- and this module

* places each statement (``module``, ``type-checking`` or ``function``, from the
  module's syntax tree);
* adds the imports Python runs implicitly: importing ``a.b.c`` first runs the
  ``__init__`` of ``a`` and ``a.b`` (except the packages the importer itself is
  in, which are already being imported).  grimp leaves these out, and they are
  how a package ``__init__`` that re-exports a module of a higher layer hides a
  cycle (it did: ``nas_engine.benchmarks`` re-exported the builder, which
  imported the search loop, which imports a table);
* checks each ``type = layers`` contract of setup.cfg's ``[importlinter]``
  section itself: an import runs *up* a layer when the importer's layer is
  below the imported module's, or across when both are different modules of
  one layer (``a | b``).

A function-level import *dodges a cycle* when the imported module reaches the
importer back: made a module-level import it would be a cycle Python cannot
load.  With the whole graph acyclic (function-level and implicit imports
included), no import does; the ones that remain are there to keep imports
light (the CLI parses its arguments before it imports torch).
"""

from __future__ import annotations

import ast
import configparser
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "nas_engine"


@dataclass(frozen=True)
class Import:
    """One import statement of the package importing one of its modules."""

    importer: str
    imported: str
    line: int
    text: str
    where: str  # "module", "type-checking" or "function"


def _source(module: str, root: Path) -> Path:
    path = root.joinpath(*module.split("."))
    return path / "__init__.py" if (path / "__init__.py").exists() else path.with_suffix(".py")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _placements(tree: ast.Module) -> dict[int, str]:
    """line -> where the import statement on that line sits."""
    out: dict[int, str] = {}

    def walk(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                here = "function"
            elif isinstance(child, ast.If) and where == "module" and _is_type_checking(child.test):
                here = "type-checking"
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out[child.lineno] = where
            walk(child, here)

    walk(tree, "module")
    return out


def imports(root: Path = ROOT) -> list[Import]:
    """Every import statement of ``nas_engine`` that imports one of its modules, placed."""
    import grimp  # installed with import-linter

    graph = grimp.build_graph(PACKAGE, cache_dir=None)  # TYPE_CHECKING and function-level imports included
    out = []
    for importer in sorted(graph.modules):
        placements = _placements(ast.parse(_source(importer, root).read_text()))
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            for d in graph.get_import_details(importer=importer, imported=imported):
                out.append(Import(importer, imported, d["line_number"], d["line_contents"],
                                  placements.get(d["line_number"], "module")))
    return out


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def module_graph(statements: list[Import], *, implicit: bool = True) -> nx.DiGraph:
    """Modules and who imports whom (every statement); with ``implicit``, also the package ``__init__`` an
    import runs first (edges marked ``implicit=True``)."""
    g = nx.DiGraph()
    for s in statements:
        g.add_edge(s.importer, s.imported, implicit=False)
        if implicit:
            own = set(_ancestors(s.importer)) | {s.importer}
            for package in _ancestors(s.imported):
                if package not in own and not g.has_edge(s.importer, package):
                    g.add_edge(s.importer, package, implicit=True)
    return g


def cycles(g: nx.DiGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (and self-imports)."""
    found = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    return found + [[a] for a, _ in nx.selfloop_edges(g)]


def cycle_dodging(statements: list[Import], g: nx.DiGraph) -> list[Import]:
    """The function-level imports whose target reaches the importer back (a cycle if made module-level)."""
    return [s for s in statements if s.where == "function" and s.importer != s.imported
            and nx.has_path(g, s.imported, s.importer)]


@dataclass(frozen=True)
class Layers:
    """One ``type = layers`` contract: ``layers[i]`` is the set of module names of layer i (0 is the top)."""

    name: str
    layers: tuple[frozenset[str], ...]

    def place(self, module: str) -> tuple[int, str] | None:
        """(layer index, the layer module ``module`` is in), or None when it is in no layer."""
        best = None
        for i, layer in enumerate(self.layers):
            for m in layer:
                if (module == m or module.startswith(m + ".")) and (best is None or len(m) > len(best[1])):
                    best = (i, m)
        return best


def layers_contracts(cfg: Path = ROOT / "setup.cfg") -> list[Layers]:
    """The ``type = layers`` contracts of setup.cfg (optional layers in parentheses included)."""
    parser = configparser.ConfigParser()
    parser.read(cfg)
    out = []
    for section in parser.sections():
        if not section.startswith("importlinter:contract:") or parser[section].get("type") != "layers":
            continue
        containers = parser[section].get("containers", "").split() or [""]
        for container in containers:
            layers = []
            for line in parser[section]["layers"].strip().splitlines():
                names = [n.strip().strip("()") for n in line.split("|")]
                layers.append(frozenset(f"{container}.{n}" if container else n for n in names if n))
            out.append(Layers(parser[section].get("name", section), tuple(layers)))
    return out


def against_the_layers(statements: list[Import], contracts: list[Layers]) -> list[tuple[str, Import]]:
    """``(contract name, statement)`` for each import that runs up a layer or across one (``a | b``)."""
    bad = []
    for contract in contracts:
        for s in statements:
            a, b = contract.place(s.importer), contract.place(s.imported)
            if a is None or b is None:
                continue
            if a[0] > b[0] or (a[0] == b[0] and a[1] != b[1]):
                bad.append((contract.name, s))
    return bad


def outside_the_layers(statements: list[Import], contracts: list[Layers]) -> set[str]:
    """Modules of the graph that no layer of the first (whole-package) contract holds."""
    top = contracts[0]
    modules = {s.importer for s in statements} | {s.imported for s in statements}
    return {m for m in modules if top.place(m) is None}


def summary(root: Path = ROOT) -> dict:
    statements = imports(root)
    g = module_graph(statements)
    contracts = layers_contracts(root / "setup.cfg")
    by_place = {w: sum(s.where == w for s in statements) for w in ("module", "type-checking", "function")}
    return {
        "modules": g.number_of_nodes(),
        "statements": len(statements),
        "by_place": by_place,
        "edges": sum(not d["implicit"] for *_, d in g.edges(data=True)),
        "implicit_edges": sum(d["implicit"] for *_, d in g.edges(data=True)),
        "cycles": cycles(g),
        "function_level": [s for s in statements if s.where == "function"],
        "cycle_dodging": cycle_dodging(statements, g),
        "against_the_layers": against_the_layers(statements, contracts),
        "outside_the_layers": sorted(outside_the_layers(statements, contracts)),
        "layers_checked": [(c.name, len(c.layers)) for c in contracts],
    }


def main() -> None:
    s = summary()
    print(f"{s['modules']} modules, {s['statements']} import statements of the package's own modules "
          f"({s['by_place']['module']} module-level, {s['by_place']['type-checking']} under TYPE_CHECKING, "
          f"{s['by_place']['function']} function-level): {s['edges']} module-to-module imports, "
          f"plus {s['implicit_edges']} implicit package __init__ imports")
    print(f"cycles (all of them counted): {len(s['cycles'])}{' ' + str(s['cycles']) if s['cycles'] else ''}")
    print(f"layers contracts checked: {s['layers_checked']}; imports up or across a layer: "
          f"{len(s['against_the_layers'])}")
    for name, imp in s["against_the_layers"]:
        print(f"  {name}: {imp.importer}:{imp.line} {imp.text} ({imp.where})")
    print(f"modules in no layer: {s['outside_the_layers']}")
    fl = s["function_level"]
    print(f"function-level imports: {len(fl)}, of which close a cycle if made module-level: "
          f"{len(s['cycle_dodging'])}")
    for imp in fl:
        flag = "  CYCLE" if imp in s["cycle_dodging"] else ""
        print(f"  {imp.importer}:{imp.line}: {imp.text} -> {imp.imported}{flag}")


if __name__ == "__main__":
    main()
