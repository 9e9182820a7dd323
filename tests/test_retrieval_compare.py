"""Retrieval in ``tli compare``: system cells with TREC files, dense-retriever conditions, comparisons, report."""

import json

import pytest

from tli.cli import main
from tli.compare import compare, dry_run, parse_experiment
from tli.retrieval.ranking_metrics import METRICS, mean_scores
from tli.retrieval.trec import read_qrels, read_run


def _experiment(tmp_path, body: str, name="r.yaml"):
    path = tmp_path / name
    path.write_text(body)
    return path


def _full(model, encoder) -> str:
    return f"""models: [{model}]
strategies: [none, lora]
tasks:
  mrtydi: {{path: "samples:mrtydi", languages: [sw], limit: 8, layer_curve: [0, 2], cache: false}}
  xquad: {{path: "samples:xquad", languages: [de-en], limit: 6, layer_curve: false, cache: false}}
train: {{task: xlsum, language: sw, path: "samples:xlsum", limit: 4}}
budget: {{steps: 1, batch_size: 2}}
seeds: [0]
n_resamples: 199
retrieval:
  fusion: {{systems: [dense:none, dense:synthetic]}}
  dense_retriever:
    encoder: {encoder}
    conditions: [zero-shot, direct-transfer, synthetic, mix]
    steps: 2
    batch_size: 4
    hard_negatives: 1
    max_seq_length: 32
    english: {{task: tydi, language: en, split: train, limit: 8}}
    synthetic:
      passages: {{task: tydi, language: sw, split: train, limit: 4}}
      methods: [doc2query, code-switch]
      generator: {model}
      max_new_tokens: 4
      bm25_top_k: 0
"""


@pytest.fixture(scope="module")
def finished(tiny_model_dirs, tmp_path_factory):
    from test_retrieval_biencoder import build_tiny_bert

    root = tmp_path_factory.mktemp("retrieval-compare")
    encoder = build_tiny_bert(root / "bert")
    path = _experiment(root, _full(tiny_model_dirs["llama"], encoder))
    return path, root / "out", compare(path, out=root / "out", progress=False)


@pytest.mark.slow
def test_retrieval_cells_follow_the_interface(finished, tiny_model_dirs):
    _, out, results = finished
    cells = results["cells"]
    assert all(c["status"] == "done" for c in cells), [c["error"] for c in cells if c["status"] != "done"]
    systems = {(c["task"], c["system"]) for c in cells}
    expected = {"bm25", "dense:none", "dense:lora", "dense:zero-shot", "dense:direct-transfer", "dense:synthetic",
                "dense:mix", "fusion:bm25+dense:none", "fusion:bm25+dense:synthetic"}  # fmt: skip
    assert systems == {(task, s) for task in ("mrtydi", "xquad") for s in expected}
    assert len(cells) == len(parse_experiment(finished[0]).cells())
    for cell in cells:
        assert set(cell["metrics"]) == set(METRICS)
        # every figure recomputes from the cell's two TREC files
        recomputed = mean_scores(read_qrels(cell["qrels"]), read_run(cell["run"], allow_empty=True))
        assert recomputed == pytest.approx({m: v["score"] for m, v in cell["metrics"].items()})
    bm25 = next(c for c in cells if c["system"] == "bm25" and c["task"] == "mrtydi")
    assert bm25["model"] is None and bm25["seed"] is None and bm25["cost"]["trainable_parameters"] == 0
    none = next(c for c in cells if c["system"] == "dense:none" and c["task"] == "mrtydi")
    assert none["strategy"] == "none" and none["model"] == str(tiny_model_dirs["llama"])
    assert set(none["details"]["layer_curve"]) == {"0", "2"} and none["details"]["passages_unscored"] == 1
    trained = next(c for c in cells if c["system"] == "dense:mix" and c["task"] == "xquad")
    assert (
        trained["cost"]["steps"] == 2 and trained["cost"]["trainable_parameters"] > 0 and trained["seed"] == 0
    )
    zero = next(c for c in cells if c["system"] == "dense:zero-shot")
    assert zero["seed"] is None and zero["cost"]["steps"] == 0


