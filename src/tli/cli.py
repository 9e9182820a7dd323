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

from tli.errors import TliError


def _add_model_args(parser: argparse.ArgumentParser) -> None:
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
    group.add_argument("--batch-size", type=int, default=64, help="words per forward (default 64)")


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
    from tli.scan import scan

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
            f"warning: {len(result.artifact_layers)} layer(s) have matched cosine > 0.95 with gap < 0.05 "
            "(high cosine for any pair): see report.md"
        )
    print(f"wrote {out}/ (results.json, layers.csv, report.md, layers.png)")
    return 0


SUBCOMMANDS: list[Callable] = [_add_scan_parser]


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
    return parser


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("tli")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tli`` console command."""
    parser = build_parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
