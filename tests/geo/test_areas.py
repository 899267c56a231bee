"""Specification of the region config: loading, area classification, branch lookup and the outline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from geo.areas import (
    DEMO_REGION_PATH,
    RegionConfigError,
    branch_for,
    branches_for,
    classify_area,
    classify_areas,
    default_region,
    in_region,
    load_region,
    nearest_urban_centre,
)
from geo.points import haversine_km, validate_lat_lng

KM_PER_DEG_LAT = 111.2
CENTRE = (30.60, 114.30)


def km_east(lat: float, lng: float, km: float) -> tuple[float, float]:
    return lat, lng + km / (KM_PER_DEG_LAT * math.cos(math.radians(lat)))


def km_south(lat: float, lng: float, km: float) -> tuple[float, float]:
    return lat - km / KM_PER_DEG_LAT, lng


@pytest.fixture(scope="module")
def region():
    return load_region()


def test_demo_region_has_the_agreed_figures(region):
    assert (region.name.en, region.name.zh) == ("Lanshan", "岚山")
    assert (region.centre.lat, region.centre.lng) == CENTRE
    centres = {c.name: (c.name_zh, c.lat, c.lng, c.radius_km) for c in region.urban_centres}
    assert centres == {
        "Lanshan City": ("岚山市区", 30.60, 114.30, 8),
        "Donghu New Town": ("东湖新城", 30.76, 114.55, 5),
    }
    assert region.rural_radius_km == 30
    assert {"CITY", "DONGHU", "NORTH", "NANSHAN"} <= set(region.branch_codes)
    assert default_region() is default_region()


def test_urban_centre_points_are_urban(region):
    assert classify_area(region, *CENTRE) == "URBAN"
    assert classify_area(region, 30.76, 114.55) == "URBAN"
    assert classify_area(region, *km_east(*CENTRE, 7.5)) == "URBAN"


def test_distance_rule_rural_then_remote(region):
    assert classify_area(region, *km_east(*CENTRE, 9)) == "RURAL"
    assert classify_area(region, *km_east(*CENTRE, -20)) == "RURAL"  # 20 km west
    assert classify_area(region, *km_south(*CENTRE, 45)) == "REMOTE"  # 45 km south, far from Donghu too


def test_nearest_centre_decides(region):
    # 20 km north of Donghu is ~35 km from Lanshan City, but rural because Donghu is near
    lat, lng = 30.76 + 20 / KM_PER_DEG_LAT, 114.55
    centre, km = nearest_urban_centre(region, lat, lng)
    assert centre.name == "Donghu New Town" and km == pytest.approx(20, abs=0.2)
    assert classify_area(region, lat, lng) == "RURAL"


def test_remote_hill_polygon_overrides_distance(region):
    shimen = (30.42, 114.08)  # ~28 km from Lanshan City: RURAL by distance, but in the Nanshan hills
    assert haversine_km(*shimen, *CENTRE) < region.rural_radius_km
    assert classify_area(region, *shimen) == "REMOTE"


def test_urban_polygon_overrides_distance(region):
    airport = (30.80, 114.20)  # ~24 km out, but the airport economic zone is built up
    assert classify_area(region, *airport) == "URBAN"


def test_vectorised_matches_scalar(region):
    rng = np.random.default_rng(1)
    lats = rng.uniform(30.1, 31.1, 500)
    lngs = rng.uniform(113.8, 114.8, 500)
    # (one point at a time is computed apart, in plain Python: the polygons' own corners are the hard cases)
    features = [*(region.areas.features if region.areas else []), *region.branches.features]
    corners = [(lat, lng) for f in features for polygon in f.geometry.point_rings for ring in polygon
               for lng, lat in ring]
    lats = np.concatenate([lats, [lat for lat, _ in corners]])
    lngs = np.concatenate([lngs, [lng for _, lng in corners]])
    pairs = list(zip(lats, lngs, strict=True))
    many = classify_areas(region, lats, lngs)
    assert many == [classify_area(region, a, b) for a, b in pairs]
    assert set(many) == {"URBAN", "RURAL", "REMOTE"}
    assert branches_for(region, lats, lngs) == [branch_for(region, a, b) for a, b in pairs]


def test_invalid_points_are_rejected(region):
    with pytest.raises(ValueError, match="not a valid coordinate"):
        classify_area(region, float("nan"), 114.3)
    with pytest.raises(ValueError):
        classify_areas(region, [30.6, 30.7], [114.3])


def test_branch_lookup(region):
    assert branch_for(region, *CENTRE) == "CITY"
    assert branch_for(region, 30.76, 114.55) == "DONGHU"
    assert branch_for(region, 30.90, 114.20) == "NORTH"
    assert branch_for(region, 30.30, 113.95) == "NANSHAN"
    assert branch_for(region, 10.0, 10.0) is None
    city = region.branch("CITY")
    assert city is not None and city.name_zh == "城区分局" and city.manager
    assert region.branch("NOPE") is None


def test_branches_cover_the_whole_outline(region):
    rng = np.random.default_rng(2)
    lats = rng.uniform(30.05, 31.15, 3000)
    lngs = rng.uniform(113.75, 114.85, 3000)
    inside = [in_region(region, a, b) for a, b in zip(lats, lngs, strict=True)]
    codes = branches_for(region, lats, lngs)
    assert sum(inside) > 1000
    assert all(code is not None for code, ok in zip(codes, inside, strict=True) if ok)


def test_every_branch_depot_lies_in_its_own_branch(region):
    for feature in region.branches.features:
        depot = feature.properties.depot
        assert depot is not None
        assert branch_for(region, depot.lat, depot.lng) == feature.properties.code


def test_outline(region):
    assert in_region(region, *CENTRE)
    assert not in_region(region, 31.5, 114.3)
    assert not in_region(region, 30.6, 115.2)


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "region.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    return p


def test_load_errors_name_the_offending_key(tmp_path):
    data = json.loads(DEMO_REGION_PATH.read_text(encoding="utf-8"))
    del data["branches"]["features"][2]["properties"]["code"]
    with pytest.raises(RegionConfigError, match=r"branches\.features\.2\.properties\.code"):
        load_region(_write(tmp_path, data))

    data = json.loads(DEMO_REGION_PATH.read_text(encoding="utf-8"))
    data["areas"]["features"][0]["properties"]["area_type"] = "SUBURBAN"
    with pytest.raises(RegionConfigError, match=r"areas\.features\.0\.properties\.area_type"):
        load_region(_write(tmp_path, data))

    data = json.loads(DEMO_REGION_PATH.read_text(encoding="utf-8"))
    data["outline"]["coordinates"][0].pop()  # ring no longer closed
    with pytest.raises(RegionConfigError, match=r"outline.*not closed"):
        load_region(_write(tmp_path, data))

    data = json.loads(DEMO_REGION_PATH.read_text(encoding="utf-8"))
    data["rural_radius_km"] = 4
    with pytest.raises(RegionConfigError, match="rural_radius_km"):
        load_region(_write(tmp_path, data))


def test_load_errors_for_missing_or_broken_files(tmp_path):
    with pytest.raises(RegionConfigError, match="not found"):
        load_region(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(RegionConfigError, match="not valid JSON"):
        load_region(bad)


def test_point_helpers():
    assert validate_lat_lng(30.6, 114.3) == []
    assert validate_lat_lng(91, 0) and validate_lat_lng(0, -181)
    assert validate_lat_lng(float("inf"), 0) and validate_lat_lng(None, 0) and validate_lat_lng("x", 0)
    assert haversine_km(30.6, 114.3, 30.6, 114.3) == 0.0
    assert haversine_km(0, 0, 1, 0) == pytest.approx(111.19, abs=0.05)
    d = haversine_km(np.array([30.6, 30.76]), np.array([114.3, 114.55]), 30.6, 114.3)
    assert d.shape == (2,) and d[1] == pytest.approx(29.6, abs=0.5)
