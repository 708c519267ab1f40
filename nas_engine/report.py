"""The report of a search: one self-contained HTML page (``nas-engine report DIR``).

:func:`write_report` reads a run store (running or finished; it only reads:
:meth:`~nas_engine.results.SearchResult.load` and
:class:`~nas_engine.store.RunStore`) and writes ``index.html`` with its figures
embedded as base64 PNG, and the same PNGs beside it:

* ``progress.png``  the best score so far against the number of evaluations
  and against the charged seconds (the strategy's set-up plus the cumulative
  ``cost_seconds`` of the evaluations), every evaluation's score as a dot and
  the failed ones marked below the axis;
* ``scores.png``    the distribution of the successful evaluations' scores;
* ``cells.png``     the best few distinct architectures drawn as graphs
  (``space.to_graph(arch)``: nodes are feature maps, each edge labelled with its
  ``op``);
* ``truth.png``     with a ground-truth table: the score against the table's
  true accuracy of every evaluated architecture it holds, with Spearman's rho
  and Kendall's tau (:mod:`nas_engine.criteria`).

Beside the figures the page has a summary table (the stored configuration:
strategy, space and estimator with their parameters, what the score is, data,
protocol, seed, execution; the counts; the best architecture and its score; the
time), the best evaluations, and the failed evaluations counted by the prefix
of their reason (``diverged``, ``out-of-memory``, ``ValueError``, ...).  Every
number on the page is read from the store (and the table); figures are drawn
with matplotlib's Agg canvas, without pyplot and without changing the
process's matplotlib backend.

The accuracy column is :func:`~nas_engine.results.evaluation_accuracy` (the
same as the CLI's tables).  This module is the page alone: the helpers it shares
with the CLI live with what they are about -- :func:`~nas_engine.results.accuracies`
and :func:`~nas_engine.results.format_score` (results),
:func:`~nas_engine.registry.describe_plugin` and
:func:`~nas_engine.registry.estimator_class` (stored plugin configurations),
:func:`~nas_engine.benchmarks.load_truth_table` (tables).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .benchmarks import load_truth_table
from .config import check_int
from .files import atomic_write
from .registry import describe_plugin, estimator_class
from .results import Evaluation, SearchResult, accuracies, format_score
from .store import RunStore, StoreError

if TYPE_CHECKING:  # pragma: no cover
    from .benchmarks.table import CurveTable

__all__ = ["write_report", "Report", "reason_prefix", "failure_counts", "best_so_far", "charged_seconds",
           "truth_pairs", "REPORT_DIR", "write_diagnosis", "complexity_values", "DIAGNOSIS_DIR", "COMPLEXITY",
           "oneshot_records"]

#: the report's directory inside a store when no ``out`` is given
REPORT_DIR = "report"
#: architectures drawn as cells, and rows of the best-evaluations table
TOP_CELLS, TOP_ROWS = 3, 10


def _fmt_acc(acc: float | None) -> str:
    return "" if acc is None else f"{acc:.4f}"


# -- the numbers of the page ----------------------------------------------------------------------------
def reason_prefix(reason: str | None) -> str:
    """The kind of a failure: its reason up to the first colon (``"diverged"``, ``"ValueError"``, ...)."""
    if not reason:
        return "(no reason recorded)"
    return reason.split(":", 1)[0].strip() or reason


def failure_counts(history: Sequence[Evaluation]) -> list[dict[str, Any]]:
    """The failed evaluations grouped by :func:`reason_prefix`, most frequent first:
    ``[{"prefix", "count", "example", "indices"}]`` (``example``: the first full reason)."""
    groups: dict[str, dict[str, Any]] = {}
    for e in history:
        if e.ok:
            continue
        g = groups.setdefault(reason_prefix(e.reason), {"prefix": reason_prefix(e.reason), "count": 0,
                                                       "example": e.reason or "", "indices": []})
        g["count"] += 1
        g["indices"].append(e.index)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["indices"][0]))


def best_so_far(history: Sequence[Evaluation]) -> list[float]:
    """The best successful score after each evaluation (NaN before the first success)."""
    out, best = [], -math.inf
    for e in history:
        if e.ok and math.isfinite(e.score):
            best = max(best, e.score)
        out.append(best if math.isfinite(best) else math.nan)
    return out


def charged_seconds(result: SearchResult) -> list[float]:
    """The charged seconds after each evaluation: the strategy's set-up plus the cumulative costs."""
    out, total = [], float(result.setup_seconds)
    for e in result.history:
        total += e.cost_seconds
        out.append(total)
    return out


def truth_pairs(history: Sequence[Evaluation], table: CurveTable) -> tuple[list[str], list[float], list[float]]:
    """``(archs, scores, true accuracies)`` of the distinct successfully evaluated architectures the table has
    a final accuracy for, in the order first evaluated."""
    archs, scores, truths, seen = [], [], [], set()
    for e in history:
        s = e.arch.string
        if not e.ok or s in seen or not math.isfinite(e.score):
            continue
        seen.add(s)
        try:  # not ``s in table``: that asks for a recorded curve, and e.g. an NB201 CSV has accuracies only
            t = table.final_accuracy(s)
        except (KeyError, ValueError):  # not in the table, or a row without a final accuracy
            continue
        archs.append(s)
        scores.append(e.score)
        truths.append(float(t))
    return archs, scores, truths


