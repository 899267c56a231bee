"""Region configuration (urban centres, area polygons, branch polygons) and area-type / branch lookup."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from geo.points import haversine_km, validate_lat_lng

DEMO_REGION_PATH = Path(__file__).with_name("data") / "demo_region.json"
AREA_TYPES: tuple[str, ...] = ("URBAN", "RURAL", "REMOTE")
AreaType = Literal["URBAN", "RURAL", "REMOTE"]
Coords = Sequence[float] | np.ndarray  # a list of degrees or a numpy array


class RegionConfigError(ValueError):
    """A region file that is missing, not JSON, or does not match the schema (message names the key)."""


class _Model(BaseModel):
    # frozen: load_region results are shared (cached) between callers, so nobody may mutate them
    model_config = ConfigDict(frozen=True, extra="forbid")


class LatLng(_Model):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)


class RegionName(_Model):
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class UrbanCentre(LatLng):
    name: str = Field(min_length=1)
    name_zh: str = ""
    radius_km: float = Field(gt=0, allow_inf_nan=False)


class PolygonGeometry(_Model):
    """A GeoJSON Polygon or MultiPolygon; positions are [lng, lat] as GeoJSON requires."""

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]

    @model_validator(mode="after")
    def _check_rings(self) -> PolygonGeometry:
        polygons = [self.coordinates] if self.type == "Polygon" else self.coordinates
        for p, polygon in enumerate(polygons):
            if not isinstance(polygon, list) or not polygon:
                raise ValueError(f"polygon {p} must be a non-empty list of rings")
            for r, ring in enumerate(polygon):
                where = f"polygon {p} ring {r}" if self.type == "MultiPolygon" else f"ring {r}"
                if not isinstance(ring, list) or len(ring) < 4:
                    raise ValueError(f"{where} needs at least 4 [lng, lat] positions (closed ring)")
                for i, pos in enumerate(ring):
                    ok = isinstance(pos, list | tuple) and len(pos) >= 2
                    if not ok or validate_lat_lng(pos[1], pos[0]):
                        raise ValueError(f"{where} position {i} is not a valid [lng, lat]: {pos!r}")
                if list(ring[0][:2]) != list(ring[-1][:2]):
                    raise ValueError(f"{where} is not closed (first position must equal last)")
        return self

    @cached_property
    def rings(self) -> list[list[np.ndarray]]:
        """Each polygon as a list of (n, 2) [lng, lat] ring arrays, outer ring first, then holes; built once (every
        located report is tested against them)."""
        raw = [self.coordinates] if self.type == "Polygon" else self.coordinates
        return [[np.asarray(ring, dtype=float)[:, :2] for ring in polygon] for polygon in raw]

    @cached_property
    def point_rings(self) -> list[list[list[tuple[float, float]]]]:
        """`rings` as lists of (lng, lat) tuples, for one point at a time (`contains_point`)."""
        return [[[(float(x), float(y)) for x, y in ring] for ring in polygon] for polygon in self.rings]

    def contains_point(self, lat: float, lng: float) -> bool:
        """`contains` for one point, in plain Python: for one point numpy's per-call overhead is most of the
        work (intake classifies every located report)."""
        for polygon in self.point_rings:
            odd = False
            for ring in polygon:
                for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False):
                    if (y1 > lat) != (y2 > lat) and lng < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                        odd = not odd
            if odd:
                return True
        return False

    def contains(self, lats: np.ndarray, lngs: np.ndarray) -> np.ndarray:
        """Boolean mask of the points inside (holes excluded)."""
        inside = np.zeros(lats.shape, dtype=bool)
        for polygon in self.rings:
            odd = np.zeros(lats.shape, dtype=bool)
            for ring in polygon:  # even-odd over outer ring and holes together makes holes work
                odd ^= _ray_cast(lats, lngs, ring)
            inside |= odd
        return inside


class AreaProperties(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    area_type: AreaType
    name: str = ""
    name_zh: str = ""


class AreaFeature(_Model):
    type: Literal["Feature"]
    geometry: PolygonGeometry
    properties: AreaProperties
    id: str | int | None = None


class AreaCollection(_Model):
    type: Literal["FeatureCollection"]
    features: list[AreaFeature]


class Depot(LatLng):
    name: str = ""
    name_zh: str = ""


class BranchProperties(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    name_zh: str = Field(min_length=1)
    manager: str = Field(min_length=1)
    depot: Depot | None = None


class BranchFeature(_Model):
    type: Literal["Feature"]
    geometry: PolygonGeometry
    properties: BranchProperties
    id: str | int | None = None


class BranchCollection(_Model):
    type: Literal["FeatureCollection"]
    features: list[BranchFeature] = Field(min_length=1)

    @field_validator("features")
    @classmethod
    def _unique_codes(cls, features: list[BranchFeature]) -> list[BranchFeature]:
        seen: set[str] = set()
        for f in features:
            if f.properties.code in seen:
                raise ValueError(f"duplicate branch code {f.properties.code!r}")
            seen.add(f.properties.code)
        return features


class RegionConfig(_Model):
    """A service region. Polygon `areas` override the distance rule; `branches` assign service units."""

    name: RegionName
    description: str = ""
    centre: LatLng
    urban_centres: list[UrbanCentre] = Field(min_length=1)
    rural_radius_km: float = Field(gt=0, allow_inf_nan=False)
    areas: AreaCollection | None = None
    branches: BranchCollection
    outline: PolygonGeometry

    @model_validator(mode="after")
    def _rural_covers_urban(self) -> RegionConfig:
        for c in self.urban_centres:
            if c.radius_km > self.rural_radius_km:
                raise ValueError(
                    f"rural_radius_km ({self.rural_radius_km}) is smaller than the radius_km "
                    f"({c.radius_km}) of urban centre {c.name!r}"
                )
        return self

    @cached_property
    def _centre_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.urban_centres
        return (
            np.array([u.lat for u in c]),
            np.array([u.lng for u in c]),
            np.array([u.radius_km for u in c]),
        )

    def branch(self, code: str) -> BranchProperties | None:
        """The properties (name, manager, depot…) of the branch with this code."""
        for f in self.branches.features:
            if f.properties.code == code:
                return f.properties
        return None

    @property
    def branch_codes(self) -> list[str]:
        return [f.properties.code for f in self.branches.features]


def _ray_cast(lats: np.ndarray, lngs: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Ray casting (crossing count parity) of many points against one ring; half-open edges."""
    x1, y1 = ring[:-1, 0], ring[:-1, 1]
    x2, y2 = ring[1:, 0], ring[1:, 1]
    lat = lats[:, None]
    lng = lngs[:, None]
    straddles = (y1 > lat) != (y2 > lat)
    with np.errstate(divide="ignore", invalid="ignore"):  # horizontal edges never straddle; ignore their 0/0
        x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
    return (straddles & (lng < x_cross)).sum(axis=1) % 2 == 1


