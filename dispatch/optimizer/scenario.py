"""Seeded synthetic storm-day scenarios in the demo region (for benches and tests)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from dispatch.optimizer.model import CrewIn, GeneratorIn, TicketIn

CENTRE = (30.60, 114.30)
URBAN_CENTRES: tuple[tuple[float, float, float], ...] = ((30.60, 114.30, 8.0), (30.76, 114.55, 5.0))
RURAL_KM = 30.0
SPAN_DEG = 0.5
SLA_MINUTES = {"URBAN": 45, "RURAL": 90, "REMOTE": 120}
SKILLS = (
    "lv_overhead",
    "lv_underground",
    "mv_switching",
    "transformer",
    "meter",
    "tree_trimming",
    "generator_connect",
    "live_line",
)
SPECIAL = ("lv_underground", "mv_switching", "transformer", "tree_trimming", "live_line")


@dataclass(frozen=True)
class Scenario:
    """One generated situation: crews, open tickets and mobile generators at plan start (minute 0)."""

    crews: list[CrewIn]
    tickets: list[TicketIn]
    generators: list[GeneratorIn]


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (a[0] - b[0]) * 111.2
    dx = (a[1] - b[1]) * 111.2 * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


def area_type(lat: float, lng: float) -> str:
    """URBAN inside an urban centre's radius, RURAL within 30 km of the centre, REMOTE beyond."""
    for clat, clng, r in URBAN_CENTRES:
        if _km((lat, lng), (clat, clng)) <= r:
            return "URBAN"
    return "RURAL" if _km((lat, lng), CENTRE) <= RURAL_KM else "REMOTE"


def _point(rng: random.Random) -> tuple[float, float]:
    """Demand is denser in the cities: 55 % urban, 35 % rural ring, 10 % anywhere in the region."""
    u = rng.random()
    if u < 0.55:
        clat, clng, r = URBAN_CENTRES[0] if rng.random() < 0.65 else URBAN_CENTRES[1]
        d, a = r * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        return clat + d * math.sin(a) / 111.2, clng + d * math.cos(a) / (111.2 * math.cos(math.radians(clat)))
    if u < 0.90:
        d, a = rng.uniform(8.0, RURAL_KM), rng.uniform(0, 2 * math.pi)
        return (
            CENTRE[0] + d * math.sin(a) / 111.2,
            CENTRE[1] + d * math.cos(a) / (111.2 * math.cos(math.radians(CENTRE[0]))),
        )
    return CENTRE[0] + rng.uniform(-SPAN_DEG, SPAN_DEG), CENTRE[1] + rng.uniform(-SPAN_DEG, SPAN_DEG)


def storm_day(
    seed: int = 1,
    n_crews: int = 50,
    n_tickets: int = 500,
    n_generators: int = 6,
    n_generator_sites: int = 10,
    id_prefix: str = "",
) -> Scenario:
    """A storm day: crews on mixed shifts (≈1/3 can tow), 200 kW–1 MW generators, mixed-priority tickets.

    ≈5 % EMERGENCY, ``n_generator_sites`` CRITICAL sites needing a generator, HIGH outages with many
    customers, NORMAL single-customer outages, LOW no-supply-loss visits; 40 % need a special skill;
    ``respond_by`` = SLA by area type (45/90/120 min) after the report, some reported up to an hour ago.
    """
    rng = random.Random(seed)
    crews: list[CrewIn] = []
    for i in range(n_crews):
        lat, lng = (
            _point(rng)
            if rng.random() < 0.7
            else (
                URBAN_CENTRES[i % 2][0] + rng.uniform(-0.02, 0.02),
                URBAN_CENTRES[i % 2][1] + rng.uniform(-0.02, 0.02),
            )
        )
        skills = {"lv_overhead", "meter"} if rng.random() < 0.8 else {"meter"}
        skills |= set(rng.sample(SPECIAL, k=rng.choice((1, 1, 2, 2, 3))))
        tow = i % 3 == 0
        if tow:
            skills.add("generator_connect")
        start = rng.choice((-240, -120, -60, 0, 0, 0, 60))
        crews.append(
            CrewIn(
                id=f"{id_prefix}C{i:03d}",
                lat=lat,
                lng=lng,
                home_lat=lat,
                home_lng=lng,
                skills=frozenset(skills),
                shift_start=start,
                shift_end=start + 600,
                can_tow_generator=tow,
                end_at_home=rng.random() < 0.7,
            )
        )
    gens = [
        GeneratorIn(
            f"{id_prefix}G{i}", *_point(rng), capacity_kw=float(rng.choice((200, 300, 500, 800, 1000)))
        )
        for i in range(n_generators)
    ]
    tickets: list[TicketIn] = []
    n_em = max(1, round(0.05 * n_tickets))
    for i in range(n_tickets):
        lat, lng = _point(rng)
        area = area_type(lat, lng)
        reported = -rng.choice((0, 0, 0, 5, 10, 20, 30, 45, 60))
        if i < n_em:
            prio, kind, cust = "EMERGENCY", "EMERGENCY", rng.randint(1, 300)
        elif i < n_em + n_generator_sites:
            prio, kind, cust = "CRITICAL", "FAULT_REPAIR", rng.randint(1, 50)
        else:
            u = rng.random()
            if u < 0.08:
                prio, kind, cust = "CRITICAL", "FAULT_REPAIR", rng.randint(1, 80)
            elif u < 0.33:
                prio, kind, cust = "HIGH", "FAULT_REPAIR", int(rng.paretovariate(1.2) * 40)
            elif u < 0.78:
                prio, kind, cust = "NORMAL", "FAULT_REPAIR", 1
            else:
                prio, kind, cust = "LOW", rng.choice(("METER", "INQUIRY", "COMPLAINT")), 1
        special = rng.random() < 0.4
        req = (
            frozenset({rng.choice(SPECIAL)})
            if special
            else frozenset({"lv_overhead"} if kind != "METER" else {"meter"})
        )
        gen_site = n_em <= i < n_em + n_generator_sites
        respond = reported + SLA_MINUTES[area] if prio != "LOW" else None
        tickets.append(
            TicketIn(
                id=f"{id_prefix}T{i:04d}",
                lat=lat,
                lng=lng,
                priority=prio,
                kind=kind,
                required_skills=req,
                service_minutes=rng.choice((30, 45, 60, 60, 90, 120)) if prio != "LOW" else 30,
                respond_by=respond,
                customers_affected=max(1, min(cust, 5000)),
                needs_generator=gen_site,
                critical_load_kw=float(rng.choice((150, 250, 400, 600, 900))) if gen_site else None,
                area_type=area,
            )
        )
    rng.shuffle(tickets)
    return Scenario(crews, tickets, gens)
