"""Benchmark: tli's batched greedy generation vs one prompt at a time, in one process (issue 17, item 3).

Both generate XL-Sum summaries with the default model (SmolLM2-135M-Instruct) from the prompts ``tli compare``
renders (:meth:`tli.tasks.xlsum.XLSumTask.prompt`: the article cut to ``max_input_tokens``, in the chat
template), greedy, up to ``--max-new-tokens`` new tokens, stopping at EOS.

Naive: one ``model.generate`` per prompt, no padding. tli: :func:`tli.tasks.generation.generate_texts`, prompts
sorted by length and left padded in batches of ``--batch-size``. Greedy decoding is deterministic, so the two
must produce the same text; left padding changes the float32 sums inside attention by rounding only, so a
near-tie between two tokens can in principle flip: the script counts identical outputs and prints any that
differ, and the BENCHMARKS.md row records the count.

Run:  python benchmarks/bench_generation.py [--prompts 64] [--batch-size 8] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date

import torch

from tli.models import load_model
from tli.tasks import SAMPLES_DIR, get_task
from tli.tasks.generation import generate_texts


def xlsum_prompts(tokenizer, n: int, max_input_tokens: int) -> tuple[list[str], bool]:
    """Up to ``n`` rendered prompts from every shipped XL-Sum sample file (Swahili and English, all splits)."""
    task = get_task("xlsum")
    config = task.config_class(max_input_tokens=max_input_tokens)
    prompts, chat = [], False
    for language, splits in (("sw", ("test", "train", "validation")), ("en", ("test", "train"))):
        for split in splits:
            for example in task.load(SAMPLES_DIR / "xlsum", language, split=split):
                prompt, chat = task.prompt(tokenizer, example, config)
                prompts.append(prompt)
    return prompts[:n], chat


def one_at_a_time(
    model, tokenizer, prompts: list[str], max_new_tokens: int, add_special_tokens: bool
) -> list[str]:
    """The naive loop: one unpadded ``generate`` call per prompt."""
    outputs = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=add_special_tokens)["input_ids"]
            new = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )[0, ids.shape[1] :]
            outputs.append(tokenizer.decode(new, skip_special_tokens=True))
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-input-tokens", type=int, default=512)
    args = parser.parse_args()

    loaded = load_model(None, purpose="embed")
    model, tokenizer = loaded.model, loaded.tokenizer
    prompts, chat = xlsum_prompts(tokenizer, args.prompts, args.max_input_tokens)
    lengths = [len(tokenizer(p, add_special_tokens=not chat)["input_ids"]) for p in prompts]
    print(f"{len(prompts)} prompts, {sum(lengths) / len(lengths):.0f} tokens on average "
          f"(min {min(lengths)}, max {max(lengths)}); chat template: {chat}")  # fmt: skip

    start = time.perf_counter()
    batched = generate_texts(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size, add_special_tokens=not chat, progress=False)  # fmt: skip
    batched_s = time.perf_counter() - start

    start = time.perf_counter()
    naive = one_at_a_time(model, tokenizer, prompts, args.max_new_tokens, not chat)
    naive_s = time.perf_counter() - start

    same = sum(a == b for a, b in zip(batched, naive, strict=True))
    for i, (a, b) in enumerate(zip(batched, naive, strict=True)):
        if a != b:
            print(f"differs at prompt {i}:\n  batched: {a!r}\n  naive:   {b!r}")
    print(
        f"\n{date.today()} · {os.cpu_count()} CPUs · torch {torch.__version__} · {torch.get_num_threads()} threads"
    )
    print(f"naive (one prompt at a time): {naive_s:.1f} s = {len(prompts) / naive_s:.2f} prompts/s")
    rate = len(prompts) / batched_s
    print(f"tli (batches of {args.batch_size}, left padded): {batched_s:.1f} s = {rate:.2f} prompts/s")
    print(f"speed-up: {naive_s / batched_s:.2f}x · identical outputs: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
