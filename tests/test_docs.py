"""The documentation site: every page in the nav exists, the generated references cover the real parser and
experiment schema, and the first experiment of the getting-started page is valid for the loader."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hook():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = _hook()


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def test_every_page_in_the_nav_exists_or_is_generated():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert len(pages) >= 25
    missing = [p for p in pages if not (DOCS / p).is_file() and p not in hook.PAGES]
    assert missing == []
    assert set(hook.PAGES) <= set(pages), "every generated page is in the nav"
    assert config["hooks"] == ["scripts/docs_reference.py"]


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = set(_nav_pages(config["nav"]))
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert on_disk - pages == set()


@pytest.fixture(scope="module")
def cli_page() -> str:
    return hook.render_cli()


def test_the_cli_reference_lists_every_command_and_every_option_of_the_real_parser(cli_page):
    from tli.cli import build_parser as top_parser
    from tli.config import COMMANDS, build_parser

    commands = next(a for a in top_parser()._actions if a.dest == "command").choices
    assert set(commands) == set(COMMANDS)
    for command in commands:
        assert f"## `tli {command}`" in cli_page
        section = cli_page.split(f"## `tli {command}`", 1)[1].split("\n## ", 1)[0]
        for action in build_parser(command)._actions:
            if action.dest == "help":
                continue
            dashed = [s for s in action.option_strings if not (s.startswith("--") and "_" in s)]
            for flag in dashed:
                assert f"`{flag}`" in section, f"tli {command} {flag} missing from reference/cli.md"
            if not action.option_strings:
                assert f"`{action.dest.upper()}`" in section
    for flag in ("--debug", "--version"):
        assert f"`{flag}`" in cli_page


def test_the_cli_reference_shows_each_options_yaml_key_and_default(cli_page):
    from tli.config import TrainConfig

    section = cli_page.split("## `tli train`", 1)[1].split("\n## ", 1)[0]
    margin = next(f for f in dataclasses.fields(TrainConfig) if f.name == "margin")
    row = next(line for line in section.splitlines() if line.startswith("| `--margin`"))
    assert "`margin`" in row and f"`{margin.default:g}`" in row


def test_the_experiment_reference_documents_every_key_of_the_schema():
    page = hook.render_experiment()
    for key in hook.resolve(hook.EXPERIMENT_TOP_KEYS):
        assert f"`{key}`" in page, key
    for name, task in hook.resolve(hook.TASKS).items():
        section = page.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for field in dataclasses.fields(task.config_class):
            assert f"| `{field.name}` |" in section, (name, field.name)
    for cls in (hook.BUDGET, hook.STRATEGY_OPTIONS, hook.TRAIN_DATA, hook.BIENCODER_OPTIONS):
        for field in dataclasses.fields(hook.resolve(cls)):
            assert f"| `{field.name}` |" in page, (cls, field.name)
    budget = page.split("## `budget`", 1)[1].split("\n## ", 1)[0]
    assert "| `steps` | `int` | `20` | Optimiser steps of task fine-tuning. |" in budget


def test_attribute_docstrings_are_read_from_the_class_body():
    @dataclasses.dataclass
    class Example:
        a: int = 1
        """First."""
        b: str = "x"
        c: float = 0.5
        """Third,
        on two lines."""

    assert hook.attribute_docstrings(Example) == {"a": "First.", "c": "Third,\non two lines."}


def _block(text: str, after: str, language: str) -> str:
    start = text.index(after)
    match = re.search(rf"```{language}\n(.*?)```", text[start:], re.S)
    assert match, f"no {language} block after {after!r}"
    return match.group(1)


def test_the_getting_started_experiment_is_valid_for_the_loader(tmp_path):
    from tli.tasks import SAMPLES_DIR

    page = (DOCS / "getting-started.md").read_text()
    shell = _block(page, "## Your first experiment", "bash")
    experiment = _block(page, "`my-exp/experiment.yaml`:", "yaml")
    data = tmp_path / "my-exp"
    (data / "data").mkdir(parents=True)
    copies = re.findall(r'^cp "\$S/(\S+)" (\S+)$', shell, re.M)
    converted = re.findall(r"Dataset\.from_json\('\$S/(\S+?)'\)\.to_csv\('(\S+?)', sep='\\t'\)", shell)
    assert len(copies) == 2 and len(converted) == 1
    for source, target in copies:
        shutil.copy(SAMPLES_DIR / source, data / target)
    import datasets

    for source, target in converted:
        datasets.Dataset.from_json(str(SAMPLES_DIR / source)).to_csv(str(data / target), sep="\t")
    path = data / "experiment.yaml"
    path.write_text(experiment)
    parsed = hook.resolve(hook.EXPERIMENT_LOADER)(path)
    assert [s.name for s in parsed.strategies] == ["none", "lora"]
    assert sorted(parsed.tasks) == ["xlsum", "xnli"]
    assert parsed.tasks["xlsum"].limit == 8 and parsed.tasks["xnli"].limit == 20
    assert parsed.budget.steps == 8 and parsed.seeds == [0]
    assert parsed.train.path == str(data / "data" / "habari_train.jsonl")


def test_every_key_of_the_experiment_reference_has_a_description():
    rows = [line for line in hook.render_experiment().splitlines() if line.startswith("| `")]
    assert len(rows) > 60
    undocumented = [row.split("|")[1].strip() for row in rows if not row.rstrip("| ").split("|")[-1].strip()]
    assert undocumented == []


def test_the_top_level_defaults_the_reference_states_are_the_loaders(tmp_path):
    page = hook.render_experiment()
    table = page.split("## Top level", 1)[1].split("\n## ", 1)[0]
    stated = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if row.startswith("| `") and re.fullmatch(r"`[^`]*`", cells[2]):
            stated[cells[0].strip("`")] = cells[2].strip("`")
    path = tmp_path / "minimal.yaml"
    path.write_text("models: [default]\nstrategies: [none]\ntasks: {xnli: {path: samples:xnli}}\n")
    parsed = hook.resolve(hook.EXPERIMENT_LOADER)(path, check_files=False)
    assert {"seeds", "reference", "correction", "alpha", "n_resamples", "noninferiority_margin"} <= set(
        stated
    )
    stated.pop("strategy_options", None)  # folded into each strategy's options
    for key, text in stated.items():
        value = getattr(parsed, key)
        if isinstance(value, list):
            value = "[" + ", ".join(map(str, value)) + "]"
        elif isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, float):
            value = f"{value:g}"
        assert str(value) == text or (text == '""' and value == ""), key


def test_table_cells_escape_pipes_outside_code_spans_only():
    assert hook.cell("auto | cpu, `str | None`,\n:class:`tli.claims.Claim`") == (
        "auto \\| cpu, `str | None`, `tli.claims.Claim`"
    )


def test_the_launch_page_shows_every_full_scale_experiment_launchable():
    """Every shipped experiment of the briefs' models is on the page, with a command for each unit (none that
    cannot run as configured) and its SLURM arrays ending in the --collect job."""
    from tli.compare.experiment import shipped_experiments

    page = hook.render_launch()
    full_scale = [
        name for name in shipped_experiments() if name not in ("demo", "retrieval-demo", "lm-eval-demo")
    ]
    for name in full_scale:
        assert f"## {name}\n" in page
        assert f"tli compare {name} --out OUT --collect" in page
    assert "cannot run as configured" not in page
    assert "accelerate launch --config_file multinode-fsdp.yaml --num_processes 24 --num_machines 3" in page


def test_the_readme_scaling_block_is_the_current_launch_plan():
    """README's per-experiment commands come from the dry runs; after a plan changes, regenerate them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(hook.README_BEGIN), readme.index(hook.README_END) + len(hook.README_END)
    assert readme[start:end] == hook.render_readme_scaling(), "run: python scripts/docs_reference.py --readme"
    block = readme[start:end]
    for name in (
        "qwen2-72b-xlsum-xnli",
        "llama-3-70b-xlsum-xnli",
        "lugha-llama-8b-xlsum-xnli",
        "swahili-suite",
    ):
        assert f"tli compare {name} --out OUT --collect" in block
    assert "--num_machines 3" in block and "sbatch --array=" in block and "cannot run" not in block
