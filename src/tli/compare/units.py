"""Training units: the independent, resumable pieces of a ``tli compare`` run, and choosing some of them.

A *training unit* is one (model, strategy, seed): the strategy is prepared and fine-tuned once, then scored on
every task-language of the experiment. Units share nothing but the experiment file, so a cluster runs them as
separate jobs (``--only UNIT`` — an id or a pattern such as ``*/full/*`` — or ``--shard i/N``, one per array
task) into the same ``--out`` and a last job writes the comparisons from the finished cells (``--collect``). A
unit's id is its directory under
``OUT/runs/`` (:func:`tli.compare.cell_store.unit_dir`): ``<model slug>/<strategy>/seed-<k>``.

Which cells a unit needs, and whether they are finished with the experiment's current settings, is read from
the cells on disk (:mod:`tli.compare.cell_store`), so ``--collect`` can name exactly what is missing.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from tli.compare.cell_store import cell_dir, fingerprint, read_cell, slug, unit_dir
from tli.compare.schema import Experiment
from tli.errors import ConfigError


@dataclass(frozen=True)
class TrainingUnit:
    """One (model, strategy, seed) of an experiment."""

    model: str
    strategy: str
    seed: int

    @property
    def id(self) -> str:
        """``<model slug>/<strategy>/seed-<k>``: the unit's directory under ``OUT/runs/``."""
        return f"{slug(self.model)}/{self.strategy}/seed-{self.seed}"

    def directory(self, out: Path) -> Path:
        return unit_dir(out, self.model, self.strategy, self.seed)


def training_units(experiment: Experiment) -> list[TrainingUnit]:
    """Every unit, in the order a one-process run trains them (models, then strategies, then seeds)."""
    return [
        TrainingUnit(model, spec.name, seed)
        for model in experiment.models
        for spec in experiment.strategies
        for seed in experiment.seeds
    ]


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` → ``(i, N)`` with ``1 <= i <= N`` (array task ``i`` of ``N``).

    Raises:
        ConfigError: any other form.
    """
    match = _SHARD.match(str(text))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ConfigError(f"--shard {text!r}: write i/N with 1 <= i <= N (e.g. --shard 2/8)")
    return int(match[1]), int(match[2])


def select_units(
    units: list[TrainingUnit], *, only: list[str] | None = None, shard: str | None = None
) -> list[TrainingUnit]:
    """The units named by ``only`` (ids or shell-style patterns such as ``*/full/*``, in the experiment's order),
    then shard ``i`` of ``N`` of them: every ``N``-th unit starting at the ``i``-th, so the ``N`` shards partition
    the units and each gets models of every size.

    Raises:
        ConfigError: an id or pattern that names no unit of the experiment (the closest ids are suggested), or a
            bad shard.
    """
    if only:
        ids = [unit.id for unit in units]
        unmatched = [name for name in only if not fnmatch.filter(ids, name)]
        if unmatched:
            close = difflib.get_close_matches(unmatched[0], ids, n=3)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else "tli compare EXPERIMENT --list-cells lists them"
            )
            raise ConfigError(f"--only {unmatched[0]}: the experiment has no such training unit; {hint}")
        units = [unit for unit in units if any(fnmatch.fnmatchcase(unit.id, name) for name in only)]
    if shard is not None:
        index, count = parse_shard(shard)
        units = units[index - 1 :: count]
    return units


def unfinished_cells(experiment: Experiment, out: Path, unit: TrainingUnit) -> list[str]:
    """The unit's task-language cells that have no ``cell.json`` made with the experiment's current settings
    (a recorded failure counts as finished: the report shows it)."""
    missing = []
    for task, language in experiment.strategy_task_languages():
        settings = experiment.cell_settings(unit.model, unit.strategy, unit.seed, task, language)
        cell = read_cell(cell_dir(unit.directory(out), task, language))
        if cell is None or (cell.status == "done" and cell.fingerprint != fingerprint(settings)):
            missing.append(f"{task}-{language}")
    return missing


def missing_units(experiment: Experiment, out: Path) -> dict[str, list[str]]:
    """Unit id → its unfinished cells, for every unit that has any."""
    found = {}
    for unit in training_units(experiment):
        if cells := unfinished_cells(experiment, out, unit):
            found[unit.id] = cells
    return found


def refuse_missing(experiment: Experiment, out: Path) -> None:
    """``--collect`` only from finished units.

    Raises:
        ConfigError: naming the unfinished units (the first few) and how many there are.
    """
    missing = missing_units(experiment, out)
    if not missing:
        return
    shown = "; ".join(f"{unit} ({', '.join(cells)})" for unit, cells in list(missing.items())[:4])
    more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
    raise ConfigError(
        f"--collect: {len(missing)} of {len(training_units(experiment))} training units of {out} are not finished: "
        f"{shown}{more}; run them (--only UNIT or --shard i/N) first"
    )
