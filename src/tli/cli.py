"""``tli`` command line: thin wrappers over the Python API (``tli.scan``, ``tli.train``, …).

Each command's options are generated from its config class in :mod:`tli.config` (the one definition of
every option); a handler here only calls the API and prints a summary. Errors the user can fix are printed
as one line (``tli: error: …``) with exit status 2; ``--debug`` shows the traceback instead. Progress and
warnings go to stderr through ``logging``; results go to stdout and files.

In-function imports: each handler imports the stage it runs (``tli.scan``, ``tli.train``, ``tli.evaluate``,
``tli.pipeline``, ``tli.stats``, ``tli.compare``, …) when it runs, because those load torch, transformers or
scipy, and the libraries' loggers (``transformers``, ``huggingface_hub``) are quieted the same way;
``tli --help`` and option errors stay fast and load none of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tli.config import COMMANDS, parse_command
from tli.errors import ConfigError, TliError
from tli.io import atomic_write_json
from tli.limits import shorten
from tli.plan import format_plan, plan
from tli.runs import default_run_dir, mark_complete, prepare_run_dir, provenance
from tli.threads import configure_threads

log = logging.getLogger("tli")

SUMMARIES = {
    "scan": "layer-by-layer alignment with mismatched-pair and retrieval controls; selects a target layer",
    "train": "TLI: LoRA + contrastive loss at an early target layer (PEFT adapter; several seeds)",
    "evaluate": "base vs adapted, trained vs control pairs, target vs final layer, corrected claims",
    "run": "the whole study: scan, target layer, train per seed, evaluate, report (the main command)",
    "stats": "paired statistics for any per-pair CSV/JSON file (re-analyse published results)",
    "probe": "base and adapted model translate sampled words; a table of their answers",
    "export-embeddings": "one layer's embeddings as .npy and word2vec text for other BLI tools",
    "merge": "merge an adapter into its base model's full-precision weights (a plain HF model)",
    "plan": "memory, GPUs and time per strategy from a model config (qwen2-72b, llama-3-70b, … offline)",
    "compare": "fine-tuning strategies × tasks (XL-Sum, XNLI, retrieval) × models, with paired statistics",
    "verify": "re-derive a finished run's statistics and fingerprints from its files; list what differs",
    "ablate": "train every objective variant (same data, steps, seeds), judge which aligns unseen words",
}


def _options(config: Any, *drop: str) -> dict[str, Any]:
    """A config's fields as API keyword arguments, without the ones passed positionally."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in drop}


def _out(config: Any, command: str) -> Path:
    return Path(config.out) if config.out else default_run_dir(command)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def cmd_scan(config) -> int:
    from tli.scan import scan

    out = _out(config, "scan")
    result = scan(config.model, config.lexicon, out=out, **_options(config, "model", "lexicon", "out"))
    chosen = result.layers[result.selected_layer]
    low, high = result.selectable_layers
    print(
        f"selected layer {result.selected_layer} by {result.criterion} (layers {low}-{high}): centred gap "
        f"{chosen['centered_gap']:+.4f}, matched {chosen['matched_mean']:.4f}, mismatched "
        f"{chosen['mismatched_mean']:.4f}, P@1 {chosen['p_at_1']:.3f} (chance {result.chance_p_at_1:.4f}), "
        f"MRR {chosen['mrr']:.3f}"
    )
    if result.artifact_layers:
        log.warning(
            "warning: %d artefact layer(s) where any two words look alike: see report.md",
            len(result.artifact_layers),
        )
    print(f"wrote {out}/ (results.json, layers.csv, report.md, layers.png)")
    return 0


def cmd_train(config) -> int:
    from tli.train import train

    out = _out(config, "train")
    results = train(config.model, config.lexicon, out=out, **_options(config, "model", "lexicon", "out"))
    if not _is_main_process():  # under torchrun every process trains; one prints
        return 0
    for result in results if isinstance(results, list) else [results]:
        losses = ", ".join(f"{x:.4f}" for x in result.epoch_losses)
        best = f"; best validation epoch {result.best_epoch}" if result.best_epoch else ""
        print(
            f"seed {result.seed}: {result.timing['steps']} steps at layer {result.target_layer}; epoch losses: "
            f"{losses}{best}"
        )
        print(f"adapter: {result.adapter}  (peft.PeftModel.from_pretrained(base, '{result.adapter}'))")
    return 0


def _print_claims(claims: list[dict]) -> None:
    from tli.stats import format_p

    for c in claims:
        seeds = f" ({', '.join(c['verdicts'])})" if c.get("n_seeds", 1) > 1 else ""
        print(
            f"[{c['verdict']:>12}] {c['claim']}: {c['effect']:+.4f} [{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}], "
            f"p {format_p(c['p'])}, adjusted {format_p(c['p_adjusted'])}{seeds}"
        )


def cmd_evaluate(config) -> int:
    from tli.evaluate import evaluate

    out = _out(config, "evaluate")
    results = evaluate(
        config.adapter,
        model=config.model,
        lexicon=config.lexicon,
        out=out,
        **_options(config, "adapter", "model", "lexicon", "out"),
    )
    _print_claims(results["claims"])
    print(f"wrote {out}/ (results.json, pairs.csv, report.md, plots)")
    return 0


