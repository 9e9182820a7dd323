"""Benchmark: ``tli plan`` memory estimates against the measured peak memory of real steps on this CPU.

For random Llama models of ~25 M, ~100 M and ~400 M parameters (fp32: CPU has no bf16 autocast), each
case runs in a fresh child process, which reports its peak resident memory minus its baseline, taken after
importing torch, transformers and peft and running the same case once on a tiny model (so the ~100 MiB of
library code pages that the first forward/backward maps in are not counted as data). Measurement details:

- the peak is the process's ``VmHWM`` (/proc/self/status), not ``getrusage().ru_maxrss``: Linux carries
  ``ru_maxrss`` across ``exec``, so a child spawned by a large parent reports the parent's peak as its own;
- the child runs with ``MALLOC_MMAP_THRESHOLD_=1MiB``: glibc then returns every freed tensor of 1 MiB or
  more to the OS, so RSS follows live tensors (by default it raises the threshold after the first frees
  and keeps freed memory, and RSS grows step after step).

Cases:

- ``inference``: build the model, one no-grad forward of the decoder stack (no lm_head, as tli's scan);
- ``lora``: LoRA (r 16 on q_proj, v_proj of every block), one AdamW step of a language-modelling loss (its
  optimiser state is a few MiB: the first step reaches the peak);
- ``full``: every weight trained, two AdamW steps (the second step's forward runs with optimiser state).

Not benchmarked here: the ``tli`` strategy. On CPU, ``from_pretrained`` memory-maps safetensors and
weights that are never read (lm_head, block L) never become resident, so RSS does not measure what a GPU
copy of the same weights costs.

The estimate is ``tli.plan`` configured for what ran: ``dtype="float32"``, ``device="cpu"`` (no CUDA
context, per-tensor AdamW), no gradient checkpointing, the same batch and sequence length. The script
prints estimate, measurement and relative error ``(estimate − measured) / measured`` per case.

Run:  python benchmarks/bench_plan.py [--sizes 25m,100m,400m] [--modes inference,lora,full]
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

SIZES = {
    # name: (hidden, intermediate, layers, heads, kv heads, vocab)
    "tiny": (64, 128, 2, 2, 1, 256),  # warm-up only
    "25m": (512, 1376, 6, 8, 4, 8000),
    "100m": (768, 2048, 12, 12, 4, 16000),
    "400m": (1024, 2816, 28, 16, 8, 32000),
}
TRAIN_BATCH, TRAIN_SEQ = 4, 192
SCAN_BATCH, SCAN_SEQ = 8, 256
MIB = 2**20


def llama_config(size: str):
    from transformers import LlamaConfig

    hidden, inter, layers, heads, kv, vocab = SIZES[size]
    return LlamaConfig(
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        vocab_size=vocab,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )


def memory_status(key: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process's address space, in bytes (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status (this benchmark needs Linux)")


def run_step(config, mode: str, batch: int, seq: int) -> None:
    """Build a random fp32 model from ``config`` and run the case on ``batch × seq`` random tokens."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(config)
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    if mode == "inference":
        model.eval()
        with torch.inference_mode():
            model.model(input_ids=ids, use_cache=False)
        return
    if mode == "lora":
        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])
        model = get_peft_model(model, lora)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    for _ in range(2 if mode == "full" else 1):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def child(size: str, mode: str) -> dict:
    """Run one case in this (fresh) process; returns baseline and peak resident memory in bytes.

    The same case first runs on a tiny model, so that the library code it touches (~100 MiB of
    libtorch pages mapped in on first use, not data) is resident before the baseline is taken.
    """
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    run_step(llama_config("tiny"), mode, 2, 16)
    baseline = memory_status("VmRSS")
    start = time.perf_counter()
    batch, seq = (SCAN_BATCH, SCAN_SEQ) if mode == "inference" else (TRAIN_BATCH, TRAIN_SEQ)
    run_step(llama_config(size), mode, batch, seq)
    return {"baseline": baseline, "peak": memory_status("VmHWM"), "seconds": time.perf_counter() - start}


def estimate(size: str, mode: str) -> tuple[float, int]:
    """Peak bytes the planner predicts for the case on one device, and the parameter count."""
    from tli.architecture import GIB
    from tli.plan import plan

    with tempfile.TemporaryDirectory() as tmp:
        llama_config(size).save_pretrained(tmp)
        result = plan(
            tmp,
            dtype="float32",
            device="cpu",
            gradient_checkpointing=False,
            batch_size=TRAIN_BATCH,
            word_tokens=SCAN_SEQ,
            seq_len=TRAIN_SEQ,
            scan_batch_size=SCAN_BATCH,
            lora_r=16,
            lora_targets=("q_proj", "v_proj"),
        )
    return result.strategies[mode].memory_gb_one_device * GIB, result.parameters


def run_case(size: str, mode: str) -> dict:
    # A fixed mmap threshold makes glibc return freed large blocks to the OS, so RSS follows live tensors
    # (by default glibc raises the threshold after the first frees and keeps freed memory in its heap).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", size, mode],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    predicted, params = estimate(size, mode)
    peak = measured["peak"] - measured["baseline"]
    return {
        "size": size,
        "parameters": params,
        "mode": mode,
        "estimate_mib": predicted / MIB,
        "measured_mib": peak / MIB,
        "rel_error": (predicted - peak) / peak,
        "seconds": measured["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25m,100m,400m")
    parser.add_argument("--modes", default="inference,lora,full")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    import torch

    print(
        f"date: {date.today()}  torch {torch.__version__}  threads {os.cpu_count()}  fp32 on CPU  "
        f"train batch {TRAIN_BATCH}×{TRAIN_SEQ}  forward batch {SCAN_BATCH}×{SCAN_SEQ}"
    )
    print("| model | params | case | estimate (MiB) | measured peak RSS (MiB) | error | run s |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    errors = []
    for size in args.sizes.split(","):
        for mode in args.modes.split(","):
            row = run_case(size, mode)
            errors.append(abs(row["rel_error"]))
            print(
                f"| llama-{row['size']} | {row['parameters'] / 1e6:.1f} M | {row['mode']} | "
                f"{row['estimate_mib']:.0f} | {row['measured_mib']:.0f} | {row['rel_error']:+.1%} | "
                f"{row['seconds']:.1f} |",
                flush=True,
            )
    print(f"mean |error| {sum(errors) / len(errors):.1%}, max |error| {max(errors):.1%}")


if __name__ == "__main__":
    main()
