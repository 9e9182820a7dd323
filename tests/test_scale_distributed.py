"""Training through Accelerate: DDP on 2 CPU processes (gloo) equals one process on the same global batch;
FSDP / DeepSpeed where the backend lacks them are one clear line; the shipped launch configs parse.

The task fine-tuning loop every ``tli compare`` strategy shares (``full`` = every weight, ``lora``) runs under
``torchrun`` with 2 processes and once alone: the same losses and the same weights come out. (``tli train``
under DDP is tested in test_distributed.py.) FSDP and DeepSpeed need CUDA GPUs through Accelerate; none was
available, so those paths are untested here (see docs/scaling.md).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tli.distributed import (
    ACCELERATE_CONFIGS,
    DistributedContext,
    accelerate_config,
    check_backend,
    split_examples,
)
from tli.errors import ConfigError

STEPS, BATCH = 3, 4


def _features(tokenizer) -> list[dict]:
    """Eight prompt → answer examples: labels −100 on the prompt, the answer's ids after it (lengths differ,
    so the two processes see different token counts and the global normalisation matters)."""
    pairs = [
        ("mbwa", "dog"),
        ("paka", "cat"),
        ("maji", "water is here"),
        ("moto", "fire"),
        ("nyumba", "the house"),
        ("kitabu", "book"),
        ("mti", "tree of the"),
        ("jua", "sun"),
    ]
    features = []
    for prompt, answer in pairs:
        p = tokenizer(prompt)["input_ids"]
        a = tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
        features.append({"input_ids": p + a, "labels": [-100] * len(p) + a})
    return features


def worker(model_dir: str, strategy_name: str, out: str, fsdp: str = "ddp") -> None:
    """One process of the comparison: prepare a strategy, fine-tune it, save its weights and losses."""
    from tli.models import load_model

    if fsdp == "fsdp":
        force_cpu_fsdp()
    from tli.strategies import StrategyOptions, get_strategy
    from tli.strategies.finetune import Budget, finetune

    loaded = load_model(model_dir, purpose="train")
    strategy = get_strategy(strategy_name, StrategyOptions(lora_dropout=0.0))
    model = strategy.prepare(loaded, seed=0, workdir=Path(out))
    stats = finetune(
        model,
        _features(loaded.tokenizer),
        Budget(steps=STEPS, batch_size=BATCH, lr=1e-3, warmup_steps=1),
        seed=0,
        pad_id=loaded.tokenizer.pad_token_id,
        device=loaded.device,
        progress=False,
    )
    strategy.save(model, Path(out) / "weights")
    if int(os.environ.get("RANK", "0")) == 0:
        (Path(out) / "stats.json").write_text(json.dumps(stats))


def force_cpu_fsdp() -> None:
    """Make this process's training context Accelerate's FSDP2 on gloo (test only).

    Accelerate offers FSDP on GPU backends only, and tli refuses it on a CPU; torch's FSDP2 itself runs on
    gloo, and Accelerate's FSDP2 code does too once its state says FSDP. This exercises tli's sharded path
    (FSDP2 wrapping of the encoder or the whole model, gathered state dicts, sharded checkpoints) on this CPU
    machine.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    import tli.distributed as distributed

    accelerator = Accelerator(cpu=True)
    state = AcceleratorState()
    PartialState().distributed_type = state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap", state_dict_type="FULL_STATE_DICT"
    )
    distributed._CONTEXT = distributed.DistributedContext(
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        kind="fsdp",
        accelerator=accelerator,
    )


def tli_train_worker(model_dir: str, lexicon: str, out: str, grad_accum: str, fsdp: str) -> None:
    """``tli.train.train`` in this process (forced onto FSDP2 when ``fsdp == "fsdp"``)."""
    import importlib

    if fsdp == "fsdp":
        force_cpu_fsdp()
    importlib.import_module("tli.train").train(
        model_dir, lexicon, out=out, grad_accum=int(grad_accum), **TLI_OPTIONS
    )


TLI_OPTIONS = dict(epochs=2, batch_size=4, lr=5e-3, warmup_steps=1, lora_dropout=0.0, validation_fraction=0)


def _launch(script_args: list[str], processes: int) -> None:
    if processes > 1:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
        ]
    else:
        command = [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    result = subprocess.run(
        [*command, __file__, *script_args], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _run(model_dir, strategy, out: Path, processes: int, fsdp: bool = False) -> dict:
    out.mkdir(parents=True)
    _launch(["worker", str(model_dir), strategy, str(out), "fsdp" if fsdp else "ddp"], processes)
    return json.loads((out / "stats.json").read_text())


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    assert files, f"nothing saved in {directory}"
    return {k: v for f in files for k, v in load_file(str(f)).items()}


@pytest.mark.slow  # four fresh processes import torch and transformers: ~25 s on 2 cores
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_two_ddp_processes_fine_tune_like_one_on_the_same_global_batch(tiny_llama_dir, tmp_path, strategy):
    one = _run(tiny_llama_dir, strategy, tmp_path / "one", 1)
    two = _run(tiny_llama_dir, strategy, tmp_path / "two", 2)
    assert one["steps"] == two["steps"] == STEPS
    assert (
        one["tokens_seen"] == two["tokens_seen"]
    )  # every example of every step, counted over both processes
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-5)
    assert two["losses"][-1] < two["losses"][0]
    a, b = _weights(tmp_path / "one" / "weights"), _weights(tmp_path / "two" / "weights")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=2e-5, rtol=1e-4)


def test_each_process_takes_its_share_of_a_global_batch():
    batch = [7, 3, 9, 1, 4]
    shares = [split_examples(batch, DistributedContext(rank=r, world_size=2, kind="ddp")) for r in range(2)]
    assert shares == [[7, 9, 4], [3, 1]] and sorted(sum(shares, [])) == sorted(batch)
    assert split_examples(batch, DistributedContext()) == batch


