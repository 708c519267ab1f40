"""The estimator-quality harness: how well do cheap estimators rank architectures?

The experiment of the TSE paper (Fig. 1) and the OSE/ZSE study, with the
library itself:

1. :func:`sample_architectures` draws distinct architectures (distinct
   functional classes by default);
2. :func:`collect_curves` trains each one **once** for T epochs (or reads its
   curve from a table) through an ordinary :class:`~nas_engine.search.Search`
   over a :class:`~nas_engine.strategies.FixedList`, so runs are stored and
   resumable;
3. :func:`correlate` scores every curve prefix t = 1..T with every curve
   estimator, adds the free baselines (#params, #FLOPs at initialisation, the
   same for every t), and computes every ranking criterion against the ground
   truth (:func:`nas_engine.criteria.evaluate_ranking`);
4. :func:`plot_correlation` draws a criterion against the budget t.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import check_int
from .costs import count_flops, count_params, model_costs  # re-exported
from .criteria import evaluate_ranking
from .curves import LearningCurve
from .registry import create
from .search import Budget, Search
from .spaces.base import Architecture, Enumerable, SearchSpace
from .strategies.fixed import FixedList

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .data import Dataset
    from .training import Protocol

__all__ = [
    "DEFAULT_ESTIMATORS", "sample_architectures", "collect_curves", "count_params", "count_flops", "model_costs",
    "correlate", "plot_correlation",
]

DEFAULT_ESTIMATORS = ("tse", "tse-e", "tse-ema", "tlmini", "sovl", "valacc")


def sample_architectures(space: SearchSpace, n: int, seed: int = 0, *, dedupe: str = "canonical",
                         among: Sequence[str] | None = None) -> list[Architecture]:
    """``n`` distinct random architectures (distinct by ``space.canonical`` by default).

    ``among`` restricts the sample to the given architecture strings (e.g. those
    a ground-truth table holds).  More than the space (or ``among``) holds is
    refused up front.
    """
    if dedupe not in ("canonical", "string"):
        raise ValueError(f"dedupe must be 'canonical' or 'string', got {dedupe!r}")
    n = check_int(n, "n", low=0, who="sample_architectures")
    rng = np.random.default_rng(seed)
    key = space.canonical if dedupe == "canonical" else (lambda a: a.string)
    pool = [space.from_string(s) for s in among] if among is not None else None
    size = len(set(among)) if among is not None else len(space) if isinstance(space, Enumerable) else None
    if size is not None and n > size:
        raise ValueError(f"{n} distinct architectures asked, but " + (
            f"only {size} are given to sample from" if among is not None else f"the space {space.name!r} holds {size}"))
    seen, out = set(), []
    for _ in range(1000 * n):
        if len(out) == n:
            break
        a = pool[int(rng.integers(len(pool)))] if pool is not None else space.sample(rng)
        k = key(a)
        if k not in seen:
            seen.add(k)
            out.append(a)
    if len(out) < n:
        raise ValueError(f"could only find {len(out)} distinct architectures (dedupe={dedupe!r}), {n} asked")
    return out


def collect_curves(space: SearchSpace, archs: Sequence[Architecture | str], *, epochs: int,
                   data: Dataset | None = None, protocol: Protocol | None = None, table=None,
                   seed: int = 0, store: str | None = None, progress: bool = True,
                   executor=None, workers: int | None = None) -> dict[str, LearningCurve | None]:
    """Train (or read) each architecture once for ``epochs`` epochs with validation.

    ``executor`` / ``workers`` choose where the candidates train, as for
    :class:`~nas_engine.search.Search` (e.g. ``"processes"``, 2: two at a time).
    Returns ``{arch string: curve}``; a candidate whose training failed maps to
    its partial curve marked by ``info["failed"]``, or None when nothing was recorded.
    """
    archs = [a.string if isinstance(a, Architecture) else a for a in archs]
    kw = {"table": table} if table is not None else {}
    result = Search(FixedList(archs), space, create("estimator", "valacc", epochs=epochs), data=data,
                    protocol=protocol, budget=Budget(evaluations=len(archs)), seed=seed, store=store,
                    progress=progress, executor=executor, workers=workers, **kw).run()
    out: dict[str, LearningCurve | None] = {}
    for ev in result.history:
        curve = ev.curve
        if not ev.ok:
            curve = None if curve is None or curve.epochs == 0 else LearningCurve(
                **{k: v for k, v in curve.to_dict().items() if k != "info"},
                info={**curve.info, "failed": ev.reason})
        out[ev.arch.string] = curve
    return out


def correlate(curves: Mapping[str, LearningCurve | None] | None, truth: Mapping[str, float], *,
              estimators: Sequence[str] | Mapping[str, dict[str, Any]] = DEFAULT_ESTIMATORS,
              budgets: Sequence[int] | None = None,
              baselines: Mapping[str, Mapping[str, float]] | None = None,
              ks: Sequence[float] = (0.1,)) -> pd.DataFrame:
    """Every ranking criterion of every estimator at every budget t.

    ``curves``: arch string -> curve (None or too short for a failed candidate:
    it scores NaN, which the criteria rank last).  ``truth``: arch string ->
    true final accuracy.  ``estimators``: registry names, or names mapped to
    extra constructor arguments (e.g. ``{"tse-ema": {"gamma": 0.9}}``).
    ``budgets``: the t values (default 1..T, T the longest curve).
    ``baselines``: name -> {arch string: score}, e.g. the ``params`` column of
    :func:`model_costs` or the zero-cost proxies of
    :func:`nas_engine.estimators.zero_cost.zero_cost_scores`; scored once and
    reported at every t.  ``curves=None`` correlates only the baselines, over
    the architectures of the first one (``budgets`` default ``[0]``).

    Returns a long DataFrame: one row per (estimator, t) with columns
    ``estimator, epochs, n`` and the keys of :func:`~nas_engine.criteria.evaluate_ranking`.
    """
    import pandas as pd

    if curves is None:
        if not baselines:
            raise ValueError("correlate needs curves or baselines, got neither")
        names = list(next(iter(baselines.values())))
        estimators = ()
        budgets = [0] if budgets is None else budgets
        curves = {}
    else:
        names = list(curves)
    if len(names) < 2:
        raise ValueError(f"need at least 2 architectures to correlate, got {len(names)}")
    missing = [a for a in names if a not in truth]
    if missing:
        raise KeyError(f"no ground truth for {len(missing)} architecture(s), e.g. {missing[0]!r}")
    y = np.array([float(truth[a]) for a in names])
    T = max((c.epochs for c in curves.values() if c is not None), default=0)
    budgets = list(range(1, T + 1)) if budgets is None else [int(t) for t in budgets]
    if isinstance(estimators, Mapping):
        est_kw = {k: dict(v) for k, v in estimators.items()}
    else:
        est_kw = {k: {} for k in estimators}

    rows = []
    for name, kw in est_kw.items():
        for t in budgets:
            est = create("estimator", name, epochs=t, **kw)
            s = np.array([_score_or_nan(est, curves[a]) for a in names])
            rows.append({"estimator": name, "epochs": t, "n": len(names),
                         **evaluate_ranking(s, y, ks=ks)})
    for name, values in (baselines or {}).items():
        s = np.array([float(values.get(a, np.nan)) for a in names])
        crit = evaluate_ranking(s, y, ks=ks)
        rows.extend({"estimator": name, "epochs": t, "n": len(names), **crit} for t in budgets)
    return pd.DataFrame(rows)


def _score_or_nan(est, curve: LearningCurve | None) -> float:
    if curve is None or curve.epochs < est.epochs or "failed" in curve.info:
        return float("nan")
    try:
        return est.score(curve)
    except ValueError:
        return float("nan")


def plot_correlation(df: pd.DataFrame, path: str, *, criterion: str = "spearman", title: str | None = None,
                     baselines: Sequence[str] = ("params", "flops")):
    """Plot ``criterion`` against the budget t, one line per estimator (dashed, no markers: the ``baselines``,
    scored once); save to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, g in df.groupby("estimator", sort=False):
        g = g.sort_values("epochs")
        style = "--" if name in baselines else "-"
        ax.plot(g["epochs"], g[criterion], style, marker="o" if style == "-" else None, ms=3, label=name)
    ax.set_xlabel("training budget T (epochs)")
    ax.set_ylabel(criterion)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
