"""Calibrated scores: fit Platt or isotonic maps on labelled pairs, apply them, pick thresholds.

- :mod:`~crossrank.calibration.model`: :class:`Calibration` (fit, save, load, apply) and metrics.
- :mod:`~crossrank.calibration.thresholds`: thresholds for a wanted precision or recall.
- :mod:`~crossrank.calibration.names`: file name and methods (no numpy, for ``--help``).

Names are imported on first use: ``crossrank --help`` does not load numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .names import CALIBRATION_FILE, METHODS

_MODEL = ".model"
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Calibration": _MODEL,
        "as_array": _MODEL,
        "brier_score": _MODEL,
        "expected_calibration_error": _MODEL,
        "find_calibration": _MODEL,
        "load_calibration": _MODEL,
        "suggest_threshold": ".thresholds",
        "threshold_table": ".thresholds",
    },
    globals(),
)

if TYPE_CHECKING:  # pragma: no cover
    from .model import (
        Calibration,
        as_array,
        brier_score,
        expected_calibration_error,
        find_calibration,
        load_calibration,
    )
    from .thresholds import suggest_threshold, threshold_table

__all__ = [
    "CALIBRATION_FILE",
    "METHODS",
    "Calibration",
    "as_array",
    "brier_score",
    "expected_calibration_error",
    "find_calibration",
    "load_calibration",
    "suggest_threshold",
    "threshold_table",
]
