"""The held-out validation of a training run: a leak-free split of the trained pairs, scored every epoch.

:func:`validate` gives the validation loss (the training loss on fixed batches, dropout off) and the mean
reciprocal rank ``MRR = (1/N) Σ_i 1/rank_i``, ``rank_i`` the rank of source ``i``'s translation among all
validation targets by cosine similarity at the target layer.
"""

from __future__ import annotations

import numpy as np
import torch

from tli.config import TrainConfig
from tli.errors import LexiconError
from tli.lexicon import Lexicon, Pair
from tli.losses import valid_negative_mask
from tli.metrics import PairIndex, mean_reciprocal_rank, retrieval_ranks
from tli.train.batches import PairBatcher, chunk


def validation_split(
    trained: Lexicon, fraction: float, seed: int
) -> tuple[Lexicon, Lexicon | None, str | None]:
    """Hold out a leak-free share of the trained pairs for validation (the split's rules: no shared word).

    Returns:
        ``(train, validation or None, warning or None)``: no validation when ``fraction`` is 0 or the pairs
        cannot be split (every pair linked to every other).
    """
    if fraction <= 0:
        return trained, None, None
    try:
        grouped, _ = Lexicon(
            [Pair(p.source, p.target) for p in trained],
            trained.source_lang,
            trained.target_lang,
            trained.path,
        ).split_with_report(fraction, seed)
    except LexiconError as exc:
        return trained, None, f"no validation split ({exc})"
    train_part, validation = grouped.subset("trained"), grouped.subset("control")
    if len(validation) < 2 or len(train_part) < 2:
        return (
            trained,
            None,
            f"no validation split: only {len(validation)} pair(s) could be held out leak-free",
        )
    return train_part, validation, None


def validate(encoder, batcher: PairBatcher, validation: Lexicon, loss_fn, config: TrainConfig, known) -> dict:
    """Validation loss (same loss, fixed batches, dropout off) and MRR of each validation source's
    translation among all validation targets at the target layer (every process scores the whole validation
    set: under FSDP each forward needs them all)."""
    was_training = encoder.training
    encoder.eval()
    pairs = list(validation)
    losses, sources, targets = [], {}, {}
    with torch.no_grad():
        for batch_ids in chunk(list(range(len(pairs))), config.batch_size):
            batch = [pairs[k] for k in batch_ids]
            anchors, positives = batcher.pooled(encoder, batch)
            mask = valid_negative_mask([p.source for p in batch], [p.target for p in batch], known)
            losses.append(float(loss_fn(anchors, positives, mask.to(anchors.device))))
            for p, a, t in zip(batch, anchors, positives, strict=True):
                sources[p.source], targets[p.target] = a.float().cpu(), t.float().cpu()
    encoder.train(was_training)
    _, _, index = PairIndex.from_lexicon(validation)  # unique strings in first-seen order, as the dicts
    src = torch.nn.functional.normalize(torch.stack(list(sources.values())), dim=-1)  # (sources, H)
    tgt = torch.nn.functional.normalize(torch.stack(list(targets.values())), dim=-1)  # (targets, H)
    gold = index.gold()
    ranks = retrieval_ranks(src @ tgt.T, gold)
    return {"loss": float(np.mean(losses)) if losses else float("nan"), "mrr": mean_reciprocal_rank(ranks)}
