"""Benchmark: tli's batched all-layer scan vs the naive scan of the published scripts, in one process.

Naive (published scripts): for every layer, for every word, a batch-1 forward of the full causal LM with
``output_hidden_states=True`` (logits computed), then mean-pool ``hidden_states[layer]``.
tli: one length-sorted batched forward of the decoder stack per chunk of words returns every layer;
``lm_head`` is never run.

Both run the same model on the same pairs with the same pooling (``mean``, no BOS added, as the naive
scripts tokenize), so their per-layer matched mean cosines must agree; the script checks it.

Run:  python benchmarks/bench_scan.py [--pairs 200] [--naive-layers all|K]
With ``--naive-layers K`` the naive scan runs only K layers and its time is scaled to all layers
(each layer costs the naive algorithm the same: one full forward per word); the output says so.

Speed is measured in one process. Peak memory is the whole process's peak resident set (model included),
measured for each algorithm in a fresh child process, because an allocator that already holds freed
memory from the first run would hide the second run's peak.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from datetime import date

import torch
from _memory import WorkingMemory  # noqa: E402 (benchmarks/ is on sys.path when a script runs)

from tli.embed import EmbedConfig
from tli.lexicon import default_lexicon
from tli.models import load_model
from tli.scan import embed_lexicon, lexicon_index


def naive_scan(model, tokenizer, sources, targets, layers):
    """The published algorithm: one batch-1 full forward per word per layer; returns matched means."""
    means = {}
    with torch.no_grad():
        for layer in layers:
            sims = []
            for src, tgt in zip(sources, targets, strict=True):
                vecs = []
                for word in (src, tgt):
                    inputs = tokenizer(word, return_tensors="pt")
                    out = model(**inputs, output_hidden_states=True)  # logits computed too
                    vecs.append(torch.nn.functional.normalize(out.hidden_states[layer][0].mean(0), dim=0))
                sims.append(float(vecs[0] @ vecs[1]))
            means[layer] = sum(sims) / len(sims)
    return means


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_peak_mb(args: argparse.Namespace, which: str) -> tuple[float, float]:
    """(peak RSS, peak working memory above the loaded model) of a fresh process running one algorithm."""
    cmd = [sys.executable, __file__, "--pairs", str(args.pairs), "--batch-size", str(args.batch_size)]
    cmd += ["--memory-only", which, "--naive-layers", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    peak, working = out.strip().splitlines()[-1].split()
    return float(peak), float(working)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--naive-layers", default="all", help="'all' or a number of layers to time")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--memory-only", choices=["tli", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    torch.set_num_threads(os.cpu_count() or 1)
    loaded = load_model()
    lexicon = default_lexicon()
    lexicon.pairs = lexicon.pairs[: args.pairs]
    n_layers = loaded.num_layers + 1
    all_layers = list(range(n_layers))
    naive_layers = (
        all_layers
        if args.naive_layers == "all"
        else all_layers[:: max(1, n_layers // int(args.naive_layers))][: int(args.naive_layers)]
    )

    config = EmbedConfig(pooling="mean", add_bos="never", batch_size=args.batch_size)
    run_tli = lambda: embed_lexicon(lexicon, loaded, config, progress=False)  # noqa: E731
    run_naive = lambda words_src, words_tgt, layers: naive_scan(  # noqa: E731
        loaded.model, loaded.tokenizer, words_src, words_tgt, layers
    )
    if args.memory_only:
        # One tiny forward first: safetensors weights are memory-mapped and paged in on first use.
        run_naive(lexicon.sources[:1], lexicon.targets[:1], [0])
        with WorkingMemory() as working:
            if args.memory_only == "tli":
                run_tli()
            else:
                run_naive(lexicon.sources, lexicon.targets, [0])
        return print(peak_rss_mb(), working.mb)

    # Warm-up both paths once so neither pays first-call costs.
    run_tli()
    run_naive(lexicon.sources[:2], lexicon.targets[:2], [0])

    start = time.perf_counter()
    src, tgt, index = run_tli()
    matched = (src[:, index.src] * tgt[:, index.tgt]).sum(-1).mean(-1)  # (layers,)
    tli_seconds = time.perf_counter() - start

    start = time.perf_counter()
    naive = run_naive(lexicon.sources, lexicon.targets, naive_layers)
    naive_measured = time.perf_counter() - start
    naive_seconds = naive_measured * n_layers / len(naive_layers)
    mem_tli, mem_naive = child_peak_mb(args, "tli"), child_peak_mb(args, "naive")

    worst = max(abs(naive[layer] - float(matched[layer])) for layer in naive_layers)
    n_words = len(set(lexicon_index(lexicon)[0])) + len(set(lexicon_index(lexicon)[1]))
    scaled = (
        ""
        if len(naive_layers) == n_layers
        else f" (measured {naive_measured:.1f} s on {len(naive_layers)} layers, scaled)"
    )
    print(
        f"date: {date.today()}  model: {loaded.name} ({loaded.num_layers} blocks)  pairs: {len(lexicon)}  "
        f"distinct words: {n_words}  torch threads: {torch.get_num_threads()}"
    )
    print(
        f"naive scan ({n_layers} layers): {naive_seconds:8.1f} s  "
        f"peak RSS {mem_naive[0]:7.1f} MB, working {mem_naive[1]:6.1f} MB{scaled}"
    )
    print(
        f"tli scan   ({n_layers} layers): {tli_seconds:8.1f} s  "
        f"peak RSS {mem_tli[0]:7.1f} MB, working {mem_tli[1]:6.1f} MB"
    )
    print(f"speed-up: {naive_seconds / tli_seconds:.0f}x   max |matched mean difference|: {worst:.2e}")


if __name__ == "__main__":
    main()
