"""Zero-shot dense retrieval with a causal LM: the per-layer curve, the cache, templates, the TREC files."""

import numpy as np
import pytest
import torch

from tli.models import load_model
from tli.retrieval.encode import (
    DenseRecipe,
    EmbeddingStore,
    LLMEncoder,
    encode_texts,
    model_state_fingerprint,
)
from tli.retrieval.ranking_metrics import mean_scores
from tli.tasks import get_task


@pytest.fixture(scope="module")
def loaded(tiny_model_dirs):
    return load_model(tiny_model_dirs["llama"])


@pytest.fixture(scope="module")
def mrtydi():
    return get_task("mrtydi").load(None, "sw", limit=12)


def test_the_layer_curve_equals_separate_evaluations_at_each_layer(loaded, mrtydi):
    task = get_task("mrtydi")
    config = task.make_config({"layer": 2, "layer_curve": True, "cache": False})
    every = task.evaluate(loaded.model, loaded.tokenizer, mrtydi, config, progress=False)
    curve = every.details["layer_curve"]
    assert sorted(curve, key=int) == ["0", "1", "2", "3", "4"]  # hidden states 0..N of the 4-block model
    for layer in (0, 4):
        alone = task.evaluate(loaded.model, loaded.tokenizer, mrtydi,
                              task.make_config({"layer": layer, "layer_curve": False, "cache": False}),
                              progress=False)  # fmt: skip
        assert alone.metrics["mrr@10"].score == pytest.approx(curve[str(layer)], abs=1e-9)
    assert every.metrics["mrr@10"].score == pytest.approx(curve["2"])
    # rows, run and metrics agree: the corpus score of the rows is the reported score, recomputed by ranx
    assert task.corpus_score("mrr@100", every.predictions) == pytest.approx(every.metrics["mrr@100"].score)
    assert mean_scores(every.qrels, every.run)["ndcg@10"] == pytest.approx(every.metrics["ndcg@10"].score)
    assert every.details["passages_unscored"] == 1 and every.details["unscored_examples"] == ["9003#0"]
    low, high = every.metrics["mrr@10"].ci95_low, every.metrics["mrr@10"].ci95_high
    assert low <= every.metrics["mrr@10"].score <= high


def test_batched_encoding_equals_one_text_at_a_time(loaded):
    recipe = DenseRecipe(layers=(1, 4), pooling="mean-no-special", batch_size=4)
    encoder = LLMEncoder(loaded.model, loaded.tokenizer, recipe, "fingerprint")
    texts = ["mbwa na paka", "maji", "the sea is blue and the sun", "kitabu cha mtoto"]
    batched = encoder.encode(texts, "passage")
    single = np.concatenate([encoder.encode([t], "passage") for t in texts], axis=1)
    assert batched.shape == (2, 4, 128)
    assert np.allclose(batched, single, atol=1e-5)
    assert np.allclose(np.linalg.norm(batched, axis=-1), 1.0, atol=1e-5)


def test_prompt_templates_with_last_token_pooling(loaded, mrtydi):
    task = get_task("mrtydi")
    config = task.make_config({"pooling": "last", "layer": "last", "layer_curve": [1, 3], "cache": False,
                               "query_template": 'Question: "{text}" means in one word: "',
                               "passage_template": 'Passage: "{text}" means in one word: "'})  # fmt: skip
    result = task.evaluate(loaded.model, loaded.tokenizer, mrtydi, config, progress=False)
    assert result.details["recipe"]["pooling"] == "last" and result.details["layer"] == 4
    assert set(result.details["layer_curve"]) == {"1", "3"}  # the curve holds the listed layers
    with pytest.raises(Exception, match="needs exactly one \\{text\\} slot"):
        task.make_config({"query_template": "no slot"})


def test_the_embedding_cache_is_reused_and_resumed(loaded, tmp_path):
    calls = []

    class Counting(LLMEncoder):
        def encode(self, texts, role, *, progress=None):
            calls.append(len(texts))
            return super().encode(texts, role, progress=progress)

    recipe = DenseRecipe(layers=(2,), batch_size=8)
    texts = [f"mbwa {i} na paka" for i in range(10)]
    encoder = Counting(loaded.model, loaded.tokenizer, recipe, model_state_fingerprint(loaded.model))
    first = encode_texts(encoder, texts, "passage", cache=str(tmp_path), chunk_size=4, progress=False)
    assert calls == [4, 4, 2] and len(list(first.folder.glob("part-*.npy"))) == 3
    # an interrupted encoding resumes at the missing chunk; a complete one is not recomputed
    (first.folder / "part-00001.npy").unlink()
    calls.clear()
    again = encode_texts(encoder, texts, "passage", cache=str(tmp_path), chunk_size=4, progress=False)
    assert calls == [4] and np.array_equal(again.matrix(0), first.matrix(0))
    calls.clear()
    encode_texts(encoder, texts, "passage", cache=str(tmp_path), chunk_size=4, progress=False)
    assert calls == []
    # another text list, role or recipe is another key
    other = encode_texts(encoder, texts[:-1], "passage", cache=str(tmp_path), chunk_size=4, progress=False)
    assert other.folder != first.folder
    assert isinstance(first, EmbeddingStore) and first.matrix(0).shape == (10, 128)


def test_model_state_fingerprint_follows_the_weights(loaded):
    before = model_state_fingerprint(loaded.model, {"name": "x"})
    assert before == model_state_fingerprint(loaded.model, {"name": "x"})
    parameter = next(p for n, p in loaded.model.named_parameters() if "layers.1.self_attn.q_proj" in n)
    with torch.no_grad():
        parameter.add_(0.01)
        try:
            assert model_state_fingerprint(loaded.model, {"name": "x"}) != before
        finally:
            parameter.sub_(0.01)
