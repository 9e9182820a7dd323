"""Reliability: complete markers, locks against concurrent runs, reproducibility, tli verify, wrong lexicons."""

import contextlib
import json
import signal
import subprocess
import sys

import pytest

from tli.cli import main
from tli.errors import LexiconError, TliError
from tli.evaluate import evaluate
from tli.runs import COMPLETE, is_complete
from tli.train import train
from tli.verify import verify

FAST = {"batch_size": 4, "warmup_steps": 2, "lr": 5e-3, "progress": False, "epochs": 1}


@pytest.fixture(scope="module")
def evaluated(tiny_model_dirs, tmp_path_factory):
    from conftest import TOY_PAIRS

    root = tmp_path_factory.mktemp("reliability")
    lexicon = root / "toy.tsv"
    lexicon.write_text("".join(f"{s}\t{t}\n" for s, t in TOY_PAIRS))
    result = train(str(tiny_model_dirs["llama"]), str(lexicon), out=root / "t", **FAST)
    evaluate(result.adapter, out=root / "e", n_boot=200)
    return root, lexicon, result


def test_every_finished_run_directory_is_marked_complete_last(evaluated):
    root, _, _ = evaluated
    for name in ("t", "e"):
        marker = root / name / COMPLETE
        assert marker.is_file()
        newest = max(
            p.stat().st_mtime_ns for p in (root / name).iterdir() if p.is_file() and p.name != COMPLETE
        )
        assert marker.stat().st_mtime_ns >= newest


def test_evaluate_refuses_the_adapter_of_an_unfinished_training_run(evaluated, tmp_path):
    import shutil

    root, _, _ = evaluated
    shutil.copytree(root / "t", tmp_path / "t")
    (tmp_path / "t" / COMPLETE).unlink()
    with pytest.raises(TliError, match=r"incomplete training run .*tli train --resume"):
        evaluate(tmp_path / "t" / "adapter", n_boot=200)


