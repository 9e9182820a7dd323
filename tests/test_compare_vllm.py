"""backend: vllm — refused in one line without a GPU or vLLM; its reading of vLLM's outputs, and the vLLM phase of
tli compare, checked against the HF backend through an engine that answers in vLLM's output types (vLLM itself
needs a GPU: not installed where these tests run)."""

import json
import sys
import types
from dataclasses import dataclass, field

import pytest
import torch

from tli.cli import main
from tli.compare import compare
from tli.models import load_model
from tli.models.vllm_engine import VLLMModel, summed_prompt_logprobs, tensor_parallel_size
from tli.tasks.generation import generate_texts
from tli.tasks.loglikelihood import continuation_logliks

# -- an engine with vLLM's interface, computing with a Hugging Face model ---------------------------------------


@dataclass
class SamplingParams:
    temperature: float = 1.0
    max_tokens: int = 16
    prompt_logprobs: int | None = None
    detokenize: bool = True


class TokensPrompt(dict):
    def __init__(self, prompt_token_ids):
        super().__init__(prompt_token_ids=prompt_token_ids)


@dataclass
class Logprob:
    logprob: float


@dataclass
class Completion:
    token_ids: list[int]


@dataclass
class RequestOutput:
    outputs: list[Completion]
    prompt_logprobs: list = field(default_factory=list)


class FakeLLM:
    """``vllm.LLM.generate`` for token prompts: greedy one prompt at a time (stopping after EOS, which vLLM
    returns), or ``prompt_logprobs`` (None at position 0, then {token: Logprob} per position)."""

    def __init__(self, model, eos_token_id):
        self.model, self.eos = model.eval(), eos_token_id
        self.lora_requests = []

    def generate(self, prompts, params, lora_request=None, use_tqdm=False):
        self.lora_requests.append(lora_request)
        return [self._one(list(p["prompt_token_ids"]), params) for p in prompts]

    @torch.no_grad()
    def _one(self, ids, params):
        if params.prompt_logprobs:
            logits = (
                self.model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
            )  # (len, vocab)
            logprobs = [None] + [{ids[p]: Logprob(float(logits[p - 1, ids[p]]))} for p in range(1, len(ids))]
            return RequestOutput([Completion([int(logits[-1].argmax())])], logprobs)
        new = []
        for _ in range(params.max_tokens):
            token = int(self.model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            new.append(token)
            if token == self.eos:
                break
        return RequestOutput([Completion(new)])


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.SamplingParams, module.TokensPrompt = SamplingParams, TokensPrompt
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda name, number, path: (name, number, path)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)
    return module


def test_vllm_generation_and_loglikelihoods_equal_the_hf_backends(tiny_llama_dir, fake_vllm):
    loaded = load_model(str(tiny_llama_dir), device="cpu")
    tokenizer = loaded.tokenizer
    served = VLLMModel(FakeLLM(loaded.model, tokenizer.eos_token_id), loaded.model.config, None)
    prompts = [
        "Habari ya leo ni",
        "Mtoto anasoma kitabu",
        "a",
        "Swahili summary of a long article about rain",
    ]
    options = {"max_new_tokens": 7, "batch_size": 3, "add_special_tokens": True, "progress": False}
    assert generate_texts(served, tokenizer, prompts, **options) == generate_texts(
        loaded.model, tokenizer, prompts, **options
    )
    continuations = [" ndiyo", " hapana", " labda kesho", " entailment"]
    hf = continuation_logliks(loaded.model, tokenizer, continuations, batch_size=2, progress=False)
    vllm = continuation_logliks(served, tokenizer, continuations, batch_size=2, progress=False)
    assert vllm == pytest.approx(hf, abs=1e-4)


def test_summed_prompt_logprobs_by_hand():
    logprobs = [None, {5: Logprob(-1.0), 9: Logprob(-0.1)}, {6: -2.5}, {7: Logprob(-0.25)}]
    assert summed_prompt_logprobs([4, 5, 6, 7], logprobs, 2) == pytest.approx(-2.75)
    assert summed_prompt_logprobs([4, 5, 6, 7], logprobs, 3) == pytest.approx(-3.75)


