"""Torch's CPU thread pool sized to the CPUs this process may use.

torch (through OpenMP) starts one intra-op thread per CPU of its affinity mask, but a container or a cluster job
is often granted less than that by a CPU *quota* (cgroup v2 ``cpu.max``, cgroup v1 ``cpu.cfs_quota_us``), which
OpenMP does not read: a job limited to 2 CPUs on a 64-core node then runs 64 threads that the kernel throttles,
and spinning OpenMP threads burn CPU time waiting for descheduled ones. :func:`configure_threads` sets the pool
to the allowance — the smallest of the machine's CPUs, the affinity mask and the quota — or to what the user
asked for (``--threads N``, or ``OMP_NUM_THREADS`` in the environment), and :func:`threads_record` says what was
chosen and why, for every ``results.json``.

In-function import: ``torch`` (its thread pool), so :mod:`tli.runs` and ``tli --help`` do not load it.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class CpuAllowance:
    """How many CPUs this process may use, and what limits it."""

    cpus: int
    """The allowance: ``min(machine, affinity, ceil(quota))`` (at least 1)."""
    machine_cpus: int
    affinity_cpus: int | None
    """CPUs in the affinity mask (``os.sched_getaffinity``; ``taskset``, Slurm, ``docker --cpuset-cpus``)."""
    quota_cpus: float | None
    """CPU quota of the cgroup (``docker --cpus``, Kubernetes limits), in CPUs; None when unlimited."""
    limited_by: str
    """``machine``, ``affinity`` or ``cgroup quota``."""


def _cgroup_paths(proc_cgroup: Path) -> dict[str, str]:
    """Controller → this process's cgroup path, from ``/proc/self/cgroup`` (``""`` = the v2 hierarchy)."""
    paths: dict[str, str] = {}
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _read_quota_v2(directory: Path) -> float | None:
    """``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``."""
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period) if int(period) > 0 and int(quota) > 0 else None
    except ValueError:
        return None


def _read_quota_v1(directory: Path) -> float | None:
    """``cpu.cfs_quota_us`` (``-1`` = unlimited) over ``cpu.cfs_period_us``."""
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text().strip())
        period = int((directory / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup and its ancestors, v2 or v1; None if none.

    Inside a container the process's cgroup is usually mounted as the root of ``root``, so the root itself is
    read as well as the path ``/proc/self/cgroup`` names.
    """
    paths = _cgroup_paths(proc_cgroup)
    candidates: list[tuple[Path, Any]] = []
    v1 = next((root / name for name in ("cpu,cpuacct", "cpu") if (root / name).is_dir()), None)
    if v1 is not None and "cpu" in paths:
        candidates += [(d, _read_quota_v1) for d in _ancestors(v1, paths["cpu"])]
    if (root / "cgroup.controllers").is_file() or (root / "cpu.max").is_file():
        candidates += [(d, _read_quota_v2) for d in _ancestors(root, paths.get("", "/"))]
    quotas = [q for directory, read in candidates if (q := read(directory)) is not None]
    return min(quotas) if quotas else None


def _ancestors(mount: Path, cgroup: str) -> list[Path]:
    """``mount/a/b``, ``mount/a`` and ``mount`` for the cgroup path ``/a/b`` (only those that exist)."""
    parts = [p for p in cgroup.strip("/").split("/") if p and p != ".."]
    found = [mount.joinpath(*parts[:i]) for i in range(len(parts), 0, -1)] + [mount]
    return [d for d in dict.fromkeys(found) if d.is_dir()]


def cpu_allowance(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> CpuAllowance:
    """The CPUs this process may use: ``min(os.cpu_count(), |affinity mask|, ceil(cgroup quota))``."""
    machine = os.cpu_count() or 1
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = None
    quota = cgroup_cpu_quota(root, proc_cgroup)
    limits = [("machine", machine)]
    if affinity:
        limits.append(("affinity", affinity))
    if quota is not None:
        limits.append(("cgroup quota", max(1, math.ceil(quota - 1e-9))))
    limited_by, cpus = min(limits, key=lambda item: (item[1], item[0] != "machine"))
    return CpuAllowance(max(1, cpus), machine, affinity, quota, limited_by)


_LAST: dict[str, Any] | None = None


def configure_threads(requested: int | None = None) -> dict[str, Any]:
    """Size torch's intra-op thread pool and return the record of the choice.

    Precedence: ``requested`` (``--threads``), then ``OMP_NUM_THREADS`` when set (torch already read it),
    then the :func:`cpu_allowance`.

    Returns:
        ``{"threads", "source", "allowance", "machine_cpus", "affinity_cpus", "cgroup_quota_cpus",
        "limited_by", "torch_default"}`` — what :func:`threads_record` reports afterwards.
    """
    import torch

    global _LAST
    allowance = cpu_allowance()
    before = torch.get_num_threads()
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested is not None:
        threads, source = int(requested), "--threads"
    elif env.isdigit() and int(env) > 0:
        threads, source = int(env), "OMP_NUM_THREADS"
    else:
        threads, source = allowance.cpus, f"allowance ({allowance.limited_by})"
    if threads != before:
        torch.set_num_threads(threads)
    if requested is not None and threads > allowance.cpus:
        log.warning(
            "warning: --threads %d is more than the %d CPU(s) this process may use (%s): threads will wait "
            "for each other",
            threads,
            allowance.cpus,
            allowance.limited_by,
        )
    record = {"threads": threads, "source": source, "torch_default": before, **_allowance_dict(allowance)}
    _LAST = record
    return record


def _allowance_dict(allowance: CpuAllowance) -> dict[str, Any]:
    values = asdict(allowance)
    return {
        "allowance": values["cpus"],
        "machine_cpus": values["machine_cpus"],
        "affinity_cpus": values["affinity_cpus"],
        "cgroup_quota_cpus": values["quota_cpus"],
        "limited_by": values["limited_by"],
    }


def threads_record() -> dict[str, Any]:
    """The thread choice of this process for ``results.json`` (torch's own default when tli set none)."""
    import torch

    if _LAST is not None and _LAST["threads"] == torch.get_num_threads():
        return dict(_LAST)
    threads = torch.get_num_threads()
    return {
        "threads": threads,
        "source": "torch (not set by tli)",
        "torch_default": threads,
        **_allowance_dict(cpu_allowance()),
    }
