"""Small statistics shared by the diagnostics and the gap monitor (numpy and scipy only: ROS nodes import it)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    ranks = rankdata(np.concatenate([positive, negative]))
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
