"""Benchmark: tli's retrieval encoding and search vs a naive loop, in one process.

Encoding (the default model, SmolLM2-135M): the naive loop embeds one passage at a time with a full forward of
the causal LM (``output_hidden_states=True``, logits computed) and mean-pools ``hidden_states[layer]``; tli
encodes chunks of passages in length-sorted batches, one forward of the decoder stack per batch returning the
layers it keeps (no ``lm_head``). Both use the same recipe (mean pooling, no start token added), so their
vectors must agree; the script checks it.

Search (exact top-k by inner product): the naive algorithm builds the full ``(queries, passages)`` score
matrix and sorts every row; tli keeps a running top-k over corpus chunks and query blocks
(:func:`tli.retrieval.search.exact_top_k`), whose working memory is bounded by the chunk size. Search runs
on random unit vectors of the default model's width, so a 100k-passage corpus needs no hours of encoding;
the two rankings must be identical.

Run:  python benchmarks/bench_retrieval.py [--passages 256] [--search-docs 100000] [--search-queries 1000]

Speed is measured in one process. Peak memory is measured for each algorithm in a fresh child process
(working memory above the level after loading the model or the vectors), because an allocator that already
holds freed memory from the first run would hide the second run's peak.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date

import numpy as np
import torch
from _memory import WorkingMemory  # noqa: E402 (benchmarks/ is on sys.path when a script runs)

from tli.models import load_model
from tli.retrieval.encode import DenseRecipe, LLMEncoder
from tli.retrieval.search import exact_top_k, in_chunks, naive_top_k
from tli.tasks import get_task


def sample_passages(n: int) -> list[str]:
    """``n`` passages from tli's samples (Swahili and English), cycled with a counter to keep them distinct."""
    texts = []
    for task, language, split in (("mrtydi", "sw", "test"), ("tydi", "en", "train"), ("xquad", "en", "test")):
        data = get_task(task).load(None, language, split=split)
        texts += [data.corpus.document(i) for i in data.corpus.scorable()]
    return [f"{texts[i % len(texts)]} ({i})" for i in range(n)]


def naive_encode(model, tokenizer, texts: list[str], layer: int) -> np.ndarray:
    """One passage at a time: a full forward with every hidden state and the logits, mean-pooled."""
    rows = []
    with torch.no_grad():
        for text in texts:
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            out = model(**inputs, output_hidden_states=True)
            rows.append(torch.nn.functional.normalize(out.hidden_states[layer][0].mean(0), dim=0).numpy())
    return np.stack(rows)


def search_vectors(n_docs: int, n_queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    docs = rng.standard_normal((n_docs, dim), dtype=np.float32)
    queries = rng.standard_normal((n_queries, dim), dtype=np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return queries, docs


def child(args: argparse.Namespace, which: str) -> tuple[float, float]:
    """(seconds, working memory MB) of one algorithm in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-only", which, "--passages", str(args.passages),
           "--search-docs", str(args.search_docs), "--search-queries", str(args.search_queries),
           "--k", str(args.k), "--chunk-size", str(args.chunk_size)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    seconds, working = out.strip().splitlines()[-1].split()
    return float(seconds), float(working)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=256, help="passages encoded by each algorithm")
    parser.add_argument(
        "--search-docs", type=int, default=100_000, help="corpus size of the search benchmark"
    )
    parser.add_argument("--search-queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=8192, help="passages per corpus chunk (tli search)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--memory-only", choices=["encode-tli", "encode-naive", "search-tli", "search-naive"],
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    if args.memory_only and args.memory_only.startswith("search"):
        queries, docs = search_vectors(args.search_docs, args.search_queries, 576)
        with WorkingMemory() as working:
            start = time.perf_counter()
            if args.memory_only == "search-tli":
                exact_top_k(queries, in_chunks(docs, args.chunk_size), args.k)
            else:
                naive_top_k(queries, docs, args.k)
            seconds = time.perf_counter() - start
        return print(seconds, working.mb)

    loaded = load_model()
    layer = loaded.num_layers // 2
    passages = sample_passages(args.passages)
    recipe = DenseRecipe(layers=(layer,), pooling="mean", add_bos="never", max_passage_tokens=10_000,
                         batch_size=args.batch_size)  # fmt: skip
    encoder = LLMEncoder(loaded.model, loaded.tokenizer, recipe, "benchmark")
    run_tli = lambda texts: encoder.encode(texts, "passage")[0]  # noqa: E731
    run_naive = lambda texts: naive_encode(loaded.model, loaded.tokenizer, texts, layer)  # noqa: E731
    if args.memory_only:
        run_naive(passages[:1])  # page the memory-mapped weights in first
        with WorkingMemory() as working:
            start = time.perf_counter()
            (run_tli if args.memory_only == "encode-tli" else run_naive)(passages)
            seconds = time.perf_counter() - start
        return print(seconds, working.mb)

    run_tli(passages[:4])
    run_naive(passages[:2])  # warm-up: neither path pays first-call costs below
    start = time.perf_counter()
    ours = run_tli(passages)
    tli_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = run_naive(passages)
    naive_seconds = time.perf_counter() - start
    worst = float(np.abs(ours - theirs).max())
    encode_memory = {w: child(args, f"encode-{w}")[1] for w in ("tli", "naive")}

    queries, docs = search_vectors(args.search_docs, args.search_queries, 576)
    start = time.perf_counter()
    fast = exact_top_k(queries, in_chunks(docs, args.chunk_size), args.k)
    search_tli = time.perf_counter() - start
    start = time.perf_counter()
    slow = naive_top_k(queries, docs, args.k)
    search_naive = time.perf_counter() - start
    same = bool(np.array_equal(fast.indices, slow.indices))
    search_memory = {w: child(args, f"search-{w}")[1] for w in ("tli", "naive")}
    del docs

    tokens = sum(len(ids) for ids in loaded.tokenizer(passages, add_special_tokens=False)["input_ids"])
    print(f"date: {date.today()}  model: {loaded.name} ({loaded.num_layers} blocks, layer {layer})  "
          f"torch threads: {torch.get_num_threads()}")  # fmt: skip
    print(f"encoding {len(passages)} passages ({tokens} tokens):")
    print(f"  naive (one passage at a time, full model): {len(passages) / naive_seconds:8.1f} passages/s  "
          f"working memory {encode_memory['naive']:7.1f} MB")  # fmt: skip
    print(f"  tli   (batched, length-sorted, no lm_head): {len(passages) / tli_seconds:8.1f} passages/s  "
          f"working memory {encode_memory['tli']:7.1f} MB")  # fmt: skip
    print(f"  speed-up {naive_seconds / tli_seconds:.1f}x   max |vector difference| {worst:.1e}")
    print(f"exact top-{args.k} of {args.search_queries} queries over {args.search_docs} passages (dim 576):")
    print(f"  naive (full score matrix, full sort): {args.search_queries / search_naive:9.1f} queries/s  "
          f"working memory {search_memory['naive']:7.1f} MB")  # fmt: skip
    print(f"  tli   (chunks of {args.chunk_size}, running top-k): {args.search_queries / search_tli:9.1f} queries/s  "
          f"working memory {search_memory['tli']:7.1f} MB")  # fmt: skip
    print(f"  speed-up {search_naive / search_tli:.1f}x   identical rankings: {same}")


if __name__ == "__main__":
    main()
