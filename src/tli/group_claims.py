"""The claims of a before/after study, built from per-pair arrays: shared by ``tli evaluate`` and ``tli stats``.

- :func:`change_claim`: one group changed (``post − pre``), from :func:`tli.stats.paired_stats`;
- :func:`between_group_claims`: group A gained more than group B (``difference``: Welch t-test on cluster
  means, bootstrap CI, :func:`tli.stats.between_groups`) and group B gained as much as group A
  (``equivalence``: TOST within ``±margin_fraction · |mean gain of A|``, :func:`tli.stats.equivalence_tost`).

The claims are judged later, together with the other claims of the run (:func:`tli.claims.judge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tli.claims import Claim, judge
from tli.errors import ConfigError
from tli.stats import (
    PairedStats,
    between_groups,
    equivalence_tost,
    format_p,
    format_stats_table,
    read_grouped,
    stats_by_group,
)

MIN_MARGIN = 1e-6
"""A TOST margin below this (a gain of nearly nothing) leaves "as much as" undecided: nothing to be
equivalent to."""


def change_claim(
    text: str, metric: str, stats: PairedStats, *, test: str, p: float | None = None, **where: Any
) -> Claim:
    """A ``change`` claim ("TLI raises X of group G") from paired statistics.

    Args:
        text: the claim in words.
        stats: :func:`tli.stats.paired_stats` of the group.
        test: the test behind ``p``.
        p: the p-value the verdict uses (default ``stats.p``, the t-test on cluster means).
        **where: ``group``, ``layer``, ``layer_role``, ``n_clusters`` … (Claim fields).
    """
    where.setdefault("n_clusters", stats.n_clusters)
    return Claim(
        claim=text,
        kind="change",
        metric=metric,
        test=test,
        effect=stats.change,
        ci95_low=stats.ci95_low,
        ci95_high=stats.ci95_high,
        p=stats.p if p is None else p,
        n=stats.n,
        cohens_d=stats.cohens_d,
        tests_disagree=bool(stats.tests_disagree),
        **where,
    )


def between_group_claims(
    change_a: np.ndarray,
    change_b: np.ndarray,
    *,
    clusters_a: np.ndarray | None,
    clusters_b: np.ndarray | None,
    texts: tuple[str, str],
    group: str,
    metric: str,
    units: str,
    equivalence_margin: float,
    n_boot: int,
    seed: int,
    alpha: float,
    nothing_gained: str = "the first group gained nothing measurable: nothing to be equivalent to",
    **where: Any,
) -> tuple[list[Claim], dict[str, Any]]:
    """A ``difference`` and an ``equivalence`` claim between two independent groups A and B, and their figures.

    With ``d_A = post − pre`` per pair of group A and ``d_B`` of group B:

    - difference: ``mean(d_A) − mean(d_B)``, Welch t-test on the cluster means (``units``), percentile
      bootstrap CI resampling the clusters of each group (:func:`tli.stats.between_groups`);
    - equivalence: TOST that ``|mean(d_A) − mean(d_B)| < m`` with ``m = equivalence_margin · |mean(d_A)|``
      (:func:`tli.stats.equivalence_tost`; its 90 % CI must lie inside ``±m``); undecided (p = nan, with
      ``nothing_gained`` as its note) when ``m < MIN_MARGIN``.

    Args:
        change_a, change_b: per-pair changes, shapes ``(n_a,)`` and ``(n_b,)``.
        clusters_a, clusters_b: cluster labels per pair (None: every pair is its own unit).
        texts: the two claims in words: (difference, equivalence).
        group: the claims' ``group`` field (``"trained − control"``).
        metric: the claims' ``metric`` (``similarity``, ``centered_gap``).
        units: what the Welch tests run on ("source-word means", "cluster means", "pairs").
        equivalence_margin: the TOST margin as a fraction of group A's mean change.
        **where: other Claim fields of both claims (``layer``, ``layer_role``).

    Returns:
        ``([difference claim, equivalence claim], figures)``: ``figures`` holds every field of
        :class:`tli.stats.GroupDifference` and ``tost`` (:class:`tli.stats.Equivalence`).
    """
    clusters = {"clusters_a": clusters_a, "clusters_b": clusters_b}
    diff = between_groups(change_a, change_b, n_perm=n_boot, n_boot=n_boot, rng=seed, **clusters)
    margin = equivalence_margin * abs(float(np.mean(change_a)))
    tost = equivalence_tost(change_a, change_b, max(margin, 1e-12), alpha=alpha, **clusters)
    # "as much as" a gain of (nearly) nothing is no claim: leave it undecided rather than "equivalent".
    tost_p = tost.p if margin > MIN_MARGIN else float("nan")
    shared = {
        "metric": metric,
        "effect": diff.difference,
        "ci95_low": diff.ci95_low,
        "ci95_high": diff.ci95_high,
        "n": diff.n_a + diff.n_b,
        "n_clusters": diff.n_clusters_a + diff.n_clusters_b,
        "group": group,
        **where,
    }
    difference = Claim(claim=texts[0], kind="difference", test=f"Welch t-test on {units}", p=diff.p, **shared)
    equivalence = Claim(
        claim=texts[1],
        kind="equivalence",
        test="TOST (two one-sided Welch tests)",
        p=tost_p,
        note="" if tost_p == tost_p else nothing_gained,
        margin=tost.margin,
        ci90_low=tost.ci90_low,
        ci90_high=tost.ci90_high,
        **shared,
    )
    return [difference, equivalence], {**diff.to_dict(), "tost": tost.to_dict()}


# --- tli stats: the claims of a per-pair file ----------------------------------------------------------------


@dataclass
class StatsReport:
    """``tli stats`` with groups: each group's change, trained versus control, and their judged claims."""

    groups: dict[str, PairedStats]
    """Every group (and the pooled ones) with :func:`tli.stats.paired_stats`."""
    claims: list[Claim]
    """The family judged together: each (unpooled) group's change, then per pair of groups a difference and
    an equivalence claim."""
    between_groups: list[dict[str, Any]] = field(default_factory=list)
    equivalence: list[dict[str, Any]] = field(default_factory=list)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Group name → ``p_adjusted`` and ``verdict`` of its change claim."""
    correction: str = "holm"
    alpha: float = 0.05
    grouped: bool = False
    """A group column split the rows."""

    def to_dict(self) -> dict[str, Any]:
        """``tli stats --json``: ``{group: figures}`` plus ``between_groups`` and ``equivalence`` lists."""
        out: dict[str, Any] = {
            name: {**s.to_dict(), **self.verdicts.get(name, {})} for name, s in self.groups.items()
        }
        if self.grouped:  # with a group column, always (empty with one group only)
            out["between_groups"] = self.between_groups
            out["equivalence"] = self.equivalence
        return out


def _pair_order(names: list[str]) -> list[tuple[str, str]]:
    """Every pair of group names, ``trained`` first and ``control`` second where present (so that a difference
    reads trained − control, as in ``tli evaluate``), the others in order of appearance."""
    ranked = sorted(names, key=lambda n: (n != "trained", n != "control", names.index(n)))
    return [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]


def stats_report(
    path: Any,
    *,
    pre: str,
    post: str,
    group: Any,
    cluster: Any,
    n_boot: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
    correction: str = "holm",
    equivalence_margin: float = 0.2,
) -> StatsReport:
    """Paired statistics of a per-pair file and, when a group column splits it, the claims of ``tli evaluate``.

    Groups are the values of the first group column, the other group columns held fixed (``trained/target``
    against ``control/target``). The family judged together (``correction`` at ``alpha``, as ``tli evaluate``
    judges the claims of a run): the change of every group (t-test on cluster means, :func:`change_claim`),
    then for every pair of groups (A, B) a difference (A gains more than B) and an equivalence (B gains as
    much as A, within ``±equivalence_margin · |gain of A|``), see :func:`between_group_claims`.
    """
    grouped, n_columns = read_grouped(path, pre=pre, post=post, group=group, cluster=cluster)
    groups = stats_by_group(grouped, n_columns, n_boot=n_boot, rng=seed, source=path)
    report = StatsReport(
        groups=groups, claims=[], correction=correction, alpha=alpha, grouped=bool(n_columns)
    )
    if not n_columns:
        return report
    # The family: each group's change, then a difference and an equivalence for each pair of groups.
    test = "t-test on cluster means" if any(s.clusters is not None for s in grouped.values()) else "t-test"
    owners: list[str | None] = []
    for key in grouped:
        name = "/".join(key)
        report.claims.append(
            change_claim(
                f"{post} is higher than {pre} in {name}", "change", groups[name], test=test, group=name
            )
        )
        owners.append(name)
    rows = []
    for key_a, key_b in _group_pairs(grouped):
        names = ["/".join(key_a), "/".join(key_b)]
        pair_claims, figures = _between_pair(
            grouped[key_a], grouped[key_b], names, path=path, pre=pre, post=post,
            equivalence_margin=equivalence_margin, n_boot=n_boot, seed=seed, alpha=alpha,
        )  # fmt: skip
        report.claims.extend(pair_claims)
        owners += [None, None]
        rows.append((names, pair_claims, figures))
    # Judge the family together, then record each verdict where a reader looks for it.
    judge(report.claims, correction=correction, alpha=alpha)
    for name, claim in zip(owners, report.claims, strict=True):
        if name is not None:
            report.verdicts[name] = {"p_adjusted": claim.p_adjusted, "verdict": claim.verdict}
    for names, (difference, equivalence), figures in rows:
        report.between_groups.append(_difference_row(names, difference, figures))
        report.equivalence.append(_equivalence_row(names, equivalence))
    return report


def _group_pairs(grouped: dict) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The pairs of group keys compared: first-column values that share the other group columns, in
    :func:`_pair_order`."""
    by_rest: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for key in grouped:
        by_rest.setdefault(key[1:], []).append(key)
    pairs = []
    for rest, keys in by_rest.items():
        for a, b in _pair_order([key[0] for key in keys]):
            pairs.append(((a, *rest), (b, *rest)))
    return pairs


