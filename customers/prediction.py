"""Outage prediction from trouble calls, as outage-management systems do it: plain data in, outages out.

Where the network is known (service point -> transformer -> fuse or line section -> feeder), calls climb it:
a transformer is out once enough of its customers call, an upstream device once enough of its children are
involved (a transformer with a call, a device below predicted out), and the outage is placed on the lowest
device that explains the calls; customers on that device who did not call are counted as affected. Calls
with no known transformer group by distance and time instead, and such a group never grows wider than the
maximum incident diameter (a dense storm would otherwise chain a whole region into one outage).
"""

from __future__ import annotations

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
    on_network = [c for c in calls if network is not None and c.transformer in (network.kind if network else {})]
    off_network = [c for c in calls if c not in on_network]
    outages = _climb(on_network, network, thresholds) if network is not None and on_network else []
    outages += _by_distance_and_time(off_network, thresholds)
    for outage in outages:
        located = [c for c in calls if c.id in set(outage.call_ids) and c.lat is not None and c.lng is not None]
        if located:
            outage.lat = sum(c.lat for c in located) / len(located)  # type: ignore[misc]
            outage.lng = sum(c.lng for c in located) / len(located)  # type: ignore[misc]
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
    # The loops below compare every pair of a storm's dense window: each located call is converted once, and
    # distances are compared as `spread`s (geo.points). Two points are at least their difference in latitude
    # apart: a group whose member lies further north or south than the diameter is too far without measuring.
    diameter, radius = spread_of_km(thresholds.diameter_km), spread_of_km(thresholds.radius_km)
    reach = thresholds.diameter_km / EARTH_RADIUS_KM
    points = {c.id: prepare(c.lat, c.lng) for c in calls if c.lat is not None and c.lng is not None}
    groups: list[list[Call]] = []
    for call in sorted(calls, key=lambda c: (c.at, c.id)):
        here = points.get(call.id)
        if here is None:
            groups.append([call])
            continue
        touching: list[tuple[float, int]] = []  # (nearest linking distance, group index) of groups that fit
        for index, group in enumerate(groups):
            nearest, fits = None, True
            for other in group:
                there = points.get(other.id)
                if there is None:
                    continue
                if abs(there[0] - here[0]) > reach:
                    fits = False
                    break
                distance = spread(here, there)
                if distance > diameter:
                    fits = False
                    break
                if distance <= radius and abs(call.at - other.at) <= thresholds.window \
                        and (nearest is None or distance < nearest):
                    nearest = distance
            if fits and nearest is not None:
                touching.append((nearest, index))
        if not touching:
            groups.append([call])
            continue
        touching.sort()
        merged_ids = [touching[0][1]]
        merged = list(groups[touching[0][1]]) + [call]
        for _distance, index in touching[1:]:
            if _within(merged, groups[index], diameter, points):
                merged_ids.append(index)
                merged += groups[index]
        groups = [g for i, g in enumerate(groups) if i not in merged_ids] + [merged]
    return [Outage(None, "AREA", [c.id for c in g], len({c.customer or c.id for c in g})) for g in groups]


def _within(group: Sequence[Call], other: Sequence[Call], diameter: float, points: dict[int, Prepared]) -> bool:
    """Whether every located call of `other` is within the diameter (a `spread`) of every located call of
    `group`."""
    located = [points[b.id] for b in other if b.id in points]
    return all(spread(points[a.id], b) <= diameter for a in group if a.id in points for b in located)


def outage_of(outages: Iterable[Outage], call_id: int) -> Outage | None:
    return next((o for o in outages if call_id in o.call_ids), None)
