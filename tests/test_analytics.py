"""Statistics the analytics rely on, against their reference implementations."""

import numpy as np
import pytest
from scipy.stats import fisher_exact

from salescalls.insights.stats import fisher_p


def test_fisher_p_is_scipys_fisher_exact():
    rng = np.random.default_rng(7)
    tables = [(5, 5, 0, 9), (0, 5, 1, 9), (3, 5, 2, 9), (0, 1, 0, 1), (1, 1, 1, 1), (40, 333, 9000, 99667)]
    for _ in range(400):
        n, n_other = int(rng.integers(1, 300)), int(rng.integers(1, 3000))
        tables.append((int(rng.integers(0, n + 1)), n, int(rng.integers(0, n_other + 1)), n_other))
    for k, n, k_other, n_other in tables:
        expected = fisher_exact([[k, n - k], [k_other, n_other - k_other]])[1]
        assert fisher_p(k, n, k_other, n_other) == pytest.approx(expected, rel=1e-9, abs=1e-15), (
            k,
            n,
            k_other,
            n_other,
        )