def cmd_run(config) -> int:
    from tli.pipeline import run

    out = _out(config, "run")
    results = run(config.model, config.lexicon, out=out, **_options(config, "model", "lexicon", "out"))
    if results["target_layer_given"]:
        print(
            f"target layer {results['target_layer']} (given by --target-layer; the scan's {results['criterion']} "
            f"criterion would pick {results['selected_layer']})"
        )
    else:
        print(f"target layer {results['target_layer']} (selected by {results['criterion']})")
    _print_claims(results["claims"])
    print(f"wrote {out}/report.md")
    return 0


def cmd_stats(config) -> int:
    from tli.group_claims import format_stats_report, stats_report
    from tli.stats import DEFAULT_CLUSTER, DEFAULT_GROUP

    def column(value: str | None, default):
        return default if value is None else (value or None)

    report = stats_report(
        config.file,
        pre=config.pre,
        post=config.post,
        group=column(config.group, DEFAULT_GROUP),
        cluster=column(config.cluster, DEFAULT_CLUSTER),
        n_boot=config.n_boot,
        seed=config.seed,
        alpha=config.alpha,
        correction=config.correction,
        equivalence_margin=config.equivalence_margin,
    )
    print(json.dumps(report.to_dict(), indent=2) if config.json else format_stats_report(report))
    return 0


def cmd_probe(config) -> int:
    from tli.adapter import load_adapted_for, read_adapter_meta
    from tli.lexicon import resolve_lexicon
    from tli.probe import probe, probe_summary, write_probe_run

    if not config.adapter:
        raise ConfigError(
            "tli probe needs --adapter DIR (RUN/adapter of tli train): it compares base and adapted"
        )
    out = prepare_run_dir(_out(config, "probe"), overwrite=config.overwrite)
    meta = read_adapter_meta(config.adapter)
    lexicon = resolve_lexicon(config.lexicon or meta["config"].get("lexicon"))
    loaded = load_adapted_for(config.adapter, config, meta)
    rows = probe(loaded, lexicon, config)
    write_probe_run(out, rows, config, loaded, lexicon)
    print(probe_summary(rows))
    print(f"wrote {out}/probe.md")
    return 0


def cmd_export_embeddings(config) -> int:
    from tli.bli import export_embeddings, read_word_list
    from tli.embed import EmbedConfig, embed_strings
    from tli.lexicon import resolve_lexicon
    from tli.models import load_model

    out = prepare_run_dir(_out(config, "export"), overwrite=config.overwrite)
    if config.words:
        languages = {"words": read_word_list(config.words)}
    else:
        lexicon = resolve_lexicon(config.lexicon)
        languages = {
            lexicon.source_lang: list(dict.fromkeys(lexicon.sources)),
            lexicon.target_lang: list(dict.fromkeys(lexicon.targets)),
        }
    loaded = load_model(config.model, adapter=config.adapter, **config.load_options())
    if max(config.layer) > loaded.num_layers:
        raise ConfigError(
            f"--layer {max(config.layer)} is beyond the model: hidden-state indices run 0..{loaded.num_layers}"
        )
    embed_config = EmbedConfig.from_recipe(config.recipe(), config.batch_size)
    written: dict[str, list[str]] = {}
    for lang, words in languages.items():
        vectors = embed_strings(words, loaded.model, loaded.tokenizer, embed_config, desc=f"{lang} words")
        if config.center:
            from tli.embed import center_and_normalise

            vectors = center_and_normalise(vectors)
        for layer in config.layer:
            files = export_embeddings(words, vectors[layer].numpy(), out, layer=layer, lang=lang)
            written[f"{lang}.layer{layer}"] = [str(p) for p in files.values()]
            print(f"{lang} layer {layer}: {len(words)} words → {', '.join(written[f'{lang}.layer{layer}'])}")
    _write_export_record(out, config, loaded, embed_config, written)
    return 0


def _write_export_record(out: Path, config, loaded, embed_config, written: dict[str, list[str]]) -> None:
    """``results.json`` of an export: the pooling recipe, model, files and provenance (then ``complete``)."""
    from tli.embed import bos_record

    record = {
        "layers": list(config.layer),
        "pooling": embed_config.describe() | bos_record(loaded.tokenizer, embed_config),
        "model": loaded.describe(),
        "files": written,
        **provenance("export-embeddings", dataclasses.asdict(config), None),
    }
    atomic_write_json(out / "results.json", record)
    mark_complete(out, "export")


def cmd_merge(config) -> int:
    from tli.adapter import merge_adapter

    path = merge_adapter(config.adapter, config.out, dtype=config.dtype)
    print(f"merged model: {path}  (AutoModelForCausalLM.from_pretrained('{path}'))")
    return 0


