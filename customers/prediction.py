"""Outage prediction from trouble calls, as outage-management systems do it: plain data in, outages out.

Where the network is known (service point -> transformer -> fuse or line section -> feeder), calls climb it:
a transformer is out once enough of its customers call, an upstream device once enough of its children are
involved (a transformer with a call, a device below predicted out), and the outage is placed on the lowest
device that explains the calls; customers on that device who did not call are counted as affected. Calls
with no known transformer group by distance and time instead, and such a group never grows wider than the
maximum incident diameter (a dense storm would otherwise chain a whole region into one outage).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from geo.points import EARTH_RADIUS_KM, Prepared, prepare, spread, spread_of_km


@dataclass(frozen=True)
class Call:
    """One trouble call: which ticket, where, when, and (when the caller is a known customer) from which
    customer and transformer."""

    id: int
    lat: float | None
    lng: float | None
    at: datetime
    customer: str | None = None  # account number or phone: one service point
    transformer: str | None = None


@dataclass
class Network:
    """The radial network as parent links, with customers counted on each transformer."""

    parent: dict[str, str | None]
    kind: dict[str, str]
    customers_on_transformer: dict[str, int] = field(default_factory=dict)

    def children(self) -> dict[str, list[str]]:
        below: dict[str, list[str]] = defaultdict(list)
        for device, parent in self.parent.items():
            if parent is not None:
                below[parent].append(device)
        return below

    def ancestors(self, device: str) -> list[str]:
        chain, seen = [], {device}
        current = self.parent.get(device)
        while current is not None and current not in seen:
            chain.append(current)
            seen.add(current)
            current = self.parent.get(current)
        return chain

    def customers_under(self, device: str) -> int:
        if self.kind.get(device) == "TRANSFORMER":
            return self.customers_on_transformer.get(device, 0)
        below = self.children()
        total, stack = 0, [device]
        while stack:
            current = stack.pop()
            if self.kind.get(current) == "TRANSFORMER":
                total += self.customers_on_transformer.get(current, 0)
            stack.extend(below.get(current, []))
        return total


@dataclass(frozen=True)
class Thresholds:
    transformer_min_calls: int = 2
    upstream_min_children: int = 2
    radius_km: float = 0.8
    window: timedelta = timedelta(minutes=60)
    # No two calls of a distance-and-time group are further apart than this (None: three radii).
    max_diameter_km: float | None = None

    @property
    def diameter_km(self) -> float:
        return self.max_diameter_km if self.max_diameter_km is not None else 3 * self.radius_km


@dataclass
class Outage:
    """A predicted outage: the device it sits on (None without a network), its calls and customers affected."""

    device: str | None
    device_kind: str
    call_ids: list[int]
    customers_affected: int
    lat: float | None = None
    lng: float | None = None

    @property
    def cause(self) -> str:
        if self.device is None:
            return "grouped by distance and time"
        return f"predicted {self.device_kind.lower()} {self.device}"


def predict_outages(calls: Sequence[Call], network: Network | None = None,
                    thresholds: Thresholds | None = None) -> list[Outage]:
    """Group `calls` into predicted outages (each call in exactly one), largest first."""
    thresholds = thresholds or Thresholds()
    on_network = [c for c in calls if network is not None and c.transformer in network.kind]
    climbing = {id(c) for c in on_network}
    outages = _climb(on_network, network, thresholds) if network is not None and on_network else []
    outages += _by_distance_and_time([c for c in calls if id(c) not in climbing], thresholds)
    outage_of_call = {call_id: outage for outage in outages for call_id in outage.call_ids}
    located: dict[int, list[Call]] = defaultdict(list)  # id(outage) -> its located calls, in the order given
    for c in calls:
        if c.lat is not None and c.lng is not None and (outage := outage_of_call.get(c.id)) is not None:
            located[id(outage)].append(c)
    for outage in outages:
        if (placed := located.get(id(outage))):
            outage.lat = sum(c.lat for c in placed) / len(placed)  # type: ignore[misc]
            outage.lng = sum(c.lng for c in placed) / len(placed)  # type: ignore[misc]
    return sorted(outages, key=lambda o: (-o.customers_affected, -len(o.call_ids), min(o.call_ids)))


def _climb(calls: Sequence[Call], network: Network, thresholds: Thresholds) -> list[Outage]:
    below = network.children()
    callers: dict[str, set[str]] = defaultdict(set)  # transformer -> distinct service points that called
    for call in calls:
        callers[call.transformer or ""].add(call.customer or f"call-{call.id}")
    out: set[str] = {t for t, who in callers.items() if len(who) >= thresholds.transformer_min_calls}

    def involved(child: str) -> bool:  # a transformer with any call, or an upstream device predicted out
        return child in out or (network.kind.get(child) == "TRANSFORMER" and child in callers)

    changed = True
    while changed:  # climb while an upstream device has enough of its children involved
        changed = False
        candidates = {p for d in out | set(callers) for p in [network.parent.get(d)] if p is not None and p not in out}
        for device in candidates:
            if sum(1 for child in below.get(device, []) if involved(child)) >= thresholds.upstream_min_children:
                out.add(device)
                changed = True
    # The outage sits on the highest device out on each branch: drop devices whose ancestor is out too.
    tops = {d for d in out if not any(a in out for a in network.ancestors(d))}
    outages: dict[str, Outage] = {d: Outage(d, network.kind.get(d, "DEVICE"), [], network.customers_under(d))
                                  for d in tops}
    singles: list[Outage] = []
    for call in calls:
        chain = [call.transformer or "", *network.ancestors(call.transformer or "")]
        top = next((d for d in chain if d in tops), None)
        if top is not None:
            outages[top].call_ids.append(call.id)
            continue
        key = call.customer or f"call-{call.id}"
        same = next((s for s in singles if s.device == f"service point {key}"), None)
        if same is not None:
            same.call_ids.append(call.id)
        else:  # one house: the customer's own service, one customer affected
            singles.append(Outage(f"service point {key}", "SERVICE_POINT", [call.id], 1))
    for outage in outages.values():  # customers who called but are missing from the counts still count
        outage.customers_affected = max(outage.customers_affected,
                                        len({c.customer or c.id for c in calls if c.id in set(outage.call_ids)}))
    return list(outages.values()) + singles


def _by_distance_and_time(calls: Sequence[Call], thresholds: Thresholds) -> list[Outage]:
    """Bounded single linkage: a call joins a group with a call within the radius and the time window, as long
    as the group stays within the maximum diameter; it bridges two such groups only if the merged group does
    too. A call that fits no group it touches starts a group of its own (the nearest group that fits wins)."""
    # The loops below compare every pair of a storm's dense window, so they work on plain lists: each located
    # call `prepare`d once, times as whole microseconds, and distances compared as `spread`s (geo.points; written
    # out in the innermost loop, where a call per pair would cost as much as the rest). Two points are at least
    # their difference in latitude apart, and their difference in longitude times the smaller cosine of their
    # latitudes: a group whose bounds lie further than the radius from a call cannot take it, and a member
    # further north or south than the diameter is too far, without measuring.
    order = sorted(calls, key=lambda c: (c.at, c.id))
    if not order:
        return []
    diameter, radius = spread_of_km(thresholds.diameter_km), spread_of_km(thresholds.radius_km)
    reach = thresholds.diameter_km / EARTH_RADIUS_KM
    window = thresholds.window // MICROSECOND
    when = [(c.at - order[0].at) // MICROSECOND for c in order]
    points = [prepare(c.lat, c.lng) if c.lat is not None and c.lng is not None else None for c in order]
    lat_link, lng_link = _link_bounds(thresholds.radius_km, [p for p in points if p is not None])
    sin = math.sin
    groups: list[_Group] = []
    for i, here in enumerate(points):
        if here is None:
            groups.append(_Group([i]))
            continue
        phi, lam, cos = here
        t = when[i]
        touching: list[tuple[float, int]] = []  # (nearest linking distance, group index) of groups that fit
        for index, group in enumerate(groups):
            if phi - group.hi_phi > lat_link or group.lo_phi - phi > lat_link or lam - group.hi_lam > lng_link \
                    or group.lo_lam - lam > lng_link:
                continue
            nearest, fits = None, True
            for j in group.members:
                there = points[j]
                if there is None:
                    continue
                d_phi = there[0] - phi
                if d_phi > reach or -d_phi > reach:
                    fits = False
                    break
                distance = sin(d_phi / 2.0) ** 2 + cos * there[2] * sin((there[1] - lam) / 2.0) ** 2
                if distance > diameter:
                    fits = False
                    break
                if distance <= radius and -window <= when[j] - t <= window and (nearest is None or distance < nearest):
                    nearest = distance
            if fits and nearest is not None:
                touching.append((nearest, index))
        if not touching:
            groups.append(_Group([i], here))
            continue
        touching.sort()
        merged_ids = [touching[0][1]]
        merged = groups[touching[0][1]].joined(_Group([i], here))
        for _distance, index in touching[1:]:
            other = groups[index]
            if all(spread(a, b) <= diameter for a in merged.points(points) for b in other.points(points)):
                merged_ids.append(index)
                merged = merged.joined(other)
        groups = [g for index, g in enumerate(groups) if index not in merged_ids] + [merged]
    return [Outage(None, "AREA", [order[i].id for i in g.members],
                   len({order[i].customer or order[i].id for i in g.members})) for g in groups]


MICROSECOND = timedelta(microseconds=1)


class _Group:
    """Calls grouped so far (their places in the time order), and the latitudes and longitudes they span."""

    __slots__ = ("members", "lo_phi", "hi_phi", "lo_lam", "hi_lam")

    def __init__(self, members: list[int], point: Prepared | None = None) -> None:
        self.members = members
        # (a group of an unlocated call spans nothing: never near)
        self.lo_phi, self.hi_phi = (point[0], point[0]) if point else (math.inf, -math.inf)
        self.lo_lam, self.hi_lam = (point[1], point[1]) if point else (math.inf, -math.inf)

    def joined(self, other: _Group) -> _Group:
        both = _Group(self.members + other.members)
        both.lo_phi, both.hi_phi = min(self.lo_phi, other.lo_phi), max(self.hi_phi, other.hi_phi)
        both.lo_lam, both.hi_lam = min(self.lo_lam, other.lo_lam), max(self.hi_lam, other.hi_lam)
        return both

    def points(self, points: list[Prepared | None]) -> list[Prepared]:
        return [p for i in self.members if (p := points[i]) is not None]


def _link_bounds(radius_km: float, points: list[Prepared]) -> tuple[float, float]:
    """How far apart in latitude and in longitude (radians) two of the points can be and still be within
    `radius_km`: the haversine of their angle is at least that of their difference in latitude, and at least
    that of their difference in longitude times the cosines of both latitudes (the smallest of the points'
    cosines bounds it). Across the 180th meridian, longitudes bound nothing."""
    angle = radius_km / EARTH_RADIUS_KM
    least_cos = min((p[2] for p in points), default=1.0)
    sine = math.sin(angle / 2.0) / max(least_cos, 1e-12)
    lng_link = 2.0 * math.asin(sine) if sine < 1.0 else math.inf
    if points and max(p[1] for p in points) - min(p[1] for p in points) > math.pi:
        lng_link = math.inf
    return angle * (1 + 1e-9), lng_link * (1 + 1e-9)  # (a little more: bounds round otherwise than a pair)


def outage_of(outages: Iterable[Outage], call_id: int) -> Outage | None:
    return next((o for o in outages if call_id in o.call_ids), None)
