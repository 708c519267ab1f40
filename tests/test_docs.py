"""The code a user is told to run: every fenced block of README.md and docs/**/*.md.

* ```python blocks of one file run in order, in one namespace, in a fresh
  process (``python SCRIPT``, a warm process of :mod:`tests.warm`: forked with
  torch and the engine already imported, nothing else run) in a temporary
  working directory; a block
  that raises fails the test with the file name and the block's line.
* ```bash / ```sh blocks: every ``nas-engine ...`` command (backslash
  continuations joined, ``# comments`` dropped) runs through
  ``nas_engine.cli.main`` (what the console script calls), in order, after the
  file's python blocks, in the same interpreter and working directory (as a
  reader would run them: a command may use what a block wrote), and must exit 0.
  ``make demo`` / ``make test`` lines are not run here (``make test`` is the
  test command itself); instead the Makefile's demo command runs with
  ``--evaluations 1`` and a temporary ``--out``. Any other shell line in a run
  block is an error: make it a ``nas-engine`` command or mark the block.
* ``<!-- not-run: REASON -->`` on the line directly before a fence opts the
  block out (hours-long reproductions, commands that need data files); the
  reason must not be empty.
* Every fence names its language; output is fenced as ```text and never runs.

New pages (``docs/plugins.md`` and any other) are picked up automatically.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import warm

ROOT = Path(__file__).resolve().parents[1]
RUN_LANGS = {"python", "bash", "sh"}
KNOWN_LANGS = RUN_LANGS | {"text", "console", "json", "yaml", "toml", "ini", "csv", "diff", "make"}
MARKER = re.compile(r"^\s*<!--\s*not-run:(.*?)-->\s*$")
FENCE = re.compile(r"^\s*```(.*)$")
TIMEOUT = 180  # seconds per file; the examples are sized to take a few seconds each


@dataclass
class Block:
    file: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None  # the marker's reason, None without a marker


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    out, i = [], 0
    rel = str(path.relative_to(ROOT))
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        info = m.group(1).strip()
        lang = info.split()[0] if info else ""
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"{rel}:{start + 1}: unclosed code fence"
        marker = MARKER.match(lines[start - 1]) if start > 0 else None
        out.append(Block(rel, start + 1, lang, textwrap.dedent("\n".join(body)) + "\n",
                         marker.group(1).strip() if marker else None))
        i += 1
    return out


ALL = {str(p.relative_to(ROOT)): blocks(p) for p in doc_files()}


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    e.setdefault("OMP_NUM_THREADS", "1")
    e["MPLBACKEND"] = "Agg"
    return e


def cli_commands(block: Block) -> list[tuple[int, list[str]]]:
    """The ``nas-engine`` commands of a shell block, with the line each starts on."""
    cmds, pending, first = [], "", None
    for k, raw in enumerate(block.code.splitlines()):
        line = raw.rstrip()
        if first is None:
            first = block.line + 1 + k
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical, pending, at, first = (pending + line).strip(), "", first, None
        words = shlex.split(logical, comments=True)
        if not words:
            continue
        if words[0] == "nas-engine":
            cmds.append((at, words[1:]))
        elif words[:2] in (["make", "demo"], ["make", "test"]):
            continue  # make test is this suite; the demo's command is test_makefile_demo_runs
        else:
            raise AssertionError(f"{block.file}:{at}: the test does not know how to run {logical!r}; "
                                 "make it a `nas-engine ...` command or put `<!-- not-run: REASON -->` "
                                 "directly before the fence")
    return cmds


def run_cli(args: list[str], cwd: Path, where: str) -> str | None:
    """Run ``nas-engine ARGS``; the failure message, or None if it exited 0."""
    proc = warm.run(["-m", "nas_engine", *args], cwd=cwd, env=env(), timeout=TIMEOUT)
    if proc.returncode:
        return (f"{where}: `nas-engine {shlex.join(args)}` exited {proc.returncode}\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return None


# the runner is a script with a main guard: worker processes (forkserver/spawn) import the main module again.
# It runs a file's python blocks in order in one namespace, then its ``nas-engine`` commands in order, each
# through ``nas_engine.cli.main`` as the console script runs it (one interpreter start per file).
RUNNER = """\
import sys, traceback
if __name__ == "__main__":
    ns = {"__name__": "__main__"}
    for where, src in BLOCKS:
        try:
            exec(compile(src, where, "exec"), ns)
        except BaseException:
            traceback.print_exc()
            print("DOC BLOCK FAILED: " + where, file=sys.stderr)
            sys.exit(3)
    from nas_engine.cli import main
    for where, argv in COMMANDS:
        print("$ nas-engine " + " ".join(argv), flush=True)
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's --help / --version
            rc = exc.code or 0
        if rc:
            print(f"DOC COMMAND FAILED: {where}: exited {rc}", file=sys.stderr)
            sys.exit(4)
