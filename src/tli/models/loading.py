"""Loading a model and its tokenizer (:func:`load_model`): what ``--model`` names, the device, the dtype, the
quantisation and the placement, then everything recorded in :class:`LoadedModel`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tli.errors import ConfigError, ModelLoadError, TliError
from tli.io import sha256_text
from tli.models.adapters import attach_adapter
from tli.models.fingerprint import fingerprint_dir
from tli.models.gguf import default_gguf_path, gguf_to_cached_dir, gguf_weights_note
from tli.models.memory import warn_if_weights_cannot_fit
from tli.models.nf4 import _check_quantization_supported, _quantization_config, use_portable_nf4_kernels
from tli.models.parts import base_causal_lm, ensure_pad_token, input_device
from tli.models.truncated import _load_first_blocks, _num_layers_in_config, blocks_for_layer
from tli.placement import check_trainable_placement, device_map_summary, placement_kwargs

DEFAULT_MODEL = "default"


DTYPES = {
    "auto": None,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


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


def classify_model(spec: str) -> str:
    """What a model spec names — ``default``, ``gguf``, ``local`` (a HF directory) or ``hub`` — without loading it.

    Raises:
        ModelLoadError: a local path that does not exist or cannot be a model (no ``config.json``, not GGUF).
    """
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


def _sharded_training(purpose: str) -> bool:
    """Training under an FSDP or DeepSpeed launch: the library places (and shards) the weights."""
    if purpose != "train":
        return False
    flags = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")
    return any(os.environ.get(flag, "false").lower() == "true" for flag in flags)


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


@dataclass
class _Checkpoint:
    """Where a model's weights are read from, and how they are identified (phase 2 of :func:`load_model`)."""

    local_dir: Path | None
    """The local Hugging Face directory (a converted GGUF's cache directory); None for a hub id."""
    fingerprint: dict[str, Any]
    source: str
    """``gguf``, ``local`` or ``hub``."""
    location: str
    """What ``from_pretrained`` reads: the directory or the hub id."""
    weights: str
    """How the weights are held (as stored, dequantised from GGUF, quantised on load)."""


def _compute_dtype(dtype: str, quantization: str, device: torch.device, purpose: str) -> torch.dtype:
    """The dtype the model computes in: ``--dtype``, or with NF4 and ``auto`` bfloat16 for training and
    float32 for embeddings (see :func:`load_model`)."""
    if quantization == "nf4" and dtype == "auto":
        return torch.bfloat16 if purpose == "train" else torch.float32
    return resolve_dtype(dtype, device, purpose)


def _locate(spec: str, kind: str, quantization: str) -> _Checkpoint:
    """The checkpoint a classified model spec names: a GGUF file is converted once into a cached directory."""
    if kind in ("default", "gguf"):
        gguf_path = default_gguf_path() if kind == "default" else Path(spec).expanduser()
        local_dir, digest = gguf_to_cached_dir(gguf_path)
        found = _Checkpoint(
            local_dir,
            {"sha256": digest, "kind": "gguf-file"},
            "gguf",
            str(local_dir),
            gguf_weights_note(local_dir, gguf_path),
        )
    elif kind == "local":
        local_dir = Path(spec).expanduser()
        found = _Checkpoint(local_dir, fingerprint_dir(local_dir), "local", str(local_dir), "as stored")
    else:
        found = _Checkpoint(None, {}, "hub", spec, "as stored")
    if quantization != "none":
        found.weights = f"{found.weights}, quantised to {quantization} on load"
    return found


def _blocks_to_load(
    full_depth: int | None, num_hidden_layers: int | None, up_to_layer: int | None
) -> tuple[int | None, bool]:
    """``(num_hidden_layers, truncated)``: the blocks ``hidden_states[up_to_layer]`` needs (checked against
    the model's depth ``full_depth``), and whether fewer blocks than the model has are read."""
    if up_to_layer is not None:
        if full_depth is not None and not 0 <= up_to_layer <= full_depth:
            raise ConfigError(
                f"--target-layer {up_to_layer} is beyond the model: hidden-state indices run 0..{full_depth}"
            )
        if full_depth is None or up_to_layer < full_depth:
            num_hidden_layers = blocks_for_layer(up_to_layer)
    truncated = num_hidden_layers is not None and (full_depth is None or num_hidden_layers < full_depth)
    return num_hidden_layers, truncated