@pytest.mark.parametrize(
    ("gpus", "heads", "expected"), [(1, 32, 1), (2, 64, 2), (3, 64, 4), (3, 40, 4), (3, 12, 3)]
)
def test_tensor_parallel_size_covers_the_plan_and_divides_the_heads(gpus, heads, expected):
    assert tensor_parallel_size(gpus, heads) == expected


EXPERIMENT = """strategies: [none, lora, lora-early]
tasks:
  xlsum: {path: "samples:xlsum", languages: [sw], limit: 4, max_new_tokens: 6, max_input_tokens: 64}
  xnli: {path: "samples:xnli/xnli.test.tsv", languages: [sw], limit: 9}
budget: {steps: 2, batch_size: 2}
seeds: [0]
n_resamples: 200
"""


def test_the_vllm_phase_gives_the_hf_backends_cells(tiny_llama_dir, tmp_path, fake_vllm, monkeypatch):
    """none and LoRA-family cells scored after training by the (fake) engine, with each adapter as a LoRA request;
    every figure equals the HF backend's run."""
    import tli.compare.experiment as experiment_module
    import tli.compare.vllm_runner as vllm_runner

    opened = []

    class FakeEngines:
        def __init__(self, **options):
            self.tensor_parallel_size = options["tensor_parallel_size"]

        def model(self, path, *, adapter=None, tokenizer=None):
            loaded = load_model(path, adapter=str(adapter) if adapter else None, device="cpu")
            opened.append((path, adapter))
            return VLLMModel(FakeLLM(loaded.model, tokenizer.eos_token_id), loaded.model.config, adapter)

        def close(self):
            pass

    monkeypatch.setattr(experiment_module, "check_vllm_available", lambda cuda: None)
    monkeypatch.setattr(vllm_runner, "VLLMEngines", FakeEngines)
    body = f"models: [{tiny_llama_dir}]\n" + EXPERIMENT
    (tmp_path / "hf.yaml").write_text(body)
    (tmp_path / "vllm.yaml").write_text(body + "backend: vllm\n")
    hf = compare(tmp_path / "hf.yaml", out=tmp_path / "hf", progress=False)
    served = compare(tmp_path / "vllm.yaml", out=tmp_path / "vllm", progress=False)
    by_key = {(c["strategy"], c["task"]): c for c in hf["cells"]}
    assert len(served["cells"]) == len(by_key) == 6
    for cell in served["cells"]:
        reference = by_key[(cell["strategy"], cell["task"])]
        assert cell["status"] == reference["status"] == "done"
        for metric, score in reference["metrics"].items():
            assert cell["metrics"][metric]["score"] == pytest.approx(score["score"], abs=1e-6)
        assert cell["cost"]["evaluate_backend"] == "vllm"
        assert cell["settings"]["backend"] == "vllm"
    adapters = {str(adapter).split("/runs/")[-1] if adapter else None for _, adapter in opened}
    assert adapters == {None, *(f"{tiny_llama_dir.name}/{s}/seed-0/adapter" for s in ("lora", "lora-early"))}
    record = json.loads((tmp_path / "vllm" / "results.json").read_text())
    assert record["experiment"]["backend"] == "vllm"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("backend: vllm\n", "backend vllm needs a CUDA GPU (none is visible)"),
        ("backend: sglang\n", "backend 'sglang' is not one of hf, vllm"),
        ("backend: vllm\nstrategies: [none, full]\n", "set save_full_weights: true"),
    ],
)
def test_backend_vllm_that_cannot_run_is_one_line_before_any_model_loads(
    tiny_llama_dir, tmp_path, capsys, extra, message
):
    body = f"models: [{tiny_llama_dir}]\n" + EXPERIMENT
    if "strategies:" in extra:
        body = body.replace("strategies: [none, lora, lora-early]\n", "")
    path = tmp_path / "e.yaml"
    path.write_text(body + extra)
    assert main(["compare", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()
