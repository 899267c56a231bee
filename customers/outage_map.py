"""The public outage map: active incidents and planned outages in progress, aggregated to grid cells so no
customer can be singled out, with affected-customer counts, causes when known and the latest ETR. Cached."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from customers.config import CustomerSettings, get_customer_settings
from dispatch.models import Incident

ACTIVE = ("SUSPECTED", "CONFIRMED", "RESTORING")


@dataclass
class OutageArea:
    cell: str
    lat: float  # centre of the cell, not of any customer
    lng: float
    size: float
    incidents: int = 0
    customers_affected: int = 0
    causes: list[str] = field(default_factory=list)
    etr: datetime | None = None


def cell_of(lat: float, lng: float, size: float) -> tuple[str, float, float]:
    row, column = int(lat // size), int(lng // size)
    return f"{row}:{column}", (row + 0.5) * size, (column + 0.5) * size


def summarise(incidents: list[Incident], size: float) -> list[OutageArea]:
    """Plain function: incidents to grid cells (incidents without a centre are left out of the map)."""
    cells: dict[str, OutageArea] = {}
    for incident in incidents:
        if incident.center_lat is None or incident.center_lng is None:
            continue
        key, lat, lng = cell_of(incident.center_lat, incident.center_lng, size)
        area = cells.setdefault(key, OutageArea(key, round(lat, 6), round(lng, 6), size))
        area.incidents += 1
        area.customers_affected += incident.customers_affected
        cause = _public_cause(incident.cause)
        if cause not in area.causes:
            area.causes.append(cause)
        if incident.etr is not None and (area.etr is None or incident.etr > area.etr):
            area.etr = incident.etr
    return sorted(cells.values(), key=lambda a: (-a.customers_affected, a.cell))


def _public_cause(cause: str | None) -> str:
    """'predicted fuse A12' -> 'fuse fault'; device names stay internal."""
    words = (cause or "").split()
    return f"{words[1]} fault" if len(words) >= 2 and words[0] == "predicted" else "under investigation"


def geojson(areas: list[OutageArea]) -> dict[str, Any]:
    features = []
    for area in areas:
        half = area.size / 2
        ring = [[area.lng - half, area.lat - half], [area.lng + half, area.lat - half],
                [area.lng + half, area.lat + half], [area.lng - half, area.lat + half],
                [area.lng - half, area.lat - half]]
        features.append({"type": "Feature", "id": area.cell,
                         "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": {"incidents": area.incidents, "customersAffected": area.customers_affected,
                                        "causes": area.causes,
                                        "etr": area.etr.isoformat() if area.etr else None}})
    return {"type": "FeatureCollection", "features": features}


class OutageMap:
    """The cached summary of one database: recomputed at most every `map_cache_seconds`, one reader at a time."""

    def __init__(self, engine: Engine, settings: CustomerSettings | None = None) -> None:
        self.engine, self.settings = engine, settings or get_customer_settings()
        self._lock = threading.Lock()
        self._at = -1e9
        self._areas: list[OutageArea] = []
        self._geojson: dict[str, Any] = {}

    def areas(self) -> list[OutageArea]:
        self._refresh()
        return self._areas

    def feature_collection(self) -> dict[str, Any]:
        self._refresh()
        return self._geojson

    def invalidate(self) -> None:
        self._at = -1e9

    def _refresh(self) -> None:
        if time.monotonic() - self._at < self.settings.map_cache_seconds:
            return
        with self._lock:
            if time.monotonic() - self._at < self.settings.map_cache_seconds:
                return
            with Session(self.engine) as session:
                incidents = list(session.exec(select(Incident).where(col(Incident.status).in_(ACTIVE))))
            self._areas = summarise(incidents, self.settings.map_cell_degrees)
            self._geojson = geojson(self._areas)
            self._at = time.monotonic()


_maps: dict[int, OutageMap] = {}


def outage_map_for(engine: Engine) -> OutageMap:
    if id(engine) not in _maps:
        _maps[id(engine)] = OutageMap(engine)
    return _maps[id(engine)]
