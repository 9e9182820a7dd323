"""PEFT adapters attached to a loaded model (trainable or frozen), checked to be resident on the model's
devices.

In-function import: ``peft`` (see :mod:`tli.models.parts`), only when an adapter is attached.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from tli.errors import ConfigError, ModelLoadError


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
            from peft import PeftModel

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