# -- figures ----------------------------------------------------------------------------------------------
def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    atomic_write(path, png.getvalue())  # like the page: never through a link planted in the directory
    return path


def _plot_progress(result: SearchResult, path: Path) -> Path:
    hist = result.history
    n = range(1, len(hist) + 1)
    best = best_so_far(hist)
    cost = charged_seconds(result)
    ok = [(i, e.score, c) for i, e, c in zip(n, hist, cost) if e.ok and math.isfinite(e.score)]
    failed = [(i, c) for i, e, c in zip(n, hist, cost) if not e.ok]
    fig = _figure((10, 3.6))
    for ax, xs, xlabel, fx in ((fig.add_subplot(1, 2, 1), list(n), "evaluations", [f[0] for f in failed]),
                               (fig.add_subplot(1, 2, 2), cost, "charged seconds (set-up + evaluations' costs)",
                                [f[1] for f in failed])):
        k = 0 if xlabel == "evaluations" else 2
        ax.plot([o[k] for o in ok], [o[1] for o in ok], ".", color="0.6", ms=5, label="score")
        ax.step(xs, best, where="post", color="C0", lw=2, label="best so far")
        if fx:
            ax.plot(fx, [0.0] * len(fx), "x", color="C3", ms=6, clip_on=False,
                    transform=ax.get_xaxis_transform(), label=f"failed ({len(fx)})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _plot_scores(scores: list[float], best: float, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    fig = _figure((6, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(scores, bins=max(5, min(30, len(scores) // 2)), color="C0", alpha=0.8)
    ax.axvline(best, color="C3", lw=1.5, label=f"best {format_score(best)}")
    ax.set_xlabel("score")
    ax.set_ylabel("evaluations")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _draw_cell(ax, graph, title: str) -> None:
    """A DAG with nodes in topological order on a line; straight edges between neighbours, arcs above
    (even span) or below (odd span) otherwise; ``op`` as the edge's (or node's) label."""
    import networkx as nx
    from matplotlib.patches import Circle, FancyArrowPatch

    order = list(nx.topological_sort(graph)) if nx.is_directed_acyclic_graph(graph) else list(graph.nodes)
    step = 2.4  # room for an op's name between neighbouring nodes
    pos = {v: (step * i, 0.0) for i, v in enumerate(order)}
    heights = [0.0]
    for u, v, data in graph.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        span = round(abs(x1 - x0) / step)
        rad = 0.0 if span <= 1 else (-0.5 if span % 2 == 0 else 0.45)
        op = str(data.get("op", ""))
        none = op == "none"
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                     mutation_scale=10, shrinkA=9, shrinkB=9, lw=0.8 if none else 1.4,
                                     linestyle=":" if none else "-", color="0.65" if none else "0.15"))
        # the label sits at the middle of the arc: half way from the chord's middle to arc3's control point
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        lx, ly = mx + 0.5 * rad * (y1 - y0), my - 0.5 * rad * (x1 - x0)
        heights.append(ly)
        if op:
            ax.text(lx, ly, op, ha="center", va="center", fontsize=7, color="0.45" if none else "black",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9})
    for v, (x, y) in pos.items():
        ax.add_patch(Circle((x, y), 0.3, fc="#dbe8f6", ec="0.2", lw=1, zorder=3))
        node_op = graph.nodes[v].get("op")
        ax.text(x, y, str(v) if node_op is None else f"{v}\n{node_op}", ha="center", va="center",
                fontsize=8, zorder=4)
    ax.set_xlim(-0.5, step * max(len(order) - 1, 1) + 0.5)
    ax.set_ylim(min(heights) - 0.5, max(heights) + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)


def _plot_cells(space, picks: list[tuple[int, Evaluation]], path: Path) -> Path:
    k = len(picks)
    fig = _figure((4.6 * k, 2.6))
    for j, (rank, e) in enumerate(picks):
        ax = fig.add_subplot(1, k, j + 1)
        _draw_cell(ax, space.to_graph(e.arch), f"#{rank}: score {format_score(e.score)} (evaluation {e.index})")
    return _save(fig, path)


def _plot_truth(scores: list[float], truths: list[float], rho: float, tau: float, path: Path) -> Path:
    fig = _figure((5.6, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(truths, scores, "o", ms=4, alpha=0.8, color="C0")
    ax.set_xlabel("true accuracy (table)")
    ax.set_ylabel("estimator score")
    ax.set_title(f"Spearman {rho:.4f}, Kendall {tau:.4f}, n = {len(scores)}", fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, path)


# -- the page -------------------------------------------------------------------------------------------
@dataclass
class Report:
    """What :func:`write_report` wrote: the page, its figures, and the numbers it states."""

    path: Path
    figures: dict[str, Path] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]], *, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then they are HTML already)."""
    head = "" if header is None else "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f7; }
td.arch, span.arch { font-family: monospace; }
img { max-width: 100%; }
.note { color: #555; }
"""