"""


def file_job(file: str, kinds: set[str], tmp: Path) -> dict[str, str | None]:
    """A file's python blocks, then its shell commands in the same working directory (as a reader would run
    them: the commands may use what the blocks wrote), in one new process; the failure message of each
    kind in ``kinds`` ("python", "cli"), or None."""
    blocks = [(f"{b.file}:{b.line}", b.code) for b in ALL[file] if b.lang == "python" and b.not_run is None
              ] if "python" in kinds else []
    commands = [(f"{file}:{at}", args) for b in ALL[file] if b.lang in ("bash", "sh") and b.not_run is None
                for at, args in cli_commands(b)] if "cli" in kinds else []
    script = tmp / "doc_job.py"
    script.write_text(f"BLOCKS = {blocks!r}\nCOMMANDS = {commands!r}\n" + RUNNER)
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    proc = warm.run([str(script)], cwd=work, env=env(), timeout=TIMEOUT)
    out: dict[str, str | None] = {kind: None for kind in kinds}
    if proc.returncode == 3:
        out["python"] = f"a python block of {file} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        if "cli" in kinds:
            out["cli"] = f"{file}: not run, its python blocks failed"
    elif proc.returncode == 4:
        out["cli"] = f"a command of {file} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    elif proc.returncode:
        out = {kind: f"the job of {file} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
               for kind in kinds}
    return out


def demo_job(tmp: Path) -> str | None:
    """`make demo`'s command line, read from the Makefile, at 1 evaluation into a temporary --out."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    recipe = re.search(r"^demo:.*\n\t(.*)$", text, re.M)
    if not recipe:
        return "no demo recipe in the Makefile"
    words = shlex.split(recipe.group(1))
    if not words[0].endswith("/bin/nas-engine"):
        return f"the demo recipe should run .venv/bin/nas-engine, not {words[0]!r}"
    args = words[1:]
    for flag, value in (("--evaluations", "1"), ("--out", str(tmp / "demo"))):
        if flag not in args:
            return f"the demo command has no {flag}"
        args[args.index(flag) + 1] = value
    return run_cli(args + ["--quiet"], tmp, "Makefile demo") or (
        None if (tmp / "demo" / "run.sqlite").is_file() else "the demo stored no evaluations")


def _python_files():
    return [f for f, bs in ALL.items() if any(b.lang == "python" and b.not_run is None for b in bs)]


def _cli_files():
    return [f for f, bs in ALL.items() if any(b.lang in ("bash", "sh") and b.not_run is None and cli_commands(b)
                                              for b in bs)]


#: under pytest-xdist, each documentation file's job result in this test process (see ``jobs``)
_DONE: dict[str, dict[str, str | None]] = {}


@pytest.fixture(scope="module")
def jobs(request, tmp_path_factory):
    """Start the selected tests' subprocess jobs at once, at most two at a time (each is one-threaded): one job
    per documentation file, and the Makefile demo.  Maps each test's key to a call that waits for its error."""
    per_file: dict[str, set[str]] = {}
    demo = False
    for item in request.session.items:
        if getattr(item, "module", None) is not sys.modules[__name__]:
            continue
        name, params = item.originalname, getattr(getattr(item, "callspec", None), "params", {})
        if name == "test_makefile_demo_runs":
            demo = True
        elif name in ("test_python_blocks_run", "test_cli_blocks_run"):
            per_file.setdefault(params["file"], set()).add("python" if name == "test_python_blocks_run" else "cli")
    if "PYTEST_XDIST_WORKER" in os.environ:  # pytest-xdist spreads the tests over its workers (see conftest):
        # each job runs when its first test in this process asks.  The results outlive this fixture (_DONE):
        # between a file's two tests the worker may run another module's, which ends this module-scoped
        # fixture, and the job would run a second time.
        def wait(f: str, kind: str) -> str | None:
            if f not in _DONE:
                _DONE[f] = file_job(f, per_file[f], tmp_path_factory.mktemp("docjob"))
            return _DONE[f][kind]

        waits = {(kind, f): (lambda f=f, kind=kind: wait(f, kind)) for f, kinds in per_file.items() for kind in kinds}
        waits["demo"] = lambda: demo_job(tmp_path_factory.mktemp("docjob"))
        yield waits
        return
    workers = int(os.environ.get("NAS_ENGINE_DOC_JOBS", min(2, os.cpu_count() or 1)))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {f: pool.submit(file_job, f, kinds, tmp_path_factory.mktemp("docjob"))
                   for f, kinds in per_file.items()}
        waits = {(kind, f): (lambda f=f, kind=kind: futures[f].result()[kind])
                 for f, kinds in per_file.items() for kind in kinds}
        if demo:
            waits["demo"] = pool.submit(demo_job, tmp_path_factory.mktemp("docjob")).result
        yield waits


@pytest.mark.parametrize("file", _python_files())
def test_python_blocks_run(file, jobs):
    err = jobs[("python", file)]()
    assert err is None, err


@pytest.mark.parametrize("file", _cli_files())
def test_cli_blocks_run(file, jobs):
    err = jobs[("cli", file)]()
    assert err is None, err


def test_makefile_demo_runs(jobs):
    err = jobs["demo"]()
    assert err is None, err


def test_not_run_markers_have_reasons_and_fences():
    problems = []
    for path in doc_files():
        rel = str(path.relative_to(ROOT))
        lines = path.read_text().splitlines()
        for k, line in enumerate(lines):
            if "not-run" not in line or not line.lstrip().startswith("<!--"):
                continue
            m = MARKER.match(line)
            if not m or not m.group(1).strip():
                problems.append(f"{rel}:{k + 1}: a not-run marker needs a reason: <!-- not-run: REASON -->")
            elif k + 1 >= len(lines) or not lines[k + 1].lstrip().startswith("```"):
                problems.append(f"{rel}:{k + 1}: a not-run marker must be directly before a code fence")
    assert not problems, "\n".join(problems)


def test_every_fence_names_its_language():
    bad = [f"{b.file}:{b.line}: ```{b.lang}" for bs in ALL.values() for b in bs if b.lang not in KNOWN_LANGS]
    assert not bad, ("fences must name a known language (```text for output, which is never run):\n"
                     + "\n".join(bad))


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= 250, f"README.md has {n} lines; keep it at most 250 and move details to docs/"
