"""Early validation accuracy on real NAS-Bench-201 learning curves (200 architectures).

The shared data holds the real per-epoch cifar10-valid curves (train/valid
accuracy, mean of 3 seeds, 200-epoch schedule) of NB201 architectures 0-199.
This script ranks those 200 architectures by ValAcc at t = 5, 10, 25, 50, 100,
200 and reports every harness criterion against the 200-epoch CIFAR-10 test
accuracy, next to #params (the free baseline).  The curves carry no losses, so
the TSE family cannot be scored on them (see reproduce/tse_rank_correlation.py
for TSE on curves trained by the engine).

    python -m reproduce.valacc_real_curves [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas_engine.benchmarks import NB201Table
from nas_engine.correlate import correlate

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--budgets", default="1,2,5,10,25,50,100,200")
    p.add_argument("--out", default=str(ROOT / "reproduce" / "results" / "valacc_real_curves.csv"))
    args = p.parse_args(argv)
    nb = Path(args.shared) / "nas-bench-201"
    table = NB201Table(nb / "nb201_cifar10_200ep.csv", nb / "nb201_cifar10valid_curves_200archs.jsonl")
    curves = {a: table.curve(a) for a in table.archs()}
    truth = table.ground_truth()
    budgets = [int(t) for t in args.budgets.split(",")]
    df = correlate(curves, truth, estimators=["valacc"], budgets=budgets,
                   baselines={"params": {a: table.params(a) for a in curves}}, ks=(0.1,))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    cols = ["estimator", "epochs", "n", "spearman", "kendall", "p@top10%", "top10%_mean"]
    print(df[cols].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
