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

TINY = Protocol(epochs=1, batch_size=32, C=4, N=1, device="cpu")


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


def test_available_cpus_is_capped_by_the_quota(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 1.5)
    assert available_cpus() == 2  # a quota of 1.5 CPUs: two threads can use it
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: None)
    assert available_cpus() == 4


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
    # given threads always win
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


def _args(**kw):
    import argparse

    base = {"executor": None, "workers": None, "threads": None, "executor_arg": []}
    return argparse.Namespace(**{**base, **kw})


def test_cli_default_executor_uses_the_cpus(monkeypatch):
    from nas_engine import cli

    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    cpu, gpu = TINY, TINY.replace(device="cuda")
    assert cli._default_executor(_args(), cpu) == ("processes", 4)  # several CPUs: parallel candidates
    assert cli._default_executor(_args(workers=1), cpu) == ("inline", None)  # the one-worker mode
    assert cli._default_executor(_args(workers=3), cpu) == ("processes", 3)
    assert cli._default_executor(_args(executor="inline"), cpu) == ("inline", None)
    assert cli._default_executor(_args(), gpu) == ("inline", None)  # candidates on a GPU
    args = _args(threads=2)
    assert cli._default_executor(args, cpu) == ("processes", 4) and args.executor_arg == []  # args untouched
    monkeypatch.setattr(threads, "available_cpus", lambda: 1)
    assert cli._default_executor(_args(), cpu) == ("inline", None)


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
