"""YAML option files: the configs shipped in ``tli/configs``, reading one (keys are field names, checked
against every command), and the part of it one command uses."""

from __future__ import annotations

import dataclasses
import logging
from importlib.resources import files
from pathlib import Path
from typing import Any

from tli.config.commands import COMMANDS
from tli.errors import ConfigError
from tli.limits import read_yaml


def shipped_configs() -> dict[str, Path]:
    """Configs shipped with tli (``tli/configs/*.yaml``), by name."""
    return {
        p.name.removesuffix(".yaml"): Path(str(p))
        for p in files("tli.configs").iterdir()
        if p.name.endswith(".yaml")
    }


def load_options_file(spec: str) -> dict[str, Any]:
    """Options from a YAML file (or a shipped config's name); keys normalised to field names.

    Raises:
        ConfigError: no such file, invalid YAML (with its line), not a mapping, or a key no command knows.
    """
    path = Path(spec)
    if not path.is_file():
        path = shipped_configs().get(spec, path)
    if not path.is_file():
        raise ConfigError(
            f"--config {spec}: no such file or shipped config ({', '.join(sorted(shipped_configs()))})"
        )
    values = read_yaml(path, f"--config {path}") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value")
    options = {str(k).replace("-", "_"): v for k, v in values.items()}
    known = {f.name for cls in COMMANDS.values() for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"--config {path}: unknown option(s) {', '.join(unknown)} (no tli command has them)"
        )
    return {"__path__": str(path), **options}


def options_for(command: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of a YAML file's options that ``command`` uses; the rest is named once on stderr.

    One file serves every command (``tli scan --config quick`` ignores ``epochs``), and says what it ignored.
    """
    path = options.get("__path__", "config")
    names = {f.name for f in dataclasses.fields(COMMANDS[command])}
    used = {k: v for k, v in options.items() if k in names}
    ignored = sorted(k for k in options if k not in names and k != "__path__")
    if ignored:
        logging.getLogger("tli.config").info(
            "tli %s: --config %s: not used by this command: %s", command, path, ", ".join(ignored)
        )
    return used