@pytest.mark.slow
def test_retrieval_comparisons_claims_and_report(finished):
    _, out, results = finished
    rows = [c for c in results["comparisons"] if c["task"] in ("mrtydi", "xquad")]
    pairs = {(c["strategy"], c["reference"]) for c in rows}
    assert ("dense:none", "bm25") in pairs and ("dense:synthetic", "dense:direct-transfer") in pairs
    assert ("dense:lora", "dense:none") in pairs and ("fusion:bm25+dense:none", "dense:none") in pairs
    assert {c["metric"] for c in rows if c["task"] == "mrtydi"} == {"mrr@100"}  # the primary metric only
    assert all(c["p_adjusted"] >= c["p_value"] for c in rows)
    synthetic = [c for c in results["claims"] if c["key"] == "synthetic-dense"]
    assert synthetic and all(c["verdict"] != "not measured" for c in synthetic)
    report = (out / "report.md").read_text()
    assert "## Retrieval" in report and "| dense:direct-transfer |" in report and "MRR@10 per layer" in report
    assert "Published Mr. TyDi (sw) test MRR@100" in report and "Synthetic training pairs" in report
    assert (out / "retrieval_layers.png").read_bytes()[:4] == b"\x89PNG"
    synthetic_rows = [json.loads(line) for line in open(out / "synthetic" / "synthetic.jsonl")]
    assert synthetic_rows and all("provenance" in r for r in synthetic_rows)


@pytest.mark.slow
def test_rerunning_reuses_every_retrieval_cell(finished, monkeypatch):
    import tli.retrieval.biencoder as biencoder
    import tli.retrieval.rank as rank

    path, out, results = finished

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished retrieval cell was computed again")

    monkeypatch.setattr(biencoder, "train_biencoder", forbidden)
    monkeypatch.setattr(rank, "bm25_ranking", forbidden)
    monkeypatch.setattr(rank, "dense_ranking", forbidden)
    again = compare(path, out=out, progress=False)
    assert [c["metrics"] for c in again["cells"]] == [c["metrics"] for c in results["cells"]]


SMALL = """models: [{model}]
strategies: [none]
tasks:
  mrtydi: {{path: "samples:mrtydi", languages: [sw], limit: 4}}
"""


@pytest.mark.parametrize(
    "extra, message",
    [
        ("retrieval: {systems: [dense, sparse]}\n", "retrieval.systems ['sparse']: choose from dense, bm25, fusion"),
        ("retrieval: {systems: [dense, fusion]}\n", "fusion fuses BM25 with each dense system; add bm25"),
        ("retrieval: {dense_retriever: {conditions: [direct-transfer]}}\n", "dense_retriever.english is needed"),
        ("retrieval: {dense_retriever: {conditions: [ssl]}}\n", "conditions ['ssl']: choose from zero-shot"),
        ("retrieval: {dense_retriever: {conditions: [synthetic], synthetic: {methods: [doc2query]}}}\n",
         "synthetic.passages is needed by doc2query"),
        ("retrieval: {reference: dense:full}\n", "retrieval.reference 'dense:full' is not one of"),
        ("retrieval: {bm25: {k3: 1}}\n", "unknown key(s) k3 in `retrieval.bm25`"),
        ("retrieval: {dense_retriever: {conditions: [direct-transfer], english: {task: xnli, language: en}}}\n",
         "must be a retrieval task"),
    ],
)  # fmt: skip
def test_bad_retrieval_blocks_are_one_line_errors(tiny_llama_dir, tmp_path, capsys, extra, message):
    path = _experiment(tmp_path, SMALL.format(model=tiny_llama_dir) + extra)
    assert main(["compare", str(path), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(path) in err, err
    assert not (tmp_path / "never").exists()


def test_swahili_xquad_and_bad_data_stop_before_any_model_loads(tiny_llama_dir, tmp_path, capsys):
    body = SMALL.format(model=tiny_llama_dir).replace(
        'mrtydi: {path: "samples:mrtydi"', 'xquad: {path: "samples:xquad"'
    )
    path = _experiment(tmp_path, body.replace("[sw]", "[sw-en]"))
    assert main(["compare", str(path), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "XQuAD has no Swahili" in err and "Mr. TyDi" in err
    qrels = tmp_path / "mrtydi-v1.1-swahili"
    (qrels / "collection").mkdir(parents=True)
    (qrels / "collection" / "docs.jsonl").write_text('{"id": "1", "contents": "mbwa"}\n')
    (qrels / "topic.test.tsv").write_text("1\tmbwa?\n")
    (qrels / "qrels.test.txt").write_text("1 Q0 7 1\n")
    path = _experiment(tmp_path, SMALL.format(model=tiny_llama_dir).replace('"samples:mrtydi"', str(qrels)))
    assert main(["compare", str(path), "--out", str(tmp_path / "never")]) == 2
    assert "qrels.test.txt:1: document '7' is not in the corpus" in capsys.readouterr().err


def test_shipped_retrieval_experiments_validate_and_plan(capsys):
    from tli.compare import shipped_experiments

    names = [n for n in shipped_experiments() if n.startswith("retrieval")]
    assert "retrieval-demo" in names and len(names) >= 3
    for name in names:
        experiment = parse_experiment(name, check_device=False)
        planned = dry_run(experiment)
        assert planned["cells"] == len(experiment.cells()) and planned["retrieval_units"]
    assert main(["compare", "retrieval-demo", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "dense:direct-transfer" in printed and "retrieval-system cells" in printed
