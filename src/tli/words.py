"""Words of any script: the one word tokenizer behind BM25, fusion, the synthetic-data filter, the lexicon's
word split and ROUGE.

Python's ``\\w`` leaves out combining marks (Unicode categories ``Mn``/``Mc``), which most Indic, Ethiopic-
adjacent and Southeast-Asian scripts write their vowels with, so ``re.findall(r"\\w+", "हिन्दी भाषा")`` gives
``['ह', 'न', 'द', 'भ', 'ष']`` — five consonants, no word. Here a word is a maximal run of letters, combining
marks and digits (``\\p{L}``, ``\\p{M}``, ``\\p{N}``, via the ``regex`` module), optionally with apostrophes
*inside* it (Swahili ``ng'ombe``, French ``aujourd'hui``; the typographic ``’`` counts as ``'``):
``"हिन्दी भाषा"`` → ``['हिन्दी', 'भाषा']``, ``"বাংলা ভাষা"`` → ``['বাংলা', 'ভাষা']``, Amharic ``"ሰላም ዓለም"`` and
Arabic ``"مرحبا بالعالم"`` → two words each. Scripts written without spaces between words (Thai, Lao, Khmer,
Myanmar, Chinese, Japanese kana, Hangul) have no word boundary a regular expression can find; their runs
become overlapping bigrams of *grapheme clusters* (a base letter with its marks: ``"ภาษาไทย"`` →
``['ภา', 'าษ', 'ษา', 'าไ', 'ไท', 'ทย']``), as Lucene's CJK analyzer does for Han.

Normalisation: NFKC by default (compatibility forms folded, as Lucene's ICU folding does), NFC where
output must stay close to the input (ROUGE). Lower case by default; case-folded where words are matched
whatever their case (:func:`folded_words`, ``tli probe``).
"""

from __future__ import annotations

import unicodedata

import regex

_LETTERS = r"\p{L}\p{M}\p{N}"
_PATTERNS = {
    (apostrophes, underscore): regex.compile(
        rf"[{_LETTERS}{'_' if underscore else ''}]+"
        + (rf"(?:'[{_LETTERS}{'_' if underscore else ''}]+)*" if apostrophes else "")
    )
    for apostrophes in (True, False)
    for underscore in (True, False)
}
_SPANS = regex.compile(rf"[{_LETTERS}_]+(?:['’][{_LETTERS}_]+)*")
_UNSPACED_SCRIPTS = r"\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_UNSPACED = regex.compile(rf"[{_UNSPACED_SCRIPTS}][{_UNSPACED_SCRIPTS}\p{{M}}]*")
_GRAPHEME = regex.compile(r"\X")


def _prepare(text: str, normalization: str | None, lower: bool, casefold: bool = False) -> str:
    if normalization:
        text = unicodedata.normalize(normalization, text)
    text = text.replace("’", "'")
    if casefold:
        return text.casefold()
    return text.lower() if lower else text


def grapheme_bigrams(run: str) -> list[str]:
    """Overlapping bigrams of the grapheme clusters of ``run`` (a single cluster stays one token)."""
    clusters = _GRAPHEME.findall(run)
    if len(clusters) < 2:
        return ["".join(clusters)] if clusters else []
    return [clusters[i] + clusters[i + 1] for i in range(len(clusters) - 1)]


def split_unspaced(word: str) -> list[str]:
    """A word as tokens: its runs in scripts without spaces become grapheme bigrams, the rest stays whole
    (``"abcไทย"`` → ``['abc', 'ไท', 'ทย']``)."""
    tokens: list[str] = []
    cursor = 0
    for match in _UNSPACED.finditer(word):
        if match.start() > cursor:
            tokens.append(word[cursor : match.start()].strip("'"))
        tokens += grapheme_bigrams(match.group())
        cursor = match.end()
    if cursor < len(word):
        tokens.append(word[cursor:].strip("'"))
    return [t for t in tokens if t]


def words(
    text: str,
    *,
    lower: bool = True,
    normalization: str | None = "NFKC",
    apostrophes: bool = True,
    underscore: bool = False,
    split_unspaced_scripts: bool = True,
    casefold: bool = False,
) -> list[str]:
    """The word tokens of ``text`` (see the module docstring).

    Args:
        lower: lower-case first.
        casefold: case-fold first instead (``STRASSE`` and ``straße`` give the same word), for matching
            words whatever their case.
        normalization: Unicode normal form applied first (``NFKC``, ``NFC``) or None.
        apostrophes: keep apostrophes inside words (``ng'ombe`` is one word); False splits there.
        underscore: ``_`` joins words (``t3_1`` is one word), as in Python's ``\\w`` and Unicode word
            boundaries (UAX #29, which Lucene's standard tokenizer follows); False splits there (ROUGE).
        split_unspaced_scripts: runs of Thai, Lao, Khmer, Myanmar, Han, kana and Hangul become grapheme
            bigrams; False keeps them as one token per run.
    """
    text = _prepare(text, normalization, lower, casefold)
    found = _PATTERNS[apostrophes, underscore].findall(text)
    if not split_unspaced_scripts:
        return found
    tokens: list[str] = []
    for word in found:
        tokens += split_unspaced(word) if _UNSPACED.search(word) else [word]
    return tokens


def folded_words(text: str) -> list[str]:
    """The case-folded words of ``text`` (NFC), apostrophes separating and no bigrams: ``"The 'Dog's'"`` →
    ``["the", "dog", "s"]``. What ``tli probe`` matches an answer's words against the prompt's with."""
    return words(text, casefold=True, normalization="NFC", apostrophes=False, split_unspaced_scripts=False)


def word_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every word of ``text`` as written (no normalisation; apostrophes ``'``/``’`` and
    ``_`` kept inside words), for replacing words in place."""
    return [match.span() for match in _SPANS.finditer(text)]


__all__ = ["grapheme_bigrams", "split_unspaced", "word_spans", "words"]
