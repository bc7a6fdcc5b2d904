"""Checks every config dataclass shares: numbers that arrive as floats must be finite (NaN and infinity pass
every range check written as `not 0 <= x <= 1`, and then train or sample garbage)."""
from __future__ import annotations

import dataclasses
import math


def refuse_non_finite(config, names: tuple[str, ...] | None = None) -> None:
    """ValueError naming the first float field of ``config`` (or of ``names``) that is NaN or infinite."""
    fields = names if names is not None else tuple(f.name for f in dataclasses.fields(config))
    for name in fields:
        value = getattr(config, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
