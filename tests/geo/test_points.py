"""Distances between coordinates: the great-circle distance and its prepared form for pairwise loops."""

from __future__ import annotations

import random

import pytest

from geo.points import haversine_km, haversine_prepared, prepare


def test_a_degree_of_latitude_is_about_111_km() -> None:
    assert haversine_km(30.0, 114.0, 31.0, 114.0) == pytest.approx(111.19, abs=0.01)


def test_prepared_points_measure_what_haversine_measures() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        a = (rng.uniform(-60, 60), rng.uniform(-179, 179))
        b = (a[0] + rng.uniform(-0.1, 0.1), a[1] + rng.uniform(-0.1, 0.1))
        assert haversine_prepared(prepare(*a), prepare(*b)) == pytest.approx(haversine_km(*a, *b), abs=1e-9)
    assert haversine_prepared(prepare(30.6, 114.3), prepare(30.6, 114.3)) == 0.0
