"""The one word tokenizer (tli.words) and the code that shares it: BM25, the lexicon, ROUGE, the synthetic filter."""

import re
import unicodedata

import pytest

from tli.words import words


@pytest.mark.parametrize(
    "text, expected",
    [
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),  # Hindi: vowel signs (Mc/Mn) stay in their words
        ("বাংলা ভাষা", ["বাংলা", "ভাষা"]),  # Bengali
        ("తెలుగు భాష", ["తెలుగు", "భాష"]),  # Telugu
        ("ሰላም ዓለም።", ["ሰላም", "ዓለም"]),  # Amharic (Ge'ez script, its full stop separates)
        ("مرحبا بالعالم!", ["مرحبا", "بالعالم"]),  # Arabic
        ("Ng’ombe na ng'ombe.", ["ng'ombe", "na", "ng'ombe"]),  # Swahili: the apostrophe is inside the word
        ("ภาษาไทย", ["ภา", "าษ", "ษา", "าไ", "ไท", "ทย"]),  # Thai: grapheme-cluster bigrams, marks attached
        ("Mother-in-law's 'quoted'", ["mother", "in", "law's", "quoted"]),
    ],
)
def test_words_keep_every_script_whole(text, expected):
    assert words(text) == expected


def test_python_word_pattern_breaks_the_same_words():
    """The bug this module fixes: \\w drops combining marks."""
    assert re.findall(r"\w+", "हिन्दी भाषा") == ["ह", "न", "द", "भ", "ष"]


def test_thai_bigrams_are_grapheme_clusters():
    # น้ำใจ: after NFKC, ำ is ํ + า; the clusters are น้ํ, า, ใ, จ, so no token starts with a bare mark
    tokens = words("น้ำใจ")
    assert tokens == ["น\u0e49\u0e4dา", "าใ", "ใจ"]
    assert not any(unicodedata.category(t[0]).startswith("M") for t in tokens)


def test_bm25_lexicon_rouge_and_synthetic_share_it():
    from tli.lexicon import word_tokens
    from tli.retrieval.bm25 import BM25Index, analyzer
    from tli.tasks.overlap_metrics import unicode_words
    from tli.tasks.retrieval.synthetic import normalise_query

    assert analyzer("hi")("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert analyzer("sw")("Ng’ombe wangu") == ["ng'ombe", "wangu"]
    assert word_tokens("ng’ombe_mkubwa हिन्दी") == ["ng'ombe_mkubwa", "हिन्दी"]  # _ joins, as \w did
    assert unicode_words("Don't stop हिन्दी") == ["don", "t", "stop", "हिन्दी"]  # rouge-score's ASCII tokens
    assert normalise_query("Ng’ombe  WANGU?") == "ng'ombe wangu"
    # BM25 finds the Hindi passage by its whole words (with \w it matched consonants of any word)
    index = BM25Index(["हिन्दी भाषा सुंदर है", "बंगाली भाषा", "मौसम अच्छा है"], "hi")
    top, empty = index.search(["हिन्दी"], 1)
    assert top.indices[0, 0] == 0 and not empty
