"""Run directories and provenance.

Every command writes into ``runs/<command>-<timestamp>/`` (or ``--out``). The directory is checked for
writability before any long work starts (a real write probe) and created only when the first file is written;
files are written atomically, ``results.json`` and then the ``complete`` marker last, so a directory without
``complete`` never looks finished, and every reader refuses it (:func:`require_complete`). While a command writes
a directory it holds an advisory lock on it (:func:`lock_run_dir`): a second run on the same ``--out`` refuses,
and a killed run leaves no stale lock (the kernel releases it with the process).

In-function imports: ``torch`` (its version, for provenance) and ``fcntl`` (POSIX-only advisory lock), so
:mod:`tli.config` can read a scan's choice without loading torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tli.errors import ConfigError, DataError
from tli.io import atomic_write_json
from tli.pooling import RECIPE_FIELDS
from tli.threads import threads_record

COMPLETE = "complete"
"""The marker file written last into a finished run directory."""
_held_locks: dict[str, Any] = {}

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
    if ((path / "results.json").is_file() or is_complete(path)) and not overwrite:
        raise ConfigError(
            f"{option} {path} already holds a complete run: choose another --out, or pass --overwrite to replace it"
        )
    lock_run_dir(path, option)
    if path.is_dir():
        (path / COMPLETE).unlink(missing_ok=True)  # being rewritten: not complete until this run finishes
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


def git_revision() -> str | None:
    """The commit of the tli source tree when it is a git checkout (``-dirty`` with uncommitted changes)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def provenance(command: str, config: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """What any reader needs to reproduce a result: command line, config, seed, versions, code revision,
    machine and device."""
    import torch

    return {
        "command": command,
        "argv": sys.argv,
        "config": config,
        "seed": seed,
        "versions": {"python": platform.python_version(), **package_versions()},
        "git_revision": git_revision(),
        "platform": platform.platform(),
        "devices": {
            "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available()
            else [],
            "cpu_threads": torch.get_num_threads(),
            "threads": threads_record(),
        },
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def mark_complete(out: str | os.PathLike, what: str) -> Path:
    """Write the ``complete`` marker (last, after every other file of the run)."""
    return atomic_write_json(
        Path(out) / COMPLETE, {"complete": what, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    )


def is_complete(out: str | os.PathLike) -> bool:
    return (Path(out) / COMPLETE).is_file()


def require_complete(out: str | os.PathLike, what: str, hint: str) -> None:
    """Refuse to read a run directory that was not finished (killed, or still being written).

    Raises:
        TliError: ``out`` has no ``complete`` marker.
    """
    if not is_complete(out):
        raise DataError(
            f"{out} is an incomplete {what} (no '{COMPLETE}' marker: it was interrupted or is still running); {hint}"
        )


def lock_run_dir(out: str | os.PathLike, option: str = "--out", *, shared: bool = False) -> Path:
    """Hold an advisory lock on ``out`` for the rest of this process; refuse when another process holds it.

    ``flock`` locks are released by the kernel when their process ends, so a killed run never leaves ``out``
    locked. Locking the same directory again from the same process is a no-op. ``shared``: several processes may
    hold it together (the jobs of one ``tli compare`` that each run their own training units, each of which they
    lock alone), while none may hold it alone. The lock file lives in this machine's temporary directory, so it
    guards the processes of one machine; jobs on several machines are kept apart by the units they are given.

    Raises:
        ConfigError: another tli process is writing ``out`` now.
    """
    import fcntl

    out = Path(out)
    key = str(out.resolve())
    if key in _held_locks:
        return out
    # The lock lives outside ``out`` (keyed by its path), so a run that fails before writing creates nothing.
    locks = Path(tempfile.gettempdir()) / "tli-locks"
    locks.mkdir(exist_ok=True)
    handle = open(locks / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise ConfigError(
            f"{option} {out} is being written by another tli process right now: wait for it, or choose another --out"
        ) from exc
    if not shared:  # the holder's pid, for a user who wonders who holds it
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {key}\n")
        handle.flush()
    _held_locks[key] = handle
    return out


@contextlib.contextmanager
def holding_run_dir(out: str | os.PathLike, option: str = "--out", *, shared: bool = False) -> Iterator[Path]:
    """Hold the lock of :func:`lock_run_dir` for a ``with`` block; release it after unless it was already held.

    Raises:
        ConfigError: another tli process is writing ``out`` now.
    """
    held_before = str(Path(out).resolve()) in _held_locks
    path = lock_run_dir(out, option, shared=shared)
    try:
        yield path
    finally:
        if not held_before:
            release_run_dir(path)


def release_run_dir(out: str | os.PathLike) -> None:
    """Release this process's lock on ``out`` (the API's long-lived callers; the CLI just exits)."""
    handle = _held_locks.pop(str(Path(out).resolve()), None)
    if handle is not None:
        handle.close()


def read_scan_choice(path: str | os.PathLike) -> dict[str, Any]:
    """What ``tli train --from-scan`` takes from a finished scan: its selected layer, pooling recipe and model.

    ``path`` is a ``tli scan`` directory or a ``tli run`` directory (its ``scan/``).

    Returns:
        ``{"path", "selected_layer", "recipe": {pooling, center, template, add_bos, bos_token}, "model"}``.

    Raises:
        DataError: not a scan directory, an unfinished one, or a ``results.json`` without a selected layer.
    """
    directory = Path(path)
    if (directory / "scan" / "results.json").is_file() and not (directory / "layers.csv").is_file():
        directory = directory / "scan"  # a tli run: its scan stage
    results = directory / "results.json"
    if not results.is_file():
        raise DataError(f"--from-scan {path}: not a tli scan or tli run directory (no results.json)")
    require_complete(directory, "scan", f"finish it with `tli scan --out {directory}` (or --overwrite)")
    try:
        record = json.loads(results.read_text(encoding="utf-8"))
        config, layer = record.get("config") or {}, int(record["selected_layer"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"--from-scan {path}: {results} has no selected layer ({type(exc).__name__})"
        ) from exc
    return {
        "path": str(directory),
        "selected_layer": layer,
        "recipe": {k: config[k] for k in RECIPE_FIELDS if k in config},
        "model": config.get("model"),
    }
