"""BLI conventions: vocabulary retrieval, intervals and chance levels, Procrustes, export, evaluation."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import hypergeom, norm, ortho_group

from tli.bli import (
    VocabularyError,
    VocabularyRetrieval,
    bli_evaluate,
    chance_mrr,
    chance_precision_at_k,
    embed_layer,
    export_embeddings,
    fit_procrustes,
    mrr_with_ci,
    precision_at_k_with_ci,
    procrustes_baseline,
    read_word_list,
    retrieval_report,
    tokenizer_vocabulary,
    word_boundary_marker,
)
from tli.embed import EmbedConfig, embed_all_layers
from tli.errors import ConfigError
from tli.lexicon import read_lexicon
from tli.metrics import PairIndex, csls_scores, retrieval_ranks
from tli.models import load_model
from tli.scan import embed_lexicon, lexicon_index


def _index(pairs, n_src, n_tgt):
    return PairIndex(
        src=torch.tensor([s for s, _ in pairs]),
        tgt=torch.tensor([t for _, t in pairs]),
        n_src=n_src,
        n_tgt=n_tgt,
    )


def _unit(x):
    return torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)


# ------------------------------------------------------------------ chance levels and intervals


def test_chance_precision_by_hand():
    assert chance_precision_at_k([2], 10, 1) == pytest.approx(0.2)  # 1 − C(8,1)/C(10,1)
    assert chance_precision_at_k([1], 10, 5) == pytest.approx(0.5)  # 1 − C(9,5)/C(10,5)
    assert chance_precision_at_k([1, 2], 10, 1) == pytest.approx((0.1 + 0.2) / 2)
    assert chance_precision_at_k([3], 4, 2) == 1.0  # only one wrong candidate: a gold is always in the top 2
    for g, n, k in [(1, 50, 10), (3, 1000, 5), (7, 40_000, 10)]:
        expected = 1 - hypergeom.pmf(0, n, g, k)  # no gold among k draws without replacement
        assert chance_precision_at_k([g], n, k) == pytest.approx(expected, rel=1e-9)


def test_chance_mrr_by_hand():
    assert chance_mrr([1], 2) == pytest.approx(0.75)  # rank 1 or 2, equally likely
    assert chance_mrr([2], 3) == pytest.approx(2 / 3 + (1 / 3) / 2)  # first gold at 1 w.p. 2/3, else at 2
    assert chance_mrr([1], 4) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)  # H_n / n
    assert chance_mrr([5], 5) == pytest.approx(1.0)
    assert chance_mrr([1, 2], 3) == pytest.approx(((1 + 1 / 2 + 1 / 3) / 3 + 5 / 6) / 2)


def _wilson(x, n, confidence):
    z = norm.ppf(0.5 + confidence / 2)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_precision_with_wilson_interval_by_formula(confidence):
    ranks = torch.tensor([1, 1, 2, 7, 1, 30, 4, 1])
    for k, hits in [(1, 4), (5, 6), (10, 7)]:
        estimate = precision_at_k_with_ci(ranks, k, confidence)
        assert estimate.value == hits / 8
        low, high = _wilson(hits, 8, confidence)
        assert (estimate.low, estimate.high) == (pytest.approx(low), pytest.approx(high))
    assert precision_at_k_with_ci([1, 1, 1], 1).high == pytest.approx(1.0)  # inside [0, 1] at the edge
    assert precision_at_k_with_ci([1, 1, 1], 1).low > 0.2


def test_mrr_interval():
    estimate = mrr_with_ci([1, 2, 4, 1], n_boot=2000, rng=1)
    assert estimate.value == pytest.approx((1 + 0.5 + 0.25 + 1) / 4)
    assert 0.25 <= estimate.low < estimate.value < estimate.high <= 1.0
    same = mrr_with_ci([2, 2, 2], n_boot=200)
    assert (same.value, same.low, same.high) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError):
        mrr_with_ci([0, 1])


def test_report_fields_and_json():
    report = retrieval_report([1, 3, 12], [1, 2, 1], 20, method="cosine", n_boot=500)
    row = report.to_dict()
    json.dumps(row, allow_nan=False)
    assert row["n_queries"] == 3 and row["n_candidates"] == 20 and row["method"] == "cosine"
    assert row["p_at_1"] == pytest.approx(1 / 3) and row["p_at_5"] == pytest.approx(2 / 3)
    assert row["p_at_10"] == pytest.approx(2 / 3)
    assert row["p_at_1_chance"] == pytest.approx((1 / 20 + 2 / 20 + 1 / 20) / 3)
    assert row["p_at_5_chance"] == pytest.approx((5 / 20 + (1 - (15 / 20) * (14 / 19)) + 5 / 20) / 3)
    assert row["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 3)
    assert row["p_at_1_ci_low"] <= row["p_at_1"] <= row["p_at_1_ci_high"]


# ------------------------------------------------------------------ retrieval over a vocabulary


def test_vocabulary_ranks_by_hand():
    queries = _unit([[1.0, 0.0], [0.8, 0.6]])
    candidates = _unit([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]])
    # query 0 → gold candidate 1 (cos 0): beaten by 0 (1.0), 2 (0.6) and 3 (1.0) → rank 4.
    # query 1 → gold {0, 2} (0.8, 0.96): the best gold 0.96 is first → rank 1.
    retrieval = VocabularyRetrieval(queries, candidates, _index([(0, 1), (1, 0), (1, 2)], 2, 4))
    found = retrieval.retrieve("cosine")
    assert found.ranks.tolist() == [4, 1]
    assert found.top1.tolist() == [0, 2]
    assert retrieval.n_gold_per_query.tolist() == [1, 2]
    # Ties count against the gold: candidates 0 and 3 are identical.
    tie = VocabularyRetrieval(queries, candidates, _index([(0, 0), (1, 2)], 2, 4))
    assert tie.ranks().tolist() == [2, 1]


def _random_problem(n_q=7, n_c=11, h=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    queries, candidates = _unit(torch.randn(n_q, h, generator=gen)), _unit(torch.randn(n_c, h, generator=gen))
    pairs = [(i, (3 * i) % n_c) for i in range(n_q)] + [(0, 5), (2, 9), (2, 10)]
    return queries, candidates, _index(pairs, n_q, n_c)


@pytest.mark.parametrize("csls_k", [3, 10])
def test_chunked_equals_unchunked_and_metrics(csls_k):
    queries, candidates, gold = _random_problem()
    sim = queries @ candidates.T
    expected = {"cosine": sim, "csls": csls_scores(sim, k=csls_k)}  # metrics: all rows are queries
    for chunk_size in (None, 1, 2, 3, 100):
        retrieval = VocabularyRetrieval(queries, candidates, gold, chunk_size=chunk_size)
        for method, scores in expected.items():
            torch.testing.assert_close(retrieval.scores(method, csls_k), scores)
            found = retrieval.retrieve(method, csls_k)
            assert torch.equal(found.ranks, retrieval_ranks(scores, gold.gold()))
            assert torch.equal(found.top1, scores.argmax(dim=1))


def test_csls_neighbourhood_by_hand():
    # cos = [[1, 0], [0.8, 0.6]]: r_S (k = 1) is each candidate's best query cosine.
    retrieval = VocabularyRetrieval(
        _unit([[1.0, 0.0], [0.8, 0.6]]), _unit([[1.0, 0.0], [0.0, 1.0]]), _index([(0, 0), (1, 1)], 2, 2)
    )
    torch.testing.assert_close(retrieval.candidate_neighbourhood(1), torch.tensor([1.0, 0.6]))
    torch.testing.assert_close(retrieval.candidate_neighbourhood(10), torch.tensor([0.9, 0.3]))  # k capped
    assert retrieval.ranks("cosine").tolist() == [1, 2]
    assert retrieval.ranks("csls", 10).tolist() == [1, 1]  # the hub (candidate 0) is corrected


def test_retrieval_rejects_bad_input():
    queries, candidates, _ = _random_problem()
    with pytest.raises(ValueError, match="query 1 has none"):
        VocabularyRetrieval(queries, candidates, _index([(0, 0)] + [(i, 1) for i in range(2, 7)], 7, 11))
    with pytest.raises(ValueError, match="same H"):
        VocabularyRetrieval(queries, candidates[:, :3], _index([(i, 0) for i in range(7)], 7, 11))
    retrieval = VocabularyRetrieval(queries, candidates, _index([(i, 0) for i in range(7)], 7, 11))
    with pytest.raises(ConfigError, match="not one of"):
        retrieval.ranks("euclid")


# ------------------------------------------------------------------ candidate vocabularies


def test_read_word_list(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\ufeff# English nouns\ndog\n\n  cat  \nthank   you\n  # indented comment\ndog\nmbwa\n")
    assert read_word_list(path) == ["dog", "cat", "thank you", "mbwa"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"dog\ncat\n\xff\xfe\n", r"words\.txt line 3: not valid UTF-8"),
        (b"dog\ncat\t12\n", r"words\.txt line 2: 'cat\\t12' has a tab"),
        (b"# nothing\n\n", r"words\.txt: no words"),
    ],
)
def test_read_word_list_errors(tmp_path, content, message):
    path = tmp_path / "words.txt"
    path.write_bytes(content)
    with pytest.raises(VocabularyError, match=message) as info:
        read_word_list(path)
    assert "\n" not in str(info.value)
    with pytest.raises(VocabularyError, match="no such word-list file"):
        read_word_list(tmp_path / "missing.txt")
    with pytest.raises(VocabularyError, match="is a directory"):
        read_word_list(tmp_path)


def test_tokenizer_vocabulary_on_tiny_tokenizers(tiny_model_dirs):
    for directory in tiny_model_dirs.values():
        loaded = load_model(directory)
        raw = json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"]
        # The toy corpus is ASCII, so a byte-level token is its text with Ġ for the space.
        expected = [t[1:] for t, _ in sorted(raw.items(), key=lambda kv: kv[1]) if t[:1] == "Ġ"]
        expected = [w for w in expected if len(w) >= 2 and w.isalpha()]
        words = tokenizer_vocabulary(loaded.tokenizer)
        assert word_boundary_marker(loaded.tokenizer) == "Ġ"
        assert words == expected and "you" in words
        assert "dog" not in words  # in the vocabulary, but never after a space in the toy corpus: no Ġdog
        assert tokenizer_vocabulary(loaded.tokenizer, max_words=2) == expected[:2]
        assert tokenizer_vocabulary(loaded.tokenizer, min_chars=3) == [w for w in expected if len(w) >= 3]


def _hand_tokenizer(vocab, pre_tokenizer, decoder):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizer, decoder
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>")


def test_tokenizer_vocabulary_rule_byte_level_and_sentencepiece():
    from tokenizers import decoders, pre_tokenizers

    byte_level = _hand_tokenizer(
        # Ġ + bytes of "café" as byte-level characters, a lone UTF-8 lead byte, digits, a continuation
        ["<unk>", "</s>", "a", "Ġa", "Ġdog", "ĠcafÃ©", "ĠÃ", "Ġ12", "dog", "Ġdo", "Ġx", "Ġcat"],
        pre_tokenizers.ByteLevel(add_prefix_space=False),
        decoders.ByteLevel(),
    )
    assert tokenizer_vocabulary(byte_level) == ["dog", "café", "do", "cat"]
    assert tokenizer_vocabulary(byte_level, min_chars=1) == ["a", "dog", "café", "do", "x", "cat"]
    sentencepiece = _hand_tokenizer(
        ["<unk>", "</s>", "▁a", "▁mbwa", "▁ng'ombe", "wa", "▁Jumapili", "▁3", "▁में", "▁\u0301a"],
        pre_tokenizers.Metaspace(),
        decoders.Metaspace(),
    )
    assert word_boundary_marker(sentencepiece) == "▁"
    # Devanagari "में" ends in combining vowel signs: still letters; a word cannot start with a mark.
    assert tokenizer_vocabulary(sentencepiece) == ["mbwa", "Jumapili", "में"]
    wordpiece_like = _hand_tokenizer(["<unk>", "</s>", "a", "dog"], pre_tokenizers.Whitespace(), None)
    with pytest.raises(ConfigError, match="marks no word start"):
        tokenizer_vocabulary(wordpiece_like)


# ------------------------------------------------------------------ Procrustes


def _rotated(n, h, noise, seed):
    rng = np.random.default_rng(seed)
    q = ortho_group.rvs(h, random_state=seed)
    src = _unit(rng.standard_normal((n, h)))
    tgt = _unit(src.numpy() @ q + noise * rng.standard_normal((n, h)))
    return src, tgt, torch.as_tensor(q, dtype=torch.float32)


@pytest.mark.parametrize("center", [False, True])
def test_procrustes_recovers_a_rotation(center):
    src, tgt, q = _rotated(400, 16, 0.01, seed=3)
    mapping = fit_procrustes(src[:300], tgt[:300], center=center)
    torch.testing.assert_close(mapping.weight.T @ mapping.weight, torch.eye(16), atol=1e-5, rtol=0)
    assert torch.linalg.norm(mapping.weight - q) < 0.05  # centring commutes with a rotation: still Q
    gold = _index([(i, i) for i in range(100)], 100, 100)
    report = procrustes_baseline(src[:300], tgt[:300], src[300:], tgt[300:], gold, center=center, n_boot=200)
    assert report.p_at_1 == 1.0 and report.mapping == "procrustes"
    assert report.p_at_1_chance == pytest.approx(0.01)


def test_procrustes_on_unrelated_data_is_at_chance():
    rng = np.random.default_rng(5)
    src, tgt = _unit(rng.standard_normal((400, 16))), _unit(rng.standard_normal((400, 16)))
    gold = _index([(i, i) for i in range(100)], 100, 100)
    for method in ("cosine", "csls"):
        report = procrustes_baseline(
            src[:300], tgt[:300], src[300:], tgt[300:], gold, method=method, n_boot=200
        )
        assert report.p_at_1 <= 0.05  # chance 0.01
        assert report.p_at_1_ci_low <= report.p_at_1_chance <= report.p_at_1_ci_high


# ------------------------------------------------------------------ export and one-layer embeddings


def test_export_round_trip(tmp_path):
    words = ["mbwa", "thank you", "ng'ombe", "café"]
    vectors = torch.randn(4, 6) * torch.tensor([1e-4, 1e-2, 1.0, 10.0, -3.0, 0.5])
    paths = export_embeddings(words, vectors, tmp_path / "export", layer=2, lang="sw")
    assert {p.name for p in (tmp_path / "export").iterdir()} == {
        "sw.layer2.npy",
        "sw.layer2.words.txt",
        "sw.layer2.vec",
    }  # no temporary file left behind
    array = np.load(paths["npy"])
    assert array.dtype == np.float32 and array.shape == (4, 6)
    np.testing.assert_array_equal(array, vectors.numpy())
    assert paths["words"].read_text(encoding="utf-8").splitlines() == words
    lines = paths["vec"].read_text(encoding="utf-8").splitlines()
    assert lines[0] == "4 6"
    keys = [line.split(" ")[0] for line in lines[1:]]
    assert keys == ["mbwa", "thank_you", "ng'ombe", "café"]
    parsed = np.array([[float(v) for v in line.split(" ")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(parsed, array, rtol=1e-5, atol=0)


def test_export_rejects_colliding_keys(tmp_path):
    with pytest.raises(ConfigError, match="both become 'ice_cream'"):
        export_embeddings(["ice cream", "ice_cream"], np.zeros((2, 3)), tmp_path, layer=0, lang="en")
    with pytest.raises(ConfigError, match="line break"):
        export_embeddings(["a\nb"], np.zeros((1, 3)), tmp_path, layer=0, lang="en")


def test_embed_layer_equals_embed_all_layers(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)
    words = ["mbwa", "dog", "thank you very much", "paka", "cat"]
    config = EmbedConfig(pooling="mean-no-special", batch_size=2)
    every = embed_all_layers(words, loaded.model, loaded.tokenizer, config, progress=False)
    one = embed_layer(words, loaded, config, 2, words_per_pass=2, progress=False)
    torch.testing.assert_close(one, every[2], atol=1e-5, rtol=0)
    centred = embed_layer(words, loaded, EmbedConfig(pooling="mean-no-special", center=True), 2)
    expected = torch.nn.functional.normalize(every[2] - every[2].mean(0), dim=-1)
    torch.testing.assert_close(centred, expected, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="--layer 5 is out of range"):
        embed_layer(words, loaded, config, 5)


# ------------------------------------------------------------------ the whole evaluation


def test_bli_evaluate_on_tiny_model(tiny_llama_dir, toy_lexicon_file, tmp_path):
    loaded = load_model(tiny_llama_dir)
    lexicon = read_lexicon(toy_lexicon_file).with_split(0.3, seed=1)
    config = EmbedConfig(pooling="mean-no-special")
    result = bli_evaluate(loaded, lexicon, layer=2, embed_config=config, n_boot=200, progress=False)
    json.dumps(result, allow_nan=False)
    control = lexicon.subset("control")
    queries = list(dict.fromkeys(control.sources))
    assert result["n_queries"] == len(queries) and result["n_candidates"] == len(set(lexicon.targets))
    assert set(result["reports"]) == {"cosine", "csls", "procrustes_cosine", "procrustes_csls"}
    assert result["n_train_pairs"] == len(lexicon) - len(control)

    # Candidates = the lexicon's targets: the same ranks as the scan's retrieval, restricted to control words.
    src, tgt, index = embed_lexicon(lexicon, loaded, config)
    sources, _, _ = lexicon_index(lexicon)
    rows = torch.tensor([sources.index(q) for q in queries])
    expected = retrieval_ranks((src[2] @ tgt[2].T)[rows], index.gold()[rows])
    assert [row["cosine_rank"] for row in result["queries"]] == expected.tolist()
    assert result["reports"]["cosine"]["p_at_1"] == pytest.approx(float((expected <= 1).float().mean()))

    # A word list adds candidates; the gold targets are always among them.
    words = tmp_path / "vocab.txt"
    words.write_text("dog\nyou\nvery\nzebra\n")
    bigger = bli_evaluate(loaded, lexicon, layer=2, embed_config=config, vocabulary=words, n_boot=200)
    assert bigger["vocabulary"]["n_words"] == 4
    assert bigger["n_candidates"] == result["n_candidates"] + 3  # dog is a lexicon target already
    with_tokenizer = bli_evaluate(
        loaded, lexicon, layer=2, embed_config=config, vocabulary="tokenizer", n_boot=50
    )
    assert with_tokenizer["vocabulary"]["source"] == "tokenizer"
    assert with_tokenizer["n_candidates"] > result["n_candidates"]