@dataclass(frozen=True)
class _LoadRequest:
    """The keyword arguments of :func:`load_model` (documented there), handed whole to each loading phase."""

    adapter: str | os.PathLike | None
    dtype: str
    device: str
    quantization: str
    num_hidden_layers: int | None
    up_to_layer: int | None
    trust_remote_code: bool
    adapter_trainable: bool
    purpose: str
    device_map: str | dict[str, Any] | None
    max_memory: str | dict[Any, Any] | None
    offload_folder: str | os.PathLike | None


def _name_the_model(model: str | os.PathLike | None) -> tuple[str, str]:
    """``(spec, kind)`` (phase 1 of :func:`load_model`): the spec names a local model by its absolute path, so
    the name still finds it from another directory; ``kind`` is :func:`classify_model`'s."""
    spec = str(model) if model is not None else DEFAULT_MODEL
    kind = classify_model(spec)
    if kind in ("local", "gguf"):
        spec = str(Path(spec).expanduser().resolve())
    return spec, kind


def _check_options(request: _LoadRequest) -> tuple[torch.device, torch.dtype]:
    """``(device, compute dtype)`` once the options are known to work together on this machine (phase 1).

    Raises:
        ConfigError: ``device`` and ``device_map`` both given, a device or quantisation this machine lacks, or
            ``num_hidden_layers`` below 1.
    """
    if request.device_map is not None and request.device not in ("auto", None):
        raise ConfigError(
            f"--device {request.device} and --device-map {request.device_map}: choose one (a device map places "
            "every layer itself)"
        )
    torch_device = resolve_device(request.device)
    _check_quantization_supported(request.quantization, torch_device)
    compute_dtype = _compute_dtype(request.dtype, request.quantization, torch_device, request.purpose)
    if request.num_hidden_layers is not None and request.num_hidden_layers < 1:
        raise ConfigError(f"num_hidden_layers must be >= 1, got {request.num_hidden_layers}")
    return torch_device, compute_dtype


def _from_pretrained_kwargs(
    found: _Checkpoint,
    spec: str,
    request: _LoadRequest,
    torch_device: torch.device,
    compute_dtype: torch.dtype,
    blocks: int | None,
) -> tuple[dict[str, Any], Any]:
    """``(kwargs of from_pretrained, quantisation config or None)``: dtype, quantisation and device
    placement, checked against the devices' memory (``blocks``: the blocks read when truncated, else None)."""
    quantization, purpose, device_map = request.quantization, request.purpose, request.device_map
    kwargs: dict[str, Any] = {"trust_remote_code": request.trust_remote_code, "dtype": compute_dtype}
    quant_config = _quantization_config(quantization, compute_dtype, sharded=_sharded_training(purpose))
    if quant_config is not None:
        kwargs["quantization_config"] = quant_config
        kwargs["device_map"] = {"": torch_device}
        if quantization == "nf4":
            kwargs["dtype"] = torch.float32  # the non-quantised parameters (see load_model's docstring)
    if device_map is not None:
        kwargs.update(
            placement_kwargs(
                found.location,
                device_map,
                request.max_memory,
                request.offload_folder,
                dtype=kwargs["dtype"],
                quantized=quant_config is not None,
                num_hidden_layers=blocks,
                trust_remote_code=request.trust_remote_code,
            )
        )
        if purpose == "train":
            check_trainable_placement(kwargs["device_map"])
    if device_map is None and found.local_dir is not None:
        warn_if_weights_cannot_fit(found.local_dir, torch_device, kwargs["dtype"], quantization, blocks, spec)
    return kwargs, quant_config