def test_fsdp_or_deepspeed_on_a_cpu_is_refused_in_one_line(tiny_llama_dir, toy_lexicon_file, tmp_path):
    with pytest.raises(ConfigError, match="Accelerate shards only on CUDA GPUs"):
        check_backend("fsdp", torch.device("cpu"))
    with pytest.raises(ConfigError, match="DeepSpeed ZeRO was asked for"):
        check_backend("deepspeed", torch.device("cpu"))
    check_backend("ddp", torch.device("cpu"))  # DDP runs on gloo
    env = {**os.environ, "ACCELERATE_USE_FSDP": "true", "TLI_CACHE_DIR": str(tmp_path / "cache")}
    args = [
        "train",
        "--model",
        str(tiny_llama_dir),
        "--lexicon",
        str(toy_lexicon_file),
        "--out",
        str(tmp_path / "o"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "tli", *args, "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "FSDP" in lines[0] and "cpu" in lines[0]
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_the_shipped_accelerate_configs_parse_as_accelerate_reads_them():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    kinds = {}
    for name in ACCELERATE_CONFIGS:
        config = load_config_from_file(str(accelerate_config(name)))
        kinds[name] = (config.distributed_type, config.num_processes, config.num_machines)
    assert kinds == {
        "1gpu": (DistributedType.NO, 1, 1),
        "8gpu-ddp": (DistributedType.MULTI_GPU, 8, 1),
        "8gpu-fsdp": (DistributedType.FSDP, 8, 1),
        "multinode-fsdp": (DistributedType.FSDP, 16, 2),
        "8gpu-deepspeed-zero3": (DistributedType.DEEPSPEED, 8, 1),
    }
    fsdp = load_config_from_file(str(accelerate_config("8gpu-fsdp"))).fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    zero = load_config_from_file(str(accelerate_config("8gpu-deepspeed-zero3"))).deepspeed_config
    assert zero["zero_stage"] == 3
    with pytest.raises(ConfigError, match="choose from 1gpu"):
        accelerate_config("4gpu")


def test_alone_the_context_is_plain_pytorch(monkeypatch):
    from tli.distributed import distributed_context

    for name in ("WORLD_SIZE", "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)
    context = distributed_context(torch.device("cpu"))
    assert context.kind == "single" and context.accelerator is None and context.is_main
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert context.prepare(model, optimizer) == (model, optimizer)
    assert context.full_state_dict(model) is None and context.sum(3.0) == 3.0


@pytest.mark.slow  # fresh processes: ~30 s on 2 cores
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_fsdp2_sharded_tli_training_gives_the_one_process_adapter(tiny_llama_dir, tmp_path):
    """Two FSDP2 processes (forced onto gloo, see :func:`force_cpu_fsdp`) train the TLI adapter of one process
    with --grad-accum 2: the encoder is sharded, the adapter gathered for every checkpoint and at the end."""
    from conftest import TOY_PAIRS
    from safetensors.torch import load_file

    lexicon = tmp_path / "lex.csv"
    rows = [f"{s},{t},trained" for s, t in TOY_PAIRS] + ["kuku,chicken,control", "yai,egg,control"]
    lexicon.write_text("source,target,group\n" + "\n".join(rows) + "\n")
    _launch(["train", str(tiny_llama_dir), str(lexicon), str(tmp_path / "one"), "2", "ddp"], 1)
    _launch(["train", str(tiny_llama_dir), str(lexicon), str(tmp_path / "two"), "1", "fsdp"], 2)
    one = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    two = load_file(str(tmp_path / "two" / "adapter" / "adapter_model.safetensors"))
    assert one.keys() == two.keys() and len(one) == 8
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=1e-4)
    record = json.loads((tmp_path / "two" / "results.json").read_text())
    assert record["distributed"] == {"kind": "fsdp", "world_size": 2} and record["timing"]["steps"] == 6
    checkpoint = tmp_path / "two" / "checkpoints" / "epoch-2"
    assert (checkpoint / "accelerate_state").is_dir() and (checkpoint / "adapter_model.safetensors").is_file()


@pytest.mark.slow  # fresh processes: ~25 s on 2 cores
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_fsdp2_sharded_full_fine_tuning_gives_the_one_process_weights(tiny_llama_dir, tmp_path):
    one = _run(tiny_llama_dir, "full", tmp_path / "one", 1)
    two = _run(tiny_llama_dir, "full", tmp_path / "two", 2, fsdp=True)
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-5)
    a, b = _weights(tmp_path / "one" / "weights"), _weights(tmp_path / "two" / "weights")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=2e-5, rtol=1e-4)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(*sys.argv[2:6])
if __name__ == "__main__" and sys.argv[1:2] == ["train"]:
    tli_train_worker(*sys.argv[2:7])


def test_a_launched_backward_is_not_divided_twice_by_the_accumulation_steps():
    """tli divides each micro-batch's loss by k; Accelerate's backward divides by its gradient_accumulation_steps
    (k) again — the context undoes that, so the gradient is the one-process gradient."""
    from tli.distributed import DistributedContext

    class Accelerator:  # Accelerate's backward, as accelerate 1.x writes it for DDP and FSDP
        gradient_accumulation_steps = 4

        def backward(self, loss):
            (loss / self.gradient_accumulation_steps).backward()

    weight = torch.tensor(3.0, requires_grad=True)
    DistributedContext(world_size=2, kind="ddp", accelerator=Accelerator()).backward(weight * 2.0 / 4)
    alone = torch.tensor(3.0, requires_grad=True)
    DistributedContext().backward(alone * 2.0 / 4)
    assert weight.grad == alone.grad == pytest.approx(0.5)
