"""Benchmark: one TLI training step as tli runs it vs the naive step of the published scripts.

Naive (published): LoRA on q_proj/v_proj of *every* block, a full-depth forward with
``output_hidden_states=True`` (logits computed), pool ``hidden_states[L]``, loss, backward, AdamW step.
tli: LoRA only on blocks 0..L-1, the forward stops after block L-1 (no later blocks, no lm_head), same
pooling, loss, backward and step.

Both use the same model, the same batch of 8 pairs (16 sequences) and the same loss, in one process; the
script prints seconds per step and the ratio for each target layer.

Run:  python benchmarks/bench_train.py [--layers 1,2,3] [--steps 20]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from datetime import date

import torch

from tli.embed import EmbedConfig, encode_words, pad_batch, pool_tokens, pooled_at_layer
from tli.lexicon import default_lexicon
from tli.losses import TripletLoss, valid_negative_mask
from tli.models import load_model
from tli.train import TrainConfig, add_lora


def make_step(model, layer: int, naive: bool, batch, pad_id: int):
    """A closure running one optimiser step; returns the loss."""
    sources, targets, items = batch
    ids, attention, weights = pad_batch(items, pad_id, torch.device("cpu"))
    mask = valid_negative_mask(sources, targets)
    loss_fn = TripletLoss(0.4)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    n = len(sources)

    def step() -> float:
        if naive:
            out = model(input_ids=ids, attention_mask=attention, output_hidden_states=True)
            pooled = pool_tokens(out.hidden_states[layer], weights)
        else:
            pooled = pooled_at_layer(model, ids, attention, weights, layer)
        loss = loss_fn(pooled[:n], pooled[n:], mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def seconds_per_step(step, steps: int) -> float:
    for _ in range(3):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="1,2,3")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    loaded = load_model()
    lexicon = default_lexicon()
    pairs = lexicon.pairs[:8]
    sources, targets = [p.source for p in pairs], [p.target for p in pairs]
    items = encode_words(sources + targets, loaded.tokenizer, EmbedConfig(pooling="mean-no-special"))
    batch = (sources, targets, items)
    n_blocks = loaded.num_layers
    print(
        f"date: {date.today()}  model: {loaded.name} ({n_blocks} blocks)  batch: 8 pairs  "
        f"steps timed: {args.steps}  torch threads: {torch.get_num_threads()}"
    )
    for layer in (int(x) for x in args.layers.split(",")):
        torch.manual_seed(0)
        naive_model = add_lora(
            copy.deepcopy(loaded.model),
            TrainConfig(target_layer=layer, lora_layers=list(range(n_blocks))),
            n_blocks,
        )
        naive_model.train()
        naive = seconds_per_step(
            make_step(naive_model, layer, True, batch, loaded.tokenizer.pad_token_id), args.steps
        )
        del naive_model
        torch.manual_seed(0)
        tli_model = add_lora(copy.deepcopy(loaded.model), TrainConfig(target_layer=layer), n_blocks)
        tli_model.train()
        fast = seconds_per_step(
            make_step(tli_model, layer, False, batch, loaded.tokenizer.pad_token_id), args.steps
        )
        del tli_model
        print(
            f"target layer {layer}: naive {naive * 1000:7.1f} ms/step   tli {fast * 1000:6.1f} ms/step   "
            f"speed-up {naive / fast:5.1f}x"
        )


if __name__ == "__main__":
    main()
