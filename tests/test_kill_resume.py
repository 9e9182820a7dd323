"""`tli train` killed with SIGKILL at five points, then `--resume`: the adapter equals an uninterrupted run's.

Each kill happens in a child process running the real CLI, with one function wrapped so the process kills
itself (SIGKILL: no handler, no cleanup, no flush) right before or after the n-th call. The points cover the
first epoch, the gap between epochs, the middle of a checkpoint write, the middle of the adapter write and the
results write; after each kill the run directory must not look complete, every reader must refuse it, and
``--resume`` must finish it with the same adapter, bit for bit up to float rounding, as a run never killed.
"""

import importlib
import json
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tli.errors import TliError
from tli.runs import is_complete, require_complete
from tli.train import train

OPTIONS = {"epochs": 3, "batch_size": 4, "warmup_steps": 2, "lr": 5e-3, "lora_dropout": 0.1, "seed": 3}

# The child: wrap ``module:attribute.path`` so the n-th call kills the process before or after it runs.
DRIVER = r"""
import importlib, os, signal, sys

target, when, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
module_name, path = target.split(":")
owner = importlib.import_module(module_name)
*parents, name = path.split(".")
for parent in parents:
    owner = getattr(owner, parent)
original = getattr(owner, name)
calls = [0]

def wrapped(*args, **kwargs):
    calls[0] += 1
    if when == "before" and calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(*args, **kwargs)
    if when == "after" and calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(owner, name, wrapped)
from tli.cli import main
sys.exit(main(sys.argv[4:]))
"""


def _first_epoch(out):
    return (out / "metrics.jsonl").is_file() and not (out / "checkpoints" / "epoch-1").exists()


def _between_epochs(out):
    return (out / "checkpoints" / "epoch-1" / "trainer_state.json").is_file() and not list(
        (out / "checkpoints").glob(".epoch-2.tmp-*")
    )


def _in_checkpoint_write(out):
    (partial,) = (out / "checkpoints").glob(".epoch-2.tmp-*")
    return (partial / "training_state.pt").is_file() and not (partial / "trainer_state.json").exists()


def _in_adapter_write(out):
    (partial,) = out.glob(".adapter.tmp-*")
    return (partial / "adapter_model.safetensors").is_file() and not (out / "adapter").exists()


def _in_results_write(out):
    return (out / "results.json").is_file() and (out / "adapter").is_dir()


# (name, function wrapped, before/after, n-th call, what the directory looks like after the kill).
KILL_POINTS = [
    ("during the first epoch", "tli.train:MetricsLog.log", "before", 2, _first_epoch),
    ("between epochs", "tli.train.loop:save_checkpoint", "after", 1, _between_epochs),
    ("during a checkpoint write", "torch:save", "after", 2, _in_checkpoint_write),
    ("during the adapter write", "tli.train.loop:write_adapter_files", "before", 1, _in_adapter_write),
    ("during results writing", "tli.report.training:atomic_write_json", "after", 1, _in_results_write),
]


def _cli_args(model_dir, lexicon_file, out) -> list[str]:
    args = ["train", "--model", str(model_dir), "--lexicon", str(lexicon_file), "--out", str(out)]
    for key, value in OPTIONS.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args  # off a terminal, progress goes to the log every 30 s: nothing here


def _adapter(out) -> dict[str, torch.Tensor]:
    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dirs, tmp_path_factory):
    """The reference: the same seed and options, never killed."""
    from conftest import TOY_PAIRS

    root = tmp_path_factory.mktemp("reference")
    lexicon = root / "toy.json"
    lexicon.write_text(json.dumps([{"swahili": s, "english": e} for s, e in TOY_PAIRS]))
    train(str(tiny_model_dirs["llama"]), str(lexicon), out=root / "run", progress=False, **OPTIONS)
    return root / "run"


@pytest.mark.parametrize(
    ("point", "target", "when", "nth", "landed"), KILL_POINTS, ids=[p[0] for p in KILL_POINTS]
)
def test_sigkill_then_resume_gives_the_uninterrupted_adapter(
    point, target, when, nth, landed, uninterrupted, tiny_llama_dir, toy_lexicon_file, tmp_path
):
    out = tmp_path / "run"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            target,
            when,
            str(nth),
            *_cli_args(tiny_llama_dir, toy_lexicon_file, out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == -signal.SIGKILL, f"not killed {point}: {child.stderr[-2000:]}"
    assert landed(out), f"the kill did not land {point}"

    # Killed: the directory does not look complete, and readers refuse it with a clear line.
    assert not is_complete(out)
    with pytest.raises(TliError, match="incomplete training run"):
        require_complete(out, "training run", "resume it")
    evaluate = importlib.import_module("tli.evaluate")
    if (out / "adapter").is_dir():
        with pytest.raises(TliError, match="incomplete"):
            evaluate.evaluate(str(out), lexicon=str(toy_lexicon_file), out=tmp_path / "e")

    resumed = train(
        str(tiny_llama_dir), str(toy_lexicon_file), out=out, resume=True, progress=False, **OPTIONS
    )
    assert is_complete(out)
    reference, again = _adapter(uninterrupted), _adapter(out)
    assert reference.keys() == again.keys()
    for key in reference:
        torch.testing.assert_close(again[key], reference[key], atol=1e-6, rtol=0)
    expected = json.loads((uninterrupted / "results.json").read_text())
    assert resumed.timing["steps"] == expected["timing"]["steps"]
    assert resumed.epoch_losses == pytest.approx(expected["epoch_losses"], abs=1e-6)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == list(range(1, expected["timing"]["steps"] + 1))
    strays = [p.name for p in [*out.glob(".*.tmp-*"), *out.glob("checkpoints/.*.tmp-*")]]
    assert not strays, f"the killed process's temporary directories were left behind: {strays}"