def _between_pair(
    sa, sb, names: list[str], *, path: Any, pre: str, post: str, equivalence_margin: float, **options: Any
) -> tuple[list, dict]:
    """:func:`between_group_claims` of the changes of groups A and B (``names``); a bad pair's error names
    the file and the groups. ``options``: ``n_boot``, ``seed`` and ``alpha``."""
    name_a, name_b = names
    texts = (
        f"{name_a} gains more than {name_b} ({post} − {pre})",
        f"{name_b} gains as much as {name_a} ({post} − {pre}, within ±{equivalence_margin:.0%} of "
        f"the {name_a} gain)",
    )
    try:
        return between_group_claims(
            sa.post - sa.pre,
            sb.post - sb.pre,
            clusters_a=sa.clusters,
            clusters_b=sb.clusters,
            texts=texts,
            group=f"{name_a} − {name_b}",
            metric="change",
            units="cluster means" if sa.clusters is not None else "pairs",
            equivalence_margin=equivalence_margin,
            nothing_gained=f"{name_a} gained nothing measurable: nothing to be equivalent to",
            **options,
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}, groups {name_a!r} and {name_b!r}: {exc}") from exc


def _difference_row(names: list[str], difference, figures: dict) -> dict[str, Any]:
    """The ``between_groups`` row of a judged difference claim."""
    return {
        "groups": names,
        "difference": difference.effect,
        "ci95_low": difference.ci95_low,
        "ci95_high": difference.ci95_high,
        "p": difference.p,
        "test": difference.test,
        "p_adjusted": difference.p_adjusted,
        "verdict": difference.verdict,
        "p_permutation": figures["p_permutation"],
        "n_clusters": [figures["n_clusters_a"], figures["n_clusters_b"]],
        "claim": difference.claim,
    }