def _as_arrays(lats: Coords, lngs: Coords) -> tuple[np.ndarray, ...]:
    la = np.atleast_1d(np.asarray(lats, dtype=float))
    ln = np.atleast_1d(np.asarray(lngs, dtype=float))
    if la.shape != ln.shape or la.ndim != 1:
        raise ValueError(f"lats and lngs must be 1-D and the same length, got {la.shape} and {ln.shape}")
    bad = ~(np.isfinite(la) & np.isfinite(ln) & (np.abs(la) <= 90) & (np.abs(ln) <= 180))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"point {i} is not a valid coordinate: lat={la[i]!r}, lng={ln[i]!r}")
    return la, ln


def load_region(path: str | Path | None = None) -> RegionConfig:
    """Read and validate a region file (default: the shipped Lanshan demo region)."""
    p = Path(path) if path is not None else DEMO_REGION_PATH
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RegionConfigError(f"region file not found: {p}") from exc
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise RegionConfigError(f"{p}: not valid JSON ({where}): {exc.msg}") from exc
    try:
        return RegionConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "(top level)"
            lines.append(f"  {key}: {err['msg']}")
        raise RegionConfigError(f"{p}: invalid region config:\n" + "\n".join(lines)) from exc


@lru_cache(maxsize=1)
def default_region() -> RegionConfig:
    """The demo region, loaded once per process (RegionConfig is frozen, so sharing is safe)."""
    return load_region()


