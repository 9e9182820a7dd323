"""The scan end to end on tiny models: files, fields, selection, and its CLI."""

import csv
import json

import pytest

from tli.cli import main
from tli.errors import TliError
from tli.lexicon import read_lexicon
from tli.metrics import artifact_layers
from tli.pooling import DEFAULT_POOLING
from tli.scan import scan, select_layer

LAYER_KEYS = {
    "layer",
    "matched_mean",
    "mismatched_mean",
    "gap",
    "centered_gap",
    "p_at_1",
    "p_at_5",
    "mrr",
    "csls_p_at_1",
}


def _row(layer, matched, mismatched, p1=0.0, mrr=0.0, centered=0.0):
    return {
        "layer": layer,
        "matched_mean": matched,
        "mismatched_mean": mismatched,
        "gap": matched - mismatched,
        "centered_gap": centered,
        "p_at_1": p1,
        "p_at_5": p1,
        "mrr": mrr,
        "csls_p_at_1": p1,
    }


def test_selection_criteria_by_hand():
    layers = [
        _row(0, 0.45, 0.10, p1=0.9, mrr=0.9, centered=0.5),  # layer 0 is excluded by min_layer=1
        _row(1, 0.60, 0.30, p1=0.2, mrr=0.3, centered=0.1),  # best raw gap among 1..
        _row(2, 0.99998, 0.99997, p1=0.1, mrr=0.2, centered=0.05),  # the published rule's choice: an artifact
        _row(3, 0.50, 0.40, p1=0.4, mrr=0.5, centered=0.2),  # best retrieval and centred gap
        _row(4, 0.95, 0.94, p1=0.5, mrr=0.6, centered=0.3),  # best of all, but beyond the early layers
    ]
    assert select_layer(layers, "gap", 1, 3) == 1
    assert select_layer(layers, "cosine", 1, 3) == 2
    assert select_layer(layers, "p_at_1", 1, 3) == 3
    assert select_layer(layers, "csls", 1, 3) == 3
    assert select_layer(layers, "centered_gap", 1, 3) == 3
    assert select_layer(layers, "mrr", 1, 3) == 3
    assert select_layer(layers, "centered_gap", 1) == 4  # no upper bound
    assert select_layer(layers, "gap", 0, 3) == 0
    with pytest.raises(TliError, match="no layer between"):
        select_layer(layers, "gap", 9)


def test_artifact_layers_use_a_relative_rule():
    layers = [
        _row(0, 0.31, 0.30),  # raw cosine low for any pair: not an artefact (though the gap is small)
        _row(1, 0.60, 0.30),  # a real gap
        _row(2, 0.99998, 0.99997),  # near-perfect for any pair
        _row(3, 0.93, 0.928),  # Gemma-like: 0.91-0.95 with a gap of 0.002, missed by a fixed 0.95 threshold
        _row(4, 0.93, 0.85),  # high, but translations add 9 %: a real signal
    ]
    assert artifact_layers(layers) == [2, 3]


def test_scan_writes_complete_run_directory(tiny_dir, toy_lexicon_file, tmp_path):
    out = tmp_path / "run"
    result = scan(str(tiny_dir), str(toy_lexicon_file), out=out, batch_size=5, progress=False)
    assert {p.name for p in out.iterdir()} == {
        "results.json",
        "layers.csv",
        "report.md",
        "layers.png",
        "complete",
    }
    record = json.loads((out / "results.json").read_text())
    assert len(record["layers"]) == 5  # hidden-state indices 0..4 of a 4-block model
    assert [row["layer"] for row in record["layers"]] == list(range(5))
    assert all(LAYER_KEYS <= set(row) for row in record["layers"])
    assert record["selected_layer"] == result.selected_layer
    assert record["criterion"] == "centered_gap" and record["selectable_layers"] == [1, 2]
    # Llama's tokenizer puts <s> first itself; Qwen2's adds none, so tli prepends its <|endoftext|> (id 0)
    bos = {"llama": ("tokenizer", "<s>"), "qwen2": ("tli", "<|endoftext|>")}[tiny_dir.name]
    assert (
        record["pooling"]["bos_by"],
        record["pooling"]["bos_token"],
        record["pooling"]["bos_token_id"],
    ) == (
        *bos,
        0,
    )
    # 22 source words, 24 distinct targets; bahari and kiti have two translations each: (2·2 + 20·1) / 24 / 22
    assert record["chance_p_at_1"] == pytest.approx((2 * 2 / 24 + 20 / 24) / 22)
    assert record["pooling"]["pooling"] == DEFAULT_POOLING == "mean-no-special"
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


def test_a_second_scan_into_the_same_out_is_refused_unless_overwrite(
    tiny_llama_dir, toy_lexicon_file, tmp_path, capsys
):
    out = tmp_path / "scan"
    base = ["scan", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--out", str(out)]
    assert main(base) == 0
    first = (out / "results.json").read_text()
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "already holds a complete run" in err and "--overwrite" in err
    assert (out / "results.json").read_text() == first
    assert main([*base, "--overwrite"]) == 0


def test_output_files_respect_the_umask(tiny_llama_dir, toy_lexicon_file, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        scan(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / "s", progress=False)
    finally:
        os.umask(old)
    for name in ("results.json", "report.md", "layers.csv", "layers.png"):
        assert stat.S_IMODE((tmp_path / "s" / name).stat().st_mode) == 0o644, name


def test_out_on_a_pseudo_file_system_is_a_clear_error(tiny_llama_dir, toy_lexicon_file, capsys):
    code = main(
        ["scan", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--out", "/proc/nope"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "/proc" in err and "cannot write" in err


def test_a_tiny_lexicon_gets_a_word_about_chance(tiny_llama_dir, tmp_path, caplog):
    lexicon = tmp_path / "two.tsv"
    lexicon.write_text("mbwa\tdog\npaka\tcat\n")
    result = scan(str(tiny_llama_dir), str(lexicon), progress=False)
    assert result.chance_p_at_1 == pytest.approx(0.5)
    assert result.warnings and "chance P@1 = 0.500" in result.warnings[0]


def test_chance_counts_words_with_several_translations(tiny_llama_dir, tmp_path):
    lexicon = tmp_path / "senses.tsv"
    lexicon.write_text("bahari\tsea\nbahari\tocean\nmbwa\tdog\npaka\tcat\n")
    result = scan(str(tiny_llama_dir), str(lexicon), progress=False)
    assert result.chance_p_at_1 == pytest.approx((2 / 4 + 1 / 4 + 1 / 4) / 3)


def test_scan_with_a_test_lexicon_scans_the_held_out_pairs(tiny_llama_dir, toy_lexicon_file, tmp_path):
    test = tmp_path / "test.txt"
    test.write_text("mkate bread\nchai tea\nndizi banana\nmbwa dog\n")  # MUSE: space separated, no header
    result = scan(str(tiny_llama_dir), str(toy_lexicon_file), test_lexicon=str(test), progress=False)
    assert result.split["origin"] == "test-lexicon"
    assert result.split["audit"]["n_dropped"] == 1  # mbwa → dog is a training pair: not held out
    assert result.n_pairs == 3