def cmd_plan(config) -> int:
    result = plan(
        config.model,
        **{k: v for k, v in _options(config, "model", "json").items() if k != "lora_targets"},
        lora_targets=tuple(config.lora_targets),
    )
    print(json.dumps(result.to_dict(), indent=2) if config.json else format_plan(result))
    return 0


def cmd_compare(config) -> int:
    from tli.compare import compare, dry_run, format_dry_run, format_units, list_units, parse_experiment

    planning = config.dry_run or config.list_cells
    experiment = parse_experiment(config.experiment, check_device=not planning)
    if config.dry_run:
        planned = dry_run(experiment, out=config.out or "OUT")
        print(json.dumps(planned, indent=2, default=str) if config.json else format_dry_run(planned))
        return 0
    if config.list_cells:
        units = list_units(experiment, out=config.out or "OUT", only=config.only, shard=config.shard)
        print(json.dumps(units, indent=2) if config.json else format_units(units))
        return 0
    out = (
        Path(config.out)
        if config.out
        else Path("runs") / f"compare-{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    results = compare(
        experiment,
        out=out,
        track=config.track,
        tracking_uri=config.tracking_uri,
        only=config.only,
        shard=config.shard,
        collect=config.collect,
    )
    if not _is_main_process():  # under accelerate launch / torchrun the main process reports
        return 0
    if "claims" not in results:  # one job of a cluster run: its cells only
        ran = f"ran {len(results['units'])} training unit(s) into {out}"
        return _report_cells(
            results["cells"], ran, "rerun this job", then=f"then: tli compare ... --out {out} --collect"
        )
    for claim in results["claims"]:
        if claim["verdict"] != "not measured":
            print(f"[{claim['verdict']:>12}] {claim['claim']}")
    return _report_cells(results["cells"], f"wrote {out}/report.md", "rerun to retry them")


def _report_cells(cells: list[dict], what: str, retry: str, then: str = "") -> int:
    """One line of what a compare run did (cells done, failed), and its exit status: 1 when a cell failed."""
    failed = [c for c in cells if c["status"] == "failed"]
    print(
        f"{what} ({len(cells) - len(failed)} cells done, {len(failed)} failed)"
        + (f"; {then}" if then else "")
    )
    if failed:
        first = failed[0]["error"]
        print(f"tli: error: {len(failed)} cell(s) failed (first: {first}); {retry}", file=sys.stderr)
        return 1
    return 0


def cmd_verify(config) -> int:
    from tli.verify import format_verification, verify

    report = verify(config.run, load_model=config.load_model)
    print(json.dumps(report.to_dict(), indent=2) if config.json else format_verification(report))
    return 0 if report.ok else 1


def cmd_ablate(config) -> int:
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


HANDLERS: dict[str, Callable[[Any], int]] = {
    "scan": cmd_scan,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "run": cmd_run,
    "stats": cmd_stats,
    "probe": cmd_probe,
    "export-embeddings": cmd_export_embeddings,
    "merge": cmd_merge,
    "plan": cmd_plan,
    "compare": cmd_compare,
    "verify": cmd_verify,
    "ablate": cmd_ablate,
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: ``tli [--debug] COMMAND [options]`` (each command parses its own options)."""
    listing = "\n".join(f"  {name:<18} {SUMMARIES[name]}" for name in HANDLERS)
    parser = argparse.ArgumentParser(
        prog="tli",
        description="Cross-lingual lexical alignment in LLMs: scan, Targeted Lexical Injection, evaluation.",
        epilog=f"commands:\n{listing}\n\n`tli COMMAND --help` lists a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    parser.add_argument("--version", action="version", version=f"tli {_version()}")
    parser.add_argument(
        "command", choices=list(HANDLERS), metavar="COMMAND", help="one of the commands below"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Any]:
    """``(global options, the command's config)``; a ``--config`` file supplies defaults that flags override."""
    namespace = build_parser().parse_args(argv)
    assert namespace.command in COMMANDS, f"command {namespace.command} has no config class"
    return namespace, parse_command(namespace.command, list(namespace.args))


def _version() -> str:
    try:
        return importlib.metadata.version("tli")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(debug: bool) -> None:
    """tli's progress lines and warnings on stderr; other libraries' chatter only with ``--debug``."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING, handlers=[handler], force=True)
    log.setLevel(logging.INFO)


def _quiet_libraries() -> None:
    """Keep transformers' and PEFT's informational chatter out of the way of tli's own output."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hub_logging.set_verbosity_error()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def one_line(message: str) -> str:
    """An error message on one line whatever it quotes (a file's text can hold line breaks), cut to
    :data:`tli.limits.MAX_MESSAGE_CHARS` characters (a message can quote a huge value)."""
    return shorten(message.strip().replace("\r", "\\r").replace("\n", "\\n"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tli`` console command."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    configure_logging(debug)
    try:
        namespace, config = parse_args(argv)
        if not namespace.debug:
            _quiet_libraries()
        if hasattr(config, "threads"):  # torch's thread pool sized to this process's CPUs (or --threads)
            configure_threads(config.threads)
        return HANDLERS[namespace.command](config)
    except TliError as exc:
        if debug:
            raise
        print(f"tli: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tli: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
