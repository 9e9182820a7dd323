"""``tli`` command line: thin wrappers over the Python API (``tli.scan``, ``tli.train``, …).

Errors the user can fix are printed as one line (``tli: error: …``) with exit status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tli.config import load_config_options, shipped_configs
from tli.errors import TliError


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="YAML file of options (keys = option names; flags given here override it), or the name of a "
        "shipped config: " + ", ".join(sorted(shipped_configs())),
    )
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None,
        help="local HF directory, hub id (online only) or .gguf file "
        "(default: embedded SmolLM2-135M-Instruct)",
    )
    group.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    group.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda[:N]")
    group.add_argument(
        "--quantization",
        default="none",
        help="none | nf4 (4-bit, bf16 compute) | int8 (bitsandbytes)",
    )


def _add_embed_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("embedding recipe")
    group.add_argument(
        "--pooling",
        default="mean",
        help="mean (published) | mean-no-special | last (default: mean)",
    )
    group.add_argument(
        "--center", action="store_true", help="mean-centre each language's embeddings per layer"
    )
    group.add_argument(
        "--template",
        default=None,
        help="prompt with a {word} slot, e.g. 'The word \"{word}\" means'",
    )
    group.add_argument("--add-bos", default="auto", help="auto | always | never: start sequences with BOS")
    group.add_argument("--batch-size", type=int, default=32, help="words per forward (default 32)")


def _add_scan_parser(sub) -> None:
    parser = sub.add_parser(
        "scan",
        help="layer-by-layer alignment scan with mismatched-pair and retrieval controls",
        description="Embed every lexicon word at every layer in one batched pass and report, per "
        "layer, matched vs mismatched mean cosine, their gap, P@1/P@5/MRR and CSLS P@1.",
    )
    _add_model_args(parser)
    parser.add_argument("--lexicon", default=None, help="JSON/CSV/TSV word pairs (default: shipped)")
    _add_embed_args(parser)
    parser.add_argument(
        "--select-by", default="gap", help="gap (default) | cosine (published) | p_at_1 | csls"
    )
    parser.add_argument("--min-layer", type=int, default=1, help="lowest selectable layer (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="recorded for provenance")
    parser.add_argument("--out", default=None, help="run directory (default runs/scan-<time>)")
    parser.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    from tli.runs import default_run_dir
    from tli.scan import ARTIFACT_COSINE, ARTIFACT_GAP, scan

    out = Path(args.out) if args.out else default_run_dir("scan")
    result = scan(
        args.model,
        args.lexicon,
        out=out,
        pooling=args.pooling,
        center=args.center,
        template=args.template,
        add_bos=args.add_bos,
        select_by=args.select_by,
        min_layer=args.min_layer,
        batch_size=args.batch_size,
        dtype=args.dtype,
        device=args.device,
        quantization=args.quantization,
        seed=args.seed,
    )
    chosen = result.layers[result.selected_layer]
    print(
        f"selected layer {result.selected_layer} by {result.criterion}: "
        f"matched {chosen['matched_mean']:.4f}, mismatched {chosen['mismatched_mean']:.4f}, "
        f"gap {chosen['gap']:+.4f}, P@1 {chosen['p_at_1']:.3f}, MRR {chosen['mrr']:.3f}"
    )
    if result.artifact_layers:
        print(
            f"warning: {len(result.artifact_layers)} layer(s) have matched cosine > {ARTIFACT_COSINE} "
            f"with gap < {ARTIFACT_GAP} (high cosine for any pair): see report.md"
        )
    print(f"wrote {out}/ (results.json, layers.csv, report.md, layers.png)")
    return 0


def _add_train_args(parser: argparse.ArgumentParser, *, with_target_layer: bool = True) -> None:
    group = parser.add_argument_group("TLI training (defaults: the published setting)")
    if with_target_layer:
        group.add_argument("--target-layer", type=int, default=2, help="hidden-state index of the loss (2)")
    group.add_argument("--loss", default="triplet", help="triplet (hardest negative) | infonce")
    group.add_argument("--margin", type=float, default=0.4, help="triplet margin (0.4)")
    group.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature (0.05)")
    group.add_argument("--epochs", type=int, default=5, help="epochs (5)")
    group.add_argument("--batch-size", type=int, default=8, help="pairs per batch (8)")
    group.add_argument("--grad-accum", type=int, default=1, help="batches per optimiser step (1)")
    group.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (2e-4)")
    group.add_argument("--warmup-steps", type=int, default=50, help="linear warm-up steps (50)")
    group.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (0)")
    group.add_argument("--lora-r", type=int, default=16, help="LoRA rank (16)")
    group.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (32)")
    group.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (0.05)")
    group.add_argument(
        "--target-modules", default="q_proj,v_proj", help="comma-separated linear layers (q_proj,v_proj)"
    )
    group.add_argument(
        "--lora-layers", default=None, help="comma-separated blocks for LoRA (default: 0..target-1)"
    )
    group.add_argument(
        "--pooling", default="mean-no-special", help="pooling at the target layer (mean-no-special)"
    )
    group.add_argument("--add-bos", default="auto", help="auto | always | never")
    group.add_argument("--template", default=None, help="prompt with a {word} slot")
    group.add_argument("--seed", type=int, default=0, help="random seed (0)")
    group.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")


def _train_options(args: argparse.Namespace) -> dict:
    options = {
        "loss": args.loss,
        "margin": args.margin,
        "temperature": args.temperature,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "lr": args.lr,
        "warmup_steps": args.warmup_steps,
        "weight_decay": args.weight_decay,
        "lora_r": args.lora_r,
        "lora_alpha": args.lora_alpha,
        "lora_dropout": args.lora_dropout,
        "target_modules": [m.strip() for m in args.target_modules.split(",") if m.strip()],
        "lora_layers": _int_list(args.lora_layers, "--lora-layers"),
        "pooling": args.pooling,
        "add_bos": args.add_bos,
        "template": args.template,
        "seed": args.seed,
        "dtype": args.dtype,
        "device": args.device,
        "quantization": args.quantization,
    }
    if args.command == "train":  # tli run takes --target-layer as an override of the scan's choice
        options["target_layer"] = args.target_layer
    return options


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise TliError(f"{option} {text!r}: expected comma-separated integers, e.g. 0,1") from None


def _add_train_parser(sub) -> None:
    parser = sub.add_parser(
        "train",
        help="TLI: LoRA fine-tuning with a contrastive loss at an early target layer",
        description="Train a LoRA adapter (PEFT format) so that translation pairs align at the target "
        "layer. Only blocks up to the target layer are loaded and run.",
    )
    _add_model_args(parser)
    parser.add_argument("--lexicon", default=None, help="word pairs; its trained group is used")
    _add_train_args(parser)
    parser.add_argument("--out", default=None, help="run directory (default runs/train-<time>)")
    parser.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from tli.runs import default_run_dir
    from tli.train import train

    out = Path(args.out) if args.out else default_run_dir("train")
    result = train(args.model, args.lexicon, out=out, resume=args.resume, **_train_options(args))
    losses = ", ".join(f"{x:.4f}" for x in result.epoch_losses)
    print(f"trained {result.timing['steps']} steps at layer {result.target_layer}; epoch losses: {losses}")
    print(f"adapter: {result.adapter}  (peft.PeftModel.from_pretrained(base, '{result.adapter}'))")
    return 0


def _add_evaluate_parser(sub) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="base vs adapted model on trained and control pairs, target and final layer, with statistics",
    )
    parser.add_argument("--adapter", required=True, help="adapter directory (RUN/adapter of tli train)")
    _add_model_args(parser)
    parser.set_defaults(quantization=None)
    parser.add_argument("--lexicon", default=None, help="word pairs (default: the training lexicon)")
    parser.add_argument("--batch-size", type=int, default=32, help="words per forward (32)")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples (10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    parser.add_argument("--out", default=None, help="run directory (default runs/evaluate-<time>)")
    parser.set_defaults(func=cmd_evaluate)


def _print_claims(claims: list[dict]) -> None:
    from tli.stats import format_p

    for c in claims:
        print(
            f"[{c['verdict']:>12}] {c['claim']}: {c['effect']:+.4f} "
            f"[{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}], p {format_p(c['p'])}"
        )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tli.evaluate import evaluate
    from tli.runs import default_run_dir

    out = Path(args.out) if args.out else default_run_dir("evaluate")
    results = evaluate(
        args.adapter,
        model=args.model,
        lexicon=args.lexicon,
        out=out,
        batch_size=args.batch_size,
        n_boot=args.n_boot,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        quantization=args.quantization,
    )
    _print_claims(results["claims"])
    print(f"wrote {out}/ (results.json, pairs.csv, report.md, plots)")
    return 0


def _add_run_parser(sub) -> None:
    parser = sub.add_parser(
        "run",
        help="the whole study: scan, choose the target layer, train, evaluate, report",
        description="Scan → select the target layer → TLI training → evaluation → report, loading the "
        "model once. With no options: the embedded model and the shipped lexicon.",
    )
    _add_model_args(parser)
    parser.add_argument("--lexicon", default=None, help="word pairs (default: shipped, stored split)")
    parser.add_argument("--select-by", default="gap", help="gap (default) | cosine | p_at_1 | csls")
    parser.add_argument(
        "--target-layer", type=int, default=None, help="train at this layer instead of the scan's choice"
    )
    _add_train_args(parser, with_target_layer=False)
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples (10000)")
    parser.add_argument("--out", default=None, help="run directory (default runs/run-<time>)")
    parser.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from tli.pipeline import run
    from tli.runs import default_run_dir

    out = Path(args.out) if args.out else default_run_dir("run")
    results = run(
        args.model,
        args.lexicon,
        out=out,
        select_by=args.select_by,
        target_layer=args.target_layer,
        resume=args.resume,
        n_boot=args.n_boot,
        **_train_options(args),
    )
    print(f"target layer {results['target_layer']} (selected by {results['criterion']})")
    _print_claims(results["claims"])
    print(f"wrote {out}/report.md")
    return 0


def _add_stats_parser(sub) -> None:
    parser = sub.add_parser(
        "stats",
        help="paired statistics (t-test, Wilcoxon, bootstrap CI, Cohen's d) from a per-pair CSV",
    )
    parser.add_argument("csv", help="CSV with one row per pair and before/after columns")
    parser.add_argument("--pre", default="sim_pre", help="column of the 'before' values (sim_pre)")
    parser.add_argument("--post", default="sim_post", help="column of the 'after' values (sim_post)")
    parser.add_argument("--group", default="group", help="column that splits rows into groups (group)")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples (10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    parser.set_defaults(func=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    from tli.stats import format_stats_table, stats_from_csv

    results = stats_from_csv(
        args.csv, pre=args.pre, post=args.post, group=args.group, n_boot=args.n_boot, rng=args.seed
    )
    if args.json:
        print(json.dumps({name: s.to_dict() for name, s in results.items()}, indent=2))
    else:
        print(format_stats_table(results))
    return 0


def _add_probe_parser(sub) -> None:
    parser = sub.add_parser(
        "probe",
        help="base and adapted model translate sampled lexicon words; a Markdown table of answers",
    )
    parser.add_argument("--adapter", required=True, help="adapter directory (RUN/adapter of tli train)")
    _add_model_args(parser)
    parser.set_defaults(quantization=None)
    parser.add_argument("--lexicon", default=None, help="word pairs (default: the training lexicon)")
    parser.add_argument("--n-pairs", type=int, default=20, help="source words to probe (20)")
    parser.add_argument("--prompt", default=None, help="prompt with a {source} slot")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="tokens to generate (8)")
    parser.add_argument("--sample", action="store_true", help="sample with --temperature instead of greedy")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (0.7)")
    parser.add_argument("--chat-template", default="auto", help="auto | yes | no")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (16)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for words and tokens (0)")
    parser.add_argument("--out", default=None, help="run directory (default runs/probe-<time>)")
    parser.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from tli.evaluate import load_adapted, read_adapter_meta
    from tli.probe import ProbeConfig, probe, probe_summary, write_probe_run
    from tli.runs import check_writable, default_run_dir
    from tli.scan import resolve_lexicon

    options = {"prompt": args.prompt} if args.prompt else {}
    config = ProbeConfig(
        n_pairs=args.n_pairs,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        greedy=not args.sample,
        temperature=args.temperature,
        use_chat_template=args.chat_template,
        batch_size=args.batch_size,
        **options,
    )
    out = check_writable(Path(args.out) if args.out else default_run_dir("probe"))
    meta = read_adapter_meta(args.adapter)
    lexicon = resolve_lexicon(args.lexicon or meta["config"].get("lexicon"))
    loaded = load_adapted(
        args.adapter, meta, args.model, dtype=args.dtype, device=args.device, quantization=args.quantization
    )
    rows = probe(loaded, lexicon, config)
    write_probe_run(out, rows, config, loaded, lexicon)
    print(probe_summary(rows))
    print(f"wrote {out}/probe.md")
    return 0


SUBCOMMANDS: list[Callable] = [
    _add_scan_parser,
    _add_train_parser,
    _add_evaluate_parser,
    _add_run_parser,
    _add_stats_parser,
    _add_probe_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tli",
        description="Cross-lingual lexical alignment in LLMs: scan, Targeted Lexical Injection, evaluation.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"tli {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    parser.set_defaults(subcommands=sub.choices)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; a ``--config`` file supplies defaults that explicit flags override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        subparser = args.subcommands[args.command]
        subparser.set_defaults(**load_config_options(args.config, subparser))
        args = parser.parse_args(argv)
    return args


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("tli")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tli`` console command."""
    try:
        args = parse_args(argv)
    except TliError as exc:
        print(f"tli: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.debug else logging.WARNING, format="%(message)s")
    if not args.debug:
        _quiet_libraries()
    try:
        return args.func(args)
    except TliError as exc:
        if args.debug:
            raise
        print(f"tli: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tli: interrupted", file=sys.stderr)
        return 130


def _quiet_libraries() -> None:
    """Keep transformers' and PEFT's informational chatter out of the way of tli's own output."""
    import warnings

    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hub_logging.set_verbosity_error()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


if __name__ == "__main__":
    sys.exit(main())
