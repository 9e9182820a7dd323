"""Atomic file writes, fingerprints, JSON Lines reading and tli's cache directory.

Every result file is written to a temporary file in the same directory and renamed into place, so an
interrupted run never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import platformdirs

from tli.errors import DataError
from tli.limits import json_too_deep, nesting_message


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename).

    The file gets the permissions any other tool would give it (``0666`` minus the umask), not the
    owner-only mode of the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN/inf are written as null)."""
    return atomic_write_text(path, json.dumps(_finite(obj), indent=2, ensure_ascii=False) + "\n")


def atomic_write_csv(
    path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: list[str]
) -> Path:
    """Write dict rows as CSV atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row.get(key) for key in fieldnames})
    return atomic_write_text(path, buffer.getvalue())


def replace_dir_atomically(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Fill a fresh temporary sibling of ``target`` with ``write(tmp)``, then swap it in by renaming.

    A crash while writing leaves the previous ``target`` (or none) and a stray temporary directory, never
    a half-written ``target``. The temporary name carries the process id, so two processes never write into
    one. The previous ``target`` is renamed aside before the new one takes its place and deleted after, so
    a crash between the two renames leaves both complete directories on disk.
    """
    target = Path(target)
    remove_stale_siblings(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def remove_stale_siblings(target: Path) -> list[Path]:
    """Delete the temporary siblings of ``target`` that killed processes left (their process id is gone)."""
    removed = []
    for sibling in target.parent.glob(f".{target.name}.*-*"):
        kind, _, pid = sibling.name[len(target.name) + 2 :].partition("-")
        if kind in ("tmp", "old") and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """SHA-256 hex digest of a UTF-8 string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JsonLinesError(DataError):
    """A JSON Lines file that cannot be read: ``path``, the 1-based ``line`` (None for the whole file) and
    the ``problem`` alone, so a caller can name the file its own way; ``str()`` is ``path:line: problem``."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path, self.line, self.problem = Path(path), line, problem
        super().__init__(f"{path}:{line}: {problem}" if line is not None else f"{path}: {problem}")


def numbered_json_lines(path: str | os.PathLike, text: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSON Lines file (UTF-8, a BOM dropped).

    Args:
        text: the file's content when the caller has already read it (size limits of its own).

    Raises:
        JsonLinesError: an unreadable file, a line that is not valid JSON, nests too deep, or is not an object.
    """
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise JsonLinesError(path, None, f"cannot read it ({exc})") from exc
    rows = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        if json_too_deep(line) is not None:
            raise JsonLinesError(path, number, nesting_message())
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JsonLinesError(path, number, f"not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise JsonLinesError(path, number, f"expected a row object, got {type(row).__name__}")
        rows.append((number, row))
    return rows


def read_json_lines(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file, one per non-blank line (see :func:`numbered_json_lines`).

    Raises:
        JsonLinesError: names the file and the line of the first problem.
    """
    return [row for _, row in numbered_json_lines(path)]


def cache_dir() -> Path:
    """Where converted models and retrieval indexes are cached: ``$TLI_CACHE_DIR`` or the platform's user
    cache dir."""
    if env := os.environ.get("TLI_CACHE_DIR"):
        return Path(env)
    return Path(platformdirs.user_cache_dir("tli"))


def _finite(obj: Any) -> Any:
    """Replace float NaN/inf by None recursively, so the JSON stays standard."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, Mapping):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj
