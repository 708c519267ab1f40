"""What the scripts with subcommands (``estimator_diagnosis``, ``tse_appendix``) share after parsing: the
output directory and the run of the chosen subcommand."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["run_subcommand"]


def run_subcommand(p: argparse.ArgumentParser, args: argparse.Namespace, *, name: str, results: Path,
                   files: Mapping[str, Sequence[str]], commands: Mapping[str, Callable[..., int]]) -> int:
    """Run ``commands[args.command](args, out)``: ``out`` is ``--out`` or a new ``results/NAME-<UTC time>``
    directory; files of the subcommand (``files``) already there are refused without ``--overwrite``; a
    ``ValueError``/``KeyError`` of the run is a one-line error and exit status 2."""
    out = Path(args.out) if args.out else results / (name + "-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    clash = [f for f in files[args.command] if (out / f).exists()]
    if clash and not args.overwrite:
        p.error(f"{out} already holds {', '.join(clash)}; pass --overwrite to replace them, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        return commands[args.command](args, out)
    except (ValueError, KeyError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
