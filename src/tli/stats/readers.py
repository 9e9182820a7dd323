"""Per-pair files of ``tli stats``: CSV, JSON (a list of rows, or ``{'per_pair': [...]}``) and JSON Lines, read
into paired samples per group (and pooled), with every problem named by file, line and column.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tli.errors import ConfigError
from tli.io import JsonLinesError, numbered_json_lines
from tli.limits import MAX_TABLE_BYTES, MAX_WORD_CHARS, json_too_deep, nesting_message, too_big, too_long
from tli.stats.paired import PairedStats, paired_stats


class _Default(str):
    """A default column choice: tolerant (falls back to none) where an explicit name is strict.

    It is a ``str`` so that it prints as its first candidate (``--help`` shows ``group``), but only
    this exact object is tolerant: an explicit ``"group"`` for a file without that column is an error.
    """

    candidates: tuple[str, ...]

    def __new__(cls, *candidates: str) -> _Default:
        obj = super().__new__(cls, candidates[0])
        obj.candidates = candidates
        return obj

    def __copy__(self) -> _Default:
        return self  # copies (e.g. of a config dataclass) must stay the tolerant default

    def __deepcopy__(self, memo) -> _Default:
        return self


DEFAULT_GROUP = _Default("group")
"""Default of ``group=``: the ``group`` column when the file has one, else no grouping."""


DEFAULT_CLUSTER = _Default("source", "swahili")
"""Default of ``cluster=``: the ``source`` (else ``swahili``) column when present, else no clusters."""


_FORMATS = (
    "accepted formats: .csv with a header row, .json (a list of row objects or an object with a "
    "'per_pair' list), .jsonl (one object per line)"
)


class PairedSamples(NamedTuple):
    """Paired scores of one group read from a file: ``pre``, ``post`` ``(n,)`` and cluster labels."""

    pre: np.ndarray
    post: np.ndarray
    clusters: np.ndarray | None


def _rows_csv(path: Path, text: str) -> tuple[list[str], list[tuple[str, dict]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = list(reader.fieldnames or [])
    if not columns:
        raise ConfigError(f"{path}: empty CSV file (no header row)")
    rows = [(f"line {reader.line_num}", row) for row in reader]
    return columns, rows


def _json_error(path: Path, where: str, what: str) -> ConfigError:
    return ConfigError(f"{path}, {where}: {what}; {_FORMATS}")


def _rows_json(path: Path, text: str, lines: bool) -> tuple[list[str], list[tuple[str, dict]]]:
    rows: list[tuple[str, Any]] = []
    if lines:
        try:
            rows = [(f"line {number}", row) for number, row in numbered_json_lines(path, text)]
        except JsonLinesError as exc:
            raise _json_error(path, f"line {exc.line}", exc.problem) from exc
    else:
        if (deep := json_too_deep(text)) is not None:
            raise _json_error(path, f"line {deep}", nesting_message())
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _json_error(path, f"line {exc.lineno}", f"not valid JSON ({exc.msg})") from exc
        if isinstance(data, dict) and isinstance(data.get("per_pair"), list):
            data = data["per_pair"]
        if not isinstance(data, list):
            what = "expected a list of row objects or an object with a 'per_pair' list"
            raise _json_error(path, "line 1", what)
        rows = [(f"row {k}", row) for k, row in enumerate(data, start=1)]
    columns: dict[str, None] = {}  # ordered union of keys
    for where, row in rows:
        if not isinstance(row, dict):
            raise _json_error(path, where, f"expected a row object, got {type(row).__name__}")
        columns.update(dict.fromkeys(map(str, row)))
    return list(columns), rows


def _load_rows(path: Path) -> tuple[list[str], list[tuple[str, dict]]]:
    """Columns and ``(location, row)`` pairs of a CSV, JSON or JSONL file."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl"):
        raise ConfigError(f"{path}: unsupported file type {suffix or '(no suffix)'!r}; {_FORMATS}")
    try:
        if problem := too_big(path.stat().st_size, MAX_TABLE_BYTES):
            raise ConfigError(f"{path}: the file {problem}; a per-pair file holds one row per pair")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read {suffix[1:].upper()} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason}); {_FORMATS}") from exc
    if suffix == ".csv":
        return _rows_csv(path, text)
    return _rows_json(path, text, lines=suffix == ".jsonl")


