"""Streaming scan: every layer's pooled embeddings with one decoder block in memory at a time.

``tli scan --stream`` never builds the model. It reads the config and the tokenizer, then walks the
safetensors checkpoint block by block: the embedding table turns every word batch into ``hidden_states[0]``;
block ``i`` is read (only its tensors, from whichever shard holds them), runs every batch from
``hidden_states[i]`` to
``hidden_states[i+1]``, and is freed before block ``i+1`` is read; the final norm gives ``hidden_states[N]``.
Peak memory is the embedding table, one block, and the hidden states of the words being scanned (``words ×
tokens × hidden`` floats, kept on the CPU) — a 70B scan then fits one GPU, or a CPU with RAM for one block.
Each pass reads the checkpoint once, whatever the number of words.

The blocks are the model's own modules (transformers' decoder layer, rotary embedding, norms and
attention-mask functions of the family), built on the meta device and filled from the checkpoint, called as
the family's own forward calls them; pooling is :func:`tli.embed.pool_tokens` on the same batches as the
in-memory scan. So the figures equal the in-memory scan's (tested within 1e-4 on random models of each
family).

Supported families (``model_type`` of ``config.json``): :data:`FAMILIES`. Others are refused, naming these.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from accelerate.utils import set_module_tensor_to_device
from huggingface_hub import snapshot_download
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

from tli.embed import (
    EmbedConfig,
    EmbeddingCache,
    _length_sorted_batches,
    center_and_normalise,
    encode_words,
    pad_batch,
    pool_tokens,
)
from tli.errors import ConfigError, DataError, ModelLoadError
from tli.io import sha256_text
from tli.metrics import PairIndex
from tli.models import (
    DEFAULT_MODEL,
    backbone,
    classify_model,
    default_gguf_path,
    ensure_pad_token,
    fingerprint_dir,
    gguf_to_cached_dir,
    gguf_weights_note,
    resolve_device,
    resolve_dtype,
)
from tli.progress import Progress

FAMILIES = {
    "llama": "full",
    "qwen2": "layer_types",
    "mistral": "sliding_window",
    "gemma": "full",
}
"""``model_type`` → how the family's forward picks each block's attention mask: ``full`` (causal),
``sliding_window`` (Mistral: a sliding-window mask for every block when ``config.sliding_window`` is set),
``layer_types`` (Qwen2: ``config.layer_types[i]`` names block ``i``'s mask)."""


@dataclass
class StreamedModel:
    """A checkpoint read block by block: what a scan needs to describe it and to run it, and no weights."""

    name: str
    source: str
    fingerprint: dict[str, Any]
    tokenizer: Any
    config: Any
    """The transformers config (full depth)."""
    directory: Path
    weight_files: dict[str, str]
    """Tensor name → safetensors file (in ``directory``) that holds it."""
    prefix: str
    """What the checkpoint puts before the decoder stack's tensor names (``model.`` for causal-LM
    checkpoints)."""
    device: torch.device
    dtype: torch.dtype
    load_seconds: float = 0.0
    local_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    quantization: str = "none"
    adapter: str | None = None

    @property
    def num_layers(self) -> int:
        """Number of decoder blocks N; hidden-state indices run 0..N."""
        return int(self.config.num_hidden_layers)

    def describe(self) -> dict[str, Any]:
        """Provenance record for ``results.json`` (the same keys as
        :meth:`tli.models.LoadedModel.describe`)."""
        return {
            "name": self.name,
            "source": self.source,
            "architecture": (self.config.architectures or [self.config.model_type])[0],
            "num_hidden_layers": self.num_layers,
            "hidden_size": int(self.config.hidden_size),
            "fingerprint": self.fingerprint,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "quantization": "none",
            "weights": f"{self.extra.get('weights', 'as stored')}, streamed one block at a time",
            "adapter": None,
        }


def weight_files(directory: Path) -> dict[str, str]:
    """Tensor name → safetensors file, from ``model.safetensors.index.json`` or the single
    ``model.safetensors``.

    Raises:
        ModelLoadError: no safetensors weights (``.bin`` checkpoints cannot be read tensor by tensor).
    """
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        return dict(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
    single = directory / "model.safetensors"
    if not single.is_file():
        raise ModelLoadError(
            f"--stream reads safetensors checkpoints, and {directory} has none: convert it once with "
            "model.save_pretrained(dir, safe_serialization=True), or scan without --stream"
        )
    with safe_open(str(single), framework="pt") as handle:
        return {name: single.name for name in handle.keys()}


def _stack_prefix(names: Sequence[str]) -> str:
    for prefix in ("model.", "", "model.language_model."):
        if f"{prefix}embed_tokens.weight" in names:
            return prefix
    raise ModelLoadError("--stream: the checkpoint has no embed_tokens.weight: not a decoder-only causal LM")


def check_family(config: Any, name: str) -> str:
    """The family's ``model_type``, if the streaming scan knows it.

    Raises:
        ConfigError: another family (the message names the supported ones).
    """
    family = getattr(config, "model_type", None)
    if family not in FAMILIES:
        raise ConfigError(
            f"--stream: {name} is a {family!r} model; the streaming scan knows {', '.join(FAMILIES)} — scan "
            "it in "
            "memory (drop --stream), with --device-map auto when it is larger than one device"
        )
    return family


def _local_directory(spec: str | None) -> tuple[Path, str, str, dict[str, Any], str]:
    """``(directory, name, source, fingerprint, weights note)`` of a model spec (local dir, GGUF or hub
    id)."""
    spec = str(spec) if spec is not None else DEFAULT_MODEL
    kind = classify_model(spec)
    if kind in ("default", "gguf"):
        gguf_path = default_gguf_path() if kind == "default" else Path(spec).expanduser().resolve()
        directory, digest = gguf_to_cached_dir(gguf_path)
        name = spec if kind == "default" else str(gguf_path)
        return (
            directory,
            name,
            "gguf",
            {"sha256": digest, "kind": "gguf-file"},
            gguf_weights_note(directory, gguf_path),
        )
    if kind == "local":
        directory = Path(spec).expanduser().resolve()
        return directory, str(directory), "local", fingerprint_dir(directory), "as stored"
    try:
        directory = Path(
            snapshot_download(
                spec, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]
            )
        )
    except Exception as exc:  # offline, unknown id, gated repository
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"cannot fetch {spec!r} for --stream: {first} (the machine may be offline: download it first, "
            "then "
            "pass the local directory)"
        ) from exc
    return (
        directory,
        spec,
        "hub",
        {"sha256": sha256_text(f"{spec}@{directory.name}"), "kind": "hub-revision"},
        "as stored",
    )


