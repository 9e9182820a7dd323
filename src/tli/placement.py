"""Where a model's weights go: Accelerate device maps over GPUs, the CPU and the disk.

``--device-map`` (a strategy of :data:`DEVICE_MAP_STRATEGIES` or a JSON file of ``{module: device}``) and
``--max-memory`` (:func:`parse_max_memory`) are read here, and a map is sized on an empty (meta-device) model
before any weight is read, so a map that does not fit says how much is missing (:func:`check_device_map`).
The command options (:mod:`tli.config`) validate with the same names; :func:`tli.models.load_model` calls
:func:`placement_kwargs`.

Heavy dependencies (``torch``, ``accelerate``, ``transformers``) are imported inside the functions that
size a map, so :mod:`tli.config` can validate ``--device-map`` / ``--max-memory`` with this module and
``tli --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tli.architecture import GIB
from tli.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
"""Accelerate's device-map strategies (``--device-map``; a JSON file of ``{module: device}`` works too)."""
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B|B)?$", re.IGNORECASE)


def parse_max_memory(text: str) -> dict[int | str, str]:
    """``"0=70GiB,1=70GiB,cpu=200GiB"`` → ``{0: "70GiB", 1: "70GiB", "cpu": "200GiB"}`` (Accelerate's
    ``max_memory``: GPUs by index, ``cpu``, ``mps``).

    Raises:
        ConfigError: an entry that is not ``DEVICE=SIZE``.
    """
    result: dict[int | str, str] = {}
    for entry in (part.strip() for part in str(text).split(",")):
        device, _, size = (x.strip() for x in entry.partition("="))
        key: int | str = int(device) if device.isdigit() else device.lower()
        if not size or not (isinstance(key, int) or key in ("cpu", "mps")) or not _SIZE.match(size):
            raise ConfigError(
                f"--max-memory {text!r}: {entry!r} is not DEVICE=SIZE (e.g. 0=70GiB,1=70GiB,cpu=200GiB)"
            )
        result[key] = size
    return result


def format_bytes(size: float) -> str:
    """``1.50 GiB``, ``12.00 MiB``, ``300.0 KiB``: binary units, as ``--max-memory`` takes them."""
    for unit, scale in (("GiB", GIB), ("MiB", 2**20)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size / 1024:.1f} KiB"


def device_map_summary(device_map: dict[str, Any]) -> dict[str, int]:
    """``{device: number of modules placed there}`` of a resolved device map (for result files)."""
    counts: dict[str, int] = {}
    for device in device_map.values():
        name = f"cuda:{device}" if isinstance(device, int) else str(device)
        counts[name] = counts.get(name, 0) + 1
    return counts


def read_device_map(device_map: str | dict[str, Any]) -> str | dict[str, Any]:
    """A device-map strategy name as is, or the ``{module: device}`` dict of a JSON file.

    Raises:
        ConfigError: an unknown name, or a file that is not a JSON object of module names to devices.
    """
    if isinstance(device_map, dict):
        return device_map
    if device_map in DEVICE_MAP_STRATEGIES:
        return device_map
    path = Path(device_map).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"--device-map {device_map}: not one of {', '.join(DEVICE_MAP_STRATEGIES)} nor a JSON file"
        )
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--device-map {path}: not a readable JSON file ({exc})") from exc
    if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
        raise ConfigError(f"--device-map {path}: expected a JSON object {{module name: device}}")
    return mapping


def resolve_max_memory(max_memory: str | dict[Any, Any] | None) -> dict[Any, int] | None:
    """``--max-memory`` as Accelerate's ``{device: bytes}``, each GPU checked against this machine.

    Raises:
        ConfigError: a size that cannot be read, or a GPU this machine does not have.
    """
    if max_memory is None:
        return None
    import torch
    from accelerate.utils import convert_file_size_to_int

    parsed = parse_max_memory(max_memory) if isinstance(max_memory, str) else dict(max_memory)
    gpus = torch.cuda.device_count()
    result: dict[Any, int] = {}
    for key, size in parsed.items():
        if isinstance(key, int) and key >= gpus:
            raise ConfigError(
                f"--max-memory names GPU {key}, but this machine has {gpus} GPU(s) "
                f"({'use cpu=SIZE' if gpus == 0 else f'GPUs 0..{gpus - 1}'})"
            )
        try:
            result[key] = convert_file_size_to_int(size) if isinstance(size, str) else int(size)
        except ValueError as exc:
            raise ConfigError(f"--max-memory {key}={size}: not a size (e.g. 70GiB, 512MB)") from exc
    return result


def placement_of(options: Any) -> dict[str, Any]:
    """``device_map``, ``max_memory`` and ``offload_folder`` of a command's options, as :func:`load_model`
    takes them (absent options are None)."""
    return {name: getattr(options, name, None) for name in ("device_map", "max_memory", "offload_folder")}


