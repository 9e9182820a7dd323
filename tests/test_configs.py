"""Options are defined once (tli.config): CLI and YAML come from the dataclasses; shipped YAMLs validate."""

import dataclasses

import pytest

from tli.cli import build_parser, main
from tli.config import (
    COMMANDS,
    EvaluateConfig,
    RunConfig,
    ScanConfig,
    TrainConfig,
    load_options_file,
    options_for,
    parse_command,
    shipped_configs,
)
from tli.config import (
    build_parser as command_parser,
)
from tli.errors import ConfigError

QUICK_KEYS = {"select_by", "pooling", "loss", "temperature", "epochs", "batch_size", "n_boot", "seeds"}


def test_configs_are_shipped():
    """Exactly two configs ship, each a file in tli/configs that loads with the keys it was written with."""
    shipped = shipped_configs()
    assert set(shipped) == {"published", "quick"}
    for name, path in shipped.items():
        assert path.is_file() and path.name == f"{name}.yaml" and path.parent.name == "configs"
        assert load_options_file(name)["__path__"] == str(path)
    assert set(load_options_file("quick")) - {"__path__"} == QUICK_KEYS
    assert set(load_options_file("published")) - {"__path__"} == {
        "model", "quantization", "target_layer", "pooling", "loss", "margin", "epochs", "batch_size", "lr",
        "warmup_steps", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "validation_fraction", "seeds",
    }  # fmt: skip
    quick = parse_command("run", ["--config", "quick"])
    assert (quick.select_by, quick.pooling, quick.loss, quick.temperature) == (
        "centered_gap", "mean-no-special", "infonce", 0.05,
    )  # fmt: skip
    assert (quick.epochs, quick.batch_size, quick.n_boot, quick.seeds) == (2, 16, 2000, [0])


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_validates_for_every_command_that_uses_it(name, capsys):
    path = shipped_configs()[name]
    header = path.read_text().splitlines()[:4]
    assert any(f"--config {name}" in line for line in header), "the header must show the command that runs it"
    options = load_options_file(name)
    for command, config_class in COMMANDS.items():
        names = {f.name for f in dataclasses.fields(config_class)}
        required = {
            f.name
            for f in dataclasses.fields(config_class)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        used = options_for(command, options)
        values = {**{r: "x" if r != "layer" else [1] for r in required}, **used}
        config_class(**{k: v for k, v in values.items() if k in names})  # raises ConfigError on a bad value


def test_one_yaml_serves_every_command_and_says_what_it_ignores(caplog, capsys):
    """``quick`` holds scan and training keys: each command takes its own and names the rest once. The note is
    checked on the ``tli.config`` logger itself (whatever earlier tests did to the root logger), then on
    stderr after ``configure_logging`` as ``tli`` runs it, and the logging set-up is restored afterwards."""
    import logging

    from tli.cli import configure_logging

    path = shipped_configs()["quick"]
    ignored = {"scan": "epochs, loss, n_boot, seeds, temperature", "train": "n_boot, select_by"}
    notes = {command: f"tli {command}: --config {path}: not used by this command: {ignored[command]}"
             for command in ignored}  # fmt: skip
    for command in ignored:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tli.config"):
            parse_command(command, ["--config", "quick"])
        assert [r.getMessage() for r in caplog.records if r.name == "tli.config"] == [notes[command]]
    config = parse_command("scan", ["--config", "quick"])
    assert config.select_by == "centered_gap" and config.pooling == "mean-no-special"
    assert config.batch_size == 16  # the scan's embedding batch takes quick's batch_size
    train = parse_command("train", ["--config", "quick"])
    assert train.loss == "infonce" and train.epochs == 2 and train.temperature == 0.05

    root, tli_logger = logging.getLogger(), logging.getLogger("tli")
    saved = root.handlers[:], root.level, tli_logger.level
    capsys.readouterr()
    try:
        configure_logging(debug=False)  # as `tli` does before parsing: the note goes to stderr
        parse_command("scan", ["--config", "quick"])
        assert capsys.readouterr().err == notes["scan"] + "\n"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        tli_logger.setLevel(saved[2])


def test_published_config_values():
    config = parse_command("run", ["--config", "published"])
    assert config.quantization == "nf4" and config.target_layer == 2
    assert config.target_modules == ["q_proj", "v_proj"]
    assert (config.lora_r, config.lora_alpha, config.lora_dropout, config.margin) == (16, 32, 0.05, 0.4)
    assert config.validation_fraction == 0 and config.pooling == "mean-no-special"


def test_flags_override_the_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nlr: 1.0e-3\ntarget-modules: [q_proj, k_proj]\n")
    config = parse_command("train", ["--config", str(path), "--epochs", "2"])
    assert config.epochs == 2 and config.lr == 1e-3 and config.target_modules == ["q_proj", "k_proj"]


def test_lists_take_commas_or_spaces():
    assert parse_command("train", ["--lora-layers", "0,1"]).lora_layers == [0, 1]
    assert parse_command("train", ["--lora-layers", "0", "1"]).lora_layers == [0, 1]
    assert parse_command("train", ["--target-modules", "q_proj,v_proj"]).target_modules == [
        "q_proj",
        "v_proj",
    ]
    assert parse_command("run", ["--seeds", "3", "4"]).seeds == [3, 4]


def test_every_problem_is_reported_at_once_before_anything_loads():
    with pytest.raises(ConfigError) as info:
        TrainConfig(batch_size=1, lr=-1, loss="x", lora_dropout=1.5)
    message = str(info.value)
    for part in ("--loss 'x'", ">= 2 pairs per batch", "--lr must be > 0", "--lora-dropout"):
        assert part in message
    with pytest.raises(ConfigError, match="--min-layer must be >= 0"):
        ScanConfig(min_layer=-1)
    with pytest.raises(ConfigError, match="--n-boot must be >= 100"):
        EvaluateConfig(adapter=["a"], n_boot=3)
    with pytest.raises(ConfigError, match="--early-stopping-patience needs a validation split"):
        TrainConfig(early_stopping_patience=2, validation_fraction=0)


def test_run_config_builds_the_scan_and_training_configs():
    config = RunConfig(seeds=[1, 2], embed_batch_size=16, pooling="last", epochs=3)
    train = config.train_config(target_layer=4, seed=2)
    assert (train.target_layer, train.seed, train.epochs, train.pooling, train.seeds) == (
        4,
        2,
        3,
        "last",
        None,
    )
    scan = config.scan_config()
    assert scan.batch_size == 16 and scan.pooling == "last" and scan.select_by == "centered_gap"


def test_layer_range_defaults_to_the_early_half():
    assert ScanConfig().layer_range(30) == (1, 15)
    assert ScanConfig(max_layer_fraction=1 / 3).layer_range(18) == (1, 6)
    assert ScanConfig(max_layer=20).layer_range(30) == (1, 20)
    assert ScanConfig(min_layer=3, max_layer_fraction=0.05).layer_range(30) == (3, 3)


def test_help_comes_from_the_fields():
    text = command_parser("train").format_help()
    assert "--target-layer" in text and "hidden-state index of the loss" in text
    assert "--validation-fraction" in text and "--seeds" in text
    top = build_parser().format_help()
    for command in ("scan", "train", "evaluate", "run", "stats", "probe", "merge"):
        assert command in top


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochz: 3\n", "unknown option(s) epochz"),
        ("epochs: [1\n", "not valid YAML"),
        ("- 1\n", "mapping"),
        ("epochs: 0\n", "--epochs must be >= 1"),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_missing_config(capsys):
    assert main(["scan", "--config", "nope"]) == 2
    assert "no such file or shipped config" in capsys.readouterr().err


def test_cli_help_is_fast_because_it_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, tli.cli; tli.cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- --help of every command (issue 15, section 7) ------------------------------------------------------------


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _usage(text: str) -> str:
    return text.split("\n\n", 1)[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_shows_each_default_once_dashed_flags_and_no_float_noise(command, capsys):
    import re

    text = _help(command, capsys)
    flat = " ".join(text.split())  # argparse wraps help text over lines
    assert not re.search(r"\(default:[^)]*\)\s*\(default:", flat), "a default stated twice"
    assert "(default: None)" not in flat and "(default: False)" not in flat
    assert not re.search(r"\d\.\d{6,}", flat), "float noise such as 0.09183673469387756"
    assert not re.search(r"--[a-z0-9]+_[a-z0-9_]*", _usage(text)), "usage names an underscored flag"
    assert not re.search(r"^\s+--[a-z0-9]+_", text, re.M), "help lists an underscored flag"
    # A --no-X negation never repeats --X's own help text.
    helps = {}
    for match in re.finditer(r"^  (--[a-z0-9-]+)(?: [A-Z_\-{}|,]+)?\s+(.*?)(?=^  -|\Z)", text, re.M | re.S):
        helps[match.group(1)] = " ".join(match.group(2).split())
    assert len(helps) >= 2, "the option list was not parsed"
    for flag, body in helps.items():
        if flag.startswith("--no-") and (positive := "--" + flag[5:]) in helps:
            assert body != helps[positive], f"{flag} repeats the help of {positive}"


def test_help_fixes_the_reported_cases(capsys):
    scan = " ".join(_help("scan", capsys).split())
    assert "(default: embedded SmolLM2-135M-Instruct)" in scan
    assert "63/686 ≈ 0.092" in scan and "0.0918367" not in scan
    assert "[--device-map DEVICE_MAP]" in scan and "--device_map" not in scan
    assert "[--center]" in scan  # a boolean flag without its optional value
    verify = " ".join(_help("verify", capsys).split())
    assert "compare" in verify.split("positional arguments:")[1].split("options:")[0]
    assert "--no-load-model skip loading base models" in verify
    assert "--load-model also check" in verify
    train = " ".join(_help("train", capsys).split())
    assert "--lr LR AdamW learning rate (default: 0.0002)" in train
    assert "--target-modules TARGET_MODULES [TARGET_MODULES ...] linear layers that get LoRA" in train
    assert "(default: q_proj,v_proj)" in train


def test_underscored_flags_still_parse():
    config = parse_command("scan", ["--max_layer", "4", "--select_by", "gap", "--center"])
    assert (config.max_layer, config.select_by, config.center) == (4, "gap", True)
    assert parse_command("scan", ["--center", "false"]).center is False
    assert parse_command("verify", ["runs/x", "--no_load_model"]).load_model is False


def test_the_docs_command_table_lists_every_command_with_its_guide():
    from pathlib import Path

    docs = Path(__file__).parents[1] / "docs"
    home = (docs / "index.md").read_text(encoding="utf-8")
    table = home.split("## Commands", 1)[1].split("\n\n", 2)[1]
    for command in COMMANDS:
        assert f"| [`tli {command}`](guides/{command}.md) |" in table, command
        assert (docs / "guides" / f"{command}.md").is_file(), command


def test_one_pooling_default_for_every_command():
    from tli.config import ExportConfig
    from tli.embed import EmbedConfig
    from tli.pooling import DEFAULT_POOLING
    from tli.tasks.retrieval.base import RetrievalConfig

    assert DEFAULT_POOLING == "mean-no-special"
    for config_class in (ScanConfig, TrainConfig, RunConfig, ExportConfig):
        field = {f.name: f for f in dataclasses.fields(config_class)}["pooling"]
        assert field.default == DEFAULT_POOLING, config_class.__name__
    assert EmbedConfig().pooling == RetrievalConfig().pooling == DEFAULT_POOLING
    assert TrainConfig().target_layer == 2 and TrainConfig().from_scan is None
    assert "from_scan" not in {f.name for f in dataclasses.fields(RunConfig)}
