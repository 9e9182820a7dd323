"""Data-parallel evaluation (tli compare under a launcher): each process scores its share, everyone gets all.

A worker script runs the same evaluation calls (generation, log-likelihoods, embeddings, an lm-evaluation-harness
task) alone and under torchrun with 2 gloo processes; each process reports which examples it computed itself and
what it got back. The shares must partition the examples (with
the padding that keeps the number of batches equal), and every process must get the one-process results.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from tli.distributed import DistributedContext, evaluation_context, score_in_shares, shared_evaluation

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import numpy as np
    import torch

    from tli.compare import parse_experiment
    from tli.distributed import distributed_context, score_in_shares, shared_evaluation
    from tli.tasks import get_task
    from tli.models import load_model
    from tli.retrieval.encode import DenseRecipe, LLMEncoder, encode_texts
    from tli.tasks.generation import generate_texts
    from tli.tasks.loglikelihood import continuation_logliks

    model_dir, out, cache = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    context = distributed_context(torch.device("cpu"))  # Accelerate's DDP context under torchrun, else alone
    rank = context.rank
    loaded = load_model(model_dir, dtype="float32", device="cpu")
    model, tokenizer = loaded.model.eval(), loaded.tokenizer

    computed = []  # what this process passed to the model itself
    real_generate = model.generate
    def counting_generate(*args, **kwargs):
        computed.append(int(kwargs["input_ids"].shape[0]))
        return real_generate(*args, **kwargs)
    model.generate = counting_generate

    prompts = ["habari ya leo", "mbwa", "paka mweusi anakula samaki mkubwa", "maji", "nyumba nzuri sana"]
    record = {"rank": rank}
    with shared_evaluation(context):
        record["dealt"] = sorted(score_in_shares([4, 0, 3, 1, 2], lambda ix: [(i, rank) for i in ix]).values())
        record["texts"] = generate_texts(
            model, tokenizer, prompts, max_new_tokens=4, batch_size=2, add_special_tokens=True, progress=False
        )
        record["generated_rows"] = sum(computed)
        record["logliks"] = continuation_logliks(model, tokenizer, [" " + p for p in prompts], batch_size=2)
        recipe = DenseRecipe(layers=(1, 2), batch_size=2)
        encoder = LLMEncoder(model, tokenizer, recipe, "tiny")
        store = encode_texts(encoder, prompts, "passage", cache=cache, chunk_size=2, progress=False)
        record["kept_in_memory"] = sorted(store._memory)
        forwarded = []  # sequences this process passed through the model for the harness
        model.register_forward_pre_hook(
            lambda module, args, kwargs: forwarded.append(int((args[0] if args else kwargs["input_ids"]).shape[0])),
            with_kwargs=True,
        )
        harness_config = parse_experiment("lm-eval-demo", check_device=False).tasks["lm-eval:xcopa_sw"]
        task = get_task("lm-eval:xcopa_sw")
        examples = task.load(harness_config.path, "sw", split=harness_config.split)
        harness = task.evaluate(model, tokenizer, examples, harness_config, progress=False)
        record["harness_rows"] = harness.predictions
        record["harness_acc"] = harness.metrics["acc"].score
        record["harness_rows_computed"] = sum(forwarded)
        record["vectors"] = np.concatenate([store.get(i) for i in range(3)], axis=1).tolist()
    (out / f"rank-{rank}.json").write_text(json.dumps(record))
    """
)


def test_alone_score_in_shares_scores_everything_in_one_call():
    calls = []
    result = score_in_shares([2, 0, 1], lambda ix: calls.append(list(ix)) or [i * 10 for i in ix])
    assert calls == [[2, 0, 1]] and result == {2: 20, 0: 0, 1: 10}
    assert score_in_shares([], lambda ix: []) == {}


def test_shared_evaluation_sets_the_context_only_inside_the_block():
    context = DistributedContext(rank=0, world_size=1)
    assert evaluation_context().world_size == 1
    with shared_evaluation(context) as inside:
        assert inside is context and evaluation_context() is context
    assert evaluation_context() is not context


def _run_worker(script, model_dir, out, cache, processes: int) -> list[dict]:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(script), str(model_dir), str(out), str(cache)]
    if processes > 1:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
        ]
        command += [str(script), str(model_dir), str(out), str(cache)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(processes)]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_two_processes_share_the_examples_and_each_gets_the_one_process_results(tiny_llama_dir, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    (alone,) = _run_worker(script, tiny_llama_dir, tmp_path / "one", tmp_path / "cache-one", 1)
    ranks = _run_worker(script, tiny_llama_dir, tmp_path / "two", tmp_path / "cache-two", 2)

    # Dealt like cards from the given order: rank 0 takes 4, 3, 2; rank 1 takes 0, 1 (and 2 again as padding,
    # whose result is dropped): every index once, everywhere.
    assert alone["dealt"] == [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]]
    for record in ranks:
        assert record["dealt"] == [[0, 1], [1, 1], [2, 0], [3, 0], [4, 0]]

    # 5 prompts: one process generates all 5; two generate 3 rows each (one padded), the same number of batches.
    assert alone["generated_rows"] == 5
    assert [r["generated_rows"] for r in ranks] == [3, 3]
    for record in ranks:
        assert record["texts"] == alone["texts"]
        assert record["logliks"] == pytest.approx(alone["logliks"], abs=1e-4)
        np.testing.assert_allclose(record["vectors"], alone["vectors"], atol=1e-5)

    # lm-evaluation-harness's own data parallelism: XCOPA's 10 documents × 2 choices are 20 sequences alone,
    # 10 on each process; rank 0 gathers the records, and every process returns the one-process rows.
    assert alone["harness_rows_computed"] == 20
    assert [r["harness_rows_computed"] for r in ranks] == [10, 10]
    for record in ranks:
        assert record["harness_rows"] == alone["harness_rows"] and len(record["harness_rows"]) == 10
        assert record["harness_acc"] == alone["harness_acc"]

    # Only the main process wrote the embedding cache; the other kept the parts it computed in memory.
    assert alone["kept_in_memory"] == ranks[0]["kept_in_memory"] == []
    assert ranks[1]["kept_in_memory"] == [0, 1, 2]
    parts_two = sorted(p.name for p in (tmp_path / "cache-two").rglob("part-*.npy"))
    assert parts_two == ["part-00000.npy", "part-00001.npy", "part-00002.npy"]


def test_a_harness_result_that_cannot_be_built_is_a_tli_error_on_every_process(monkeypatch):
    """The main process sends on the failure instead of raising alone (the others would wait for its result)."""
    from tli.errors import TliError
    from tli.tasks import harness

    task = harness.harness_task("xcopa_sw")
    monkeypatch.setattr(harness, "run_harness", lambda *args: {"samples": {}, "results": {}})
    config = harness.HarnessTaskConfig(harness_task="xcopa_sw", languages=("sw",), metrics=("acc",))
    with pytest.raises(TliError, match=r"^xcopa_sw: 'xcopa_sw'"):
        task.evaluate(None, None, [], config)
