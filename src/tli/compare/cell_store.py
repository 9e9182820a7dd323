"""Where the cells of a ``tli compare`` run live on disk, and when a finished one is reused.

Layout under ``OUT/runs/<model>/<strategy>/seed-<k>/``::

    train.json                  cost of preparing and fine-tuning (written when training is complete)
    adapter/                    what the fine-tuning changed (LoRA family; full weights only when asked)
    <task>-<language>/cell.json  one cell's scores and cost (written last: a cell with it is complete)
    <task>-<language>/predictions.jsonl  the per-example rows {"id", "prediction", "reference", scores...}
    <task>-<language>/run.trec, qrels.trec  retrieval cells: the TREC run and qrels behind every figure

Rerunning an experiment skips complete cells and reloads a trained adapter instead of training again — when they
were made with the same settings: each cell records the parts of the experiment that made it (``settings`` and
their SHA-256 ``fingerprint``; :meth:`Experiment.cell_settings`), and a unit its training settings in
``train.json``. A cell or unit whose settings changed since is recomputed, and the run says which and what
changed (``budget.steps 2 → 3``); the others are reused.

Used by both runners (:mod:`tli.compare.runner`, :mod:`tli.compare.retrieval_runner`) and by ``tli verify``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from tli.compare.schema import Cell
from tli.io import atomic_write_json, atomic_write_text, sha256_text
from tli.retrieval.trec import write_qrels, write_run

log = logging.getLogger(__name__)


def slug(name: str) -> str:
    """A directory name for a model spec (``default``, a path's last part, a hub id with ``__``)."""
    text = Path(name).name if Path(name).exists() else name.replace("/", "__")
    return re.sub(r"[^\w.+-]", "_", text) or "model"


def unit_dir(out: Path, model: str, strategy: str, seed: int) -> Path:
    return out / "runs" / slug(model) / strategy / f"seed-{seed}"


def cell_dir(unit: Path, task: str, language: str) -> Path:
    return unit / f"{task}-{language}"


def fingerprint(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings as canonical JSON (sorted keys)."""
    return sha256_text(json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def describe_changes(old: dict[str, Any] | None, new: dict[str, Any], limit: int = 4) -> str:
    """``budget.steps 2 → 3, task_options.limit 9 → 12``: what differs between two settings."""
    if not old:
        return "made without recorded settings (an earlier tli)"
    before, after = _flat(old), _flat(new)
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k, "—") != after.get(k, "—")]
    shown = [f"{k} {before.get(k, '—')!s:.40} → {after.get(k, '—')!s:.40}" for k in keys[:limit]]
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(shown) + more if shown else "settings differ"


def read_cell(path: Path) -> Cell | None:
    """A complete cell from disk, or None."""
    record = path / "cell.json"
    if not record.is_file():
        return None
    return Cell.from_dict(json.loads(record.read_text(encoding="utf-8")))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The per-example rows of a cell."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class Recomputed:
    """The finished cells and trained units a rerun recomputes because their settings changed, said once each."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def note(self, what: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        line = f"{what}: {describe_changes(old, new)}"
        self.items.append(line)
        log.warning("warning: recomputing %s (made with other settings)", line)

    def reusable(self, where: Path, settings: dict[str, Any], what: str) -> Cell | None:
        """The complete cell at ``where`` if it was made with ``settings``; otherwise None (a stale one noted)."""
        cell = read_cell(where)
        if cell is None or cell.status != "done":
            return None
        if cell.fingerprint == fingerprint(settings):
            return cell
        self.note(what, cell.settings, settings)
        return None

    def check_unit(self, unit: Path, settings: dict[str, Any], what: str, stale: tuple[str, ...]) -> None:
        """A unit trained with other settings is trained again: its ``stale`` directories and ``train.json``
        are removed (its cells, made with the old unit, are recomputed as their settings differ too)."""
        saved = unit / "train.json"
        if not saved.is_file():
            return
        record = json.loads(saved.read_text(encoding="utf-8"))
        if record.get("fingerprint") == fingerprint(settings):
            return
        self.note(f"{what} (training)", record.get("settings"), settings)
        for name in stale:
            shutil.rmtree(unit / name, ignore_errors=True)
        saved.unlink()


def failed_cell(
    model: str | None,
    strategy: str | None,
    seed: int | None,
    task: str,
    language: str,
    system: str | None,
    exc: BaseException,
) -> Cell:
    """A cell that could not be scored: ``status: failed`` with the error's first line (logged as a warning)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = f"{model} / {system or strategy} / seed {seed} / {task} ({language})"
    log.warning("warning: %s failed: %s", where, message)
    return Cell(
        model=model,
        strategy=strategy,
        task=task,
        language=language,
        seed=seed,
        status="failed",
        error=message,
        system=system,
    )


def write_cell(
    where: Path,
    result: Any,
    *,
    task: str,
    language: str,
    model: str | None,
    strategy: str | None,
    seed: int | None,
    cost: dict[str, Any],
    settings: dict[str, Any],
    system: str | None = None,
    tracker: Any = None,
) -> Cell:
    """Write a scored cell: its per-example rows, for a retrieval cell (``system``) its TREC run and qrels,
    then ``cell.json`` last (a cell with it is complete); return the cell.

    ``result``: a task's result (``predictions``, ``n``, ``metrics``; retrieval: ``run``, ``qrels``,
    ``details``). ``settings``: what made the cell (recorded with its fingerprint, so a rerun reuses it only
    unchanged).
    """
    where.mkdir(parents=True, exist_ok=True)
    predictions = where / "predictions.jsonl"
    atomic_write_text(
        predictions, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in result.predictions)
    )
    retrieval: dict[str, Any] = {}
    if system is not None:
        run = write_run(where / "run.trec", result.run, tag=system.replace(":", "_").replace("+", "_"))
        qrels = write_qrels(where / "qrels.trec", result.qrels)
        retrieval = {"system": system, "run": str(run), "qrels": str(qrels), "details": result.details}
    cell = Cell(
        model=model,
        strategy=strategy,
        task=task,
        language=language,
        seed=seed,
        status="done",
        n=result.n,
        metrics={name: score.to_dict() for name, score in result.metrics.items()},
        cost=cost,
        predictions=str(predictions),
        fingerprint=fingerprint(settings),
        settings=settings,
        **retrieval,
    )
    atomic_write_json(where / "cell.json", cell.to_dict())
    if tracker is not None:
        tracker.log_cell(cell)
    return cell
