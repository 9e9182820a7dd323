"""The scan end to end on tiny models: files, fields, selection, and its CLI."""

import csv
import json

import pytest

from tli.cli import main
from tli.errors import ConfigError
from tli.lexicon import read_lexicon
from tli.scan import artifact_layers, scan, select_layer

LAYER_KEYS = {
    "layer",
    "matched_mean",
    "mismatched_mean",
    "gap",
    "p_at_1",
    "p_at_5",
    "mrr",
    "csls_p_at_1",
}


def _row(layer, matched, mismatched, p1=0.0, mrr=0.0):
    return {
        "layer": layer,
        "matched_mean": matched,
        "mismatched_mean": mismatched,
        "gap": matched - mismatched,
        "p_at_1": p1,
        "p_at_5": p1,
        "mrr": mrr,
        "csls_p_at_1": p1,
    }


def test_selection_criteria_by_hand():
    layers = [
        _row(0, 0.45, 0.10, p1=0.9, mrr=0.9),  # layer 0 is excluded by min_layer=1
        _row(1, 0.60, 0.30, p1=0.2, mrr=0.3),  # best gap among 1..
        _row(2, 0.99998, 0.99997, p1=0.1, mrr=0.2),  # the published rule's choice: an artifact
        _row(3, 0.50, 0.40, p1=0.4, mrr=0.5),  # best retrieval
    ]
    assert select_layer(layers, "gap") == 1
    assert select_layer(layers, "cosine") == 2
    assert select_layer(layers, "p_at_1") == 3
    assert select_layer(layers, "csls") == 3
    assert select_layer(layers, "gap", min_layer=0) == 0
    assert artifact_layers(layers) == [2]
    with pytest.raises(ConfigError, match="--select-by"):
        select_layer(layers, "loss")
    with pytest.raises(ConfigError, match="--min-layer"):
        select_layer(layers, "gap", min_layer=9)


def test_scan_writes_complete_run_directory(tiny_dir, toy_lexicon_file, tmp_path):
    out = tmp_path / "run"
    result = scan(str(tiny_dir), str(toy_lexicon_file), out=out, batch_size=5, progress=False)
    assert {p.name for p in out.iterdir()} == {
        "results.json",
        "layers.csv",
        "report.md",
        "layers.png",
    }
    record = json.loads((out / "results.json").read_text())
    assert len(record["layers"]) == 5  # hidden-state indices 0..4 of a 4-block model
    assert [row["layer"] for row in record["layers"]] == list(range(5))
    assert all(LAYER_KEYS <= set(row) for row in record["layers"])
    assert record["selected_layer"] == result.selected_layer
    assert record["criterion"] == "gap"
    assert record["pooling"]["pooling"] == "mean"
    assert record["n_pairs"] == len(read_lexicon(toy_lexicon_file))
    assert set(record["timing"]) >= {"load_seconds", "scan_seconds"}
    assert len(record["model"]["fingerprint"]["sha256"]) == 64
    assert len(record["lexicon"]["file_sha256"]) == 64
    assert record["versions"]["torch"] and record["seed"] == 0
    rows = list(csv.DictReader((out / "layers.csv").open()))
    assert len(rows) == 5 and float(rows[2]["gap"]) == pytest.approx(record["layers"][2]["gap"])
    assert (out / "layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Selected layer" in (out / "report.md").read_text()
    # The gap is exactly matched - mismatched, and every figure is a proper rate.
    for row in record["layers"]:
        assert row["gap"] == pytest.approx(row["matched_mean"] - row["mismatched_mean"], abs=1e-6)
        assert 0 <= row["p_at_1"] <= row["p_at_5"] <= 1 and 0 < row["mrr"] <= 1


def test_centering_changes_figures_and_is_recorded(tiny_llama_dir, toy_lexicon_file):
    plain = scan(str(tiny_llama_dir), str(toy_lexicon_file), progress=False)
    centred = scan(str(tiny_llama_dir), str(toy_lexicon_file), center=True, progress=False)
    assert centred.pooling["center"] is True
    assert plain.layers[3]["matched_mean"] != pytest.approx(centred.layers[3]["matched_mean"])


def test_cli_scan(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "scan",
            "--model",
            str(tiny_llama_dir),
            "--lexicon",
            str(toy_lexicon_file),
            "--pooling",
            "mean-no-special",
            "--select-by",
            "p_at_1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert "selected layer" in capsys.readouterr().out
    record = json.loads((out / "results.json").read_text())
    assert record["criterion"] == "p_at_1" and record["pooling"]["pooling"] == "mean-no-special"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/no/such/dir"], "no such directory"),
        (["--lexicon", "/no/such/file.json"], "/no/such/file.json"),
        (["--pooling", "max"], "--pooling"),
        (["--select-by", "loss"], "--select-by"),
        (["--min-layer", "99"], "--min-layer"),
        (["--quantization", "fp3"], "--quantization"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    tiny_llama_dir, toy_lexicon_file, tmp_path, capsys, args, message
):
    out = tmp_path / "never"
    base = ["scan", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file)]
    code = main([*base, *args, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("tli: error:") and message in err
    assert not out.exists()


def test_cli_rejects_model_dir_without_config(tmp_path, toy_lexicon_file, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    code = main(["scan", "--model", str(broken), "--lexicon", str(toy_lexicon_file)])
    assert code == 2 and "config.json" in capsys.readouterr().err


def test_cli_rejects_corrupt_checkpoint(tiny_llama_dir, tmp_path, toy_lexicon_file, capsys):
    import shutil

    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_llama_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    code = main(
        [
            "scan",
            "--model",
            str(corrupt),
            "--lexicon",
            str(toy_lexicon_file),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot load model" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_rejects_unwritable_out(tiny_llama_dir, toy_lexicon_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(
        [
            "scan",
            "--model",
            str(tiny_llama_dir),
            "--lexicon",
            str(toy_lexicon_file),
            "--out",
            str(blocker),
        ]
    )
    assert code == 2 and "is a file" in capsys.readouterr().err


def test_lexicon_with_one_pair_is_rejected(tiny_llama_dir, tmp_path, capsys):
    one = tmp_path / "one.csv"
    one.write_text("source,target\nmbwa,dog\n")
    code = main(["scan", "--model", str(tiny_llama_dir), "--lexicon", str(one)])
    assert code == 2 and ">= 2" in capsys.readouterr().err