def _choose_columns(spec, columns: list[str], path: Path, option: str, single: bool) -> list[str]:
    """Column names for ``group`` / ``cluster``: [] for none; a default picks its first present candidate."""
    if spec is None:
        return []
    if isinstance(spec, _Default):
        return [c for c in spec.candidates if c in columns][:1]
    names = [name.strip() for name in str(spec).split(",") if name.strip()]
    if single and len(names) > 1:
        raise ConfigError(f"{option} must name one column, got {spec!r}")
    missing = [name for name in names if name not in columns]
    if missing:
        raise ConfigError(
            f"{path}: {option} column(s) {', '.join(map(repr, missing))} not found; "
            f"available columns: {', '.join(map(repr, columns))}"
        )
    return names


def _label(path: Path, where: str, col: str, value) -> str:
    """A group or cluster label: text of at most :data:`tli.limits.MAX_WORD_CHARS` characters."""
    text = "" if value is None else str(value)
    if problem := too_long(text, MAX_WORD_CHARS):
        raise ConfigError(f"{path}, {where}, column {col!r}: the label {problem}")
    return text


def _number(path: Path, where: str, col: str, cell) -> float:
    try:
        v = float(cell)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        shown = repr(cell) if len(repr(cell)) <= 60 else repr(cell)[:57] + "..."
        raise ConfigError(f"{path}, {where}, column {col!r}: expected a finite number, got {shown}")
    return v


def read_grouped(
    path, *, pre: str, post: str, group, cluster
) -> tuple[dict[tuple[str, ...], PairedSamples], int]:
    """Rows grouped by the values of the group columns (tuple keys) and the number of group columns.

    See :func:`read_paired` for the file formats and the ``group`` / ``cluster`` choices.
    """
    path = Path(path)
    columns, rows = _load_rows(path)
    missing = [c for c in (pre, post) if c not in columns]
    if missing:
        raise ConfigError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"available columns: {', '.join(map(repr, columns))}"
        )
    group_columns = _choose_columns(group, columns, path, "group", single=False)
    cluster_columns = _choose_columns(cluster, columns, path, "cluster", single=True)
    data: dict[tuple[str, ...], tuple[list[float], list[float], list[str]]] = {}
    for where, row in rows:
        a, b = (_number(path, where, col, row.get(col)) for col in (pre, post))
        label = ""
        if cluster_columns:
            label = _label(path, where, cluster_columns[0], row.get(cluster_columns[0]))
            if not label:
                raise ConfigError(
                    f"{path}, {where}, column {cluster_columns[0]!r}: empty cluster label; "
                    "fill it or disable clusters (cluster=None)"
                )
        key = tuple(_label(path, where, g, row.get(g)) for g in group_columns) or ("all",)
        bucket = data.setdefault(key, ([], [], []))
        bucket[0].append(a)
        bucket[1].append(b)
        bucket[2].append(label)
    if not data:
        raise ConfigError(f"{path}: no data rows (columns: {', '.join(columns)})")
    out = {
        key: PairedSamples(np.asarray(a), np.asarray(b), np.asarray(c) if cluster_columns else None)
        for key, (a, b, c) in data.items()
    }
    return out, len(group_columns)


def read_paired(
    path,
    *,
    pre: str = "sim_pre_tli",
    post: str = "sim_post_tli",
    group: str | None = DEFAULT_GROUP,
    cluster: str | None = DEFAULT_CLUSTER,
) -> dict[str, PairedSamples]:
    """Read paired scores, grouped, from a CSV, JSON or JSONL file.

    Accepted files (by suffix): ``.csv`` with a header row; ``.json`` holding a list of row objects
    or an object with a ``per_pair`` list (a ``tli evaluate`` ``results.json``); ``.jsonl`` with one
    row object per line (blank lines skipped).

    Args:
        path: the file.
        pre, post: columns of the before / after scores.
        group: comma-separated column(s) splitting rows into groups; the key joins their values with
            ``/`` (``"control/final"``). ``None`` or ``""``: one group ``"all"``. The default
            (:data:`DEFAULT_GROUP`) uses ``group`` when present and is otherwise one group; an
            explicitly named column that does not exist is an error.
        cluster: column of cluster labels (pairs sharing a label are dependent, e.g. the source word).
            ``None`` or ``""``: no clusters. The default (:data:`DEFAULT_CLUSTER`) uses ``source``, else
            ``swahili``, when present; an explicitly named column must exist.

    Returns:
        ``{group_key: PairedSamples(pre, post, clusters)}`` (groups in order of first appearance;
        ``clusters`` is ``None`` without a cluster column).

    Raises:
        ConfigError: unreadable, empty or malformed file or an unsupported suffix (file and line);
            a missing ``pre``/``post``/``group``/``cluster`` column (the message lists the available
            columns); a non-numeric / non-finite score or an empty cluster label (file, line, column).
    """
    grouped, _ = read_grouped(path, pre=pre, post=post, group=group, cluster=cluster)
    return {"/".join(key): samples for key, samples in grouped.items()}


