"""Shipped YAML configs load and validate; flags override them; bad configs are one-line errors."""

import pytest

from tli.cli import _train_options, main, parse_args, shipped_configs
from tli.train import TrainConfig


def test_configs_are_shipped():
    assert {"published", "quick"} <= set(shipped_configs())


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_validates_for_tli_run(name):
    header = shipped_configs()[name].read_text().splitlines()[:4]
    assert any(f"tli run --config {name}" in line for line in header), "header must show the command"
    args = parse_args(["run", "--config", name])
    TrainConfig(**_train_options(args))  # raises ConfigError on any bad value


def test_published_config_values():
    args = parse_args(["run", "--config", "published"])
    assert args.quantization == "nf4" and args.target_layer == 2 and args.target_modules == "q_proj,v_proj"
    assert (args.lora_r, args.lora_alpha, args.lora_dropout, args.margin) == (16, 32, 0.05, 0.4)


def test_flags_override_the_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 7\nlr: 1.0e-3\ntarget-modules: [q_proj, k_proj]\n")
    args = parse_args(["train", "--config", str(config), "--epochs", "2"])
    assert args.epochs == 2 and args.lr == 1e-3 and args.target_modules == "q_proj,k_proj"


@pytest.mark.parametrize(
    "text, message",
    [("epochz: 3\n", "unknown option(s) epochz"), ("epochs: [1\n", "not valid YAML"), ("- 1\n", "mapping")],
)
def test_bad_configs_are_one_line_errors(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(config) in err


def test_missing_config(capsys):
    assert main(["scan", "--config", "nope"]) == 2
    assert "no such file or shipped config" in capsys.readouterr().err
