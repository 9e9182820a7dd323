"""Bilingual lexicon induction (BLI) conventions: the evaluation a MUSE / VecMap reader expects.

Four things the lexicon-only figures of :mod:`tli.metrics` do not give:

1. **Retrieval over a full target vocabulary.** Queries (source words) are ranked against every word of a
   candidate vocabulary — a word-list file or the tokenizer's whole words (:mod:`tli.bli.vocabulary`) — plus
   every gold target, not only against the lexicon's targets. :class:`VocabularyRetrieval`
   (:mod:`tli.bli.retrieval`) computes the ranks in blocks of queries, so a 50k-word vocabulary never needs a
   full ``(queries, candidates)`` matrix in memory.
2. **Precision@k with an interval and its chance level**, and MRR with a bootstrap interval
   (:class:`RetrievalReport`, :mod:`tli.bli.estimates`).
3. **The classic baseline:** an orthogonal Procrustes map fitted on the trained pairs at the same layer
   (:func:`fit_procrustes`, :func:`procrustes_baseline`; :mod:`tli.bli.procrustes`). A TLI adapter must beat
   this cheap linear map.
4. **Export** of one layer's embeddings as ``.npy``, a word list and word2vec text (``.vec``), the formats
   other BLI tools read (:func:`export_embeddings`, :mod:`tli.bli.embeddings`).

:func:`bli_evaluate` (:mod:`tli.bli.evaluation`) ties them together for one layer of a loaded model.
"""

from tli.bli.embeddings import embed_layer, embed_layers, export_embeddings, vec_key
from tli.bli.estimates import (
    PRECISION_KS,
    Estimate,
    RetrievalReport,
    chance_mrr,
    chance_precision_at_k,
    mrr_with_ci,
    precision_at_k_with_ci,
    retrieval_report,
)
from tli.bli.evaluation import bli_evaluate, control_retrieval, train_test_split
from tli.bli.procrustes import ProcrustesMap, fit_procrustes, procrustes_baseline
from tli.bli.retrieval import METHODS, Retrieved, VocabularyRetrieval
from tli.bli.vocabulary import (
    TOKENIZER_VOCABULARY,
    WORD_BOUNDARY_MARKERS,
    VocabularyError,
    is_letters,
    read_word_list,
    resolve_vocabulary,
    tokenizer_vocabulary,
    word_boundary_marker,
)

__all__ = [
    "METHODS",
    "PRECISION_KS",
    "TOKENIZER_VOCABULARY",
    "WORD_BOUNDARY_MARKERS",
    "Estimate",
    "ProcrustesMap",
    "RetrievalReport",
    "Retrieved",
    "VocabularyError",
    "VocabularyRetrieval",
    "bli_evaluate",
    "chance_mrr",
    "chance_precision_at_k",
    "control_retrieval",
    "embed_layer",
    "embed_layers",
    "export_embeddings",
    "fit_procrustes",
    "is_letters",
    "mrr_with_ci",
    "precision_at_k_with_ci",
    "procrustes_baseline",
    "read_word_list",
    "resolve_vocabulary",
    "retrieval_report",
    "tokenizer_vocabulary",
    "train_test_split",
    "vec_key",
    "word_boundary_marker",
]
