"""Warm Python processes for the tests that need a process of their own.

A test that runs ``python -m nas_engine ...``, a reproduction script or a documentation file's code in a
fresh interpreter pays ~3 s of imports before its first line (``torch`` 1.3 s, ``torch._dynamo`` 1-1.4 s,
which torch's first optimizer imports, the engine 0.5 s); about forty such processes made a sixth of the fast
suite's CPU time.  Here they fork instead from a fork server that imported those modules once per test
process: :mod:`multiprocessing`'s ``forkserver`` (standard library), whose children are real processes with
their own pid -- they can be killed with ``SIGKILL`` mid-write, their exit status is the script's -- but start
in milliseconds.

What a child does is what ``python ARGV`` does, from the parent's point of view: it runs in ``cwd`` with
exactly ``env`` as its environment, ``sys.argv`` and ``sys.path[0]`` set as the interpreter sets them
(``-m MODULE`` runs the module as ``__main__`` with the working directory first on the path, ``-c CODE``
the code, a script path the script with its directory first), ``PYTHONPATH`` entries added, its stdout and
stderr written to files the parent reads back, and the same exit status (``SystemExit``'s code, 1 with a
traceback for an uncaught exception, death by ``SIGINT`` for an uncaught ``KeyboardInterrupt``).  Settings
read once at interpreter start-up stay the fork server's: the hash seed, ``OMP_NUM_THREADS`` for the
already-loaded OpenMP runtime (the engine sets torch's threads itself) and ``sys.flags``.

Tests that are *about* a fresh interpreter -- what importing the engine costs or pulls in
(``tests/test_layers.py``), an exported model loading without ``nas_engine`` (``tests/test_final.py``), a
real pipe closed early (``tests/test_reliability_cli.py``) -- keep :mod:`subprocess`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["WarmProcess", "popen", "run", "start"]

#: what the fork server imports once (the engine's process executor preloads the first two for its workers)
PRELOAD = ["nas_engine.search", "torch._dynamo", "nas_engine.cli", "tests.warm"]


def start() -> None:
    """Start this process's fork server with :data:`PRELOAD` imported (idempotent; it is the one the engine's
    process executor uses here too, so it is started before any test can start it with less)."""
    from multiprocessing import forkserver

    multiprocessing.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()


def _child(argv: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """In the forked child: become ``python ARGV`` (see the module docstring) and exit as it would."""
    import atexit
    import runpy
    import traceback

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own stdout
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    extra = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    code = 0
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.path[:0] = [os.getcwd(), *extra]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        elif argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            sys.path[:0] = ["", *extra]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 - python -c
        else:
            sys.argv = list(argv)
            sys.path[:0] = [os.path.dirname(os.path.abspath(argv[0])), *extra]
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # noqa: BLE001 - the interpreter's own handling of an uncaught exception
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()  # a multiprocessing child ends with os._exit, which skips them
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class WarmProcess:
    """The part of :class:`subprocess.Popen` the tests use, for a child of the warm fork server: ``pid``,
    ``poll()``, ``wait(timeout)``, ``send_signal``, ``kill``, ``returncode`` (negative: the signal that ended
    it), and its ``stdout``/``stderr`` text once it has ended."""

    def __init__(self, argv: list[str], *, cwd: str | os.PathLike, env: dict[str, str]):
        start()
        self.args = [sys.executable, *argv]
        self._dir = tempfile.mkdtemp(prefix="warm-")
        self._out, self._err = os.path.join(self._dir, "stdout"), os.path.join(self._dir, "stderr")
        ctx = multiprocessing.get_context("forkserver")
        self._process = ctx.Process(target=_child, args=(list(map(str, argv)), str(cwd), dict(env), self._out,
                                                         self._err), daemon=False)
        self._process.start()
        self.pid = self._process.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not self._process.is_alive():
            self._process.join()
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __del__(self):
        import shutil

        shutil.rmtree(getattr(self, "_dir", ""), ignore_errors=True)

    def _read(self, path: str) -> str:
        return Path(path).read_text(errors="replace") if os.path.exists(path) else ""

    @property
    def stdout(self) -> str:
        return self._read(self._out)

    @property
    def stderr(self) -> str:
        return self._read(self._err)


def popen(argv: list[str], *, cwd: str | os.PathLike, env: dict[str, str] | None = None) -> WarmProcess:
    """``python ARGV`` started from the warm fork server (``argv`` without the interpreter)."""
    return WarmProcess(argv, cwd=cwd, env=dict(os.environ) if env is None else env)


def run(argv: list[str], *, cwd: str | os.PathLike, env: dict[str, str] | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """Like ``subprocess.run([sys.executable, *argv], capture_output=True, text=True)``, from the warm fork
    server; a child still running at ``timeout`` is killed and :class:`subprocess.TimeoutExpired` raised."""
    proc = popen(argv, cwd=cwd, env=env)
    t0 = time.monotonic()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise subprocess.TimeoutExpired(proc.args, time.monotonic() - t0, proc.stdout, proc.stderr) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, proc.stderr)