def _equivalence_row(names: list[str], equivalence) -> dict[str, Any]:
    """The ``equivalence`` row of a judged equivalence claim."""
    return {
        "groups": names,
        "margin": equivalence.margin,
        "ci90_low": equivalence.ci90_low,
        "ci90_high": equivalence.ci90_high,
        "p": equivalence.p,
        "verdict": equivalence.verdict,
        "p_adjusted": equivalence.p_adjusted,
        "test": equivalence.test,
        "note": equivalence.note,
        "claim": equivalence.claim,
    }


def format_stats_report(report: StatsReport) -> str:
    """The per-group table (:func:`tli.stats.format_stats_table`), then the judged claims between groups."""
    lines = [format_stats_table(report.groups)]
    if not report.claims:
        return lines[0]
    lines += [
        "",
        "| claim | effect | 95 % CI (bootstrap, clusters) | 90 % CI (TOST) | test | p | p adjusted | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for claim in report.claims:
        tost = f"[{claim.ci90_low:+.4f}, {claim.ci90_high:+.4f}] ±{claim.margin:.4f}" if claim.margin else ""
        lines.append(
            f"| {claim.claim} | {claim.effect:+.4f} | [{claim.ci95_low:+.4f}, {claim.ci95_high:+.4f}] | {tost} "
            f"| {claim.test} | {format_p(claim.p)} | {format_p(claim.p_adjusted)} | {claim.verdict} |"
        )
    lines += [
        "",
        f"{len(report.claims)} claims judged together ({report.correction} correction at alpha {report.alpha}): "
        "a change or difference is supported when its adjusted p < alpha and its CI excludes 0 in the claimed "
        "direction; an equivalence when its adjusted TOST p < alpha (its 90 % CI inside ±margin).",
    ]
    return "\n".join(lines)
