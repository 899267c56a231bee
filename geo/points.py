"""Small shared coordinate helpers: lat/lng validation and haversine distance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG), good to ~0.5 % anywhere


def validate_lat_lng(lat: Any, lng: Any) -> list[str]:
    """Return human-readable problems with a coordinate pair; an empty list means it is valid."""
    problems: list[str] = []
    for label, value, limit in (("lat", lat, 90.0), ("lng", lng, 180.0)):
        # bool is an int subclass; a True latitude is always a caller bug
        if value is None or isinstance(value, bool):
            problems.append(f"{label} is missing")
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            problems.append(f"{label} is not a number: {value!r}")
            continue
        if not math.isfinite(number):
            problems.append(f"{label} is not finite: {value!r}")
        elif not -limit <= number <= limit:
            problems.append(f"{label} {number} is outside [-{limit:g}, {limit:g}]")
    return problems


def haversine_km(a_lat: Any, a_lng: Any, b_lat: Any, b_lng: Any) -> Any:
    """Great-circle distance in km; scalars give a float, arrays broadcast like numpy."""
    if all(isinstance(v, float | int) for v in (a_lat, a_lng, b_lat, b_lng)):
        return _haversine_scalar(float(a_lat), float(a_lng), float(b_lat), float(b_lng))
    p1, p2 = np.radians(a_lat), np.radians(b_lat)
    dp = p2 - p1
    dl = np.radians(np.asarray(b_lng, dtype=float) - np.asarray(a_lng, dtype=float))
    h = np.sin(dp / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2.0) ** 2
    # clip guards against h creeping past 1.0 by rounding for antipodal points
    d = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d


def _haversine_scalar(a_lat: float, a_lng: float, b_lat: float, b_lng: float) -> float:
    # Plain math for one pair: numpy's per-call overhead is ten times the arithmetic (hot in outage grouping).
    p1, p2 = math.radians(a_lat), math.radians(b_lat)
    h = math.sin((p2 - p1) / 2.0) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b_lng - a_lng) / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, h))))


Prepared = tuple[float, float, float]  # (latitude, longitude in radians, cosine of the latitude)


def prepare(lat: float, lng: float) -> Prepared:
    """A point ready for `spread`: many comparisons of distances from one point convert it once."""
    phi = math.radians(lat)
    return phi, math.radians(lng), math.cos(phi)


def spread(a: Prepared, b: Prepared) -> float:
    """The haversine of the angle between prepared points: it grows with their distance, so loops that only
    compare distances compare it with `spread_of_km` of the bound, without the arc sine and square root of the
    distance itself (outage grouping compares every pair of a storm's window)."""
    return math.sin((b[0] - a[0]) / 2.0) ** 2 + a[2] * b[2] * math.sin((b[1] - a[1]) / 2.0) ** 2


def spread_of_km(km: float) -> float:
    """The `spread` of two points `km` apart (up to half the earth's circumference)."""
    return math.sin(min(km / (2.0 * EARTH_RADIUS_KM), math.pi / 2)) ** 2
