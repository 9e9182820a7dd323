"""Synthetic Swahili pairs: generation by a causal LM, lexicon code-switching, filters, provenance."""

import json
import random
from types import SimpleNamespace

import pytest

from tli.errors import ConfigError
from tli.lexicon import Lexicon, Pair
from tli.models import load_model
from tli.tasks.retrieval.synthetic import (
    SourcePassage,
    SourceQuery,
    SyntheticOptions,
    clean_generation,
    code_switch,
    generate_synthetic,
    lexicon_map,
    normalise_query,
    read_synthetic,
)

PASSAGES = [
    SourcePassage("p1", "Mbwa ni mnyama anayefugwa nyumbani. Mbwa hulinda nyumba."),
    SourcePassage("p2", "Maji ya bahari yana chumvi. Samaki huishi baharini."),
    SourcePassage("p3", "Jua huchomoza asubuhi na kuzama jioni."),
]
ENGLISH = [
    SourceQuery("e1", "Where does the dog sleep?", "The dog sleeps in the house.", "d1"),
    SourceQuery("e2", "Is the sea water salty?", "Sea water is salty.", "d2"),
    SourceQuery("e3", "When does the sun rise?", "The sun rises in the morning.", "d3"),
    SourceQuery("e4", "Where does the dog sleep?", "Dogs sleep anywhere.", "d4"),
]


def test_clean_generation_keeps_the_question_only():
    assert clean_generation('\n  Swali: "Mbwa hulala wapi?"\nJibu: nyumbani') == "Mbwa hulala wapi?"
    assert clean_generation("Swahili:   Maji   ya bahari?") == "Maji ya bahari?"
    assert clean_generation("\n\n") == ""
    assert normalise_query("  Mbwa, hulala WAPI? ") == normalise_query("mbwa hulala wapi")


def test_code_switching_uses_the_lexicon_longest_match_first():
    lexicon = Lexicon([Pair("mbwa", "dog"), Pair("bahari", "sea"), Pair("bahari", "ocean"),
                       Pair("asante sana", "thank you very much"), Pair("maji", "water")])  # fmt: skip
    table = lexicon_map(lexicon)
    assert table[("sea",)] == ["bahari"] and table[("thank", "you", "very", "much")] == ["asante sana"]
    switched, replaced = code_switch(
        "Thank you very much, is the Sea water salty?", table, 1.0, random.Random(0)
    )
    assert switched == "asante sana, is the bahari maji salty?"
    assert [r["english"] for r in replaced] == ["Thank you very much", "Sea", "water"]
    unchanged, none = code_switch("Is the sea water salty?", table, 0.0, random.Random(0))
    assert unchanged == "Is the sea water salty?" and none == []
    # seeded: the same rate and seed switch the same words
    runs = [code_switch("dog sea water dog sea water", table, 0.5, random.Random(3)) for _ in range(2)]
    assert runs[0] == runs[1]


def test_options_are_checked():
    with pytest.raises(ConfigError, match="unknown method 'paraphrase'"):
        SyntheticOptions(methods=["paraphrase"])
    with pytest.raises(ConfigError, match="doc2query_prompt needs a \\{passage\\} slot"):
        SyntheticOptions(doc2query_prompt="Write a question.")
    with pytest.raises(ConfigError, match="code_switch_rate must be in"):
        SyntheticOptions(code_switch_rate=2)


def test_generated_pairs_parse_carry_provenance_and_are_filtered(tiny_llama_dir, tmp_path, monkeypatch):
    loaded = load_model(tiny_llama_dir)
    options = SyntheticOptions(max_new_tokens=6, bm25_top_k=0, round_trip_min_chrf=0, code_switch_rate=1.0)
    result = generate_synthetic(loaded, PASSAGES, ENGLISH, options, out_dir=tmp_path,
                                sources={"passages": "test"}, progress=False)  # fmt: skip
    rows = read_synthetic(tmp_path / "synthetic.jsonl")
    assert rows == result.rows and rows
    for row in rows:
        assert {"id", "query", "passage", "passage_id", "method", "provenance", "checks"} <= set(row)
        assert row["query"].strip() and row["query_language"] == "sw"
        if row["method"] in ("doc2query", "translate"):
            generator = row["provenance"]["generator"]
            assert generator["model"] == loaded.name and len(generator["fingerprint"]) == 64
            assert "{" in row["provenance"]["prompt"] and row["provenance"]["decoding"]["greedy"] is True
        else:
            assert row["provenance"]["lexicon"] and row["checks"]["replacements"]
    keys = [normalise_query(r["query"]) for r in rows]
    assert len(keys) == len(set(keys))  # de-duplicated over every method
    meta = json.loads((tmp_path / "synthetic.meta.json").read_text())
    rejected = [json.loads(line) for line in open(tmp_path / "synthetic.rejected.jsonl")]
    for method, counts in meta["counts"].items():
        dropped = sum(v for k, v in counts.items() if k not in ("generated", "kept"))
        assert counts["generated"] == counts["kept"] + dropped
        assert dropped == sum(r["method"] == method for r in rejected)
    # the duplicated English query ("Where does the dog sleep?") gives one code-switched pair, not two
    assert meta["counts"]["code-switch"]["duplicate"] == 1
    # a second call with the same inputs reads the files back instead of generating again
    from tli.tasks.retrieval import synthetic

    def no_generation(*args, **kwargs):
        raise AssertionError("generated again")

    monkeypatch.setattr(synthetic, "_generate", no_generation)
    again = generate_synthetic(loaded, PASSAGES, ENGLISH, options, out_dir=tmp_path, progress=False)
    assert again.rows == rows


def test_the_bm25_filter_keeps_questions_that_point_back_to_their_passage(tmp_path, monkeypatch):
    from tli.tasks import generation
    from tli.tasks.retrieval import synthetic

    questions = ["Mbwa hulinda nyumba?", "Jua huchomoza lini?", "Jua huchomoza asubuhi?"]
    monkeypatch.setattr(synthetic, "_generate", lambda *args, **kwargs: list(questions))
    monkeypatch.setattr(synthetic, "_generator_record", lambda loaded, options: {"model": "scripted"})
    monkeypatch.setattr(generation, "truncate_tokens", lambda tokenizer, text, n: text)
    options = SyntheticOptions(methods=["doc2query"], bm25_top_k=1)
    scripted = SimpleNamespace(tokenizer=None)  # _generate is replaced: no model is called
    result = generate_synthetic(scripted, PASSAGES, [], options, out_dir=tmp_path, progress=False)
    kept = {r["passage_id"]: r["checks"]["bm25_rank"] for r in result.rows}
    assert kept == {"p1": 1, "p3": 1}  # p2's question is about the sun: its own passage is not first
    assert result.counts["doc2query"] == {"generated": 3, "kept": 2, "bm25_self_retrieval": 1}
    with pytest.raises(ConfigError, match="doc2query needs target-language passages"):
        generate_synthetic(scripted, [], [], options, out_dir=tmp_path / "none", progress=False)
