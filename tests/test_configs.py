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


def test_configs_are_shipped():
    assert {"published", "quick"} <= set(shipped_configs())


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


def test_one_yaml_serves_every_command_and_says_what_it_ignores(capsys):
    config = parse_command("scan", ["--config", "quick"])  # quick holds training keys too
    assert config.select_by == "centered_gap" and config.pooling == "mean-no-special"
    assert "not used by this command: " in capsys.readouterr().err
    train = parse_command("train", ["--config", "quick"])
    assert train.loss == "infonce" and train.epochs == 2


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