@contextlib.contextmanager
def another_process_holding(out):
    """A child process that holds the lock of ``out`` until the block ends, then is killed with SIGKILL."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from tli.runs import lock_run_dir; lock_run_dir({str(out)!r}); print('held', flush=True); "
            "import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_second_run_on_the_same_out_refuses_and_a_killed_run_leaves_no_lock(
    tiny_llama_dir, toy_lexicon_file, tmp_path, capsys
):
    out = tmp_path / "busy"
    args = ["scan", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file), "--out", str(out)]
    with another_process_holding(out):
        assert main(args) == 2
        assert "being written by another tli process" in capsys.readouterr().err
    assert main(args) == 0 and is_complete(out)  # the kernel released the killed process's lock


def test_train_and_compare_refuse_an_out_another_process_writes(
    tiny_llama_dir, toy_lexicon_file, tmp_path, capsys
):
    out = tmp_path / "busy"
    train_args = ["train", "--model", str(tiny_llama_dir), "--lexicon", str(toy_lexicon_file)]
    with another_process_holding(out):
        for args in ([*train_args, "--out", str(out)], ["compare", "demo", "--out", str(out)]):
            assert main(args) == 2
            assert "being written by another tli process" in capsys.readouterr().err
        assert not (out / "checkpoints").exists() and not (out / "runs").exists()  # refused before any work


def test_the_same_seed_gives_identical_figures(tiny_llama_dir, toy_lexicon_file, tmp_path):
    def figures(name):
        result = train(str(tiny_llama_dir), str(toy_lexicon_file), out=tmp_path / f"t{name}", seed=3, **FAST)
        results = evaluate(result.adapter, n_boot=300)
        return [{k: v for k, v in e.items()} for e in results["evaluation"]], results["claims"]

    assert figures("a") == figures("b")


def test_verify_passes_on_a_finished_run_and_lists_what_was_changed(evaluated, tmp_path):
    import shutil

    root, lexicon, _ = evaluated
    report = verify(root / "e")
    assert report.ok, report.differences
    assert any("claims" in item for item in report.checked) and any(
        "loads on its recorded base" in i for i in report.checked
    )
    copy = tmp_path / "e"
    shutil.copytree(root / "e", copy)
    pairs = (copy / "pairs.csv").read_text().splitlines()
    header, first = pairs[0].split(","), pairs[1].split(",")
    first[header.index("sim_post")] = "0.999"
    (copy / "pairs.csv").write_text("\n".join([pairs[0], ",".join(first), *pairs[2:]]) + "\n")
    record = json.loads((copy / "results.json").read_text())
    record["claims"][0]["verdict"] = (
        "contradicted" if record["claims"][0]["verdict"] != "contradicted" else "supported"
    )
    (copy / "results.json").write_text(json.dumps(record))
    changed = verify(copy, load_model=False)
    assert not changed.ok
    assert any("mean_post" in d for d in changed.differences)
    assert any(d.startswith("claim ") for d in changed.differences)
    assert main(["verify", str(copy), "--load-model", "false"]) == 1


def test_verify_notices_a_changed_lexicon_file_and_refuses_incomplete_runs(evaluated, tmp_path):
    import shutil

    root, lexicon, _ = evaluated
    copy = tmp_path / "t"
    shutil.copytree(root / "t", copy)
    original = lexicon.read_text()
    try:
        lexicon.write_text(original + "mpya\tnew\n")
        report = verify(copy, load_model=False)
        assert any("lexicon file" in d and "sha256" in d for d in report.differences)
    finally:
        lexicon.write_text(original)
    (copy / COMPLETE).unlink()
    with pytest.raises(TliError, match="incomplete"):
        verify(copy)


def test_an_adapter_evaluated_on_another_lexicon_names_both(evaluated, tmp_path):
    root, lexicon, result = evaluated
    other = tmp_path / "other.tsv"
    other.write_text("kalamu\tpen\nkaratasi\tpaper\nmlango\tdoor\n")
    with pytest.raises(
        LexiconError, match=r"other\.tsv holds none of the .* pairs the adapter was trained on"
    ):
        evaluate(result.adapter, lexicon=str(other), n_boot=200)


# --- resources: a memory estimate before loading -------------------------------------------------------


def test_the_weights_estimate_counts_every_parameter(tiny_llama_dir):
    """fp32: 4 bytes per parameter of the loaded model; bf16: half of it; the first blocks only: fewer."""
    import torch

    from tli.models import load_model, weights_estimate_bytes

    loaded = load_model(str(tiny_llama_dir))
    parameters = sum(p.numel() for p in loaded.model.parameters())
    assert weights_estimate_bytes(tiny_llama_dir, torch.float32, "none", None) == 4 * parameters
    assert weights_estimate_bytes(tiny_llama_dir, torch.bfloat16, "none", None) == 2 * parameters
    assert weights_estimate_bytes(tiny_llama_dir, torch.float32, "none", 1) < 4 * parameters


def test_a_load_that_cannot_fit_warns_before_loading(tiny_llama_dir, monkeypatch, caplog):
    import tli.models

    monkeypatch.setattr(tli.models.memory, "available_memory_bytes", lambda device: 1000)
    with caplog.at_level("WARNING", logger="tli.models"):
        tli.models.load_model(str(tiny_llama_dir))
    (message,) = [r.getMessage() for r in caplog.records if "needs about" in r.getMessage()]
    assert "GB free" in message and "--quantization nf4" in message and "tli plan" in message


def test_a_load_that_fits_says_nothing(tiny_llama_dir, caplog):
    import tli.models

    with caplog.at_level("WARNING", logger="tli.models"):
        tli.models.load_model(str(tiny_llama_dir))
    assert not [r for r in caplog.records if "needs about" in r.getMessage()]


# --- a word that tokenizes to nothing is skipped and counted ------------------------------------------------


def test_unembeddable_words_are_skipped_counted_and_named(tiny_model_dirs, tmp_path):
    """Pooling without the first token and no start token: a one-token word has nothing left to pool."""
    from conftest import TOY_PAIRS

    from tli.scan import scan

    model = load_model_for_test(tiny_model_dirs["qwen2"])
    single = lambda w: len(model.tokenizer(w, add_special_tokens=False)["input_ids"]) == 1  # noqa: E731
    # Doubled toy words are several tokens on this tokenizer; the toy words themselves are one token.
    pairs = [(s + s, t + t) for s, t in TOY_PAIRS[:10]] + [("mbwa", "dog"), ("x", "a")]
    expected = {(s, t) for s, t in pairs if single(s) or single(t)}
    assert {("mbwa", "dog"), ("x", "a")} <= expected and len(expected) <= len(pairs) - 3
    lexicon = tmp_path / "pairs.tsv"
    lexicon.write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    result = scan(model, str(lexicon), pooling="mean-no-special", add_bos="never", progress=False)
    assert {(row["source"], row["target"]) for row in result.skipped_pairs} == expected
    assert all("no token left" in row["reason"] for row in result.skipped_pairs)
    assert result.n_pairs == len(pairs) - len(expected)
    assert any("skipped" in w for w in result.warnings)


def load_model_for_test(directory):
    from tli.models import load_model

    return load_model(str(directory))


# --- error kinds ------------------------------------------------------------------------------------------


def test_every_user_facing_error_is_a_tli_error_of_its_kind():
    """Configuration, data, model and training errors are distinct TliError subclasses; data errors of the
    task, TREC, vocabulary and lexicon readers are DataErrors."""
    from tli.bli import VocabularyError
    from tli.errors import ConfigError, DataError, ModelLoadError, TrainingError
    from tli.retrieval.trec import TrecFormatError
    from tli.tasks.base import TaskDataError

    for kind in (ConfigError, DataError, ModelLoadError, TrainingError):
        assert issubclass(kind, TliError)
    for reader_error in (LexiconError, TaskDataError, TrecFormatError, VocabularyError):
        assert issubclass(reader_error, DataError)
    assert not issubclass(ConfigError, DataError) and not issubclass(ModelLoadError, DataError)


def test_no_bare_tli_error_is_raised_in_the_package():
    """Every raise names its kind, so callers can catch configuration, data and model problems apart."""
    import pathlib

    import tli

    root = pathlib.Path(tli.__file__).parent
    bare = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "raise TliError(" in line
    ]
    assert not bare, f"raise a ConfigError / DataError / ModelLoadError / TrainingError instead: {bare}"
