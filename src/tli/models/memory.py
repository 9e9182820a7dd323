"""Will a model's weights fit: their bytes from config.json alone (:mod:`tli.architecture`) against the memory
the device has, warned about before loading.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from tli.architecture import architecture_from_config, nf4_weight_bytes, weight_bytes
from tli.errors import TliError

log = logging.getLogger(__name__)


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
