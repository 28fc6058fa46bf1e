"""Accuracy metrics on predicted vs true ratings."""
from __future__ import annotations

import numpy as np


def rmse(pred, truth) -> float:
    """Root mean squared error."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d))) if len(d) else float("nan")


def mae(pred, truth) -> float:
    """Mean absolute error."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return float(np.mean(np.abs(d))) if len(d) else float("nan")
