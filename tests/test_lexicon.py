"""Tests for tli.lexicon: readers, writers, validation messages, splits and the shipped lexicon."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tli.errors import ConfigError, LexiconError
from tli.lexicon import (
    DEFAULT_CONTROL_FRACTION,
    Lexicon,
    Pair,
    SplitAudit,
    SplitReport,
    audit_split,
    combine_train_test,
    default_lexicon,
    default_lexicon_path,
    read_lexicon,
    word_tokens,
    write_lexicon,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_lexicon_split.py"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _lexicon(n_sources: int = 40, senses: int = 2) -> Lexicon:
    # One word per side ("t3_1" is a single word token): only the senses of a source are linked.
    pairs = [Pair(f"w{i}", f"t{i}_{k}") for i in range(n_sources) for k in range(senses)]
    return Lexicon(pairs)


def _error(path: Path) -> str:
    with pytest.raises(LexiconError) as info:
        read_lexicon(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    return message


# --------------------------------------------------------------------------- readers


def test_read_json_list(tmp_path):
    path = _write(tmp_path / "l.json", '[{"source": "mbwa", "target": "dog"}]')
    lexicon = read_lexicon(path)
    assert lexicon.pairs == [Pair("mbwa", "dog")]
    assert (lexicon.source_lang, lexicon.target_lang) == ("sw", "en")
    assert lexicon.path == str(path)
    assert len(lexicon) == 1 and list(lexicon) == lexicon.pairs


def test_read_json_published_keys(tmp_path):
    path = _write(tmp_path / "p.json", '[{"swahili": "paka", "english": "cat", "group": "control"}]')
    lexicon = read_lexicon(path)
    assert lexicon.pairs == [Pair("paka", "cat", "control")]
    assert (lexicon.source_lang, lexicon.target_lang) == ("sw", "en")


def test_read_json_object_with_langs_and_override(tmp_path):
    doc = {
        "source_lang": "fr",
        "target_lang": "de",
        "name": "x",
        "pairs": [{"source": "chien", "target": "Hund"}],
    }
    path = _write(tmp_path / "o.json", json.dumps(doc))
    lexicon = read_lexicon(path)
    assert (lexicon.source_lang, lexicon.target_lang) == ("fr", "de")
    assert lexicon.meta == {"name": "x"}
    assert read_lexicon(path, source_lang="xx", target_lang="yy").source_lang == "xx"
    assert read_lexicon(path, target_lang="yy").target_lang == "yy"


def test_read_csv_and_tsv(tmp_path):
    csv_path = _write(tmp_path / "l.csv", "id,swahili,english,note\n1,mbwa,dog,x\n2,paka,cat,y\n")
    assert read_lexicon(csv_path).pairs == [Pair("mbwa", "dog"), Pair("paka", "cat")]
    tsv_path = _write(tmp_path / "l.tsv", "source\ttarget\tgroup\nmbwa\tdog\ttrained\n")
    assert read_lexicon(tsv_path).pairs == [Pair("mbwa", "dog", "trained")]
    txt_path = _write(tmp_path / "l.txt", "source:fr\ttarget:en\nchat\tcat\n")
    lexicon = read_lexicon(txt_path)
    assert lexicon.pairs == [Pair("chat", "cat")] and lexicon.source_lang == "fr"
    assert read_lexicon(csv_path, source_lang="xx").source_lang == "xx"


def test_multiword_normalised_and_senses_kept(tmp_path):
    path = _write(
        tmp_path / "m.csv",
        'source,target\n"  asante   sana ","thank\tyou  very much "\nbahari,ocean\nbahari,sea\n',
    )
    lexicon = read_lexicon(path)
    assert lexicon.pairs[0] == Pair("asante sana", "thank you very much")
    assert lexicon.targets[1:] == ["ocean", "sea"]
    assert lexicon.sources.count("bahari") == 2


@pytest.mark.parametrize("suffix", [".json", ".csv", ".tsv", ".txt"])
def test_round_trip(tmp_path, suffix):
    lexicon = Lexicon(
        [Pair("asante sana", "thank you very much"), Pair('say "hi"', "a, b"), Pair("x", "y")],
        source_lang="sw",
        target_lang="en",
    ).with_split(control_fraction=0.4, seed=1)
    path = write_lexicon(lexicon, tmp_path / f"out{suffix}")
    back = read_lexicon(path)
    assert back.pairs == lexicon.pairs
    assert back.fingerprint() == lexicon.fingerprint()
    plain = Lexicon([Pair("a", "b")], source_lang="fr", target_lang="de")
    back = read_lexicon(write_lexicon(plain, tmp_path / f"plain{suffix}"))
    assert back.pairs == plain.pairs and (back.source_lang, back.target_lang) == ("fr", "de")


def test_write_errors(tmp_path):
    with pytest.raises(LexiconError, match=r"\.xlsx"):
        write_lexicon(_lexicon(), tmp_path / "l.xlsx")
    with pytest.raises(LexiconError, match="empty"):
        write_lexicon(Lexicon([]), tmp_path / "l.json")


# --------------------------------------------------------------------------- validation


def test_missing_file_and_directory(tmp_path):
    message = _error(tmp_path / "nope.json")
    assert "no such file" in message
    (tmp_path / "dir.json").mkdir()
    assert "directory" in _error(tmp_path / "dir.json")


def test_unsupported_suffix(tmp_path):
    message = _error(_write(tmp_path / "l.xlsx", "x"))
    assert ".xlsx" in message and ".json" in message and ".csv" in message


def test_bad_encoding(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes("source,target\nmbwa,dog\ncaf\xe9,x\n".encode("latin-1"))
    message = _error(path)
    assert "line 3" in message and "UTF-8" in message


def test_malformed_json(tmp_path):
    path = _write(tmp_path / "m.json", '[\n {"source": "a", "target": "b"},\n {"source": "c"\n]')
    message = _error(path)
    assert "line 4" in message and "malformed JSON" in message


@pytest.mark.parametrize("text", ['"hello"', "42", '{"source_lang": "sw"}'])
def test_wrong_json_top_level(tmp_path, text):
    message = _error(_write(tmp_path / "t.json", text))
    assert "line 1" in message


def test_pairs_not_a_list(tmp_path):
    message = _error(_write(tmp_path / "t.json", '{\n"source_lang": "sw",\n"pairs": 3}'))
    assert "line 3" in message and '"pairs"' in message


def test_entry_not_object(tmp_path):
    path = _write(tmp_path / "e.json", '[\n  {"source": "a", "target": "b"},\n  ["c", "d"]\n]')
    message = _error(path)
    assert "line 3" in message and "not an object" in message


def test_entry_line_in_object_format(tmp_path):
    text = (
        '{\n  "source_lang": "sw",\n  "pairs": [\n    {"source": "a", "target": "b"},\n\n'
        '    {"source": "c",\n     "target": "  "}\n  ]\n}\n'
    )
    message = _error(_write(tmp_path / "o.json", text))
    assert "line 6" in message and "empty target" in message and '"c"' in message


def test_missing_field(tmp_path):
    path = _write(tmp_path / "f.json", '[{"source": "a", "target": "b"},\n{"source": "c"}]')
    message = _error(path)
    assert "line 2" in message and "no target" in message and "english" in message


def test_non_string_value(tmp_path):
    path = _write(tmp_path / "n.json", '[\n{"source": 5, "target": "five"}]')
    message = _error(path)
    assert "line 2" in message and "not a string" in message


def test_empty_values_csv(tmp_path):
    text = "source,target\nmbwa,dog\n\npaka,cat\nx,y\nz,w\nmbwa2,\n"
    message = _error(_write(tmp_path / "lexicon.csv", text))
    assert message.startswith(f"{tmp_path / 'lexicon.csv'} line 7: empty target")
    assert '"mbwa2"' in message
    message = _error(_write(tmp_path / "s.csv", "source,target\n   ,dog\n"))
    assert "line 2" in message and "empty source" in message
    message = _error(_write(tmp_path / "short.tsv", "source\ttarget\nmbwa\n"))
    assert "line 2" in message and "empty target" in message


def test_duplicate_pair_names_both_lines(tmp_path):
    text = "source,target\nmbwa,dog\npaka,cat\nmbwa , dog\n"
    message = _error(_write(tmp_path / "d.csv", text))
    assert "line 4" in message and "line 2" in message and "duplicate" in message


def test_unknown_group(tmp_path):
    message = _error(_write(tmp_path / "g.csv", "source,target,group\na,b,trained\nc,d,train\n"))
    assert "line 3" in message and '"train"' in message and "control" in message
    path = _write(tmp_path / "g.json", '[\n{"source": "a", "target": "b", "group": 1}]')
    assert "line 2" in _error(path)


def test_partial_and_leaking_groups(tmp_path):
    message = _error(_write(tmp_path / "p.csv", "source,target,group\na,b,trained\nc,d,\n"))
    assert "line 3" in message and "line 2" in message
    text = "source,target,group\na,b,trained\nc,d,control\na,e,control\n"
    message = _error(_write(tmp_path / "leak.csv", text))
    assert "line 4" in message and "line 2" in message and '"a"' in message


def test_empty_lexicon(tmp_path):
    assert "no pairs in" in _error(_write(tmp_path / "e.json", "[]"))
    assert "no pairs in" in _error(_write(tmp_path / "e.csv", "source,target\n"))
    assert "no pairs in" in _error(_write(tmp_path / "e2.csv", ""))
    assert "no pairs in" in _error(_write(tmp_path / "e2.json", '{"pairs": []}'))


def test_csv_header_without_columns(tmp_path):
    # Two unnamed columns are data (MUSE); three unnamed, or a header naming only one side, are not.
    message = _error(_write(tmp_path / "h.csv", "\nword,meaning,note\nmbwa,dog,x\n"))
    assert "line 2" in message and "source,target" in message
    message = _error(_write(tmp_path / "h2.csv", "source,meaning\nmbwa,dog\n"))
    assert message == (
        f'{tmp_path / "h2.csv"} line 1: header "source,meaning" lacks source and target — start with a '
        "header row such as source,target (or swahili,english; optional group), or give exactly two "
        "columns (source, target) without a header"
    )


# --------------------------------------------------------------------------- split, fingerprint


def test_split_seeded_and_without_leakage():
    lexicon = _lexicon(n_sources=200, senses=2)
    trained, control = lexicon.split(control_fraction=0.1, seed=0)
    again_trained, again_control = lexicon.split(control_fraction=0.1, seed=0)
    assert control.pairs == again_control.pairs and trained.pairs == again_trained.pairs
    assert set(lexicon.split(control_fraction=0.1, seed=1)[1].sources) != set(control.sources)
    assert not set(trained.sources) & set(control.sources)
    assert len(set(control.sources)) == 20
    assert len(trained) + len(control) == len(lexicon)
    assert all(Counter(control.sources)[s] == 2 for s in set(control.sources))
    assert {p.group for p in trained} == {"trained"} and {p.group for p in control} == {"control"}


def test_split_default_proportion_and_bounds():
    lexicon = _lexicon(n_sources=686, senses=1)
    trained, control = lexicon.split()
    assert (len(trained), len(control)) == (623, 63)
    tiny = Lexicon([Pair("a", "x"), Pair("b", "y")])
    assert [len(side) for side in tiny.split(control_fraction=0.01)] == [1, 1]
    assert [len(side) for side in tiny.split(control_fraction=0.99)] == [1, 1]
    with pytest.raises(LexiconError):
        Lexicon([Pair("a", "x"), Pair("a", "y")]).split()
    with pytest.raises(ConfigError):
        lexicon.split(control_fraction=1.5)


def test_split_independent_of_order_and_with_split():
    lexicon = _lexicon(n_sources=50)
    reversed_lexicon = Lexicon(list(reversed(lexicon.pairs)))
    assert set(lexicon.split()[1].sources) == set(reversed_lexicon.split()[1].sources)
    grouped = lexicon.with_split()
    assert grouped.has_split() and not lexicon.has_split()
    assert [p.source for p in grouped] == lexicon.sources
    trained, control = grouped.trained_and_control(control_fraction=0.5, seed=9)
    assert control.pairs == lexicon.split()[1].pairs  # stored split wins over the arguments
    assert lexicon.trained_and_control()[1].pairs == control.pairs
    with pytest.raises(LexiconError, match="control"):
        trained.subset("control")


def test_fingerprint():
    lexicon = _lexicon()
    assert lexicon.fingerprint() == _lexicon().fingerprint()
    assert len(lexicon.fingerprint()) == 64
    changed = Lexicon([Pair("w0", "other")] + lexicon.pairs[1:])
    assert changed.fingerprint() != lexicon.fingerprint()
    assert lexicon.with_split().fingerprint() != lexicon.fingerprint()
    assert Lexicon(lexicon.pairs, target_lang="fr").fingerprint() != lexicon.fingerprint()


# --------------------------------------------------------------------------- shipped lexicon


def test_shipped_lexicon():
    path = default_lexicon_path()
    assert path.name == "lexicon_sw_en.json" and path.is_file()
    lexicon = default_lexicon()
    raw = json.loads(path.read_text(encoding="utf-8"))["pairs"]  # the file read with nothing but json
    assert len(lexicon) == len(raw) == 1593
    assert [(p.source, p.target, p.group) for p in lexicon] == [
        (r["source"], r["target"], r["group"]) for r in raw
    ]
    assert (lexicon.source_lang, lexicon.target_lang) == ("sw", "en")
    assert lexicon.has_split()
    trained, control = lexicon.trained_and_control()
    assert not set(trained.sources) & set(control.sources)
    assert len(control) == round(63 / 686 * len(lexicon)) == 146
    senses = Counter(lexicon.sources)
    assert (len(senses), sum(n > 1 for n in senses.values())) == (
        1124,
        404,
    )  # source words; with several senses
    assert all(p.source == p.source.lower() and p.target == p.target.lower() for p in lexicon)
    assert not any(p.target.startswith("to ") for p in lexicon if p.source.startswith("ku"))


def test_shipped_split_is_the_seed0_default_split():
    lexicon = default_lexicon()
    ungrouped = Lexicon([Pair(p.source, p.target) for p in lexicon])
    assert ungrouped.with_split(control_fraction=63 / 686, seed=0).pairs == lexicon.pairs


# --------------------------------------------------------------------------- leak-free split: helpers


def _naive_words(text: str) -> set[str]:
    """Word tokens as the issue states the rule, written independently of tli: [\\w'’]+, edges trimmed."""
    words = (w.strip("'’") for w in re.findall(r"[\w'’]+", text.lower().replace("’", "'")))
    return {w for w in words if w}


def _linked(a: Pair, b: Pair) -> bool:
    return (
        a.source == b.source
        or a.target == b.target
        or bool(_naive_words(a.source) & _naive_words(b.source))
        or bool(_naive_words(a.target) & _naive_words(b.target))
    )


def _naive_leaks(trained: Lexicon, control: Lexicon) -> list[tuple[Pair, Pair]]:
    return [(c, t) for c in control for t in trained if _linked(c, t)]


def _naive_components(pairs: list[Pair]) -> list[set[int]]:
    """Connected components by breadth-first search over all O(n²) pair links."""
    seen, components = set(), []
    for start in range(len(pairs)):
        if start in seen:
            continue
        component, frontier = {start}, [start]
        while frontier:
            i = frontier.pop()
            for j in range(len(pairs)):
                if j not in component and _linked(pairs[i], pairs[j]):
                    component.add(j)
                    frontier.append(j)
        seen |= component
        components.append(component)
    return components


def _control_set(lexicon: Lexicon, **kwargs) -> set[tuple[str, str]]:
    return {(p.source, p.target) for p in lexicon.split(**kwargs)[1]}


# --------------------------------------------------------------------------- leak-free split: rules


def test_word_tokens():
    assert word_tokens("ng'ombe") == ["ng'ombe"]
    assert word_tokens("Ng’ombe wa Maziwa") == ["ng'ombe", "wa", "maziwa"]
    assert word_tokens("Mother-in-law's") == ["mother", "in", "law's"]
    assert word_tokens("'quoted' (word), how are you?") == ["quoted", "word", "how", "are", "you"]
    assert word_tokens("Café naïve Ελλάδα 42") == ["café", "naïve", "ελλάδα", "42"]
    assert word_tokens("?!") == []


def _filler(n: int) -> list[Pair]:
    return [Pair(f"neno{i}", f"word{i}") for i in range(n)]


def _side(lexicon: Lexicon, source: str) -> str:
    return next(p.group for p in lexicon if p.source == source)


def test_shared_target_keeps_both_pairs_on_one_side():
    lexicon = Lexicon([Pair("wakili", "lawyer"), Pair("mwanasheria", "lawyer")] + _filler(8))
    sides = set()
    for seed in range(30):
        split = lexicon.with_split(control_fraction=0.3, seed=seed)
        assert _side(split, "wakili") == _side(split, "mwanasheria")
        sides.add(_side(split, "wakili"))
    assert sides == {"trained", "control"}  # the pair of pairs does get held out, together


def test_phrase_word_links_to_single_word():
    lexicon = Lexicon([Pair("asante sana", "thank you very much"), Pair("sana", "very")] + _filler(8))
    for seed in range(30):
        split = lexicon.with_split(control_fraction=0.3, seed=seed)
        assert _side(split, "asante sana") == _side(split, "sana")
    # The same through the target side alone: "very" is an English word of both targets.
    lexicon = Lexicon([Pair("asante sana", "thank you very much"), Pair("mno", "very")] + _filler(8))
    for seed in range(30):
        split = lexicon.with_split(control_fraction=0.3, seed=seed)
        assert _side(split, "asante sana") == _side(split, "mno")


def test_giant_component_stays_trained():
    giant = [Pair(f"swali{i}", f"how are you {i}") for i in range(10)]  # all linked by "how", "are", "you"
    lexicon = Lexicon(giant + _filler(10))
    for seed in range(10):
        split, report = lexicon.split_with_report(control_fraction=0.3, seed=seed)
        assert {p.group for p in split.pairs[:10]} == {"trained"}
        assert (report.n_control, report.control_budget) == (6, 6)
        assert (report.n_components, report.largest_component) == (11, 10)
        assert report.n_trained + report.n_control == report.n_pairs == 20


def test_components_larger_than_budget_hold_out_the_smallest():
    pairs = [Pair(f"a{i}", "x y") for i in range(3)] + [Pair("b", "z"), Pair("b", "w")]
    trained, control = Lexicon(pairs).split(control_fraction=0.1)  # budget 1, components of 3 and 2
    assert control.pairs == [Pair("b", "z", "control"), Pair("b", "w", "control")]
    assert len(trained) == 3


def test_one_component_cannot_be_split():
    lexicon = Lexicon([Pair("habari yako", "how are you"), Pair("habari", "news"), Pair("yako", "your")])
    with pytest.raises(LexiconError) as info:
        lexicon.split()
    assert str(info.value) == (
        "lexicon: cannot split: all 3 pairs are linked into one group by shared sources, targets or words, "
        "so none can be held out unseen — add pairs that share no word with the others, or give a "
        "separate test lexicon (combine_train_test)"
    )
    with pytest.raises(LexiconError, match="add at least 2 distinct source words"):
        Lexicon([Pair("a", "x"), Pair("a", "y")]).split_with_report()


def test_moved_by_rule_by_hand():
    # Source-only: four singletons; +target: {a, b} joins. Budget 1: the first singleton of the
    # seeded shuffle of the sorted components is held out; moving it is 2 pairs when it changes.
    lexicon = Lexicon([Pair("d", "z"), Pair("b", "x"), Pair("a", "x"), Pair("c", "y")])
    moved = set()
    for seed in range(12):
        by_source = [["a"], ["b"], ["c"], ["d"]]
        random.Random(seed).shuffle(by_source)
        by_target = [["a", "b"], ["c"], ["d"]]
        random.Random(seed).shuffle(by_target)
        before = by_source[0][0]
        after = next(c for c in by_target if len(c) == 1)[0]
        split, report = lexicon.split_with_report(control_fraction=0.25, seed=seed)
        assert [p.source for p in split if p.group == "control"] == [after]
        assert report.moved_by_rule == {"target": 0 if before == after else 2, "word": 0}
        moved.add(report.moved_by_rule["target"])
    assert moved == {0, 2}
    # Only the word rule links these (two English phrases share "big"): it moves them, target does not.
    report = Lexicon([Pair("a", "big dog"), Pair("b", "big cat")] + _filler(4)).split_with_report(0.4)[1]
    assert report.moved_by_rule["target"] == 0


def test_split_report_to_dict():
    _, report = _lexicon(n_sources=10, senses=1).split_with_report(control_fraction=0.2, seed=3)
    assert isinstance(report, SplitReport)
    assert report.to_dict() == {
        "control_fraction": 0.2,
        "seed": 3,
        "n_pairs": 10,
        "control_budget": 2,
        "n_trained": 8,
        "n_control": 2,
        "n_trained_sources": 8,
        "n_control_sources": 2,
        "n_components": 10,
        "largest_component": 1,
        "moved_by_rule": {"target": 0, "word": 0},
    }


# --------------------------------------------------------------------------- leak-free split: properties

_SW = ["mbwa", "paka", "sana", "asante", "maji", "moto", "kitabu", "ng'ombe", "Ng’ombe", "mti", "jua"]
_SW += ["ndege", "samaki", "habari", "yako", "kubwa", "ndogo", "nzuri", "safi", "chai", "kahawa", "mkate"]
_EN = ["dog", "cat", "very", "thank", "you", "water", "fire", "book", "cow", "Tree", "sun", "bird"]
_EN += ["fish", "news", "your", "big", "small", "good", "clean", "tea", "coffee", "bread", "mother-in-law"]


def _phrase(vocab: list[str]) -> st.SearchStrategy[str]:
    sizes = st.sampled_from([1, 1, 1, 2, 3])  # mostly single words, some phrases
    return sizes.flatmap(lambda n: st.lists(st.sampled_from(vocab), min_size=n, max_size=n)).map(" ".join)


_PAIRS = st.lists(st.tuples(_phrase(_SW), _phrase(_EN)), min_size=2, max_size=30, unique=True)


@settings(max_examples=150, deadline=None, database=None)
@given(pairs=_PAIRS, fraction=st.floats(0.05, 0.6), seed=st.integers(0, 10**6), order=st.randoms())
def test_split_property_random_lexicons(pairs, fraction, seed, order):
    lexicon = Lexicon([Pair(s, t) for s, t in pairs])
    components = _naive_components(lexicon.pairs)
    if len(components) == 1 or len(set(lexicon.sources)) < 2:
        with pytest.raises(LexiconError, match="cannot split"):
            lexicon.split(control_fraction=fraction, seed=seed)
        return
    trained, control = lexicon.split(control_fraction=fraction, seed=seed)
    assert not _naive_leaks(trained, control)
    assert audit_split(trained, control).leak_free
    assert len(trained) + len(control) == len(lexicon)
    budget = min(max(1, round(fraction * len(lexicon))), len(lexicon) - 1)
    assert abs(len(control) - budget) < max(len(c) for c in components)
    shuffled = list(lexicon.pairs)
    order.shuffle(shuffled)
    expected = _control_set(lexicon, control_fraction=fraction, seed=seed)
    assert _control_set(Lexicon(shuffled), control_fraction=fraction, seed=seed) == expected
    assert lexicon.split(control_fraction=fraction, seed=seed)[1].pairs == control.pairs
    report = lexicon.split_with_report(control_fraction=fraction, seed=seed)[1]
    assert (report.n_components, report.largest_component) == (len(components), max(map(len, components)))


# --------------------------------------------------------------------------- audit, train/test dictionaries


def test_audit_split_counts_on_a_leaky_split():
    trained = Lexicon(
        [Pair("mwanasheria", "lawyer"), Pair("asante sana", "thank you very much"), Pair("kiti", "chair")]
    )
    control = Lexicon(
        [Pair("wakili", "lawyer"), Pair("sana", "very"), Pair("kiti", "seat"), Pair("paka", "cat")]
    )
    audit = audit_split(trained, control)
    assert isinstance(audit, SplitAudit)
    assert audit.leaks == {"source": 1, "target": 1, "word": 3}
    assert (audit.n_leaking, audit.n_duplicates, audit.n_dropped) == (3, 0, 0)
    assert not audit.leak_free
    record = audit.to_dict()
    assert record["leak_free"] is False and (record["n_trained"], record["n_control"]) == (3, 4)
    assert record["examples"]["target"] == [
        {"rule": "target", "side": "target", "control": ["wakili", "lawyer"],
         "trained": ["mwanasheria", "lawyer"], "shared": "lawyer"}
    ]  # fmt: skip
    assert [(e["control"][0], e["side"], e["shared"]) for e in record["examples"]["word"]] == [
        ("wakili", "target", "lawyer"),
        ("sana", "source", "sana"),
        ("kiti", "source", "kiti"),
    ]
    assert audit_split(trained, Lexicon([Pair("paka", "cat")])).leak_free
    with pytest.raises(LexiconError, match="languages sw→fr differ"):
        audit_split(trained, Lexicon([Pair("paka", "chat")], target_lang="fr"))


def test_stored_split_is_kept_and_audited():
    # The split shipped before (by source word only) held out "wakili → lawyer" and trained on
    # "mwanasheria → lawyer": a stored split like it is used as given, and the audit says it leaks.
    groups = {True: "control", False: "trained"}
    old_style = Lexicon([Pair(p.source, p.target, groups[p.source == "wakili"]) for p in default_lexicon()])
    trained, control = old_style.trained_and_control()
    assert control.pairs == [Pair("wakili", "advocate", "control"), Pair("wakili", "lawyer", "control")]
    audit = audit_split(trained, control)
    assert audit.leaks == {"source": 0, "target": 1, "word": 1} and not audit.leak_free
    assert audit.examples["target"][0].trained == Pair("mwanasheria", "lawyer", "trained")


def _train_test(tmp_path) -> tuple[Lexicon, Lexicon, Path, Path]:
    train = _write(tmp_path / "train.txt", "mbwa dog\nsamaki fish\n")
    train_tab = _write(tmp_path / "train_tab.txt", "asante sana\tthank you very much\n")
    test = _write(tmp_path / "test.txt", "paka cat\nsana very\nkuvua fish\nmbwa dog\nchui leopard\n")
    pairs = read_lexicon(train).pairs + read_lexicon(train_tab).pairs
    return Lexicon(pairs, path=str(train)), read_lexicon(test), train, test


def test_combine_train_test_drop(tmp_path):
    train, test, _, _ = _train_test(tmp_path)
    combined, audit = combine_train_test(train, test)
    assert combined.pairs == [
        Pair("mbwa", "dog", "trained"),
        Pair("samaki", "fish", "trained"),
        Pair("asante sana", "thank you very much", "trained"),
        Pair("paka", "cat", "control"),
        Pair("chui", "leopard", "control"),
    ]
    assert audit.leaks == {"source": 1, "target": 2, "word": 3}
    assert (audit.n_leaking, audit.n_duplicates, audit.n_dropped, audit.leak_free) == (3, 1, 3, True)
    assert audit_split(*combined.trained_and_control()).leak_free


def test_combine_train_test_keep_and_error(tmp_path):
    train, test, train_path, test_path = _train_test(tmp_path)
    combined, audit = combine_train_test(train, test, on_leak="keep")
    assert len(combined) == 8 and [p.group for p in combined].count("control") == 5
    assert (audit.n_leaking, audit.n_dropped, audit.leak_free) == (3, 0, False)
    with pytest.raises(LexiconError) as info:
        combine_train_test(train, test, on_leak="error")
    assert str(info.value) == (
        f'{test_path}: test pair "sana" → "very" shares the sw word "sana" with train pair "asante sana" → '
        f'"thank you very much" of {train_path} — remove it, or use on_leak="drop"'
    )
    duplicate_only = Lexicon([Pair("mbwa", "dog")], path="t.txt")
    with pytest.raises(LexiconError, match='shares the source "mbwa" with train pair "mbwa" → "dog"'):
        combine_train_test(train, duplicate_only, on_leak="error")
    with pytest.raises(LexiconError, match="every test pair shares"):
        combine_train_test(train, duplicate_only)
    with pytest.raises(ConfigError, match='on_leak=.skip. — use "drop", "keep" or "error"'):
        combine_train_test(train, test, on_leak="skip")
    french = Lexicon([Pair("chien", "dog")], source_lang="fr", path="fr.txt")
    with pytest.raises(LexiconError) as info:
        combine_train_test(train, french)
    assert str(info.value) == (
        f"fr.txt: languages fr→en differ from {train_path} (sw→en) — give both lexicons the same "
        "source and target languages"
    )


# --------------------------------------------------------------------------- the shipped split


def test_shipped_split_is_leak_free_on_every_side():
    trained, control = default_lexicon().trained_and_control()
    assert not _naive_leaks(trained, control)
    trained_words = {w for p in trained for w in _naive_words(p.source)}
    assert not trained_words & {w for p in control for w in _naive_words(p.source)}
    audit = audit_split(trained, control)
    assert audit.leaks == {"source": 0, "target": 0, "word": 0} and audit.leak_free


def test_shipped_split_report_is_consistent():
    lexicon = default_lexicon()
    ungrouped = Lexicon([Pair(p.source, p.target) for p in lexicon])
    split, report = ungrouped.split_with_report(control_fraction=DEFAULT_CONTROL_FRACTION, seed=0)
    assert split.pairs == lexicon.pairs
    assert report.n_trained + report.n_control == report.n_pairs == len(lexicon)
    assert report.n_control == sum(p.group == "control" for p in lexicon)
    assert report.n_control_sources == len({p.source for p in lexicon if p.group == "control"})
    assert report.control_budget - report.largest_component < report.n_control <= report.control_budget
    assert report == ungrouped.split_with_report(control_fraction=DEFAULT_CONTROL_FRACTION, seed=0)[1]
    assert set(report.moved_by_rule) == {"target", "word"} and report.moved_by_rule["target"] > 0


def test_split_script_rewrites_the_shipped_file_byte_for_byte(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_lexicon_split", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    copy = shutil.copy(default_lexicon_path(), tmp_path / "lexicon.json")
    assert script.main([str(copy)]) == 0
    assert Path(copy).read_bytes() == default_lexicon_path().read_bytes()
    assert script.main([str(copy)]) == 0
    assert Path(copy).read_bytes() == default_lexicon_path().read_bytes()
    printed = capsys.readouterr().out.splitlines()
    assert json.loads(printed[1])["n_pairs"] == len(default_lexicon())
    assert script.with_split_note("Words. group: old text.") == f"Words. {script.SPLIT_NOTE}"
    assert script.SPLIT_NOTE in default_lexicon().meta["notes"]


# --------------------------------------------------------------------------- MUSE and other table formats


def test_muse_tab_and_space_without_header(tmp_path):
    path = _write(tmp_path / "en-sw.0-5000.txt", "mbwa\tdog\npaka\tcat\nasante sana\tthank you\n")
    assert read_lexicon(path).pairs == [
        Pair("mbwa", "dog"),
        Pair("paka", "cat"),
        Pair("asante sana", "thank you"),
    ]
    path = _write(tmp_path / "muse.txt", "mbwa dog\r\npaka   cat \r\n\r\nbahari sea\n")
    lexicon = read_lexicon(path)
    assert lexicon.pairs == [Pair("mbwa", "dog"), Pair("paka", "cat"), Pair("bahari", "sea")]
    assert (lexicon.source_lang, lexicon.target_lang) == ("sw", "en")
    path = _write(tmp_path / "muse.tsv", "\ufeffng'ombe cow\n")
    assert read_lexicon(path).pairs == [Pair("ng'ombe", "cow")]


def test_space_separated_multiword_is_an_error(tmp_path):
    path = _write(tmp_path / "m.txt", "mbwa dog\nasante sana thank you\n")
    assert _error(path) == (
        f'{path} line 2: 4 space-separated words "asante sana thank you" — in a file without tabs each line '
        "is a source and a target split at the first space, so a multiword entry cannot be told apart; "
        "separate source and target with a tab"
    )
    path = _write(tmp_path / "one.txt", "mbwa dog\npaka\n")
    assert _error(path) == f'{path} line 2: empty target for source "paka" — fill it in or delete the line'


def test_header_detection(tmp_path):
    lexicon = read_lexicon(_write(tmp_path / "h.txt", "swahili english\nmbwa dog\n"))
    assert lexicon.pairs == [Pair("mbwa", "dog")]
    lexicon = read_lexicon(_write(tmp_path / "h2.txt", "Source:fr  Target:de group\nchat Katze control\n"))
    assert lexicon.pairs == [Pair("chat", "Katze", "control")]
    assert (lexicon.source_lang, lexicon.target_lang) == ("fr", "de")
    # First rows that name no column are data, in every table format.
    assert read_lexicon(_write(tmp_path / "d.csv", "word,meaning\nmbwa,dog\n")).pairs == [
        Pair("word", "meaning"),
        Pair("mbwa", "dog"),
    ]
    assert read_lexicon(_write(tmp_path / "d.tsv", "mbwa\tdog\n")).pairs == [Pair("mbwa", "dog")]
    assert read_lexicon(_write(tmp_path / "d.csv", "mbwa,dog,\n")).pairs == [Pair("mbwa", "dog")]
    path = _write(tmp_path / "g.txt", "group\tmbwa\nx\ty\n")
    assert "header" in _error(path) and "lacks source and target" in _error(path)


def test_comments_are_skipped_and_lines_counted(tmp_path):
    text = "# MUSE-style dictionary\nmbwa dog\n   # indented comment\npaka cat\n"
    assert read_lexicon(_write(tmp_path / "c.txt", text)).pairs == [Pair("mbwa", "dog"), Pair("paka", "cat")]
    path = _write(tmp_path / "c.csv", "# made by hand\nsource,target\n# nouns\nmbwa,dog\n#,x\npaka,\n")
    assert _error(path) == f'{path} line 6: empty target for source "paka" — fill it in or delete the line'
    path = _write(tmp_path / "c2.tsv", "#c\nsource\ttarget\n  # c\nmbwa\tdog\nmbwa\tdog\n")
    assert "line 5" in _error(path) and "line 4" in _error(path)
    # A "#" line inside a quoted multi-line value is part of the value, not a comment.
    path = _write(tmp_path / "q.csv", 'source,target\n"a\n# b",c\n')
    assert read_lexicon(path).pairs == [Pair("a # b", "c")]


def test_extra_column_is_an_error(tmp_path):
    path = _write(tmp_path / "x.csv", "source,target\nmbwa,dog\npaka,cat,pet\n")
    assert _error(path) == (
        f'{path} line 3: extra value "pet" in column 3 beyond the 2 columns of the header — delete it, '
        "quote values that contain commas, or name the column in the header"
    )
    path = _write(tmp_path / "x.tsv", "mbwa\tdog\npaka\tcat\tanimal\n")
    assert _error(path) == (
        f'{path} line 2: extra value "animal" in column 3 of a file without header — delete it, or add a '
        "header row naming every column"
    )
    path = _write(tmp_path / "ok.csv", "id,swahili,english,group\n1,mbwa,dog,trained\n2,paka,cat,control\n")
    assert [p.group for p in read_lexicon(path)] == ["trained", "control"]
