"""Benchmark: TLI training with layer-truncated loading against training on the fully loaded model.

A random 48-block Llama-architecture model (hidden 512, intermediate 2048: 0.78 GiB in float32) saved as
several safetensors shards. Both runs train the same TLI adapter at layer 2 (blocks 0-1, the published
setting) on the same pairs for one epoch:

- whole: ``load_model(model)`` then :func:`tli.train.run_training` — every block and ``lm_head`` loaded
  (and, as on a GPU or in a scan, brought into memory: the benchmark runs one forward through every block);
- truncated: ``tli.train.train`` — only the embeddings and blocks 0-1 are read.

Each run is a fresh process; peak memory is the resident high-water mark (``VmHWM``) above a baseline taken
after every library is imported. The script checks that both give the same adapter.

Run:  python benchmarks/bench_truncated.py [--layers 48] [--hidden 512] [--target-layer 2] [--pairs 200]
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
    import matplotlib.pyplot, peft, torch, transformers  # imported before the baseline
    train_module = importlib.import_module("tli.train")
    import tli.report
    try:
        import torch.utils.tensorboard
    except ImportError:
        pass

    def kib(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])

    mode, model, lexicon, out, layer = sys.argv[1:6]
    options = dict(target_layer=int(layer), epochs=1, batch_size=8, lora_dropout=0.0, validation_fraction=0)
    Path("/proc/self/clear_refs").write_text("5")
    baseline, start = kib("VmRSS"), time.perf_counter()
    if mode == "whole":
        from tli.config import TrainConfig
        from tli.embed import embed_all_layers
        from tli.lexicon import split_for_study
        from tli.models import load_model
        loaded = load_model(model, purpose="train")
        embed_all_layers(["mbwa"], loaded.model, loaded.tokenizer, progress=False)  # every block in memory
        config = TrainConfig(model=model, lexicon=lexicon, **options)
        Path(out).mkdir(parents=True)
        trained = split_for_study(lexicon).trained
        result = train_module.run_training(loaded, trained, config, Path(out), progress=False)
    else:
        result = train_module.train(model, lexicon, out=out, progress=False, **options)
    print(json.dumps({
        "seconds": time.perf_counter() - start,
        "load_seconds": result.timing["load_seconds"],
        "train_seconds": result.timing["train_seconds"],
        "peak_mib": (kib("VmHWM") - baseline) / 1024,
    }))
    """
)


def build_model(directory: Path, words: list[str], layers: int, hidden: int) -> float:
    """The random model of ``bench_stream.py`` (BPE tokenizer of the lexicon's words, 200 MB shards); GiB."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_stream import build_model as build

    return build(directory, words, layers, hidden)


def run(mode: str, model: Path, lexicon: Path, out: Path, layer: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    command = [sys.executable, "-c", WORKER, mode, str(model), str(lexicon), str(out), str(layer)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=48)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--target-layer", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=200, help="pairs of the shipped lexicon to train on")
    args = parser.parse_args()

    from safetensors.torch import load_file

    from tli.lexicon import default_lexicon

    pairs = list(default_lexicon())[: args.pairs]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lexicon = root / "pairs.json"
        lexicon.write_text(json.dumps([{"source": p.source, "target": p.target} for p in pairs]))
        size = build_model(
            root / "model", [w for p in pairs for w in (p.source, p.target)], args.layers, args.hidden
        )
        whole = run("whole", root / "model", lexicon, root / "whole", args.target_layer)
        truncated = run("truncated", root / "model", lexicon, root / "truncated", args.target_layer)
        a = load_file(str(root / "whole" / "adapter" / "adapter_model.safetensors"))
        b = load_file(str(root / "truncated" / "adapter" / "adapter_model.safetensors"))
        diff = max(float((a[k] - b[k]).abs().max()) for k in a) if a.keys() == b.keys() else float("inf")
    read = args.target_layer / args.layers
    print(
        f"model: random Llama, {args.layers} blocks, hidden {args.hidden}, {size:.2f} GiB fp32; TLI at layer "
        f"{args.target_layer}, {len(pairs)} pairs, 1 epoch; largest adapter difference: {diff:.1e}; "
        f"block weights read: {read:.1%}"
    )
    print("| date | model | whole model: peak / load / train | truncated: peak / load / train | peak ratio |")
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| {date.today()} | {args.layers} blocks × hidden {args.hidden} ({size:.2f} GiB), layer "
        f"{args.target_layer} | {whole['peak_mib']:.0f} MiB / {whole['load_seconds']:.1f} s / "
        f"{whole['train_seconds']:.1f} s | {truncated['peak_mib']:.0f} MiB / {truncated['load_seconds']:.1f} "
        "s / "
        f"{truncated['train_seconds']:.1f} s | **{truncated['peak_mib'] / whole['peak_mib']:.1%}** |"
    )


if __name__ == "__main__":
    main()