def classify_areas(region: RegionConfig, lats: Coords, lngs: Coords) -> list[str]:
    """Area types of many points: the first matching `areas` polygon wins, else the distance rule."""
    la, ln = _as_arrays(lats, lngs)
    c_lat, c_lng, c_rad = region._centre_arrays
    dist = haversine_km(la[:, None], ln[:, None], c_lat[None, :], c_lng[None, :])
    urban = (dist <= c_rad[None, :]).any(axis=1)  # inside *any* centre's own radius
    nearest = dist.min(axis=1)
    by_distance = np.where(urban, "URBAN", np.where(nearest <= region.rural_radius_km, "RURAL", "REMOTE"))
    out = by_distance.astype(object)
    if region.areas is not None:
        decided = np.zeros(la.shape, dtype=bool)
        for feature in region.areas.features:
            hit = feature.geometry.contains(la, ln) & ~decided
            out[hit] = feature.properties.area_type
            decided |= hit
    return [str(v) for v in out]


def classify_area(region: RegionConfig, lat: float, lng: float) -> str:
    """Area type ("URBAN", "RURAL" or "REMOTE") of one point (as `classify_areas`); ValueError for an invalid
    coordinate."""
    lat, lng = _as_point(lat, lng)
    for feature in region.areas.features if region.areas is not None else ():
        if feature.geometry.contains_point(lat, lng):
            return str(feature.properties.area_type)
    distances = [(haversine_km(lat, lng, c.lat, c.lng), c.radius_km) for c in region.urban_centres]
    if any(d <= radius for d, radius in distances):
        return "URBAN"
    return "RURAL" if min(d for d, _r in distances) <= region.rural_radius_km else "REMOTE"


def branches_for(region: RegionConfig, lats: Coords, lngs: Coords) -> list[str | None]:
    """Branch code of the first branch polygon containing each point, None where none does."""
    la, ln = _as_arrays(lats, lngs)
    out: list[str | None] = [None] * len(la)
    for feature in region.branches.features:
        for i in np.flatnonzero(feature.geometry.contains(la, ln)):
            if out[i] is None:
                out[i] = feature.properties.code
    return out


def branch_for(region: RegionConfig, lat: float, lng: float) -> str | None:
    """Branch code (e.g. "CITY") whose polygon contains the point, or None outside every branch."""
    lat, lng = _as_point(lat, lng)
    return next((f.properties.code for f in region.branches.features if f.geometry.contains_point(lat, lng)), None)


def _as_point(lat: float, lng: float) -> tuple[float, float]:
    """`_as_arrays` for one point."""
    lat, lng = float(lat), float(lng)
    if not (math.isfinite(lat) and math.isfinite(lng) and abs(lat) <= 90 and abs(lng) <= 180):
        raise ValueError(f"point 0 is not a valid coordinate: lat={lat!r}, lng={lng!r}")
    return lat, lng


def in_region(region: RegionConfig, lat: float, lng: float) -> bool:
    """Whether the point lies inside the region's outline."""
    la, ln = _as_arrays([lat], [lng])
    return bool(region.outline.contains(la, ln)[0])


def nearest_urban_centre(region: RegionConfig, lat: float, lng: float) -> tuple[UrbanCentre, float]:
    """The closest urban centre and the distance to it in km."""
    la, ln = _as_arrays([lat], [lng])
    c_lat, c_lng, _ = region._centre_arrays
    dist = haversine_km(la[0], ln[0], c_lat, c_lng)
    i = int(np.argmin(dist))
    return region.urban_centres[i], float(dist[i])