def _empty_model(location: str, dtype: torch.dtype, num_hidden_layers: int | None, trust_remote_code: bool):
    """The model's modules on the meta device (no memory, nothing read): what Accelerate sizes a map from."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    if num_hidden_layers is not None:
        config.num_hidden_layers = num_hidden_layers
    with init_empty_weights():
        return AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)


def check_device_map(
    location: str,
    device_map: str | dict[str, Any],
    max_memory: dict[Any, int] | None,
    offload_folder: str | os.PathLike | None,
    *,
    dtype: torch.dtype,
    num_hidden_layers: int | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """The ``{module: device}`` map Accelerate gives this model, refused when it needs a disk not offered.

    Strategy names are resolved as transformers does (``get_balanced_memory`` unless ``sequential``, then
    ``infer_auto_device_map`` with the model's no-split blocks), on an empty model of the weights' dtype.

    Raises:
        ConfigError: the map puts weights on ``disk`` without ``offload_folder``: the message gives the
        model's
            size, what the devices hold and how much is missing.
    """
    from accelerate.utils import (
        compute_module_sizes,
        get_balanced_memory,
        get_max_memory,
        infer_auto_device_map,
    )

    empty = _empty_model(location, dtype, num_hidden_layers, trust_remote_code)
    no_split = getattr(empty, "_no_split_modules", None) or []
    if isinstance(device_map, str):
        if device_map == "sequential":
            budget = get_max_memory(dict(max_memory) if max_memory else None)
        else:
            budget = get_balanced_memory(
                empty,
                max_memory=dict(max_memory) if max_memory else None,
                no_split_module_classes=no_split,
                dtype=dtype,
                low_zero=device_map == "balanced_low_0",
            )
        resolved = infer_auto_device_map(
            empty, max_memory=budget, no_split_module_classes=no_split, dtype=dtype
        )
    else:
        budget, resolved = get_max_memory(dict(max_memory) if max_memory else None), dict(device_map)
    on_disk = [name for name, where in resolved.items() if where == "disk"]
    if on_disk and offload_folder is None:
        sizes = compute_module_sizes(empty, dtype=dtype)
        missing = sum(sizes[name] for name in on_disk)
        held = sum(size for device, size in budget.items() if device != "disk")
        devices = ", ".join(
            f"{'cuda:' if isinstance(d, int) else ''}{d} {format_bytes(size)}" for d, size in budget.items()
        )
        raise ConfigError(
            f"--device-map {device_map if isinstance(device_map, str) else 'FILE'} does not fit: the model "
            "needs "
            f"{format_bytes(sizes[''])} in {str(dtype).replace('torch.', '')}, the devices hold "
            f"{format_bytes(held)} "
            f"({devices}), {format_bytes(missing)} of weights ({len(on_disk)} module(s)) are missing: raise "
            "--max-memory, add GPUs, load in --quantization nf4, or pass --offload-folder DIR to offload "
            "them to "
            "disk (slow)"
        )
    return resolved


def check_trainable_placement(device_map: str | dict[str, Any]) -> None:
    """Training spread over devices keeps every block in device memory: an offloaded block's weights live on
    ``meta`` between forwards, where LoRA weights cannot be created or trained.

    Raises:
        ConfigError: the map offloads to disk, or to the CPU beside GPUs.
    """
    if not isinstance(device_map, dict):
        return
    places = {str(d) for d in device_map.values()}
    gpus = {d for d in places if d not in ("cpu", "disk", "meta", "mps")}
    if "disk" in places or ("cpu" in places and gpus):
        raise ConfigError(
            "training with --device-map needs every block in device memory, but this map offloads some to "
            f"{'disk' if 'disk' in places else 'the CPU'}: raise --max-memory, load in --quantization nf4, "
            "train a lower --target-layer (fewer blocks load), or shard over processes with FSDP"
        )


def placement_kwargs(
    location: str,
    device_map: str | dict[str, Any],
    max_memory: str | dict[Any, Any] | None,
    offload_folder: str | os.PathLike | None,
    *,
    dtype: torch.dtype,
    quantized: bool,
    num_hidden_layers: int | None,
    trust_remote_code: bool,
) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for a device map (checked against the memory it is given).

    Raises:
        ConfigError: under a multi-process launcher (each process would spread its own copy over the same
        GPUs:
            use FSDP there), or a map that does not fit (see :func:`check_device_map`).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "--device-map spreads one model over the GPUs of one process; under torchrun / accelerate launch "
            "each "
            "process would place its own copy on the same GPUs: launch one process, or shard with FSDP "
            "instead"
        )
    mapping = read_device_map(device_map)
    memory = resolve_max_memory(max_memory)
    kwargs: dict[str, Any] = {}
    if quantized:  # sized by bitsandbytes inside from_pretrained: its own errors apply
        kwargs["device_map"] = mapping
    else:
        kwargs["device_map"] = check_device_map(
            location,
            mapping,
            memory,
            offload_folder,
            dtype=dtype,
            num_hidden_layers=num_hidden_layers,
            trust_remote_code=trust_remote_code,
        )
    if memory is not None and quantized:
        kwargs["max_memory"] = memory
    if offload_folder is not None:
        kwargs["offload_folder"] = str(Path(offload_folder).expanduser())
    return kwargs
