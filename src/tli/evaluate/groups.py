"""The trained and control groups an adapter is judged on, and a warning for each group too small to judge."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tli.adapter import read_recorded_split, regroup_as_trained
from tli.lexicon import Lexicon, resolve_lexicon

log = logging.getLogger(__package__)  # "tli.evaluate", the logger name these warnings always had

GROUPS = ("trained", "control")
SMALL_GROUP = 30
"""Below this many pairs in a group (trained or control) its claims rest on too little to read: say so."""


def small_group_warnings(lexicon: Lexicon, n_claims: int) -> list[str]:
    """A word for each group too small for its verdicts to mean much (fewer than ``SMALL_GROUP`` pairs)."""
    warnings = []
    for group in GROUPS:
        pairs = [p for p in lexicon if p.group == group]
        words = len({p.source for p in pairs})
        if 2 <= len(pairs) < SMALL_GROUP:
            warnings.append(
                f"only {len(pairs)} {group} pairs ({words} source words): the {n_claims} claims judge them on too "
                f"few pairs to mean much (each verdict's n is in the report); use at least {SMALL_GROUP} {group} "
                "pairs — a lexicon of a few hundred pairs"
            )
    return warnings


def groups_for(
    adapter: str | Path, meta: dict[str, Any], lexicon: Lexicon | None
) -> tuple[Lexicon, dict[str, Any]]:
    """The trained / control groups an adapter must be judged on.

    The split recorded with the adapter decides: a pair trained on is ``trained``; validation pairs are left
    out; any other pair is ``control`` only when it shares no source, target or word with the training pairs
    (a lexicon file given to ``evaluate`` is never re-split). Adapters without a recorded split fall back to
    the training lexicon's split.
    """
    recorded = read_recorded_split(adapter)
    if recorded is None:
        source = lexicon if lexicon is not None else resolve_lexicon(meta["config"].get("lexicon"))
        config = meta["config"]
        grouped = (
            source
            if source.has_split()
            else source.with_split(config["control_fraction"], config["split_seed"])
        )
        return grouped, {"origin": "re-split (adapter without a recorded split)"}
    if lexicon is None:
        return recorded.lexicon(), {"origin": "adapter", **recorded.counts()}
    grouped, record = regroup_as_trained(lexicon, recorded)
    if record["n_control_dropped_as_seen"]:
        log.warning(
            "warning: %d pair(s) of %s share a word with the training pairs and are not counted as control",
            record["n_control_dropped_as_seen"],
            lexicon.path,
        )
    return grouped, record
