"""Dense retriever training: sentence-transformers bi-encoders from a tiny random encoder or causal LM."""

import json

import numpy as np
import pytest
import torch

from tli.errors import ConfigError
from tli.retrieval.biencoder import (
    BiEncoderOptions,
    SentenceEncoder,
    TrainingPair,
    build_biencoder,
    mine_hard_negatives,
    train_biencoder,
)
from tli.retrieval.encode import model_state_fingerprint

WORDS = (
    "mbwa paka maji moto nyumba kitabu mti jua mwezi mtoto mama baba chakula ndege samaki bahari mlima kiti "
    "meza gari njia ni na ya wa kwa katika hula huishi dog cat water fire house book tree sun moon child "
    "mother father food bird fish sea mountain chair table car road is the a of in where what does eat live"
).split()


def build_tiny_bert(directory):
    """A random 2-layer BERT (hidden 64) with a WordPiece tokenizer over :data:`WORDS`, saved locally."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    letters = sorted({c for w in WORDS for c in w} | set("?.,'"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *(f"##{c}" for c in letters)]
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


PAIRS = [
    TrainingPair("mbwa hula nini?", "mbwa hula chakula", "sw", "test"),
    TrainingPair("paka huishi wapi?", "paka huishi katika nyumba", "sw", "test"),
    TrainingPair("samaki huishi wapi?", "samaki huishi katika bahari", "sw", "test"),
    TrainingPair("where does the fish live?", "the fish live in the sea", "en", "test"),
    TrainingPair("what does the dog eat?", "the dog eat food", "en", "test"),
    TrainingPair("where is the car?", "the car is in the road", "en", "test"),
]


def test_options_are_checked():
    with pytest.raises(ConfigError, match="pooling 'sum' is not one of"):
        BiEncoderOptions(pooling="sum")
    with pytest.raises(ConfigError, match="batch_size must be a whole number >= 2"):
        BiEncoderOptions(batch_size=1)


def test_hard_negatives_are_the_best_bm25_passages_that_are_not_the_positive():
    mined = mine_hard_negatives(PAIRS, 1)
    assert mined[0].negatives == ()  # no other Swahili passage shares a word with "mbwa hula nini?"
    # "samaki huishi wapi?" shares "huishi" with the cat passage: its best non-positive passage
    assert mined[2].negatives == ("paka huishi katika nyumba",)
    assert all(n not in (p.passage,) for p in mined for n in p.negatives)
    assert all(
        {n for n in p.negatives} <= {q.passage for q in PAIRS if q.language == p.language} for p in mined
    )  # negatives come from the same language's pool


def test_training_is_seeded_changes_the_weights_and_saves(bert_dir, tmp_path):
    options = BiEncoderOptions(
        steps=3, batch_size=3, lr=1e-3, warmup_steps=0, max_seq_length=32, hard_negatives=1
    )
    results = []
    for run in range(2):
        model = build_biencoder(str(bert_dir), pooling="mean", max_seq_length=32)
        before = model_state_fingerprint(model)
        stats = train_biencoder(
            model, PAIRS, options, seed=5, output_dir=tmp_path / f"t{run}", progress=False
        )
        assert model_state_fingerprint(model) != before
        assert stats.steps == 3 and len(stats.losses) == 3 and stats.tokens_seen > 0
        assert stats.trainable_parameters == sum(p.numel() for p in model.parameters())
        results.append(
            SentenceEncoder(model, options, model_state_fingerprint(model)).encode(["mbwa"], "query")
        )
    assert np.allclose(results[0], results[1], atol=1e-6)  # same seed, same pairs: the same retriever
    assert results[0].shape == (1, 1, 64) and np.linalg.norm(results[0]) == pytest.approx(1.0, abs=1e-5)
    model.save(str(tmp_path / "saved"))
    reloaded = build_biencoder(
        str(tmp_path / "saved"), pooling="cls", max_seq_length=32
    )  # keeps its own pooling
    again = SentenceEncoder(reloaded, options, "x").encode(["mbwa"], "query")
    assert np.allclose(again, results[1], atol=1e-5)
    assert json.loads((tmp_path / "saved" / "modules.json").read_text())


def test_a_causal_lm_with_last_token_pooling(tiny_llama_dir, tmp_path):
    options = BiEncoderOptions(steps=2, batch_size=2, lr=1e-4, warmup_steps=0, max_seq_length=32,
                               query_prefix="query: ", passage_prefix="passage: ", pooling="lasttoken")  # fmt: skip
    model = build_biencoder(str(tiny_llama_dir), pooling="lasttoken", max_seq_length=32)
    stats = train_biencoder(model, PAIRS[:4], options, seed=0, output_dir=tmp_path, progress=False)
    assert stats.steps == 2
    vectors = SentenceEncoder(model, options, "x").encode(["mbwa", "paka na mbwa"], "passage")
    assert vectors.shape == (1, 2, 128)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_last_token_pooling_takes_the_last_real_token_whichever_side_pads(tiny_llama_dir, padding_side):
    """Texts of different lengths share a padded batch; each vector is the final hidden state of that text's
    own last token (run alone through the causal LM, no padding), normalised, never a pad position's."""
    options = BiEncoderOptions(max_seq_length=32, passage_prefix="passage: ", pooling="lasttoken")
    model = build_biencoder(str(tiny_llama_dir), pooling="lasttoken", max_seq_length=32)
    model.tokenizer.padding_side = padding_side
    texts = ["mbwa", "paka na mbwa hula chakula", "maji"]
    vectors = SentenceEncoder(model, options, "x").encode(texts, "passage")[0]
    encoder, tokenizer = model[0].auto_model, model.tokenizer
    lengths = [len(tokenizer("passage: " + t)["input_ids"]) for t in texts]
    assert lengths[0] < lengths[1] and lengths[2] < lengths[1]  # the short texts are padded
    with torch.no_grad():
        batch = tokenizer(["passage: " + t for t in texts], return_tensors="pt", padding=True)
        padded = encoder(**batch).last_hidden_state
        pad_column = 0 if padding_side == "left" else -1
        assert batch["attention_mask"][:, pad_column].tolist() == [0, 1, 0]  # padded on the side asked for
        for i, text in enumerate(texts):
            alone = tokenizer("passage: " + text, return_tensors="pt")
            last = encoder(**alone).last_hidden_state[0, -1]
            expected = (last / last.norm()).numpy()
            assert vectors[i] == pytest.approx(expected, abs=1e-4), text
            # the batch's last position is a pad for a short text under right padding: not what was pooled
            final = padded[i, -1] / padded[i, -1].norm()
            if padding_side == "right" and lengths[i] < max(lengths):
                assert not np.allclose(vectors[i], final.numpy(), atol=1e-2), text
