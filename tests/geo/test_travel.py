"""Specification of travel-time matrices: geodesic estimate, area-type speeds and the OSRM table client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest
from geopy.distance import geodesic

from geo.travel import (
    GeodesicProvider,
    OsrmTableProvider,
    TravelSettings,
    haversine_km_matrix,
    minutes_between,
    provider_from_env,
)

WUHAN = (30.60, 114.30)


def test_vectorised_great_circle_matches_geodesic_within_half_a_percent() -> None:
    rng = np.random.default_rng(3)
    pts = np.column_stack([30.6 + rng.uniform(-0.5, 0.5, 40), 114.3 + rng.uniform(-0.5, 0.5, 40)])
    km = haversine_km_matrix(pts)
    for i in range(0, 40, 7):
        for j in range(1, 40, 5):
            if i != j:
                ref = geodesic(tuple(pts[i]), tuple(pts[j])).km
                assert abs(km[i, j] - ref) <= 0.005 * ref


def test_minutes_are_distance_times_detour_at_the_slower_endpoints_speed() -> None:
    s = TravelSettings(detour_factor=1.3, speed_kmh={"URBAN": 30.0, "RURAL": 50.0, "REMOTE": 40.0})
    p, q = WUHAN, (30.60 + 20 / 111.2, 114.30)  # ~20 km north
    m = GeodesicProvider(s).matrix([p, q], ["URBAN", "RURAL"])
    km = geodesic(p, q).km * 1.3
    assert m.dtype.kind == "i" and m[0, 0] == 0 and m[1, 1] == 0
    assert m[0, 1] == m[1, 0] == pytest.approx(km / 30 * 60, abs=1.0)  # urban end governs
    rural = GeodesicProvider(s).matrix([p, q], ["RURAL", "RURAL"])
    assert rural[0, 1] == pytest.approx(km / 50 * 60, abs=1.0)
    assert minutes_between(p, q, "RURAL", s) == rural[0, 1]


def test_large_matrices_are_computed_in_one_vectorised_pass() -> None:
    rng = np.random.default_rng(1)
    pts = [(30.6 + a, 114.3 + b) for a, b in rng.uniform(-0.5, 0.5, (2000, 2))]
    m = GeodesicProvider().matrix(pts, ["URBAN"] * 1000 + ["RURAL"] * 1000)
    assert m.shape == (2000, 2000) and (m >= 0).all() and (np.diag(m) == 0).all()


def test_a_matrix_computed_band_by_band_is_the_pairwise_great_circle_distance() -> None:
    # Rows are computed MATRIX_ROWS at a time: every band, the last partial one included, holds the same
    # distances as the pairwise formula, and a rectangular matrix (rows of one set, columns of another) too.
    from geo.points import haversine_km
    from geo.travel import MATRIX_ROWS

    rng = np.random.default_rng(5)
    pts = np.column_stack([30.6 + rng.uniform(-0.5, 0.5, MATRIX_ROWS + 37),
                           114.3 + rng.uniform(-0.5, 0.5, MATRIX_ROWS + 37)])
    km = haversine_km_matrix(pts)
    assert km.shape == (len(pts), len(pts)) and np.allclose(km, km.T) and (np.diag(km) == 0).all()
    for i in (0, MATRIX_ROWS - 1, MATRIX_ROWS, len(pts) - 1):
        for j in (0, 17, len(pts) - 1):
            assert km[i, j] == pytest.approx(haversine_km(*pts[i], *pts[j]), abs=1e-9)
    across = haversine_km_matrix(pts[:3], pts[3:10])
    assert np.allclose(across, km[:3, 3:10])


def test_invalid_coordinates_are_rejected() -> None:
    with pytest.raises(ValueError):
        GeodesicProvider().matrix([(float("nan"), 114.3)])
    with pytest.raises(ValueError):
        GeodesicProvider().matrix([(95.0, 114.3)])


class _Osrm(BaseHTTPRequestHandler):
    """A tiny OSRM-compatible table service. Point k sits at longitude 114.30 + 0.01 k; the duration between
    points a and b is 180 s × |a - b|, except that points 0 and 4 are unroutable (null)."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)  # not urlparse: it would cut the path at the first ";"
        _Osrm.requests.append(self.path)
        coords = unquote(url.path).rsplit("/", 1)[1].split(";")
        ks = [round((float(c.split(",")[0]) - 114.30) / 0.01) for c in coords]
        q = parse_qs(url.query)
        src = [int(x) for x in q["sources"][0].split(";")]
        dst = [int(x) for x in q["destinations"][0].split(";")]
        rows = []
        for i in src:
            row = []
            for j in dst:
                a, b = ks[i], ks[j]
                row.append(None if {a, b} == {0, 4} else 180.0 * abs(a - b))
            rows.append(row)
        body = json.dumps({"code": "Ok", "durations": rows}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def osrm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Osrm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Osrm.requests.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_osrm_table_is_fetched_in_chunks_converted_to_minutes_with_geodesic_fallback(osrm: str) -> None:
    pts = [(30.6, 114.30 + 0.01 * k) for k in range(5)]  # longitudes increase with k
    m = OsrmTableProvider(osrm, chunk=4).matrix(pts)
    assert len(_Osrm.requests) > 1  # 5 points with 4 per request: several requests
    assert "annotations=duration" in _Osrm.requests[0]
    assert m[0, 1] == 3 and m[1, 3] == 6 and m[3, 1] == 6 and m[2, 2] == 0
    geo = GeodesicProvider().matrix(pts)
    assert m[0, 4] == geo[0, 4]  # unroutable pair falls back to the estimate


def test_provider_from_env_picks_osrm_when_routing_url_is_set(
    monkeypatch: pytest.MonkeyPatch, osrm: str
) -> None:
    monkeypatch.delenv("ROUTING_URL", raising=False)
    assert isinstance(provider_from_env(), GeodesicProvider)
    monkeypatch.setenv("ROUTING_URL", osrm)
    p = provider_from_env()
    assert isinstance(p, OsrmTableProvider) and p.base_url == osrm
    assert p.matrix([(30.6, 114.30), (30.6, 114.31)])[0, 1] == 3