def _read_weights(
    found: _Checkpoint,
    spec: str,
    kwargs: dict[str, Any],
    num_hidden_layers: int | None,
    truncated: bool,
    trust_remote_code: bool,
) -> tuple[Any, Any]:
    """``(tokenizer, model)`` read from the checkpoint (only the first blocks when ``truncated``); any
    failure of the libraries becomes one :class:`ModelLoadError` that says what to do."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(found.location, trust_remote_code=trust_remote_code)
        with _quiet_skipped_layers_report(truncated):
            if truncated:
                lm = _load_first_blocks(found.location, num_hidden_layers, kwargs)
            else:
                if num_hidden_layers is not None:
                    kwargs["num_hidden_layers"] = num_hidden_layers
                lm = AutoModelForCausalLM.from_pretrained(found.location, **kwargs)
    except TliError:
        raise
    except Exception as exc:  # corrupt files raise many types (SafetensorError, HeaderTooLarge, …)
        hint = (
            "the machine may be offline: download it first, then pass the local directory"
            if found.source == "hub"
            else "check that the directory holds a complete, uncorrupted checkpoint"
        )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model {spec!r}: {first} ({hint})") from exc
    return tokenizer, lm


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

    Phases: check the options (``_name_the_model``, ``_check_options``), locate the checkpoint (``_locate``),
    choose the blocks to read (``_blocks_to_load``), the ``from_pretrained`` arguments
    (``_from_pretrained_kwargs``), read the weights (``_read_weights``), place them (``_place``), then describe
    the result and attach the adapter (``_loaded``).

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
            read; the final norm becomes the identity, so ``hidden_states[i]`` for ``i <= num_hidden_layers``
            equal the full model's).
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
    request = _LoadRequest(
        adapter=adapter, dtype=dtype, device=device, quantization=quantization,
        num_hidden_layers=num_hidden_layers, up_to_layer=up_to_layer, trust_remote_code=trust_remote_code,
        adapter_trainable=adapter_trainable, purpose=purpose, device_map=device_map, max_memory=max_memory,
        offload_folder=offload_folder,
    )  # fmt: skip
    # Check the options: what the spec names, the device and the compute dtype.
    spec, kind = _name_the_model(model)
    torch_device, compute_dtype = _check_options(request)
    # Locate the checkpoint and choose the blocks to read.
    found = _locate(spec, kind, quantization)
    full_depth = _num_layers_in_config(found.location, trust_remote_code)
    blocks, truncated = _blocks_to_load(full_depth, num_hidden_layers, up_to_layer)
    # Read the weights with the dtype, quantisation and placement chosen, then place them.
    kwargs, quant_config = _from_pretrained_kwargs(
        found, spec, request, torch_device, compute_dtype, blocks if truncated else None
    )
    tokenizer, lm = _read_weights(found, spec, kwargs, blocks, truncated, trust_remote_code)
    _place(lm, request, quant_config, torch_device)
    return _loaded(lm, tokenizer, spec, found, request, torch_device, compute_dtype, full_depth, start)


def _place(lm: Any, request: _LoadRequest, quant_config: Any, torch_device: torch.device) -> None:
    """Put the model on one device, unless quantised (already placed), spread by a device map or sharded by FSDP /
    DeepSpeed; then evaluation mode (phase 4 of :func:`load_model`)."""
    if quant_config is None and request.device_map is None and not _sharded_training(request.purpose):
        # (FSDP / DeepSpeed place the shards themselves: the weights stay where transformers loaded them — the
        # CPU, or meta on all but one process with FSDP's RAM-efficient loading.)
        lm.to(torch_device)
    elif request.quantization == "nf4":
        use_portable_nf4_kernels(lm)
    lm.eval()


def _loaded(
    lm: Any,
    tokenizer: Any,
    spec: str,
    found: _Checkpoint,
    request: _LoadRequest,
    device: torch.device,
    dtype: torch.dtype,
    full_depth: int | None,
    start: float,
) -> LoadedModel:
    """The :class:`LoadedModel` (phase 5 of :func:`load_model`): a hub model's fingerprint from its revision, a
    pad token, the device map's summary, and the adapter attached, unmerged."""
    fingerprint = found.fingerprint
    if found.source == "hub":
        revision = getattr(lm.config, "_commit_hash", None) or ""
        fingerprint = {"sha256": sha256_text(f"{spec}@{revision}"), "kind": "hub-revision"}
    ensure_pad_token(tokenizer)
    extra: dict[str, Any] = {"full_num_layers": full_depth, "weights": found.weights}
    if request.device_map is not None:
        device = input_device(lm)
        extra["device_map"] = device_map_summary(getattr(lm, "hf_device_map", {}) or {})
    if request.adapter is not None:
        lm = attach_adapter(lm, request.adapter, trainable=request.adapter_trainable)
    return LoadedModel(
        model=lm,
        tokenizer=tokenizer,
        name=spec,
        source=found.source,
        fingerprint=fingerprint,
        device=device,
        dtype=dtype,
        quantization=request.quantization,
        adapter=str(request.adapter) if request.adapter is not None else None,
        load_seconds=time.perf_counter() - start,
        local_dir=str(found.local_dir) if found.local_dir is not None else None,
        extra=extra,
    )