def open_streamed(
    model: str | None = None,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> StreamedModel:
    """Read a model's config, tokenizer and checkpoint index (no weights) for :func:`embed_streamed`.

    Raises:
        ModelLoadError: no such model, or no safetensors weights.
        ConfigError: a family the streaming scan does not know, a bad dtype or device.
    """
    start = time.perf_counter()
    directory, name, source, fingerprint, weights = _local_directory(model)
    torch_device = resolve_device(device)
    compute_dtype = resolve_dtype(dtype, torch_device, "embed")
    try:
        config = AutoConfig.from_pretrained(directory, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=trust_remote_code)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot read model {name!r} for --stream: {first}") from exc
    check_family(config, name)
    ensure_pad_token(tokenizer)
    files = weight_files(directory)
    return StreamedModel(
        name=name,
        source=source,
        fingerprint=fingerprint,
        tokenizer=tokenizer,
        config=config,
        directory=directory,
        weight_files=files,
        prefix=_stack_prefix(list(files)),
        device=torch_device,
        dtype=compute_dtype,
        load_seconds=time.perf_counter() - start,
        local_dir=str(directory),
        extra={"full_num_layers": int(config.num_hidden_layers), "weights": weights},
    )


def read_tensors(streamed: StreamedModel, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The named tensors (full names), each shard opened once and closed again, so no file stays mapped."""
    by_file: dict[str, list[str]] = {}
    for name in names:
        if name not in streamed.weight_files:
            raise ModelLoadError(
                f"--stream: tensor {name} is missing from the checkpoint in {streamed.directory}"
            )
        by_file.setdefault(streamed.weight_files[name], []).append(name)
    tensors = {}
    for file, wanted in by_file.items():
        with safe_open(str(streamed.directory / file), framework="pt") as handle:
            for name in wanted:
                tensors[name] = handle.get_tensor(name)
    return tensors


def materialise(module: torch.nn.Module, checkpoint_prefix: str, streamed: StreamedModel) -> torch.nn.Module:
    """Give a module built with empty weights its parameters from the checkpoint (``checkpoint_prefix`` +
    name), in the compute dtype on the compute device; its buffers (built for real: Gemma's embedding scale,
    rotary frequencies) move along. Returns it, ready to run."""
    names = list(module.state_dict())
    tensors = read_tensors(streamed, [checkpoint_prefix + name for name in names])
    for name in names:
        value = tensors.pop(checkpoint_prefix + name)
        set_module_tensor_to_device(module, name, streamed.device, value=value, dtype=streamed.dtype)
    for name, buffer in list(module.named_buffers()):
        if not buffer.is_meta and buffer.device != streamed.device:
            set_module_tensor_to_device(module, name, streamed.device)
    return module


def release(module: torch.nn.Module) -> None:
    """Send a block's parameters back to the meta device (their memory is freed)."""
    for name, _ in list(module.named_parameters()):
        set_module_tensor_to_device(module, name, "meta")  # the last reference: freed at once


def _skeleton(streamed: StreamedModel):
    """The decoder stack with parameters on the meta device (no memory) and real buffers, from the config."""
    with init_empty_weights():
        lm = AutoModelForCausalLM.from_config(streamed.config, dtype=streamed.dtype)
    return backbone(lm)


def _mask_kinds(streamed: StreamedModel) -> list[str]:
    """Each block's attention mask (``full`` | ``sliding``), as the family's own forward chooses it."""
    config, rule = streamed.config, FAMILIES[streamed.config.model_type]
    n = streamed.num_layers
    if rule == "layer_types" and getattr(config, "layer_types", None):
        return ["sliding" if kind == "sliding_attention" else "full" for kind in config.layer_types[:n]]
    if rule == "sliding_window" and getattr(config, "sliding_window", None) is not None:
        return ["sliding"] * n
    return ["full"] * n


@dataclass
class _Batch:
    rows: list[int]
    attention: torch.Tensor
    weights: torch.Tensor
    position_ids: torch.Tensor
    hidden: torch.Tensor
    """``(B, T, H)`` hidden state of the last index computed, kept on the CPU between blocks."""


def embed_streamed(
    words: Sequence[str],
    streamed: StreamedModel,
    config: EmbedConfig | None = None,
    *,
    progress: bool | None = None,
    desc: str = "streaming scan",
) -> torch.Tensor:
    """Pooled, L2-normalised embeddings of ``words`` at every hidden-state index, one block in memory at a
    time.

    The same tokenisation, length-sorted batches, right padding and pooling as
    :func:`tli.embed.embed_all_layers`.

    Returns:
        ``(layers, len(words), hidden)`` float32 on CPU, in the order of ``words``.
    """
    config = config or EmbedConfig()
    if not words:
        raise DataError("nothing to embed: the word list is empty")
    encoded = encode_words(words, streamed.tokenizer, config)
    stack = _skeleton(streamed)
    n_layers, device, prefix = streamed.num_layers, streamed.device, streamed.prefix
    result = torch.empty((n_layers + 1, len(words), streamed.config.hidden_size))
    kinds = _mask_kinds(streamed)
    mask_functions = {"full": create_causal_mask, "sliding": create_sliding_window_causal_mask}
    rotary = stack.rotary_emb.to(device)

    with torch.inference_mode(), Progress(n_layers + 1, desc, enabled=progress) as bar:
        # hidden_states[0]: the embedding table (Gemma's scaling lives in its embedding module).
        embed = materialise(stack.embed_tokens, f"{prefix}embed_tokens.", streamed)
        batches = []
        for rows in _length_sorted_batches(encoded, config.batch_size):
            ids, attention, weights = pad_batch(
                [encoded[i] for i in rows], streamed.tokenizer.pad_token_id, device
            )
            hidden = embed(ids)
            result[0, rows] = pool_tokens(hidden, weights).cpu()
            positions = torch.arange(ids.shape[1], device=device).unsqueeze(0)
            batches.append(_Batch(rows, attention, weights, positions, hidden.to("cpu")))
        release(embed)
        bar.update(1)

        # hidden_states[i + 1] = block i (hidden_states[i]); the last one after the final norm.
        norm = materialise(stack.norm, f"{prefix}norm.", streamed)
        for i in range(n_layers):
            block = materialise(stack.layers[i], f"{prefix}layers.{i}.", streamed)
            for batch in batches:
                hidden = batch.hidden.to(device)
                mask = mask_functions[kinds[i]](
                    config=stack.config,
                    inputs_embeds=hidden,
                    attention_mask=batch.attention,
                    past_key_values=None,
                    position_ids=batch.position_ids,
                )
                out = block(
                    hidden,
                    attention_mask=mask,
                    position_ids=batch.position_ids,
                    position_embeddings=rotary(hidden, batch.position_ids),
                    use_cache=False,
                )
                out = out[0] if isinstance(out, tuple) else out
                pooled_state = norm(out) if i == n_layers - 1 else out
                result[i + 1, batch.rows] = pool_tokens(pooled_state, batch.weights).cpu()
                batch.hidden = out.to("cpu")
            release(block)
            bar.update(1)
        release(norm)
    return result.div_(result.norm(dim=-1, keepdim=True).clamp_min(1e-12))


def embed_lexicon_streamed(
    lexicon,
    streamed: StreamedModel,
    config: EmbedConfig,
    *,
    cache: EmbeddingCache | None = None,
    progress: bool | None = None,
):
    """:func:`tli.embed.embed_lexicon` for a streamed model: every distinct string of both languages in one
    pass over the checkpoint.

    Returns:
        ``(src, tgt, index)``: ``(layers, n_src, H)``, ``(layers, n_tgt, H)`` and the
        :class:`~tli.metrics.PairIndex`.
    """
    sources, targets, index = PairIndex.from_lexicon(lexicon)
    strings = list(dict.fromkeys([*sources, *targets]))
    missing = [s for s in strings if cache is None or s not in cache]
    if missing:
        fresh = embed_streamed(missing, streamed, config, progress=progress)
        computed = {s: fresh[:, i] for i, s in enumerate(missing)}
        if cache is not None:
            cache.update(computed)
    else:
        computed = {}

    def rows(words: list[str]) -> torch.Tensor:
        return torch.stack([computed[w] if w in computed else cache[w] for w in words], dim=1)

    src, tgt = rows(sources), rows(targets)
    if config.center:
        src, tgt = center_and_normalise(src), center_and_normalise(tgt)
    return src, tgt, index