def _summary_rows(result: SearchResult, store: RunStore, holder, numbers: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, HTML cell) pairs of the summary table."""
    cfg = result.config or {}
    cls = estimator_class(cfg)
    desc = getattr(cls, "score_description", "") or "(the estimator documents no description of its score)"
    if holder is not None:
        status = ("running: " + (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                                 if holder else "holder unknown") + "; the page shows the evaluations stored so far")
    else:
        status = "not running"
    rows = [("store", _e(store.path) + (" (JSONL store of an earlier version)" if store.is_legacy else "")),
            ("status", _e(status)),
            ("strategy", _e(describe_plugin(cfg.get("strategy")))),
            ("space", _e(describe_plugin(cfg.get("space")))),
            ("estimator", _e(describe_plugin(cfg.get("estimator")))),
            ("score", _e(desc))]
    if cfg.get("data") is not None or "table" not in cfg:
        rows.append(("data", _e(cfg.get("data"))))
    if cfg.get("table") is not None:
        rows.append(("tabular benchmark", _e(cfg["table"])))
    if isinstance(cfg.get("protocol"), dict):
        rows.append(("protocol", _e(", ".join(f"{k}={v}" for k, v in cfg["protocol"].items()))))
    rows.append(("seed", _e(cfg.get("seed"))))
    if cfg.get("execution"):
        rows.append(("execution", _e(", ".join(f"{k}={v}" for k, v in cfg["execution"].items()))))
    n = numbers
    rows += [
        ("evaluations", f'<span id="n-evaluations">{n["evaluations"]}</span> '
                        f'(<span id="n-ok">{n["ok"]}</span> ok, <span id="n-failed">{n["failed"]}</span> failed, '
                        f'{n["cached"]} repeated proposal{"" if n["cached"] == 1 else "s"} answered from '
                        'earlier results)'),
        ("distinct architectures", _e(n["distinct"])),
    ]
    if n["best"] is not None:
        b = n["best"]
        acc = f"; accuracy {_fmt_acc(b['accuracy'])}" if b["accuracy"] is not None else ""
        rows.append(("best", f'<span class="arch" id="best-arch">{_e(b["arch"])}</span><br>score '
                             f'<span id="best-score">{_e(format_score(b["score"]))}</span>{_e(acc)} '
                             f'(evaluation {b["index"]}, reached after {b["index"] + 1} evaluations and '
                             f'{b["charged_seconds"]:.1f} charged seconds)'))
    else:
        rows.append(("best", "no successful evaluation"))
    rows += [
        ("time", _e(f"{n['seconds']:.1f} s wall-clock: the search's clock as stored (for a resumed search, the sum "
                    f"of all its runs)")),
        ("charged seconds", _e(f"{n['charged_seconds']:.1f} s: evaluations' costs {n['cost_seconds']:.1f} s "
                               f"+ strategy set-up {n['setup_seconds']:.1f} s"
                               + (f"; {n['cost_seconds'] / n['trained']:.2f} s per trained evaluation"
                                  if n["trained"] else ""))),
    ]
    return rows


def write_report(store: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 truth: str | os.PathLike | CurveTable | None = None, top: int = TOP_CELLS) -> Report:
    """Write the HTML report of the search stored in ``store`` (see the module docstring).

    ``out``: the page's path (``.html``) or a directory for ``index.html``;
    default ``STORE/report/index.html``.  The PNG figures are written beside
    the page.  ``truth``: a ground-truth table (a path for
    :func:`load_truth_table`, or a :class:`~nas_engine.benchmarks.table.CurveTable`).
    ``top``: the number of best architectures drawn.  Reads the store only.
    """
    top = check_int(top, "top", low=0, who="write_report")
    _check_out(out, "write_report")
    run_store = RunStore(store)
    if not run_store.exists():
        raise StoreError(f"store {str(run_store.path)!r}: no store here (expected {RunStore.DATABASE})")
    result = SearchResult.load(store)
    holder = run_store.holder()
    table = load_truth_table(truth) if isinstance(truth, (str, os.PathLike)) else truth

    page = _page_path(run_store, out, REPORT_DIR)
    folder = page.parent

    hist = result.history
    accs = accuracies(result)
    acc_of = {e.index: a for e, a in zip(hist, accs)}
    charged = charged_seconds(result)
    ok = [e for e in hist if e.ok and math.isfinite(e.score)]
    best = result.best
    numbers: dict[str, Any] = {
        "evaluations": len(hist), "ok": len(ok), "failed": sum(not e.ok for e in hist),
        "cached": sum(e.cached for e in hist), "distinct": len({e.arch.string for e in hist}),
        "seconds": result.seconds, "setup_seconds": result.setup_seconds,
        "cost_seconds": math.fsum(e.cost_seconds for e in hist), "charged_seconds": result.total_cost_seconds,
        "trained": sum(not e.cached for e in hist),
        "best": None if best is None else {"arch": best.arch.string, "score": best.score, "index": best.index,
                                           "accuracy": acc_of[best.index], "charged_seconds": charged[best.index]},
        "failures": failure_counts(hist),
    }
    report = Report(page, numbers=numbers)
    sections: list[str] = []

    # progress and score distribution
    if hist:
        report.figures["progress"] = _plot_progress(result, folder / "progress.png")
        sections.append("<h2>Progress</h2><p class='note'>The best score so far (line) and every successful "
                        "evaluation's score (dots), against the number of evaluations and against the charged "
                        "seconds; failed evaluations are marked x below the axis.</p>"
                        + _img(report.figures["progress"], "best score so far"))
    if ok:
        report.figures["scores"] = _plot_scores([e.score for e in ok], best.score, folder / "scores.png")
        sections.append(f"<h2>Score distribution</h2><p class='note'>The scores of the {len(ok)} successful "
                        "evaluations.</p>" + _img(report.figures["scores"], "score histogram"))

    # the best cells and the best evaluations
    distinct, seen = [], set()
    for e in sorted(ok, key=lambda e: (-e.score, e.index)):
        if e.arch.string not in seen:
            seen.add(e.arch.string)
            distinct.append(e)
    picks = list(enumerate(distinct[:top], start=1))
    if picks:
        try:
            report.figures["cells"] = _plot_cells(result.space, picks, folder / "cells.png")
            cells = _img(report.figures["cells"], "best cells")
        except NotImplementedError as exc:  # a space without graphs
            cells = f"<p class='note'>the space draws no graphs ({_e(exc)})</p>"
        sections.append(f"<h2>The best {len(picks)} architectures</h2><p class='note'>Each cell as "
                        f"<code>space.to_graph(arch)</code>: nodes are feature maps, edges carry their op "
                        f"(dotted: <code>none</code>).</p>" + cells)
    show_acc = any(a is not None for a in accs)
    if ok:
        rows = []
        for rank, e in enumerate(distinct[:TOP_ROWS], start=1):
            row = [rank, e.index, f'<span class="arch">{_e(e.arch.string)}</span>', _e(format_score(e.score))]
            if show_acc:
                row.append(_e(_fmt_acc(acc_of[e.index])))
            rows.append(row + [_e(f"{e.cost_seconds:.2f}"), _e(f"{e.epochs:g}")])
        header = ["rank", "evaluation", "architecture", "score", *(["accuracy"] if show_acc else []),
                  "cost seconds", "epochs"]
        sections.append("<h2>Best evaluations</h2>" + _table(header, rows, raw=True))

    # failures
    if numbers["failures"]:
        rows = [[g["prefix"], g["count"], g["example"], ", ".join(map(str, g["indices"][:20]))
                 + (", ..." if len(g["indices"]) > 20 else "")] for g in numbers["failures"]]
        sections.append(f"<h2>Failures</h2><p class='note'>{numbers['failed']} of {len(hist)} evaluations failed "
                        "(score -inf, recorded with a reason), counted by the reason's prefix.</p>"
                        + _table(["reason", "count", "first reason in full", "evaluations"], rows))
    else:
        sections.append("<h2>Failures</h2><p>no failed evaluation</p>")

    # ground truth
    if table is not None:
        from .criteria import kendall, spearman

        archs, scores, truths = truth_pairs(hist, table)
        numbers["truth"] = {"table": repr(table), "n": len(archs)}
        if len(archs) >= 2:
            rho, tau = spearman(scores, truths), kendall(scores, truths)
            numbers["truth"].update(spearman=rho, kendall=tau)
            report.figures["truth"] = _plot_truth(scores, truths, rho, tau, folder / "truth.png")
            sections.append(
                f"<h2>Score against ground truth</h2><p class='note'>{_e(table)}: the {len(archs)} distinct "
                "successfully evaluated architectures it has a final accuracy for.</p>"
                + _table(["architectures", "Spearman rho", "Kendall tau"],
                         [[len(archs), f'<span id="spearman">{rho:.4f}</span>',
                           f'<span id="kendall">{tau:.4f}</span>']], raw=True)
                + _img(report.figures["truth"], "score against true accuracy"))
        else:
            sections.append(f"<h2>Score against ground truth</h2><p>{_e(table)} holds {len(archs)} of the "
                            "successfully evaluated architectures: too few for a rank correlation (2 needed).</p>")

    summary = _table(None, [(f"<b>{_e(k)}</b>", v) for k, v in _summary_rows(result, run_store, holder, numbers)],
                     raw=True)
    _write_page(page, f"nas-engine report: {run_store.path}", f"<h2>Summary</h2>{summary}\n"
                + ("" if hist else "<p>The store holds no evaluation yet.</p>\n") + "\n".join(sections))
    return report


def _check_out(out: str | os.PathLike | None, who: str) -> None:
    if out is not None and not str(out).strip():  # Path("") is the current directory
        raise ValueError(f"{who}: out must be a path (the page, or a directory for index.html), got {out!r}")


def _page_path(run_store: RunStore, out: str | os.PathLike | None, default_dir: str) -> Path:
    """The page's path (``out``: a ``.html`` file or a directory for ``index.html``), its directory made."""
    page = Path(out) if out is not None else run_store.path / default_dir / "index.html"
    if page.suffix.lower() not in (".html", ".htm"):
        page = page / "index.html"
    try:
        page.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the report directory {str(page.parent)!r} ({exc.strerror or exc}); "
                      "choose another place with --out PATH") from None
    return page


