"""Benchmark: a representative `tli run` stage beside a competing CPU load, under several thread settings.

Each condition runs ``tli run`` (default: the scan and one seed, one epoch — every stage of the default run at a
fraction of its length) in a fresh process and records its wall time and CPU time (user + system of the child,
from ``resource.getrusage``), with the load average before and after. A competing load of busy-looping processes
(``--load N``) runs on the same CPUs during every condition. Conditions alternate within each repeat, so drift of
the shared machine falls on all of them alike; the script prints each run and the medians.

Conditions:

- ``quota-like``: the process may use the CPUs of ``--cpus`` (``taskset``, emulating a container) but runs as
  many torch threads as the machine has CPUs — what torch does under a cgroup CPU quota, which OpenMP does not
  read (``--threads <machine CPUs>``);
- ``sized``: the same CPUs, threads sized by tli to the allowance (the default now: affinity mask and quota);
- ``machine default``: no affinity restriction, tli's default (= every CPU of the machine here);
- ``one thread``: no restriction, ``--threads 1``;
- ``passive wait``: no restriction, default threads with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep
  instead of spinning).

Run:  python benchmarks/bench_threads.py [--repeats 2] [--load 2] [--cpus 0] [--conditions a,b,…]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

TLI = [sys.executable, "-m", "tli"]
STAGE = ["run", "--seeds", "0", "--epochs", "1", "--n-boot", "1000"]
"""The scan, one seed's training (one epoch), its evaluation (BLI, plots) and the report."""


def busy_loop(cpus: str | None) -> subprocess.Popen:
    """One process spinning on the CPU (the competing job), pinned to ``cpus`` when given."""
    command = [sys.executable, "-c", "while True: pass"]
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    return subprocess.Popen(command)


def run_condition(name: str, cpus: str | None, threads: int | None, env: dict, out: Path) -> dict:
    """One ``tli run`` in a fresh process: wall and CPU seconds of that process, the thread record."""
    command = [*TLI, *STAGE, "--out", str(out)]
    if threads is not None:
        command += ["--threads", str(threads)]
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    record = json.loads((out / "results.json").read_text())
    return {
        "condition": name,
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "threads": record["devices"].get("threads", {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--load", type=int, default=2, help="busy-looping processes beside every run")
    parser.add_argument("--cpus", default="0", help="CPUs of the emulated container (taskset list)")
    parser.add_argument(
        "--conditions",
        default="quota-like,sized,machine default,one thread,passive wait",
        help="comma-separated subset of the conditions",
    )
    parser.add_argument("--json", type=Path, help="also write every run to this JSON file")
    args = parser.parse_args(argv)

    machine = os.cpu_count() or 1
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    conditions = {
        "quota-like": (args.cpus, machine, base_env),
        "sized": (args.cpus, None, base_env),
        "machine default": (None, None, base_env),
        "one thread": (None, 1, base_env),
        "passive wait": (None, None, {**base_env, "OMP_WAIT_POLICY": "PASSIVE"}),
    }
    chosen = [c.strip() for c in args.conditions.split(",") if c.strip()]
    print(
        f"date: {datetime.now():%Y-%m-%d %H:%M}  machine CPUs: {machine}  competing load: {args.load} busy "
        f"loop(s)  stage: tli {' '.join(STAGE)}  load average at start: {os.getloadavg()}"
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="tli-bench-threads-") as tmp:
        for repeat in range(args.repeats):
            for name in chosen:
                cpus, threads, env = conditions[name]
                # The competing load runs where the measured run may run: the emulated container's CPUs, or all.
                loads = [busy_loop(cpus) for _ in range(args.load)]
                try:
                    run = run_condition(
                        name, cpus, threads, env, Path(tmp) / f"{repeat}-{name.replace(' ', '-')}"
                    )
                finally:
                    for process in loads:
                        process.kill()
                        process.wait()
                runs.append(run)
                print(
                    f"  repeat {repeat}  {name:<16} wall {run['wall_s']:7.1f} s  CPU {run['cpu_s']:7.1f} s  "
                    f"threads {run['threads'].get('threads')} ({run['threads'].get('source')})  "
                    f"load {run['load_before']:.2f} → {run['load_after']:.2f}",
                    flush=True,
                )
    print("\nmedians:")
    for name in chosen:
        mine = [r for r in runs if r["condition"] == name]
        print(
            f"  {name:<16} wall {statistics.median(r['wall_s'] for r in mine):7.1f} s  "
            f"CPU {statistics.median(r['cpu_s'] for r in mine):7.1f} s  ({len(mine)} runs)"
        )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
