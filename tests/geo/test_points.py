"""Distances between coordinates: the great-circle distance and its prepared form for pairwise loops."""

from __future__ import annotations

import math
import random

import pytest

from geo.points import EARTH_RADIUS_KM, haversine_km, prepare, spread, spread_of_km


def test_a_degree_of_latitude_is_about_111_km() -> None:
    assert haversine_km(30.0, 114.0, 31.0, 114.0) == pytest.approx(111.19, abs=0.01)


def test_a_spread_orders_pairs_as_their_distances_do() -> None:
    # Loops that only compare distances compare spreads of prepared points (no arc sine, no square root).
    rng = random.Random(9)
    for _ in range(20_000):
        a = (rng.uniform(-80, 80), rng.uniform(-180, 180))
        b = (a[0] + rng.uniform(-0.1, 0.1), a[1] + rng.uniform(-0.1, 0.1))
        distance, bound = haversine_km(*a, *b), rng.uniform(0.01, 12.0)
        assert spread(prepare(*a), prepare(*b)) == pytest.approx(spread_of_km(distance), rel=1e-9, abs=1e-18)
        if abs(distance - bound) > 1e-9:  # (not on the bound itself, where rounding may differ)
            assert (spread(prepare(*a), prepare(*b)) <= spread_of_km(bound)) == (distance <= bound)
    assert spread(prepare(30.6, 114.3), prepare(30.6, 114.3)) == 0.0
    assert spread_of_km(0.0) == 0.0 and spread_of_km(EARTH_RADIUS_KM * math.pi * 2) == 1.0


def test_two_points_are_at_least_their_difference_in_latitude_apart() -> None:
    # Outage grouping skips measuring a pair whose latitudes alone put it too far apart (customers.prediction).
    rng = random.Random(5)
    for _ in range(20_000):
        a = (rng.uniform(-89, 89), rng.uniform(-180, 180))
        b = (rng.uniform(-89, 89), rng.uniform(-180, 180)) if rng.random() < 0.5 else \
            (a[0] + rng.uniform(-0.05, 0.05), a[1] + rng.uniform(-0.05, 0.05))
        assert haversine_km(*a, *b) >= EARTH_RADIUS_KM * math.radians(abs(a[0] - b[0])) * (1 - 1e-12)
