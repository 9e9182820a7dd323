"""Seeds as a source of variance: one effect measured with several training seeds, combined.

Each training seed ``k`` gives an estimate ``y_k`` of an effect (a difference of scores between two
strategies, a before/after change) and its standard error ``s_k`` over the test examples (from the
per-seed test). Two seeds differ by more than their sampling error when training itself varies, so the
model is the random-effects one::

    y_k = μ + u_k + e_k,     u_k ~ N(0, τ²)   (training variance: another seed, another model),
                             e_k ~ N(0, s_k²) (sampling of the test examples),

and a claim is about ``μ``, the effect a new training run is expected to have. :func:`random_effects`
estimates it with the method recommended for few studies (Röver, Knapp & Friede 2015, BMC Med. Res.
Methodol. 15:99):

- DerSimonian–Laird ``τ²``: ``w_k = 1/s_k²``, ``ȳ = Σ w y / Σ w``, ``Q = Σ w (y − ȳ)²``,
  ``τ² = max(0, (Q − (K−1)) / (Σ w − Σ w² / Σ w))`` (DerSimonian & Laird 1986);
- random-effects weights ``w*_k = 1/(s_k² + τ²)``, ``μ̂ = Σ w* y / Σ w*``;
- Hartung–Knapp–Sidik–Jonkman variance with the Knapp–Hartung modification, which never falls below
  the random-effects variance ``1/Σ w*`` (so seeds that agree by chance cannot shrink the interval
  below what their own sampling error allows): ``q = Σ w* (y − μ̂)² / (K − 1)``,
  ``Var(μ̂) = max(q, 1) / Σ w*`` (Hartung & Knapp 2001; Sidik & Jonkman 2002; Knapp & Hartung 2003);
- ``t = (μ̂ − μ₀) / √Var(μ̂)`` on ``K − 1`` degrees of freedom: the CI ``μ̂ ± t_{K−1, 1−a/2} √Var`` and
  the p-values (two-sided, or one-sided for non-inferiority and TOST).

Why this and not the alternatives: the envelope of the per-seed intervals is not a confidence interval
of anything; requiring the same verdict in every seed ignores how far the seeds are apart and has no error
rate; pooling all seeds' examples treats three training runs as one and hides training variance; a
hierarchical bootstrap over 3 seeds has only 10 distinct seed resamples. The random-effects model is the
standard way to combine replicate estimates whose between-replicate variance is unknown; with ``K − 1``
degrees of freedom it is honest about how little ``K`` seeds say about training variance (the interval is
wide when they disagree, and every extra seed narrows it), and with one seed it is the per-seed test.

Degenerate inputs: a seed with ``s_k = 0`` (every example gave the same difference) borrows the smallest
positive ``s`` of the other seeds, so no seed gets infinite weight; when every ``s_k = 0`` the seeds are
compared with each other only (``Var = var(y) / K``); when in addition every ``y_k`` is equal there is no
variation at all and the combination is ``degenerate``: the effect is exact and its p-value is the largest
per-seed p (every seed's own exact test must agree).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from tli.errors import ConfigError

METHOD = "random-effects over seeds (DerSimonian–Laird τ², modified Hartung–Knapp–Sidik–Jonkman t interval)"
ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class SeedCombination:
    """An effect combined over ``k`` seeds (see the module docstring); CIs and p-values on ``df`` = k − 1.

    ``se`` is ``√Var(μ̂)``; ``tau2`` the between-seed (training) variance; ``q`` Cochran's Q; ``i2`` the share of
    the seeds' spread that is training variance, ``max(0, (Q − df) / Q)``.
    """

    k: int
    effect: float
    se: float
    tau2: float
    q: float
    i2: float
    df: int
    degenerate: bool = False
    p_degenerate: float = math.nan
    """Largest per-seed p, the p-value of a degenerate combination (no variation at all)."""

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """``μ̂ ± t_{df, (1+confidence)/2} · se`` (the point itself when degenerate)."""
        if self.degenerate or self.se == 0:
            return self.effect, self.effect
        half = float(sps.t.ppf((1 + confidence) / 2, self.df)) * self.se
        return self.effect - half, self.effect + half

    def p_value(self, null: float = 0.0, alternative: str = "two-sided") -> float:
        """p of H0 ``μ = null`` against ``alternative`` (``greater``: μ > null; ``less``: μ < null)."""
        if alternative not in ALTERNATIVES:
            raise ConfigError(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
        if self.degenerate or self.se == 0:
            if self.effect == null:
                return 1.0
            on_side = {
                "two-sided": True,
                "greater": self.effect > null,
                "less": self.effect < null,
            }[alternative]
            return self.p_degenerate if on_side else 1.0
        t = (self.effect - null) / self.se
        if alternative == "greater":
            return float(sps.t.sf(t, self.df))
        if alternative == "less":
            return float(sps.t.cdf(t, self.df))
        return float(min(1.0, 2 * sps.t.sf(abs(t), self.df)))

    def to_dict(self) -> dict:
        return asdict(self)


def random_effects(effects, ses, *, p_seeds=None) -> SeedCombination:
    """Combine per-seed estimates ``effects`` ``(K,)`` with standard errors ``ses`` ``(K,)``, ``K ≥ 2``.

    Args:
        effects: per-seed effects ``y_k``.
        ses: their standard errors ``s_k ≥ 0`` over the test examples.
        p_seeds: per-seed p-values, used only when the combination is degenerate (see module docstring).

    Raises:
        ConfigError: fewer than 2 seeds, different lengths, or non-finite / negative values.
    """
    y = np.asarray(effects, dtype=float)
    s = np.asarray(ses, dtype=float)
    if y.ndim != 1 or y.shape != s.shape:
        raise ConfigError(f"effects and ses must be 1-D of the same length, got {y.shape} and {s.shape}")
    k = y.size
    if k < 2:
        raise ConfigError(f"random_effects needs at least 2 seeds, got {k}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(s)) and np.all(s >= 0)):
        raise ConfigError("effects must be finite and standard errors finite and >= 0")
    df = k - 1
    positive = s[s > 0]
    if positive.size == 0:
        tau2 = float(np.var(y, ddof=1))
        mean = float(y.mean())
        if tau2 == 0:
            p = max(p_seeds) if p_seeds is not None and len(p_seeds) else math.nan
            return SeedCombination(k, mean, 0.0, 0.0, 0.0, 0.0, df, degenerate=True, p_degenerate=float(p))
        return SeedCombination(k, mean, math.sqrt(tau2 / k), tau2, math.inf, 1.0, df)
    s = np.where(s > 0, s, positive.min())
    w = 1.0 / s**2
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    denominator = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - df) / denominator) if denominator > 0 else 0.0
    w_star = 1.0 / (s**2 + tau2)
    mean = float(np.sum(w_star * y) / np.sum(w_star))
    q_hk = float(np.sum(w_star * (y - mean) ** 2) / df)
    variance = max(q_hk, 1.0) / float(np.sum(w_star))
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    return SeedCombination(k, mean, math.sqrt(variance), tau2, q, i2, df)


__all__ = ["METHOD", "SeedCombination", "random_effects"]
