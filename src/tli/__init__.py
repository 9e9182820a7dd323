"""tli — cross-lingual lexical alignment in LLMs.

The Python API mirrors the CLI::

    import tli
    study = tli.run(out="runs/study")                          # scan → train → evaluate → report
    result = tli.scan(lexicon="pairs.csv", pooling="mean-no-special", out="runs/scan")
    trained = tli.train(lexicon="pairs.csv", target_layer=2, out="runs/train")
    report = tli.evaluate(trained.adapter, out="runs/eval")

Names are imported on first use, so ``import tli`` (and ``tli --help``) does not load torch. ``tli.scan`` is
the function even after its module ``tli.scan`` is imported (the module stays reachable as
``importlib.import_module("tli.scan")``).
"""

from __future__ import annotations

import csv
import importlib
import logging
import types
from typing import Any

# bitsandbytes, imported by PEFT whenever it is installed, warns at import that an optional CPU kernel
# package is missing; that says nothing about tli's results (and nothing at all without quantisation).
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

# A lexicon, per-pair file or dataset may hold a field of megabytes (a long phrase list, an article); Python's
# csv module refuses fields over 128 KiB by default with an error that reads like a quoting problem.
csv.field_size_limit(2**31 - 1)

_API: dict[str, str] = {
    "Lexicon": "tli.lexicon",
    "Pair": "tli.lexicon",
    "default_lexicon": "tli.lexicon",
    "read_lexicon": "tli.lexicon",
    "write_lexicon": "tli.lexicon",
    "LoadedModel": "tli.models",
    "load_model": "tli.models",
    "ScanConfig": "tli.scan",
    "ScanResult": "tli.scan",
    "scan": "tli.scan",
    "TrainConfig": "tli.train",
    "TrainResult": "tli.train",
    "train": "tli.train",
    "evaluate": "tli.evaluate",
    "run": "tli.pipeline",
    "paired_stats": "tli.stats",
    "stats_from_csv": "tli.stats",
}
__all__ = sorted(_API)


class _Package(types.ModuleType):
    """The ``tli`` module: API names resolve lazily and are never replaced by same-named submodules."""

    def __getattr__(self, name: str) -> Any:
        if name not in _API:
            raise AttributeError(f"module 'tli' has no attribute {name!r}")
        value = getattr(importlib.import_module(_API[name]), name)
        types.ModuleType.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule ``tli.scan`` sets ``tli.scan = <module>``; keep the function instead.
        if name in _API and isinstance(value, types.ModuleType):
            return
        types.ModuleType.__setattr__(self, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(_API))


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _Package
