"""tli verify checks what the reports show: the figures over seeds of a multi-seed `tli run`, every report.md,
and on a `tli compare` run the cell scores and every comparison and claim, re-derived from the files they came
from. Each test tampers with one figure (by hand, as a careless or dishonest edit would) and expects the
verification to fail naming it."""

import json
import shutil

import pytest

from tli.cli import main
from tli.verify import verify


@pytest.fixture(scope="module")
def seeds_run(tiny_model_dirs, tmp_path_factory):
    from conftest import TOY_PAIRS

    from tli.pipeline import run

    root = tmp_path_factory.mktemp("verify-seeds")
    lexicon = root / "toy.json"
    lexicon.write_text(json.dumps([{"swahili": s, "english": e} for s, e in TOY_PAIRS]))
    out = root / "run"
    run(
        str(tiny_model_dirs["llama"]),
        str(lexicon),
        out=out,
        epochs=1,
        batch_size=4,
        lr=5e-3,
        warmup_steps=1,
        n_boot=200,
        seeds=[0, 1],
        progress=False,
    )
    return out


def _copy(out, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    return copy


def _edit_json(path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))


def test_a_multi_seed_run_verifies_with_its_figures_over_seeds_and_reports(seeds_run):
    report = verify(seeds_run, load_model=False)
    assert report.ok, report.differences
    checked = "\n".join(report.checked)
    assert f"{seeds_run / 'results.json'}: figures over seeds 0, 1 re-derived" in checked
    assert f"{seeds_run / 'evaluate' / 'results.json'}: figures over seeds 0, 1 re-derived" in checked
    for report_file in ("report.md", "evaluate/report.md", "evaluate/seed-0/report.md", "scan/report.md"):
        assert f"{seeds_run / report_file}: every line re-derived from results.json" in checked


def test_raising_the_top_level_mean_post_by_001_fails_naming_the_figure(seeds_run, tmp_path, capsys):
    copy = _copy(seeds_run, tmp_path)
    recorded = json.loads((copy / "results.json").read_text())["evaluation"][0]["mean_post"]

    def raise_it(record):
        record["evaluation"][0]["mean_post"] += 0.01

    _edit_json(copy / "results.json", raise_it)
    report = verify(copy, load_model=False)
    named = [d for d in report.differences if "results.json evaluation[0]" in d and ".mean_post:" in d]
    assert len(named) == 1 and f"≠ recorded {recorded + 0.01!r}"[:30] in named[0], report.differences
    assert str(copy / "results.json") in named[0] and "evaluate/" not in named[0]
    assert main(["verify", str(copy), "--no-load-model"]) == 1
    assert ".mean_post: re-derived" in capsys.readouterr().out


@pytest.mark.parametrize(
    "where, change, named",
    [
        (
            "results.json",
            lambda r: r["claims"][2].update(effect=r["claims"][2]["effect"] + 0.01),
            "claims[2]",
        ),
        (
            "results.json",
            lambda r: r["claims"][0].update(
                verdict="supported" if r["claims"][0]["verdict"] != "supported" else "contradicted"
            ),
            "claims[0]",
        ),
        (
            "results.json",
            lambda r: r["evaluation"][1].update(change_sd=r["evaluation"][1]["change_sd"] + 0.01),
            "evaluation[1]",
        ),
        (
            "results.json",
            lambda r: r["per_seed"][1]["evaluation"][0].update(mean_post=0.5),
            "per_seed (seed 1) evaluation[0]",
        ),
        (
            "evaluate/results.json",
            lambda r: r["evaluation"][0].update(centered_gap_change=1.0),
            "evaluation[0]",
        ),
    ],
)
def test_each_figure_over_seeds_is_checked(seeds_run, tmp_path, where, change, named):
    copy = _copy(seeds_run, tmp_path)
    _edit_json(copy / where, change)
    differences = verify(copy, load_model=False).differences
    assert any(f"{copy / where} {named}" in d for d in differences), differences


