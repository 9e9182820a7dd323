"""torch's thread pool sized to the CPUs a process may use: affinity, cgroup v1/v2 quotas, --threads; recorded."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tli import threads
from tli.cli import main


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    threads._LAST = None


def _v2(tmp_path, cgroup: str, files: dict[str, str]):
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = root.parent / "proc-cgroup"
    proc.write_text(f"0::{cgroup}\n")
    return root, proc


@pytest.mark.parametrize(
    ("cgroup", "files", "expected"),
    [
        ("/", {"cpu.max": "max 100000\n"}, None),
        ("/", {"cpu.max": "150000 100000\n"}, 1.5),
        # The tightest quota on the way up counts: a job's own cgroup says max, its parent 1 CPU.
        ("/job/step", {"job/step/cpu.max": "max 100000\n", "job/cpu.max": "100000 100000\n"}, 1.0),
        ("/", {"cpu.max": "garbage\n"}, None),
    ],
)
def test_cgroup_v2_quota(tmp_path, cgroup, files, expected):
    root, proc = _v2(tmp_path, cgroup, files)
    assert threads.cgroup_cpu_quota(root, proc) == expected


@pytest.mark.parametrize(("quota", "expected"), [("-1", None), ("200000", 2.0), ("50000", 0.5)])
def test_cgroup_v1_quota(tmp_path, quota, expected):
    root = tmp_path / "cgroup"
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/x\n1:cpu:/\n0::/\n")
    assert threads.cgroup_cpu_quota(root, proc) == expected


def test_allowance_is_the_tightest_limit(tmp_path, monkeypatch):
    root, proc = _v2(tmp_path, "/", {"cpu.max": "250000 100000\n"})  # 2.5 CPUs of quota
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: set(range(8)))
    allowance = threads.cpu_allowance(root, proc)
    assert (allowance.cpus, allowance.limited_by) == (math.ceil(2.5), "cgroup quota")
    assert (allowance.machine_cpus, allowance.affinity_cpus, allowance.quota_cpus) == (64, 8, 2.5)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: {5})
    assert (
        threads.cpu_allowance(root, proc).cpus == 1
        and threads.cpu_allowance(root, proc).limited_by == "affinity"
    )
    no_quota, proc2 = _v2(tmp_path / "other", "/", {"cpu.max": "max 100000\n"})
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: set(range(64)))
    assert threads.cpu_allowance(no_quota, proc2).limited_by == "machine"


def test_configure_threads_sets_torch_and_says_why(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(
        threads, "cpu_allowance", lambda *a: threads.CpuAllowance(1, 64, 8, 1.0, "cgroup quota")
    )
    record = threads.configure_threads()
    assert torch.get_num_threads() == 1 and record["threads"] == 1
    assert record["source"] == "allowance (cgroup quota)" and record["cgroup_quota_cpus"] == 1.0
    assert threads.threads_record() == record
    assert threads.configure_threads(2)["source"] == "--threads" and torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.configure_threads()["source"] == "OMP_NUM_THREADS" and torch.get_num_threads() == 1


def test_more_threads_than_allowed_warns(monkeypatch, caplog):
    monkeypatch.setattr(threads, "cpu_allowance", lambda *a: threads.CpuAllowance(1, 2, 1, None, "affinity"))
    threads.configure_threads(2)
    assert any("--threads 2 is more than the 1 CPU(s)" in r.getMessage() for r in caplog.records)


def test_cli_records_the_thread_choice_and_refuses_zero(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    out = tmp_path / "scan"
    assert main(["scan", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--threads", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    record = json.loads((out / "results.json").read_text())
    assert (
        record["devices"]["threads"]["threads"] == 1 and record["devices"]["threads"]["source"] == "--threads"
    )
    assert record["devices"]["cpu_threads"] == 1 and record["config"]["threads"] == 1
    assert {"allowance", "machine_cpus", "affinity_cpus", "cgroup_quota_cpus"} <= set(
        record["devices"]["threads"]
    )
    assert main(["scan", "--threads", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
