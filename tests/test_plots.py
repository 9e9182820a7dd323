"""Tests for the PNG plots: each writes a readable PNG, and the figures hold what they claim to draw."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from tli import plots

ARTIFACTS = [2, 3, 4, 9]


def _layer_rows(n_layers=12, *, centered=True, shift=0.0):
    """Layers 2-10 look like the anisotropy artefact: matched ≈ mismatched ≈ 0.99, gap ~1e-3."""
    rows = []
    for layer in range(n_layers):
        artefact = 2 <= layer <= n_layers - 2
        matched = 0.99 + shift if artefact else 0.4 + shift
        gap = 0.0012 if artefact else 0.15
        row = {
            "layer": layer,
            "matched_mean": matched,
            "mismatched_mean": matched - gap,
            "gap": gap,
            "p_at_1": 0.02 if artefact else 0.3,
            "p_at_5": 0.05 if artefact else 0.6,
            "mrr": 0.04 if artefact else 0.45,
            "csls_p_at_1": 0.03 if artefact else 0.4,
        }
        if centered:
            row["centered_gap"] = 10 * gap
        rows.append(row)
    return rows


def _per_pair(groups=(("trained", 40), ("control", 8)), roles=(("target", 2), ("final", 30))):
    rng = np.random.default_rng(0)
    rows = []
    for role, layer in roles:
        for group, n in groups:
            for i in range(n):
                pre = float(rng.uniform(0.2, 0.5))
                rows.append(
                    {
                        "source": f"s{i}",
                        "target": f"t{i}",
                        "group": group,
                        "layer": layer,
                        "layer_role": role,
                        "sim_pre": pre,
                        "sim_post": pre + 0.05,
                        "gap_pre": pre / 10,
                        "gap_post": pre / 10 - 0.01,
                        "centered_gap_pre": pre / 5,
                        "centered_gap_post": pre / 5 + 0.02,
                    }
                )
    return rows


def _assert_png(path):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no temp left


def _axes(fig, gid):
    return [ax for ax in fig.axes if ax.get_gid() == gid]


def _by_gid(artists, gid):
    return [a for a in artists if a.get_gid() == gid]


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plots._figure().close("all")


# --- layer curves -------------------------------------------------------------------------------------------


def _spans(ax) -> list[tuple[float, float]]:
    return sorted(tuple(np.round(p.get_x() + np.array([0, p.get_width()]), 6)) for p in ax.patches)


def test_layer_curves_panels_and_marks():
    fig = plots.layer_curves_figure(
        _layer_rows(), selected=1, criterion="gap", artifact_layers=ARTIFACTS, chance_p_at_1=1 / 1593
    )
    assert [ax.get_gid() for ax in fig.axes] == ["cosine", "gap", "retrieval"]
    (cosine,), (gap,), (retrieval,) = (_axes(fig, g) for g in ("cosine", "gap", "retrieval"))
    # The gap has its own symlog axis with the shared linear band: 1.2e-3 sits in the log range.
    assert gap.get_yscale() == "symlog" and gap.yaxis.get_transform().linthresh == plots.GAP_LINTHRESH == 1e-5
    assert _by_gid(gap.lines, "gap")[0].get_ydata()[5] == pytest.approx(0.0012)
    assert len(_by_gid(gap.lines, "centered_gap")) == 1
    assert {line.get_gid() for line in cosine.lines} >= {"matched_mean", "mismatched_mean"}
    # Artefact layers 2-4 and 9 (4 of 12): two runs shaded, ±0.5 around their layers, in the raw-cosine panel
    # only (the flag is about the raw cosine; gaps and retrieval stay readable there).
    assert _spans(cosine) == [(1.5, 4.5), (8.5, 9.5)]
    assert not gap.patches and not retrieval.patches
    for ax in (cosine, gap, retrieval):
        assert [line.get_xdata()[0] for line in _by_gid(ax.lines, "selected")] == [1]
    (chance,) = _by_gid(retrieval.lines, "chance")
    assert chance.get_ydata()[0] == pytest.approx(1 / 1593)
    legend = [t.get_text() for t in cosine.get_legend().get_texts()]
    assert f"{plots.ARTIFACT_LABEL} (2–4, 9)" in legend and "selected layer 1 (gap)" in legend


def test_matched_and_mismatched_stay_distinguishable_where_they_coincide():
    def coinciding(shift=0.0):  # the artefact at its worst: both means equal to the last digit
        return [{**row, "mismatched_mean": row["matched_mean"]} for row in _layer_rows(shift=shift)]

    for compare in (None, coinciding(0.001)):
        fig = plots.layer_curves_figure(coinciding(), compare=compare)
        (cosine,) = _axes(fig, "cosine")
        for matched, mismatched in zip(
            _by_gid(cosine.lines, "matched_mean"), _by_gid(cosine.lines, "mismatched_mean"), strict=True
        ):
            assert list(matched.get_ydata()) == list(mismatched.get_ydata())  # they do coincide
            # The baseline is a wide translucent band under a thin line drawn on top: both visible.
            assert mismatched.get_linewidth() >= 3 * matched.get_linewidth()
            assert mismatched.get_alpha() < 0.5 and matched.get_zorder() > mismatched.get_zorder()
            assert matched.get_marker() != mismatched.get_marker()
            assert matched.get_color() != mismatched.get_color()
        texts = [t.get_text() for t in cosine.get_legend().get_texts()]
        assert "matched pairs" in texts and "mismatched pairs (any-pair baseline)" in texts


def test_retrieval_series_with_equal_values_are_offset_and_marked_apart():
    rows = [{**row, "csls_p_at_1": row["p_at_1"]} for row in _layer_rows()]  # P@1 = CSLS P@1 at every layer
    fig = plots.layer_curves_figure(rows, compare=rows)
    (retrieval,) = _axes(fig, "retrieval")
    for p_at_1, csls in zip(
        _by_gid(retrieval.lines, "p_at_1"), _by_gid(retrieval.lines, "csls_p_at_1"), strict=True
    ):
        assert list(p_at_1.get_ydata()) == list(csls.get_ydata())
        shift = np.array(csls.get_xdata()) - np.array(p_at_1.get_xdata())
        assert np.allclose(shift, 3 * plots.RETRIEVAL_DODGE)  # 4 series: -1.5, -0.5, +0.5, +1.5 dodges
        assert p_at_1.get_marker() != csls.get_marker() and p_at_1.get_color() != csls.get_color()
    before, after = _by_gid(retrieval.lines, "p_at_1")
    assert (before.get_linestyle(), after.get_linestyle()) == ("-", "--")


def test_artifact_shading_is_left_out_when_it_would_cover_most_layers():
    runs, label = plots.artifact_shading(list(range(2, 31)), 31)
    assert runs == [] and label.startswith("artefact layers 2–30 (29 of 31 layers: not shaded)\n")
    fig = plots.layer_curves_figure(_layer_rows(), artifact_layers=list(range(1, 12)))
    (cosine,) = _axes(fig, "cosine")
    assert not any(ax.patches for ax in fig.axes)
    assert "artefact layers 1–11 (11 of 12 layers: not shaded)\n— raw cosine high for any pair" in [
        t.get_text() for t in cosine.get_legend().get_texts()
    ]
    assert plots.artifact_shading([3, 4], 12) == ([(3, 4)], f"{plots.ARTIFACT_LABEL} (3–4)")
    assert plots.artifact_shading([], 12) == ([], None)


def test_every_gap_axis_shares_one_linear_band():
    scan = plots.layer_curves_figure(_layer_rows())
    before_after = plots.layer_curves_figure(_layer_rows(), compare=_layer_rows(shift=0.5))
    tiny = [{**row, "gap": 1e-6, "centered_gap": 2e-6} for row in _layer_rows()]
    thresholds = {
        _axes(fig, "gap")[0].yaxis.get_transform().linthresh
        for fig in (scan, before_after, plots.layer_curves_figure(tiny))
    }
    assert thresholds == {plots.GAP_LINTHRESH}


def test_layer_curves_compare_is_dashed_in_the_same_colour():
    fig = plots.layer_curves_figure(
        _layer_rows(), compare=_layer_rows(shift=0.001), labels=("before", "after"), selected=2
    )
    (retrieval,) = _axes(fig, "retrieval")
    for key in ("p_at_1", "p_at_5", "mrr", "csls_p_at_1"):
        before, after = _by_gid(retrieval.lines, key)
        assert (before.get_linestyle(), after.get_linestyle()) == ("-", "--")
        assert before.get_color() == after.get_color()
    legend = [t.get_text() for t in retrieval.get_legend().get_texts()]
    assert "before" in legend and "after" in legend
    # The legend sits to the right of the plotting area, so it covers no data.
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1


def test_layer_curves_without_optional_inputs():
    fig = plots.layer_curves_figure(_layer_rows(centered=False))
    (gap,) = _axes(fig, "gap")
    assert not _by_gid(gap.lines, "centered_gap")
    assert all(not ax.patches and not _by_gid(ax.lines, "selected") for ax in fig.axes)
    assert not _by_gid(_axes(fig, "retrieval")[0].lines, "chance")


@pytest.mark.parametrize(
    "case",
    ["normal", "compare", "one_layer", "nan", "all_nan", "no_artifacts", "negative_gap"],
)
def test_plot_layer_curves_writes_png(tmp_path, case):
    rows = _layer_rows()
    kwargs = {"selected": 3, "criterion": "gap", "title": "model — mean pooling"}
    if case == "compare":
        kwargs.update(compare=_layer_rows(shift=0.002), labels=("before", "after"), artifact_layers=ARTIFACTS)
    elif case == "one_layer":
        rows, kwargs["selected"] = rows[:1], 0
    elif case == "nan":
        rows[4].update(gap=math.nan, matched_mean=math.nan, p_at_1=None)
    elif case == "all_nan":
        rows = [{**row, **{k: math.nan for k in row if k != "layer"}} for row in rows]
    elif case == "negative_gap":
        rows[5]["gap"] = -0.004
    else:
        kwargs.update(artifact_layers=ARTIFACTS if case == "normal" else [], chance_p_at_1=0.001)
    out = plots.plot_layer_curves(rows, tmp_path / "layers.png", **kwargs)
    assert out == tmp_path / "layers.png"
    _assert_png(out)


# --- loss curve ---------------------------------------------------------------------------------------------


def test_moving_average_by_hand():
    assert plots.moving_average([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5]
    assert plots.moving_average([1, math.nan, 3], 2) == [1, 1, 3]  # NaN left out of the window
    assert math.isnan(plots.moving_average([math.nan], 3)[0])


def test_loss_curve_validation_and_reference(tmp_path):
    steps = list(range(1, 101))
    losses = [1 / s for s in steps]
    fig = plots.loss_curve_figure(
        steps, losses, validation=[(100, 0.02), (50, 0.05)], reference=(math.log(8), "InfoNCE chance")
    )
    (ax,) = fig.axes
    (validation,) = _by_gid(ax.lines, "validation")
    assert list(validation.get_xdata()) == [50, 100] and list(validation.get_ydata()) == [0.05, 0.02]
    (reference,) = _by_gid(ax.lines, "reference")
    assert reference.get_ydata()[0] == pytest.approx(math.log(8))
    assert "InfoNCE chance" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(_by_gid(ax.lines, "smooth")) == 1  # 100 steps: 5-step moving average drawn
    for name, kwargs in {
        "plain": {},
        "full": {"validation": [(50, 0.05)], "reference": (0.1, "loss at margin = collapse")},
    }.items():
        _assert_png(plots.plot_loss_curve(steps, losses, tmp_path / f"{name}.png", **kwargs))
    _assert_png(plots.plot_loss_curve([1, 2, 3], [0.5, math.nan, 0.3], tmp_path / "nan.png"))


# --- before / after -----------------------------------------------------------------------------------------


def test_before_after_panels():
    fig = plots.before_after_figure(_per_pair())
    similarity, gap = _axes(fig, "similarity"), _axes(fig, "centered_gap")
    assert len(similarity) == len(gap) == 4  # (target, final) × (trained, control), two rows
    assert not _axes(fig, "gap")  # the raw gap is not what the report leads with
    titles = [ax.get_title() for ax in similarity]
    assert titles == [
        "trained · target L2 · n=40",
        "control · target L2 · n=8",
        "trained · final L30 · n=40",
        "control · final L30 · n=8",
    ]
    # Every pair moved up by exactly 0.05 in similarity and by 0.02 in the centred gap (the raw gap fell).
    assert "mean Δ +0.050\n100 % above diagonal" in similarity[0].texts[0].get_text()
    assert "mean Δ +0.020\n100 % above diagonal" in gap[1].texts[0].get_text()
    points = gap[0].collections[0].get_offsets()
    rows = [r for r in _per_pair() if (r["group"], r["layer_role"]) == ("trained", "target")]
    assert np.allclose(points, [(r["centered_gap_pre"], r["centered_gap_post"]) for r in rows])
    assert gap[0].get_xlabel() == "centred gap before"
    assert similarity[0].get_xlim() == similarity[1].get_xlim()  # the same layer shares its range
    assert similarity[0].get_xlim() == similarity[0].get_ylim()  # square: the diagonal is 45°
    # No title or axis label overlaps another panel's text.
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [(i, t) for i, ax in enumerate(fig.axes) for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    boxes = [(i, t.get_window_extent(renderer)) for i, t in texts if t.get_text()]
    for k, (i, a) in enumerate(boxes):
        for j, b in boxes[k + 1 :]:
            assert i == j or not _boxes_overlap(a, b)


def test_before_after_edge_cases(tmp_path):
    one_group = _per_pair(groups=(("trained", 5),), roles=(("target", 2),))
    fig = plots.before_after_figure(one_group)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "trained · target L2 · n=5"
    raw_only = [{k: v for k, v in row.items() if not k.startswith("centered")} for row in one_group]
    assert [ax.get_gid() for ax in plots.before_after_figure(raw_only).axes] == ["similarity", "gap"]
    no_gap = [{k: v for k, v in row.items() if "gap" not in k} for row in one_group]
    assert [ax.get_gid() for ax in plots.before_after_figure(no_gap).axes] == ["similarity"]
    with_nan = _per_pair()
    with_nan[0].update(sim_pre=math.nan, gap_post=math.nan)
    for name, rows in {
        "normal": _per_pair(),
        "one_group": one_group,
        "no_gap": no_gap,
        "nan": with_nan,
    }.items():
        _assert_png(plots.plot_before_after(rows, tmp_path / f"{name}.png", title=name))


# --- projection ---------------------------------------------------------------------------------------------


def _embeddings(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 16)), rng.normal(size=(n, 16))


def test_projection_groups_and_languages():
    groups = ["trained"] * 9 + ["control"] * 3
    fig = plots.projection_figure(
        _embeddings(12), _embeddings(12, 1), groups=groups, languages=("Swahili", "English"), title="layer 4"
    )
    assert [ax.get_gid() for ax in fig.axes] == ["before", "after"]
    assert fig.get_suptitle() == "layer 4 — n = 12 pairs (9 trained, 3 control)"
    for ax in fig.axes:
        points = {c.get_gid(): len(c.get_offsets()) for c in ax.collections}
        assert points == {"trained:source": 9, "trained:target": 9, "control:source": 3, "control:target": 3}
        colours = {c.get_gid(): tuple(np.round(c.get_edgecolor()[0][:3], 3)) for c in ax.collections}
        assert colours["trained:source"] == colours["trained:target"] != colours["control:source"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:4] == ["trained", "control", "Swahili", "English"]
    with pytest.raises(ValueError, match="groups"):
        plots.projection_figure(_embeddings(3), _embeddings(3), groups=["trained"])


def test_projection_draws_the_target_layer_above_the_final_layer():
    groups = ["trained"] * 6 + ["control"] * 2
    target_before, target_after = _embeddings(8), _embeddings(8, 1)
    fig = plots.projection_figure(
        target_before,
        target_after,
        title="target layer 2",
        groups=groups,
        more=[("final layer 30", _embeddings(8, 2), _embeddings(8, 3))],
    )
    assert [ax.get_gid() for ax in fig.axes] == ["before", "after", "before", "after"]
    assert [ax.get_title().split(" (")[0] for ax in fig.axes] == [
        "target layer 2: before",
        "target layer 2: after",
        "final layer 30: before",
        "final layer 30: after",
    ]
    assert fig.get_suptitle() == "n = 8 pairs (6 trained, 2 control)"
    # Each row projects its own layer's vectors: the target row is the PCA of the target-layer embeddings.
    expected = plots._project(np.concatenate(target_before), "pca", 0)
    drawn = {c.get_gid(): c.get_offsets() for c in fig.axes[0].collections}
    assert np.allclose(drawn["trained:source"], expected[:6]) and np.allclose(
        drawn["control:target"], expected[14:]
    )
    assert all(len(c.get_offsets()) in (6, 2) for ax in fig.axes for c in ax.collections)
    with pytest.raises(ValueError, match="one entry per pair"):
        plots.projection_figure(_embeddings(8), _embeddings(8), more=[("x", _embeddings(3), _embeddings(3))])


@pytest.mark.parametrize(
    ("method", "n", "groups"), [("pca", 20, None), ("tsne", 12, "control"), ("pca", 1, None)]
)
def test_plot_projection_writes_png(tmp_path, method, n, groups):
    labels = [groups] * n if groups else None
    out = plots.plot_projection(
        _embeddings(n), _embeddings(n, 1), tmp_path / "p.png", method=method, groups=labels
    )
    _assert_png(out)
