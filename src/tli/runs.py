"""Run directories and provenance.

Every command writes into ``runs/<command>-<timestamp>/`` (or ``--out``). The directory is checked for
writability before any long work starts and created only when the first file is written; files are
written atomically, and ``results.json`` is written last, so its presence marks a complete run.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from tli.errors import ConfigError

TRACKED_PACKAGES = (
    "tli",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "bitsandbytes",
    "safetensors",
    "gguf",
    "numpy",
    "scipy",
    "scikit-learn",
)


def default_run_dir(command: str) -> Path:
    """``runs/<command>-<YYYYmmdd-HHMMSS>`` under the current directory."""
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_writable(path: str | os.PathLike, option: str = "--out") -> Path:
    """Fail early (before loading models or training) if ``path`` cannot become a run directory.

    A real write probe (a temporary file created and removed in the nearest existing directory) catches
    what permission bits do not: read-only or pseudo file systems (``/proc``), a full disk.
    """
    import tempfile

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a directory: choose another path")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option} {path}: {probe} is not a directory; choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".tli-write-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{option} {path}: cannot write in {probe} ({reason}); choose a writable directory"
        ) from exc
    return path


def prepare_run_dir(path: str | os.PathLike, *, overwrite: bool = False, option: str = "--out") -> Path:
    """:func:`check_writable`, and refuse to write over a complete run (one with ``results.json``) unless
    ``overwrite``: a second run into the same directory must not silently replace the first."""
    path = check_writable(path, option)
    if (path / "results.json").is_file() and not overwrite:
        raise ConfigError(
            f"{option} {path} already holds a complete run: choose another --out, or pass --overwrite to replace it"
        )
    return path


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results."""
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(command: str, config: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """What any reader needs to reproduce a result: command line, config, seed, versions, machine."""
    return {
        "command": command,
        "argv": sys.argv,
        "config": config,
        "seed": seed,
        "versions": {"python": platform.python_version(), **package_versions()},
        "platform": platform.platform(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
