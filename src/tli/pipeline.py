"""``tli run``: scan → choose the target layer → train → evaluate → report, with one model load.

Layout of the run directory::

    OUT/results.json, OUT/report.md       the whole story, claims with verdicts
    OUT/scan/                             tli scan output (layer curves, selected layer)
    OUT/train/                            adapter/ (PEFT), checkpoints/, metrics.jsonl, loss.png
    OUT/evaluate/                         pairs.csv, before/after plots, claims
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tli.errors import ConfigError
from tli.evaluate import EvaluateConfig, read_adapter_meta, run_evaluation
from tli.io import atomic_write_json, atomic_write_text
from tli.lexicon import Lexicon
from tli.models import load_model
from tli.report import evaluation_report, scan_findings, write_evaluate_run, write_scan_run, write_train_run
from tli.runs import check_writable, provenance
from tli.scan import ScanConfig, lexicon_record, resolve_lexicon, run_scan
from tli.train import TrainConfig, run_training


def run(
    model: str | None = None,
    lexicon: str | Path | Lexicon | None = None,
    *,
    out: str | Path,
    select_by: str = "gap",
    target_layer: int | None = None,
    resume: bool = False,
    n_boot: int = 10_000,
    progress: bool | None = None,
    **train_options: Any,
) -> dict[str, Any]:
    """The whole TLI study on one model and lexicon.

    Args:
        model: model spec; None = embedded SmolLM2-135M-Instruct.
        lexicon: word pairs; None = the shipped Swahili–English lexicon (its stored split is used).
        out: run directory.
        select_by: scan criterion for the target layer (``gap`` | ``cosine`` | ``p_at_1`` | ``csls``).
        target_layer: skip the selection and train at this layer.
        resume: continue training from the last epoch checkpoint in ``out/train``.
        n_boot: bootstrap resamples for confidence intervals.
        **train_options: :class:`tli.train.TrainConfig` fields (``epochs``, ``loss``, ``pooling``, …).

    Returns:
        The top-level ``results.json`` content.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "tli run is one process: launch `torchrun --nproc_per_node N -m tli train ...` for data-parallel "
            "training, then `tli evaluate --adapter OUT/adapter`"
        )
    out = check_writable(Path(out))
    if not resume and (out / "train" / "checkpoints").exists():
        raise ConfigError(f"--out {out} already holds a run: pass --resume or choose another --out")
    checked = TrainConfig(**train_options)  # validate every option before loading anything
    scan_config = ScanConfig(
        pooling=checked.pooling,
        add_bos=checked.add_bos,
        template=checked.template,
        select_by=select_by,
        dtype=checked.dtype,
        device=checked.device,
        quantization=checked.quantization,
        seed=checked.seed,
    )
    lex = resolve_lexicon(lexicon)
    trained, control = lex.trained_and_control(checked.control_fraction, checked.split_seed)
    loaded = load_model(
        model, dtype=scan_config.dtype, device=scan_config.device, quantization=scan_config.quantization
    )

    # 1. Scan the trained pairs only (control pairs stay unseen until evaluation): where does the model
    #    align the two languages, by a criterion that survives the anisotropy artifact?
    scan = run_scan(loaded, trained, scan_config, progress=progress)
    write_scan_run(out / "scan", scan, scan_config)
    layer = target_layer if target_layer is not None else scan.selected_layer

    # 2. Train at that layer on the trained pairs only.
    lexicon_path = str(Path(lexicon).resolve()) if isinstance(lexicon, (str, Path)) else None
    train_config = TrainConfig(**{**train_options, "target_layer": layer}, model=model, lexicon=lexicon_path)
    (out / "train").mkdir(parents=True, exist_ok=True)
    trained_run = run_training(loaded, trained, train_config, out / "train", resume=resume, progress=progress)
    write_train_run(
        out / "train",
        {
            **asdict(trained_run),
            "model": loaded.describe(),
            "lexicon": lexicon_record(trained),
            **provenance("train", asdict(train_config), train_config.seed),
        },
    )

    # 3. Evaluate base vs adapted on trained and control pairs, target and final layer.
    meta = read_adapter_meta(trained_run.adapter)
    eval_config = EvaluateConfig(adapter=trained_run.adapter, n_boot=n_boot, seed=train_config.seed)
    evaluation = run_evaluation(loaded, lex, meta, eval_config)
    evaluation.update(
        model=loaded.describe(),
        lexicon=lexicon_record(lex),
        adapter={"path": trained_run.adapter, "trained_with": asdict(train_config)},
        **provenance("evaluate", asdict(eval_config), eval_config.seed),
    )
    write_evaluate_run(out / "evaluate", evaluation)

    # 4. The whole story.
    results = {
        "selected_layer": scan.selected_layer,
        "criterion": scan.criterion,
        "target_layer": layer,
        "final_layer": evaluation["final_layer"],
        "scan": {
            "layers": scan.layers,
            "artifact_layers": scan.artifact_layers,
            "published_choice": scan.published_choice,
        },
        "train": asdict(trained_run),
        "train_config": asdict(train_config),
        "evaluation": evaluation["evaluation"],
        "claims": evaluation["claims"],
        "pooling": evaluation["pooling"],
        "model": loaded.describe(),
        "lexicon": lexicon_record(lex) | {"n_trained": len(trained), "n_control": len(control)},
        "timing": {
            "load_seconds": loaded.load_seconds,
            "scan_seconds": scan.timing["scan_seconds"],
            "train_seconds": trained_run.timing["train_seconds"],
            "evaluate_seconds": evaluation["timing"]["evaluate_seconds"],
        },
        **provenance(
            "run",
            {"select_by": select_by, "target_layer": target_layer, "n_boot": n_boot, **asdict(train_config)},
            train_config.seed,
        ),
    }
    atomic_write_text(out / "report.md", run_report(results, scan, evaluation))
    atomic_write_json(out / "results.json", results)
    return results


