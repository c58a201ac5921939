"""Calibrated scores: map a reranker's raw logit to P(relevant), and measure how well it does.

A sigmoid of a logit is not a probability of relevance: its scale depends on the model and its
training loss. :class:`Calibration` learns the mapping from judged data (``crossrank calibrate``)
with scikit-learn, Platt scaling (logistic regression on the logit) or isotonic regression, and
stores it as a small JSON file. Applying a stored calibration needs only numpy, so the core can load
one without the ``calibration`` extra.

>>> cal = Calibration.fit([-3.0, -1.0, 0.5, 2.0, 4.0, -2.0], [0, 0, 1, 1, 1, 1])  # doctest: +SKIP
>>> cal.save("my-reranker/crossrank_calibration.json")                         # doctest: +SKIP
>>> Calibration.load(find_calibration("my-reranker")).probabilities([1.2])     # doctest: +SKIP
[0.71]
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import warn_once
from .names import CALIBRATION_FILE, METHODS

FORMAT_VERSION = 1
ECE_BINS = 15

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "brier_score",
    "expected_calibration_error",
    "find_calibration",
]


def _sigmoid(values: np.ndarray) -> np.ndarray:
    # The tanh form never overflows, for any finite or infinite input.
    return 0.5 * (1.0 + np.tanh(0.5 * values))


def as_array(values: Sequence[float], name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers (no NaN or infinity)")
    return array


def _freeze(mapping: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    # A JSON round trip copies the caller's dict (never shared) and proves it is JSON-ready.
    return MappingProxyType(json.loads(json.dumps(dict(mapping or {}))))


@dataclass(frozen=True)
class Calibration:
    """An immutable mapping from raw logits to calibrated probabilities of relevance.

    ``"platt"``: ``sigmoid(a * logit + b)``; ``"isotonic"``: piecewise-linear through the points
    ``(x, y)``, flat beyond them; ``"sigmoid"``: the plain ``sigmoid(logit)`` (no calibration).
    ``source`` says what it was fitted on, ``suggested_threshold`` is a threshold on the calibrated
    score chosen from data, ``report`` holds the measurements ``crossrank calibrate`` made.

    >>> [round(p, 4) for p in Calibration("platt", a=2.0, b=-1.0).probabilities([0.5, 3.0])]
    [0.5, 0.9933]
    """

    method: str
    a: float = 1.0
    b: float = 0.0
    x: Tuple[float, ...] = ()
    y: Tuple[float, ...] = ()
    source: str = ""
    suggested_threshold: Optional[float] = None
    report: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    path: Optional[str] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_parameters(self)
        object.__setattr__(self, "x", tuple(float(v) for v in self.x))
        object.__setattr__(self, "y", tuple(float(v) for v in self.y))
        object.__setattr__(self, "report", _freeze(self.report))

    @classmethod
    def fit(
        cls,
        logits: Sequence[float],
        labels: Sequence[int],
        method: str = "platt",
        *,
        source: str = "",
    ) -> Calibration:
        """Fit ``method`` on raw logits and 0/1 relevance labels with scikit-learn.

        Platt scaling is an unregularised logistic regression on the logit; isotonic regression
        is the monotone step fit of scikit-learn, clipped to [0, 1] and flat outside the data.

        >>> Calibration.fit([-2.0, -1.0, 1.0, 2.0], [0, 1, 0, 1]).method  # doctest: +SKIP
        'platt'
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        x = as_array(logits, "logits")
        y = as_array(labels, "labels")
        if len(x) != len(y):
            raise ValueError(f"logits and labels differ in length: {len(x)} vs {len(y)}")
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("labels must be 0 (not relevant) or 1 (relevant)")
        if method == "sigmoid":
            return cls("sigmoid", source=source)
        if len(np.unique(y)) < 2:
            raise ValueError("labels need both relevant (1) and non-relevant (0) examples to fit")
        try:
            from sklearn.isotonic import IsotonicRegression
            from sklearn.linear_model import LogisticRegression
        except ImportError:
            raise ImportError(
                "fitting a calibration needs scikit-learn: pip install 'crossrank[calibration]'"
            ) from None
        if method == "platt":
            model = LogisticRegression(C=np.inf).fit(x[:, None], y.astype(int))
            return cls(
                "platt", a=float(model.coef_[0, 0]), b=float(model.intercept_[0]), source=source
            )
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)
        return cls(
            "isotonic", x=tuple(iso.X_thresholds_), y=tuple(iso.y_thresholds_), source=source
        )

    def probabilities(self, logits: Sequence[float]) -> List[float]:
        """Calibrated P(relevant) in [0, 1] for each raw logit (float64, vectorised).

        >>> Calibration("sigmoid").probabilities([0.0])
        [0.5]
        """
        values = as_array(logits, "logits")
        if self.method == "isotonic":
            # The same linear interpolation scikit-learn's IsotonicRegression.predict does.
            return np.interp(values, self.x, self.y).tolist()
        return _sigmoid(self.a * values + self.b).tolist()

    def describe(self) -> str:
        """One line for ``repr``/``info``: the method, the file and what it was fitted on.

        >>> Calibration("platt", source="scifact train, 300 queries").describe()
        'platt (scifact train, 300 queries)'
        """
        where = [os.path.basename(self.path) if self.path else "", self.source]
        where = [w for w in where if w]
        return f"{self.method} ({', '.join(where)})" if where else self.method

    def to_dict(self) -> Dict[str, Any]:
        """The JSON-ready form :meth:`save` writes and :meth:`from_dict` reads."""
        if self.method == "isotonic":
            parameters: Dict[str, Any] = {"x": list(self.x), "y": list(self.y)}
        else:
            parameters = {"a": self.a, "b": self.b}
        return {
            "crossrank_calibration": FORMAT_VERSION,
            "method": self.method,
            "parameters": parameters,
            "source": self.source,
            "suggested_threshold": self.suggested_threshold,
            "report": json.loads(json.dumps(dict(self.report))),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "calibration") -> Calibration:
        """Read :meth:`to_dict`'s form; a malformed one raises ``ValueError`` naming ``origin``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{origin}: expected a JSON object, got {type(data).__name__}")
        for key in ("crossrank_calibration", "method", "parameters"):
            if key not in data:
                raise ValueError(f"{origin}: missing key {key!r} (not a crossrank calibration?)")
        version = data["crossrank_calibration"]
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{origin}: calibration format version {version!r} is not supported "
                f"(this crossrank reads version {FORMAT_VERSION})"
            )
        method, parameters = data["method"], data["parameters"]
        if method not in METHODS:
            raise ValueError(f"{origin}: method must be one of {METHODS}, got {method!r}")
        if not isinstance(parameters, Mapping):
            raise ValueError(f"{origin}: 'parameters' must be an object")
        needed = ("x", "y") if method == "isotonic" else ("a", "b")
        for key in needed:
            if key not in parameters:
                raise ValueError(f"{origin}: {method} needs parameters {needed}, missing {key!r}")
        threshold = data.get("suggested_threshold")
        if threshold is not None and not _is_number(threshold):
            raise ValueError(f"{origin}: 'suggested_threshold' must be a number or null")
        report = data.get("report") or {}
        if not isinstance(report, Mapping):
            raise ValueError(f"{origin}: 'report' must be an object")
        try:
            return cls(
                method,
                **{k: parameters[k] for k in needed},
                source=str(data.get("source") or ""),
                suggested_threshold=threshold,
                report=report,
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"{origin}: {error}") from None

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the JSON file at ``path`` (a directory gets :data:`CALIBRATION_FILE`); its path."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, CALIBRATION_FILE)
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(self.to_dict(), stream, indent=1)
            stream.write("\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        """Read a saved calibration (a file, or a directory holding :data:`CALIBRATION_FILE`)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, CALIBRATION_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"calibration file {path!r} does not exist")
        try:
            with open(path, encoding="utf-8") as stream:
                data = json.load(stream)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not a valid JSON calibration file ({error})") from None
        return replace(cls.from_dict(data, origin=path), path=path)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_parameters(cal: Calibration) -> None:
    if cal.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {cal.method!r}")
    if not (_is_number(cal.a) and _is_number(cal.b)):
        raise ValueError(f"a and b must be finite numbers, got a={cal.a!r}, b={cal.b!r}")
    if cal.method != "isotonic":
        return
    x, y = list(cal.x), list(cal.y)
    if not x or len(x) != len(y) or not all(_is_number(v) for v in x + y):
        raise ValueError("isotonic x and y must be equally long, non-empty lists of numbers")
    if any(b < a for a, b in zip(x, x[1:])) or any(b < a for a, b in zip(y, y[1:])):
        raise ValueError("isotonic x and y must be non-decreasing")
    if y[0] < 0.0 or y[-1] > 1.0:
        raise ValueError("isotonic y must lie in [0, 1]")


