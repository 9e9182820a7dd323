"""Two training processes (torchrun, gloo on CPU; DDP through Accelerate) take exactly the steps of one
process with --grad-accum 2: the same adapter comes out."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import TOY_PAIRS

from tli.distributed import DistributedContext, shard


def test_shard_gives_each_rank_every_wth_batch_and_equal_counts():
    batches = [[i] for i in range(7)]
    ranks = [shard(batches, DistributedContext(rank=r, world_size=3)) for r in range(3)]
    assert ranks == [[[0], [3]], [[1], [4]], [[2], [5]]]  # batch 6 dropped: every rank takes 2 steps
    assert shard(batches, DistributedContext()) == batches


def _train_cli(args, env, nproc):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    command = [*launcher, "-m", "tli", *args] if nproc > 1 else [sys.executable, "-m", "tli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_two_processes_equal_one_process_with_gradient_accumulation(tiny_llama_dir, tmp_path):
    lexicon = tmp_path / "lex.csv"
    rows = [f"{s},{t},trained" for s, t in TOY_PAIRS] + ["kuku,chicken,control", "yai,egg,control"]
    lexicon.write_text("source,target,group\n" + "\n".join(rows) + "\n")  # 24 trained → 6 batches of 4
    env = {**os.environ, "TLI_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    common = [
        "train",
        "--model",
        str(tiny_llama_dir),
        "--lexicon",
        str(lexicon),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "5e-3",
        "--warmup-steps",
        "1",
        "--lora-dropout",
        "0",
        "--validation-fraction",
        "0",
    ]
    single = _train_cli([*common, "--grad-accum", "2", "--out", str(tmp_path / "one")], env, 1)
    assert single.returncode == 0, single.stderr[-2000:]
    double = _train_cli([*common, "--out", str(tmp_path / "two")], env, 2)
    assert double.returncode == 0, double.stderr[-2000:]
    assert double.stdout.count("adapter:") == 1  # only the main process prints the summary

    from safetensors.torch import load_file

    one = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    two = load_file(str(tmp_path / "two" / "adapter" / "adapter_model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(one[key], two[key], atol=1e-5, rtol=1e-4)
    record_one = json.loads((tmp_path / "one" / "results.json").read_text())
    record_two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert record_one["timing"]["steps"] == record_two["timing"]["steps"] == 6
    # The gradients were averaged by DDP (Accelerate's wrapper), not by a loop over parameters.
    assert record_one["distributed"] == {"kind": "single", "world_size": 1}
    assert record_two["distributed"] == {"kind": "ddp", "world_size": 2}
    assert record_two["tokens_seen"] == record_one["tokens_seen"]  # counted over both processes
    logged = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in logged if "loss" in r]) == 6  # only the main process writes the log


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_two_processes_resumed_from_a_checkpoint_equal_the_uninterrupted_run_with_dropout(
    tiny_llama_dir, tmp_path
):
    """Each process restores its own RNG state (dropout masks differ per process), so resuming a 2-process run
    from its epoch-1 checkpoint gives the uninterrupted run's adapter bit for bit."""
    import shutil

    from safetensors.torch import load_file

    lexicon = tmp_path / "lex.csv"
    rows = [f"{s},{t},trained" for s, t in TOY_PAIRS] + ["kuku,chicken,control", "yai,egg,control"]
    lexicon.write_text("source,target,group\n" + "\n".join(rows) + "\n")
    env = {**os.environ, "TLI_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    common = ["train", "--model", str(tiny_llama_dir), "--lexicon", str(lexicon), "--epochs", "2",
              "--batch-size", "4", "--lr", "5e-3", "--warmup-steps", "1", "--lora-dropout", "0.1",
              "--validation-fraction", "0"]  # fmt: skip
    whole = _train_cli([*common, "--out", str(tmp_path / "whole")], env, 2)
    assert whole.returncode == 0, whole.stderr[-2000:]
    resumed = tmp_path / "resumed"  # the same run, stopped after its epoch-1 checkpoint
    shutil.copytree(tmp_path / "whole", resumed)
    for name in ("adapter", "checkpoints/epoch-2"):
        shutil.rmtree(resumed / name)
    for name in ("results.json", "complete"):
        (resumed / name).unlink(missing_ok=True)
    again = _train_cli([*common, "--out", str(resumed), "--resume"], env, 2)
    assert again.returncode == 0, again.stderr[-2000:]
    one = load_file(str(tmp_path / "whole" / "adapter" / "adapter_model.safetensors"))
    two = load_file(str(resumed / "adapter" / "adapter_model.safetensors"))
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
