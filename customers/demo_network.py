"""A generated distribution network and customers for the demo region: feeders around each urban centre,
fuses, transformers and a few thousand customers, plus a customer record for every demo caller (placed at
the report, on the nearest transformer), as CSV text for the same imports an operator uses."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from geo.areas import RegionConfig
from geo.points import haversine_km

CUSTOMER_HEADER = ("account_number,name,phone,email,lat,lng,feeder,transformer,critical,language,"
                   "preferred_channels,quiet_hours")


@dataclass(frozen=True)
class Caller:
    account_number: str | None
    phone: str | None
    lat: float | None
    lng: float | None
    preferred_channels: Sequence[str]


def _offset(rng: random.Random, lat: float, lng: float, km: float) -> tuple[float, float]:
    angle, distance = rng.uniform(0, 2 * math.pi), km * math.sqrt(rng.random())
    return (lat + distance * math.cos(angle) / 111.0,
            lng + distance * math.sin(angle) / (111.0 * math.cos(math.radians(lat))))


def generate_network(region: RegionConfig, callers: Sequence[Caller], seed: int = 7, feeders_per_centre: int = 3,
                     fuses_per_feeder: int = 4, transformers_per_fuse: int = 6,
                     customers_per_transformer: int = 20) -> tuple[str, str]:
    """(network CSV, customers CSV); the same seed gives the same files."""
    rng = random.Random(seed)
    network = ["device_id,kind,parent_id,lat,lng"]
    customers = [CUSTOMER_HEADER]
    transformers: list[tuple[str, str, float, float]] = []
    serial = 0
    for c, centre in enumerate(region.urban_centres):
        for f in range(feeders_per_centre):
            feeder = f"FDR-{c + 1}{f + 1:02d}"
            network.append(f"{feeder},FEEDER,,{centre.lat:.5f},{centre.lng:.5f}")
            for u in range(fuses_per_feeder):
                fuse = f"{feeder}-FU{u + 1}"
                fuse_lat, fuse_lng = _offset(rng, centre.lat, centre.lng, min(centre.radius_km, 6.0))
                network.append(f"{fuse},FUSE,{feeder},{fuse_lat:.5f},{fuse_lng:.5f}")
                for t in range(transformers_per_fuse):
                    transformer = f"{fuse}-T{t + 1}"
                    t_lat, t_lng = _offset(rng, fuse_lat, fuse_lng, 0.6)
                    network.append(f"{transformer},TRANSFORMER,{fuse},{t_lat:.5f},{t_lng:.5f}")
                    transformers.append((transformer, feeder, t_lat, t_lng))
                    for _ in range(customers_per_transformer):
                        serial += 1
                        lat, lng = _offset(rng, t_lat, t_lng, 0.15)
                        channels = rng.choice(["SMS", "SMS", "WECHAT", "APP", "SMS;WECHAT"])
                        language = "en" if rng.random() < 0.1 else "zh"
                        critical = "yes" if rng.random() < 0.005 else "no"
                        customers.append(f"D{serial:07d},,138{serial:08d},,{lat:.5f},{lng:.5f},{feeder},"
                                         f"{transformer},{critical},{language},{channels},")
    seen: set[str] = set()
    for caller in callers:
        if not caller.account_number or caller.account_number in seen:
            continue
        seen.add(caller.account_number)
        feeder = transformer = ""
        if caller.lat is not None and caller.lng is not None:
            name, on_feeder, t_lat, t_lng = min(transformers, key=lambda t: haversine_km(
                caller.lat, caller.lng, t[2], t[3]))
            if haversine_km(caller.lat, caller.lng, t_lat, t_lng) <= 1.5:
                feeder, transformer = on_feeder, name
        channels = ";".join(c for c in caller.preferred_channels if c in {"SMS", "WECHAT", "APP"}) or "SMS"
        location = f"{caller.lat:.5f},{caller.lng:.5f}" if caller.lat is not None and caller.lng is not None else ","
        customers.append(f"{caller.account_number},,{caller.phone or ''},,{location},{feeder},{transformer},no,zh,"
                         f"{channels},")
    return "\n".join(network) + "\n", "\n".join(customers) + "\n"