def collapse_note(train: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """A triplet loss that settles at its margin means positives and hardest negatives are equally close:
    the space has collapsed rather than aligned. Say so where the loss curve is shown."""
    losses = train["epoch_losses"]
    if (
        config["loss"] != "triplet"
        or not losses
        or abs(losses[-1] - config["margin"]) > 0.02 * config["margin"]
    ):
        return []
    return [
        f"- The loss settled at {losses[-1]:.4f}, the margin ({config['margin']}): the hardest in-batch "
        "negative ends as similar as the positive — training pulled all words together rather than "
        "translations apart from non-translations (see the gap claims below).",
        "",
    ]


def run_report(results: dict[str, Any], scan, evaluation: dict[str, Any]) -> str:
    """Top-level ``report.md``: scan findings, training summary, then the evaluation's claims."""
    train = results["train"]
    losses = train["epoch_losses"]
    body = evaluation_report(evaluation, heading="## 3. Evaluation")
    body = body.replace("](", "](evaluate/").replace("\n## ", "\n### ")
    lines = [
        "# tli run",
        "",
        f"Model `{results['model']['name']}`, lexicon `{results['lexicon']['path']}` "
        f"({results['lexicon']['n_trained']} trained / {results['lexicon']['n_control']} control pairs).",
        "",
        "## 1. Scan",
        "",
        *[f"- {finding}" for finding in scan_findings(scan)],
        "",
        "![layer curves](scan/layers.png)",
        "",
        "## 2. Training",
        "",
        f"- target layer {results['target_layer']}, {train['timing']['steps']} steps in "
        f"{train['timing']['train_seconds']:.0f} s; mean loss per epoch: "
        + ", ".join(f"{loss:.4f}" for loss in losses),
        "",
        *collapse_note(train, results["train_config"]),
        "![loss](train/loss.png)",
        "",
        body,
    ]
    return "\n".join(lines)
