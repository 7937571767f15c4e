"""Orientation markers for a slice from its DICOM Image Orientation (Patient).

DICOM's patient axes: +x towards the patient's left, +y posterior, +z head. The six
numbers are the direction of a row (left to right on screen) then of a column (top to
bottom). A screen edge is named by the patient direction it points to, strongest axis
first ("L", or "LA" on an oblique slice). Pure: a missing or malformed orientation
gives None, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

AXES = (("L", "R"), ("P", "A"), ("H", "F"))  # (+, -) for x, y, z
# A secondary axis is named when its share of the direction is this large (about 24°):
# a head CT with the usual gantry tilt (18° in tests/data's GE series) still reads as
# axial, "A" at the top, not "AH".
OBLIQUE = 0.4


def direction(vector: Sequence[float]) -> str:
    """The patient direction ``vector`` points to: "L", "A", "H", or "LA" when oblique."""
    parts = sorted(((abs(v), AXES[i][0] if v > 0 else AXES[i][1])
                    for i, v in enumerate(vector) if abs(v) >= OBLIQUE), reverse=True)
    return "".join(letter for _, letter in parts)


def _unit(values: Sequence[float]) -> tuple[float, float, float] | None:
    norm = math.sqrt(sum(v * v for v in values))
    if not math.isfinite(norm) or norm < 1e-6:
        return None
    return tuple(v / norm for v in values)  # type: ignore[return-value]


def markers(orientation: Sequence | None) -> dict[str, str] | None:
    """{"left", "right", "top", "bottom"}: the patient direction at each screen edge,
    from the six numbers of Image Orientation (Patient); None if they are not usable.

    An axial slice as scanners store it ([1, 0, 0, 0, 1, 0]) gives left R, right L,
    top A, bottom P: the patient seen from the feet."""
    try:
        numbers = [float(v) for v in orientation or ()]
    except (TypeError, ValueError):
        return None
    if len(numbers) != 6:
        return None
    row, column = _unit(numbers[:3]), _unit(numbers[3:])
    if row is None or column is None:
        return None
    flip = lambda v: tuple(-x for x in v)  # noqa: E731
    found = {"left": direction(flip(row)), "right": direction(row),
             "top": direction(flip(column)), "bottom": direction(column)}
    return found if all(found.values()) else None
