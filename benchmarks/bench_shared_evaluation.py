"""Benchmark: data-parallel evaluation under a launcher vs one process (issue 17, item 1).

``tli compare`` under ``torchrun`` / ``accelerate launch`` splits each cell's examples over the processes
(:func:`tli.distributed.score_in_shares`). This measures what that buys on XL-Sum generation with the default model
(SmolLM2-135M-Instruct): the same prompts as ``bench_generation.py``, greedy, batched by
:func:`tli.tasks.generation.generate_texts`.

Naive (in this process): one process generates every prompt. Shared: ``torchrun`` starts this script again as
``--processes`` ``gloo`` workers inside :func:`tli.distributed.shared_evaluation`, each generating its share; the main
worker times the call (after a barrier, model loading excluded) and writes the outputs. Every process uses one
thread, so the ratio is the split of the work over as many cores as processes. Outputs must be identical.

Run:  python benchmarks/bench_shared_evaluation.py [--prompts 32] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generation import xlsum_prompts  # noqa: E402

from tli.distributed import DistributedContext, shared_evaluation  # noqa: E402
from tli.models import load_model  # noqa: E402
from tli.tasks.generation import generate_texts  # noqa: E402


def generate(args, context: DistributedContext) -> tuple[list[str], float]:
    """Load the default model and time ``generate_texts`` over the prompts (every process together)."""
    loaded = load_model(None, purpose="embed")
    prompts, chat = xlsum_prompts(loaded.tokenizer, args.prompts, args.max_input_tokens)
    context.barrier()
    start = time.perf_counter()
    with shared_evaluation(context):
        texts = generate_texts(
            loaded.model,
            loaded.tokenizer,
            prompts,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            add_special_tokens=not chat,
            progress=False,
        )
    context.barrier()
    return texts, time.perf_counter() - start


def worker(args) -> None:
    """One of the launched processes: generate its share, the main one writes the outputs and the time."""
    torch.distributed.init_process_group("gloo")
    context = DistributedContext(
        rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]), kind="ddp"
    )
    texts, seconds = generate(args, context)
    if context.is_main:
        Path(args.worker).write_text(json.dumps({"texts": texts, "seconds": seconds}))
    torch.distributed.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-input-tokens", type=int, default=512)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # set when torchrun starts this script again
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.worker:
        worker(args)
        return

    naive, naive_seconds = generate(args, DistributedContext())
    print(
        f"one process: {len(naive)} prompts in {naive_seconds:.1f} s ({len(naive) / naive_seconds:.2f} prompts/s)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "shared.json"
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command = [*launcher, f"--nproc_per_node={args.processes}", __file__, "--worker", str(record)]
        command += ["--prompts", str(args.prompts), "--batch-size", str(args.batch_size)]
        command += [
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--max-input-tokens",
            str(args.max_input_tokens),
        ]
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        shared = json.loads(record.read_text())
    seconds = shared["seconds"]
    same = sum(a == b for a, b in zip(naive, shared["texts"], strict=True))
    print(
        f"{args.processes} processes: {len(naive)} prompts in {seconds:.1f} s ({len(naive) / seconds:.2f} prompts/s)"
    )
    print(f"speed-up: {naive_seconds / seconds:.2f}x; identical outputs: {same} / {len(naive)}")
    load = os.getloadavg()
    print(
        f"| {date.today()} | {os.cpu_count()} cores, load average {load[0]:.1f} | {len(naive)} | {args.processes} | "
        f"{len(naive) / naive_seconds:.2f} / {len(naive) / seconds:.2f} | {naive_seconds / seconds:.2f}× | "
        f"{same} / {len(naive)} |"
    )


if __name__ == "__main__":
    main()
