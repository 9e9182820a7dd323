"""The adapter contract: what ``tli train`` writes beside a PEFT adapter, and what readers check.

A tli adapter directory is a standard PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors``;
``peft.PeftModel.from_pretrained(base, DIR)`` loads it) plus two files:

- ``tli_adapter.json``: the base model (name and fingerprint), the target layer, the embedding recipe
  (including the start token), the lexicon fingerprint and the training config;
- ``tli_split.json``: the pairs trained on, the validation pairs and the control pairs, so an evaluation
  judges exactly the split training used, whatever lexicon file it is given.

``adapter_config.json``'s ``base_model_name_or_path`` names a portable base (a hub id or the user's model
path), never tli's private cache of a converted GGUF file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tli.errors import ConfigError, LexiconError, ModelLoadError
from tli.io import atomic_write_json, replace_dir_atomically
from tli.lexicon import Lexicon, Pair, word_tokens
from tli.models import DEFAULT_GGUF_FILE, LoadedModel, attach_adapter, load_model

ADAPTER_META = "tli_adapter.json"
ADAPTER_SPLIT = "tli_split.json"
DEFAULT_MODEL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The hub model the embedded GGUF (Q4_1) was quantised from."""


def portable_base_name(loaded: LoadedModel) -> str:
    """What ``adapter_config.json`` calls the base model: the hub id, the user's directory or GGUF file.

    The embedded default is named by the hub model its Q4_1 GGUF was made from (the adapter was trained on
    the dequantised GGUF weights; ``tli_adapter.json`` records that file's fingerprint).
    """
    if loaded.name == "default":
        return DEFAULT_MODEL_HUB_ID
    return loaded.name


def write_adapter_files(
    adapter_dir: Path,
    loaded: LoadedModel,
    *,
    target_layer: int,
    embed: dict[str, Any],
    config: dict[str, Any],
    lexicon_sha256: str,
    split: dict[str, Lexicon | list[Pair]],
    split_record: dict[str, Any] | None = None,
) -> None:
    """Write ``tli_adapter.json`` and ``tli_split.json`` and make ``adapter_config.json`` portable."""
    atomic_write_json(
        adapter_dir / ADAPTER_META,
        {
            "base_model": {
                "name": loaded.name,
                "fingerprint": loaded.fingerprint,
                "source": loaded.source,
                "gguf_file": DEFAULT_GGUF_FILE if loaded.name == "default" else None,
            },
            "target_layer": target_layer,
            "embed": embed,
            "lexicon_sha256": lexicon_sha256,
            "config": config,
        },
    )
    languages = next((lex for lex in split.values() if isinstance(lex, Lexicon)), None)
    atomic_write_json(
        adapter_dir / ADAPTER_SPLIT,
        {
            "source_lang": languages.source_lang if languages else "sw",
            "target_lang": languages.target_lang if languages else "en",
            **{group: [[p.source, p.target] for p in pairs] for group, pairs in split.items()},
            "record": split_record,
        },
    )
    peft_config = adapter_dir / "adapter_config.json"
    if peft_config.is_file():
        values = json.loads(peft_config.read_text(encoding="utf-8"))
        values["base_model_name_or_path"] = portable_base_name(loaded)
        atomic_write_json(peft_config, values)


def read_adapter_meta(adapter: str | os.PathLike) -> dict[str, Any]:
    """The ``tli_adapter.json`` written next to a tli adapter.

    Raises:
        ModelLoadError: not a PEFT adapter directory, or not one written by ``tli train``.
    """
    path = Path(adapter) / ADAPTER_META
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"--adapter {adapter}: no adapter_config.json (expected RUN/adapter of tli train)"
        )
    if not path.is_file():
        raise ModelLoadError(
            f"--adapter {adapter}: no {ADAPTER_META}; it was not written by tli train, so the target layer "
            "and pooling are unknown"
        )
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class RecordedSplit:
    """The pairs an adapter was trained on, validated with and held out from (``tli_split.json``)."""

    trained: list[tuple[str, str]]
    validation: list[tuple[str, str]]
    control: list[tuple[str, str]]
    source_lang: str = "sw"
    target_lang: str = "en"

    def lexicon(self) -> Lexicon:
        """The trained and control pairs, in recorded order, with their groups."""
        pairs = [Pair(s, t, "trained") for s, t in self.trained] + [
            Pair(s, t, "control") for s, t in self.control
        ]
        return Lexicon(pairs, self.source_lang, self.target_lang)

    def counts(self) -> dict[str, int]:
        return {
            "n_trained": len(self.trained),
            "n_validation": len(self.validation),
            "n_control": len(self.control),
        }


def read_recorded_split(adapter: str | os.PathLike) -> RecordedSplit | None:
    """The split recorded with an adapter (None for adapters written before tli recorded it)."""
    path = Path(adapter) / ADAPTER_SPLIT
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    groups = {
        group: [tuple(p) for p in data.get(group, [])] for group in ("trained", "validation", "control")
    }
    return RecordedSplit(
        **groups, source_lang=data.get("source_lang", "sw"), target_lang=data.get("target_lang", "en")
    )


