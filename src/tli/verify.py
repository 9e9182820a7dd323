"""``tli verify RUN_DIR``: check that a finished run still says what its files say.

For any run directory tli wrote (scan, train, evaluate, run, compare):

1. **complete** — the run finished (its ``complete`` marker);
2. **fingerprints** — the model files and the lexicon file still hash to what ``results.json`` recorded;
3. **statistics** (evaluations, also inside ``tli run``) — every per-group figure is re-derived from
   ``pairs.csv`` (means, changes, t-tests, Wilcoxon, Cohen's d, the cluster t-test on source words) and every claim's
   adjusted p-value and verdict re-derived from the recorded raw p-values with the recorded correction;
   over several seeds, every figure and claim of the summary (``tli run``'s top-level ``results.json``,
   ``evaluate/results.json``) re-derived from the per-seed results (:func:`tli.evaluate.aggregate`);
   on a ``tli compare`` run, each cell's scores from its prediction rows and every comparison, its summary over
   seeds and the claims from the prediction files (:func:`tli.compare.analyse`, the function the run called);
4. **reports** — every ``report.md`` equals the report its writer makes from the run's ``results.json``, so each
   figure a report shows is a figure checked above;
5. **adapter** — a TLI adapter still loads on its recorded base model, checked by fingerprint (``load_model=False``
   skips this, e.g. for a 70B base); a task adapter of ``tli compare`` (PEFT files without ``tli_adapter.json``)
   has a config and weights that can be read.

Differences are listed one per line; none means the run verifies.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from tli.adapter import ADAPTER_META, load_adapted
from tli.claims import Claim, judge
from tli.compare import analyse, parse_experiment
from tli.compare.cell_store import read_rows
from tli.compare.report import compare_report
from tli.compare.schema import Cell
from tli.errors import DataError, TliError
from tli.evaluate import aggregate
from tli.io import sha256_file
from tli.models import fingerprint_dir
from tli.report import evaluation_report, run_report, scan_report, seeds_summary_report
from tli.runs import require_complete
from tli.scan import ScanResult
from tli.stats import paired_stats
from tli.tasks import get_task

TOLERANCE = 1e-6
"""Relative tolerance of re-derived figures (CSV text round-trips floats to ~1e-16; statistics to 1e-12)."""


@dataclass
class Verification:
    """What was checked and what differs."""

    run: str
    kind: str
    checked: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "kind": self.kind,
            "ok": self.ok,
            "checked": self.checked,
            "differences": self.differences,
        }


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return (
            a is b
            or (a is None and isinstance(b, float) and math.isnan(b))
            or (b is None and isinstance(a, float) and math.isnan(a))
        )
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=1e-12)
    return a == b


def check_fingerprints(record: dict[str, Any], report: Verification) -> None:
    """The model's files and the lexicon file hash as recorded."""
    model = record.get("model") or {}
    fingerprint = model.get("fingerprint") or {}
    name = model.get("name")
    if fingerprint.get("kind") == "gguf-file" and name and name != "default" and Path(name).is_file():
        actual = sha256_file(name)
        report.checked.append(f"model file {name}")
        if actual != fingerprint.get("sha256"):
            report.differences.append(
                f"model file {name}: sha256 {actual[:12]} ≠ recorded {fingerprint.get('sha256', '?')[:12]}"
            )
    elif fingerprint.get("kind") in ("content", "metadata") and name and Path(name).is_dir():
        actual = fingerprint_dir(Path(name))
        report.checked.append(f"model directory {name}")
        if actual["sha256"] != fingerprint.get("sha256"):
            report.differences.append(
                f"model directory {name}: fingerprint {actual['sha256'][:12]} ≠ recorded {fingerprint['sha256'][:12]}"
            )
    lexicon = record.get("lexicon") or {}
    path = lexicon.get("path")
    if path and lexicon.get("file_sha256") and Path(path).is_file():
        actual = sha256_file(path)
        report.checked.append(f"lexicon file {path}")
        if actual != lexicon["file_sha256"]:
            report.differences.append(
                f"lexicon file {path}: sha256 {actual[:12]} ≠ recorded {lexicon['file_sha256'][:12]}"
            )


