"""Benchmark: the streaming scan (``tli scan --stream``) against the in-memory scan, on a random ~1 GB model.

Both scan the same pairs of the shipped lexicon with the same pooling on a random Llama-architecture model
saved as float32 safetensors shards (16 blocks, hidden 1024, intermediate 4096: 1.0 GB) with a BPE tokenizer
trained on the lexicon's words. Each scan runs in a fresh process; its peak memory is the kernel's resident
high-water mark (``VmHWM``) above a baseline taken after every library is imported, so it counts what the
scan itself holds: the whole model for the in-memory scan (transformers maps the weights lazily, and the
forward reads every block), one block plus the words' hidden states for the streaming scan. The script checks
that both give the same per-layer figures.

Run:  python benchmarks/bench_stream.py [--pairs 300] [--layers 16] [--hidden 1024] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from datetime import date
from pathlib import Path

WORKER = textwrap.dedent(
    """
    import importlib, json, sys, time
    from pathlib import Path
    import torch, transformers, peft, accelerate, safetensors  # imported before the baseline
    scan = importlib.import_module("tli.scan").scan
    import tli.stream, tli.metrics

    def kib(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])

    mode, model, lexicon = sys.argv[1:4]
    Path("/proc/self/clear_refs").write_text("5")
    baseline, start = kib("VmRSS"), time.perf_counter()
    result = scan(model, lexicon, pooling="mean-no-special", stream=mode == "stream", progress=False)
    print(json.dumps({
        "seconds": time.perf_counter() - start,
        "load_seconds": result.timing["load_seconds"],
        "peak_mib": (kib("VmHWM") - baseline) / 1024,
        "layers": result.layers,
    }))
    """
)


def build_model(directory: Path, words: list[str], layers: int, hidden: int) -> float:
    """A random Llama of real-model shapes with a BPE tokenizer of the lexicon's words; returns its size
    (GiB)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(words * 2, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    ).save_pretrained(directory)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=max(1, hidden // 256),
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory, max_shard_size="200MB")
    return sum(p.numel() for p in model.parameters()) * 4 / 2**30


def run(mode: str, model: Path, lexicon: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    result = subprocess.run(
        [sys.executable, "-c", WORKER, mode, str(model), str(lexicon)],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=300, help="pairs of the shipped lexicon to scan")
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--model", default=None, help="scan this model directory instead of a random one")
    args = parser.parse_args()

    from tli.lexicon import default_lexicon

    pairs = list(default_lexicon())[: args.pairs]
    with tempfile.TemporaryDirectory() as tmp:
        lexicon = Path(tmp) / "pairs.json"
        lexicon.write_text(json.dumps([{"source": p.source, "target": p.target} for p in pairs]))
        model = Path(args.model) if args.model else Path(tmp) / "model"
        size = None
        if args.model is None:
            words = [w for p in pairs for w in (p.source, p.target)]
            size = build_model(model, words, args.layers, args.hidden)
        memory, streamed = run("memory", model, lexicon), run("stream", model, lexicon)
    keys = ("matched_mean", "mismatched_mean", "gap", "centered_gap", "p_at_1", "mrr", "csls_p_at_1")
    diff = max(
        abs(a[k] - b[k]) for a, b in zip(memory["layers"], streamed["layers"], strict=True) for k in keys
    )
    described = (
        f"random Llama, {args.layers} blocks, hidden {args.hidden}, {size:.2f} GiB fp32" if size else model
    )
    print(f"model: {described}; {len(pairs)} pairs; largest difference of any per-layer figure: {diff:.2e}")
    print("| date | model | in-memory scan | streaming scan | peak memory in-memory / streaming | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| {date.today()} | {described} | {memory['seconds']:.1f} s | {streamed['seconds']:.1f} s "
        f"(×{streamed['seconds'] / memory['seconds']:.2f}) | {memory['peak_mib']:.0f} MiB / "
        f"{streamed['peak_mib']:.0f} MiB | "
        f"**{memory['peak_mib'] / max(streamed['peak_mib'], 1e-9):.1f}×** less |"
    )


if __name__ == "__main__":
    main()
