"""Where a plan's architecture comes from: a local directory, a ``config.json``, a ``.gguf`` file or a known
name whose public config ships with tli (``tli/data/model_configs``) — never the weights.

In-function import: ``transformers`` (reading a GGUF file's config), only for a ``.gguf`` model.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from tli.architecture import Architecture, architecture_from_config
from tli.errors import ConfigError
from tli.io import cache_dir, sha256_file

# Known names → shipped config file (tli/data/model_configs/<file>); aliases are lower case.
KNOWN_MODELS = {
    "qwen2-72b": "qwen2-72b.json",
    "llama-3-70b": "llama-3-70b.json",
    "lugha-llama-8b-wura": "lugha-llama-8b-wura.json",
    "smollm2-135m": "smollm2-135m.json",
}
ALIASES = {
    "qwen/qwen2-72b": "qwen2-72b",
    "meta-llama-3-70b": "llama-3-70b",
    "meta-llama/meta-llama-3-70b": "llama-3-70b",
    "lugha-llama/lugha-llama-8b-wura": "lugha-llama-8b-wura",
    "smollm2-135m-instruct": "smollm2-135m",
    "huggingfacetb/smollm2-135m": "smollm2-135m",
    "huggingfacetb/smollm2-135m-instruct": "smollm2-135m",
    "default": "smollm2-135m",
}


def known_models() -> dict[str, Path]:
    """Shipped configs by name (``tli/data/model_configs``)."""
    root = files("tli") / "data" / "model_configs"
    return {name: Path(str(root / file)) for name, file in KNOWN_MODELS.items()}


def gguf_config(path: Path) -> dict[str, Any]:
    """The config.json a GGUF file stands for: tli's converted copy when cached, else from the file's metadata.

    Raises:
        ConfigError: a file transformers cannot read as GGUF.
    """
    cached = cache_dir() / "gguf" / sha256_file(path)[:32] / "config.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).to_dict()
    except Exception as exc:  # the GGUF reader raises many types for a file it cannot parse
        raise ConfigError(f"--model {path}: not a readable GGUF file ({str(exc).splitlines()[0]})") from exc


def load_architecture(model: str | Path) -> Architecture:
    """Read a model's architecture from a directory, a config.json, a .gguf file or a known name (never its weights).

    Raises:
        ConfigError: no such path / unknown name (lists the known ones) / no config.json / bad JSON /
            unsupported family.
    """
    spec = str(model)
    path = Path(spec).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise ConfigError(
                f"--model {spec}: no config.json in this directory (pass a Hugging Face model directory, "
                f"its config.json, or one of: {', '.join(KNOWN_MODELS)})"
            )
        name = path.resolve().name
    elif path.is_file() and path.suffix.lower() == ".gguf":
        return architecture_from_config(gguf_config(path), path.stem, str(path))
    elif path.is_file():
        config_path, name = path, path.resolve().parent.name
    else:
        key = ALIASES.get(spec.lower(), spec.lower())
        if key not in KNOWN_MODELS:
            raise ConfigError(
                f"--model {spec}: not a directory, a config.json or a known name "
                f"(known: {', '.join(KNOWN_MODELS)}; aliases: {', '.join(ALIASES)})"
            )
        config_path, name = known_models()[key], key
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config_path}: not a readable JSON config ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a JSON object (a Hugging Face config.json)")
    return architecture_from_config(raw, name, str(config_path))
