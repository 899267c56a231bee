"""The service region as one GeoJSON FeatureCollection for the board's map: outline, areas, branches, centres."""

from __future__ import annotations

from typing import Any

from geo.areas import RegionConfig


def _feature(kind: str, geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"kind": kind, **properties}, "geometry": geometry}


def _point(lat: float, lng: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lng, lat]}


def region_feature_collection(region: RegionConfig) -> dict[str, Any]:
    """Every shape of `region` tagged by `properties.kind`: outline, area, branch, depot, centre.

    In drawing order (the outline under everything); positions are [lng, lat] as GeoJSON requires. Only
    names and shapes: nothing about customers or tickets, so it is public like the region file itself.
    """
    features = [_feature("outline", region.outline.model_dump(), name=region.name.en, name_zh=region.name.zh)]
    for area in region.areas.features if region.areas is not None else []:
        features.append(_feature("area", area.geometry.model_dump(), name=area.properties.name,
                                 name_zh=area.properties.name_zh, area_type=area.properties.area_type))
    for branch in region.branches.features:
        props = branch.properties
        features.append(_feature("branch", branch.geometry.model_dump(), code=props.code, name=props.name,
                                 name_zh=props.name_zh))
        if props.depot is not None:
            features.append(_feature("depot", _point(props.depot.lat, props.depot.lng), name=props.depot.name,
                                     name_zh=props.depot.name_zh, branch=props.code))
    for centre in region.urban_centres:
        features.append(_feature("centre", _point(centre.lat, centre.lng), name=centre.name,
                                 name_zh=centre.name_zh, radius_km=centre.radius_km))
    return {"type": "FeatureCollection", "name": {"en": region.name.en, "zh": region.name.zh},
            "centre": {"lat": region.centre.lat, "lng": region.centre.lng}, "features": features}