def regroup_as_trained(lexicon: Lexicon, recorded: RecordedSplit) -> tuple[Lexicon, dict]:
    """Groups of ``lexicon`` as the adapter was trained, whatever file the pairs come from.

    A pair trained on is ``trained``; a validation pair is left out (it chose the epoch); any other pair is
    ``control`` only if it shares no source, target or word with a trained or validation pair (others are
    dropped and counted: they are not unseen).

    Returns:
        ``(lexicon with groups, record)`` where the record counts each kind.
    """
    trained_pairs, validation = set(recorded.trained), set(recorded.validation)
    seen = trained_pairs | validation
    trained = [Pair(p.source, p.target, "trained") for p in lexicon if (p.source, p.target) in trained_pairs]
    rest = [Pair(p.source, p.target, "control") for p in lexicon if (p.source, p.target) not in seen]
    if recorded.trained and not trained:
        raise LexiconError(
            f"{lexicon.path or 'the lexicon'} holds none of the {len(recorded.trained)} pairs the adapter was trained "
            f"on (e.g. {recorded.trained[0][0]} → {recorded.trained[0][1]}): it is another lexicon — evaluate with the "
            "training lexicon, or without --lexicon (the recorded split)"
        )
    leaking = _leaking(seen, rest)
    kept = [p for p in rest if (p.source, p.target) not in leaking]
    record = {
        "origin": "adapter",
        "n_trained": len(trained),
        "n_control": len(kept),
        "n_validation_left_out": sum((p.source, p.target) in validation for p in lexicon),
        "n_control_dropped_as_seen": len(rest) - len(kept),
    }
    return Lexicon(
        trained + kept, lexicon.source_lang, lexicon.target_lang, lexicon.path, dict(lexicon.meta)
    ), record


def _leaking(seen: set[tuple[str, str]], candidates: list[Pair]) -> set[tuple[str, str]]:
    """Every candidate pair that shares a source, target or word token with a seen pair (the split's rules)."""
    sources, targets = {s for s, _ in seen}, {t for _, t in seen}
    src_words = {w for s, _ in seen for w in word_tokens(s)}
    tgt_words = {w for _, t in seen for w in word_tokens(t)}
    return {
        (p.source, p.target)
        for p in candidates
        if p.source in sources
        or p.target in targets
        or src_words & set(word_tokens(p.source))
        or tgt_words & set(word_tokens(p.target))
    }


def check_same_base(meta: dict[str, Any], loaded: LoadedModel, adapter: str) -> None:
    """An adapter only means something on the base model it was trained on (checked by fingerprint)."""
    trained_on = meta["base_model"]
    if trained_on.get("fingerprint", {}).get("sha256") != loaded.fingerprint.get("sha256"):
        raise ModelLoadError(
            f"adapter {adapter} was trained on base model {trained_on['name']!r} "
            f"(sha256 {trained_on.get('fingerprint', {}).get('sha256', '?')[:12]}), not on {loaded.name!r} "
            f"(sha256 {loaded.fingerprint.get('sha256', '?')[:12]}): pass --model {trained_on['name']}"
        )


def attach_to(loaded: LoadedModel, adapter: str | os.PathLike) -> LoadedModel:
    """Attach a checked tli adapter to an already loaded base model (unmerged)."""
    check_same_base(read_adapter_meta(adapter), loaded, str(adapter))
    loaded.model, loaded.adapter = attach_adapter(loaded.model, adapter), str(adapter)
    return loaded


def load_adapted(
    adapter: str | os.PathLike,
    meta: dict[str, Any] | None = None,
    model: str | None = None,
    *,
    dtype: str = "auto",
    device: str = "auto",
    quantization: str | None = None,
    trust_remote_code: bool = False,
    device_map: str | dict[str, Any] | None = None,
    max_memory: str | dict[Any, Any] | None = None,
    offload_folder: str | os.PathLike | None = None,
) -> LoadedModel:
    """The adapter's base model (``model`` or the recorded one), checked by fingerprint, with the adapter
    attached unmerged; quantization defaults to the one used in training. ``device_map`` (with ``max_memory``
    and ``offload_folder``) spreads a big base over devices."""
    meta = meta or read_adapter_meta(adapter)
    loaded = load_model(
        model if model is not None else meta["base_model"]["name"],
        dtype=dtype,
        device=device,
        quantization=quantization or meta["config"].get("quantization") or "none",
        trust_remote_code=trust_remote_code,
        device_map=device_map,
        max_memory=max_memory,
        offload_folder=offload_folder,
    )
    return attach_to(loaded, adapter)


def load_adapted_for(
    adapter: str | os.PathLike, options: Any, meta: dict[str, Any] | None = None
) -> LoadedModel:
    """:func:`load_adapted` with a command's model options (``model``, ``dtype``, ``device``, ``quantization``,
    ``trust_remote_code``, ``device_map``, ``max_memory``, ``offload_folder``)."""
    names = (
        "dtype",
        "device",
        "quantization",
        "trust_remote_code",
        "device_map",
        "max_memory",
        "offload_folder",
    )
    return load_adapted(
        adapter,
        meta,
        getattr(options, "model", None),
        **{n: getattr(options, n) for n in names if hasattr(options, n)},
    )


def merge_adapter(adapter: str | os.PathLike, out: str | os.PathLike, *, dtype: str = "float32") -> Path:
    """Merge a tli adapter into its base model's full-precision weights and save a plain HF model.

    The base is loaded unquantised (merging LoRA into 4-bit weights would round it away), in ``dtype``;
    ``out`` then loads with ``AutoModelForCausalLM.from_pretrained(out)`` and no PEFT.

    Raises:
        ConfigError: ``out`` exists and is not empty.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty: choose a new directory for the merged model")
    meta = read_adapter_meta(adapter)
    loaded = load_adapted(adapter, meta, dtype=dtype, quantization="none")
    merged = loaded.model.merge_and_unload()

    def write(tmp: Path) -> None:
        merged.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        atomic_write_json(
            tmp / "tli_merged.json",
            {"adapter": str(Path(adapter).resolve()), "base_model": meta["base_model"], "dtype": dtype},
        )

    return replace_dir_atomically(out, write)