def find_calibration(model_dir: str | os.PathLike[str]) -> Optional[str]:
    """The calibration file in a local model directory, else ``None`` (hub ids, no file).

    >>> find_calibration("runs/minilm-scifact")  # doctest: +SKIP
    'runs/minilm-scifact/crossrank_calibration.json'
    """
    path = os.path.join(os.fspath(model_dir), CALIBRATION_FILE)
    return path if os.path.isfile(path) else None


def expected_calibration_error(
    probabilities: Sequence[float], labels: Sequence[int], bins: int = ECE_BINS
) -> float:
    """ECE with ``bins`` equal-mass bins: the share-weighted mean |mean score − share relevant|.

    Equal-mass bins (sorted scores cut into equally full bins) do not leave bins empty where a
    reranker's scores crowd near 0, as equal-width ones do.

    >>> round(expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 1], bins=2), 6)
    0.1
    """
    p, y = as_array(probabilities, "probabilities"), as_array(labels, "labels")
    if len(p) != len(y):
        raise ValueError(f"probabilities and labels differ in length: {len(p)} vs {len(y)}")
    if len(p) == 0:
        return 0.0
    order = np.argsort(p, kind="stable")
    chunks = np.array_split(order, min(bins, len(p)))
    return float(sum(len(c) * abs(p[c].mean() - y[c].mean()) for c in chunks) / len(p))


def brier_score(probabilities: Sequence[float], labels: Sequence[int]) -> float:
    """Mean squared error of the probabilities against 0/1 labels (lower is better).

    >>> brier_score([0.5, 1.0], [1, 1])
    0.125
    """
    p, y = as_array(probabilities, "probabilities"), as_array(labels, "labels")
    if len(p) != len(y):
        raise ValueError(f"probabilities and labels differ in length: {len(p)} vs {len(y)}")
    return float(np.mean((p - y) ** 2)) if len(p) else 0.0


def load_calibration(spec: Optional[str], model: str) -> Optional[Calibration]:
    """The calibration ``spec`` names: None, ``"auto"`` (the model directory's file) or a path."""
    if spec is None:
        return None
    if spec == "auto":
        path = find_calibration(model)
        if path is None:
            warn_once(
                f"no-calibration-{model}",
                f"calibration='auto' found no crossrank_calibration.json in model={model!r}; "
                "scores are plain sigmoids. Make one with `crossrank calibrate`.",
            )
            return None
        return Calibration.load(path)
    return Calibration.load(spec)
