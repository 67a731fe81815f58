"""Small statistics the insights share: Wilson intervals, Fisher's exact test, Holm's correction."""

from __future__ import annotations

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes, trials, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson score interval of a proportion; (nan, nan) where there are no trials.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 % and 100 % and for
    small counts, which is what a stage reached by a dozen calls has.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    low, high = np.where(k == 0, 0.0, low), np.where(k == n, 1.0, high)  # exact at the ends, no rounding noise
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: family-wise error held at the level over all stages judged."""
    order = np.argsort(p_values)
    adjusted = np.empty_like(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def fisher_p(k: int, n: int, k_other: int, n_other: int) -> float:
    """Two-sided p-value of Fisher's exact test that k of n and k_other of n_other share one rate.

    The same test as scipy.stats.fisher_exact on [[k, n - k], [k_other, n_other - k_other]] (the sum
    of the hypergeometric probabilities no larger than the observed one), computed over the whole
    support at once: at a team's thousands of calls this is ~40x faster, which a report with
    hundreds of reps needs.
    """
    from scipy.special import gammaln

    total, hits = n + n_other, k + k_other

    def log_pmf(x):  # log P(X = x), X hypergeometric: n draws from `total` holding `hits` successes
        return (
            gammaln(hits + 1) - gammaln(x + 1) - gammaln(hits - x + 1)
            + gammaln(total - hits + 1) - gammaln(n - x + 1) - gammaln(total - hits - n + x + 1)
            - gammaln(total + 1) + gammaln(n + 1) + gammaln(total - n + 1)
        )  # fmt: skip

    support = np.arange(max(0, n - (total - hits)), min(n, hits) + 1)
    probabilities = np.exp(log_pmf(support))
    observed = np.exp(log_pmf(np.array(k)))
    return float(min(1.0, probabilities[probabilities <= observed * (1 + 1e-7)].sum()))
