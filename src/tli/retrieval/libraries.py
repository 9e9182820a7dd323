"""The retrieval libraries tli builds on, imported on first use with a one-line error when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from tli.errors import ConfigError

PACKAGES = {"ranx": "ranx", "bm25s": "bm25s", "sentence_transformers": "sentence-transformers"}


def need(module: str) -> ModuleType:
    """``import module`` or a ConfigError naming the package to install.

    Raises:
        ConfigError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = PACKAGES.get(module.split(".")[0], module.split(".")[0])
        raise ConfigError(
            f"retrieval needs {package}, which is not installed: pip install {package}"
        ) from exc


def sentence_transformers_parts() -> tuple[ModuleType, ModuleType, ModuleType]:
    """``(modules, losses, training_args)`` of sentence-transformers (6.x paths, or the older ones)."""
    need("sentence_transformers")
    try:
        return (
            importlib.import_module("sentence_transformers.sentence_transformer.modules"),
            importlib.import_module("sentence_transformers.sentence_transformer.losses"),
            importlib.import_module("sentence_transformers.sentence_transformer.training_args"),
        )
    except ImportError:  # sentence-transformers < 6
        return (
            importlib.import_module("sentence_transformers.models"),
            importlib.import_module("sentence_transformers.losses"),
            importlib.import_module("sentence_transformers.training_args"),
        )
