"""The thread policy: CPUs available, the rule, and that searches run their evaluations under it."""

from __future__ import annotations

import pytest
import torch

from nas_engine import threads
from nas_engine.executors import InlineExecutor, ProcessExecutor
from nas_engine.search import Budget, Search
from nas_engine.strategies import FixedList
from nas_engine.threads import _cgroup_cpu_limit, available_cpus, policy_threads, torch_threads
from nas_engine.training import Protocol

from .faulty import SPACE, Threads, archs

TINY = Protocol(schedule_epochs=1, batch_size=32, device="cpu", size={"C": 4, "N": 1})


def test_cgroup_quota_v2_v1_and_unlimited(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_cpu_limit(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _cgroup_cpu_limit(tmp_path) is None
    assert _cgroup_cpu_limit(tmp_path / "absent") is None


def test_available_cpus_is_capped_by_the_quota_and_the_environment(monkeypatch):
    import os

    monkeypatch.delenv(threads.CPUS_ENV_VAR, raising=False)  # the test session sets it (conftest)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 1.5)
    assert available_cpus() == 2  # a quota of 1.5 CPUs: two threads can use it
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: None)
    assert available_cpus() == 4
    monkeypatch.setenv(threads.CPUS_ENV_VAR, "3")
    assert available_cpus() == 3
    monkeypatch.setenv(threads.CPUS_ENV_VAR, "16")  # a cap, never more than the process may use
    assert available_cpus() == 4
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(threads.CPUS_ENV_VAR, bad)
        with pytest.raises(ValueError, match=f"NAS_ENGINE_CPUS={bad!r}: expected a whole number"):
            available_cpus()


def test_policy_rule():
    big = threads.MULTI_THREAD_GFLOP * 2
    assert policy_threads(1, None, cpus=8) == 1  # size unknown
    assert policy_threads(1, threads.MULTI_THREAD_GFLOP / 2, cpus=8) == 1  # small: threads do not pay
    assert policy_threads(1, big, cpus=8) == 7  # never every CPU: one stays free for the rest of the machine
    assert policy_threads(3, big, cpus=8) == 2  # its share of the CPUs
    assert policy_threads(16, big, cpus=8) == 1
    assert policy_threads(1, big, cpus=2) == 1  # a 2-core machine: one thread, cores used by parallel candidates
    assert policy_threads(1, big, cpus=8, device="cuda") == 1


def _search(executor, **kw):
    return Search(FixedList(archs(3)), SPACE, Threads(), data="digits", protocol=TINY,
                  budget=Budget(evaluations=3), executor=executor, progress=False, **kw)


def test_inline_default_is_the_policy_not_torchs_setting(monkeypatch):
    with torch_threads(2):  # torch's own setting differs from what the policy chooses
        s = _search(None)
        assert s.executor.threads_from_policy and s.threads == policy_threads(1, s._gflop_per_batch()) == 1
        result = s.run()
        assert [ev.score for ev in result.history] == [1.0] * 3
        assert result.config["execution"]["threads"] == 1
        assert torch.get_num_threads() == 2  # restored after each evaluation
    # a candidate big enough for threads (threshold lowered): the inline default takes the CPUs
    monkeypatch.setattr(threads, "MULTI_THREAD_GFLOP", 0.0)
    monkeypatch.setattr(threads, "available_cpus", lambda: 3)
    with torch_threads(1):
        s = _search(None)
        assert s.threads == 2 and [ev.score for ev in s.run().history] == [2.0] * 3
    # given threads always win (up to the CPUs the machine has: three here)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 3)
    assert [ev.score for ev in _search(InlineExecutor(threads=3)).run().history] == [3.0] * 3


@pytest.mark.parametrize("workers", [1, 2])
def test_processes_default_is_the_policy(workers):
    ex = ProcessExecutor(workers=workers)
    s = _search(ex)
    result = s.run()
    assert s.threads == 1 and ex.threads == 1 and result.config["execution"]["threads"] == 1
    assert sorted(ev.score for ev in result.history) == [1.0] * 3


def test_a_tabular_or_dataless_search_takes_one_thread():
    s = Search(FixedList(archs(2)), SPACE, Threads(), data=None, protocol=TINY, progress=False)
    assert s._gflop_per_batch() is None and s.threads == 1


@pytest.mark.real_auto_executor
def test_auto_executor_uses_the_cpus(monkeypatch):
    from nas_engine import executors

    monkeypatch.setattr(executors, "cpu_count", lambda: 4)
    auto = executors.auto_executor
    assert auto(None, "cpu") == ("processes", 4)  # several CPUs: parallel candidates
    assert auto(1, "cpu") == ("inline", None)  # the one-worker mode
    assert auto(None, "cpu", trains=False) == ("inline", None)  # a tabular or data-free search
    assert auto(3, "cpu") == ("processes", 3)
    monkeypatch.setattr(executors, "main_is_import_safe", lambda: False)  # an unguarded script: stay here
    assert auto(None, "cpu") == ("inline", None)
    monkeypatch.setattr(executors, "main_is_import_safe", lambda: True)
    monkeypatch.setattr(executors, "cpu_count", lambda: 1)
    assert auto(None, "cpu") == ("inline", None)
    assert executors.create_executor("auto", 1).name == "inline"
    assert executors.create_executor(None, 1).name == "inline"


@pytest.mark.real_auto_executor
def test_auto_executor_keeps_gpu_candidates_in_this_process(monkeypatch):
    from nas_engine import executors, training

    monkeypatch.setattr(executors, "cpu_count", lambda: 4)
    monkeypatch.setattr(training.torch.cuda, "is_available", lambda: True)
    assert executors.auto_executor(None, "cuda") == ("inline", None)


@pytest.mark.real_auto_executor
def test_main_is_import_safe_reads_the_main_guard(tmp_path, monkeypatch):
    import sys
    import types

    from nas_engine import executors

    guarded, bare = tmp_path / "guarded.py", tmp_path / "bare.py"
    guarded.write_text("import x\n\nif __name__ == '__main__':\n    main()\n")
    bare.write_text("from nas_engine import Search\nSearch('random', 'nb201', 'tse-ema').run()\n")
    for path, safe in ((guarded, True), (bare, False)):
        main = types.ModuleType("__main__")
        main.__file__, main.__spec__ = str(path), None
        monkeypatch.setitem(sys.modules, "__main__", main)
        assert executors.main_is_import_safe() is safe
    interactive = types.ModuleType("__main__")
    interactive.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", interactive)
    assert executors.main_is_import_safe()


def test_cli_search_reports_where_it_ran(capsys):
    from nas_engine.cli import main

    assert main(["search", "--evaluations", "2", "--epochs", "1", "--workers", "1", "--quiet"]) == 0
    assert "ran on: the inline executor, 1 worker, 1 torch thread per evaluation (the thread policy)" in \
        capsys.readouterr().out
    assert main(["search", "--evaluations", "2", "--epochs", "1", "--workers", "1", "--threads", "2",
                 "--quiet"]) == 0
    assert "ran on: the inline executor, 1 worker, 2 torch threads per evaluation\n" in capsys.readouterr().out



def test_process_executor_devices_are_checked_and_taken_in_turn():
    with pytest.raises(ValueError, match=r"devices must be a non-empty list of CUDA device indices, e.g. \[0, 1\], "
                                         r"got '0'"):
        ProcessExecutor(workers=2, devices="0")
    for bad in ([], [-1], [0.5], [True]):
        with pytest.raises(ValueError, match="devices must be a non-empty list"):
            ProcessExecutor(workers=2, devices=bad)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=rf"names CUDA device\(s\) \[{count}\] but this machine has {count}"):
        ProcessExecutor(workers=2, devices=[count])
    ex = ProcessExecutor(workers=3)
    assert ex.device_of(0) is None
    ex.devices = [0, 1]  # what ProcessExecutor(devices=[0, 1]) keeps on a machine with two GPUs
    assert [ex.device_of(slot) for slot in range(3)] == [0, 1, 0]
