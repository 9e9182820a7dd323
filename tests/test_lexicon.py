"""Tests for tli.lexicon: readers, writers, validation messages, splits and the shipped lexicon."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tli.errors import ConfigError, LexiconError
from tli.lexicon import (
    Lexicon,
    Pair,
    default_lexicon,
    default_lexicon_path,
    read_lexicon,
    write_lexicon,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _lexicon(n_sources: int = 40, senses: int = 2) -> Lexicon:
    pairs = [Pair(f"w{i}", f"t{i}-{k}") for i in range(n_sources) for k in range(senses)]
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
    message = _error(_write(tmp_path / "h.csv", "\nword,meaning\nmbwa,dog\n"))
    assert "line 2" in message and "source,target" in message


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
    assert len(lexicon) >= 700
    assert (lexicon.source_lang, lexicon.target_lang) == ("sw", "en")
    assert lexicon.has_split()
    trained, control = lexicon.trained_and_control()
    assert not set(trained.sources) & set(control.sources)
    n_sources = len(set(lexicon.sources))
    assert len(set(control.sources)) == round(63 / 686 * n_sources)
    senses = Counter(lexicon.sources)
    assert sum(n > 1 for n in senses.values()) >= 40
    assert all(p.source == p.source.lower() and p.target == p.target.lower() for p in lexicon)
    assert not any(p.target.startswith("to ") for p in lexicon if p.source.startswith("ku"))


def test_shipped_split_is_the_seed0_default_split():
    lexicon = default_lexicon()
    ungrouped = Lexicon([Pair(p.source, p.target) for p in lexicon])
    assert ungrouped.with_split(control_fraction=63 / 686, seed=0).pairs == lexicon.pairs
