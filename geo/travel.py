"""Travel-time matrix providers: vectorised great-circle estimate (default) and an OSRM table client."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import httpx
import numpy as np

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

Point = tuple[float, float]  # (lat, lng) in degrees


@dataclass(frozen=True)
class TravelSettings:
    """How straight-line distance becomes driving time.

    ``minutes = great_circle_km * detour_factor / speed_kmh(area) * 60``, rounded up to whole minutes.
    The speed of a leg is the speed of the *slower* of its two endpoints' area types (a trip into or out
    of a city centre is dominated by the city part). Unknown area types use ``default_speed_kmh``.
    """

    detour_factor: float = 1.3
    speed_kmh: dict[str, float] = field(
        default_factory=lambda: {"URBAN": 30.0, "RURAL": 50.0, "REMOTE": 40.0}
    )
    default_speed_kmh: float = 30.0
    min_leg_minutes: int = 0  # e.g. 1 to charge something for any move between distinct points

    def speed_for(self, area_type: str | None) -> float:
        if area_type is None:
            return self.default_speed_kmh
        return float(self.speed_kmh.get(area_type.upper(), self.default_speed_kmh))


@runtime_checkable
class TravelMatrixProvider(Protocol):
    """Anything that turns points into a square matrix of integer driving minutes."""

    def matrix(self, points: Sequence[Point], area_types: Sequence[str] | None = None) -> np.ndarray:
        """Minutes from point i to point j (int64, shape n×n, zero diagonal)."""
        ...


MATRIX_ROWS = 256  # rows computed at a time: a storm board of 6 000 points is 36 M pairs


def haversine_km_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Great-circle distances in km between rows of ``a`` (n×2 lat,lng degrees) and rows of ``b``.

    Computed a band of rows at a time, in place: the whole-matrix expression made eight n×n temporaries
    (2 GB for a storm board of 6 000 points) and ran three times slower."""
    b = a if b is None else b
    lat1, lng1 = np.radians(a[:, 0]), np.radians(a[:, 1])
    lat2, lng2 = np.radians(b[:, 0]), np.radians(b[:, 1])
    cos1, cos2 = np.cos(lat1), np.cos(lat2)
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), MATRIX_ROWS):
        rows = slice(start, start + MATRIX_ROWS)
        h = np.sin((lat2[None, :] - lat1[rows, None]) * 0.5)
        h *= h
        across = np.sin((lng2[None, :] - lng1[rows, None]) * 0.5)
        across *= across
        across *= cos2[None, :]
        across *= cos1[rows, None]
        h += across
        np.clip(h, 0.0, 1.0, out=h)
        np.sqrt(h, out=h)
        np.arcsin(h, out=h)
        h *= 2.0 * EARTH_RADIUS_KM
        out[rows] = h
    return out


def haversine_km(p: Point, q: Point) -> float:
    """Great-circle distance in km between two (lat, lng) points."""
    return float(haversine_km_matrix(np.array([p], dtype=float), np.array([q], dtype=float))[0, 0])


def check_points(points: Sequence[Point]) -> np.ndarray:
    """The points as an n×2 array; ValueError unless every one is a finite, valid coordinate."""
    arr = np.asarray(points, dtype=float).reshape(-1, 2)
    if not np.all(np.isfinite(arr)):
        raise ValueError("travel matrix: every point needs a finite latitude and longitude")
    if np.any(np.abs(arr[:, 0]) > 90) or np.any(np.abs(arr[:, 1]) > 180):
        raise ValueError("travel matrix: latitude must be within ±90 and longitude within ±180")
    return arr


