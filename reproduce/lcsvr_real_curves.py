"""LcSVR against early validation accuracy on real NAS-Bench-201 learning curves.

The shared data holds the real per-epoch cifar10-valid curves (validation
accuracy, mean of 3 seeds, 200-epoch schedule) of NB201 architectures 0-199.
For each split seed, the 200 architectures are split at random into 100 that
LcSVR is fitted on (their curves up to T against their 200-epoch CIFAR-10 test
accuracy) and 100 it ranks; ValAcc at T ranks the same 100.  Every harness
criterion (:func:`nas_engine.criteria.evaluate_ranking`) is computed against
the test accuracy, at T = 5, 10, 25, 50.

Architecture features: #params and forward FLOPs from
:func:`nas_engine.costs.model_costs` at the benchmark's size (C=16, N=5,
3x32x32 input, 10 classes; these #params equal the table's ``params_m``) and
the op counts of the six edges.  Two controls on the same 100: LcSVR on the
curve features alone (``lcsvr-curve-only``) and #params alone (``params``, the
same at every T).

    python -m reproduce.lcsvr_real_curves [--shared ../shared/data] [--seeds 0,1,2,3,4]

Writes one row per (split seed, estimator, T) to
``reproduce/results/lcsvr_real_curves.csv`` and prints the mean over seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nas_engine.benchmarks import NB201Table
from nas_engine.costs import model_costs
from nas_engine.criteria import evaluate_ranking
from nas_engine.estimators import LcSVR, ValAcc
from nas_engine.estimators.lcsvr import ARCH_FEATURES, REFERENCE_INPUT
from nas_engine.spaces.nb201 import NB201Space

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--budgets", default="5,10,25,50")
    p.add_argument("--seeds", default="0,1,2,3,4", help="split seeds (each also seeds LcSVR's CV)")
    p.add_argument("--n-fit", type=int, default=100)
    p.add_argument("--out", default=str(ROOT / "reproduce" / "results" / "lcsvr_real_curves.csv"))
    args = p.parse_args(argv)
    import pandas as pd

    nb = Path(args.shared) / "nas-bench-201"
    table = NB201Table(nb / "nb201_cifar10_200ep.csv", nb / "nb201_cifar10valid_curves_200archs.jsonl")
    space = NB201Space()
    archs = [space.from_string(s) for s in table.archs()]
    curves = {a.string: table.curve(a) for a in archs}
    truth = {a.string: table.final_accuracy(a) for a in archs}
    costs = model_costs(space, archs, **REFERENCE_INPUT, **space.default_size)

    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        order = np.random.default_rng(seed).permutation(len(archs))
        fit_set = [archs[i] for i in order[:args.n_fit]]
        test_set = [archs[i] for i in order[args.n_fit:]]
        y = [truth[a.string] for a in test_set]
        for T in [int(t) for t in args.budgets.split(",")]:
            scores, svr_params = {}, {}
            for name, features in (("lcsvr", ARCH_FEATURES), ("lcsvr-curve-only", ())):
                lcsvr = LcSVR(epochs=T, arch_features=features, seed=seed).fit(
                    [curves[a.string] for a in fit_set], [truth[a.string] for a in fit_set], fit_set, costs=costs)
                scores[name] = lcsvr.predict([curves[a.string] for a in test_set], test_set, costs=costs)
                svr_params[name] = {f"svr_{k}": v for k, v in lcsvr.best_params_.items()}
            scores["valacc"] = [ValAcc(epochs=T).score(curves[a.string]) for a in test_set]
            scores["params"] = [costs[a.string]["params"] for a in test_set]
            for name, s in scores.items():
                rows.append({"seed": seed, "estimator": name, "epochs": T, "n_fit": len(fit_set),
                             "n": len(test_set), **evaluate_ranking(s, y, ks=(0.1,)), **svr_params.get(name, {})})
    df = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    cols = ["spearman", "kendall", "p@top10%", "top10%_mean"]
    summary = df.groupby(["epochs", "estimator"])[cols].agg(["mean", "std"])
    print(f"{len(set(df['seed']))} split(s) of the 200 real curves: LcSVR fitted on {args.n_fit}, "
          f"both rank the other {len(archs) - args.n_fit} (mean, std over splits)")
    print(summary.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