def _pairs(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


ENTRY_FIGURES = (
    "n",
    "mean_pre",
    "mean_post",
    "change",
    "t",
    "p_ttest",
    "p_wilcoxon",
    "cohens_d",
    "n_clusters",
    "p_cluster",
)


def check_statistics(directory: Path, record: dict[str, Any], report: Verification) -> None:
    """Re-derive every evaluation entry from ``pairs.csv`` and every claim's adjusted p and verdict."""
    pairs_file = directory / "pairs.csv"
    if not pairs_file.is_file():
        report.differences.append(f"{pairs_file} is missing: the per-pair figures cannot be re-derived")
        return
    rows = _pairs(pairs_file)
    for entry in record.get("evaluation", []):
        mine = [r for r in rows if r["group"] == entry["group"] and int(r["layer"]) == int(entry["layer"])]
        where = f"{entry['group']} / layer {entry['layer']}"
        if len(mine) < 2:
            report.differences.append(f"{where}: {len(mine)} pair(s) in pairs.csv, {entry['n']} recorded")
            continue
        for key, pre_col, post_col, figures in (
            ("similarity", "sim_pre", "sim_post", ENTRY_FIGURES),
            ("centred gap", "centered_gap_pre", "centered_gap_post", ()),
        ):
            if pre_col not in mine[0]:
                continue
            stats = paired_stats(
                [float(r[pre_col]) for r in mine],
                [float(r[post_col]) for r in mine],
                clusters=[r["source"] for r in mine],
                n_boot=100,
            ).to_dict()
            if key == "centred gap":
                stats = {
                    "centered_gap_pre": stats["mean_pre"],
                    "centered_gap_post": stats["mean_post"],
                    "centered_gap_change": stats["change"],
                    "p_centered_gap": stats["p"],
                }
                figures = tuple(stats)
            for figure in figures:
                if figure in entry and not _close(stats[figure], entry[figure]):
                    report.differences.append(
                        f"{where}, {figure}: re-derived {stats[figure]!r} ≠ recorded {entry[figure]!r}"
                    )
        report.checked.append(f"evaluation entry {where}")
    claims = record.get("claims", [])
    statistics = record.get("statistics", {})
    if claims and "p" in claims[0] and "n_seeds" not in claims[0]:
        rebuilt = [
            Claim(
                **{
                    k: c[k]
                    for k in Claim.__dataclass_fields__
                    if k in c and k not in ("p_adjusted", "verdict")
                }
            )
            for c in claims
        ]
        judge(rebuilt, correction=statistics.get("correction", "holm"), alpha=statistics.get("alpha", 0.05))
        for recorded, again in zip(claims, rebuilt, strict=True):
            if not _close(again.p_adjusted, recorded.get("p_adjusted")) or again.verdict != recorded.get(
                "verdict"
            ):
                report.differences.append(
                    f"claim '{recorded['claim']}': re-derived p_adjusted {again.p_adjusted:.4g} / {again.verdict} ≠ "
                    f"recorded {recorded.get('p_adjusted')} / {recorded.get('verdict')}"
                )
        report.checked.append(f"{len(claims)} claims (adjusted p-values and verdicts)")


# --- what the reports show: figures over seeds, comparisons, the report text -----------------------------------

MAX_DIFFERENCES = 20
"""Differences listed per compared file (a changed report or tree can differ everywhere)."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def compare_figures(label: str, recorded: Any, again: Any, out: list[str]) -> None:
    """Append ``"<label>.key[i]: re-derived X ≠ recorded Y"`` for every leaf that differs (floats to
    :data:`TOLERANCE`), walking dicts and lists the same way."""
    if len(out) >= MAX_DIFFERENCES:
        return
    if isinstance(recorded, dict) and isinstance(again, dict):
        for key in dict.fromkeys([*recorded, *again]):
            if key not in recorded or key not in again:
                side = "re-derived" if key in again else "recorded"
                out.append(f"{label}.{key}: only in the {side} figures")
                continue
            compare_figures(f"{label}.{key}", recorded[key], again[key], out)
        return
    if isinstance(recorded, list) and isinstance(again, list):
        if len(recorded) != len(again):
            out.append(f"{label}: {len(again)} re-derived entries ≠ {len(recorded)} recorded")
            return
        for i, (a, b) in enumerate(zip(recorded, again, strict=True)):
            compare_figures(f"{label}[{i}]", a, b, out)
        return
    if not _close(again, recorded):
        out.append(f"{label}: re-derived {_shown(again)} ≠ recorded {_shown(recorded)}")


def _entry_name(entry: dict[str, Any]) -> str:
    if "group" in entry and "layer" in entry and "kind" not in entry:
        return f" ({entry['group']} / layer {entry['layer']})"
    if "claim" in entry:
        return f" ({_shown(entry['claim'])})"
    return ""


def compare_rows(label: str, recorded: list[dict], again: list[dict], report: Verification) -> None:
    """Row by row (each named by what it is about), the figures of ``recorded`` against ``again``."""
    found: list[str] = []
    if len(recorded) != len(again):
        found.append(f"{label}: {len(again)} re-derived rows ≠ {len(recorded)} recorded")
    for i, (row, other) in enumerate(zip(recorded, again, strict=False)):
        compare_figures(f"{label}[{i}]{_entry_name(row)}", row, other, found)
    report.differences += found


def _seed_results(directory: Path) -> dict[int, dict[str, Any]]:
    """The per-seed evaluation results under ``directory``, by seed (each evaluation directory has pairs.csv)."""
    found: dict[int, dict[str, Any]] = {}
    for evaluation in _evaluation_dirs(directory):
        sub = json.loads((evaluation / "results.json").read_text(encoding="utf-8"))
        if "seed" in sub and "evaluation" in sub:
            found.setdefault(int(sub["seed"]), sub)
    return found


def check_across_seeds(directory: Path, record: dict[str, Any], report: Verification) -> None:
    """A summary over seeds (``tli run``, ``tli evaluate`` of several adapters): its ``evaluation`` and ``claims``
    re-derived from the per-seed results by the function that made them (:func:`tli.evaluate.aggregate`), and
    its ``per_seed`` copies equal to the per-seed files."""
    per_seed = record.get("per_seed")
    if not per_seed or "evaluation" not in record:
        return
    name = f"{directory / 'results.json'}"
    available = _seed_results(directory)
    seeds = [int(entry["seed"]) for entry in per_seed]
    missing = [seed for seed in seeds if seed not in available]
    if missing:
        report.differences.append(f"{name}: no per-seed results for seed(s) {', '.join(map(str, missing))}")
        return
    results = [available[seed] for seed in seeds]
    again = aggregate(results)
    compare_rows(f"{name} evaluation", record["evaluation"], again["evaluation"], report)
    compare_rows(f"{name} claims", record.get("claims", []), again["claims"], report)
    for entry, seed_record in zip(per_seed, results, strict=True):
        for key in ("evaluation", "claims"):
            label = f"{name} per_seed (seed {entry['seed']}) {key}"
            compare_rows(label, entry.get(key, []), seed_record[key], report)
    report.checked.append(
        f"{name}: figures over seeds {', '.join(map(str, seeds))} re-derived from the per-seed results"
    )


def rendered_report(directory: Path, record: dict[str, Any]) -> str | None:
    """The ``report.md`` the run's writer makes from this ``results.json`` (None for runs without one)."""
    command = record.get("command")
    if command == "compare":
        return compare_report(record)
    if command == "scan":
        return scan_report_of(record)
    if command == "run":
        scan_file = directory / "scan" / "results.json"
        if not scan_file.is_file():
            return None
        return run_report(record, scan_result_of(json.loads(scan_file.read_text(encoding="utf-8"))))
    if command == "evaluate" and "evaluation" in record:
        return seeds_summary_report(record) if "per_seed" in record else evaluation_report(record)
    return None


def scan_result_of(record: dict[str, Any]):
    """The :class:`tli.scan.ScanResult` a scan's ``results.json`` holds."""
    return ScanResult(**{f.name: record[f.name] for f in dataclasses.fields(ScanResult) if f.name in record})


def scan_report_of(record: dict[str, Any]) -> str:
    return scan_report(scan_result_of(record))


def check_report(directory: Path, record: dict[str, Any], report: Verification) -> None:
    """``report.md`` is the report its writer makes from ``results.json``: every figure it shows is a figure
    of the results (which the other checks re-derive from the files they came from)."""
    path = directory / "report.md"
    if not path.is_file():
        return
    try:
        again = rendered_report(directory, record)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        report.differences.append(
            f"{path}: cannot be re-derived from results.json ({type(exc).__name__}: {exc})"
        )
        return
    if again is None:
        return
    shown = path.read_text(encoding="utf-8")
    if shown == again:
        report.checked.append(f"{path}: every line re-derived from results.json")
        return
    lines, expected = shown.splitlines(), again.splitlines()
    for number, (line, other) in enumerate(zip(lines, expected, strict=False), start=1):
        if line != other:
            at = next((k for k, (a, b) in enumerate(zip(line, other, strict=False)) if a != b), None)
            at = min(len(line), len(other)) if at is None else at
            start = max(0, at - 30)
            report.differences.append(
                f"{path} line {number}, column {at + 1}: …{line[start : at + 40]!r} ≠ re-derived "
                f"…{other[start : at + 40]!r}"
            )
            return
    report.differences.append(f"{path}: {len(lines)} lines ≠ {len(expected)} re-derived lines")


def _relocated(value: str | None, directory: Path) -> str | None:
    """A path a cell recorded, inside this run directory: the run may have been moved or copied since."""
    if not value:
        return value
    parts = Path(value).parts
    for i, part in enumerate(parts):
        if part == "runs" and (directory / Path(*parts[i:])).exists():
            return str(directory / Path(*parts[i:]))
    return value


def check_comparison(directory: Path, record: dict[str, Any], report: Verification) -> None:
    """A ``tli compare`` run: each cell's scores re-derived from its prediction rows (the task's
    ``corpus_score``), then every comparison, its summary over seeds and the claims re-derived from the
    prediction files by :func:`tli.compare.analyse` — the function the run itself called, so verification
    follows the statistics whatever they become."""
    name = directory / "results.json"
    try:
        experiment = parse_experiment(directory / "experiment.yaml", check_device=False, check_files=False)
    except TliError as exc:
        report.differences.append(f"{directory / 'experiment.yaml'}: cannot be read ({exc})")
        return
    cells = []
    for raw in record.get("cells", []):
        cell = Cell(**raw)
        cell.predictions = _relocated(cell.predictions, directory)
        cell.run, cell.qrels = _relocated(cell.run, directory), _relocated(cell.qrels, directory)
        cells.append(cell)
    found: list[str] = []
    for i, cell in enumerate(cells):
        if cell.status != "done" or not cell.predictions:
            continue
        if not Path(cell.predictions).is_file():
            found.append(f"{name} cells[{i}]: {cell.predictions} is missing")
            continue
        rows, task = read_rows(cell.predictions), get_task(cell.task)
        where = f"{name} cells[{i}] ({cell.system or cell.strategy}, {cell.task} {cell.language}, seed {cell.seed})"
        if len(rows) != cell.n:
            found.append(f"{where}.n: {len(rows)} prediction rows ≠ recorded {cell.n}")
        for metric, figure in cell.metrics.items():
            if metric in task.metrics and rows:
                score = task.corpus_score(metric, rows, experiment.tasks.get(cell.task))
                compare_figures(f"{where}.metrics.{metric}.score", figure.get("score"), score, found)
    report.differences += found
    report.checked.append(f"{name}: {len(cells)} cells' scores re-derived from their prediction files")
    again = analyse(experiment, cells)
    for key in ("comparisons", "comparisons_per_seed", "claims"):
        compare_rows(f"{name} {key}", record.get(key, []), again[key], report)
    report.checked.append(
        f"{name}: {len(again['comparisons'])} comparisons and {len(again['claims'])} claims re-derived from the "
        "prediction files (tli.compare.analyse)"
    )


def check_adapter(adapter: Path, report: Verification) -> None:
    """A TLI adapter loads on its recorded base model (fingerprint-checked)."""
    try:
        load_adapted(adapter)
    except TliError as exc:
        report.differences.append(f"adapter {adapter}: {exc}")
        return
    report.checked.append(f"adapter {adapter} loads on its recorded base model")


def check_peft_files(adapter: Path, report: Verification) -> None:
    """``adapter_config.json`` parses and every tensor of ``adapter_model.safetensors`` can be read."""
    try:
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as weights:
            n_tensors = sum(1 for key in weights.keys() if weights.get_tensor(key) is not None)
    except Exception as exc:  # JSON, I/O and safetensors errors: each is a difference to report
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.differences.append(f"task adapter {adapter}: unreadable ({first})")
        return
    report.checked.append(
        f"task adapter {adapter}: {config.get('peft_type', 'PEFT')} config and {n_tensors} tensors readable"
    )


def _adapters(directory: Path, record: dict[str, Any]) -> list[Path]:
    """Adapters inside the run, and the ones an evaluation recorded (they live in the training run)."""
    found = {
        p.parent for p in directory.glob("**/adapter/adapter_config.json") if "checkpoints" not in p.parts
    }
    recorded = [record.get("adapter")] + [seed.get("adapter") for seed in record.get("per_seed", [])]
    found |= {Path(a["path"]) for a in recorded if isinstance(a, dict) and a.get("path")}
    return sorted(found)


def _evaluation_dirs(directory: Path) -> list[Path]:
    return sorted({p.parent for p in directory.glob("**/pairs.csv")})


def _results_files(directory: Path) -> list[Path]:
    """Every ``results.json`` of the run (its own and its parts': scan, per-seed and summary evaluations)."""
    files = [
        p for p in directory.glob("**/results.json") if "checkpoints" not in p.relative_to(directory).parts
    ]
    return sorted(files, key=lambda p: (len(p.relative_to(directory).parts), str(p)))


def verify(run: str | Path, *, load_model: bool = True) -> Verification:
    """Verify a finished run directory (see the module docstring).

    Raises:
        TliError: ``run`` is not a directory tli wrote, or it is incomplete.
    """
    directory = Path(run)
    results = directory / "results.json"
    if not results.is_file():
        raise DataError(f"{directory}: no results.json — not a run directory tli wrote")
    record = json.loads(results.read_text(encoding="utf-8"))
    kind = record.get("command", "run")
    require_complete(directory, f"{kind} run", "rerun it (or resume it) before verifying")
    report = Verification(str(directory), kind, checked=[f"{directory} is complete"])
    check_fingerprints(record, report)
    for evaluation in _evaluation_dirs(directory):
        sub = json.loads((evaluation / "results.json").read_text(encoding="utf-8"))
        check_statistics(evaluation, sub, report)
    if kind == "compare":
        check_comparison(directory, record, report)
    for results_file in _results_files(directory):
        sub = json.loads(results_file.read_text(encoding="utf-8"))
        check_across_seeds(results_file.parent, sub, report)
        check_report(results_file.parent, sub, report)
    for adapter in _adapters(directory, record):
        if not (adapter / ADAPTER_META).is_file():
            check_peft_files(adapter, report)  # a task adapter: its files, no model needed
        elif load_model:
            check_adapter(adapter, report)
    return report


def format_verification(report: Verification) -> str:
    lines = [
        f"{report.run} ({report.kind}): "
        + ("verified" if report.ok else f"{len(report.differences)} difference(s)")
    ]
    lines += [f"  ok   {item}" for item in report.checked]
    lines += [f"  DIFF {item}" for item in report.differences]
    return "\n".join(lines)


__all__ = ["Verification", "format_verification", "verify"]
