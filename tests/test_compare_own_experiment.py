"""A first `tli compare` experiment on one's own files: any file name, the XNLI table `datasets` exports, a dry
run that reads everything the run reads, cells that record their settings, and the getting-started example as
written."""

import json
import re
import shutil
from pathlib import Path

import pytest

from tli.cli import main
from tli.compare import compare, parse_experiment
from tli.tasks import SAMPLES_DIR, get_task

GETTING_STARTED = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("tli: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _export_xnli(path: Path, rows: list[dict]) -> Path:
    """The table `datasets` writes (`Dataset.to_csv(path, sep="\\t")`: pandas quoting, integer labels)."""
    import datasets

    datasets.Dataset.from_list(rows).to_csv(str(path), sep="\t")
    return path


# --- file names and layouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["xlsum_swahili_test.jsonl", "habari.jsonl", "my-articles_test.jsonl"])
def test_an_xlsum_file_of_any_name_holds_the_language_the_experiment_gives(tmp_path, name):
    shutil.copy(SAMPLES_DIR / "xlsum" / "swahili_test.jsonl", tmp_path / name)
    path = tmp_path / "e.yaml"
    path.write_text(
        f"models: [default]\nstrategies: [none]\ntasks:\n  xlsum: {{path: {name}, languages: [sw]}}\n"
    )
    experiment = parse_experiment(path, check_device=False)
    examples = get_task("xlsum").load(experiment.tasks["xlsum"].path, "sw")
    assert len(examples) == 12 and {e.language for e in examples} == {"sw"}


def test_a_file_named_as_xlsum_names_them_must_hold_that_language(tmp_path, capsys):
    shutil.copy(SAMPLES_DIR / "xlsum" / "english_test.jsonl", tmp_path / "english_test.jsonl")
    path = tmp_path / "e.yaml"
    path.write_text(
        "models: [default]\nstrategies: [none]\ntasks:\n  xlsum: {path: english_test.jsonl, languages: [sw]}\n"
    )
    assert main(["compare", str(path), "--dry-run"]) == 2
    assert "has no language sw (it has: en)" in _one_error_line(capsys)


def test_the_xnli_table_datasets_exports_is_read_like_the_jsonl(tmp_path):
    rows = [json.loads(line) for line in (SAMPLES_DIR / "xnli" / "xnli_sw.jsonl").read_text().splitlines()]
    rows[0] = dict(rows[0], premise='Alisema "habari"\tna kuondoka, polepole')  # quotes, a tab, a comma
    jsonl = tmp_path / "sw.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    table = _export_xnli(tmp_path / "nli.tsv", rows)
    assert table.read_text(encoding="utf-8").splitlines()[0] == "id\tpremise\thypothesis\tlabel"
    task = get_task("xnli")
    assert task.load(str(table), "sw") == task.load(str(jsonl), "sw")
    assert task.load(str(table), "sw")[0].premise == rows[0]["premise"]
    # without an id column the row position is the id; a language column selects rows; .csv is comma-separated
    mixed = [
        {k: r[k] for k in ("premise", "hypothesis", "label")} | {"language": lang}
        for r in rows[:4]
        for lang in ("sw", "en")
    ]
    import datasets

    both = tmp_path / "both.csv"
    datasets.Dataset.from_list(mixed).to_csv(str(both))  # comma-separated
    assert task.available_languages(str(both)) == ["en", "sw"]
    swahili = task.load(str(both), "sw")
    assert [e.premise for e in swahili] == [r["premise"] for r in mixed if r["language"] == "sw"]
    assert [e.label for e in swahili] == [r["label"] for r in mixed if r["language"] == "sw"]


# --- a dry run reads everything the run reads ----------------------------------------------------------------


def _folder_with_test_split_only(tmp_path) -> Path:
    folder = tmp_path / "xlsum"
    folder.mkdir()
    shutil.copy(SAMPLES_DIR / "xlsum" / "swahili_test.jsonl", folder / "swahili_test.jsonl")
    return folder


@pytest.mark.parametrize(
    "body, message",
    [
        (  # the run would fail after loading the model: no training split in the folder
            "strategies: [none, lora]\ntasks:\n  xlsum: {path: xlsum, languages: [sw]}\n",
            "`train` (xlsum, sw, split train)",
        ),
        (  # one file is the evaluation data: training on it would score strategies on their training examples
            "strategies: [none, lora]\ntasks:\n  xlsum: {path: xlsum/swahili_test.jsonl, languages: [sw]}\n",
            "the data they are scored on",
        ),
        (
            "strategies: [none, tli]\ntasks:\n  xlsum: {path: xlsum, languages: [sw]}\n"
            "strategy_options: {lexicon: words.tsv}\n",
            "strategy tli: ",
        ),
        (
            "strategies: [none, tli]\ntasks:\n  xlsum: {path: xlsum, languages: [sw]}\n"
            "strategy_options: {tli_adapter: runs/missing/adapter}\n",
            "no adapter_config.json",
        ),
        (
            "strategies: [none]\ntasks:\n  xlsum: {path: xlsum, languages: [sw]}\n",
            "models: --model ./no-such-model: no such directory or file",
        ),
    ],
)
def test_a_dry_run_reads_every_file_the_run_will_read(tmp_path, capsys, body, message):
    _folder_with_test_split_only(tmp_path)
    model = "./no-such-model" if "models:" in message else "default"
    path = tmp_path / "e.yaml"
    path.write_text(f"models: [{model}]\n" + body)
    assert main(["compare", str(path), "--dry-run"]) == 2
    line = _one_error_line(capsys)
    assert message in line and str(path) in line


def test_relative_paths_are_relative_to_the_experiment_file(tmp_path, monkeypatch):
    folder = tmp_path / "exp"
    (folder / "data").mkdir(parents=True)
    shutil.copy(SAMPLES_DIR / "xlsum" / "swahili_test.jsonl", folder / "data" / "a.jsonl")
    (folder / "words.tsv").write_text("".join(f"w{i}\tv{i}\n" for i in range(40)), encoding="utf-8")
    path = folder / "e.yaml"
    path.write_text(
        "models: [default]\nstrategies: [none, tli]\nstrategy_options: {lexicon: words.tsv}\n"
        "tasks:\n  xlsum: {path: data/a.jsonl, languages: [sw]}\n"
    )
    monkeypatch.chdir(tmp_path)  # not the experiment's folder
    experiment = parse_experiment(path, check_device=False)
    assert experiment.tasks["xlsum"].path == str(folder / "data" / "a.jsonl")
    assert experiment.strategy("tli").options.lexicon == str(folder / "words.tsv")


# --- cells record their settings; a changed experiment recomputes exactly the changed cells ------------------

SMALL = """strategies: [none, lora]
tasks:
  xlsum: {path: articles.jsonl, languages: [sw], limit: 2, max_new_tokens: 4, max_input_tokens: 32}
  xnli: {path: nli.tsv, languages: [sw], limit: 4}
train: {task: xlsum, language: sw, path: train.jsonl, limit: 4}
budget: {steps: 2, batch_size: 2}
seeds: [0]
n_resamples: 99
"""


def test_a_changed_experiment_recomputes_exactly_the_cells_it_changes(
    tiny_llama_dir, tmp_path, monkeypatch, caplog
):
    import tli.compare.runner as runner_module

    shutil.copy(SAMPLES_DIR / "xlsum" / "swahili_test.jsonl", tmp_path / "articles.jsonl")
    shutil.copy(SAMPLES_DIR / "xlsum" / "swahili_train.jsonl", tmp_path / "train.jsonl")
    rows = [json.loads(line) for line in (SAMPLES_DIR / "xnli" / "xnli_sw.jsonl").read_text().splitlines()]
    _export_xnli(tmp_path / "nli.tsv", rows)
    path, out = tmp_path / "e.yaml", tmp_path / "out"
    path.write_text(f"models: [{tiny_llama_dir}]\n" + SMALL)
    first = compare(path, out=out, progress=False)
    cells = {(c["strategy"], c["task"]): c for c in first["cells"]}
    assert all(c["status"] == "done" and len(c["fingerprint"]) == 64 for c in cells.values())
    assert cells["lora", "xnli"]["settings"]["task_options"]["limit"] == 4
    assert (
        cells["lora", "xnli"]["settings"]["budget"]["steps"] == 2
        and "budget" not in cells["none", "xnli"]["settings"]
    )

    scored: list[tuple[str, str]] = []
    original_score = runner_module.Runner.score

    def counting_score(self, loaded, model_obj, model, strategy, seed, task, language, cost, unit):
        scored.append((strategy, task))
        return original_score(self, loaded, model_obj, model, strategy, seed, task, language, cost, unit)

    def no_training(*_args, **_kwargs):
        raise AssertionError("an adapter trained with the same settings was trained again")

    monkeypatch.setattr(runner_module.Runner, "score", counting_score)
    monkeypatch.setattr(runner_module, "finetune", no_training)

    # unchanged: nothing is recomputed
    again = compare(path, out=out, progress=False)
    assert scored == [] and [c["metrics"] for c in again["cells"]] == [c["metrics"] for c in first["cells"]]

    # a task option: that task's cells only, the adapter reloaded, and the run says which and what changed
    path.write_text(path.read_text().replace("limit: 4}\ntrain", "limit: 6}\ntrain"))
    caplog.clear()
    with caplog.at_level("WARNING"):
        changed = compare(path, out=out, progress=False)
    assert sorted(scored) == [("lora", "xnli"), ("none", "xnli")]
    assert (
        "task_options.limit 4 → 6" in caplog.text
        and "xnli-sw" in caplog.text
        and "xlsum-sw" not in caplog.text
    )
    assert {c["n"] for c in changed["cells"] if c["task"] == "xnli"} == {6}

    # the budget: lora is trained again and its cells recomputed; the zero-shot base keeps its cells
    monkeypatch.setattr(runner_module, "finetune", _real_finetune())
    scored.clear()
    path.write_text(path.read_text().replace("steps: 2", "steps: 3"))
    caplog.clear()
    with caplog.at_level("WARNING"):
        compare(path, out=out, progress=False)
    assert sorted(scored) == [("lora", "xlsum"), ("lora", "xnli")]
    assert "budget.steps 2 → 3" in caplog.text
    record = json.loads((out / "results.json").read_text())
    assert {c["settings"]["budget"]["steps"] for c in record["cells"] if c["strategy"] == "lora"} == {3}


def _real_finetune():
    from tli.strategies.finetune import finetune

    return finetune


# --- The getting-started page's first experiment works as written -------------------------------------------


def _getting_started_section() -> str:
    text = GETTING_STARTED.read_text(encoding="utf-8")
    start = text.index("## Your first experiment")
    return text[start : text.index("\n## ", start)]


def test_the_getting_started_experiment_works_as_written(tiny_llama_dir, tmp_path, monkeypatch, capsys):
    """The getting-started page's commands make the data files; its YAML, exactly as printed, passes the dry run
    and (with the tiny test model in place of the embedded one) runs, verifies, and recomputes what a changed
    limit changes."""
    section = _getting_started_section()
    yaml_text = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    shell = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    assert 'cp "$S/xlsum/swahili_test.jsonl" data/habari_test.jsonl' in shell
    folder = tmp_path / "my-exp"
    (folder / "data").mkdir(parents=True)
    for source, target in re.findall(r'cp "\$S/([^"]+)" (\S+)', shell):
        shutil.copy(SAMPLES_DIR / source, folder / target)
    export = re.search(r"to_csv\('([^']+)', sep='\\t'\)", shell).group(1)
    rows = [json.loads(line) for line in (SAMPLES_DIR / "xnli" / "xnli_sw.jsonl").read_text().splitlines()]
    _export_xnli(folder / export, rows)
    path = folder / "experiment.yaml"
    path.write_text(yaml_text, encoding="utf-8")

    monkeypatch.chdir(tmp_path)  # tli runs from elsewhere: data paths are relative to the YAML
    assert main(["compare", str(path), "--dry-run"]) == 0
    assert f"({path}): valid" in capsys.readouterr().out

    assert "models: [default]" in yaml_text
    path.write_text(yaml_text.replace("models: [default]", f"models: [{tiny_llama_dir}]"), encoding="utf-8")
    out = tmp_path / "runs" / "first"
    assert main(["compare", str(path), "--out", str(out)]) == 0
    record = json.loads((out / "results.json").read_text())
    assert {(c["strategy"], c["task"], c["status"]) for c in record["cells"]} == {
        (s, t, "done") for s in ("none", "lora") for t in ("xlsum", "xnli")
    }
    assert main(["verify", str(out), "--no-load-model"]) == 0
    capsys.readouterr()
