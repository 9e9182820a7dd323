"""``tli verify RUN_DIR``: check that a finished run still says what its files say.

For any run directory tli wrote (scan, train, evaluate, run, compare):

1. **complete** — the run finished (its ``complete`` marker);
2. **fingerprints** — the model files and the lexicon file still hash to what ``results.json`` recorded;
3. **statistics** (evaluations, also inside ``tli run``) — every per-group figure is re-derived from
   ``pairs.csv`` (means, changes, t-tests, Wilcoxon, Cohen's d, the cluster t-test on source words) and every claim's
   adjusted p-value and verdict re-derived from the recorded raw p-values with the recorded correction;
4. **adapter** — a TLI adapter still loads on its recorded base model, checked by fingerprint (``load_model=False``
   skips this, e.g. for a 70B base); a task adapter of ``tli compare`` (PEFT files without ``tli_adapter.json``)
   has a config and weights that can be read.

Differences are listed one per line; none means the run verifies.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tli.adapter import ADAPTER_META
from tli.errors import DataError, TliError
from tli.runs import require_complete

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
    from tli.io import sha256_file
    from tli.models import fingerprint_dir

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
    from tli.claims import Claim, judge
    from tli.stats import paired_stats

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


def check_adapter(adapter: Path, report: Verification) -> None:
    """A TLI adapter loads on its recorded base model (fingerprint-checked)."""
    from tli.adapter import load_adapted

    try:
        load_adapted(adapter)
    except TliError as exc:
        report.differences.append(f"adapter {adapter}: {exc}")
        return
    report.checked.append(f"adapter {adapter} loads on its recorded base model")


def check_peft_files(adapter: Path, report: Verification) -> None:
    """``adapter_config.json`` parses and every tensor of ``adapter_model.safetensors`` can be read."""
    from safetensors import safe_open

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
