"""Specification of the seeded demo data: counts, mixes, locations, phones, crews and generators."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from demo.generate import CHANNELS, KIND_SHARES, SKILLS, DemoData, generate_demo
from geo.areas import branch_for, classify_area, default_region, in_region
from geo.geocoding import CRITICAL_SITE_KINDS, GazetteerGeocoder, locate
from geo.points import haversine_km

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 18:00 in Lanshan: the day shift is on
PHONE = re.compile(r"^1[3-9]\d{9}$")
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def demo() -> DemoData:
    return generate_demo(seed=7, now=NOW)


@pytest.fixture(scope="module")
def gazetteer() -> GazetteerGeocoder:
    return GazetteerGeocoder()


def test_deterministic_for_a_seed(demo):
    assert generate_demo(seed=7, now=NOW) == demo
    assert generate_demo(seed=8, now=NOW).tickets != demo.tickets
    naive = generate_demo(seed=7, now=NOW.replace(tzinfo=None))
    assert naive.now == NOW and naive.crews == demo.crews


def test_counts_and_kind_mix(demo):
    assert (len(demo.crews), len(demo.generators), len(demo.tickets)) == (30, 6, 300)
    kinds = Counter(t.kind for t in demo.tickets)
    assert set(kinds) == set(KIND_SHARES)
    for kind, share in KIND_SHARES.items():
        assert kinds[kind] == pytest.approx(300 * share, abs=2), kind
    assert set(Counter(t.channel for t in demo.tickets)) == set(CHANNELS)


def test_smaller_runs_work():
    small = generate_demo(seed=1, n_crews=5, n_generators=2, n_tickets=20, now=NOW)
    assert (len(small.crews), len(small.generators), len(small.tickets)) == (5, 2, 20)


def test_all_coordinates_inside_the_region(demo):
    region = default_region()
    points = [(t.lat, t.lng) for t in demo.tickets if t.lat is not None]
    points += [(c.home_lat, c.home_lng) for c in demo.crews] + [(g.lat, g.lng) for g in demo.generators]
    assert all(in_region(region, lat, lng) for lat, lng in points)
    assert {classify_area(region, lat, lng) for lat, lng in points} == {"URBAN", "RURAL", "REMOTE"}


def test_location_mix_and_resolvability(demo, gazetteer):
    with_coords = [t for t in demo.tickets if t.lat is not None]
    address_only = [t for t in demo.tickets if t.lat is None]
    assert all(t.lng is not None for t in with_coords) and all(t.lng is None for t in address_only)
    assert 135 <= len(with_coords) <= 165
    resolved = [t for t in address_only if locate(gazetteer, t.address) is not None]
    unresolved = [t for t in address_only if locate(gazetteer, t.address) is None]
    assert 120 <= len(resolved) <= 150  # ~45 %
    assert 8 <= len(unresolved) <= 22  # ~5 %: intake's "location null + warning" path
    assert all(t.address for t in demo.tickets)


def test_critical_sites_need_generators(demo, gazetteer):
    critical = [t for t in demo.tickets if t.needs_generator]
    assert 8 <= len(critical) <= 12
    biggest = max(g.capacity_kw for g in demo.generators)
    for t in critical:
        assert t.critical_load_kw is not None and 0 < t.critical_load_kw <= biggest
        assert locate(gazetteer, t.address).kind in CRITICAL_SITE_KINDS
        assert "generator_connect" in t.required_skills
    assert all(t.critical_load_kw is None for t in demo.tickets if not t.needs_generator)


def test_phones_and_repeat_callers(demo):
    assert all(PHONE.match(t.contact_phone) for t in demo.tickets)
    per_phone = Counter(t.contact_phone for t in demo.tickets)
    repeaters = [n for n in per_phone.values() if n > 1]
    assert len(repeaters) >= 6 and max(repeaters) <= 6
    assert any(n >= 5 for n in repeaters)  # enough for a RED warning
    for phone, n in per_phone.items():
        if n > 1:  # one customer: the same account every time
            assert len({t.account_number for t in demo.tickets if t.contact_phone == phone}) == 1


def test_outage_clusters(demo, gazetteer):
    outages = []
    for t in demo.tickets:
        if t.kind == "FAULT_REPAIR" and t.reported_minutes_ago <= 120:
            point = (t.lat, t.lng) if t.lat is not None else None
            if point is None and (hit := locate(gazetteer, t.address)) is not None:
                point = (hit.lat, hit.lng)
            if point:
                outages.append(point)
    best = max(sum(haversine_km(*p, *q) <= 1.0 for q in outages) for p in outages)
    assert best >= 8


def test_text_is_bilingual_and_on_topic(demo):
    zh = sum(bool(CJK.search(t.summary)) for t in demo.tickets)
    assert 0.5 <= zh / len(demo.tickets) <= 0.7
    text = " ".join(t.summary + t.description for t in demo.tickets)
    topics = [
        ("停电", "outage"),
        ("电线落地", "wire down"),
        ("树枝压线", "Tree branch"),
        ("变压器", "Transformer"),
        ("电表", "Meter"),
        ("路灯", "Streetlights"),
        ("起火", "fire"),
        ("态度", "Rude"),
        ("电费", "Bill"),
    ]
    for zh_word, en_word in topics:
        assert zh_word in text or en_word in text, (zh_word, en_word)
    assert "停电" in text and "No power" in text


def test_ticket_fields(demo):
    priorities = Counter(t.priority for t in demo.tickets)
    assert priorities[None] >= 250 and len(priorities) > 1
    assert set(priorities) <= {None, "EMERGENCY", "CRITICAL", "HIGH", "NORMAL", "LOW"}
    for t in demo.tickets:
        assert t.summary and t.description and t.contact_name
        assert t.preferred_channels and set(t.preferred_channels) <= set(CHANNELS)
        assert t.reported_minutes_ago >= 0 and t.customers_affected >= 0
        assert set(t.required_skills) <= set(SKILLS)


def test_crews(demo):
    region = default_region()
    depots = {f.properties.code: f.properties.depot for f in region.branches.features}
    for c in demo.crews:
        assert CJK.search(c.name) and "Repair" in c.name
        assert c.skills and set(c.skills) <= set(SKILLS)
        assert (c.home_lat, c.home_lng) == (depots[c.branch].lat, depots[c.branch].lng)
        assert branch_for(region, c.home_lat, c.home_lng) == c.branch
        assert c.shift_end - c.shift_start == timedelta(hours=12)
        assert not c.can_tow_generator or "generator_connect" in c.skills
    assert {c.branch for c in demo.crews} == set(region.branch_codes)
    on_now = [c for c in demo.crews if c.shift_start <= NOW < c.shift_end]
    later = [c for c in demo.crews if c.shift_start > NOW]
    assert len(on_now) >= 12 and len(later) >= 4 and len(on_now) + len(later) == 30
    towing = sum(c.can_tow_generator for c in demo.crews)
    assert 7 <= towing <= 14  # about a third


def test_every_ticket_can_be_served_by_some_crew(demo):
    for t in demo.tickets:
        able = [c for c in demo.crews if set(t.required_skills) <= set(c.skills)]
        if t.needs_generator:
            able = [c for c in able if c.can_tow_generator]
        assert able, (t.summary, t.required_skills)


def test_generators(demo):
    assert all(200 <= g.capacity_kw <= 1000 for g in demo.generators)
    assert len({g.name for g in demo.generators}) == 6
