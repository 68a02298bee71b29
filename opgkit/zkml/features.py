"""Feature vectors a model accepts: one finite number per feature, each inside the model's range.

Anything else fails deep inside EZKL's witness generation (NaN and infinities are not JSON numbers; values
far outside the calibrated range overflow the circuit's lookup tables) or proves a score the model was never
calibrated for, so inputs are checked before any EZKL step runs.
"""

from __future__ import annotations

import math
from typing import Sequence

from opgkit.zkml.models import DenseReluModel


def checked_features(model: DenseReluModel, values: Sequence) -> tuple[float, ...]:
    """``values`` (numbers, or their text) as floats; ValueError saying what is wrong and what is allowed."""
    allowed = range_text(model)
    if len(values) != len(model.features):
        raise ValueError(f"{model.name} takes {len(model.features)} features ({', '.join(model.features)}), "
                         f"each in {allowed}; got {len(values)}")
    low, high = model.feature_range
    checked = []
    for name, value in zip(model.features, values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number in {allowed}, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number in {allowed}, got {value}")
        if not low <= number <= high:
            raise ValueError(f"{name} must be in {allowed}, got {value}")
        checked.append(number)
    return tuple(checked)


def range_text(model: DenseReluModel) -> str:
    """The model's feature range as ``[low, high]``."""
    low, high = model.feature_range
    return f"[{low:g}, {high:g}]"
