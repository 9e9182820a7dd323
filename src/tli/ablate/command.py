"""The ``tli ablate`` command: its options and handler (registered by :mod:`tli.cli`)."""

from __future__ import annotations

from dataclasses import dataclass

from tli.ablate.variants import ABLATION_DEFAULTS, VARIANTS
from tli.config import Problems, ThreadOptions, _int_list, _split_commas, option

SUMMARY = "train every objective variant (same data, steps, seeds), judge which aligns unseen words"


@dataclass(kw_only=True)
class AblateConfig(ThreadOptions):
    """``tli ablate``: the objectives side by side, with corrected verdicts."""

    model: str | None = option(
        None, "model: a directory, hub id or .gguf file (default: embedded SmolLM2-135M)"
    )
    out: str = option("runs/ablate", "run directory; rerunning resumes (finished units are kept)")
    lexicon: str | None = option(
        None, "word pairs (default: the shipped Swahili–English lexicon, stored split)"
    )
    variants: list[str] | None = option(None, f"variants to run (default all: {', '.join(VARIANTS)})")
    seeds: list[int] | None = option(
        list(ABLATION_DEFAULTS["seeds"]), "training seeds (the same for every variant)"
    )
    target_layer: int = option(
        ABLATION_DEFAULTS["target_layer"], "hidden-state index of every variant's loss"
    )
    epochs: int = option(ABLATION_DEFAULTS["epochs"], "epochs of every variant")
    no_downstream: bool = option(False, "skip the Mr. TyDi, XQuAD and XNLI checks")
    downstream_seeds: int = option(
        ABLATION_DEFAULTS["downstream_seeds"],
        "score downstream the adapters of the first N seeds (each costs a pass)",
    )
    alpha: float = option(0.05, "significance level of the Holm-corrected family")
    report_only: bool = option(
        False, "train nothing: judge the variants already finished (every seed) in --out"
    )

    def __post_init__(self) -> None:
        problems = Problems()
        self._check_threads(problems)
        self.variants = _split_commas(self.variants)
        for name in self.variants or []:
            problems.choice("variants", name, VARIANTS)
        self.seeds = _int_list("seeds", self.seeds, problems)
        problems.check(bool(self.seeds), "--seeds must name at least one seed")
        problems.at_least("target_layer", self.target_layer, 1)
        problems.at_least("epochs", self.epochs, 1)
        problems.at_least("downstream_seeds", self.downstream_seeds, 1)
        problems.check(0 < self.alpha < 1, f"--alpha must be in (0, 1), got {self.alpha}")
        problems.raise_if_any()


def cmd_ablate(config: AblateConfig) -> int:
    from tli.ablate.api import ablate

    results = ablate(
        config.model,
        out=config.out,
        lexicon=config.lexicon,
        variants=config.variants,
        seeds=config.seeds,
        target_layer=config.target_layer,
        epochs=config.epochs,
        downstream=not config.no_downstream,
        downstream_seeds=config.downstream_seeds,
        alpha=config.alpha,
        threads=config.threads,
        report_only=config.report_only,
    )
    winners = results["better_without_collapse"]
    print(
        f"ablation written to {config.out}/report.md ({len(results['variants'])} variants × {len(config.seeds)} seeds)"
    )
    print("better than published TLI without collapse: " + (", ".join(winners) if winners else "none"))
    return 0