def _write_page(page: Path, title: str, body: str) -> None:
    doc = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
           f"<style>{_CSS}</style></head><body>\n<h1>{_e(title)}</h1>\n{body}\n</body></html>\n")
    try:
        atomic_write(page, doc.encode("utf-8"))  # never through a link planted in the directory
    except OSError as exc:
        raise OSError(f"cannot write the report {str(page)!r} ({exc.strerror or exc}); "
                      "choose another place with --out PATH") from None


# -- the diagnosis page ------------------------------------------------------------------------------------
#: the diagnosis page's directory inside a store when no ``out`` is given
DIAGNOSIS_DIR = "diagnosis"
#: the complexity measures of :func:`write_diagnosis`
COMPLEXITY = ("params", "flops")


def complexity_values(space, archs: Sequence[str], table: CurveTable | None, measure: str = "params") -> list[float]:
    """``measure`` (#params or forward FLOPs) of each architecture: the table's recorded value where it records
    one, else counted on the space's benchmark-size network for a 3x32x32 image and 10 classes."""
    if measure not in COMPLEXITY:
        raise ValueError(f"complexity must be one of {', '.join(COMPLEXITY)}, got {measure!r}")
    recorded = getattr(table, measure, None) if table is not None else None
    out: list[float | None] = []
    for a in archs:
        try:
            out.append(float(recorded(a)) if recorded is not None else None)
        except (NotImplementedError, KeyError, ValueError):
            out.append(None)
    missing = [a for a, v in zip(archs, out) if v is None]
    if missing:
        from .costs import model_costs

        counted = model_costs(space, missing, num_classes=10, in_channels=3, resolution=32,
                              **space.resolve_size())
        out = [counted[a][measure] if v is None else v for a, v in zip(archs, out)]
    return [float(v) for v in out]


