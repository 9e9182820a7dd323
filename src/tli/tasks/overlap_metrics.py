"""Text-overlap metrics for generation tasks: ROUGE (rouge-score) and BLEU / chrF (sacrebleu).

ROUGE uses ``rouge-score`` with a Unicode-aware tokenizer. Its default tokenizer lower-cases and replaces
every character outside ``[a-z0-9]`` with a space, so text in Ge'ez, Arabic, Devanagari, ... scripts has no
tokens and scores 0, and Latin letters with diacritics split words (``café`` → ``caf``). The XL-Sum
authors used a multilingual variant of the scorer for that reason. :class:`UnicodeWordTokenizer` keeps every
script; on plain ASCII text it gives exactly the default tokenizer's tokens, so English scores are unchanged.

No stemming: rouge-score's stemmer is the English Porter stemmer, which would mangle Swahili or Hausa words,
and no stemmer exists for most low-resource languages; every language is therefore scored on surface forms
(scores are comparable across languages and models, not with stemmed figures in papers).

BLEU and chrF are sacrebleu's corpus scores (tokenizer ``13a`` by default for BLEU; chrF with its defaults,
character 6-grams, β = 2). Per-example values use sacrebleu's sentence-level scores (``sentence_bleu`` uses
effective n-gram order with exponential smoothing), which are for inspection and pairing only: corpus BLEU is
not the mean of sentence BLEU. Bootstrap resamples recompute the corpus score from summed sentence statistics
(what sacrebleu's own paired bootstrap does), which equals ``corpus_bleu`` on the resampled corpus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tli.words import words

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
DEFAULT_BLEU_TOKENIZE = "13a"


def unicode_words(text: str) -> list[str]:
    """Lower-cased words of ``text``: maximal runs of Unicode letters, combining marks and digits (after NFC).

    This is ``\\w+`` without the underscore (which rouge-score's default treats as a separator) and with
    combining marks (categories ``Mn``/``Mc``, e.g. Devanagari vowel signs), which Python's ``\\w``
    excludes, so it would split Hindi words into consonants. It is :func:`tli.words.words` with apostrophes as
    separators and no bigrams, so that ASCII text gets exactly rouge-score's default tokens.
    """
    return words(text, normalization="NFC", apostrophes=False, split_unspaced_scripts=False)


class UnicodeWordTokenizer:
    """A rouge-score tokenizer object (``tokenize(text) -> list[str]``) using :func:`unicode_words`."""

    def tokenize(self, text: str) -> list[str]:
        return unicode_words(text)


def rouge_scorer():
    """``rouge_score.rouge_scorer.RougeScorer`` for rouge1/2/L, no stemming, :class:`UnicodeWordTokenizer`."""
    from rouge_score import rouge_scorer as rs

    return rs.RougeScorer(list(ROUGE_TYPES), use_stemmer=False, tokenizer=UnicodeWordTokenizer())


def rouge_f1(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """Per-example ROUGE F1 for each type in :data:`ROUGE_TYPES`.

    ROUGE-N F1 = 2PR / (P + R) with P = |overlapping n-grams| / |prediction n-grams| and
    R = |overlapping n-grams| / |reference n-grams| (clipped counts); ROUGE-L uses the longest common
    subsequence length in place of the overlap. 0 when either side has no tokens.
    """
    scorer = rouge_scorer()
    scores: dict[str, list[float]] = {name: [] for name in ROUGE_TYPES}
    for prediction, reference in zip(predictions, references, strict=True):
        result = scorer.score(reference, prediction)  # rouge-score's order: (target, prediction)
        for name in ROUGE_TYPES:
            scores[name].append(float(result[name].fmeasure))
    return scores


def sentence_bleu(predictions: Sequence[str], references: Sequence[str], tokenize: str) -> list[float]:
    """sacrebleu ``sentence_bleu`` (0-100) per example."""
    import sacrebleu

    return [
        float(sacrebleu.sentence_bleu(p, [r], tokenize=tokenize).score)
        for p, r in zip(predictions, references, strict=True)
    ]


def sentence_chrf(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """sacrebleu ``sentence_chrf`` (0-100) per example."""
    import sacrebleu

    return [
        float(sacrebleu.sentence_chrf(p, [r]).score) for p, r in zip(predictions, references, strict=True)
    ]


def corpus_bleu(predictions: Sequence[str], references: Sequence[str], tokenize: str) -> float:
    """sacrebleu corpus BLEU (0-100): BP · exp(Σₙ ¼ log pₙ), n = 1..4, counts summed over the corpus."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)], tokenize=tokenize).score)


def corpus_chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus chrF (0-100): F_β (β = 2) of character n-gram precision and recall, n = 1..6."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)


def signature(metric: str, tokenize: str = DEFAULT_BLEU_TOKENIZE) -> str:
    """sacrebleu's signature of corpus BLEU or chrF as tli scores them (one reference per example), e.g.
    ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``: what a BLEU or chrF figure must be
    quoted with to be comparable (Post 2018)."""
    from sacrebleu.metrics import BLEU, CHRF

    scorer = BLEU(tokenize=tokenize) if metric == "bleu" else CHRF()
    scorer.corpus_score(["a"], [["a"]])  # sacrebleu knows the number of references only after scoring
    return str(scorer.get_signature())


class CorpusStatistic:
    """Corpus BLEU or chrF recomputable on any subset of examples from per-example sufficient statistics.

    Both scores are functions of n-gram counts summed over the corpus, so a resample's score is
    ``metric(Σ_{i in resample} stats_i)``; this is how sacrebleu's paired bootstrap resamples.
    """

    def __init__(self, metric: str, predictions: Sequence[str], references: Sequence[str], tokenize: str):
        from sacrebleu.metrics import BLEU, CHRF

        self.scorer = BLEU(tokenize=tokenize) if metric == "bleu" else CHRF()
        stats = self.scorer._extract_corpus_statistics(list(predictions), [list(references)])
        self.stats = np.asarray(stats, dtype=np.int64)  # (n_examples, n_statistics)

    def __call__(self, indices: np.ndarray) -> float:
        return self.score_sum(self.stats[indices].sum(axis=0))

    def score_sum(self, summed: np.ndarray) -> float:
        """The corpus score of a corpus whose per-example statistics sum to ``summed`` ``(j,)``."""
        return float(self.scorer._compute_score_from_stats(np.asarray(summed, dtype=np.int64).tolist()).score)