@dataclass
class GeodesicProvider:
    """Great-circle distance × detour factor at an area-type speed; vectorised (2000² in ~0.2 s)."""

    settings: TravelSettings = field(default_factory=TravelSettings)

    def distance_km(self, points: Sequence[Point]) -> np.ndarray:
        """Estimated road distance in km (great circle × detour factor)."""
        return haversine_km_matrix(check_points(points)) * self.settings.detour_factor

    def matrix(self, points: Sequence[Point], area_types: Sequence[str] | None = None) -> np.ndarray:
        arr = check_points(points)
        if len(arr) == 0:
            return np.zeros((0, 0), dtype=np.int64)
        return self.minutes_for(haversine_km_matrix(arr) * self.settings.detour_factor, area_types)

    def minutes_for(self, km: np.ndarray, area_types: Sequence[str] | None = None) -> np.ndarray:
        """The driving minutes of a road-distance matrix (`distance_km`), by the slower endpoint's speed."""
        n = len(km)
        if n == 0:
            return np.zeros((0, 0), dtype=np.int64)
        if area_types is None:
            speed = np.full(n, self.settings.default_speed_kmh)
        else:
            if len(area_types) != n:
                raise ValueError("area_types must have one entry per point")
            speed = np.array([self.settings.speed_for(a) for a in area_types], dtype=float)
        leg_speed = np.minimum(speed[:, None], speed[None, :])  # slower endpoint governs the leg
        minutes = np.ceil(km / leg_speed * 60.0 - 1e-9).astype(np.int64)
        if self.settings.min_leg_minutes:
            minutes = np.maximum(minutes, self.settings.min_leg_minutes)
        np.fill_diagonal(minutes, 0)
        return minutes


@dataclass
class OsrmTableProvider:
    """Driving minutes from an OSRM-compatible ``/table/v1/driving`` service (chunked for big inputs).

    Unroutable pairs (``null`` durations) fall back to the geodesic estimate so the optimizer still gets a
    full matrix; ``fallback`` can be replaced with any provider.
    """

    base_url: str
    chunk: int = 100  # sources × destinations per request; OSRM's default max-table-size is 100
    timeout_s: float = 30.0
    fallback: TravelMatrixProvider = field(default_factory=GeodesicProvider)

    def _request(self, client: httpx.Client, pts: np.ndarray, src: list[int], dst: list[int]) -> np.ndarray:
        idx = sorted(set(src) | set(dst))
        pos = {p: k for k, p in enumerate(idx)}
        coords = ";".join(f"{pts[i, 1]:.6f},{pts[i, 0]:.6f}" for i in idx)  # OSRM wants lng,lat
        sources = ";".join(str(pos[i]) for i in src)
        destinations = ";".join(str(pos[j]) for j in dst)
        # query written out by hand: OSRM expects literal ";" separators, not %3B
        url = (
            f"{self.base_url.rstrip('/')}/table/v1/driving/{coords}"
            f"?annotations=duration&sources={sources}&destinations={destinations}"
        )
        resp = client.get(url)
        resp.raise_for_status()
        body = resp.json()
        if body.get("code", "Ok") != "Ok":
            raise RuntimeError(f"OSRM table error: {body.get('code')}: {body.get('message', '')}")
        raw = body["durations"]
        return np.array([[np.nan if v is None else float(v) for v in row] for row in raw], dtype=float)

    def matrix(self, points: Sequence[Point], area_types: Sequence[str] | None = None) -> np.ndarray:
        pts = check_points(points)
        n = len(pts)
        seconds = np.full((n, n), np.nan)
        if n == 0:
            return np.zeros((0, 0), dtype=np.int64)
        step = max(1, self.chunk // 2) if n > self.chunk else n
        blocks = [list(range(i, min(n, i + step))) for i in range(0, n, step)]
        with httpx.Client(timeout=self.timeout_s) as client:
            for src in blocks:
                for dst in blocks:
                    seconds[np.ix_(src, dst)] = self._request(client, pts, src, dst)
        minutes = np.ceil(seconds / 60.0 - 1e-9)
        missing = np.isnan(minutes)
        if missing.any():
            minutes[missing] = self.fallback.matrix([tuple(p) for p in pts], area_types)[missing]
        out = minutes.astype(np.int64)
        np.fill_diagonal(out, 0)
        return out


def provider_from_env(settings: TravelSettings | None = None) -> TravelMatrixProvider:
    """OSRM when ``ROUTING_URL`` is set, otherwise the geodesic estimate with ``settings``."""
    geo = GeodesicProvider(settings or TravelSettings())
    url = os.environ.get("ROUTING_URL", "").strip()
    if url:
        return OsrmTableProvider(url, fallback=geo)
    return geo


def minutes_between(
    p: Point, q: Point, area_type: str | None = None, settings: TravelSettings | None = None
) -> int:
    """Single-pair helper with the same formula as :class:`GeodesicProvider`."""
    s = settings or TravelSettings()
    km = haversine_km(p, q) * s.detour_factor
    return max(s.min_leg_minutes, math.ceil(km / s.speed_for(area_type) * 60.0 - 1e-9)) if km > 0 else 0
