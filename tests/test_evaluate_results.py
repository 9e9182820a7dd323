"""Typed evaluation results: their ``to_dict()`` is the results.json form the files always had, key for key and
in order, on a real run of the tiny model."""

import importlib
import json
import math

import pytest

from tli.train import train

# results.json of one adapter's evaluation, keys in file order: the figures, then tli.runs.provenance (whose
# "seed" keeps its place and holds the adapter's seed), then the run's own record.
EVALUATION_RESULT_KEYS = [
    "target_layer",
    "final_layer",
    "layer_roles",
    "evaluation",
    "between_groups",
    "claims",
    "bli",
    "statistics",
    "per_pair",
    "skipped_groups",
    "skipped_pairs",
    "layers_pre",
    "layers_post",
    "warnings",
    "pooling",
    "precision",
    "timing",
    "command",
    "argv",
    "config",
    "seed",
    "versions",
    "git_revision",
    "platform",
    "devices",
    "created_at",
    "split",
    "model",
    "lexicon",
    "adapter",
]
# results.json of an evaluation over seeds, keys in file order.
SEEDS_SUMMARY_KEYS = [
    "seeds",
    "evaluation",
    "claims",
    "bli",
    "per_seed",
    "target_layer",
    "final_layer",
    "layer_roles",
    "statistics",
    "pooling",
    "model",
    "lexicon",
    "skipped_groups",
    "warnings",
    "command",
    "argv",
    "config",
    "seed",
    "versions",
    "git_revision",
    "platform",
    "devices",
    "created_at",
]


@pytest.fixture(scope="module")
def evaluated(tiny_model_dirs, tmp_path_factory):
    """Two seeds' adapters on the tiny Llama, evaluated together: ``(returned summary, out directory, the
    per-seed results seed_summary was given)``."""
    from conftest import TOY_PAIRS

    from tli.evaluate import evaluate, seed_summary

    api = importlib.import_module("tli.evaluate.api")  # `tli.evaluate` is the function (see tli/__init__)

    root = tmp_path_factory.mktemp("typed-results")
    lexicon = root / "toy.json"
    lexicon.write_text(json.dumps([{"swahili": s, "english": e} for s, e in TOY_PAIRS]))
    train(
        str(tiny_model_dirs["llama"]),
        str(lexicon),
        out=root / "t",
        epochs=1,
        batch_size=4,
        seeds=[0, 1],
        progress=False,
    )
    given = []

    def spy(per_seed):
        given.extend(per_seed)
        return seed_summary(per_seed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api, "seed_summary", spy)
        summary = evaluate(root / "t", out=root / "e", n_boot=200, progress=False)
    return summary, root / "e", given


def _read(path):
    return json.loads(path.read_text())


def _same(a, b):
    """Equal as JSON, keys in the same order (NaN, which some p-values are, equal to NaN)."""
    return json.dumps(a) == json.dumps(b)


def _as_written(value):
    """``value`` as results.json holds it: NaN and inf become null (:func:`tli.io.atomic_write_json`)."""
    if isinstance(value, dict):
        return {k: _as_written(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_written(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def test_results_json_keys_keep_their_order(evaluated):
    summary, out, _ = evaluated
    assert list(summary) == SEEDS_SUMMARY_KEYS
    assert list(_read(out / "results.json")) == SEEDS_SUMMARY_KEYS
    for seed in (0, 1):
        assert list(_read(out / f"seed-{seed}" / "results.json")) == EVALUATION_RESULT_KEYS


def _previous_seed_summary(per_seed):
    """seed_summary as it was before the typed results: a dict built from the per-seed dicts by string key."""
    from tli.evaluate import SHARED_BY_SEEDS, aggregate

    first = per_seed[0]
    return {
        "seeds": [r["seed"] for r in per_seed],
        **aggregate(per_seed),
        "per_seed": [{k: r[k] for k in ("seed", "evaluation", "claims", "adapter")} for r in per_seed],
        **{key: first[key] for key in SHARED_BY_SEEDS},
        "skipped_groups": first["skipped_groups"],
        "warnings": list(dict.fromkeys(w for r in per_seed for w in r.get("warnings", []))),
    }


def test_typed_results_round_trip_and_give_the_previous_dicts(evaluated):
    from tli.evaluate import EvaluationResult, SeedsSummary, seed_summary

    summary, out, typed = evaluated
    assert [type(r) for r in typed] == [EvaluationResult, EvaluationResult]
    for seed, result in zip((0, 1), typed, strict=True):
        record = result.to_dict()
        assert _same(_as_written(record), _read(out / f"seed-{seed}" / "results.json"))
        assert _same(EvaluationResult.from_dict(record).to_dict(), record)
        assert result.seed == record["seed"] == seed and result.final_layer == record["final_layer"]

    over_seeds = seed_summary(typed)
    assert isinstance(over_seeds, SeedsSummary)
    previous = _previous_seed_summary([r.to_dict() for r in typed])
    assert _same(over_seeds.to_dict(), previous)
    assert _same(SeedsSummary.from_dict(over_seeds.to_dict()).to_dict(), previous)
    # What the API returned and wrote is that summary, then the provenance.
    assert _same({k: summary[k] for k in previous}, previous)
    written = _read(out / "results.json")
    assert _same({k: written[k] for k in previous}, _as_written(previous))


def test_an_unrecorded_result_has_only_its_figures(evaluated):
    from tli.evaluate import EvaluationResult

    _, out, _ = evaluated
    record = _read(out / "seed-0" / "results.json")
    figures = {k: record[k] for k in EVALUATION_RESULT_KEYS[: EVALUATION_RESULT_KEYS.index("timing") + 1]}
    result = EvaluationResult(**figures)
    assert _same(result.to_dict(), figures)
    result.record_run(
        {k: record[k] for k in ("command", "argv", "config", "seed", "versions", "git_revision")}
        | {k: record[k] for k in ("platform", "devices", "created_at")},
        seed=record["seed"],
        split=record["split"],
        model=record["model"],
        lexicon=record["lexicon"],
        adapter=record["adapter"],
    )
    assert _same(result.to_dict(), record) and list(result.to_dict()) == EVALUATION_RESULT_KEYS
