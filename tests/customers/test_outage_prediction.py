"""Outage prediction on hand-made call patterns: the network climbs to the lowest common device."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from customers.prediction import Call, Network, Thresholds, outage_of, predict_outages
from geo.points import haversine_km

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

# Feeder F1 has fuses A and B; fuse A feeds transformers T1..T3, fuse B T4..T5. Feeder F2 (the next street,
# a different substation) feeds transformer T9 through fuse C. Every transformer has 20 customers.
NETWORK = Network(
    parent={"F1": None, "A": "F1", "B": "F1", "T1": "A", "T2": "A", "T3": "A", "T4": "B", "T5": "B",
            "F2": None, "C": "F2", "T9": "C"},
    kind={"F1": "FEEDER", "F2": "FEEDER", "A": "FUSE", "B": "FUSE", "C": "FUSE",
          **{t: "TRANSFORMER" for t in ("T1", "T2", "T3", "T4", "T5", "T9")}},
    customers_on_transformer={t: 20 for t in ("T1", "T2", "T3", "T4", "T5", "T9")},
)


def call(i: int, transformer: str | None, minutes: int = 0, at: tuple[float, float] = (30.6, 114.3)) -> Call:
    return Call(id=i, lat=at[0], lng=at[1], at=T0 + timedelta(minutes=minutes), customer=f"acct-{i}",
                transformer=transformer)


def test_calls_from_one_transformer_predict_that_transformer() -> None:
    outages = predict_outages([call(1, "T1"), call(2, "T1", 3), call(3, "T1", 5)], NETWORK)
    assert [(o.device, o.customers_affected, sorted(o.call_ids)) for o in outages] == [("T1", 20, [1, 2, 3])]


def test_calls_from_three_transformers_of_a_fuse_predict_the_fuse() -> None:
    outages = predict_outages([call(1, "T1"), call(2, "T1"), call(3, "T2"), call(4, "T2"), call(5, "T3"),
                               call(6, "T3")], NETWORK)
    assert len(outages) == 1
    assert (outages[0].device, outages[0].device_kind, outages[0].customers_affected) == ("A", "FUSE", 60)
    assert "fuse A" in outages[0].cause


def test_one_call_from_each_of_two_transformers_of_a_fuse_predicts_the_fuse() -> None:
    outages = predict_outages([call(1, "T1"), call(2, "T3")], NETWORK)
    assert [(o.device, o.customers_affected) for o in outages] == [("A", 60)]


def test_calls_under_both_fuses_predict_the_feeder() -> None:
    calls = [call(i, t) for i, t in enumerate(["T1", "T1", "T2", "T2", "T4", "T4", "T5", "T5"], start=1)]
    outages = predict_outages(calls, NETWORK)
    assert [(o.device, o.customers_affected, len(o.call_ids)) for o in outages] == [("F1", 100, 8)]


def test_two_separate_outages_close_by_stay_apart() -> None:
    # T1 (feeder F1) and T9 (feeder F2) are across the street from each other: one outage each.
    calls = [call(1, "T1", at=(30.6, 114.3)), call(2, "T1", at=(30.6001, 114.3)),
             call(3, "T9", at=(30.6002, 114.3)), call(4, "T9", at=(30.6003, 114.3))]
    outages = predict_outages(calls, NETWORK)
    assert sorted((o.device, sorted(o.call_ids)) for o in outages) == [("T1", [1, 2]), ("T9", [3, 4])]
    assert outage_of(outages, 3) is outage_of(outages, 4) is not outage_of(outages, 1)


def test_a_single_house_is_that_customers_service_not_the_transformer() -> None:
    outages = predict_outages([call(1, "T1")], NETWORK)
    assert [(o.device_kind, o.customers_affected) for o in outages] == [("SERVICE_POINT", 1)]
    # The same customer calling twice is still one house.
    again = predict_outages([call(1, "T1"), Call(2, 30.6, 114.3, T0, customer="acct-1", transformer="T1")], NETWORK)
    assert [(o.device_kind, sorted(o.call_ids)) for o in again] == [("SERVICE_POINT", [1, 2])]


def test_one_transformer_out_elsewhere_does_not_lift_the_fuse() -> None:
    outages = predict_outages([call(1, "T1"), call(2, "T1"), call(3, "T4")], NETWORK)
    assert sorted(o.device or "" for o in outages) == ["T1", "service point acct-3"]


def test_the_thresholds_are_settings() -> None:
    strict = Thresholds(transformer_min_calls=3)
    assert predict_outages([call(1, "T1"), call(2, "T1")], NETWORK, strict)[0].device_kind == "SERVICE_POINT"


def test_without_a_network_calls_group_by_distance_and_time() -> None:
    near = [call(1, None, 0, (30.600, 114.300)), call(2, None, 10, (30.603, 114.300)),
            call(3, None, 20, (30.606, 114.300))]  # a chain about 330 m apart
    far = [call(4, None, 5, (30.700, 114.300))]  # 11 km north
    late = [call(5, None, 200, (30.600, 114.300))]  # same street, three hours later
    outages = predict_outages(near + far + late, None, Thresholds(radius_km=0.5, window=timedelta(minutes=60)))
    assert sorted(sorted(o.call_ids) for o in outages) == [[1, 2, 3], [4], [5]]
    biggest = outages[0]
    assert biggest.device is None and biggest.customers_affected == 3
    assert biggest.lat is not None and abs(biggest.lat - 30.603) < 1e-6


def width_km(calls: list[Call]) -> float:
    """The largest distance between two of the calls."""
    return max((haversine_km(a.lat, a.lng, b.lat, b.lng) for i, a in enumerate(calls) for b in calls[i + 1:]),
               default=0.0)


def storm(count: int, seed: int = 7) -> list[Call]:
    """`count` calls scattered uniformly over about 20 km x 20 km in half an hour: dense enough that every call
    has neighbours within the radius, so chaining neighbours would join the whole area."""
    rng = random.Random(seed)
    return [call(i, None, rng.randrange(30), (30.50 + rng.random() * 0.18, 114.20 + rng.random() * 0.21))
            for i in range(1, count + 1)]


def test_a_dense_storm_without_a_network_is_many_outages_none_wider_than_the_bound() -> None:
    calls = storm(900)
    by_id = {c.id: c for c in calls}
    bound = Thresholds(radius_km=0.8, max_diameter_km=2.4)
    outages = predict_outages(calls, None, bound)
    assert sorted(i for o in outages for i in o.call_ids) == sorted(by_id)  # each call in exactly one
    assert len(outages) >= 40
    assert max(width_km([by_id[i] for i in o.call_ids]) for o in outages) <= 2.4
    assert sum(1 for o in outages if len(o.call_ids) >= 2) >= 40  # neighbours still group
    # Unbounded, the same scatter chains into one outage across the area.
    chained = predict_outages(calls, None, Thresholds(radius_km=0.8, max_diameter_km=1000.0))
    assert width_km([by_id[i] for i in chained[0].call_ids]) > 15


def test_the_maximum_diameter_defaults_to_three_radii() -> None:
    assert Thresholds(radius_km=0.5).diameter_km == 1.5
    line = [call(i, None, i, (30.600 + i * 0.003, 114.300)) for i in range(1, 9)]  # every 330 m, 2.3 km long
    outages = predict_outages(line, None, Thresholds(radius_km=0.5))
    assert len(outages) >= 2
    assert all(width_km([c for c in line if c.id in o.call_ids]) <= 1.5 for o in outages)


def plain_rule(calls: list[Call], t: Thresholds) -> list[list[int]]:
    """Bounded single linkage as the rule says it, measuring every pair in km: the reference for the shortcuts
    of the prediction (bounds, written-out spreads, times in microseconds)."""
    groups: list[list[Call]] = []
    for c in sorted(calls, key=lambda c: (c.at, c.id)):
        touching = []
        for index, group in enumerate(groups):
            located = [o for o in group if o.lat is not None and c.lat is not None]
            if any(haversine_km(c.lat, c.lng, o.lat, o.lng) > t.diameter_km for o in located):
                continue
            near = [haversine_km(c.lat, c.lng, o.lat, o.lng) for o in located
                    if haversine_km(c.lat, c.lng, o.lat, o.lng) <= t.radius_km and abs(c.at - o.at) <= t.window]
            if near:
                touching.append((min(near), index))
        touching.sort()
        merged, taken = [c], []
        for rank, (_d, index) in enumerate(touching):
            if rank == 0 or width_km(merged + groups[index]) <= t.diameter_km:
                merged, taken = merged + groups[index], [*taken, index]
        groups = [g for i, g in enumerate(groups) if i not in taken] + [merged]
    return sorted(sorted(c.id for c in g) for g in groups)


@pytest.mark.parametrize("centre", [(30.6, 114.3), (69.5, 30.0), (-12.0, 179.99)],
                         ids=["Wuhan", "the far north", "across the 180th meridian"])
def test_outages_without_a_network_are_grouped_as_the_plain_rule_groups_them(centre: tuple[float, float]) -> None:
    rng = random.Random(11)
    bound = Thresholds(radius_km=0.8, max_diameter_km=2.4, window=timedelta(minutes=60))
    for _storm in range(12):
        calls: list[Call] = []
        for i in range(1, rng.randrange(40, 160)):
            if rng.random() < 0.05:
                at = None  # not located
            elif calls and rng.random() < 0.1 and calls[-1].lat is not None:
                at = (calls[-1].lat, calls[-1].lng)  # the same place again (one address, two calls)
            else:
                lng = centre[1] + rng.uniform(-0.06, 0.06)
                at = (centre[0] + rng.uniform(-0.03, 0.03), lng - 360 if lng > 180 else lng)
            calls.append(Call(id=i, lat=at[0] if at else None, lng=at[1] if at else None, customer=f"p{i}",
                              at=T0 + timedelta(minutes=rng.randrange(150))))
        predicted = sorted(sorted(o.call_ids) for o in predict_outages(calls, None, bound))
        assert predicted == plain_rule(calls, bound)
