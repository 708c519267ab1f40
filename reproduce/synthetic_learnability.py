"""Is Synthetic CIFAR-10 learnable at a given size?  A position-aware linear baseline.

The labels of ``synthetic-cifar10`` (FEAR Appendix A.4) are the argmax of ten
random 3072-3072-1 ReLU networks of i.i.d. Gaussian pixels, mostly a random
position-specific linear function of the pixels.  This fits multinomial
logistic regression (scikit-learn) on the raw pixels for a few training-set
sizes and prints its training and validation accuracy: the reference for
whether NB201 networks trained on the same split (``zero_cost_synthetic.py``)
generalise at all.

    python reproduce/synthetic_learnability.py --sizes 5000,20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.linear_model import LogisticRegression  # noqa: E402

from nas_engine.data import load_dataset  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="5000,20000", help="comma-separated training-set sizes")
    p.add_argument("--n-val", type=int, default=2000)
    p.add_argument("--max-iter", type=int, default=200)
    args = p.parse_args(argv)
    print("n_train,train_acc,val_acc,seconds")
    for n in (int(v) for v in args.sizes.split(",")):
        d = load_dataset("synthetic-cifar10", n_train=n, n_val=args.n_val)
        x, y = d.x_train.reshape(n, -1).numpy(), d.y_train.numpy()
        xv, yv = d.x_val.reshape(len(d.y_val), -1).numpy(), d.y_val.numpy()
        t = time.perf_counter()
        clf = LogisticRegression(max_iter=args.max_iter).fit(x, y)
        print(f"{n},{clf.score(x, y):.3f},{clf.score(xv, yv):.3f},{time.perf_counter() - t:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