def read_paired_csv(
    path, *, pre: str = "sim_pre_tli", post: str = "sim_post_tli", group: str | None = DEFAULT_GROUP
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`read_paired` without clusters, as ``{group_key: (pre, post)}`` (kept for compatibility)."""
    grouped = read_paired(path, pre=pre, post=post, group=group, cluster=None)
    return {key: (s.pre, s.post) for key, s in grouped.items()}


def _with_pooled(grouped: dict[tuple[str, ...], PairedSamples]) -> dict[tuple[str, ...], PairedSamples]:
    """Add pooled groups over the FIRST group column, the other columns held fixed.

    ``trained/target`` and ``control/target`` pool into ``all/target``; a row is never counted twice
    (pooling over every column would merge the target and final layers of the same pair).
    """
    by_rest: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for key in grouped:
        by_rest.setdefault(key[1:], []).append(key)
    first_values = {key[0] for key in grouped}
    pooled_name = "all" if "all" not in first_values else "all (pooled)"
    out = dict(grouped)
    for rest, keys in by_rest.items():
        if len(keys) < 2:
            continue
        parts = [grouped[k] for k in keys]
        has_clusters = all(p.clusters is not None for p in parts)
        out[(pooled_name, *rest)] = PairedSamples(
            np.concatenate([p.pre for p in parts]),
            np.concatenate([p.post for p in parts]),
            np.concatenate([p.clusters for p in parts]) if has_clusters else None,
        )
    return out


def stats_from_csv(
    path,
    *,
    pre: str = "sim_pre_tli",
    post: str = "sim_post_tli",
    group: str | None = DEFAULT_GROUP,
    cluster: str | None = DEFAULT_CLUSTER,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, PairedStats]:
    """:func:`paired_stats` for each group of :func:`read_paired` (CSV, JSON or JSONL).

    When a group column splits the rows, pooled entries are added over the first group column with
    the others fixed (``all``, or ``all/target`` and ``all/final`` for ``group="group,layer_role"``;
    named ``all (pooled)`` if a group is already called ``all``). A cluster label shared by pairs of
    two pooled groups is one cluster. Each group uses a generator derived from ``rng``.
    See :func:`read_paired` for ``group`` and ``cluster``.
    """
    grouped, n_group_columns = read_grouped(path, pre=pre, post=post, group=group, cluster=cluster)
    return stats_by_group(grouped, n_group_columns, n_boot=n_boot, rng=rng, source=path)


def stats_by_group(
    grouped: dict[tuple[str, ...], PairedSamples],
    n_group_columns: int,
    *,
    n_boot: int = 10_000,
    rng: np.random.Generator | int | None = 0,
    source: Any = "data",
) -> dict[str, PairedStats]:
    """:func:`paired_stats` of each group of :func:`read_grouped`, plus the pooled groups of
    :func:`stats_from_csv` when a group column splits the rows (``source`` names the file in errors)."""
    if n_group_columns:
        grouped = _with_pooled(grouped)
    gen = np.random.default_rng(rng)
    out: dict[str, PairedStats] = {}
    for key, samples in grouped.items():
        name = "/".join(key)
        try:
            out[name] = paired_stats(
                samples.pre, samples.post, clusters=samples.clusters, n_boot=n_boot, rng=gen
            )
        except ConfigError as exc:
            raise ConfigError(f"{source}, group {name!r}: {exc}") from exc
    return out