def test_a_figure_changed_in_a_report_fails_naming_the_report_line(seeds_run, tmp_path):
    copy = _copy(seeds_run, tmp_path)
    text = (copy / "report.md").read_text()
    claims_row = next(
        line for line in text.splitlines() if line.startswith("| TLI raises similarity of trained")
    )
    edited = claims_row.replace("|", "| 0.999 ", 2) if claims_row.count("|") > 2 else claims_row + " 0.999"
    (copy / "report.md").write_text(text.replace(claims_row, edited))
    number = text.splitlines().index(claims_row) + 1
    (difference,) = verify(copy, load_model=False).differences
    assert difference.startswith(f"{copy / 'report.md'} line {number}, column") and "re-derived" in difference


# --- tli compare: cell scores, comparisons and claims from the prediction files -------------------------------

COMPARE = """strategies: [none, lora]
tasks:
  xlsum: {path: "samples:xlsum", languages: [sw], limit: 2, max_new_tokens: 4, max_input_tokens: 32}
  xnli: {path: "samples:xnli/xnli.test.tsv", languages: [sw], limit: 9}
budget: {steps: 1, batch_size: 2}
seeds: [0, 1]
n_resamples: 99
"""


@pytest.fixture(scope="module")
def compared(tiny_model_dirs, tmp_path_factory):
    from tli.compare import compare

    root = tmp_path_factory.mktemp("verify-compare")
    path = root / "e.yaml"
    path.write_text(f"models: [{tiny_model_dirs['llama']}]\n" + COMPARE)
    compare(path, out=root / "out", progress=False)
    return root / "out"


def test_a_comparison_verifies_from_its_prediction_files(compared):
    report = verify(compared, load_model=False)
    assert report.ok, report.differences
    checked = "\n".join(report.checked)
    assert "cells' scores re-derived from their prediction files" in checked
    assert "comparisons and" in checked and "(tli.compare.analyse)" in checked
    assert f"{compared / 'report.md'}: every line re-derived" in checked


def _first(rows, **where):
    return next(i for i, row in enumerate(rows) if all(row.get(k) == v for k, v in where.items()))


@pytest.mark.parametrize(
    "key, where, field, value",
    [
        ("comparisons", {"task": "xnli", "metric": "accuracy"}, "p_value", 0.0123),
        ("comparisons", {"task": "xlsum", "metric": "rougeL"}, "difference", 0.5),
        ("comparisons", {"task": "xnli", "metric": "macro_f1"}, "verdict", "supported"),
        ("comparisons_per_seed", {"task": "xnli", "seed": 1}, "p_adjusted", 0.0001),
        ("claims", {"key": "nli-preserved"}, "verdict", "supported"),
    ],
)
def test_each_comparison_figure_is_checked(compared, tmp_path, key, where, field, value):
    copy = _copy(compared, tmp_path)
    record = json.loads((copy / "results.json").read_text())
    i = _first(record[key], **where)
    _edit_json(copy / "results.json", lambda r: r[key][i].update({field: value}))
    differences = verify(copy, load_model=False).differences
    assert any(
        d.startswith(f"{copy / 'results.json'} {key}[{i}]") and f".{field}: re-derived" in d
        for d in differences
    ), differences


def test_a_cell_score_and_a_prediction_row_are_checked(compared, tmp_path):
    copy = _copy(compared, tmp_path)
    record = json.loads((copy / "results.json").read_text())
    i = _first(record["cells"], strategy="lora", task="xnli", seed=0)
    _edit_json(copy / "results.json", lambda r: r["cells"][i]["metrics"]["accuracy"].update(score=0.99))
    differences = verify(copy, load_model=False).differences
    assert any(f"cells[{i}] (lora, xnli sw, seed 0).metrics.accuracy.score" in d for d in differences), (
        differences
    )

    copy2 = tmp_path / "copy2"
    shutil.copytree(compared, copy2)
    cell = record["cells"][i]
    predictions = copy2 / cell["predictions"][cell["predictions"].index("runs/") :]
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    rows[0]["correct"] = 1 - rows[0]["correct"]  # one example scored the other way
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    differences = verify(copy2, load_model=False).differences
    assert any(".metrics.accuracy.score" in d for d in differences), differences
    assert any("comparisons" in d and "xnli" in d for d in differences), differences