def _plot_complexity_bias(groups, measure: str, path: Path) -> Path:
    fig = _figure((6.4, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = list(range(len(groups)))
    ax.bar(x, groups["kendall"].fillna(0.0), color="C0", alpha=0.75, label="Kendall tau in the group")
    ax.set_ylabel("Kendall tau")
    ax.set_xticks(x, [f"{g + 1}\n{lo:.3g}\nto {hi:.3g}" for g, lo, hi in
                      zip(groups["group"], groups["complexity_min"], groups["complexity_max"])], fontsize=7)
    ax.set_xlabel(f"complexity group by {measure} (smallest on the left)")
    ax.axhline(0.0, color="0.4", lw=0.8)
    right = ax.twinx()
    right.plot(x, groups["mean_rd"], "o-", color="C3", label="mean ranking difference")
    right.axhline(0.0, color="C3", lw=0.6, ls=":")
    right.set_ylabel("mean RD (> 0: overestimated)")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _plot_extremes(space, rows, path: Path) -> Path:
    k = len(rows)
    fig = _figure((4.6 * min(k, 5), 2.6 * math.ceil(k / 5)))
    for j, r in enumerate(rows):
        ax = fig.add_subplot(math.ceil(k / 5), min(k, 5), j + 1)
        _draw_cell(ax, space.to_graph(space.from_string(r["name"])),
                   f"{r['side']} #{r['position']}: score {format_score(r['score'])}, true rank {r['true_rank']:g}")
    return _save(fig, path)


def oneshot_records(store: str | os.PathLike) -> dict[str, Any] | None:
    """What a one-shot search recorded for the diagnosis, or None for a store of another strategy.

    ``{"forgetting": [...] or None, "stability": {"epochs": [...], "scores": {arch: [...]}} or None}``:
    the per-epoch forgetting records of ``record_forgetting=True`` (the store's ``supernet-forgetting.json``:
    each ``{"epoch", "archs", "acc_after_step", "acc_after_epoch"}``) and the inherited-weight validation
    accuracy of every proposal at each kept checkpoint of ``record_stability=True`` (the strategy's stored
    state).  Reads the store only.
    """
    import json

    from .files import read_regular
    from .strategies.oneshot import FORGETTING_FILE

    run_store = RunStore(store)
    state = run_store.state() or {}
    strategy = state.get("strategy") or {}
    if "supernet" not in strategy:
        return None
    forgetting = None
    path = run_store.path / FORGETTING_FILE
    if path.is_file():
        try:
            record = json.loads(read_regular(path, what="the forgetting record").decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"store {str(run_store.path)!r}: unreadable {FORGETTING_FILE} ({exc})") from None
        if not isinstance(record, dict) or record.get("format") != "nas-engine-forgetting":
            raise StoreError(f"store {str(run_store.path)!r}: {FORGETTING_FILE} is not a forgetting record")
        forgetting = record["epochs"]
    return {"forgetting": forgetting, "stability": strategy.get("stability")}


def _plot_forgetting(rows: list[dict[str, Any]], values: list[Any], path: Path) -> Path:
    fig = _figure((6.4, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    epochs = [r["epoch"] for r in rows]
    for e, fv in zip(epochs, values):
        ax.plot([e] * len(fv), fv, ".", ms=2, alpha=0.35, color="C0")
    ax.errorbar(epochs, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], fmt="o-", color="C3", ms=3,
                lw=1, capsize=2, label="mean +- std")
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_xlabel("supernet epoch")
    ax.set_ylabel("forgetting value (acc2 - acc1)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _plot_stability(epochs: list[int], ranks, path: Path) -> Path:
    fig = _figure((6.4, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    for row in ranks:
        ax.plot(epochs, row, "-", lw=0.8, alpha=0.5)
    ax.set_xlabel("kept supernet checkpoint (epoch)")
    ax.set_ylabel("rank / M (1/M = best)")
    ax.invert_yaxis()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _oneshot_sections(records: dict[str, Any], table, folder: Path, report: Report, num) -> list[str]:
    """The diagnosis page's one-shot sections (forgetting; stability across kept checkpoints), their numbers put in
    ``report.numbers``."""
    import numpy as np

    from .criteria import kendall
    from .diagnosis import _ranks, forgetting_values, rank_spread, ranking_stability

    out = []
    forgetting = records.get("forgetting")
    if forgetting:
        rows, values = [], []
        for rec in forgetting:
            fv = forgetting_values(rec["acc_after_step"], rec["acc_after_epoch"])
            values.append(fv)
            rows.append({"epoch": int(rec["epoch"]), "n": len(fv), "mean": float(fv.mean()), "std": float(fv.std()),
                         "negative": float((fv < 0).mean()), "min": float(fv.min()), "max": float(fv.max())})
        report.numbers["forgetting"] = rows
        report.figures["forgetting"] = _plot_forgetting(rows, values, folder / "forgetting.png")
        table_rows = [[r["epoch"], r["n"], num(r["mean"], f"fv-mean-{r['epoch']}"),
                       num(r["std"], f"fv-std-{r['epoch']}"), num(r["negative"], f"fv-negative-{r['epoch']}"),
                       f"{r['min']:+.4f}", f"{r['max']:+.4f}"] for r in rows]
        out.append("<h2>One-shot: forgetting</h2><p class='note'>Ning et al. §5.3: for every path trained in an epoch, "
                   "its forgetting value FV = acc2 - acc1, acc1 its accuracy on a fixed validation minibatch right "
                   "after its own supernet step, acc2 the same accuracy once the epoch's other steps have run "
                   "(<code>nas_engine.diagnosis.forgetting_values</code>). Negative: later steps overwrote the weights "
                   "it shares (forgetting); positive: they helped it (transfer).</p>"
                   + _table(["epoch", "paths", "mean FV", "std FV", "fraction < 0", "min", "max"], table_rows, raw=True)
                   + _img(report.figures["forgetting"], "forgetting values per epoch"))
    stability = records.get("stability")
    scores = (stability or {}).get("scores") or {}
    epochs = [int(e) for e in (stability or {}).get("epochs", [])]
    if stability is not None and len(scores) >= 2 and len(epochs) >= 2:
        archs = sorted(scores)
        sets = {f"epoch {e}": [scores[a][i] for a in archs] for i, e in enumerate(epochs)}
        stab = ranking_stability(sets, ks=(0.05, 0.5))
        spread = rank_spread(sets)
        ranks = np.stack([_ranks(np.asarray(v, dtype=float)) for v in sets.values()]).T / len(archs)
        in_table, truths = [], []
        for i, a in enumerate(archs):
            try:  # as truth_pairs: an NB201 CSV has accuracies without curves
                t = float(table.final_accuracy(a))
            except (KeyError, ValueError):
                continue
            in_table.append(i)
            truths.append(t)
        per_checkpoint = []
        if len(in_table) >= 2:
            per_checkpoint = [{"epoch": e, "kendall": kendall([v[i] for i in in_table], truths)}
                              for e, v in zip(epochs, sets.values())]
        report.numbers["stability"] = stab.to_dict("records")
        report.numbers["rank_spread"] = {"architectures": len(archs), "mean_rank_std": float(spread["rank_std"].mean()),
                                         "max_rank_std": float(spread["rank_std"].max())}
        report.numbers["checkpoint_kendall"] = per_checkpoint
        report.figures["stability"] = _plot_stability(epochs, ranks, folder / "stability.png")
        cols = [c for c in stab.columns if c not in ("reference", "compared")]
        stab_rows = [[_e(r["compared"]), _e(r["reference"])] + [num(r[c], f"stab-{c}-{i}") for c in cols]
                     for i, r in enumerate(report.numbers["stability"])]
        worst = spread.assign(arch=archs).sort_values("rank_std", ascending=False, kind="stable").head(5)
        out.append("<h2>One-shot: stability across kept checkpoints</h2><p class='note'>Ning et al. §5.3, Fig. 7: "
                   f"the inherited-weight validation accuracy of the {len(archs)} proposed architectures at each "
                   f"kept supernet checkpoint (epochs {', '.join(map(str, epochs))}; recorded during the search by "
                   "<code>record_stability=True</code>); each checkpoint's ranking against the next one's, the later "
                   "taken as the truth (<code>ranking_stability</code>), and every architecture's rank spread "
                   "across the checkpoints (<code>rank_spread</code>).</p>"
                   + _table(["checkpoint", "against (as truth)"] + cols, stab_rows, raw=True)
                   + _table(["architectures", "mean rank std", "largest rank std"],
                            [[len(archs), num(report.numbers["rank_spread"]["mean_rank_std"], "spread-mean"),
                              num(report.numbers["rank_spread"]["max_rank_std"], "spread-max")]], raw=True)
                   + "<h3>Least stable architectures</h3>"
                   + _table(["architecture", "mean rank", "rank std", "best rank", "worst rank"],
                            [[f'<span class="arch">{_e(r.arch)}</span>', f"{r.mean_rank:.3f}", f"{r.rank_std:.3f}",
                              f"{r.best_rank:.3f}", f"{r.worst_rank:.3f}"] for r in worst.itertuples()], raw=True)
                   + (("<h3>Each checkpoint against the ground truth</h3>"
                       + _table(["checkpoint", "Kendall tau"],
                                [[f"epoch {r['epoch']}", num(r["kendall"], f"ckpt-kendall-{r['epoch']}")]
                                 for r in per_checkpoint], raw=True)) if per_checkpoint else "")
                   + _img(report.figures["stability"], "ranks across kept checkpoints"))
    if not out:
        out.append("<h2>One-shot diagnostics</h2><p class='note'>This one-shot search recorded neither forgetting "
                   "values (<code>record_forgetting=True</code>) nor the proposals' scores at kept checkpoints "
                   "(<code>keep_checkpoints=K</code> with K &ge; 2 and <code>record_stability=True</code>).</p>")
    return out


def write_diagnosis(store: str | os.PathLike, truth: str | os.PathLike | CurveTable,
                    out: str | os.PathLike | None = None, *, complexity: str = "params", groups: int = 5,
                    top: int = 5) -> Report:
    """Write the diagnosis page of the estimator of the search stored in ``store`` against ``truth``.

    The analyses of Ning et al. §5 (:mod:`nas_engine.diagnosis`) over the distinct successfully evaluated
    architectures the table has a final accuracy for: the complexity-level bias (``groups`` groups by
    ``complexity``, see :func:`complexity_values`; Kendall's tau and the mean ranking difference per group,
    Fig. 5), the op-level bias over every mutation pair and over the pairs inside the largest complexity group,
    and the ``top`` best and worst architectures by the estimator, drawn with their true ranks (Fig. 6).
    ``out``: the page (``.html``) or a directory for ``index.html``; default ``STORE/diagnosis/index.html``.
    For a one-shot store (:func:`oneshot_records`) the page adds the forgetting values per supernet epoch and the
    ranking stability across the kept supernet checkpoints (Ning et al. §5.3), where the search recorded them.
    Reads the store only.  ``Report.numbers`` holds what the page states.
    """
    from .criteria import kendall, spearman
    from .diagnosis import complexity_bias, complexity_groups, extremes, op_bias

    groups = check_int(groups, "groups", low=1, who="write_diagnosis")
    top = check_int(top, "top", low=1, who="write_diagnosis")
    _check_out(out, "write_diagnosis")
    run_store = RunStore(store)
    if not run_store.exists():
        raise StoreError(f"store {str(run_store.path)!r}: no store here (expected {RunStore.DATABASE})")
    if complexity not in COMPLEXITY:
        raise ValueError(f"complexity must be one of {', '.join(COMPLEXITY)}, got {complexity!r}")
    result = SearchResult.load(store)
    table = load_truth_table(truth) if isinstance(truth, (str, os.PathLike)) else truth
    archs, scores, truths = truth_pairs(result.history, table)
    if len(archs) < max(2, groups):
        raise ValueError(f"store {str(run_store.path)!r}: {len(archs)} of its successfully evaluated architectures "
                         f"are in {table!r}; the diagnosis needs at least {max(2, groups)}")
    page = _page_path(run_store, out, DIAGNOSIS_DIR)
    folder = page.parent
    space = result.space
    cx = complexity_values(space, archs, table, complexity)
    by_group = complexity_bias(scores, truths, cx, groups=groups)
    arch_objs = [space.from_string(a) for a in archs]
    ops_all = op_bias(arch_objs, scores, truths)
    member = complexity_groups(cx, groups) == by_group["group"].iloc[-1]
    ops_large = op_bias(arch_objs, scores, truths, subset=member)
    picks = extremes(scores, truths, k=top, names=archs)
    numbers: dict[str, Any] = {
        "architectures": len(archs), "spearman": spearman(scores, truths), "kendall": kendall(scores, truths),
        "complexity": complexity, "groups": by_group.to_dict("records"), "op_bias": ops_all.to_dict("records"),
        "op_bias_largest_group": ops_large.to_dict("records"), "extremes": picks.to_dict("records"),
    }
    report = Report(page, numbers=numbers)
    estimator = describe_plugin(result.config.get("estimator"))
    report.figures["complexity"] = _plot_complexity_bias(by_group, complexity, folder / "complexity.png")
    report.figures["extremes"] = _plot_extremes(space, picks.to_dict("records"), folder / "extremes.png")

    def num(x: float, key: str) -> str:
        return f'<span id="{_e(key)}">{"nan" if not math.isfinite(x) else f"{x:.4f}"}</span>'

    group_rows = [[int(g["group"]) + 1, int(g["n"]), f"{g['complexity_min']:.6g} - {g['complexity_max']:.6g}",
                   num(g["kendall"], f"kendall-{int(g['group'])}"), num(g["mean_rd"], f"rd-{int(g['group'])}")]
                  for g in numbers["groups"]]

    def op_rows(frame, prefix: str):
        return [[_e(r["from_op"]), _e(r["to_op"]), int(r["pairs"]),
                 num(r["true_increase"], f"{prefix}-true-{r['from_op']}-{r['to_op']}"),
                 num(r["estimated_increase"], f"{prefix}-est-{r['from_op']}-{r['to_op']}"), f"{r['gap']:+.3f}"]
                for r in frame.to_dict("records")]

    op_header = ["from op", "to op", "pairs", "true increase", "estimated increase", "gap (estimated - true)"]
    pick_rows = [[r["side"], r["position"], f'<span class="arch">{_e(r["name"])}</span>', _e(format_score(r["score"])),
                  f"{r['truth']:.4g}", num(r["true_rank"], f"true-rank-{r['side']}-{r['position']}")]
                 for r in numbers["extremes"]]
    body = [
        "<h2>Summary</h2>" + _table(None, [
            ("<b>store</b>", _e(run_store.path)), ("<b>estimator</b>", _e(estimator)),
            ("<b>ground truth</b>", _e(table)),
            ("<b>architectures</b>", f'<span id="architectures">{len(archs)}</span> distinct, successfully '
                                     "evaluated, in the table"),
            ("<b>Spearman rho / Kendall tau</b>",
             num(numbers["spearman"], "spearman") + " / " + num(numbers["kendall"], "kendall"))], raw=True),
        f"<h2>Complexity-level bias</h2><p class='note'>The architectures in {groups} groups of equal size by "
        f"{_e(complexity)} (ties share a group); Kendall's tau inside each group and the group's mean ranking "
        "difference RD = true rank - estimated rank (rank 1 = best; RD &gt; 0: overestimated). Ning et al. Fig. 5: "
        "a falling mean RD means larger models are underestimated; a falling tau that larger models are harder "
        "to compare.</p>" + _table(["group", "architectures", complexity, "Kendall tau", "mean RD"], group_rows,
                                   raw=True) + _img(report.figures["complexity"], "complexity-level bias"),
        "<h2>Op-level bias</h2><p class='note'>Over every pair of evaluated architectures that differ in one "
        f"operation ({int(ops_all['pairs'].sum()) // 2} pairs, each counted in both directions): how often the "
        "true accuracy rises and how often the score does when <i>from op</i> becomes <i>to op</i>. A positive "
        "gap: the estimator overestimates what <i>to op</i> brings.</p>" + _table(op_header, op_rows(ops_all, "op"),
                                                                               raw=True)
        + f"<h3>Inside the largest complexity group ({int(sum(member))} architectures)</h3>"
        + (_table(op_header, op_rows(ops_large, "op-large"), raw=True) if len(ops_large)
           else "<p>no mutation pair inside it</p>"),
        f"<h2>Arch-level bias: the estimator's best and worst {top}</h2><p class='note'>Ning et al. Fig. 6: the "
        "architectures the estimator ranks highest and lowest, with their true ranks among the "
        f"{len(archs)}.</p>" + _table(["side", "position", "architecture", "score", "truth", "true rank"], pick_rows,
                                      raw=True) + _img(report.figures["extremes"], "best and worst architectures"),
    ]
    records = oneshot_records(store)
    if records is not None:
        body += _oneshot_sections(records, table, folder, report, num)
    _write_page(page, f"nas-engine diagnosis: {run_store.path}", "\n".join(body))
    return report
